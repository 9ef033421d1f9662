"""The whole pipeline for real: every row of matrix.toml (PyTorch, TensorFlow/Keras,
MXNet/GluonCV) built as a virtualenv (venv backend), real cells on CPU with random weights
saved and loaded through each framework's own weight files, the drift suite across the
versions of each framework, on the real ImageNet val sample and on synthetic JPEGs with a
truncated, a CMYK and a grey image.

Environments are cached by content hash (DLMATRIX_ENV_DIR or ~/.cache/dlmatrix/envs), so
only the first run on a machine pays for the installs.
"""

import csv
import io
import json
import re
from pathlib import Path

import pytest

from runner.cli import main

from .faults import fault_case
from .matrices import FAST_SUITES, write_matrix
from .probe.imagesets import make_flat_set

pytestmark = pytest.mark.slow
MODELS = ["--model", "resnet50", "--model", "mobilenet_v2"]


def run_cli(args):
    out = io.StringIO()
    code = main(args, out=out)
    return code, out.getvalue()


def results_of(folder):
    found = {}
    for path in Path(folder).glob("*.json"):
        data = json.loads(path.read_text())
        if data.get("drift_checkpoint"):
            continue  # a drift load of an older version's checkpoint: its pairs are in the report
        found[(data["environment"], data["model"], data["suite"])] = data
    return found


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    from .conftest import sample_dir

    sample = sample_dir()
    if sample is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    work = tmp_path_factory.mktemp("e2e")
    matrix = write_matrix(work, suites=FAST_SUITES)
    args = ["run", "--matrix", str(matrix), "--backend", "venv", "--weights", "random", "--imagenet", str(sample),
            "--results-dir", str(work / "results"), "--reports-dir", str(work / "reports"), "--run", "e2e"] + MODELS
    code, out = run_cli(args)
    return {"work": work, "args": args, "code": code, "out": out, "sample": sample}


ROWS = [  # environment, framework package, its pinned version, Python
    ("torch-1.0", "torch", "1.0.1", "3.7."), ("torch-current", "torch", "2.14.1", "3.11."),
    ("tf-1.13", "tensorflow", "1.13.1", "3.7."), ("tf-2.1", "tensorflow", "2.1.4", "3.7."),
    ("tf-current", "tensorflow", "2.21.0", "3.11."), ("mxnet-1.4", "mxnet", "1.4.1", "3.7."),
    ("mxnet-1.5", "mxnet", "1.5.1", "3.7."), ("mxnet-1.9", "mxnet", "1.9.1", "3.9."),
]


def test_every_row_produces_error_throughput_and_drift_results(sample_run):
    assert sample_run["code"] == 0, sample_run["out"]
    results = results_of(sample_run["work"] / "results" / "e2e")
    assert len(results) == len(ROWS) * 2 * 3
    for env, package, version, python in ROWS:
        for key in ("resnet50", "mobilenet_v2"):
            expected = "skipped" if (env, key) == ("torch-1.0", "mobilenet_v2") else "ok"
            for suite in ("error", "throughput", "drift"):
                result = results[(env, key, suite)]
                assert result["status"] == expected, (env, key, suite, result["reason"])
        error = results[(env, "mobilenet_v2" if env != "torch-1.0" else "resnet50", "error")]
        assert error["metrics"]["images_evaluated"] == 30
        assert error["provenance"]["packages"][package].startswith(version)
        assert error["provenance"]["python"]["version"].startswith(python)
        assert error["provenance"]["weights"]["source"] == "random"
        no_gpu = {"status": "unavailable", "reason": "device is cpu: there is no GPU to read"}
        assert error["metrics"]["telemetry"] == no_gpu  # said, not invented
        throughput = results[(env, "resnet50", "throughput")]
        assert [batch["telemetry"] for batch in throughput["metrics"]["batches"]] == [no_gpu, no_gpu]
        for batch in throughput["metrics"]["batches"]:  # 2 trials: a median inside its range
            low, high = batch["images_per_s_range"]
            assert len(batch["images_per_s_trials"]) == 2 and low <= batch["images_per_s"] <= high
        assert "telemetry" not in throughput["files"]  # no series without a GPU


def test_torch_rows_error_and_throughput_details(sample_run):
    results = results_of(sample_run["work"] / "results" / "e2e")
    for env, torch_version, python in (("torch-1.0", "1.0.1", "3.7."), ("torch-current", "2.14.1", "3.11.")):
        error = results[(env, "resnet50", "error")]
        assert error["status"] == "ok", error["reason"]
        metrics = error["metrics"]
        assert metrics["images_evaluated"] == 30 and metrics["image_modes"].get("L") == 1
        assert metrics["top1_correct"] + (30 - metrics["top1_correct"]) == 30
        assert metrics["top5_correct"] >= metrics["top1_correct"]
        provenance = error["provenance"]
        assert provenance["packages"]["torch"].startswith(torch_version)
        assert provenance["python"]["version"].startswith(python)
        assert provenance["weights"]["source"] == "random" and len(provenance["weights"]["sha256"]) == 64
        assert provenance["runner"]["backend"] == "venv"
        assert provenance["dataset"]["images_selected"] == 30 and len(provenance["dataset"]["manifest_sha256"]) == 64
        assert provenance["preprocessing"]["resize"] == 256 and provenance["host"]["cpu_model"]
        with open(str(sample_run["work"] / "results" / "e2e" / metrics["predictions_file"])) as handle:
            rows = list(csv.reader(handle))
        assert rows[0][:3] == ["file", "label", "top1"] and len(rows) == 31
        throughput = results[(env, "resnet50", "throughput")]
        assert throughput["status"] == "ok", throughput["reason"]
        batches = throughput["metrics"]["batches"]
        assert [b["batch_size"] for b in batches] == [1, 2]
        assert all(b["images_per_s"] > 0 and b["latency_ms"]["p50"] <= b["latency_ms"]["p99"] for b in batches)
        parts = throughput["metrics"]["cold_start_breakdown_s"]
        assert throughput["metrics"]["cold_start_s"] == pytest.approx(sum(parts.values()), abs=0.05)


def test_a_model_missing_from_a_version_is_skipped_not_failed(sample_run):
    results = results_of(sample_run["work"] / "results" / "e2e")
    for suite in ("error", "throughput"):
        old = results[("torch-1.0", "mobilenet_v2", suite)]
        assert old["status"] == "skipped" and "not available in this version" in old["reason"]
        assert results[("torch-current", "mobilenet_v2", suite)]["status"] == "ok"


def test_same_checkpoint_predicts_the_same_on_the_same_version(sample_run):
    """Random weights are seeded: the per-image predictions are a function of the version."""
    results = results_of(sample_run["work"] / "results" / "e2e")
    old = results[("torch-1.0", "resnet50", "error")]["provenance"]["weights"]
    new = results[("torch-current", "resnet50", "error")]["provenance"]["weights"]
    assert old["seed"] == new["seed"] == 0


def drift_pairs(sample_run):
    data = json.loads((sample_run["work"] / "reports" / "e2e" / "report.json").read_text())
    return {(p["model"], p["from_env"], p["to_env"]): p for p in data["drift"]}


def test_drift_compares_each_version_pair_of_each_framework_on_one_checkpoint(sample_run):
    pairs = drift_pairs(sample_run)
    expected = {("resnet50", "torch-1.0", "torch-current"), ("mobilenet_v2", "torch-1.0", "torch-current")}
    for model in ("resnet50", "mobilenet_v2"):
        for rows in (("tf-1.13", "tf-2.1", "tf-current"), ("mxnet-1.4", "mxnet-1.5", "mxnet-1.9")):
            expected |= {(model, a, b) for i, a in enumerate(rows) for b in rows[i + 1:]}
    assert set(pairs) == expected
    # torchvision 0.2.2 has no MobileNetV2: the pair says why instead of comparing.
    assert pairs[("mobilenet_v2", "torch-1.0", "torch-current")]["status"] == "unavailable"
    assert "not available in this version" in pairs[("mobilenet_v2", "torch-1.0", "torch-current")]["reason"]
    for key, pair in pairs.items():
        if pair["status"] != "ok":
            assert pair["reason"], key
            continue
        # the checkpoint was loaded bit for bit; the outputs are close but need not be identical
        assert pair["weights_identical"] is True, key
        assert pair["images"] == 6 and 0 <= pair["top1_agreement"] <= 1 and pair["max_abs_diff"] >= 0
    for key in [("resnet50", "mxnet-1.4", "mxnet-1.9"), ("resnet50", "torch-1.0", "torch-current"),
                ("mobilenet_v2", "tf-1.13", "tf-current"), ("resnet50", "tf-2.1", "tf-current")]:
        assert pairs[key]["status"] == "ok", pairs[key]
    # Checkpoints that do not load, as measured: Keras rewrote ResNet50 after TF 1.13 (another
    # layer order), and GluonCV 0.5 changed MobileNetV2's parameters.
    assert pairs[("resnet50", "tf-1.13", "tf-2.1")]["status"] == "failed"
    assert "incompatible" in pairs[("resnet50", "tf-1.13", "tf-2.1")]["reason"]
    assert pairs[("mobilenet_v2", "mxnet-1.4", "mxnet-1.5")]["status"] == "failed"
    report = (sample_run["work"] / "reports" / "e2e" / "report.md").read_text()
    assert "## Drift across versions" in report and "| gluoncv | resnet50 | mxnet-1.4 -> mxnet-1.9 | ok |" in report


def test_report_has_published_numbers_reproduced_errors_and_throughput(sample_run):
    report = (sample_run["work"] / "reports" / "e2e" / "report.md").read_text()
    assert "| torch-1.0 (torchvision 0.2.2.post3) | resnet50 | random | 30 / 0 / 0 |" in report
    assert "23.85 / 7.13" in report and "23.87 / 7.14" in report  # old and current published tables
    assert "pytorch/vision docs/source/models.rst" in report
    assert "| tf-1.13 (tensorflow 1.13.1) | resnet50 | random | 30 / 0 / 0 |" in report
    assert "24.10 / 7.10" in report and "25.10 / 7.90" in report  # Keras table before / after its revision
    assert "keras-team/keras docs/templates/applications.md" in report and "keras-team/keras-io" in report
    assert "| mxnet-1.4 (gluoncv 0.4.0) | resnet50 | random | 30 / 0 / 0 |" in report
    assert "22.64 / 6.43" in report and "dmlc/gluon-cv" in report
    assert "not available in this version" in report
    rows = list(csv.DictReader(io.StringIO((sample_run["work"] / "reports" / "e2e" / "report.csv").read_text())))
    throughput = [r for r in rows if r["suite"] == "throughput" and r["status"] == "ok"]
    assert {(r["environment"], r["batch_size"]) for r in throughput if r["model"] == "resnet50"} == {
        (env, batch) for env, _, _, _ in ROWS for batch in ("1", "2")}
    data = json.loads((sample_run["work"] / "reports" / "e2e" / "report.json").read_text())
    assert data["schema_version"] == 6 and len(data["rows"]) == len(rows)
    assert {r["telemetry"] for r in throughput} == {"unavailable: device is cpu: there is no GPU to read"}
    assert "GPU telemetry unavailable (-): device is cpu: there is no GPU to read." in report


def test_rerun_reuses_every_result_and_force_reruns(sample_run):
    folder = sample_run["work"] / "results" / "e2e"
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    code, out = run_cli(sample_run["args"])
    # every row's cells, and the drift loads of older rows' checkpoints planned once those existed
    total = int(re.search(r"^(\d+) cells: \1 run now, 0 reused", sample_run["out"], re.M).group(1))
    assert total > len(ROWS) * 2 * 3
    assert code == 0 and "{} cells: 0 run now, {} reused".format(total, total) in out
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")} == before
    single = sample_run["args"][:-len(MODELS)] + [
        "--force", "--env", "torch-1.0", "--model", "resnet50", "--suite", "throughput"]
    code, out = run_cli(single)
    assert code == 0 and "1 cell: 1 run now, 0 reused" in out


def test_synthetic_jpegs_truncated_cmyk_and_grey(tmp_path):
    labels = make_flat_set(tmp_path / "val", count=4)
    matrix = write_matrix(tmp_path, suites=FAST_SUITES)
    code, out = run_cli(["run", "--matrix", str(matrix), "--weights", "random", "--imagenet", str(tmp_path / "val"),
                         "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"),
                         "--run", "synthetic", "--suite", "error", "--model", "resnet50",
                         "--env", "torch-1.0", "--env", "torch-current"])
    assert code == 0, out
    for env in ("torch-1.0", "torch-current"):
        result = results_of(tmp_path / "results" / "synthetic")[(env, "resnet50", "error")]
        metrics = result["metrics"]
        assert metrics["images_selected"] == len(labels)
        assert metrics["images_evaluated"] == len(labels) - 1
        assert metrics["unreadable_count"] == 1
        assert metrics["unreadable"][0]["file"] == "images/ILSVRC2012_val_00000103.JPEG"
        assert metrics["image_modes"] == {"RGB": 4, "L": 1, "CMYK": 1}


def test_failures_are_recorded_and_the_rest_goes_on(tmp_path):
    broken_env = '\n[environments.broken]\nframework = "torchvision"\npython = "3.11"\n' \
                 'packages = ["torch==0.0.1", "torchvision==0.0.1", "pillow==13.0.0", "numpy==2.4.6", "nvidia-ml-py==13.615.71"]\n'
    suites = FAST_SUITES.replace("iterations = 3\ntimeout_s = 900", "iterations = 3\ntimeout_s = 2")
    matrix = write_matrix(tmp_path, append=broken_env, suites=suites)
    code, out = run_cli(["run", "--matrix", str(matrix), "--weights", "random", "--env", "broken",
                         "--env", "torch-current", "--model", "resnet50",
                         "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"),
                         "--run", "failing"])
    assert code == 1
    results = results_of(tmp_path / "results" / "failing")
    broken = results[("broken", "resnet50", "throughput")]
    assert broken["status"] == "failed" and "building environment broken failed" in broken["reason"]
    assert "torch==0.0.1" in broken["reason"] or "No matching distribution" in broken["reason"]
    fault_case("a row whose packages cannot be installed", "every cell of that row is `failed` with pip's own "
               "error line and the log; the other rows go on", broken["reason"], group="environments")
    timed_out = results[("torch-current", "resnet50", "throughput")]
    assert timed_out["status"] == "timeout" and "timed out after 2 s" in timed_out["reason"]
    assert results[("torch-current", "resnet50", "error")]["status"] == "skipped"
    assert not list((tmp_path / "results" / "failing" / ".work").iterdir()), "scratch folders left behind"
    report = (tmp_path / "reports" / "failing" / "report.md").read_text()
    assert "timed out after 2 s" in report and "building environment broken failed" in report


def test_engine_settings_run_where_the_version_has_them_and_are_skipped_where_not(tmp_path):
    """--engine channels_last + bf16 through the real pipeline: current PyTorch runs them (and says so),
    torch 1.0 and MXNet cannot and are skipped with the reason; the report labels the rows."""
    matrix = write_matrix(tmp_path, suites=FAST_SUITES)
    code, out = run_cli(["run", "--matrix", str(matrix), "--weights", "random", "--suite", "throughput",
                         "--model", "resnet50", "--env", "torch-current", "--env", "torch-1.0", "--env", "mxnet-1.9",
                         "--engine", "channels_last=true", "--engine", "precision=bf16",
                         "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"),
                         "--run", "engine"])
    assert code == 0, out
    results = results_of(tmp_path / "results" / "engine")
    current = results[("torch-current", "resnet50", "throughput")]
    assert current["status"] == "ok", current["reason"]
    assert current["provenance"]["engine_requested"]["precision"] == "bf16"
    settings = current["provenance"]["settings"]
    assert settings["memory_format"] == "channels_last" and settings["autocast"] == "torch.autocast(cpu, bfloat16)"
    old = results[("torch-1.0", "resnet50", "throughput")]
    assert old["status"] == "skipped" and old["reason"] == "channels_last needs torch >= 1.5 " \
        "(torch.channels_last); this row has torch 1.0.1"
    mxnet = results[("mxnet-1.9", "resnet50", "throughput")]
    assert mxnet["status"] == "skipped" and "MXNet/GluonCV is run in float32 or float16" in mxnet["reason"]
    report = (tmp_path / "reports" / "engine" / "report.md").read_text()
    assert "torch-current (torchvision 0.29.1) [bf16, channels_last] | resnet50 | cpu | 2 |" in report
