#!/bin/sh
# Builds, inside the dd-repo test container, a LOCAL SIGNED apt repository laid out like Datadog's
# (https://apt.datadoghq.com/ stable 7). The real Agent package cannot be downloaded here, so the
# repository carries a fake `datadog-agent` package, in two versions, so the role's version pin is tested.
# The fake installs /opt/datadog-agent/bin/agent/agent, the unit datadog-agent.service and the dd-agent user.
# Two signing keys are generated: the repository is signed by the second ("current") one; the role
# gets both key URLs, as it gets Datadog's current and previous keys in production.
set -eu
root=/srv/apt
work=/srv/apt-build
export GNUPGHOME="$work/gnupg"
export DEBIAN_FRONTEND=noninteractive

apt-get install -y -q --no-install-recommends gnupg apt-utils >/dev/null
rm -rf "$root" "$work"
mkdir -p "$root/pool/7/d/datadog-agent" "$root/dists/stable/7/binary-amd64" "$GNUPGHOME"
chmod 700 "$GNUPGHOME"

for name in previous current; do
  gpg --batch --quiet --passphrase '' --quick-gen-key "chainops test apt key ($name) <apt-$name@chainops.invalid>" ed25519 sign never
done
gpg --batch --armor --export "apt-previous@chainops.invalid" > "$root/DATADOG_APT_KEY_PREVIOUS.public"
gpg --batch --armor --export "apt-current@chainops.invalid" > "$root/DATADOG_APT_KEY_CURRENT.public"
gpg --batch --with-colons --fingerprint "apt-current@chainops.invalid" | awk -F: '/^fpr/ {print $10; exit}' > "$root/current-fingerprint.txt"

build_deb() {
  version="$1"
  pkg="$work/datadog-agent_$version"
  mkdir -p "$pkg/DEBIAN" "$pkg/opt/datadog-agent/bin/agent" "$pkg/lib/systemd/system" "$pkg/etc/datadog-agent/conf.d"
  cat > "$pkg/DEBIAN/control" <<CONTROL
Package: datadog-agent
Version: 1:$version-1
Architecture: amd64
Maintainer: chainops tests <tests@chainops.invalid>
Depends: passwd
Section: utils
Priority: optional
Description: FAKE Datadog Agent for chainops.validator tests
 Stands in for the real Agent, which cannot be downloaded in the test lab.
CONTROL
  # The fake agent refuses to start without a datadog.yaml that dd-agent can read and that has an
  # api_key, as the real one does; then it idles like a daemon.
  cat > "$pkg/opt/datadog-agent/bin/agent/agent" <<AGENT
#!/bin/sh
case "\$1" in
  version) echo "Agent $version - Commit: chainops-fake - Serialization version: fake" ;;
  run)
    config=/etc/datadog-agent/datadog.yaml
    [ -r "\$config" ] || { echo "cannot read \$config" >&2; exit 78; }
    grep -q '^api_key: ' "\$config" || { echo "no api_key in \$config" >&2; exit 78; }
    echo "fake agent $version running"
    exec sleep infinity ;;
  *) echo "usage: agent run|version" >&2; exit 2 ;;
esac
AGENT
  chmod 0755 "$pkg/opt/datadog-agent/bin/agent/agent"
  cat > "$pkg/lib/systemd/system/datadog-agent.service" <<UNIT
[Unit]
Description=Datadog Agent (chainops test fake)
After=network.target

[Service]
Type=simple
User=dd-agent
ExecStart=/opt/datadog-agent/bin/agent/agent run
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
  cat > "$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  getent group dd-agent >/dev/null || groupadd --system dd-agent
  getent passwd dd-agent >/dev/null || useradd --system --gid dd-agent --home-dir /opt/datadog-agent \
    --no-create-home --shell /usr/sbin/nologin dd-agent
  chown dd-agent:dd-agent /etc/datadog-agent /etc/datadog-agent/conf.d
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POSTINST
  chmod 0755 "$pkg/DEBIAN/postinst"
  dpkg-deb --root-owner-group --build "$pkg" "$root/pool/7/d/datadog-agent/datadog-agent_${version}-1_amd64.deb" >/dev/null
}
build_deb 7.60.0
build_deb 7.61.0

cd "$root"
apt-ftparchive packages pool > dists/stable/7/binary-amd64/Packages
gzip -9kf dists/stable/7/binary-amd64/Packages
apt-ftparchive -o APT::FTPArchive::Release::Origin=Datadog -o APT::FTPArchive::Release::Label=Datadog \
  -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
  -o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=7 \
  release dists/stable > "$work/Release"
mv "$work/Release" dists/stable/Release
gpg --batch --yes --local-user "apt-current@chainops.invalid" --clearsign -o dists/stable/InRelease dists/stable/Release
gpg --batch --yes --local-user "apt-current@chainops.invalid" --armor --detach-sign -o dists/stable/Release.gpg dists/stable/Release
find "$root" -type f | sort
