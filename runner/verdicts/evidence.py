"""Evidence for one pair of results, before any multiple-comparison adjustment.

Each function reads the two results (and the error suite's per-image predictions) and returns
the numbers a verdict is decided on; `decide.py` turns them into verdicts once every p-value
of the comparison is known, so the false-discovery rate is controlled over all of them.
"""

import csv
from statistics import median

from ..probe.throughput import measured_batches
from ..stats import wilson_interval
from .stats import binomial_p, hodges_lehmann_ratio, mcnemar_exact, paired_difference_interval


def read_predictions(store, result):
    """{file: (label, [top-5 classes])} from <cell id>.predictions.csv."""
    # adopt_outputs names the side file <cell id>.predictions.csv, beside the result
    name = (result.get("files") or {}).get("predictions")
    path = store.root / name if name else None
    if path is None or not path.is_file():
        return None
    with open(str(path), newline="") as handle:
        return {row["file"]: (int(row["label"]), [int(row["top{}".format(k)]) for k in range(1, 6)])
                for row in csv.DictReader(handle)}


def _weights(result):
    """(source, identity): the digest of the loaded tensors where recorded, else the file's sha256.
    torch.save writes a new file each time (zip metadata) for the same tensors, so the file's
    digest alone would call identical weights different."""
    weights = (result.get("provenance") or {}).get("weights") or {}
    return weights.get("source"), weights.get("tensor_digest") or weights.get("sha256")


def paired_table(before, after, files, correct):
    """(both right, right before only, right after only, neither) over `files` of two read_predictions()."""
    both = only_a = only_b = neither = 0
    for name in files:
        a, b = correct(before[name]), correct(after[name])
        both += a and b
        neither += not a and not b
        only_a += a and not b
        only_b += b and not a
    return both, only_a, only_b, neither


def error_evidence(pair):
    """Paired comparison of top-1 and top-5 correctness on the images both results evaluated."""
    before = read_predictions(pair.before.store, pair.before.result)
    after = read_predictions(pair.after.store, pair.after.result)
    if before is None or after is None:
        return {"comparable": False, "reason": "per-image predictions are missing for {}".format(
            pair.before.env if before is None else pair.after.env)}
    files = sorted(name for name in before if name in after and before[name][0] == after[name][0])
    if not files:
        return {"comparable": False, "reason": "the two results share no labelled image"}
    evidence = {"comparable": True, "images": len(files), "images_before": len(before), "images_after": len(after),
                "changed_top1_class": sum(before[f][1][0] != after[f][1][0] for f in files)}
    for name, correct in (("top1", lambda p: p[1][0] == p[0]), ("top5", lambda p: p[0] in p[1])):
        both, only_a, only_b, neither = paired_table(before, after, files, correct)
        n = len(files)
        low, high = paired_difference_interval(both, only_a, only_b, neither)
        # error difference after - before = -(accuracy difference after - before)
        evidence[name] = {
            "error_before": 100.0 * (only_b + neither) / n, "error_after": 100.0 * (only_a + neither) / n,
            "difference_points": 100.0 * (only_a - only_b) / n, "interval_points": [-high, -low],
            "right_before_only": only_a, "right_after_only": only_b, "p_value": mcnemar_exact(only_a, only_b)}
    weights = _weights(pair.before.result), _weights(pair.after.result)
    evidence["weights"] = {"before": {"source": weights[0][0], "digest": weights[0][1]},
                           "after": {"source": weights[1][0], "digest": weights[1][1]},
                           "same": weights[0][1] is not None and weights[0][1] == weights[1][1]}
    return evidence


def throughput_evidence(pair, batch_size):
    """Hodges-Lehmann ratio after/before of one batch size's trial rates, with its interval."""
    rates, busy = [], []
    for side in (pair.before, pair.after):
        batches = {b["batch_size"]: b for b in measured_batches(side.result["metrics"])}  # not out-of-memory ones
        batch = batches.get(batch_size)
        if batch is None:
            return None
        rates.append(batch.get("images_per_s_trials") or [batch["images_per_s"]])
        shares = [v for v in batch.get("cpu_other_share_trials") or [] if v is not None]
        busy.append(max(shares) if shares else None)
    ratio, interval, reached, p_value = hodges_lehmann_ratio(rates[0], rates[1])
    return {"batch_size": batch_size, "trials": [len(rates[0]), len(rates[1])],
            "images_per_s": [median(rates[0]), median(rates[1])], "ratio_of_medians": median(rates[1]) / median(rates[0]),
            "ratio": ratio, "interval": list(interval), "confidence": reached, "p_value": p_value,
            "cpu_other_share": busy}


def cold_start_evidence(pair):
    values = [side.result["metrics"].get("cold_start_s") for side in (pair.before, pair.after)]
    if None in values or not values[0]:
        return None
    busy = [side.result["metrics"].get("cold_start_cpu_other_share") for side in (pair.before, pair.after)]
    return {"cold_start_s": values, "ratio": values[1] / values[0], "samples": [1, 1], "cpu_other_share": busy}


def published_evidence(result, published, resolve_points):
    """Where the published top-1 error lies against the reproduced one's 95% interval."""
    metrics = result["metrics"]
    n, error = metrics["images_evaluated"], metrics["top1_error"]
    errors = n - metrics["top1_correct"]
    low, high = wilson_interval(errors, n)
    return {"images": n, "reproduced": error, "interval": [low, high], "published": published.top1_error,
            # exact binomial test of the errors against the published rate; adjusted over the run's checks
            "p_value": binomial_p(errors, n, published.top1_error / 100),
            "published_top5": published.top5_error, "reproduced_top5": metrics["top5_error"],
            "difference_points": error - published.top1_error, "source": published.source,
            "revision": published.revision, "resolve_points": resolve_points,
            "half_width": (high - low) / 2}
