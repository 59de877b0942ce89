import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def loop_device(tmp_path):
    """make(files): a 48 MiB loop device, blank (files None) or ext4 holding files {relative path: bytes}.
    Whatever is still mounted under tmp_path is unmounted and the devices detached afterwards."""
    devices = []

    def make(files):
        image = tmp_path / ("disk%d.img" % len(devices))
        subprocess.run(["truncate", "-s", "48M", str(image)], check=True)
        device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True).stdout.strip()
        devices.append(device)
        if files is not None:
            subprocess.run(["mkfs.ext4", "-q", device], check=True)
            staging = tmp_path / "populate"
            staging.mkdir(exist_ok=True)
            subprocess.run(["mount", device, str(staging)], check=True)
            try:
                for relative, content in files.items():
                    (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                    (staging / relative).write_bytes(content)
            finally:
                subprocess.run(["umount", str(staging)], check=True)
        return device

    yield make
    for mount in [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(tmp_path) in line.split()[1]]:
        subprocess.run(["umount", mount], check=False)
    for device in devices:
        subprocess.run(["losetup", "-d", device], check=False)
