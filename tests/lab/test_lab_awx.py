"""The AWX path, for real: a job runs inside the execution environment built from execution-environment.yml
(tests/harness/ee/build-ee.sh), started by ansible-runner with process isolation as AWX starts it. The job's
inventory is the ec2_topology plugin reading the lab's instances from moto, inside the EE; its playbook is
site.yml, by FQCN from the collection installed in the EE, over SSH with the lab's key (an AWX Machine
credential). It runs against the converged lab: 0 failed, and 0 changed, so the EE's controller does what
the laptop's does.

Runs between the topology and the operations tests (tests/lab/conftest.py), on the same lab.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import ansible_runner
import yaml
from labkit import ROOT
from moto_server import unwrap_unsafe


def ee_image(env):
    build = subprocess.run([str(ROOT / "tests" / "harness" / "ee" / "build-ee.sh")], capture_output=True, text=True, env=env,
                           timeout=1500, check=False)
    assert build.returncode == 0, build.stderr[-4000:]
    return build.stdout.strip().splitlines()[-1]


def container_address(lab, host):
    inspect = subprocess.run(["podman", "inspect", "--format", "{{ (index .NetworkSettings.Networks \"%s\").IPAddress }}" % lab.name,
                              "%s-%s" % (lab.name, host)], capture_output=True, text=True, check=True)
    return inspect.stdout.strip()


def private_data_dir(lab, base, hosts):
    """What AWX hands ansible-runner: a project, an inventory source, a Machine credential, environment."""
    (base / "project").mkdir(parents=True)
    (base / "project" / "site.yml").write_text("- name: Site\n  ansible.builtin.import_playbook: chainops.validator.site\n")
    inventory = base / "inventory"
    # The lab's group_vars as they are (its settings, and the provision plan the host firewalls follow).
    shutil.copytree(ROOT / "inventories" / "lab" / "group_vars", inventory / "group_vars")
    (inventory / "host_vars").mkdir()
    # The inventory source, as an AWX project holds it: the plugin, run inside the EE against moto. Without
    # the lab's podman connection: the job reaches its hosts over SSH, at their private addresses.
    source = yaml.safe_load((ROOT / "inventories" / "lab" / "ec2_topology.yml").read_text())
    source.pop("compose")
    source.update(filters={"tag:Lab": lab.name}, ansible_host=["private-ip-address"])
    (inventory / "ec2_topology.yml").write_text(yaml.safe_dump(source))
    (inventory / "group_vars" / "all" / "ssh.yml").write_text(yaml.safe_dump({"ansible_user": "root"}))
    # moto's private addresses are not the containers': each host's address on the lab network instead, as
    # a bastion's SSH configuration would map them. Peers keep dialling the names the lab's DNS answers
    # (the address the lab's own runs advertise): how the controller reaches a host is not how peers do.
    for host in hosts:
        (inventory / "host_vars" / ("%s.yml" % host)).write_text(yaml.safe_dump({
            "ansible_host": container_address(lab, host), "node_p2p_advertise_address": "%s-%s" % (lab.name, host)}))
    (base / "lab-state").mkdir()
    shutil.copy(lab.state / "world.yml", base / "lab-state" / "world.yml")
    env = base / "env"
    env.mkdir()
    # The Machine credential's private key: 0600, as every key the collection writes.
    key = env / "ssh_key"
    key.touch(mode=0o600)
    key.write_text((lab.state / "ssh" / "id_ed25519").read_text())
    (env / "envvars").write_text(yaml.safe_dump({
        # lab/lab.sh's account on moto (an AWX "Amazon Web Services" credential injects the same variables).
        "AWS_ACCESS_KEY_ID": "motolabaccesskey", "AWS_SECRET_ACCESS_KEY": "motolabsecretkey0", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:%s" % lab.env["LAB_MOTO_PORT"],
        "LAB_NAME": lab.name, "LAB_STATE": "/runner/lab-state",
        # The lab's provision plan (group_vars) takes its counts from the environment of the `up` that made
        # the instances; the hosts' firewalls follow that plan. The same counts, read from moto.
        "LAB_SENTRY_COUNT": str(sum("-sentry-" in host for host in hosts)),
        "LAB_FLEET_COUNT": str(sum("-rpc-" in host for host in hosts)),
        "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PIPELINING": "True", "ANSIBLE_FORKS": "16",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True", "ANSIBLE_FORCE_COLOR": "False",
    }))
    return base


# --network=host: moto listens on the machine's loopback, and SSH to the hosts comes from the machine's
# address on the lab network (the admin network). --user=root: AWX's execution nodes run podman rootless,
# where the container's root is the awx user; this test runs podman as root, where the image's user 1000
# could not write the job's artifacts (ansible-runner makes them on the host, as root, 0700).
CONTAINER_OPTIONS = ["--network=host", "--user=root"]


def run_in_ee(base, image, **kwargs):
    return ansible_runner.run(private_data_dir=str(base), process_isolation=True, process_isolation_executable="podman",
                              container_image=image, container_options=CONTAINER_OPTIONS, quiet=True, timeout=1500, **kwargs)


def test_a_job_runs_in_the_execution_environment_as_awx_runs_it(lab, tmp_path):
    image = ee_image(lab.env)
    # Every instance of the lab on moto (the topology tests added a third sentry).
    instances = sorted(lab.instance_ids())
    base = private_data_dir(lab, tmp_path / "awx", instances)
    # The inventory sync: the ec2_topology plugin inside the EE, against moto.
    listed, errors = ansible_runner.get_inventory(action="list", inventories=[str(base / "inventory" / "ec2_topology.yml")],
                                                  response_format="json", private_data_dir=str(base), process_isolation=True,
                                                  process_isolation_executable="podman", container_image=image,
                                                  container_options=CONTAINER_OPTIONS, quiet=True, timeout=600)
    assert isinstance(listed, dict), errors
    listed = unwrap_unsafe(listed)
    hosts = sorted(listed["_meta"]["hostvars"])
    assert hosts == instances, hosts
    assert listed["_meta"]["hostvars"]["ltc-validator"]["topology_role"] == "validator"
    assert sorted(listed["sentries"]["hosts"]) == [h for h in instances if "sentry" in h]
    # The job: site.yml over SSH against the converged lab.
    job = run_in_ee(base, image, playbook="site.yml", inventory=str(base / "inventory"))
    stdout = re.sub(r"\x1b\[[0-9;]*m", "", job.stdout.read())
    assert job.status == "successful" and job.rc == 0, stdout[-6000:]
    # The job's summary, as AWX shows it (the playbook_on_stats event): every instance, none failed or
    # unreachable, none changed.
    stats = job.stats
    assert sorted(stats["ok"]) == instances, stats
    assert not any(stats["failures"].values()) and not any(stats["dark"].values()), stats
    assert not any(stats["changed"].values()), (stats["changed"], stdout[-6000:])
    # It ran inside the EE, by the collection installed there (not this working tree).
    ran = [event for event in job.events if event.get("event") == "playbook_on_start"]
    assert ran and ran[0]["event_data"]["playbook"] == "site.yml"
    versions = subprocess.run(["podman", "run", "--rm", image, "ansible-galaxy", "collection", "list", "--format", "json"],
                              capture_output=True, text=True, check=True).stdout
    installed = {name for path in json.loads(versions).values() for name in path}
    assert {"chainops.validator", "amazon.aws", "community.aws"} <= installed, installed
