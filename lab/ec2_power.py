"""moto_server for the lab, where EC2's power actions reach the machines: the lab's instances are podman
containers, so StopInstances powers the instance's container off (podman kill: a forced stop is a
power cut) before moto records it stopped, and StartInstances starts the container again.

Without this, a fence through the EC2 API (chainops.validator.signer_fence) would only change moto's
records while the old signer's container went on running, and the lab could not show that a fenced
signer really stops. Instances are matched by their tags: Lab=<LAB_NAME>, Name=<host>, container
<LAB_NAME>-<host>. S3 object writes are made atomic as S3's are (tests/testlib/moto_atomic_s3.py): the
signer lease relies on that. Usage: python3 ec2_power.py [moto_server options]."""
import os
import subprocess
import sys
from pathlib import Path

from moto.ec2.models import EC2Backend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "testlib"))
import moto_atomic_s3  # noqa: E402

LAB_NAME = os.environ["LAB_NAME"]


def containers(backend, instance_ids):
    for instance_id in instance_ids:
        tags = backend.describe_tags(filters={"resource-id": [instance_id]})
        values = {tag["key"]: tag["value"] for tag in tags}
        if values.get("Lab") == LAB_NAME and values.get("Name"):
            yield "%s-%s" % (LAB_NAME, values["Name"])


def power(action, names):
    for name in names:
        done = subprocess.run(["podman", action, name], capture_output=True, text=True, timeout=120, check=False)
        print("ec2_power: podman %s %s: rc %d %s" % (action, name, done.returncode, done.stderr.strip()), file=sys.stderr, flush=True)


def with_power(method, action):
    def call(self, instance_ids, *args, **kwargs):
        power(action, list(containers(self, instance_ids)))
        return method(self, instance_ids, *args, **kwargs)
    return call


EC2Backend.stop_instances = with_power(EC2Backend.stop_instances, "kill")
EC2Backend.start_instances = with_power(EC2Backend.start_instances, "start")

if __name__ == "__main__":
    moto_atomic_s3.main(sys.argv[1:])
