"""health_checker role next to a real litecoind regtest node, on a systemd host."""
import json
import re
import subprocess
import urllib.error
import urllib.request

import pytest
from chainops_testlib import listeners, recap, run_playbook, unit_properties

testinfra_hosts = ["podman://hc-ltc"]

UNIT = "chainops-health"
USER = "chainops-health"
CONFIG = "/etc/chainops/health/config.json"
RPC_CONF = "/etc/chainops/litecoind/rpc.conf"
PORT = 9680
POLL_INTERVAL = 1.0  # health_checker_poll_interval_s in molecule.yml
LTC_CLI = "litecoin-cli -conf=/etc/chainops/litecoind/rpc.conf -datadir=/data/litecoind -chain=regtest -rpcport=19443"

# Runs inside the host: GET a path, print status, content type and body (no curl in the image).
HTTP_GET = r"""
import json, sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=5)
except urllib.error.HTTPError as e:
    r = e
print(json.dumps({"status": r.status, "type": r.headers.get("Content-Type"), "body": r.read().decode()}))
"""

# Runs inside the host right after an action: poll /health every 20 ms until it answers the wanted
# status and print how long that took (or null after the deadline).
WAIT_FOR_STATUS = r"""
import json, sys, time, urllib.error, urllib.request
port, want, deadline = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
while time.monotonic() - start < deadline:
    try:
        r = urllib.request.urlopen("http://127.0.0.1:%s/health?verbose" % port, timeout=2)
    except urllib.error.HTTPError as e:
        r = e
    body = r.read().decode()
    if r.status == want:
        print(json.dumps({"elapsed": time.monotonic() - start, "body": json.loads(body)}))
        sys.exit(0)
    time.sleep(0.02)
print(json.dumps({"elapsed": None, "body": json.loads(body)}))
"""


def get(host, path):
    return json.loads(host.check_output("python3 -c %s %s %s", HTTP_GET, str(PORT), path))


def wait_for_status(host, want, deadline, before=""):
    """Run `before` (a shell command) then time how long until /health answers `want`, all inside the host."""
    command = (before + " && " if before else "") + "python3 -c %s %s %s %s"
    return json.loads(host.check_output(command, WAIT_FOR_STATUS, str(PORT), str(want), str(deadline)))


def main_pid(host):
    return unit_properties(host, UNIT, "MainPID")["MainPID"]


def rpc_password(host):
    password = host.check_output("sed -n 's/^rpcpassword=//p' %s", RPC_CONF).strip()
    assert len(password) > 20
    return password


@pytest.fixture(scope="module")
def synced(host):
    """Mine blocks (to an anyone-can-spend script: no wallet) so the node leaves initial block download."""
    start = json.loads(host.check_output(LTC_CLI + " getblockchaininfo"))["blocks"]
    host.check_output(LTC_CLI + " generatetodescriptor 5 'raw(51)'")
    result = wait_for_status(host, 200, 10 * POLL_INTERVAL)
    assert result["elapsed"] is not None, result["body"]
    return start + 5


def test_service_runs_as_its_own_user(host):
    service = host.service(UNIT)
    assert service.is_running and service.is_enabled
    user = host.user(USER)
    assert user.shell == "/usr/sbin/nologin" and user.uid < 1000
    # Not in the node's group: access to the RPC password is by LoadCredential only.
    assert user.groups == [USER], user.groups
    pid = main_pid(host)
    assert host.check_output("ps -o user= -p %s", pid).strip() == USER
    assert "/usr/bin/python3 -I -S" in host.check_output("ps -o args= -p %s", pid)


def test_unit_is_hardened(host):
    props = unit_properties(
        host, UNIT, "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateUsers",
        "CapabilityBoundingSet", "AmbientCapabilities", "RestrictAddressFamilies", "MemoryDenyWriteExecute",
        "ReadWritePaths", "User", "Restart", "LimitNOFILE", "LoadCredential", "After",
    )
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ReadWritePaths"] == ""  # no write access anywhere
    assert props["ProtectHome"] == "yes" and props["PrivateTmp"] == "yes" and props["PrivateDevices"] == "yes"
    assert props["PrivateUsers"] == "yes"
    assert props["CapabilityBoundingSet"] == "" and props["AmbientCapabilities"] == ""
    assert set(props["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert props["MemoryDenyWriteExecute"] == "yes"
    assert props["User"] == USER and props["Restart"] == "on-failure"
    assert int(props["LimitNOFILE"]) > 512  # above max_connections
    assert "litecoind.service" in props["After"].split()
    # systemd's exposure score (10 = unprotected). The node units score 1.5 here; this one must stay lower.
    score_line = host.check_output("systemd-analyze security %s --no-pager | tail -n1", UNIT)
    score = float(score_line.split("exposure level for")[1].split(":")[1].split()[0])
    assert score <= 1.5, score_line


def test_files_and_secrets(host):
    # The program: a directory with __main__.py and the chainops_health package, root's, read-only to others.
    for path in ("__main__.py", "chainops_health/verdict.py", "chainops_health/server.py"):
        script = host.file("/usr/local/lib/chainops-health/" + path)
        assert script.user == "root" and script.mode == 0o644, path
    assert host.file("/usr/local/lib/chainops-health/chainops_health").mode == 0o755
    # Nothing from the role's own directory beyond the listed files (no test run's bytecode).
    assert not host.file("/usr/local/lib/chainops-health/chainops_health/__pycache__").exists
    config_dir = host.file("/etc/chainops/health")
    assert config_dir.user == "root" and config_dir.group == USER and config_dir.mode == 0o750
    config = host.file(CONFIG)
    assert config.user == "root" and config.group == USER and config.mode == 0o640
    # The node's password file is untouched (0600, the node user's) and the service user cannot read it ...
    rpc_conf = host.file(RPC_CONF)
    assert rpc_conf.mode == 0o600 and rpc_conf.user == "litecoind"
    denied = host.run("runuser -u %s -- cat %s", USER, RPC_CONF)
    assert denied.rc != 0 and "Permission denied" in denied.stderr
    # ... the service gets systemd's copy instead, and the config names that copy, not the password.
    document = json.loads(config.content_string)
    assert document["node"]["password_file"] == "/run/credentials/chainops-health.service/node"
    assert document["references"][0]["password_file"] == "/run/credentials/chainops-health.service/ref0"
    assert rpc_password(host) not in config.content_string
    copy = host.file("/run/credentials/chainops-health.service/node")
    assert copy.user == "root" and copy.mode & 0o007 == 0, oct(copy.mode)


def test_listens_for_the_load_balancer(host):
    assert ("0.0.0.0", PORT) in listeners(host)
    # From the controller, as a load balancer would: the container's address on its network.
    address = subprocess.run(
        ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "hc-ltc"],
        capture_output=True, text=True, check=True).stdout.strip()
    try:
        status = urllib.request.urlopen("http://%s:%d/live" % (address, PORT), timeout=5).status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status in (200, 503)  # answered over the network; the verdict is tested below


def test_health_is_200_when_synced(host, synced):
    response = get(host, "/health?verbose")
    assert response["status"] == 200, response
    body = json.loads(response["body"])
    assert body["status"] == "healthy" and body["height"] == synced
    assert body["checks"]["not_syncing"]["status"] == "pass"
    # The best reachable reference counts ("self" answers with its own credential, "down" does not).
    assert body["reference_height"] == synced and body["checks"]["lag"]["references_reachable"] == 1
    assert {ref["name"]: ref["height"] for ref in body["references"]} == {"self": synced, "down": None}
    assert rpc_password(host) not in response["body"]


def test_metrics_are_prometheus_text(host, synced):
    response = get(host, "/metrics")
    assert response["status"] == 200
    assert response["type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response["body"].splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) chainops_health_\w+ ", line), line
            continue
        match = re.match(r"^(chainops_health_\w+(?:\{[^}]*\})?) (\S+)$", line)
        assert match, "not a Prometheus sample: %r" % line
        samples[match.group(1)] = float(match.group(2))
    assert samples["chainops_health_healthy"] == 1
    assert samples["chainops_health_height"] == synced
    assert samples["chainops_health_reference_height"] == synced
    assert samples["chainops_health_references_configured"] == 2
    assert samples["chainops_health_references_reachable"] == 1


def test_503_within_one_poll_interval_after_the_node_stops(host, synced):
    try:
        # Timed from when systemctl returns: the daemon has exited, its RPC port is closed.
        result = wait_for_status(host, 503, 10 * POLL_INTERVAL, before="systemctl stop litecoind")
        assert result["elapsed"] is not None, result["body"]
        print("503 %.2f s after the node stopped" % result["elapsed"])
        # One poll interval, plus slack for the poll itself and the 20 ms sampling on a loaded machine.
        assert result["elapsed"] <= POLL_INTERVAL + 0.5, result["elapsed"]
        body = result["body"]
        assert body["checks"]["node_answers"]["status"] == "fail"
        assert "Connection refused" in body["node_error"], body["node_error"]
        # The only reachable reference was the node itself, so the reference policy applied.
        assert body["reference_policy_applied"] == "fail_closed"
        assert get(host, "/live")["status"] == 503
    finally:
        host.check_output("systemctl start litecoind")
    # Back to healthy once the node answers again (its start takes a few seconds).
    result = wait_for_status(host, 200, 60)
    assert result["elapsed"] is not None, result["body"]
    assert result["body"]["height"] == synced


def test_published_target_group_matches_the_service(host):
    published = json.loads(host.file("/etc/chainops/health/target-group.json").content_string)
    from_service = json.loads(host.check_output(
        "runuser -u %s -- /usr/bin/python3 -I -S -B /usr/local/lib/chainops-health --print-target-group %s",
        USER, CONFIG))
    assert published == from_service
    settings = published["elb_target_group"]
    assert settings["health_check_path"] == "/health" and settings["health_check_port"] == str(PORT)
    assert settings["successful_response_codes"] == "200"
    assert settings["health_check_interval"] == 5  # poll interval 1 s, ELBv2 minimum 5
    assert settings["healthy_threshold_count"] == 2 and settings["unhealthy_threshold_count"] == 2
    assert published["elbv2_api"]["Matcher"] == {"HttpCode": "200"}


def test_a_real_change_restarts_the_service_once(host):
    # standalone.yml runs only health_checker (no node role in the play) with explicit settings.
    pid = main_pid(host)
    counters = recap(run_playbook("standalone.yml", "-e", "health_checker_max_lag_blocks=3").stdout)
    assert counters["hc-ltc"]["changed"] > 0
    assert json.loads(host.file(CONFIG).content_string)["max_lag_blocks"] == 3
    assert main_pid(host) != pid, "config changed but the service was not restarted"
    result = wait_for_status(host, 200, 10 * POLL_INTERVAL)
    assert result["elapsed"] is not None and result["body"]["config"]["max_lag_blocks"] == 3


def test_rpc_password_never_appears_in_verbose_output(host):
    # This run also undoes the change above: output with changes and diffs is the one that could leak.
    password = rpc_password(host)
    pid = main_pid(host)
    result = run_playbook("converge.yml", "-vvv", "--diff")
    assert recap(result.stdout)["hc-ltc"]["changed"] > 0
    assert password not in result.stdout and password not in result.stderr
    assert json.loads(host.file(CONFIG).content_string)["max_lag_blocks"] == 2
    assert main_pid(host) != pid
    journal = host.check_output("journalctl -u %s --no-pager -o cat", UNIT)
    assert password not in journal


def test_check_mode_on_a_converged_host_changes_nothing():
    counters = recap(run_playbook("converge.yml", "--check").stdout)
    assert counters["hc-ltc"]["changed"] == 0 and counters["hc-ltc"]["failed"] == 0, counters


def test_without_the_node_role_explicit_settings_give_the_same_service(host):
    # The values the profile gave, spelled out: nothing to change, so no restart either.
    pid = main_pid(host)
    counters = recap(run_playbook("standalone.yml").stdout)
    assert counters["hc-ltc"]["changed"] == 0, counters
    assert main_pid(host) == pid, "restarted without a change"
    assert host.service(UNIT).is_running
