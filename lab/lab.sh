#!/usr/bin/env bash
# The local lab: a sentry-protected litecoin regtest cluster built by the real playbooks, with moto
# standing in for AWS and podman containers standing in for EC2 instances (EC2's stop and start power them
# off and on: lab/ec2_power.py).
#   lab.sh up      moto -> VPC -> provision.yml -> containers -> internet peer -> site.yml -> balancer -> status
#   lab.sh status  the status table only
#   lab.sh playbook NAME|PATH [options]
#                  any playbook against the lab (NAME from playbooks/), e.g.
#                  lab.sh playbook rolling_upgrade.yml -e node_version=...
#   lab.sh down    remove every container, network, process and file the lab made
# Settings (environment): LAB_NAME (chainops-lab), LAB_STATE (<repo>/.lab), LAB_MOTO_PORT (5055).
# Called by `make lab` / `make lab-down`, which set up the virtualenv, collection path and image.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export LAB_NAME=${LAB_NAME:-chainops-lab}
export LAB_STATE=${LAB_STATE:-$ROOT/.lab}
LAB_MOTO_PORT=${LAB_MOTO_PORT:-5055}
export AWS_ENDPOINT_URL=http://127.0.0.1:$LAB_MOTO_PORT
export AWS_ACCESS_KEY_ID=motolabaccesskey AWS_SECRET_ACCESS_KEY=motolabsecretkey0 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN
# Ansible's controller-side files stay in the lab state directory too.
export ANSIBLE_HOME=$LAB_STATE/ansible ANSIBLE_LOCAL_TEMP=$LAB_STATE/ansible/tmp
# An inventory error fails the run instead of leaving an empty inventory (inventories/aws/ansible.cfg).
export ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=true
# The containers' connection: one command per task, pipelined; as root it enters the container with nsenter
# instead of `podman exec` (tests/harness/connection_plugins/podman.py).
export ANSIBLE_CONNECTION_PLUGINS=$ROOT/tests/harness/connection_plugins ANSIBLE_PIPELINING=true
# Every host at once: a task waits on podman exec and the hosts far more than on the CPU, and with
# Ansible's default of 5 forks the lab's 8-9 hosts ran each task in two rounds.
export ANSIBLE_FORKS=${ANSIBLE_FORKS:-16}
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-false} ANSIBLE_STDOUT_CALLBACK=ansible.builtin.default
export ANSIBLE_CALLBACK_RESULT_FORMAT=${ANSIBLE_CALLBACK_RESULT_FORMAT:-yaml} ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DISPLAY_OK_HOSTS=${ANSIBLE_DISPLAY_OK_HOSTS:-false}
INVENTORY=(-i "$ROOT/inventories/lab")
# localhost plays (AWS modules) run with the virtualenv's python: it has boto3.
LOCAL_PYTHON="ansible_python_interpreter=$(command -v python3)"
CHANGED=0

step() { printf '\n==> [lab %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

moto_running() {
  [ -s "$LAB_STATE/moto.pid" ] && kill -0 "$(cat "$LAB_STATE/moto.pid")" 2>/dev/null
}

start_moto() {
  if moto_running; then
    step "AWS stand-in: moto already serving $AWS_ENDPOINT_URL (pid $(cat "$LAB_STATE/moto.pid"))"
    return
  fi
  # A new moto is a new AWS account: containers and networks of this lab name left by a lab whose moto is
  # gone (killed, or its state directory removed) would collide with the new instances' names.
  local stale
  stale=$(podman ps -aq --filter "label=chainops.lab=$LAB_NAME")
  if [ -n "$stale" ] || [ -n "$(podman network ls -q --filter "label=chainops.lab=$LAB_NAME")" ]; then
    step "removing what a previous lab $LAB_NAME left (its moto is gone): $(echo "$stale" | wc -w) containers"
    echo "$stale" | xargs -r podman rm -f -t 0 >/dev/null
    podman network ls -q --filter "label=chainops.lab=$LAB_NAME" | xargs -r podman network rm >/dev/null
  fi
  step "AWS stand-in: starting moto on $AWS_ENDPOINT_URL"
  # moto_server, with EC2's stop and start powering the instances' containers off and on (lab/ec2_power.py).
  setsid python3 "$ROOT/lab/ec2_power.py" -H 127.0.0.1 -p "$LAB_MOTO_PORT" >"$LAB_STATE/moto.log" 2>&1 < /dev/null &
  echo $! > "$LAB_STATE/moto.pid"
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null && return
    moto_running || { cat "$LAB_STATE/moto.log" >&2; echo "moto_server exited (port $LAB_MOTO_PORT busy? set LAB_MOTO_PORT)" >&2; exit 1; }
    sleep 0.2
  done
  echo "moto_server did not answer on $AWS_ENDPOINT_URL within 20 s" >&2; exit 1
}

# Run one playbook with its output streaming, and add its changed tasks to the total.
play() {
  local log=$LAB_STATE/last-play.log rc changed
  set +e
  ansible-playbook "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  changed=$(awk '/^PLAY RECAP/ {r=1; next} r && / : ok=/ {for (i=1; i<=NF; i++) if ($i ~ /^changed=/) {split($i, a, "="); s+=a[2]}} END {print s+0}' "$log")
  CHANGED=$((CHANGED + changed))
  return "$rc"
}

up() {
  mkdir -p "$LAB_STATE/ansible/tmp"
  : "${CHAINOPS_TEST_IMAGE:?set CHAINOPS_TEST_IMAGE (make lab does)}"
  local started=$SECONDS
  start_moto
  step "AWS account: VPC and subnets (lab/world.yml)"
  play "$ROOT/lab/world.yml" -i localhost, -e "lab_name=$LAB_NAME" -e "$LOCAL_PYTHON"
  step "provision: security groups, instances, volumes (chainops.validator.provision on moto)"
  play "$ROOT/playbooks/provision.yml" -i localhost, -e "@$ROOT/inventories/lab/group_vars/all/provision.yml" \
    -e "@$LAB_STATE/world.yml" -e "provision_aws_endpoint_url=$AWS_ENDPOINT_URL" -e "$LOCAL_PYTHON"
  step "inventory: what the ec2_topology plugin sees"
  ansible-inventory "${INVENTORY[@]}" --graph
  step "instances: one systemd container per host (lab/containers.yml)"
  play "$ROOT/lab/containers.yml" "${INVENTORY[@]}"
  step "internet: a public litecoin peer with a ${LAB_CHAIN_HEIGHT:-200}-block chain (lab/internet.yml)"
  play "$ROOT/lab/internet.yml" "${INVENTORY[@]}"
  step "site: the sentry-protected topology (chainops.validator.site)"
  local site_started=$SECONDS
  play "$ROOT/playbooks/site.yml" "${INVENTORY[@]}" "$@"
  # The first converge's duration, for tests/bench/converge_bench.py.
  [ -e "$LAB_STATE/site-first-seconds" ] || echo $((SECONDS - site_started)) > "$LAB_STATE/site-first-seconds"
  step "load balancer: HAProxy in front of the fleet's RPC nodes, checking /health (lab/balancer.yml)"
  play "$ROOT/lab/balancer.yml" "${INVENTORY[@]}"
  step "status"
  status
  echo "lab up in $((SECONDS - started)) s; changed tasks in this run: $CHANGED"
  echo "$CHANGED" > "$LAB_STATE/changed"
}

status() {
  python3 "$ROOT/lab/status.py" --lab-name "$LAB_NAME" --inventory "$ROOT/inventories/lab"
  # The same topology as a picture, next to the table (chainops.validator.topology_graph).
  local drawn
  if ! drawn=$(ansible-playbook "${INVENTORY[@]}" "$ROOT/playbooks/topology_graph.yml" \
      -e "{\"topology_graph_dest\": \"$LAB_STATE\", \"topology_graph_title\": \"lab $LAB_NAME\"}" 2>&1); then
    printf '%s\n' "$drawn" | tail -20 >&2
    return 1
  fi
  if [ -s "$LAB_STATE/topology.svg" ]; then echo "topology: $LAB_STATE/topology.svg"; else echo "topology: $LAB_STATE/topology.dot (install graphviz to draw it)"; fi
}

playbook() {
  [ $# -gt 0 ] || { echo "usage: $0 playbook NAME|PATH [ansible-playbook options]" >&2; exit 2; }
  moto_running || { echo "lab $LAB_NAME is not up (make lab builds it)" >&2; exit 1; }
  local book=$1
  shift
  case $book in */*) ;; *) book=$ROOT/playbooks/$book ;; esac
  exec ansible-playbook "${INVENTORY[@]}" "$book" "$@"
}

down() {
  step "removing lab $LAB_NAME"
  podman ps -aq --filter "label=chainops.lab=$LAB_NAME" | xargs -r podman rm -f -t 0 >/dev/null
  podman network ls -q --filter "label=chainops.lab=$LAB_NAME" | xargs -r podman network rm >/dev/null
  if moto_running; then kill "$(cat "$LAB_STATE/moto.pid")"; fi
  rm -rf "$LAB_STATE"
  echo "lab $LAB_NAME removed"
}

case ${1:-up} in
  up) shift || true; up "$@" ;;
  status) status ;;
  playbook) shift; playbook "$@" ;;
  down) down ;;
  *) echo "usage: $0 up|status|playbook|down" >&2; exit 2 ;;
esac
