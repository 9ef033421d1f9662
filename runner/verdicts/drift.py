"""Compare step: version pairs of one framework on the same seeded checkpoint (the drift suite).

For a newer version B that loaded the checkpoint an older version A wrote, A's outputs on its
own checkpoint are compared with B's on the same file: were the inputs (preprocessing) and the
loaded weights bit-identical, how far apart are the outputs, and do the top-1 / top-5
predictions agree. Keras models end in a softmax, so their outputs are compared as
log-probabilities (logits up to a per-image constant).
"""

import numpy as np

from ..results import latest_results

TINY = 1e-37  # just above float32's smallest normal (1.2e-38): log() stays finite, and every subnormal is clipped


def _comparable(outputs, kind):
    outputs = outputs.astype(np.float64)
    if kind == "probabilities":
        return np.log(np.maximum(outputs, TINY)), "log-probabilities"
    return outputs, "logits"


def _top5(outputs):
    return np.sort(np.argsort(-outputs, axis=1, kind="stable")[:, :5], axis=1)


def bit_identical(a, b):
    """The same bits: a NaN where the other has the same NaN counts as identical (np.array_equal says not),
    -0.0 against 0.0 does not (np.array_equal says it is)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def compare_pair(reference, candidate, kind):
    """Statistics between two output arrays (images x classes) of the same images."""
    a, compared = _comparable(reference, kind)
    b, _ = _comparable(candidate, kind)
    diff = np.abs(a - b)
    top1 = np.argmax(a, axis=1) == np.argmax(b, axis=1)
    top5 = np.all(_top5(a) == _top5(b), axis=1)
    return {
        "compared_as": compared,
        "reference_scale": _scale(a, reference, kind),
        "outputs_identical": bit_identical(reference, candidate),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float(np.mean(top1)),
        "top5_agreement": float(np.mean(top5)),
        "images": int(a.shape[0]),
        "top1_changed": int(np.sum(~top1)),
        "top5_changed": int(np.sum(~top5)),
    }


def _scale(compared, reference, kind):
    """The scale a tolerance is relative to: the largest reference output. A probability that underflowed
    to (nearly) 0 is left out: its log, clipped at log(TINY) = -85, would set the scale of every model
    whose softmax underflows anywhere, four times that of its logits."""
    if kind == "probabilities":
        compared = compared[reference >= TINY]
    return float(np.abs(compared).max()) if compared.size else 0.0


def compare_versions(store, results):
    """One record per (framework, model, older version -> newer version) the drift results cover:
    each load cell (a newer version on an older version's checkpoint file) against every older
    version whose writer cell wrote that very file (versions that write bit-identical files share
    one load). `results` are the run's results (store.load_all()); the store gives the outputs."""
    from .pairs import version_key

    latest = latest_results(results)
    writers = {}  # (framework, model, engine, checkpoint sha256) -> writer results
    for key, result in latest.items():
        if key[2] == "drift" and not key[4] and result["status"] == "ok" and result["metrics"].get("checkpoint"):
            sha = result["metrics"]["checkpoint"]["sha256"]
            writers.setdefault((result["framework"], key[1], key[3], sha), []).append(result)
    pairs = []
    for key, newer in sorted(latest.items()):
        if key[2] != "drift" or not key[4] or newer["status"] != "ok":
            continue
        evaluation = newer["metrics"]["evaluations"][0]
        for older in sorted(writers.get((newer["framework"], key[1], key[3], key[4]), []), key=version_key):
            if version_key(older) < version_key(newer):
                pairs.append(pair_record(store, newer, older, dict(evaluation, origin=older["environment"],
                                                             origin_cell=older["cell_id"])))
    return pairs + _unavailable(latest, version_key)


def _unavailable(latest, version_key):
    """A pair whose older version wrote no checkpoint (skipped, failed) is listed with that reason, not dropped."""
    groups = {}
    for key, result in latest.items():
        if key[2] == "drift" and not key[4]:
            groups.setdefault((result["framework"], key[1], key[3]), []).append(result)
    records = []
    for (framework, model, _engine), writers in sorted(groups.items()):
        writers.sort(key=version_key)
        for i, older in enumerate(writers):
            if older["status"] == "ok":
                continue
            for newer in writers[i + 1:]:
                records.append({
                    "framework": framework, "model": model, "from_env": older["environment"],
                    "to_env": newer["environment"], "from_cell": older["cell_id"], "to_cell": newer["cell_id"],
                    "status": "unavailable", "images": (newer.get("metrics") or {}).get("images"),
                    "reason": "{}'s drift cell is {}: {}".format(older["environment"], older["status"],
                                                                 older.get("reason"))})
    return records


def pair_record(store, newer, older, evaluation):
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
