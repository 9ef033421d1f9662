"""Change points along a framework's versions (four or more of them), so a slow drift over
several releases is seen as well as a step between two.

ruptures' PELT on the per-version values, with a BIC-style penalty scaled by the noise each
value carries (the spread of its trials, or the binomial variance of an error rate), and a
step reported only when it is also larger than the noise factor the pairwise verdicts use.
"""

import math

import numpy as np

from ..probe.throughput import measured_batches
from .decide import noise_factor
from .pairs import version_label
from .verdict import Verdict

MIN_VERSIONS = 4


def _throughput_series(sequence, batch_size):
    values, variances = [], []
    for side in sequence:
        if side.result["status"] != "ok":
            return None
        batch = {b["batch_size"]: b for b in measured_batches(side.result["metrics"])}.get(batch_size)
        if batch is None:
            return None
        logs = np.log(batch.get("images_per_s_trials") or [batch["images_per_s"]])
        values.append(float(np.median(logs)))
        # the variance of a median of n values is about pi/2 times that of their mean
        variances.append(math.pi / 2 * float(np.var(logs, ddof=1)) / len(logs) if len(logs) > 1 else 0.0)
    return np.array(values), float(np.mean(variances))


def _error_series(sequence):
    values, variances = [], []
    for side in sequence:
        if side.result["status"] != "ok":
            return None
        metrics = side.result["metrics"]
        p = metrics["top1_error"] / 100
        values.append(100 * p)
        variances.append(1e4 * max(p * (1 - p), 1e-4) / metrics["images_evaluated"])
    return np.array(values), float(np.mean(variances))


def change_points(values, variance, min_step):
    """(first, last, step): the level changes between values[first-1] and values[last], by `step`."""
    import ruptures

    n = len(values)
    if n < MIN_VERSIONS:
        return []
    penalty = 2 * math.log(n) * max(variance, 1e-12)
    breaks = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(values.reshape(-1, 1)).predict(pen=penalty)[:-1]
    found, edges = [], [0] + breaks + [n]
    for k, index in enumerate(breaks):
        step = float(np.mean(values[index:edges[k + 2]]) - np.mean(values[edges[k]:index]))
        if abs(step) > min_step:
            found.append((index, step))
    return _runs(found)


def _runs(found):
    """Adjacent steps the same way are one gradual change: (first index, last index, total step)."""
    merged = []
    for index, step in found:
        if merged and merged[-1][1] == index - 1 and (merged[-1][2] > 0) == (step > 0):
            first, _, total = merged.pop()
            merged.append((first, index, total + step))
        else:
            merged.append((index, index, step))
    return merged


def sequence_verdicts(sequences, settings):
    verdicts = []
    for (framework, model, suite, engine), sequence in sequences.items():
        if len(sequence) < MIN_VERSIONS or suite not in ("throughput", "error"):
            continue
        if suite == "error":
            series = [(None, _error_series(sequence), settings.error_margin_points, "top-1 error {:+.2f} points")]
        else:
            factor = noise_factor(settings, sequence[-1].result)
            batches = [b["batch_size"] for b in measured_batches(sequence[-1].result.get("metrics"))]
            series = [(b, _throughput_series(sequence, b), math.log(factor), "images/s x{:.3f}") for b in batches]
        for batch, found, min_step, fmt in series:
            if found is None:
                continue
            values, variance = found
            for first, last, step in change_points(values, variance, min_step):
                before, after = sequence[first - 1].result, sequence[last].result
                shown = math.exp(step) if suite == "throughput" else step
                what = "step" if first == last else "gradual change over {} releases".format(last - first + 1)
                verdicts.append(Verdict(
                    kind="sequence", framework=framework, model=model, engine=engine, before=before["environment"],
                    after=after["environment"], before_version=version_label(before),
                    after_version=version_label(after), relation="sequence", verdict="step", batch_size=batch,
                    summary="{} {} along {} versions: level {} from {} to {} (PELT, penalty 2 ln(n) x "
                            "variance)".format(suite, what, len(sequence), fmt.format(shown), version_label(before),
                                               version_label(after)),
                    evidence={"suite": suite, "step": step, "values": values.tolist(), "variance": variance,
                              "versions": [version_label(s.result) for s in sequence]},
                    cells=(before["cell_id"], after["cell_id"])))
    return verdicts
