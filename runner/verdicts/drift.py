"""Compare step: version pairs of one framework on the same seeded checkpoint (the drift suite).

For a newer version B that loaded the checkpoint an older version A wrote, A's outputs on its
own checkpoint are compared with B's on the same file: were the inputs (preprocessing) and the
loaded weights bit-identical, how far apart are the outputs, and do the top-1 / top-5
predictions agree. Keras models end in a softmax, so their outputs are compared as
log-probabilities (logits up to a per-image constant).
"""

import numpy as np

from ..results import latest_results

TINY = 1e-37  # below float32's smallest normal: log() stays finite


def _comparable(outputs, kind):
    outputs = outputs.astype(np.float64)
    if kind == "probabilities":
        return np.log(np.maximum(outputs, TINY)), "log-probabilities"
    return outputs, "logits"


def _top5(outputs):
    return np.sort(np.argsort(-outputs, axis=1, kind="stable")[:, :5], axis=1)


def compare_pair(reference, candidate, kind):
    """Statistics between two output arrays (images x classes) of the same images."""
    a, compared = _comparable(reference, kind)
    b, _ = _comparable(candidate, kind)
    diff = np.abs(a - b)
    return {
        "compared_as": compared,
        # the scale a tolerance is relative to: the largest reference output
        "reference_scale": float(np.abs(a).max()),
        "outputs_identical": bool(np.array_equal(reference, candidate)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1))),
        "top5_agreement": float(np.mean(np.all(_top5(a) == _top5(b), axis=1))),
    }


def compare_versions(store, results):
    """One record per (framework, model, older version -> newer version) the drift results cover.

    `results` are the run's results (store.load_all()); the store gives the outputs' side files.
    """
    by_id = {result["cell_id"]: result for result in results}
    pairs = []
    for (_env, _model, suite, _engine), newer in sorted(latest_results(results).items()):
        if suite != "drift" or newer["status"] != "ok":
            continue
        # The first evaluation is its own checkpoint: the reference for the versions after it.
        for evaluation in newer["metrics"]["evaluations"][1:]:
            pairs.append(_pair(store, newer, by_id.get(evaluation["origin_cell"]), evaluation))
    return pairs


def _pair(store, newer, older, evaluation):
    record = {
        "framework": newer["framework"], "model": newer["model"], "from_env": evaluation["origin"],
        "to_env": newer["environment"], "from_cell": evaluation["origin_cell"], "to_cell": newer["cell_id"],
        "status": evaluation["status"], "reason": evaluation.get("reason"),
        "checkpoint_sha256": evaluation.get("checkpoint_sha256"), "images": newer["metrics"]["images"],
    }
    if evaluation["status"] != "ok":
        return record
    if older is None or older["status"] != "ok":
        record.update(status="unavailable", reason="the drift result of {} is gone".format(evaluation["origin"]))
        return record
    own = older["metrics"]["evaluations"][0]
    if own.get("checkpoint_sha256") != evaluation["checkpoint_sha256"]:
        record.update(status="stale", reason="{} wrote a new checkpoint since {} ran; re-run {} (--force)".format(
            evaluation["origin"], newer["environment"], newer["environment"]))
        return record
    if older["metrics"]["files"] != newer["metrics"]["files"]:
        record.update(status="failed", reason="the two versions evaluated different images")
        return record
    reference = np.load(str(store.side_file(older["cell_id"], own["outputs_file"])))
    candidate = np.load(str(store.side_file(newer["cell_id"], evaluation["outputs_file"])))
    record.update(
        inputs_identical=older["metrics"]["input_sha256"] == newer["metrics"]["input_sha256"],
        weights_identical=own["tensor_digest"] == evaluation["tensor_digest"],
        **compare_pair(reference, candidate, newer["metrics"]["output_kind"]))
    return record
