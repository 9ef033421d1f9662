"""The docker backend against a real Docker engine: real images built from matrix.toml's rows on
a base made with debootstrap (no registry), real cells in containers on the 30 real val images.

Without an engine these tests skip, unless DLMATRIX_REQUIRE_DOCKER=1 (CI sets it), where a
missing engine is a failure.
"""

import errno
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runner.backends.base import EnvironmentBuildError
from runner.backends.docker_cell import (CELL_LABEL, CROPS_IN_CONTAINER, OWNER_LABEL, PIDS_LIMIT, absolute_paths,
                                         cell_mounts, hardened, owner, run_container)
from runner.backends.docker_fetch import MARKER_FOLDER
from runner.backends.docker_image import render_dockerfile
from runner.backends.docker_python import python_for_image
from runner.errors import UserError
from runner.matrix import load_matrix
from runner.storage import lock_holder

from .conftest import ROOT
from .dockers import leftover_containers, results_of, run_cli
from .faults import fault_case
from .matrices import FAST_SUITES, write_matrix

HISTORICAL, CURRENT = "mxnet-1.4", "tf-current"


# -- without an engine --------------------------------------------------------------------------------

def test_the_template_renders_every_placeholder_and_refuses_a_missing_one():
    values = dict(base="b:1", system_packages="", python_step="COPY python /opt/python", python_source="x",
                  python_minor="3.7", pip_env="", pip_args="", pip_source="PyPI", user="1000:1000")
    text = render_dockerfile(**values)
    assert text.startswith("#") and "FROM b:1" in text and "{{" not in text
    assert "python3.7 -m venv /opt/env" in text and "USER 1000:1000" in text
    assert "-perm /6000 -exec chmod ug-s" in text  # setuid/setgid bits stripped (checked in a built image below)
    del values["user"]
    with pytest.raises(EnvironmentBuildError, match="placeholder {{user}}"):
        render_dockerfile(**values)


def test_mounts_are_the_cell_paths_at_the_same_place_and_only_outputs_are_writable(tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    spec = {"output_dir": str(out), "dataset": {"root": "/data/val", "labels_file": None},
            "weights": {"source": "pretrained", "cache_dir": str(tmp_path / "weights")},
            "drift": {"checkpoints": [{"path": "/r/a.params"}, {"unavailable": "why"}]}}
    mounts = {m["Target"]: m for m in cell_mounts(spec, out / "spec.json", "/etc/ca.pem")}
    assert mounts[str(out)]["Source"] == str(out) and not mounts[str(out)]["ReadOnly"]
    assert mounts["/data/val"]["ReadOnly"] and mounts["/r/a.params"]["ReadOnly"]
    assert not mounts[str(tmp_path / "weights")]["ReadOnly"] and (tmp_path / "weights").is_dir()
    assert mounts["/opt/dlmatrix/runner"]["Source"] == str(ROOT / "runner") and mounts["/opt/dlmatrix/runner"]["ReadOnly"]
    assert mounts["/etc/dlmatrix/ca.pem"]["ReadOnly"]
    assert str(out / "spec.json") not in mounts  # inside the mounted output folder already


def test_relative_paths_in_a_spec_become_absolute_for_the_container(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = {"output_dir": "results/r/.work/x", "dataset": {"root": "../val", "labels_file": None},
            "weights": {"source": "file", "path": "w.params"}, "drift": {"checkpoints": [{"path": "results/r/a.h5"}]}}
    fixed = absolute_paths(spec)
    assert fixed["output_dir"] == str(tmp_path / "results/r/.work/x")
    assert fixed["dataset"]["root"] == str(tmp_path.parent / "val") and fixed["dataset"]["labels_file"] is None
    assert fixed["weights"]["path"] == str(tmp_path / "w.params")
    assert fixed["drift"]["checkpoints"][0]["path"] == str(tmp_path / "results/r/a.h5")
    assert spec["output_dir"] == "results/r/.work/x"  # the stored spec is left as it was


def test_python_for_an_image_from_a_dist_folder_or_a_clear_message(tmp_path):
    (tmp_path / "cpython-3.7.17+20230726-x86_64-unknown-linux-gnu-install_only.tar.gz").write_bytes(b"")
    found = python_for_image("3.7", str(tmp_path))
    assert found.version == "3.7.17" and found.kind == "python-build-standalone"
    with pytest.raises(EnvironmentBuildError, match="no CPython 3.9 there; expected cpython-3.9"):
        python_for_image("3.9", str(tmp_path))


def test_docker_matrix_keys_are_validated(tmp_path):
    for replace, message in (
            (('cpu_base = "dlmatrix-base:bookworm"', 'cpu_base = "debian"'),
             "docker.cpu_base: expected an image pinned by tag"),
            (('user = "1000:1000"', 'user = "0:0"'), "docker.user: expected a non-root uid:gid"),
            (('user = "1000:1000"', 'user = "1000:1000"\nmemory_limit = "16g"'),
             r"docker.memory_limit: moved to \[defaults\] memory_limit")):
        path = write_matrix(tmp_path, replace=[replace])
        with pytest.raises(UserError, match=message):
            load_matrix(path)


# -- against the engine ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docker_run(engine, sample, tmp_path_factory):
    """One historical and one current row, error + throughput, random weights; then the same again."""
    work = tmp_path_factory.mktemp("docker")
    matrix = write_matrix(work, suites=FAST_SUITES)
    args = ["run", "--matrix", str(matrix), "--backend", "docker", "--weights", "random", "--imagenet", str(sample),
            "--env", HISTORICAL, "--env", CURRENT, "--model", "resnet50", "--suite", "error", "--suite", "throughput",
            "--results-dir", str(work / "results"), "--reports-dir", str(work / "reports"), "--run", "docker"]
    first = run_cli(args)
    tick = time.perf_counter()
    second = run_cli(args)
    return {"work": work, "matrix": matrix, "first": first, "second": second,
            "second_s": time.perf_counter() - tick, "results": results_of(work / "results" / "docker")}


@pytest.mark.slow
def test_cells_run_in_containers_with_provenance(docker_run, engine):
    code, out = docker_run["first"]
    assert code == 0, out
    results = docker_run["results"]
    assert len(results) == 4
    for env, package in ((HISTORICAL, "mxnet"), (CURRENT, "tensorflow")):
        for suite in ("error", "throughput"):
            result = results[(env, "resnet50", suite)]
            assert result["status"] == "ok", result["reason"]
        error = results[(env, "resnet50", "error")]
        assert error["metrics"]["images_evaluated"] == 30
        runner = error["provenance"]["runner"]
        image = runner["environment"]
        assert runner["backend"] == "docker" and image["image"].startswith("dlmatrix/{}:".format(env))
        assert image["image_id"] == engine.images.get(image["image"]).id
        assert image["base_image_id"] == engine.images.get(image["base_image"]).id
        assert image["docker"]["engine_version"] == engine.version()["Version"]
        assert image["user"] != "0:0" and any(line.startswith(package + "==") for line in image["freeze"])
        assert len(error["provenance"]["probe_sha256"]) == 64  # the probe hashes the code it ran (mounted)
    assert not leftover_containers(engine)


@pytest.mark.slow
def test_a_second_run_reuses_every_image_and_result(docker_run):
    code, out = docker_run["second"]
    assert code == 0, out
    assert "4 cells: 0 run now, 4 reused" in out


@pytest.mark.slow
def test_forced_cells_run_again_in_the_reused_image(docker_run, sample):
    work = docker_run["work"]
    before = docker_run["results"][(HISTORICAL, "resnet50", "error")]
    code, out = run_cli(["run", "--matrix", str(docker_run["matrix"]), "--backend", "docker", "--weights", "random",
                         "--imagenet", str(sample), "--env", HISTORICAL, "--model", "resnet50", "--suite", "error",
                         "--results-dir", str(work / "results"), "--reports-dir", str(work / "reports"),
                         "--run", "forced", "--force"])
    assert code == 0, out
    again = results_of(work / "results" / "forced")[(HISTORICAL, "resnet50", "error")]
    image = again["provenance"]["runner"]["environment"]
    assert again["provenance"]["runner"]["environment_reused"] is True
    assert image["image_id"] == before["provenance"]["runner"]["environment"]["image_id"]


@pytest.mark.slow
def test_the_container_predicts_exactly_what_the_venv_backend_predicts(docker_run, sample):
    work = docker_run["work"]
    code, out = run_cli(["run", "--matrix", str(docker_run["matrix"]), "--backend", "venv", "--weights", "random",
                         "--imagenet", str(sample), "--env", HISTORICAL, "--env", CURRENT, "--model", "resnet50",
                         "--suite", "error", "--results-dir", str(work / "results"),
                         "--reports-dir", str(work / "reports"), "--run", "venv"])
    assert code == 0, out
    venv = results_of(work / "results" / "venv")
    for env in (HISTORICAL, CURRENT):
        in_docker, in_venv = docker_run["results"][(env, "resnet50", "error")], venv[(env, "resnet50", "error")]
        assert in_docker["cell_id"] == in_venv["cell_id"]  # same content, same id, whatever the backend
        docker_rows = (work / "results" / "docker" / in_docker["files"]["predictions"]).read_text().splitlines()
        venv_rows = (work / "results" / "venv" / in_venv["files"]["predictions"]).read_text().splitlines()
        assert len(docker_rows) == 31 and docker_rows == venv_rows, env


SETTINGS_LINE = "container settings (from the engine): "


def engine_settings_in(log_path):
    """The settings of every container a cell ran in, as the engine held them (the cell's log keeps them)."""
    return [json.loads(line[len(SETTINGS_LINE):]) for line in Path(log_path).read_text().splitlines()
            if line.startswith(SETTINGS_LINE)]


def assert_least_privilege(seen, network):
    assert seen["cap_drop"] == ["ALL"] and not seen["cap_add"] and seen["privileged"] is False, seen
    assert "no-new-privileges" in seen["security_opt"], seen
    assert seen["pids_limit"] == PIDS_LIMIT and seen["read_only_rootfs"] is True, seen
    assert list(seen["tmpfs"]) == ["/tmp"] and seen["network_mode"] == network, seen
    assert seen["memory"] == seen["memory_swap"] == 16 * 1024 ** 3, seen  # the test matrix's memory_limit "16g"
    assert seen["user"] and not seen["user"].startswith("0:"), seen


@pytest.mark.slow
def test_every_cell_container_had_least_privilege_and_no_network(docker_run):
    """Read from the engine for each real cell's container before it was removed."""
    for key, result in docker_run["results"].items():
        [seen] = engine_settings_in(result["provenance"]["runner"]["log"])
        assert_least_privilege(seen, network="none")
        # Random weights: no weights cache; writable are the cell's own work folder and, for an error cell, the
        # crop cache (at its own place in the container, whoever owns the host's folder).
        work = [path for path in seen["writable_mounts"] if path != CROPS_IN_CONTAINER]
        assert len(work) == 1 and work[0].startswith(str(docker_run["work"] / "results" / "docker") + os.sep), key
        assert (CROPS_IN_CONTAINER in seen["writable_mounts"]) == (key[2] == "error"), key
        if key[2] == "error":
            assert result["metrics"]["crop_cache"]["status"] in ("hit", "built"), result["metrics"]["crop_cache"]


# Run in a cell-like container and in a plain one: what a cell might try, and what came of each try.
ATTEMPTS = r"""
import json, socket, subprocess, sys, threading
seen = {}
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
    seen["connect"] = "connected"
except OSError as exc:
    seen["connect"] = exc.errno
for path in ("/etc/dlmatrix-was-here", "/var/tmp/dlmatrix-was-here", "/tmp/dlmatrix-was-here"):
    try:
        open(path, "w").close()
        seen[path] = "written"
    except OSError as exc:
        seen[path] = exc.errno
seen["euid_in_setuid_root_id"] = subprocess.run(["/usr/local/bin/id-suid", "-u"], stdout=subprocess.PIPE,
                                                universal_newlines=True).stdout.strip()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
seen["CapBnd"], seen["NoNewPrivs"] = status["CapBnd"].strip(), status["NoNewPrivs"].strip()
threading.stack_size(1 << 16)
stop, started = threading.Event(), 0
try:
    for _ in range(int(sys.argv[3]) + 100):
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError:
    pass
stop.set()
seen["threads"] = started
print(json.dumps(seen))
"""


def accept_until_closed(listener):
    while True:
        try:
            listener.accept()[0].close()
        except OSError:  # closed at the end of the test
            return


def bridge_gateway(engine):
    """The host's address on the default bridge: where a container with a network reaches this host."""
    bridge = engine.networks.get("bridge").attrs
    config = bridge["IPAM"]["Config"][0]
    if "Gateway" in config:
        return config["Gateway"]
    # A daemon's first start leaves Gateway out of the default bridge's IPAM (moby/moby#26799): a fresh CI
    # machine's always. The bridge interface holds the address (SIOCGIFADDR).
    name = bridge["Options"]["com.docker.network.bridge.name"].encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15]))
    return socket.inet_ntoa(request[20:24])


@pytest.mark.slow
def test_a_cell_container_cannot_reach_the_network_write_its_image_or_gain_privileges(docker_run, engine, tmp_path):
    image = docker_run["results"][(HISTORICAL, "resnet50", "error")]["provenance"]["runner"]["environment"]["image"]
    # A setuid-root program in a layer on top of the cell's image (the image itself has none left).
    maker = engine.containers.run(image, ["sh", "-c", "cp /usr/bin/id /usr/local/bin/id-suid && chmod 4755 "
                                          "/usr/local/bin/id-suid"], user="0:0", detach=True)
    maker.wait()
    suid_image = maker.commit("dlmatrix-test/suid", str(os.getpid()))
    maker.remove()
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    threading.Thread(target=accept_until_closed, args=(listener,), daemon=True).start()
    gateway = bridge_gateway(engine)
    command = ["python", "-c", ATTEMPTS, gateway, str(listener.getsockname()[1]), str(PIDS_LIMIT)]
    try:
        with open(tmp_path / "cell.log", "wb") as log:
            cell = run_container(engine, suid_image.id, command, dict(hardened("16g"), user="1000:1000"), log, 300,
                                 set())
        plain = json.loads(engine.containers.run(suid_image.id, command, user="1000:1000", remove=True).decode())
    finally:
        listener.close()
        engine.images.remove(suid_image.id, force=True)
    assert cell.returncode == 0 and not cell.error, cell.output
    confined = json.loads(cell.stdout.strip().splitlines()[-1])
    [seen] = engine_settings_in(tmp_path / "cell.log")
    assert_least_privilege(seen, network="none")
    # Each attempt succeeds in a plain container (so each refusal is the settings' doing) ...
    assert plain["connect"] == "connected" and plain["/var/tmp/dlmatrix-was-here"] == "written"
    assert plain["euid_in_setuid_root_id"] == "0" and plain["threads"] == PIDS_LIMIT + 100
    # ... and fails in the cell's.
    assert confined["connect"] == errno.ENETUNREACH
    assert confined["/etc/dlmatrix-was-here"] == confined["/var/tmp/dlmatrix-was-here"] == errno.EROFS
    assert confined["/tmp/dlmatrix-was-here"] == "written"  # its tmpfs scratch
    assert confined["euid_in_setuid_root_id"] == "1000"  # no-new-privileges: the setuid bit is ignored
    assert confined["CapBnd"] == "0000000000000000" and confined["NoNewPrivs"] == "1"
    assert PIDS_LIMIT - 10 < confined["threads"] < PIDS_LIMIT
    for case, got in (("a cell reaching the network", "connect: errno {} (ENETUNREACH)".format(confined["connect"])),
                      ("a cell writing to its image (`/etc`, `/var/tmp`)", "open: errno {} (EROFS)".format(
                          confined["/etc/dlmatrix-was-here"])),
                      ("a cell running a setuid-root program", "euid stays {}; capability bounding set {}, "
                       "NoNewPrivs {}".format(confined["euid_in_setuid_root_id"], "empty" if int(
                           confined["CapBnd"], 16) == 0 else confined["CapBnd"], confined["NoNewPrivs"])),
                      ("a cell starting processes without end", "{} threads, then the pids limit ({})".format(
                          confined["threads"], PIDS_LIMIT))):
        fault_case(case, "refused by the container's settings (docker backend): all capabilities dropped, "
                   "no-new-privileges, read-only root, network none, pids limit", got, group="containers")


@pytest.mark.slow
def test_no_setuid_or_setgid_program_is_left_in_a_built_image(docker_run, engine):
    find = ["find", "/", "-xdev", "-type", "f", "-perm", "/6000"]
    assert "/usr/bin/su" in engine.containers.run("dlmatrix-base:bookworm", find, remove=True).decode().split()
    for env in (HISTORICAL, CURRENT):
        image = docker_run["results"][(env, "resnet50", "error")]["provenance"]["runner"]["environment"]["image"]
        assert engine.containers.run(image, find, user="0:0", remove=True).decode().split() == [], env


def reachable(host, port=443, timeout_s=10):
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_pretrained_weights_come_from_a_networked_fetch_and_the_cells_run_offline(docker_run, engine, sample,
                                                                                   tmp_path):
    """Connected host: one fetch, then both cells offline from the cache. Offline host: each cell fails saying why."""
    from runner.frameworks import FRAMEWORKS

    work, cache = docker_run["work"], tmp_path / "weights"
    code, out = run_cli(["run", "--matrix", str(docker_run["matrix"]), "--backend", "docker", "--weights", "pretrained",
                         "--weights-cache", str(cache), "--imagenet", str(sample), "--env", HISTORICAL, "--model",
                         "resnet50", "--suite", "error", "--suite", "throughput", "--results-dir",
                         str(work / "results"), "--reports-dir", str(work / "reports"), "--run", "pretrained"])
    results = results_of(work / "results" / "pretrained")
    online = reachable(FRAMEWORKS["gluoncv"].weights_host)
    fetches = 0
    for suite in ("error", "throughput"):
        result = results[(HISTORICAL, "resnet50", suite)]
        log = Path(result["provenance"]["runner"]["log"])
        containers = engine_settings_in(log)
        fetch = [seen for seen in containers if seen["network_mode"] != "none"]
        for seen in fetch:  # the fetch: a cell's settings, but the network, and only the cache to write
            assert_least_privilege(seen, network="bridge")
            assert seen["writable_mounts"] == [str(cache)]
        fetches += len(fetch)
        if online:
            assert result["status"] == "ok", result["reason"]
            assert_least_privilege(containers[-1], network="none")
            assert str(cache) in containers[-1]["writable_mounts"]
        else:
            assert result["status"] == "failed" and len(containers) == 1 and len(fetch) == 1, log.read_text()
            assert result["reason"].startswith("fetching the pretrained weights before the cell (a container with "
                                               "the network; the cell has none) failed: pretrained weights for "), \
                result["reason"]
            assert "could not be loaded" in result["reason"] and "WEIGHTS=random" in result["reason"]
            assert "runner.probe" not in log.read_text()  # the cell itself never started
    assert code == (0 if online else 1), out
    assert fetches == (1 if online else 2)  # once per image and model, when it succeeds
    assert len(list((cache / MARKER_FOLDER).glob("*.json"))) == (1 if online else 0)
    assert not leftover_containers(engine)


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
def test_an_air_gapped_build_reads_only_the_wheelhouse_and_predicts_the_same(docker_run, sample, tmp_path):
    wheels = tmp_path / "wheelhouse"
    code, out = run_cli(["wheelhouse", str(wheels), "--env", HISTORICAL])
    assert code == 0, out
    assert (wheels / "mxnet-1.4.1-py2.py3-none-manylinux1_x86_64.whl").is_file()
    work = docker_run["work"]
    code, out = run_cli(["run", "--matrix", str(docker_run["matrix"]), "--backend", "docker", "--weights", "random",
                         "--imagenet", str(sample), "--env", HISTORICAL, "--model", "resnet50", "--suite", "error",
                         "--wheelhouse", str(wheels), "--results-dir", str(work / "results"),
                         "--reports-dir", str(work / "reports"), "--run", "wheelhouse"])
    assert code == 0, out
    result = results_of(work / "results" / "wheelhouse")[(HISTORICAL, "resnet50", "error")]
    image = result["provenance"]["runner"]["environment"]
    # The tag does not depend on where the wheelhouse lies: a host that built it before reuses that image,
    # whose record names the folder it was built from.
    assert image["pip_source"].startswith("only the wheelhouse ")
    assert "--no-index --find-links http://127.0.0.1:" in Path(image["build_log"]).read_text()
    assert image["image"] != docker_run["results"][(HISTORICAL, "resnet50", "error")][
        "provenance"]["runner"]["environment"]["image"]  # its own build, not the PyPI one reused
    online = docker_run["results"][(HISTORICAL, "resnet50", "error")]["files"]["predictions"]
    assert ((work / "results" / "wheelhouse" / result["files"]["predictions"]).read_text()
            == (work / "results" / "docker" / online).read_text())


@pytest.mark.slow
def test_cells_side_by_side_give_the_results_of_a_one_at_a_time_run(docker_run, sample):
    """--jobs 2 on the CPU exercises the scheduler --gpus uses: each cell holds a slot of its own."""
    work = docker_run["work"]
    code, out = run_cli(["run", "--matrix", str(docker_run["matrix"]), "--backend", "docker", "--weights", "random",
                         "--imagenet", str(sample), "--env", HISTORICAL, "--model", "resnet50", "--model",
                         "mobilenet_v2", "--suite", "error", "--jobs", "2", "--results-dir", str(work / "results"),
                         "--reports-dir", str(work / "reports"), "--run", "jobs"])
    assert code == 0, out
    side_by_side = results_of(work / "results" / "jobs")
    slots = {r["provenance"]["runner"]["slot"]["label"] for r in side_by_side.values()}
    assert slots == {"job 1", "job 2"}
    first, second = sorted(side_by_side.values(), key=lambda r: r["started_at"])
    assert second["started_at"] < first["ended_at"]  # they did run at the same time
    alone = docker_run["results"][(HISTORICAL, "resnet50", "error")]
    together = side_by_side[(HISTORICAL, "resnet50", "error")]
    assert ((work / "results" / "jobs" / together["files"]["predictions"]).read_text()
            == (work / "results" / "docker" / alone["files"]["predictions"]).read_text())
    assert together["metrics"]["top1_correct"] == alone["metrics"]["top1_correct"]


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
