#!/usr/bin/env bash
# Runs inside the lab's internet container: build two flat apt repositories holding litecoind
# VERSION (the installed package, re-versioned): good/ with the real daemon, broken/ whose daemon
# exits at once. Serves them over HTTP on port 8080. Usage: make_upgrade_repo.sh VERSION
set -euo pipefail
version=$1 root=/srv/lab-apt
rm -rf "$root" && mkdir -p "$root/good" "$root/broken" && cd "$root"
apt-get download -q litecoind >/dev/null
dpkg-deb -R litecoind_*.deb pkg
sed -i "s/^Version: .*/Version: $version/" pkg/DEBIAN/control
dpkg-deb -b pkg "good/litecoind_${version}_amd64.deb" >/dev/null
printf '#!/bin/sh\necho "litecoind: broken build" >&2\nexit 1\n' > pkg/usr/lib/litecoin/litecoind
dpkg-deb -b pkg "broken/litecoind_${version}_amd64.deb" >/dev/null
for repo in good broken; do
  deb=$(ls "$repo"/*.deb)
  { dpkg-deb -f "$deb"; echo "Filename: ./$(basename "$deb")"; echo "Size: $(stat -c %s "$deb")";
    echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"; echo; } > "$repo/Packages"
done
systemd-run --unit=lab-apt-repo --collect -p WorkingDirectory="$root" python3 -m http.server 8080 >/dev/null
