#!/usr/bin/env bash
# Removes the given podman networks when they exist without name resolution (created before the DNS
# plugin was installed), together with the containers attached to them, so that the next lab or
# molecule run creates them again with DNS. Networks with DNS, and absent ones, are left alone.
# Usage: networks.sh NETWORK...   (the Makefile passes the lab's and every molecule scenario's)
set -euo pipefail
for net in "$@"; do
  podman network exists "$net" 2>/dev/null || continue
  [ "$(podman network inspect --format '{{.DNSEnabled}}' "$net")" = true ] && continue
  containers=$(podman ps -aq --filter "network=$net")
  echo "==> podman network $net has no DNS (made before the DNS plugin was installed): removing it${containers:+ and its containers}"
  # shellcheck disable=SC2086 # one id per word
  [ -z "$containers" ] || podman rm -f -t 0 $containers >/dev/null
  podman network rm -f "$net" >/dev/null
done
