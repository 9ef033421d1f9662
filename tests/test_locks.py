"""The rows' locks (runner/locks.py): real resolution with uv against PyPI, real pip in hash-checking mode,
real venvs. Stale and missing locks stop `plan` and `run` with exit 2; a re-made lock changes its row's ids."""

import hashlib
import io
import json
import re
import subprocess
import sys

import pytest
from packaging.version import Version

from runner.backends.base import EnvironmentBuildError
from runner.backends.venv import VenvBackend, find_python
from runner.cli import main
from runner.errors import UserError
from runner.locks import (Lock, LockError, LockedEnvironment, derived, installed_differences, lock_of, locked,
                          parse_lock, stale_reasons)
from runner.locks_resolve import resolve
from runner.matrix import load_matrix
from runner.matrix.schema import Environment
from runner.plan import Options, plan_cells
from runner.releases import derive_environment
from runner.wheelhouse import fill_wheelhouse

from .faults import fault_case
from .matrices import REAL, ROOT, write_matrix


def run_cli(args):
    out = io.StringIO()
    return main(args, out=out), out.getvalue()


def tiny(python):
    """A row of one small package (and what it pulls in), resolved for real."""
    return Environment(name="tiny", framework="torchvision", python=python, packages=("requests==2.31.0",),
                       index_url=None, extra_index_urls=(), cuda_image=None, models=())


def throughput_ids(matrix_path):
    return {c.environment.name: c.id for c in plan_cells(load_matrix(matrix_path), Options(weights="random"))
            if c.model.key == "resnet50" and c.suite == "throughput"}


def python_or_skip(version):
    try:
        return find_python(version)
    except EnvironmentBuildError as exc:
        pytest.skip(exc.reason)


@pytest.mark.parametrize("python, urllib3_supports_it", [("3.7", lambda v: v < Version("2.1")),
                                                        ("3.11", lambda v: v >= Version("2.1"))])
def test_resolution_is_for_the_rows_python_with_every_package_and_hash(tmp_path, python, urllib3_supports_it):
    path = tmp_path / "tiny-cpu.txt"
    path.write_text(resolve(tiny(python), "cpu"))
    lock = parse_lock(path)
    versions = lock.versions()
    assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer"} <= set(versions)
    assert versions["requests"] == "2.31.0"
    # urllib3 2.1 dropped Python 3.7: the resolution is for the row's Python, not the host's 3.11
    assert urllib3_supports_it(Version(versions["urllib3"]))
    blocks = re.split(r"\n(?=[a-z0-9])", lock.text.split("\n# inputs-sha256: ")[1])[1:]
    assert len(blocks) == len(versions) and all(re.search(r"--hash=sha256:[0-9a-f]{64}", b) for b in blocks)
    assert lock.header["python"] == [python] and lock.header["pin"] == ["requests==2.31.0"]
    assert stale_reasons(lock, tiny(python), "cpu") == []
    assert stale_reasons(lock, tiny(python), "cuda")  # another device's build: not this lock


def test_installed_differences_name_every_package_that_differs():
    lock_text = "a==1.0 \\\n    --hash=sha256:{}\nb==2.0 \\\n    --hash=sha256:{}\n".format("1" * 64, "2" * 64)
    lock = Lock(path=None, text=lock_text, header={}, packages=(("a", "1.0"), ("b", "2.0")), sha256="x")
    seeded = {"pip": "22.0.4", "setuptools": "47.1.0"}
    assert installed_differences(lock, {"a": "1.0", "B": "2.0", "pip": "22.0.4", "setuptools": "47.1.0"}, seeded) == []
    assert installed_differences(lock, {"a": "1.1", "pip": "22.0.4", "setuptools": "47.1.0", "six": "1.16.0"},
                                 seeded) == ["a 1.1 installed, the lock has 1.0", "b 2.0 is missing",
                                             "six 1.16.0 is not in the lock"]


@pytest.mark.slow
def test_a_venv_holds_exactly_its_lock_and_pip_refuses_a_tampered_hash(tmp_path):
    python_or_skip("3.11")
    good = tmp_path / "tiny-good.txt"
    good.write_text(resolve(tiny("3.11"), "cpu"))
    env = LockedEnvironment(**vars(tiny("3.11")), lock_device="cpu", lock_path=str(good))
    backend = VenvBackend(tmp_path / "envs")
    ready = backend.prepare(env, print)
    assert ready.provenance["lock"]["sha256"] == parse_lock(good).sha256
    listed = subprocess.run([ready.python, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    assert "requests==2.31.0" in listed and "urllib3==" in listed
    assert backend.prepare(env, print).reused

    # Something installed by hand: the environment is refused, with the difference.
    subprocess.run([ready.python, "-m", "pip", "install", "-q", "--no-deps", "six==1.16.0"], check=True)
    with pytest.raises(EnvironmentBuildError, match=r"differs from its lock .*tiny-good.txt: six 1.16.0 is not in "
                                                    r"the lock; remove .* to rebuild it from the lock") as refused:
        backend.prepare(env, print)
    fault_case("a built environment whose packages differ from its lock (one installed by hand)", "refused; its "
               "cells fail with the difference", refused.value.reason, group="environments")

    # Every hash of idna replaced: pip in hash-checking mode refuses the file it downloads.
    text = good.read_text()
    start = text.index("\nidna==")
    end = re.search(r"\n[a-z]", text[start + 1:]).start() + start + 1
    block = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + hashlib.sha256(b"not idna").hexdigest(), text[start:end])
    tampered = tmp_path / "tiny-tampered.txt"
    tampered.write_text(text[:start] + block + text[end:])
    bad = LockedEnvironment(**vars(tiny("3.11")), lock_device="cpu", lock_path=str(tampered))
    assert backend.location(bad) != backend.location(env)  # another lock, another environment
    with pytest.raises(EnvironmentBuildError, match=r"THESE PACKAGES DO NOT MATCH THE HASHES") as refused:
        backend.prepare(bad, print)
    fault_case("a downloaded file whose sha256 is not the lock's", "pip refuses it; the row's cells fail with the "
               "reason", refused.value.reason.split(" (full log:")[0], group="environments")


def test_a_stale_lock_stops_plan_and_run_with_exit_2_before_anything_is_built(tmp_path, capsys):
    matrix = write_matrix(tmp_path, replace=(('"scipy==1.2.3"', '"scipy==1.2.2"'),))
    code, _ = run_cli(["plan", "--matrix", str(matrix), "--weights", "random"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (
        "error: environment torch-1.0: locks/torch-1.0-cpu.txt stale: pin scipy==1.2.3 removed; pin scipy==1.2.2 "
        "added; it does not install the pin scipy==1.2.2 (has 1.2.3) (cpu lock must match matrix.toml before "
        "anything is built); make it with `.venv/bin/dlmatrix lock torch-1.0 --device cpu` and commit locks/\n")
    fault_case("a row's pins edited in matrix.toml, its lock not re-made", "exit 2 before anything is built",
               err.strip(), group="environments")
    code, _ = run_cli(["run", "--matrix", str(matrix), "--weights", "random", "--env", "torch-1.0",
                       "--env-dir", str(tmp_path / "envs"), "--results-dir", str(tmp_path / "results"),
                       "--reports-dir", str(tmp_path / "reports")])
    assert code == 2 and ".venv/bin/dlmatrix lock torch-1.0 --device cpu" in capsys.readouterr().err
    assert not (tmp_path / "envs").exists() and not (tmp_path / "results").exists()
    code, _ = run_cli(["lock", "--check", "--matrix", str(matrix), "--device", "cpu"])
    assert code == 2 and "torch-1.0-cpu.txt stale" in capsys.readouterr().err


def test_a_missing_lock_names_the_row_and_the_command(tmp_path, capsys):
    matrix = write_matrix(tmp_path)
    (tmp_path / "locks" / "mxnet-1.5-cuda.txt").unlink()
    assert run_cli(["plan", "--matrix", str(matrix), "--weights", "random"])[0] == 0  # the cpu locks are all there
    code, _ = run_cli(["plan", "--matrix", str(matrix), "--weights", "random", "--device", "cuda"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.endswith(
        "error: environment mxnet-1.5: locks/mxnet-1.5-cuda.txt not found (cuda lock must match matrix.toml before "
        "anything is built); make it with `.venv/bin/dlmatrix lock mxnet-1.5 --device cuda` and commit locks/\n")
    fault_case("no lock for a row and the device being run", "exit 2 before anything is built",
               err.strip().splitlines()[-1], group="environments")
    with pytest.raises(UserError, match="mxnet-1.5-cuda.txt not found"):
        locked(load_matrix(matrix), load_matrix(matrix).environment("mxnet-1.5"), "cuda:1")


def test_check_and_upgrade_together_are_refused_first(capsys):
    assert run_cli(["lock", "--check", "--upgrade"])[0] == 2
    assert capsys.readouterr().err == "error: --check and --upgrade: --check resolves nothing, --upgrade re-resolves " \
                                      "every lock; give one\n"


def test_the_committed_locks_match_the_matrix():
    code, out = run_cli(["lock", "--check"])
    assert code == 0 and out == "cpu/cuda locks of 8 rows match matrix.toml\n"


def test_a_changed_lock_changes_only_its_rows_ids(tmp_path):
    base = throughput_ids(REAL)
    matrix = write_matrix(tmp_path)
    assert throughput_ids(matrix) == base
    path = tmp_path / "locks" / "torch-1.0-cpu.txt"
    digest = re.search(r"sha256:([0-9a-f]{64})", path.read_text().split("inputs-sha256")[1]).group(1)
    path.write_text(path.read_text().replace(digest, "0" * 64))  # as re-made with another build of a file
    changed = throughput_ids(matrix)
    assert changed["torch-1.0"] != base["torch-1.0"]
    assert {k: v for k, v in changed.items() if k != "torch-1.0"} == {k: v for k, v in base.items() if k != "torch-1.0"}


def test_re_making_a_stale_lock_moves_only_what_the_pin_moves(tmp_path):
    base = throughput_ids(REAL)
    matrix = write_matrix(tmp_path, replace=(('"scipy==1.2.3"', '"scipy==1.2.2"'),))
    before = parse_lock(tmp_path / "locks" / "torch-1.0-cpu.txt").versions()
    code, out = run_cli(["lock", "torch-1.0", "--device", "cpu", "--matrix", str(matrix)])
    assert code == 0 and "re-made (7 packages): scipy 1.2.3 -> 1.2.2" in out
    after = parse_lock(tmp_path / "locks" / "torch-1.0-cpu.txt").versions()
    assert after == dict(before, scipy="1.2.2")
    changed = throughput_ids(matrix)
    assert changed["torch-1.0"] != base["torch-1.0"] and changed["torch-current"] == base["torch-current"]
    code, out = run_cli(["lock", "torch-1.0", "--device", "cpu", "--matrix", str(matrix)])
    assert code == 0 and "up to date (7 packages)" in out


def test_a_pin_that_does_not_exist_cannot_be_locked(tmp_path, capsys):
    matrix = write_matrix(tmp_path, replace=(('"scipy==1.2.3"', '"scipy==0.0.1"'),))
    code, _ = run_cli(["lock", "torch-1.0", "--device", "cpu", "--matrix", str(matrix)])
    err = capsys.readouterr().err
    assert code == 2 and "scipy==0.0.1" in err and "no lock could be resolved for torch-1.0 (cpu)" in err
    fault_case("pins that cannot be installed together (or do not exist)", "`runner lock`: exit 2 with the "
               "resolver's reason; the other locks are made", err.strip().splitlines()[-1], group="environments")


def test_a_bisect_step_gets_its_lock_resolved_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    matrix = load_matrix(REAL)
    good = locked(matrix, matrix.environment("mxnet-1.5"), "cpu")
    step = derived(derive_environment(good, "mxnet", "1.6.0", matrix.bisect["gluoncv"]), "cpu")
    assert not step.lock_path.startswith(str(REAL.parent))
    lock = lock_of(step)
    assert lock.path.parent == tmp_path / "cache" / "dlmatrix" / "locks"
    assert lock.versions()["mxnet"] == "1.6.0" and lock.versions()["numpy"] == good.pinned_version("numpy")
    assert "made by `python -m runner bisect`" in lock.text and stale_reasons(lock, step, "cpu") == []
    assert lock_of(step).path == lock.path and len(list(lock.path.parent.iterdir())) == 1  # resolved once
    with pytest.raises(LockError, match=r"resolving the lock of bisect-mxnet-0.0.1-from-mxnet-1.5 failed: .*mxnet"):
        lock_of(derived(derive_environment(good, "mxnet", "0.0.1", None), "cpu"))


@pytest.mark.slow
def test_the_wheelhouse_holds_exactly_the_locked_releases(tmp_path):
    python_or_skip("3.7")
    matrix = load_matrix(REAL)
    assert fill_wheelhouse(matrix, tmp_path / "wheels", ["mxnet-1.5"], print) == []
    names = [p.name for p in (tmp_path / "wheels").iterdir() if p.is_file()]
    found = {}
    for name in names:
        stem = name[:-len(".whl")] if name.endswith(".whl") else re.sub(r"\.(tar\.gz|zip)$", "", name)
        project, version = (stem.split("-")[:2] if name.endswith(".whl") else stem.rsplit("-", 1))
        found[re.sub(r"[-_.]+", "-", project).lower()] = version
    lock = lock_of(locked(matrix, matrix.environment("mxnet-1.5"), "cpu"))
    build_tools = {"setuptools", "wheel"} - set(lock.versions())  # for sdists under --no-index, not installed
    assert {k: v for k, v in found.items() if k not in build_tools} == lock.versions()


def test_two_processes_preparing_one_environment_build_it_once(tmp_path):
    """The second waits for the first and reuses its build, instead of deleting it half-built (seen before
    the build lock: the installed-set check then refused the environment)."""
    python_or_skip("3.11")
    lock = tmp_path / "tiny.txt"
    lock.write_text(resolve(tiny("3.11"), "cpu"))
    script = ("import sys, json\n"
              "from runner.backends.venv import VenvBackend\n"
              "from runner.locks import LockedEnvironment\n"
              "from tests.test_locks import tiny\n"
              "env = LockedEnvironment(**vars(tiny('3.11')), lock_device='cpu', lock_path=sys.argv[2])\n"
              "ready = VenvBackend(sys.argv[1]).prepare(env, lambda line: print(line, flush=True))\n"
              "print(json.dumps({'reused': ready.reused}))\n")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "envs"), str(lock)], cwd=str(ROOT),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    reused = sorted(json.loads(out.strip().splitlines()[-1])["reused"] for out in outs)
    assert reused == [False, True], outs
    assert any("waiting for pid" in out and "building environment tiny" in out for out in outs), outs
