"""Shared fixtures: the real ImageNet val sample (skipped cleanly where absent) and synthetic JPEG sets."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sample_dir():
    """../shared/data/imagenet-val-sample, or $DLMATRIX_SAMPLE; None where it is absent."""
    candidates = [os.environ.get("DLMATRIX_SAMPLE"), str(ROOT.parent / "shared" / "data" / "imagenet-val-sample")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "images").is_dir():
            return Path(candidate)
    return None


def _sample_or_skip():
    path = sample_dir()
    if path is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    return path


@pytest.fixture
def imagenet_sample():
    return _sample_or_skip()


@pytest.fixture(scope="module")
def sample():
    """The val sample for module-scoped fixtures (one real run shared by a module's tests)."""
    return _sample_or_skip()


@pytest.fixture(autouse=True)
def _unsaved_results_elsewhere(tmp_path_factory, monkeypatch):
    """A test's results never land in, nor are read from, the user's own ~/.cache/dlmatrix/unsaved."""
    monkeypatch.setenv("DLMATRIX_UNSAVED", str(tmp_path_factory.mktemp("unsaved")))


@pytest.fixture(autouse=True)
def _crops_elsewhere(tmp_path_factory, monkeypatch):
    """Error cells of a test decode into a crop cache of the test session's, not the user's ~/.cache/dlmatrix/crops
    (shared within the session: the slow runs reuse each other's crops as a user's runs would). A test of the
    default location removes the variable itself."""
    monkeypatch.setenv("DLMATRIX_CACHE", str(tmp_path_factory.getbasetemp() / "crops"))


def docker_client_or_skip():
    """A client of the Docker engine that answers; skipped where none does, failed where DLMATRIX_REQUIRE_DOCKER=1
    (CI, after docker/engine-up.sh)."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        if os.environ.get("DLMATRIX_REQUIRE_DOCKER") == "1":
            pytest.fail("DLMATRIX_REQUIRE_DOCKER=1 but no Docker engine answers: {}".format(exc))
        pytest.skip("no Docker engine here ({})".format(exc))
    return client


@pytest.fixture(scope="session")
def engine():
    """The Docker engine, with the project's own base image (debootstrap + import, once per host)."""
    from .dockers import run_cli

    client = docker_client_or_skip()
    code, out = run_cli(["docker-base"])
    assert code == 0, out
    return client


@pytest.fixture(scope="session")
def docker_run(engine, tmp_path_factory):
    """One historical and one current row, error + throughput, random weights, in containers; then the same
    again. Shared by the docker test modules: its images and cells are made once per session."""
    import time

    from .dockers import CURRENT, HISTORICAL, results_of, run_cli
    from .matrices import FAST_SUITES, write_matrix

    sample = _sample_or_skip()
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


@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium for the browser tests; skipped where absent unless DLMATRIX_REQUIRE_BROWSER=1 (CI)."""
    from .browser import find_chromium

    path = find_chromium()
    if path is None:
        if os.environ.get("DLMATRIX_REQUIRE_BROWSER") == "1":
            pytest.fail("DLMATRIX_REQUIRE_BROWSER=1 but there is no chromium here (bash tests/browser-up.sh)")
        pytest.skip("no chromium here (bash tests/browser-up.sh installs it)")
    return path
