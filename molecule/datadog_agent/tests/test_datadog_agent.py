"""datadog_agent role: install from a local signed apt repo, config, checks proven with Datadog's check code."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from chainops_testlib import podman_hosts, recap, run_playbook, unit_properties

testinfra_hosts = podman_hosts("dd-node")

API_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
KEYRING = "/usr/share/keyrings/datadog-archive-keyring.asc"
REPO_LINE = "deb [signed-by=%s] http://dd-repo:8080/ stable 7" % KEYRING
CONF_D = "/etc/datadog-agent/conf.d"
CHECK_TAGS = ["chain:litecoin", "network:regtest", "role:validator"]
HOST_TAGS = CHECK_TAGS + ["cluster:c1", "availability-zone:eu-west-1a", "region:eu-west-1", "team:validators", "costcenter:chain-ops"]
LTC_CLI = "litecoin-cli -conf=/etc/chainops/litecoind/rpc.conf -datadir=/data/litecoind -chain=regtest -rpcport=19443"
CHECKS_VENV = Path(os.environ.get("CHAINOPS_CACHE", Path(__file__).resolve().parents[3] / ".cache")) / "datadog-checks-venv"
RUNNER = Path(__file__).resolve().parents[1] / "files" / "run_openmetrics_check.py"


def check_file(host, check):
    return yaml.safe_load(host.file("%s/%s.d/chainops.yaml" % (CONF_D, check)).content_string)


def agent_invocation(host):
    return unit_properties(host, "datadog-agent", "InvocationID", "ActiveEnterTimestamp", "MainPID")


def test_keyring_and_signed_by_repository_line(host):
    keyring = host.file(KEYRING)
    assert keyring.user == "root" and keyring.mode == 0o644
    assert keyring.content_string.count("-----BEGIN PGP PUBLIC KEY BLOCK-----") == 2
    assert host.file("/etc/apt/sources.list.d/datadog.list").content_string == REPO_LINE + "\n"
    # Trusted only through signed-by: nothing of ours in the global trust stores.
    assert not host.file("/etc/apt/trusted.gpg.d/datadog-archive-keyring.gpg").exists
    update = host.run("apt-get update -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/datadog.list -o Dir::Etc::sourceparts=-")
    assert update.rc == 0 and "NO_PUBKEY" not in update.stdout + update.stderr, update.stdout + update.stderr
    assert "W:" not in update.stderr and "E:" not in update.stderr, update.stderr


def test_repository_signature_is_really_checked(host):
    # The same repository with a keyring holding only the previous (non-signing) key must be refused.
    host.check_output("awk '/BEGIN PGP/{n++} n==1' %s > /tmp/only-previous.asc", KEYRING)
    host.check_output("echo 'deb [signed-by=/tmp/only-previous.asc] http://dd-repo:8080/ stable 7' > /tmp/wrongkey.list")
    host.check_output("mkdir -p /tmp/wrongkey-lists/partial")
    update = host.run("apt-get update -o Dir::Etc::sourcelist=/tmp/wrongkey.list -o Dir::Etc::sourceparts=- "
                      "-o Dir::State::Lists=/tmp/wrongkey-lists")
    output = update.stdout + update.stderr
    assert "NO_PUBKEY" in output or "not signed" in output, output


def test_version_pinned_below_the_newest(host):
    preferences = host.file("/etc/apt/preferences.d/datadog-agent").content_string
    assert "Package: datadog-agent\nPin: version 1:7.60.0-1\nPin-Priority: 1001\n" in preferences
    policy = host.check_output("apt-cache policy datadog-agent")
    assert "Installed: 1:7.60.0-1" in policy and "Candidate: 1:7.60.0-1" in policy, policy
    assert "1:7.61.0-1" in policy, "the newer version must be available, else the pin proves nothing:\n" + policy
    assert host.package("datadog-agent").version == "1:7.60.0-1"
    assert host.check_output("/opt/datadog-agent/bin/agent/agent version").startswith("Agent 7.60.0")


def test_service_running_and_enabled(host):
    service = host.service("datadog-agent")
    assert service.is_running and service.is_enabled
    assert host.check_output("journalctl -u datadog-agent --no-pager -o cat | tail -n1") == "fake agent 7.60.0 running"


def test_datadog_yaml(host):
    config_file = host.file("/etc/datadog-agent/datadog.yaml")
    assert (config_file.user, config_file.group, config_file.mode) == ("root", "dd-agent", 0o640)
    config = yaml.safe_load(config_file.content_string)
    assert config["api_key"] == API_KEY
    assert config["site"] == "datadoghq.eu"
    assert config["hostname"] == "dd-node"
    assert config["logs_enabled"] is True
    assert sorted(config["tags"]) == sorted(HOST_TAGS)


def test_check_files_are_ours_and_explicit(host):
    for check in ("openmetrics", "http_check", "process", "journald", "systemd"):
        check_conf = host.file("%s/%s.d/chainops.yaml" % (CONF_D, check))
        assert (check_conf.user, check_conf.group, check_conf.mode) == ("root", "dd-agent", 0o640), check
    openmetrics = check_file(host, "openmetrics")
    # litecoind has no native metrics endpoint: only the health checker is scraped.
    assert [i["openmetrics_endpoint"] for i in openmetrics["instances"]] == ["http://127.0.0.1:9680/metrics"]
    instance = openmetrics["instances"][0]
    assert instance["namespace"] == "chainops.health"
    names = [next(iter(m)) if isinstance(m, dict) else m for m in instance["metrics"]]
    assert "chainops_health_up" in names and not any(set(n) & set("*.^$[]") for n in names), names
    assert sorted(instance["tags"]) == sorted(CHECK_TAGS + ["chainops_check:health_checker"])

    http_check = check_file(host, "http_check")["instances"]
    assert [(i["url"], i["http_response_status_code"]) for i in http_check] == [("http://127.0.0.1:9680/health", "200")]
    process = check_file(host, "process")["instances"]
    assert [(i["name"], i["search_string"]) for i in process] == [("litecoind", ["/usr/lib/litecoin/litecoind"])]
    # The search string matches the running node's command line (what the process check looks at).
    assert host.run("pgrep -f /usr/lib/litecoin/litecoind").rc == 0
    journald = check_file(host, "journald")["logs"]
    assert [(i["type"], i["include_units"]) for i in journald] == [("journald", ["litecoind.service"])]
    assert check_file(host, "systemd")["instances"][0]["unit_names"] == ["litecoind.service"]


def test_dd_agent_reads_the_node_journal(host):
    assert "systemd-journal" in host.user("dd-agent").groups
    # What the Agent's journald tailer needs: dd-agent can read the node unit's entries.
    lines = host.check_output("runuser -u dd-agent -- journalctl -u litecoind.service -n 3 --no-pager -q -o cat")
    assert lines.strip(), "dd-agent reads no journal entries of litecoind"
    # The running Agent has the group too (it was restarted after the group change).
    gid = host.group("systemd-journal").gid
    pid = agent_invocation(host)["MainPID"]
    groups = host.check_output("awk '/^Groups:/' /proc/%s/status", pid).split()[1:]
    assert str(gid) in groups, groups


def test_health_endpoint_answers_for_http_check(host):
    status = host.check_output("python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:9680/health\").status)'")
    assert status == "200"


def test_openmetrics_config_proven_with_datadog_check_code(host):
    """Datadog's OpenMetrics V2 check, fed the rendered file, scrapes the live endpoint in the host."""
    rendered = host.file("%s/openmetrics.d/chainops.yaml" % CONF_D).content_string
    blocks = json.loads(host.check_output(LTC_CLI + " getblockchaininfo"))["blocks"]
    pid = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", "dd-node"], capture_output=True, text=True, check=True).stdout.strip()
    # Same network namespace as the Agent would have: 127.0.0.1 in the config is the host's loopback.
    run = subprocess.run(["nsenter", "-t", pid, "-n", str(CHECKS_VENV / "bin" / "python"), str(RUNNER)],
                         input=rendered, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    [result] = json.loads(run.stdout)
    assert result["error"] is None, result["error"]
    endpoint_tag = "endpoint:http://127.0.0.1:9680/metrics"
    expected_tags = sorted(CHECK_TAGS + ["chainops_check:health_checker", endpoint_tag])
    by_name = {}
    for metric in result["metrics"]:
        by_name.setdefault(metric["name"], []).append(metric)
        assert set(expected_tags) <= set(metric["tags"]), metric

    def value(name, **labels):
        wanted = {"%s:%s" % item for item in labels.items()}
        [metric] = [m for m in by_name[name] if wanted <= set(m["tags"])]
        return metric

    assert value("chainops.health.up")["value"] == 1.0 and value("chainops.health.up")["type"] == "gauge"
    assert value("chainops.health.healthy")["value"] == 1.0
    assert value("chainops.health.height")["value"] == float(blocks)
    assert value("chainops.health.peers")["value"] == 0.0
    assert value("chainops.health.syncing")["value"] == 0.0
    assert value("chainops.health.check_ok", check="node_answers")["value"] == 1.0
    polls = value("chainops.health.polls.count")
    assert polls["type"] == "monotonic_count" and polls["value"] > 0
    info = value("chainops.health.info", adapter="bitcoin")
    assert any(tag.startswith("checker_version:") for tag in info["tags"]), info
    # Only the listed metrics arrive, all under the namespace.
    assert all(name.startswith("chainops.health.") for name in by_name), sorted(by_name)
    assert [(s["name"], s["status"]) for s in result["service_checks"]] == [("chainops.health.openmetrics.health", 0)]


def test_second_converge_at_vvv_changes_nothing_restarts_nothing_and_never_prints_the_key(host):
    before = agent_invocation(host)
    result = run_playbook("converge.yml", "-vvv", "--diff")
    assert recap(result.stdout)["dd-node"]["changed"] == 0, result.stdout[-3000:]
    assert "RUNNING HANDLER" not in result.stdout
    assert agent_invocation(host) == before
    assert API_KEY not in result.stdout and API_KEY not in result.stderr


def test_check_mode_on_converged_host_changes_nothing():
    counters = recap(run_playbook("converge.yml", "--check").stdout)
    assert counters["dd-node"] == {"changed": 0, "unreachable": 0, "failed": 0}, counters


def test_config_change_restarts_the_agent_once(host):
    before = agent_invocation(host)
    changed = run_playbook("converge.yml", "-e", '{"datadog_agent_tags": ["team:validators", "costcenter:chain-ops", "extra:1"]}')
    assert recap(changed.stdout)["dd-node"]["changed"] >= 1
    after = agent_invocation(host)
    assert after["InvocationID"] != before["InvocationID"]
    assert "extra:1" in yaml.safe_load(host.file("/etc/datadog-agent/datadog.yaml").content_string)["tags"]
    restored = run_playbook("converge.yml")
    assert recap(restored.stdout)["dd-node"]["changed"] >= 1
    assert "extra:1" not in yaml.safe_load(host.file("/etc/datadog-agent/datadog.yaml").content_string)["tags"]
    assert host.service("datadog-agent").is_running


def test_waku_metric_lists_match_what_each_client_serves():
    """The role's nwaku and go-waku lists, run through Datadog's own check against each client's exposition
    format (files/waku-metrics, written from the clients' sources): every listed metric arrives, counters
    as monotonic counts. nwaku types a counter under its plain name but serves <name>_total, so a plain
    name in its list would silently submit nothing."""
    defaults = yaml.safe_load((Path(__file__).resolve().parents[3] / "roles/datadog_agent/vars/main.yml").read_text())
    lists = defaults["__datadog_agent_node_openmetrics_defaults"]
    fixtures = Path(__file__).resolve().parents[1] / "files" / "waku-metrics"
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "--directory", str(fixtures)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(server.stdout.readline().split(" port ")[1].split(" ")[0])
        for client in ("nwaku", "gowaku"):
            spec = lists[client]
            instance = {"openmetrics_endpoint": "http://127.0.0.1:%d/%s.prom" % (port, client), "namespace": spec["namespace"],
                        "metrics": spec["metrics"]}
            run = subprocess.run([str(CHECKS_VENV / "bin" / "python"), str(RUNNER)], input=json.dumps({"instances": [instance]}),
                                 capture_output=True, text=True, timeout=120, check=False)
            assert run.returncode == 0, run.stderr
            [result] = json.loads(run.stdout)
            assert result["error"] is None, result["error"]
            submitted = {(m["name"], m["type"]) for m in result["metrics"]}
            for entry in spec["metrics"]:
                [(raw, target)] = entry.items()
                name = target["name"] if isinstance(target, dict) else target
                fixture = (fixtures / ("%s.prom" % client)).read_text()
                counter = "# TYPE %s counter" % raw.removesuffix("_total") in fixture
                wanted = ("%s.%s.count" % (spec["namespace"], name), "monotonic_count") if counter else \
                    ("%s.%s" % (spec["namespace"], name), "gauge")
                assert wanted in submitted, (client, raw, sorted(submitted))
            assert len(submitted) == len(spec["metrics"]), (client, sorted(submitted))
    finally:
        server.terminate()
        server.wait(timeout=10)
