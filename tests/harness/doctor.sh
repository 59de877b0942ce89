#!/usr/bin/env bash
# Preflight: tries each capability the lab and the tests rely on, not each package, and prints one
# line per capability; a failure names the command that fixes it. Run first by `make lab` and
# `make test` (after the install step), and alone as `make doctor`. A few seconds when all is well.
#   CHAINOPS_TEST_IMAGE  the image to try (default: the one `make image` recorded)
#   CHAINOPS_DOCTOR_NAME prefix of the throwaway containers and network (default chainops-doctor)
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${CHAINOPS_CACHE:-$root/.cache}"
image="${CHAINOPS_TEST_IMAGE:-$(cat "$cache/image-name" 2>/dev/null)}"
name="${CHAINOPS_DOCTOR_NAME:-chainops-doctor}"
net="$name-net"
a="$name-a"
b="$name-b"
failures=0
started=$SECONDS
server_pid=""

ok() { printf 'ok    %-24s %s\n' "$1" "$2"; }
fail() {
  printf 'FAIL  %-24s %s -- fix: %s\n' "$1" "$2" "$3"
  failures=$((failures + 1))
}
# Runs a command with a bound; prints its last line of output on failure (the reason).
try() {
  local bound=$1; shift
  timeout "$bound" "$@" 2>&1
}
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null
  podman rm -f -t 0 "$a" "$b" >/dev/null 2>&1
  podman network rm -f "$net" >/dev/null 2>&1
}
trap cleanup EXIT

# Host tools the tests call directly.
for tool in podman:podman runc:runc shellcheck:shellcheck wireguard-go:wireguard-go wg:wireguard-tools \
            nft:nftables litecoind:litecoind zstd:zstd curl:curl fio:fio nsenter:util-linux flock:util-linux \
            ssh-keygen:openssh-client ip:iproute2 dot:graphviz; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || fail "program ${tool%%:*}" "not installed" "make system-deps (apt-get install -y ${tool#*:})"
done
[ -x "$root/.venv/bin/moto_server" ] || fail "moto_server" "not in the virtualenv" "make venv"
if ! command -v podman >/dev/null 2>&1; then
  echo "doctor: $failures problem(s); podman is needed for the rest" >&2
  exit 1
fi

if [ -z "$image" ] || ! podman image exists "$image" 2>/dev/null; then
  fail "test image" "${image:-no image recorded} does not exist" "make image"
  echo "doctor: $failures problem(s); the container checks need the image" >&2
  exit 1
fi
ok "test image" "$image"

cleanup
# A fresh network, as the lab and molecule create theirs: DNS must be on by default.
if ! out=$(try 20 podman network create --label chainops.doctor=1 "$net"); then
  fail "podman network" "cannot create a network: ${out##*$'\n'}" "make system-deps; see tests/harness/containers.conf"
  exit 1
fi
run_opts=(--detach --network "$net" --cap-add NET_ADMIN --device /dev/net/tun
          --volume /usr/bin/wireguard-go:/usr/local/sbin/wireguard-go:ro --volume /usr/bin/wg:/usr/local/bin/wg:ro)
if ! out=$(try 30 podman run "${run_opts[@]}" --name "$a" --hostname "$a" --systemd=always "$image" /sbin/init) ||
   ! out=$(try 30 podman run "${run_opts[@]}" --name "$b" --hostname "$b" "$image" \
             python3 -m http.server --bind 0.0.0.0 8000); then
  fail "container start" "podman run failed: ${out##*$'\n'}" "run through make (it sets CONTAINERS_CONF=tests/harness/containers.conf: runtime runc, ulimits)"
  exit 1
fi

# systemd as PID 1 ("Failed to connect to bus" just after the start is retried).
boot=""
for _ in $(seq 30); do
  boot=$(try 30 podman exec "$a" systemctl is-system-running --wait) && break
  case $boot in *"Failed to connect to bus"*) sleep 0.5 ;; *) break ;; esac
done
case $boot in
  running|degraded) ok "systemd in a container" "booted ($boot)" ;;
  *) fail "systemd in a container" "systemctl is-system-running: ${boot:-no answer}" "runtime runc in tests/harness/containers.conf; crun fails on hybrid cgroups" ;;
esac

# Name resolution and reachability between containers on the network.
dns=$(podman network inspect --format '{{.DNSEnabled}}' "$net" 2>/dev/null)
probe="import socket, sys, urllib.request
addr = socket.gethostbyname(sys.argv[1])
urllib.request.urlopen('http://%s:8000/' % sys.argv[1], timeout=3).read()
print(addr)"
reach=""
# The DNS server of a new network may need a moment; without DNS there is nothing to wait for.
for _ in $(seq "$([ "$dns" = true ] && echo 20 || echo 1)"); do
  reach=$(try 10 podman exec "$a" python3 -c "$probe" "$b") && break
  sleep 0.25
done
if [ "$dns" = true ] && [[ $reach =~ ^[0-9.]+$ ]]; then
  ok "container DNS" "$a resolves $b ($reach) and reaches it"
else
  fail "container DNS" "names do not resolve between containers (network dns_enabled=$dns): ${reach##*$'\n'}" \
    "apt-get install -y golang-github-containernetworking-plugin-dnsname (make system-deps), then make lab-down"
fi

# TUN + wireguard-go: a real tunnel between the two containers, TCP over it.
# Scripts run by the containers' shell with their own arguments: single quotes on purpose.
# shellcheck disable=SC2016
wg_setup='set -e
wireguard-go wg0 >/dev/null 2>&1
umask 077; wg genkey > /tmp/wg.key; wg pubkey < /tmp/wg.key'
# shellcheck disable=SC2016
wg_peer='set -e
wg set wg0 private-key /tmp/wg.key listen-port 51820 peer "$1" allowed-ips "$2"/32 endpoint "$3":51820
ip address add "$4"/24 dev wg0; ip link set wg0 up'
ip_of() { podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
tunnel() {
  local key_a key_b
  key_a=$(try 10 podman exec "$a" sh -c "$wg_setup") || { echo "$key_a"; return 1; }
  key_b=$(try 10 podman exec "$b" sh -c "$wg_setup") || { echo "$key_b"; return 1; }
  try 10 podman exec "$a" sh -c "$wg_peer" _ "$key_b" 10.199.0.2 "$(ip_of "$b")" 10.199.0.1 &&
    try 10 podman exec "$b" sh -c "$wg_peer" _ "$key_a" 10.199.0.1 "$(ip_of "$a")" 10.199.0.2 &&
    try 15 podman exec "$a" python3 -c "import urllib.request; urllib.request.urlopen('http://10.199.0.2:8000/', timeout=10)"
}
if out=$(tunnel); then
  ok "wireguard-go tunnel" "TCP over wg0 between two containers"
else
  fail "wireguard-go tunnel" "${out##*$'\n'}" "podman run needs --device /dev/net/tun and NET_ADMIN; make system-deps installs wireguard-go"
fi

# nftables in a container's network namespace (the host's nft, the container's netns).
ruleset='table inet chainops_doctor {
  set admins { type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    ct state established,related accept
    ct state invalid drop
    iifname "lo" accept
    ip saddr @admins tcp dport 22 accept
    ip6 saddr 2001:db8::/32 tcp dport 22 accept
    icmp type echo-request limit rate 20/second accept
    tcp dport 9 reject with tcp reset
  }
}'
pid=$(podman inspect --format '{{.State.Pid}}' "$a")
if out=$(printf '%s\n' "$ruleset" | try 10 nsenter -t "$pid" -n nft -f - && try 10 nsenter -t "$pid" -n nft list table inet chainops_doctor); then
  ok "nftables in a container" "inet table with sets, ct, limit and reject loaded"
else
  fail "nftables in a container" "${out##*$'\n'}" "the kernel needs nf_tables (inet, ct, reject, limit); apt-get install -y nftables"
fi

# A server on the host at the network's gateway address (moto, for the containers).
gateway=$(podman network inspect --format '{{range .Subnets}}{{.Gateway}}{{end}}' "$net" 2>/dev/null)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind "$gateway" "$port" >/dev/null 2>&1 &
server_pid=$!
reach=""
for _ in $(seq 20); do
  reach=$(try 10 podman exec "$a" python3 -c "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=3).status)" \
          "http://$gateway:$port/") && break
  sleep 0.25
done
if [ "$reach" = 200 ]; then
  ok "host gateway server" "a container reaches http://$gateway:$port/ on the host"
else
  fail "host gateway server" "a server on the gateway $gateway is not reachable: ${reach##*$'\n'}" \
    "allow the podman bridge to reach the host (host firewall: accept input on cni-podman*)"
fi

if [ "$failures" -gt 0 ]; then
  echo "doctor: $failures problem(s) in $((SECONDS - started)) s" >&2
  exit 1
fi
echo "doctor: all capabilities present ($((SECONDS - started)) s)"
