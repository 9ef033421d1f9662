"""Verdicts on stored results: planted changes are found, identical runs give none, every pair is judged."""

import csv
import io
import json

import numpy as np
import pytest

from runner.cli import main
from runner.matrix import load_matrix
from runner.results import ResultStore
from runner.verdicts.judge import judge

from .matrices import REAL

ROWS = {"mxnet-1.4": ("1.4.1", "0.4.0"), "mxnet-1.5": ("1.5.1.post0", "0.5.0"), "mxnet-1.9": ("1.9.1", "0.10.5.post0")}


def _result(store, env, suite, metrics, cell_id, weights="random", files=None):
    mxnet, gluoncv = ROWS[env]
    result = {
        "schema_version": 1, "cell_id": cell_id, "suite": suite, "environment": env, "framework": "gluoncv",
        "model": "resnet50", "status": "ok", "reason": None, "metrics": metrics, "files": files or {},
        "ended_at": "2026-11-30T00:00:00+00:00",
        "provenance": {"packages": {"mxnet": mxnet, "gluoncv": gluoncv}, "device_requested": "cpu",
                       "engine_requested": {"precision": "fp32"}, "weights": {"source": weights, "sha256": "w"}},
    }
    store.put(result, replace=True)
    return result


def _error(store, env, cell_id, correct, weights="random"):
    """An error result whose per-image top-1 is right where `correct` is True."""
    name = "{}.predictions.csv".format(cell_id)
    with open(str(store.root / name), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "top1", "top2", "top3", "top4", "top5"])
        for i, ok in enumerate(correct):
            label = i % 1000
            top1 = label if ok else (label + 1) % 1000
            writer.writerow(["img{:05d}.JPEG".format(i), label, top1, (label + 2) % 1000, 3, 4, 5])
    n, right = len(correct), int(np.sum(correct))
    metrics = {"images_evaluated": n, "top1_correct": right, "top5_correct": right,
               "top1_error": 100.0 * (n - right) / n, "top5_error": 100.0 * (n - right) / n}
    return _result(store, env, "error", metrics, cell_id, weights, {"predictions": name})


def _throughput(store, env, cell_id, rates, cold=2.0):
    metrics = {"cold_start_s": cold, "batches": [{"batch_size": 16, "images_per_s": float(np.median(rates)),
                                                  "images_per_s_trials": list(rates)}]}
    return _result(store, env, "throughput", metrics, cell_id)


@pytest.fixture
def matrix():
    return load_matrix(REAL)


def _by(judgement, kind, before=None, after=None):
    return [v for v in judgement.verdicts if v.kind == kind and (before is None or v.before == before)
            and (after is None or v.after == after)]


def test_planted_accuracy_and_speed_changes_are_found_and_every_pair_is_judged(tmp_path, matrix):
    store = ResultStore(tmp_path / "run")
    store.root.mkdir()
    rng = np.random.RandomState(0)
    base = rng.rand(2000) < 0.76
    worse = base & (rng.rand(2000) > 0.06)  # about 4.5 points more error, on the same images
    _error(store, "mxnet-1.4", "e14", base)
    _error(store, "mxnet-1.5", "e15", base)
    _error(store, "mxnet-1.9", "e19", worse)
    noise = lambda level: level * np.exp(rng.normal(0, 0.02, 5))  # noqa: E731
    _throughput(store, "mxnet-1.4", "t14", noise(100))
    _throughput(store, "mxnet-1.5", "t15", noise(100))
    _throughput(store, "mxnet-1.9", "t19", noise(55), cold=5.0)
    results, _ = store.load_all()
    judgement = judge(matrix, store, results)

    error = {(v.before, v.after): v for v in _by(judgement, "error")}
    assert set(error) == {("mxnet-1.4", "mxnet-1.5"), ("mxnet-1.5", "mxnet-1.9"), ("mxnet-1.4", "mxnet-1.9")}
    assert error[("mxnet-1.4", "mxnet-1.5")].verdict == "same"
    assert error[("mxnet-1.5", "mxnet-1.9")].verdict == "worse"
    assert error[("mxnet-1.4", "mxnet-1.9")].relation == "oldest -> newest"
    low, high = error[("mxnet-1.5", "mxnet-1.9")].evidence["top1"]["interval_points"]
    assert 0 < low < error[("mxnet-1.5", "mxnet-1.9")].evidence["top1"]["difference_points"] < high

    speed = {(v.before, v.after): v for v in _by(judgement, "throughput")}
    assert speed[("mxnet-1.5", "mxnet-1.9")].verdict == "slower"
    assert speed[("mxnet-1.4", "mxnet-1.5")].verdict == "no change"
    assert speed[("mxnet-1.5", "mxnet-1.9")].evidence["interval"][1] < 1 / 1.25
    cold = {(v.before, v.after): v.verdict for v in _by(judgement, "cold_start")}
    assert cold[("mxnet-1.5", "mxnet-1.9")] == "slower" and cold[("mxnet-1.4", "mxnet-1.5")] == "no change"
    assert all(v.q_value >= v.p_value for v in judgement.verdicts if v.p_value is not None)

    findings = judgement.findings()
    assert findings[0].regression and {f.verdict for f in findings} >= {"worse", "slower"}
    assert not any(f.verdict in ("same", "no change") for f in findings)


def test_identical_runs_give_no_regression_against_a_baseline(tmp_path, matrix):
    rng = np.random.RandomState(1)
    stores = []
    correct = rng.rand(500) < 0.7
    for name in ("a", "b"):
        store = ResultStore(tmp_path / name)
        store.root.mkdir()
        for env in ROWS:
            _error(store, env, "e" + env, correct)
            _throughput(store, env, "t" + env, 100 * np.exp(rng.normal(0, 0.03, 5)))
        stores.append(store)
    judgement = judge(matrix, stores[1], stores[1].load_all()[0], stores[0], stores[0].load_all()[0], "a")
    assert not judgement.regressions()
    assert {v.verdict for v in _by(judgement, "error")} == {"same"}
    assert {v.verdict for v in _by(judgement, "throughput")} <= {"no change", "inconclusive"}
    assert judgement.noise["pairs"] == 3 and judgement.noise["largest_factor"] < 1.25


def test_too_few_images_is_inconclusive_and_says_how_many_would_decide(tmp_path, matrix):
    store = ResultStore(tmp_path / "run")
    store.root.mkdir()
    _error(store, "mxnet-1.5", "a", np.array([True] * 20 + [False] * 10))
    _error(store, "mxnet-1.9", "b", np.array([True] * 18 + [False] * 12))
    (verdict,) = _by(judge(matrix, store, store.load_all()[0]), "error")
    assert verdict.verdict == "inconclusive" and "images would decide" in verdict.summary


def test_published_numbers_reproduce_differ_or_cannot_be_tested(tmp_path, matrix):
    store = ResultStore(tmp_path / "run")
    store.root.mkdir()
    published = matrix.model("resnet50").variant("gluoncv").published_for("0.5.0").top1_error
    n = 50000
    close = np.arange(n) >= round(n * published / 100)  # exactly the published error on 50k images
    _error(store, "mxnet-1.5", "p15", close, weights="pretrained")
    _error(store, "mxnet-1.9", "p19", np.arange(n) >= round(n * (published + 3) / 100), weights="pretrained")
    _error(store, "mxnet-1.4", "p14", close[::167], weights="pretrained")  # 300 images, the same error
    verdicts = {v.after: v for v in _by(judge(matrix, store, store.load_all()[0]), "published")}
    assert verdicts["mxnet-1.5"].verdict == "reproduces"
    assert verdicts["mxnet-1.9"].verdict == "differs" and "+3.0" in verdicts["mxnet-1.9"].summary
    assert verdicts["mxnet-1.4"].verdict == "not testable" and "images resolve" in verdicts["mxnet-1.4"].summary


def test_compare_command_prints_findings_and_fails_on_a_regression(tmp_path):
    store = ResultStore(tmp_path / "results" / "run")
    store.root.mkdir(parents=True)
    rng = np.random.RandomState(2)
    _throughput(store, "mxnet-1.5", "t15", 100 * np.exp(rng.normal(0, 0.02, 5)))
    _throughput(store, "mxnet-1.9", "t19", 50 * np.exp(rng.normal(0, 0.02, 5)))
    args = ["compare", "--matrix", str(REAL), "--run", "run", "--results-dir", str(tmp_path / "results")]
    out = io.StringIO()
    assert main(args, out=out) == 0
    assert out.getvalue().startswith("SLOWER: gluoncv resnet50 throughput batch 16 (mxnet-1.5 -> mxnet-1.9)")
    assert main(args + ["--fail-on", "regression"], out=io.StringIO()) == 1
    out = io.StringIO()
    assert main(args + ["--format", "json"], out=out) == 0
    assert json.loads(out.getvalue())["findings"][0]["verdict"] == "slower"
    assert main(["compare", "--matrix", str(REAL), "--run", "nope", "--results-dir", str(tmp_path)],
                out=io.StringIO()) == 2


def _drift(store, env, cell_id, outputs, sha="c" * 64, loads=None, status="ok"):
    name = "{}.outputs-0.npy".format(cell_id)
    np.save(str(store.root / name), outputs)
    evaluation = {"status": "ok", "origin": env, "origin_cell": cell_id, "checkpoint_sha256": sha,
                  "tensor_digest": "t", "outputs_file": "outputs-0.npy"}
    metrics = {"output_kind": "logits", "images": len(outputs), "files": ["a.JPEG"], "input_sha256": "i",
               "checkpoint": None if loads else {"file": "checkpoint.params", "sha256": sha},
               "evaluations": [evaluation]}
    result = _result(store, env, "drift", metrics if status == "ok" else None, cell_id)
    result.update(status=status, reason=None if status == "ok" else "not available in this version")
    if loads:
        result.update(drift_origin=loads, drift_checkpoint=sha)
    store.put(result, replace=True)


def test_drift_pairs_are_judged_and_a_missing_checkpoint_is_said(tmp_path, matrix):
    store = ResultStore(tmp_path / "run")
    store.root.mkdir()
    outputs = np.random.RandomState(4).standard_normal((6, 10)).astype(np.float32)
    _drift(store, "mxnet-1.4", "w14", outputs, status="skipped")
    _drift(store, "mxnet-1.5", "w15", outputs)
    _drift(store, "mxnet-1.9", "w19", outputs + 1)
    _drift(store, "mxnet-1.9", "l19", outputs + 1e-6, loads="mxnet-1.5")
    verdicts = {(v.before, v.after): v for v in _by(judge(matrix, store, store.load_all()[0]), "drift")}
    assert verdicts[("mxnet-1.5", "mxnet-1.9")].verdict == "numerically close"
    assert verdicts[("mxnet-1.4", "mxnet-1.5")].verdict == "not compared"
    assert "mxnet-1.4's drift cell is skipped" in verdicts[("mxnet-1.4", "mxnet-1.9")].summary
    _drift(store, "mxnet-1.9", "l19", outputs[:, ::-1].copy(), loads="mxnet-1.5")
    verdicts = {(v.before, v.after): v for v in _by(judge(matrix, store, store.load_all()[0]), "drift")}
    assert verdicts[("mxnet-1.5", "mxnet-1.9")].verdict == "predictions changed"
    assert verdicts[("mxnet-1.5", "mxnet-1.9")].regression


def test_a_slowdown_timed_on_a_busy_machine_is_not_called_slower(tmp_path, matrix):
    store = ResultStore(tmp_path / "run")
    store.root.mkdir()
    rng = np.random.RandomState(5)
    _throughput(store, "mxnet-1.5", "t15", 100 * np.exp(rng.normal(0, 0.02, 5)))
    busy = _throughput(store, "mxnet-1.9", "t19", 5 * np.exp(rng.normal(0, 0.02, 5)), cold=9.0)
    busy["metrics"]["batches"][0]["cpu_other_share_trials"] = [0.5, 0.5, 0.48, 0.5, 0.5]
    busy["metrics"]["cold_start_cpu_other_share"] = 0.45
    store.put(busy, replace=True)
    judgement = judge(matrix, store, store.load_all()[0])
    (speed,) = _by(judgement, "throughput")
    assert speed.verdict == "inconclusive" and "mxnet-1.9 50% of all cores" in speed.summary
    (cold,) = _by(judgement, "cold_start")
    assert cold.verdict == "inconclusive" and "busy" in cold.summary
    assert not judgement.regressions()


def test_a_batch_size_that_ran_out_of_memory_is_not_judged_and_the_others_are(tmp_path, matrix):
    store = ResultStore(tmp_path / "run")
    store.root.mkdir()
    rng = np.random.RandomState(7)
    oom = {"batch_size": 256, "status": "out_of_memory", "reason": "out of memory at batch 256, peak 79000 MiB"}
    for env, cell_id in (("mxnet-1.4", "t14"), ("mxnet-1.5", "t15"), ("mxnet-1.9", "t19")):
        result = _throughput(store, env, cell_id, 100 * np.exp(rng.normal(0, 0.02, 5)))
        if env != "mxnet-1.4":  # 1.4 fits batch 256, the later ones do not: no rate to compare, no verdict
            result["metrics"]["batches"].append(dict(oom))
        else:
            result["metrics"]["batches"].append({"batch_size": 256, "status": "ok", "images_per_s": 90.0,
                                                 "images_per_s_trials": [90.0] * 5})
        store.put(result, replace=True)
    judgement = judge(matrix, store, store.load_all()[0])
    speed = _by(judgement, "throughput")
    assert speed and {v.batch_size for v in speed} == {16}
    assert all(v.verdict == "no change" for v in speed)
