"""Real filesystem faults for tests: a folder that refuses writes, a filesystem that is full.

chmod does not stop root (the tests run as root in CI), so there the folder is a small tmpfs
remounted read-only; where the test may not mount, the test is skipped, saying why.
"""

import os
import subprocess
from pathlib import Path

import pytest


def _mount(args):
    run = subprocess.run(["mount"] + args, capture_output=True, text=True)
    return run.returncode == 0, (run.stderr or run.stdout).strip()


class Switchable:
    """A folder that can be made read-only (`freeze`) and writable again (`thaw`)."""

    def __init__(self, folder, size="1m"):
        self.folder, self.mounted = Path(folder), False
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            ok, why = _mount(["-t", "tmpfs", "-o", "size={}".format(size), "tmpfs", str(self.folder)])
            if not ok:
                pytest.skip("root cannot be stopped by chmod and may not mount a tmpfs here: {}".format(why))
            self.mounted = True

    def freeze(self):
        if self.mounted:
            ok, why = _mount(["-o", "remount,ro", str(self.folder)])
            assert ok, why
        else:
            for path in [self.folder] + [p for p in self.folder.rglob("*") if p.is_dir()]:
                path.chmod(0o555)

    def thaw(self):
        if self.mounted:
            ok, why = _mount(["-o", "remount,rw", str(self.folder)])
            assert ok, why
        else:
            for path in [self.folder] + [p for p in self.folder.rglob("*") if p.is_dir()]:
                path.chmod(0o755)

    def close(self):
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)
        else:
            self.thaw()


def full_filesystem(folder, size="64k"):
    """A size-limited tmpfs at `folder`, filled to the last block by a ballast file (returned)."""
    if os.geteuid() != 0:
        pytest.skip("a full filesystem needs a tmpfs mount, which needs root")
    Path(folder).mkdir(parents=True, exist_ok=True)
    ok, why = _mount(["-t", "tmpfs", "-o", "size={}".format(size), "tmpfs", str(folder)])
    if not ok:
        pytest.skip("may not mount a tmpfs here: {}".format(why))
    ballast = Path(folder) / "ballast"
    with open(str(ballast), "wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: full
    return ballast


@pytest.fixture
def switchable(tmp_path):
    made = []

    def make(folder, size="1m"):
        made.append(Switchable(folder, size))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def full_fs(tmp_path):
    mounted = []

    def make(folder, size="64k"):
        ballast = full_filesystem(folder, size)
        mounted.append(folder)
        return ballast

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)
