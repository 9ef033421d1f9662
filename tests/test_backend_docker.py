"""The docker backend against a real Docker engine: real images built from matrix.toml's rows on
a base made with debootstrap (no registry), real cells in containers on the 30 real val images; their
provenance, reuse, the same predictions as the venv backend, air-gapped builds, cells side by side.
Least privilege and the network: test_backend_docker_security.py; failures, interrupts and leftovers:
test_backend_docker_faults.py. The run they share is conftest.py's `docker_run`.

Without an engine these tests skip, unless DLMATRIX_REQUIRE_DOCKER=1 (CI sets it), where a
missing engine is a failure.
"""

import json
from pathlib import Path

import pytest

from runner.backends.base import EnvironmentBuildError
from runner.backends.docker_cell import absolute_paths, cell_mounts, probe_mounts
from runner.backends.docker_image import render_dockerfile
from runner.backends.docker_python import python_for_image
from runner.errors import UserError
from runner.matrix import load_matrix

from .conftest import ROOT
from .dockers import CURRENT, HISTORICAL, leftover_containers, results_of, run_cli
from .matrices import write_matrix


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


# -- against the engine: conftest.py's docker_run -------------------------------------------------

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
def test_a_container_with_a_cpu_limit_sizes_its_decoders_by_it(docker_run, engine):
    """docker --cpus is a CFS quota, not an affinity: the probe reads it from the container's cgroup, so a
    cell with workers = 0 starts as many decoders as the limit lets run, not one per host core."""
    image = docker_run["results"][(HISTORICAL, "resnet50", "error")]["provenance"]["runner"]["environment"]["image"]
    read = ("import json, os, sys; sys.path.insert(0, '/opt/dlmatrix'); from runner.probe import cores; "
            "from runner.probe.error_suite import input_workers; print(json.dumps([cores.cpu_quota(), "
            "cores.usable_cores(), len(os.sched_getaffinity(0)), input_workers({'workers': 0})]))")

    def probe(**limits):
        out = engine.containers.run(image, ["python", "-c", read], mounts=probe_mounts(None), remove=True,
                                    user="1000:1000", network_mode="none", **limits)
        return json.loads(out.decode())

    assert probe(nano_cpus=1000000000)[:2] == [1.0, 1]
    quota, usable, affinity, workers = probe(nano_cpus=1500000000)
    assert quota == 1.5 and usable == workers == min(2, affinity)
    quota, usable, affinity, workers = probe()
    assert quota is None and usable == affinity and workers == min(8, affinity)
    cell = docker_run["results"][(HISTORICAL, "resnet50", "error")]["provenance"]["host"]
    assert cell["usable_cores"] == affinity and cell["cpu_quota"] is None  # the backend sets no quota


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
