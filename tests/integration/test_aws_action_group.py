"""group/chainops.validator.aws (meta/runtime.yml): AWS settings stated once, in a play's module_defaults,
reach the collection's AWS modules and amazon.aws' and community.aws' through the one group, against a
real moto_server. Without them the same tasks cannot reach moto (the control: the group does the work)."""
from __future__ import annotations

import json

from playbook_runner import ansible_playbook

BUCKET = "chainops-group-test"


def play(tmp_path, module_defaults, env=None):
    tasks = [
        {"name": "The collection's module", "chainops.validator.snapshot_archive_s3": {
            "operation": "manifest_read", "bucket": BUCKET, "key": "m.json"}, "register": "ours"},
        {"name": "An amazon.aws module", "amazon.aws.s3_object_info": {"bucket_name": BUCKET, "object_name": "m.json"},
         "register": "amazon"},
        {"name": "A community.aws module", "community.aws.elb_target_group_info": {}, "register": "community"},
        {"name": "Report", "ansible.builtin.copy": {"dest": str(tmp_path / "report.json"), "mode": "0600", "content": (
            "{{ {'ours': ours.manifest, 'exists': ours.exists, 'amazon': amazon.object_info[0].object_data.content_length,"
            " 'community': community.target_groups | map(attribute='target_group_name') | list} | to_json }}")}},
    ]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                 "module_defaults": module_defaults, "tasks": tasks}]))
    return ansible_playbook(path, "-i", "localhost,", env=env)


def test_one_module_defaults_entry_sets_the_endpoint_for_all_three_collections(s3, aws_env, tmp_path, monkeypatch):
    import boto3  # noqa: PLC0415 - only this test needs ELBv2

    s3.put_object(Bucket=BUCKET, Key="m.json", Body=b'{"format": 1, "archives": []}')
    elb = boto3.client("elbv2", endpoint_url=aws_env, region_name="eu-west-1")
    ec2 = boto3.client("ec2", endpoint_url=aws_env, region_name="eu-west-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    elb.create_target_group(Name="only-in-eu-west-1", Protocol="TCP", Port=1, VpcId=vpc)
    # Neither the endpoint nor the region comes from the environment: only from the group's defaults.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = play(tmp_path, {"group/chainops.validator.aws": {"endpoint_url": aws_env, "region": "eu-west-1"}})
    assert result.returncode == 0, result.stdout[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exists"] is True and report["ours"] == {"format": 1, "archives": []}
    assert report["community"] == ["only-in-eu-west-1"]  # the region reached community.aws: eu-west-1's groups
    assert report["amazon"] == len(b'{"format": 1, "archives": []}')  # amazon.aws found the object in moto

    # The control: without the defaults the same task would go to AWS itself. A proxy on a closed loopback
    # port, for everything but loopback, stops that request here (test traffic stays on loopback): moto's
    # requests would pass, so reaching the proxy shows the request was not for moto.
    (tmp_path / "report.json").unlink()
    dead_end = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    result = play(tmp_path, {}, env=dead_end)
    assert result.returncode != 0 and not (tmp_path / "report.json").exists()
    assert "manifest_read on s3://%s/m.json failed: Failed to connect to proxy URL" % BUCKET in result.stdout, result.stdout[-2000:]
    # With the defaults and the same proxy settings, moto is reached: the proxy is not what failed above.
    result = play(tmp_path, {"group/chainops.validator.aws": {"endpoint_url": aws_env, "region": "eu-west-1"}}, env=dead_end)
    assert result.returncode == 0, result.stdout[-3000:]
