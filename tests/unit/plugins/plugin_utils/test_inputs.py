"""plugin_utils/inputs.py and role_inputs.py: every class of bad input named with its variable, and the
valid edge inputs (IPv6 admin networks, names at their limits) accepted."""
from __future__ import annotations

import pytest
from ansible_collections.chainops.validator.plugins.plugin_utils.inputs import Problems, systemd_quote
from ansible_collections.chainops.validator.plugins.plugin_utils.role_inputs import (
    datadog_agent_problems,
    failover_problems,
    health_checker_problems,
    node_problems,
    snapshot_problems,
    snapshot_restore_problems,
    wireguard_sentry_problems,
)

NODE = {
    "node_profile": "litecoind", "node_name": "litecoind", "node_user": "litecoind", "node_group": "litecoind",
    "node_data_dir": "/var/lib/litecoind", "node_config_dir": "/etc/chainops/litecoind", "node_install_dir": "/opt/chainops/litecoind",
    "node_data_mount": "", "node_version": "", "node_extra_args": [], "node_ports": {}, "node_peers": [], "node_private_peers": [],
    "node_p2p_advertise_address": "10.0.0.1", "node_secrets": {}, "node_config": {}, "node_install_url": "",
    "node_limit_nofile": 65536, "node_wait_timeout": 120, "node_data_device_timeout": 120,
}
HEALTH = {
    "health_checker_service_name": "chainops-health", "health_checker_user": "chainops-health", "health_checker_group": "chainops-health",
    "health_checker_install_dir": "/usr/local/lib/chainops-health", "health_checker_config_dir": "/etc/chainops/health",
    "health_checker_listen_host": "0.0.0.0", "health_checker_after_units": [], "health_checker_node_password_file": "",
    "health_checker_references": [], "health_checker_reference_defaults": {}, "health_checker_node_url": "",
    "health_checker_wait_timeout": 30,
}
WIREGUARD = {
    "wireguard_sentry_interface": "wg0", "wireguard_sentry_port": 51820, "wireguard_sentry_mtu": 1420,
    "wireguard_sentry_keepalive": 25, "wireguard_sentry_min_sentries": 2, "wireguard_sentry_overlay_prefix": 24,
    "wireguard_sentry_overlay_pool": "10.99.0.0/16", "wireguard_sentry_cluster_cidrs": {}, "wireguard_sentry_endpoint_address": "",
    "wireguard_sentry_admin_cidrs": ["192.0.2.0/24"], "wireguard_sentry_ssh_port": 22,
    "wireguard_sentry_p2p_ports": [{"port": 19444, "protocol": "tcp"}], "wireguard_sentry_overlay_ports": [],
    "wireguard_sentry_public_ports": [],
}
DATADOG = {
    "datadog_agent_site": "datadoghq.com", "datadog_agent_apt_repo_url": "https://apt.datadoghq.com/",
    "datadog_agent_apt_key_urls": ["https://keys.datadoghq.com/DATADOG_APT_KEY_CURRENT.public"], "datadog_agent_apt_dist": "stable",
    "datadog_agent_major_version": 7, "datadog_agent_version": "", "datadog_agent_apt_keyring": "/usr/share/keyrings/datadog.asc",
    "datadog_agent_hostname": "", "datadog_agent_tags": ["team:validators"], "datadog_agent_topology_tags": True,
    "datadog_agent_config": {}, "datadog_agent_checks": {}, "datadog_agent_check_tags": ["chain:litecoin"],
    "datadog_agent_user": "dd-agent", "datadog_agent_group": "dd-agent", "datadog_agent_additional_groups": [],
    "datadog_agent_config_dir": "/etc/datadog-agent", "datadog_agent_service": "datadog-agent", "datadog_agent_health_checker": True,
    "datadog_agent_health_checker_url": "http://127.0.0.1:9680", "datadog_agent_systemd_units": ["litecoind.service"],
}
RESTORE = {
    "snapshot_restore_source": "ebs", "snapshot_restore_manifest_url": "", "snapshot_restore_presign_expiry": 3600,
    "snapshot_restore_download_timeout": 60, "snapshot_restore_connections": 8, "snapshot_restore_ebs_initialize_iodepth": 32,
    "snapshot_restore_wait_timeout": 600, "snapshot_restore_packages": ["tar", "zstd"],
    "snapshot_restore_ebs_instance_id": "i-0123456789abcdef0", "snapshot_restore_ebs_availability_zone": "us-east-1a",
    "snapshot_restore_ebs_device_name": "/dev/sdg", "snapshot_restore_ebs_keep_dir": "/var/lib/chainops/snapshot-restore/keep",
    "snapshot_restore_ebs_tags": {}, "snapshot_restore_ebs_device_timeout": 120, "snapshot_restore_ebs_volume_type": "gp3",
    "snapshot_restore_ebs_volume_size": 0, "snapshot_restore_ebs_iops": 3000, "snapshot_restore_ebs_throughput": 125,
    "snapshot_restore_ebs_initialization_rate": 0,
}


def with_(base, **changes):
    return dict(base, **changes)


def test_defaults_pass():
    assert node_problems(NODE) == []
    assert health_checker_problems(HEALTH) == []
    assert wireguard_sentry_problems(WIREGUARD, ["v", "s-1"], ["c1"]) == []
    assert datadog_agent_problems(DATADOG) == []
    assert snapshot_restore_problems(RESTORE) == []


@pytest.mark.parametrize("changes, expected", [
    # names that become paths
    ({"node_secrets": {"../../etc/cron.d/x": "k"}}, "node_secrets['../../etc/cron.d/x']: '../../etc/cron.d/x' is not valid: a relative name must stay inside"),
    ({"node_secrets": {"/etc/shadow": "k"}}, "node_secrets['/etc/shadow']: '/etc/shadow' is not valid: an absolute secret path must be inside node_data_dir"),
    ({"node_name": "../../../tmp/x"}, "node_name: '../../../tmp/x' is not valid: a service name is"),
    ({"node_config_dir": "/etc"}, "node_config_dir: '/etc' is not valid: is a system directory"),
    ({"node_data_dir": "/var/lib/../lib/x"}, "node_data_dir: '/var/lib/../lib/x' is not valid: must be a normalised path"),
    ({"node_install_dir": "opt/x"}, "node_install_dir: 'opt/x' is not valid: must be an absolute path"),
    ({"node_profile": "../../tmp/evil"}, "node_profile: '../../tmp/evil' is not valid: a profile name is"),
    ({"node_version": "../../../usr/local/bin"}, "node_version: '../../../usr/local/bin' is not valid: a version is"),
    # values that reach unit and config lines
    ({"node_extra_args": ["--x\nExecStartPre=+/bin/sh -c id"]}, "node_extra_args[0]: '--x\\nExecStartPre=+/bin/sh -c id' is not valid: must be one line"),
    ({"node_ports": {"rpc": {"bind": "127.0.0.1\nrpcallowip=0.0.0.0/0"}}}, "node_ports.rpc.bind:"),
    ({"node_ports": {"rpc": {"bind": "localhost"}}}, "node_ports.rpc.bind: 'localhost' is not valid: must be an IP address"),
    ({"node_peers": [{"address": "1.2.3.4\nrpcallowip=0.0.0.0/0", "port": 9333}]}, "node_peers[0].address:"),
    ({"node_config": {"settings": {"maxconnections": "8\nrpcbind=0.0.0.0"}}}, "node_config.settings.maxconnections:"),
    # accounts
    ({"node_user": "Bad User"}, "node_user: 'Bad User' is not valid: a user or group name is"),
    # secret contents: the type is named, the value never shown
    ({"node_secrets": {"node.key": {"private": "zzz-secret"}}},
     "node_secrets['node.key']: the content must be a non-empty string (the file's text), got a mapping"),
    # peers that are not in the inventory, bad ports
    ({"node_peers": ["sentry-9"]}, "node_peers[0]: 'sentry-9' is not valid: is not a host of the inventory"),
    ({"node_private_peers": [{"address": "10.0.0.2", "port": 99999}]}, "node_private_peers[0].port: 99999 is not valid: must be an integer from 1 to 65535"),
    ({"node_wait_timeout": -1}, "node_wait_timeout: -1 is not valid"),
])
def test_node_problems_name_the_variable(changes, expected):
    found = node_problems(with_(NODE, **changes), ["sentry-1"])
    assert any(problem.startswith(expected) for problem in found), found


def test_node_secret_contents_are_never_shown():
    found = node_problems(with_(NODE, node_secrets={"a.key": {"private": "zzz-secret"}, "b.key": 12345678}))
    assert len(found) == 2 and not any("zzz-secret" in p or "12345678" in p for p in found), found


def test_all_node_problems_at_once():
    found = node_problems(with_(NODE, node_user="root user", node_config_dir="/etc", node_extra_args=["a\nb"]))
    assert [p.split(":")[0] for p in found] == ["node_user", "node_config_dir", "node_extra_args[0]"]


def test_node_valid_edges():
    assert node_problems(with_(
        NODE, node_user="a" * 32, node_name="a" * 100, node_version="1:0.21.2.1-1+b1~bpo12",
        node_ports={"p2p": {"bind": "::"}, "rpc": {"bind": "::1"}},
        node_peers=["sentry-1", {"address": "2001:db8::1", "port": 30303, "id": "abc"}],
        node_secrets={"config/node_key.json": "k", "/etc/chainops/litecoind/rpc.conf": "rpcuser=x"},
        node_extra_args=["--name", "with space", "100%", "$HOME"], node_data_mount="/data"), ["sentry-1"]) == []
    assert node_problems(with_(NODE, node_user="a" * 33))  # over the limit


@pytest.mark.parametrize("changes, expected", [
    ({"health_checker_user": "root"}, None),  # a valid name: the login-account check is on the host
    ({"health_checker_service_name": "../../../tmp/x"}, "health_checker_service_name: '../../../tmp/x' is not valid"),
    ({"health_checker_config_dir": "/etc"}, "health_checker_config_dir: '/etc' is not valid: is a system directory"),
    ({"health_checker_node_password_file": "/x\nExecStartPre=+/bin/sh"}, "health_checker_node_password_file:"),
    ({"health_checker_after_units": ["litecoind.service\nExecStartPre=/bin/sh"]}, "health_checker_after_units[0]:"),
    ({"health_checker_listen_host": "10.0.0.999"}, "health_checker_listen_host: '10.0.0.999' is not valid: must be an IP address"),
    ({"health_checker_listen_host": "[::]"},
     "health_checker_listen_host: '[::]' is not valid: must be an IP address (IPv4 or IPv6, without brackets)"),
    ({"health_checker_node_url": "http://user:secret@127.0.0.1:8545"},
     "health_checker_node_url: 'http://user:secret@127.0.0.1:8545' is not valid: must not carry credentials"),
])
def test_health_checker_problems(changes, expected):
    found = health_checker_problems(with_(HEALTH, **changes))
    if expected is None:
        assert found == []
    else:
        assert any(problem.startswith(expected) for problem in found), found


@pytest.mark.parametrize("changes, expected", [
    ({"wireguard_sentry_admin_cidrs": ["203.0.113.0/33"]}, "wireguard_sentry_admin_cidrs[0]: '203.0.113.0/33' is not valid: must be a network"),
    ({"wireguard_sentry_admin_cidrs": "203.0.113.0/24"}, "wireguard_sentry_admin_cidrs: '203.0.113.0/24' is not valid: must be a list"),
    ({"wireguard_sentry_admin_cidrs": ["0.0.0.0/0"]}, "wireguard_sentry_admin_cidrs[0]: '0.0.0.0/0' is not valid: is too wide"),
    ({"wireguard_sentry_port": 70000}, "wireguard_sentry_port: 70000 is not valid: must be an integer from 1 to 65535"),
    ({"wireguard_sentry_ssh_port": 0}, "wireguard_sentry_ssh_port: 0 is not valid"),
    ({"wireguard_sentry_p2p_ports": [{"port": 70000}]}, "wireguard_sentry_p2p_ports[0].port: 70000 is not valid"),
    ({"wireguard_sentry_p2p_ports": [{"port": 19444, "protocol": "TCP"}]}, "wireguard_sentry_p2p_ports[0].protocol: 'TCP' is not valid"),
    ({"wireguard_sentry_p2p_ports": [{"proto": "udp", "port": 1}]},
     "wireguard_sentry_p2p_ports[0]: {'proto': 'udp', 'port': 1} is not valid: unknown key(s) proto"),
    ({"wireguard_sentry_p2p_ports": [{"port": 22}]}, "wireguard_sentry_p2p_ports[0]: {'port': 22} is not valid: is the SSH port"),
    ({"wireguard_sentry_public_ports": [{"port": 51820, "protocol": "udp"}]},
     "wireguard_sentry_public_ports[0]: {'port': 51820, 'protocol': 'udp'} is not valid: is the WireGuard port"),
    ({"wireguard_sentry_interface": "wg-validator-overlay"}, "wireguard_sentry_interface: 'wg-validator-overlay' is not valid: an interface name is 1-15"),
    ({"wireguard_sentry_overlay_pool": "fd00::/64"}, "wireguard_sentry_overlay_pool: 'fd00::/64' is not valid: must be an IPv4 network"),
    ({"wireguard_sentry_cluster_cidrs": {"c2": "10.1.0.0/24"}}, "wireguard_sentry_cluster_cidrs: 'c2' is not valid: names no cluster of the inventory"),
    ({"wireguard_sentry_endpoint_address": "sentry.example.com"},
     "wireguard_sentry_endpoint_address: 'sentry.example.com' is not valid: must be an IP address"),
    ({"wireguard_sentry_min_sentries": 0}, "wireguard_sentry_min_sentries: 0 is not valid"),
])
def test_wireguard_problems(changes, expected):
    found = wireguard_sentry_problems(with_(WIREGUARD, **changes), ["v", "s-1"], ["c1"])
    assert any(problem.startswith(expected) for problem in found), found


def test_wireguard_valid_edges_and_member_names():
    # IPv6 admin networks alone or mixed; an IPv6 endpoint; a /30 cluster.
    assert wireguard_sentry_problems(with_(WIREGUARD, wireguard_sentry_admin_cidrs=["2001:db8::/32"],
                                           wireguard_sentry_endpoint_address="2001:db8::10",
                                           wireguard_sentry_cluster_cidrs={"c1": "10.1.0.0/30"}), ["v"], ["c1"]) == []
    assert wireguard_sentry_problems(with_(WIREGUARD, wireguard_sentry_admin_cidrs=["2001:db8::/32", "203.0.113.0/24"]), [], []) == []
    found = wireguard_sentry_problems(WIREGUARD, ["sentry 1/../x"], [])
    assert found == ["inventory hostname: 'sentry 1/../x' is not valid: a cluster member's name names its key files: "
                     "letters, digits, '_', '.' and '-'"]


@pytest.mark.parametrize("changes, expected", [
    ({"datadog_agent_site": "datadoghq.con"}, "datadog_agent_site: 'datadoghq.con' is not valid: one of Datadog's sites"),
    ({"datadog_agent_site": "https://datadoghq.com"}, "datadog_agent_site: 'https://datadoghq.com' is not valid"),
    ({"datadog_agent_apt_repo_url": "apt.datadoghq.com"}, "datadog_agent_apt_repo_url: 'apt.datadoghq.com' is not valid: must be a URL"),
    ({"datadog_agent_apt_repo_url": "https://apt.datadoghq.com/ stable 7\ndeb http://evil/ x y"}, "datadog_agent_apt_repo_url:"),
    ({"datadog_agent_version": "7.60.0"}, "datadog_agent_version: '7.60.0' is not valid: an exact package version such as 7.60.0-1"),
    ({"datadog_agent_version": "6.50.0-1"}, "datadog_agent_version: '6.50.0-1' is not valid: is not of datadog_agent_major_version 7"),
    ({"datadog_agent_checks": {"http_check": {"instances": []}}},
     "datadog_agent_checks['http_check']: 'http_check' is not valid: the role writes its own http_check check"),
    ({"datadog_agent_checks": {"postgres": "yes"}}, "datadog_agent_checks['postgres']: '<not shown>' is not valid: must be a mapping"),
    ({"datadog_agent_tags": ["host:other"]}, "datadog_agent_tags[0]: 'host:other' is not valid: 'host' is a tag key Datadog reserves"),
    ({"datadog_agent_tags": ["role:sentry"]}, "datadog_agent_tags[0]: 'role:sentry' is not valid: 'role' is set by the role from the topology"),
    ({"datadog_agent_tags": "env:prod"}, "datadog_agent_tags: 'env:prod' is not valid: must be a list"),
    ({"datadog_agent_tags": ["no value"]}, "datadog_agent_tags[0]: 'no value' is not valid: a tag is \"key:value\""),
    ({"datadog_agent_config": {"api_key": "x" * 32}}, "datadog_agent_config.api_key: '<not shown>' is not valid: set it with datadog_agent_api_key"),
    ({"datadog_agent_config": {"site": "datadoghq.eu"}}, "datadog_agent_config.site: '<not shown>' is not valid: set it with datadog_agent_site"),
    ({"datadog_agent_additional_groups": ["Systemd Journal"]}, "datadog_agent_additional_groups[0]: 'Systemd Journal' is not valid"),
])
def test_datadog_problems(changes, expected):
    found = datadog_agent_problems(with_(DATADOG, **changes))
    assert any(problem.startswith(expected) for problem in found), found


def test_datadog_valid_edges():
    assert datadog_agent_problems(with_(DATADOG, datadog_agent_site="ap2.datadoghq.com", datadog_agent_version="1:7.60.0-1",
                                        datadog_agent_tags=["env:prod", "team:a/b"], datadog_agent_topology_tags=True,
                                        datadog_agent_checks={"postgres": {"instances": []}, "redisdb": None})) == []
    # Without the topology tags, the user may give role: and chain: tags.
    assert datadog_agent_problems(with_(DATADOG, datadog_agent_topology_tags=False, datadog_agent_tags=["role:sentry"])) == []


@pytest.mark.parametrize("changes, expected", [
    ({"snapshot_restore_ebs_keep_dir": "/etc"}, "snapshot_restore_ebs_keep_dir: '/etc' is not valid: is a system directory"),
    ({"snapshot_restore_ebs_device_name": "/dev/sdf"}, "snapshot_restore_ebs_device_name: '/dev/sdf' is not valid: a free device name"),
    ({"snapshot_restore_ebs_instance_id": "web-1"}, "snapshot_restore_ebs_instance_id: 'web-1' is not valid"),
    ({"snapshot_restore_presign_expiry": 0}, "snapshot_restore_presign_expiry: 0 is not valid"),
    ({"snapshot_restore_connections": 65}, "snapshot_restore_connections: 65 is not valid"),
    ({"snapshot_restore_connections": -1}, "snapshot_restore_connections: -1 is not valid"),
    ({"snapshot_restore_ebs_initialize_iodepth": 0}, "snapshot_restore_ebs_initialize_iodepth: 0 is not valid"),
    ({"snapshot_restore_ebs_tags": {"chainops:restored-for": "x"}}, "snapshot_restore_ebs_tags: 'chainops:restored-for' is not valid"),
    # AWS's current EBS limits: gp3 2,000 MiB/s needs 8,000 IOPS; 80,000 IOPS; initialization 100-300 MiB/s.
    ({"snapshot_restore_ebs_throughput": 2001, "snapshot_restore_ebs_iops": 80000},
     "snapshot_restore_ebs_throughput: 2001 is not valid: for gp3 must be from 125 to 2000 MiB/s"),
    ({"snapshot_restore_ebs_throughput": 2000}, "snapshot_restore_ebs_throughput: 2000 is not valid: 2000 MiB/s needs at least 8000 IOPS"),
    ({"snapshot_restore_ebs_iops": 90000}, "snapshot_restore_ebs_iops: 90000 is not valid: for gp3 must be from 3000 to 80000 IOPS"),
    ({"snapshot_restore_ebs_iops": 16000, "snapshot_restore_ebs_volume_size": 20},
     "snapshot_restore_ebs_iops: 16000 is not valid: 16000 for a 20 GiB gp3 volume exceeds 500 per GiB (at most 10000)"),
    ({"snapshot_restore_ebs_initialization_rate": 50}, "snapshot_restore_ebs_initialization_rate: 50 is not valid: for gp3 must be from 100 to 300"),
    ({"snapshot_restore_ebs_volume_size": 70000}, "snapshot_restore_ebs_volume_size: 70000 is not valid: for gp3 must be from 1 to 65536 GiB"),
    ({"snapshot_restore_ebs_iops": "many"}, "snapshot_restore_ebs_iops: 'many' is not valid: must be an integer"),
])
def test_snapshot_restore_problems(changes, expected):
    found = snapshot_restore_problems(with_(RESTORE, **changes))
    assert any(problem.startswith(expected) for problem in found), found


def test_snapshot_restore_takes_the_current_gp3_maximum():
    assert snapshot_restore_problems(with_(RESTORE, snapshot_restore_ebs_iops=80000, snapshot_restore_ebs_throughput=2000,
                                           snapshot_restore_ebs_volume_size=65536, snapshot_restore_ebs_initialization_rate=300)) == []
    # io1 takes no throughput: the role does not send it, so it is not checked.
    assert snapshot_restore_problems(with_(RESTORE, snapshot_restore_ebs_volume_type="io1", snapshot_restore_ebs_iops=1000,
                                           snapshot_restore_ebs_throughput=125, snapshot_restore_ebs_volume_size=100)) == []


SNAPSHOT = {
    "snapshot_mode": "archive", "snapshot_s3_bucket": "ltc-snapshots", "snapshot_s3_prefix": "chainops/snapshots",
    "snapshot_s3_manifest_key": "chainops/snapshots/manifest.json", "snapshot_work_dir": "", "snapshot_aws_endpoint_url": "",
    "snapshot_block_height": "", "snapshot_zstd_level": 3, "snapshot_keep": 3, "snapshot_exclude": [".lock", "*.pid"],
    "snapshot_part_size": 67108864, "snapshot_upload_connections": 4, "snapshot_presign_expiry": 21600,
    "snapshot_ebs_volume_id": "", "snapshot_ebs_keep_last": 3, "snapshot_ebs_max_age": "", "snapshot_ebs_data_format": "",
    "snapshot_verify_rpc_port": 29443, "snapshot_verify_timeout": 300,
}


def test_snapshot_defaults_pass_for_archive_and_verify_and_ebs_needs_its_volume():
    assert snapshot_problems(SNAPSHOT) == []
    assert snapshot_problems(with_(SNAPSHOT, snapshot_mode="verify")) == []
    assert snapshot_problems(with_(SNAPSHOT, snapshot_mode="ebs")) == [
        "snapshot_ebs_volume_id: '' is not valid: must name the node's data volume (vol-...): ebs needs it"]
    # ebs needs no bucket, and the valid edges of each mode pass.
    assert snapshot_problems(with_(SNAPSHOT, snapshot_mode="ebs", snapshot_s3_bucket="", snapshot_ebs_volume_id="vol-0123456789abcdef0",
                                   snapshot_ebs_max_age="2w", snapshot_block_height=0, snapshot_aws_endpoint_url="http://10.0.0.1:5000")) == []
    assert snapshot_problems(with_(SNAPSHOT, snapshot_zstd_level=19, snapshot_part_size=5 * 1024 ** 2, snapshot_upload_connections=64,
                                   snapshot_work_dir="/data/.snapshots", snapshot_block_height="3000")) == []


@pytest.mark.parametrize("changes, expected", [
    ({"snapshot_s3_bucket": ""}, "snapshot_s3_bucket: '' is not valid: must name the S3 bucket of the archives (archive needs it)"),
    ({"snapshot_mode": "verify", "snapshot_s3_bucket": "My_Snapshots"}, "snapshot_s3_bucket: 'My_Snapshots' is not valid"),
    ({"snapshot_s3_manifest_key": "/manifest.json"}, "snapshot_s3_manifest_key: '/manifest.json' is not valid: an S3 key has no leading"),
    ({"snapshot_s3_prefix": "snaps/"}, "snapshot_s3_prefix: 'snaps/' is not valid: an S3 key has no leading or trailing '/'"),
    ({"snapshot_work_dir": "/var"}, "snapshot_work_dir: '/var' is not valid: is a system directory"),
    ({"snapshot_work_dir": "snaps"}, "snapshot_work_dir: 'snaps' is not valid: must be an absolute path"),
    ({"snapshot_zstd_level": 22}, "snapshot_zstd_level: 22 is not valid: must be an integer from 1 to 19"),
    ({"snapshot_keep": 0}, "snapshot_keep: 0 is not valid"),
    ({"snapshot_exclude": "*.log"}, "snapshot_exclude: '*.log' is not valid: must be a list of strings"),
    ({"snapshot_part_size": 1048576}, "snapshot_part_size: 1048576 is not valid: must be an integer from 5242880 to 5368709120"),
    ({"snapshot_upload_connections": 0}, "snapshot_upload_connections: 0 is not valid"),
    ({"snapshot_presign_expiry": 604801}, "snapshot_presign_expiry: 604801 is not valid"),
    ({"snapshot_block_height": "tip"}, "snapshot_block_height: 'tip' is not valid: must be an integer"),
    ({"snapshot_aws_endpoint_url": "localhost:5000"}, "snapshot_aws_endpoint_url: 'localhost:5000' is not valid: must be a URL"),
    ({"snapshot_mode": "ebs", "snapshot_ebs_volume_id": "data-1"}, "snapshot_ebs_volume_id: 'data-1' is not valid"),
    ({"snapshot_mode": "ebs", "snapshot_ebs_volume_id": "vol-0123456789abcdef0", "snapshot_ebs_max_age": "30 days"},
     "snapshot_ebs_max_age: '30 days' is not valid: a number with a unit"),
    ({"snapshot_mode": "ebs", "snapshot_ebs_volume_id": "vol-0123456789abcdef0", "snapshot_ebs_keep_last": 0}, "snapshot_ebs_keep_last: 0 is not valid"),
    ({"snapshot_mode": "verify", "snapshot_verify_rpc_port": 70000}, "snapshot_verify_rpc_port: 70000 is not valid"),
])
def test_snapshot_problems(changes, expected):
    found = snapshot_problems(with_(SNAPSHOT, **changes))
    assert any(problem.startswith(expected) for problem in found), found


HOSTS = {"v": {"role": "validator", "cluster": "c1"}, "st": {"role": "standby", "cluster": "c1"},
         "s1": {"role": "sentry", "cluster": "c1"}, "st2": {"role": "standby", "cluster": "c2"}}


B = "ltc-signer-leases"


@pytest.mark.parametrize("request_, expected", [
    ({"from": "v", "to": "st", "wait_seconds": 30, "lease_bucket": B}, []),
    ({"from": "s1", "to": "st", "wait_seconds": 30, "lease_bucket": B},
     ["chainops_failover_from: 's1' is not valid: is a sentry, not its cluster's validator: only the signer is failed over"]),
    ({"from": "v", "to": "s1", "wait_seconds": 30, "lease_bucket": B},
     ["chainops_failover_to: 's1' is not valid: is a sentry, not a standby: the signer moves only onto a standby of the same cluster"]),
    ({"from": "v", "to": "st2", "wait_seconds": 30, "lease_bucket": B},
     ["chainops_failover_to: 'st2' is not valid: is in cluster c2, chainops_failover_from v in cluster c1: both must be in one cluster"]),
    ({"from": "v", "to": "v", "wait_seconds": 30, "lease_bucket": B}, ["chainops_failover_to: 'v' is not valid: must differ from chainops_failover_from"]),
    ({"from": "v", "to": "st", "wait_seconds": "30s", "lease_bucket": B},
     ["chainops_failover_wait_seconds: '30s' is not valid: must be a whole number of seconds from 0 to 3600"]),
    ({"from": "", "to": "nowhere", "wait_seconds": 30, "lease_bucket": B},
     ["chainops_failover_from: '' is not valid: must not be empty", "chainops_failover_to: 'nowhere' is not valid: is not a host of the inventory"]),
    ({"from": "v", "to": "st", "wait_seconds": 30, "lease_bucket": B, "unfenced": "v"}, []),
    ({"from": "v", "to": "st", "wait_seconds": 30, "lease_bucket": B, "unfenced": "st"},
     ["chainops_failover_unfenced: 'st' is not valid: must name the old signer (v) itself: it is the operator's word that this "
      "host is down, so its fence may be skipped"]),
    ({"from": "v", "to": "st", "wait_seconds": 30, "lease_bucket": B, "run": "20261203T061500Z-k3x9q2"}, []),
    ({"from": "v", "to": "st", "wait_seconds": 30, "lease_bucket": B, "run": "a/b"},
     ["chainops_failover_run: 'a/b' is not valid: must be the id of a failover run (letters, digits and ._:-, at most 64), as a "
      "refused failover names it"]),
    ({"from": "v", "to": "st", "wait_seconds": 30, "lease_bucket": ""},
     ["signer_lease_bucket: '' is not valid: must name the S3 bucket of the signer leases (set for st): the new signer starts "
      "only with its cluster's lease"]),
    ({"from": "v", "to": "st", "wait_seconds": 30, "lease_bucket": "Not_A_Bucket"},
     ["signer_lease_bucket: 'Not_A_Bucket' is not valid: must name the S3 bucket of the signer leases (set for st): the new "
      "signer starts only with its cluster's lease"]),
])
def test_failover_problems(request_, expected):
    assert failover_problems(request_, HOSTS) == expected


def test_systemd_quote_keeps_each_argument_literal():
    assert systemd_quote("--listen") == "--listen"
    assert systemd_quote("with space") == '"with space"'
    assert systemd_quote("100%") == '"100%%"'
    assert systemd_quote("$HOME") == '"$$HOME"'
    assert systemd_quote('say "hi"') == '"say \\"hi\\""'
    assert systemd_quote(";") == '";"'
    with pytest.raises(ValueError):
        systemd_quote("a\nb")


def test_problems_collects_in_order():
    p = Problems()
    p.port("a", 0)
    p.cidr("b", "10.0.0.0/8")
    p.ip_address("c", "::1", version=4)
    assert p.items == ["a: 0 is not valid: must be an integer from 1 to 65535", "c: '::1' is not valid: must be an IPv4 address"]


@pytest.mark.parametrize("url, expected", [
    ("file:///srv/mirror/agent.tar.gz", None),
    ("file://localhost/srv/agent.tar.gz", None),
    ("https://mirror.example/agent.tar.gz", None),
    ("file://", "must be file:///absolute/path"),
    ("file:///", "must be file:///absolute/path"),
    ("file://mirror.example/agent.tar.gz", "must be file:///absolute/path"),
    ("https:///agent.tar.gz", "must name a host after https://"),
    ("ftp://mirror.example/agent.tar.gz", "must be a URL starting with https:// or http:// or file://"),
])
def test_urls_file_urls_have_a_path_others_a_host(url, expected):
    p = Problems()
    p.url("u", url, schemes=("https", "http", "file"))
    if expected is None:
        assert p.items == []
    else:
        assert len(p.items) == 1 and expected in p.items[0], p.items


def test_a_profiles_required_setting_is_named_when_missing():
    """Lighthouse cannot start without a checkpoint sync URL: in node_config or the network's settings."""
    lighthouse = dict(NODE, node_profile="lighthouse", node_network="mainnet",
                      node_profile_required_config={"checkpoint_sync_url": "the finalized state to start from"},
                      node_profile_network_settings={"name": "mainnet", "checkpoint_sync_url": ""})
    assert node_problems(lighthouse) == [
        "node_config.checkpoint_sync_url: is required by profile lighthouse (mainnet): the finalized state to start from; "
        "or give it for the network in node_profile_overrides.networks.<network>.checkpoint_sync_url"]
    assert node_problems(dict(lighthouse, node_config={"checkpoint_sync_url": "https://beacon.example.org"})) == []
    assert node_problems(dict(lighthouse, node_profile_network_settings={"checkpoint_sync_url": "https://beacon.example.org"})) == []


def test_a_profile_without_a_public_download_needs_the_operators_url():
    gowaku = dict(NODE, node_profile="gowaku", node_profile_own_artifact="go-waku builds its package without publishing it")
    assert node_problems(gowaku) == [
        "node_install_url: is required by profile gowaku, which has no public download: go-waku builds its package without publishing it"]
    assert node_problems(dict(gowaku, node_install_url="https://mirror.example.org/gowaku_0.10.0_amd64.deb")) == []


@pytest.mark.parametrize("changes, expected", [
    ({"health_checker_consensus_url": "127.0.0.1:5052"}, "health_checker_consensus_url: '127.0.0.1:5052' is not valid: must be a URL"),
    ({"health_checker_consensus_url": "http://127.0.0.1:5052", "health_checker_adapter": "bitcoin"},
     "health_checker_consensus_url: 'http://127.0.0.1:5052' is not valid: only the ethereum adapter has a consensus client"),
])
def test_health_checker_consensus_url(changes, expected):
    found = health_checker_problems(with_(HEALTH, **changes))
    assert any(problem.startswith(expected) for problem in found), found


def test_integers_as_extra_vars_give_them():
    """-e node_wait_timeout=20 arrives as the string '20': valid, as the argument spec converts it."""
    assert node_problems(with_(NODE, node_wait_timeout="20", node_limit_nofile="65536")) == []
    assert node_problems(with_(NODE, node_wait_timeout="20s")) == ["node_wait_timeout: '20s' is not valid: must be an integer"]
    assert node_problems(with_(NODE, node_wait_timeout=True)) == ["node_wait_timeout: True is not valid: must be an integer"]
    found = wireguard_sentry_problems(with_(WIREGUARD, wireguard_sentry_ssh_port="2222",
                                            wireguard_sentry_p2p_ports=[{"port": "2222"}]), [], [])
    assert found == ["wireguard_sentry_p2p_ports[0]: {'port': '2222'} is not valid: is the SSH port (wireguard_sentry_ssh_port 2222): "
                     "it would be open to everyone"]


# A valid 24-word code (made by polykey's own generateRecoveryCode) and broken versions of it.
CODE = ("cool sunny spy battle pet arctic title tiger kid wrap dinner sadness unhappy squirrel element report amateur viable "
        "tunnel opera artwork popular myth subject")
POLYKEY_SECRETS = [{"path": "/var/lib/polykey/recovery-code", "format": "bip39"}, {"path": "/var/lib/polykey/password"}]


@pytest.mark.parametrize("code, expected", [
    (CODE, None),
    (" ".join(CODE.split()[:23]), "the recovery code has 23 words, a recovery code has 24"),
    (CODE.replace("spy", "spyy"), "the recovery code word 3 is not a BIP-39 word"),
    (" ".join(CODE.split()[:22] + CODE.split()[:21:-1]), "the recovery code fails the BIP-39 checksum"),
])
def test_polykey_recovery_codes_are_checked_before_anything_changes(code, expected):
    values = with_(NODE, node_data_dir="/var/lib/polykey", node_config_dir="/etc/chainops/polykey", node_profile_secrets=POLYKEY_SECRETS,
                   node_secrets={"recovery-code": code, "password": "secret"})
    found = node_problems(values)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith("node_secrets['recovery-code']: " + expected), found
        assert not any(word in found[0] for word in CODE.split() if len(word) > 4)  # no word of the code is shown
