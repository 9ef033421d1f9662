"""The docker backend when things go wrong, against a real Docker engine: failing cells, Ctrl-C, SIGTERM
and kill -9 of the runner, containers a dead runner left, an engine without the NVIDIA runtime, an
air-gapped base image.

Without an engine these tests skip, unless DLMATRIX_REQUIRE_DOCKER=1 (CI sets it).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from runner.backends.docker_cell import CELL_LABEL, OWNER_LABEL, owner
from runner.matrix import load_matrix
from runner.storage import lock_holder

from .conftest import ROOT
from .dockers import HISTORICAL, leftover_containers, results_of, run_cli
from .faults import fault_case
from .matrices import FAST_SUITES, write_matrix


BROKEN = '''
[environments.broken]
framework = "gluoncv"
python = "3.7"
packages = ["mxnet==1.4.1", "gluoncv==0.4.0", "numpy==1.14.6", "pillow==0.0.1", "nvidia-ml-py==13.615.71"]
models = ["resnet50"]
'''


@pytest.mark.slow
def test_failures_are_recorded_the_rest_goes_on_and_no_container_is_left(engine, sample, tmp_path, monkeypatch):
    """A build that fails (pip refuses the row's lock), a cell past its timeout, a cell the engine kills.

    Run from the results' parent folder with relative paths, as `make matrix` does."""
    monkeypatch.chdir(tmp_path)
    suites = FAST_SUITES.replace("iterations = 3\ntimeout_s = 900", "iterations = 200\ntimeout_s = 3")
    matrix = write_matrix(tmp_path, suites=suites, append=BROKEN)
    common = ["--backend", "docker", "--weights", "random", "--imagenet", os.path.relpath(sample), "--model",
              "resnet50", "--results-dir", "results", "--reports-dir", "reports"]
    code, out = run_cli(["run", "--matrix", str(matrix), "--env", "broken", "--env", HISTORICAL, "--suite", "error",
                         "--suite", "throughput", "--run", "a"] + common)
    assert code == 1, out
    results = results_of(tmp_path / "results" / "a")
    for suite in ("error", "throughput"):
        broken = results[("broken", "resnet50", suite)]
        assert broken["status"] == "failed" and "building image dlmatrix/broken:" in broken["reason"]
        # The appended row's lock (tests/matrices.py) carries placeholder hashes: pip stops at the first
        # file whose hash is not the lock's, or at the pin that does not exist, whichever it meets first.
        reason = broken["reason"].lower()
        assert "pillow==0.0.1" in reason or "do not match the hashes" in reason, reason
    assert results[(HISTORICAL, "resnet50", "error")]["status"] == "ok"
    slow = results[(HISTORICAL, "resnet50", "throughput")]
    assert slow["status"] == "timeout" and slow["reason"].startswith("timed out after 3 s")
    assert not leftover_containers(engine)

    # A memory limit the framework cannot even import under: the engine kills the probe (exit 137).
    (tmp_path / "tight").mkdir()
    tight = write_matrix(tmp_path / "tight", suites=FAST_SUITES, replace=[('memory_limit = "16g"', 'memory_limit = "48m"')])
    code, out = run_cli(["run", "--matrix", str(tight), "--env", HISTORICAL, "--suite", "error", "--run", "b"] + common)
    assert code == 1, out
    killed = results_of(tmp_path / "results" / "b")[(HISTORICAL, "resnet50", "error")]
    assert killed["status"] == "out_of_memory", killed["reason"]
    assert killed["reason"].startswith("killed for memory: the container went over its limit of 48m (exit code 137)")
    assert not leftover_containers(engine)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_removes_the_running_container_and_keeps_finished_results(engine, sample, tmp_path, stop):
    suites = FAST_SUITES.replace("iterations = 3", "iterations = 100000")
    matrix = write_matrix(tmp_path, suites=suites)
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "--matrix", str(matrix), "--backend", "docker", "--weights", "random",
         "--imagenet", str(sample), "--env", HISTORICAL, "--model", "resnet50", "--suite", "error", "--suite",
         "throughput", "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"),
         "--run", "c"], cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A shell that starts a job with `&` makes it ignore SIGINT, and Python keeps that: undo it, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline:  # until the error cell is stored and the throughput cell's container runs
        stored = list((tmp_path / "results" / "c").glob("*.json"))
        if stored and any(c.status == "running" for c in leftover_containers(engine, process.pid)):
            break
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("no cell container appeared")
    process.send_signal(stop)
    try:
        out, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 130, out
    assert "interrupted" in out
    assert not leftover_containers(engine, process.pid)
    finished = results_of(tmp_path / "results" / "c")
    done = finished[(HISTORICAL, "resnet50", "error")]
    assert done["status"] == "ok", done["reason"]


@pytest.mark.slow
def test_kill_9_of_the_runner_removes_its_running_container_and_a_rerun_finishes(engine, sample, tmp_path):
    """The container is the engine's child, not the runner's: its watcher (runner/backends/docker_watch.py)
    removes it when the runner dies, and holds the attempt's owner lock until then."""
    suites = FAST_SUITES.replace("iterations = 3", "iterations = 60")
    matrix = write_matrix(tmp_path, suites=suites)
    args = [sys.executable, "-m", "runner", "run", "--matrix", str(matrix), "--backend", "docker", "--weights",
            "random", "--env", HISTORICAL, "--model", "resnet50", "--suite", "throughput", "--results-dir",
            str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"), "--run", "k"]
    process = subprocess.Popen(args, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any(c.status == "running" for c in leftover_containers(engine, process.pid)):
        time.sleep(0.5)
    assert leftover_containers(engine, process.pid), "no cell container appeared"
    process.kill()
    process.communicate()
    deadline = time.time() + 60
    while time.time() < deadline and leftover_containers(engine, process.pid):
        time.sleep(0.5)
    assert not leftover_containers(engine, process.pid), "the killed runner's container is still there"
    work = tmp_path / "results" / "k" / ".work"
    assert all(lock_holder(folder / ".owner") is None for folder in work.iterdir())  # provably free
    rerun = subprocess.run(args, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert rerun.returncode == 0, rerun.stdout
    assert [r["status"] for r in results_of(tmp_path / "results" / "k").values()] == ["ok"]
    assert not list(work.iterdir())
    fault_case("`kill -9` of the runner during a docker cell", "the container's watcher removes the container "
               "within seconds; the re-run runs the cell again", "(none: the container is gone)", group="containers")


@pytest.mark.slow
def test_start_removes_only_the_containers_a_dead_runner_of_this_host_left(engine):
    from runner.backends.docker import DockerBackend, DockerOptions

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    image = "dlmatrix-base:bookworm"
    made = {name: engine.containers.create(image, ["true"], labels={CELL_LABEL: "t", OWNER_LABEL: label})
            for name, label in (("dead", owner(int(dead))), ("alive", owner()), ("elsewhere", "otherhost:1"))}
    try:
        DockerBackend(load_matrix(ROOT / "matrix.toml").docker, DockerOptions()).start(lambda line: None)
        left = {c.id for c in engine.containers.list(all=True, filters={"label": CELL_LABEL + "=t"})}
        assert made["dead"].id not in left
        assert made["alive"].id in left and made["elsewhere"].id in left
    finally:
        for container in made.values():
            try:
                container.remove(force=True)
            except Exception:
                pass


def test_a_gpu_run_on_an_engine_without_the_nvidia_runtime_stops_before_building(engine, tmp_path, capsys):
    if "nvidia" in (engine.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime")
    matrix = write_matrix(tmp_path, suites=FAST_SUITES)
    code, out = run_cli(["run", "--matrix", str(matrix), "--backend", "docker", "--device", "cuda", "--weights",
                         "random", "--env", HISTORICAL, "--model", "resnet50", "--suite", "throughput",
                         "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")])
    assert code == 2
    err = capsys.readouterr().err
    assert "has no NVIDIA runtime" in err and "DEVICE=cpu" in err
    assert not list((tmp_path / "results").rglob("*.json"))  # nothing built, nothing recorded


@pytest.mark.slow
def test_a_base_image_loads_from_a_tarball_under_the_matrix_name(engine, tmp_path):
    """An air-gapped host: the base saved on another machine (`docker save`) and loaded here."""
    tarball = tmp_path / "base.tar"
    with open(tarball, "wb") as handle:
        for chunk in engine.images.get("dlmatrix-base:bookworm").save(named=True):
            handle.write(chunk)
    matrix = write_matrix(tmp_path, replace=[('cpu_base = "dlmatrix-base:bookworm"',
                                              'cpu_base = "dlmatrix-test-base:loaded"')])
    try:
        code, out = run_cli(["docker-base", "--matrix", str(matrix), "--from-tarball", str(tarball)])
        assert code == 0, out
        assert engine.images.get("dlmatrix-test-base:loaded").id == engine.images.get("dlmatrix-base:bookworm").id
    finally:
        engine.images.remove("dlmatrix-test-base:loaded")
    (tmp_path / "junk.tar").write_bytes(b"not an image")
    code, _ = run_cli(["docker-base", "--matrix", str(matrix), "--from-tarball", str(tmp_path / "junk.tar")])
    assert code == 2
