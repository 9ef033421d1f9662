"""The README's commands, run as its reader would, in a copy of this checkout with the sample beside it as
../shared: each one that can run on this host runs and exits 0, and `git status` is as clean after it as before.

Every command of the README's ```sh blocks is either run here or listed in NOT_RUN with the reason, so a new
example fails this test until it is placed. What this host lacks is substituted, and said: the 30-image sample
for a full val set, random weights for pretrained ones (no download host), and one cheap cell for a whole matrix
(`make matrix` examples get LIMIT=4 and a narrowing ARGS), so the examples cost minutes, not hours.
"""

import os
import re
import shutil
import subprocess

import pytest

from .conftest import docker_client_or_skip, sample_dir
from .matrices import ROOT

pytestmark = pytest.mark.slow

SAMPLE = "../shared/data/imagenet-val-sample"
# One cheap cell: GluonCV's MobileNetV2 error cell on 4 images (without IMAGENET: recorded skipped, no build).
NARROW = "--env mxnet-1.5 --model mobilenet_v2 --suite error"

NOT_RUN = {
    "make test": "the test command itself",
    ".venv/bin/dlmatrix lock": "writes locks/ on purpose: a re-made lock is meant to be committed",
    ".venv/bin/dlmatrix lock mxnet-1.5 --device cpu": "writes locks/ on purpose",
    ".venv/bin/dlmatrix lock tf-2.1 --upgrade": "writes locks/ on purpose (newer releases of what is not pinned)",
    "sudo bash docker/engine-up.sh": "the test set-up starts the engine (.ci/run), as root",
    'make bench DEVICE=cuda BENCH_BACKEND=local ARGS="--env torch-current"':
        "a GPU host's benchmark (benchmarks/gpu_host.sh runs it there)",
    'make matrix DEVICE=cuda IMAGENET=/shared/imagenet/val ARGS="--executor slurm --partition gpu"':
        "needs a Slurm partition of GPU nodes; tests/test_executor_slurm.py runs the executor on a real cluster",
    ".venv/bin/dlmatrix run --executor slurm --no-wait ...": "a sketch: ... stands for a run's options",
    ".venv/bin/dlmatrix explain --env torch-current --model resnet50 --imagenet /data/imagenet/val --weights "
    "pretrained": "on this host it is the MobileNetV2 explain example below (sample, random weights) with a model "
                  "twice as slow",
}
NEEDS_DOCKER = {"make matrix BACKEND=docker IMAGENET=../shared/data/imagenet-val-sample WEIGHTS=random",
                "make matrix IMAGENET=/data/imagenet/val DEVICE=cuda WEIGHTS=pretrained BACKEND=docker"}
# Refusals the README documents for a host that lacks the part: exit 2 with this message, before anything is built.
REFUSED_HERE = {"make matrix IMAGENET=/data/imagenet/val DEVICE=cuda WEIGHTS=pretrained BACKEND=docker":
                "this Docker engine has no NVIDIA runtime"}


def readme_commands(text):
    """Each command of the ```sh blocks: continuation lines joined, a heredoc kept with its command, comments off."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        while lines:
            line = lines.pop(0)
            heredoc = re.search(r"<<'(\w+)'", line)
            command = re.sub(r"\s+#.*$", "", line).strip()
            command = re.sub(r"[ \t]+", " ", command)
            if heredoc:  # its lines as written: a Python heredoc's indentation is its syntax
                end = lines.index(heredoc.group(1))
                command = "\n".join([command] + lines[:end + 1])
                del lines[:end + 1]
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def as_run_here(command):
    """The command with what this host lacks substituted (see the module's docstring)."""
    here = command.replace("/data/imagenet/val", SAMPLE).replace("/shared/imagenet/val", SAMPLE)
    here = here.replace("WEIGHTS=pretrained", "WEIGHTS=random").replace("--weights pretrained", "--weights random")
    if here.startswith("make matrix"):
        args = re.search(r'ARGS="([^"]*)"', here)
        narrowed = 'ARGS="{}{}"'.format(args.group(1) + " " if args else "", NARROW)
        here = (here.replace(args.group(0), narrowed) if args else here + " " + narrowed) + " LIMIT=4"
    return here


COMMANDS = readme_commands((ROOT / "README.md").read_text())


def git_status(folder):
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=str(folder),
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A copy of this checkout's files (tracked and not ignored, as a clone would have them) committed in a
    repository of its own, with the sample at ../shared."""
    sample = sample_dir()
    if sample is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    base = tmp_path_factory.mktemp("readme")
    folder = base / "dlmatrix"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=str(ROOT),
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    (base / "shared" / "data").mkdir(parents=True)
    (base / "shared" / "data" / "imagenet-val-sample").symlink_to(sample)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git"] + args, cwd=str(folder), check=True)
    assert git_status(folder) == ""
    # The README's first command (make matrix or make test) sets up .venv; the examples after it use
    # .venv/bin/dlmatrix. Set up here, so each example runs alone too (pytest -k), not only in the README's order.
    subprocess.run(["make", "setup"], cwd=str(folder), env=readers_env(), check=True, capture_output=True)
    return folder


def readers_env():
    """As from the reader's shell: not the make (or tox) that runs these tests."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VIRTUAL_ENV")}


def test_every_readme_command_is_run_here_or_says_why_not():
    assert COMMANDS and all(command.startswith((".venv/bin/", "make ", "sudo ")) for command in COMMANDS), \
        [command for command in COMMANDS if not command.startswith((".venv/bin/", "make ", "sudo "))]
    assert set(NOT_RUN) <= set(COMMANDS), set(NOT_RUN) - set(COMMANDS)
    assert as_run_here('make matrix IMAGENET=/data/imagenet/val WEIGHTS=pretrained ARGS="--ignore-pins"') == \
        'make matrix IMAGENET={} WEIGHTS=random ARGS="--ignore-pins {}" LIMIT=4'.format(SAMPLE, NARROW)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in NOT_RUN], ids=lambda c: c.split("\n")[0][:70])
def test_a_readme_command_runs_and_leaves_git_status_clean(checkout, command):
    if command in NEEDS_DOCKER:
        docker_client_or_skip()
    done = subprocess.run(["bash", "-c", as_run_here(command)], cwd=str(checkout), env=readers_env(), capture_output=True,
                          text=True, timeout=1800)
    refusal = REFUSED_HERE.get(command)
    if done.returncode == 2 and refusal and refusal in done.stderr:
        assert done.stderr.count("error:") == 1, done.stderr[-3000:]
    else:
        assert done.returncode == 0, (as_run_here(command), done.stdout[-3000:], done.stderr[-3000:])
    assert git_status(checkout) == "", as_run_here(command)
