"""Change points along a framework's versions (four or more of them), so a slow drift over
several releases is seen as well as a step between two.

ruptures' PELT on the per-version values, with a BIC-style penalty scaled by the noise each
value carries (the spread of its trials, or for error rates the images whose outcome changed between
neighbouring versions, which evaluate the same images), and a
step reported only when it is also larger than the noise factor the pairwise verdicts use, and for error
rates when the versions on either side of it differ by the exact McNemar test as well.
"""

import math

import numpy as np

from ..probe.throughput import measured_batches
from .decide import noise_factor
from .evidence import paired_table, read_predictions
from .pairs import version_label
from .stats import mcnemar_exact
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
    """The top-1 errors (points) and the variance of their noise. The versions evaluate the same images, so a
    difference between neighbours varies only with the images whose outcome changed (d of n: d / n^2), far
    less than two independent error rates would (2 p (1 - p) / n); each value carries half of that. The
    independent binomial variance stands where per-image predictions are missing."""
    values, variances = [], []
    for side in sequence:
        if side.result["status"] != "ok":
            return None
        metrics = side.result["metrics"]
        p = metrics["top1_error"] / 100
        values.append(100 * p)
        variances.append(1e4 * max(p * (1 - p), 1e-4) / metrics["images_evaluated"])
    paired = _paired_variance(sequence)
    return np.array(values), float(np.mean(variances) if paired is None else paired)


def _discordant(before, after):
    """(images top-1 right before only, right after only, images both evaluated with one label) of two versions,
    or None without their per-image predictions."""
    a, b = read_predictions(before.store, before.result), read_predictions(after.store, after.result)
    if a is None or b is None:
        return None
    shared = [name for name in a if name in b and a[name][0] == b[name][0]]
    if not shared:
        return None
    _, only_before, only_after, _ = paired_table(a, b, shared, lambda p: p[1][0] == p[0])
    return only_before, only_after, len(shared)


def _mcnemar_across(before, after):
    """The exact McNemar p-value of top-1 correctness between two versions, or None."""
    counts = _discordant(before, after)
    return None if counts is None else mcnemar_exact(counts[0], counts[1])


def _paired_variance(sequence):
    """Half the mean variance (points^2) of the neighbours' paired differences, or None."""
    halves = []
    for before, after in zip(sequence, sequence[1:]):
        counts = _discordant(before, after)
        if counts is None:
            return None
        only_before, only_after, shared = counts
        # at least one changed image's worth: two versions that agreed here may not everywhere
        halves.append(1e4 * max(only_before + only_after, 1) / shared ** 2 / 2)
    return float(np.mean(halves))


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
                confirmed = ""
                if suite == "error":
                    # PELT's penalty is a weak test (a step of 1.4 standard errors passes it): the versions on
                    # either side must also differ by the exact test their pairwise verdict takes
                    p_value = _mcnemar_across(sequence[first - 1], sequence[last])
                    if p_value is not None and p_value >= settings.alpha:
                        continue
                    confirmed = "" if p_value is None else "; McNemar p={:.3g} across it".format(p_value)
                before, after = sequence[first - 1].result, sequence[last].result
                shown = math.exp(step) if suite == "throughput" else step
                what = "step" if first == last else "gradual change over {} releases".format(last - first + 1)
                verdicts.append(Verdict(
                    kind="sequence", framework=framework, model=model, engine=engine, before=before["environment"],
                    after=after["environment"], before_version=version_label(before),
                    after_version=version_label(after), relation="sequence", verdict="step", batch_size=batch,
                    summary="{} {} along {} versions: level {} from {} to {} (PELT, penalty 2 ln(n) x "
                            "variance{})".format(suite, what, len(sequence), fmt.format(shown), version_label(before),
                                                 version_label(after), confirmed),
                    evidence={"suite": suite, "step": step, "values": values.tolist(), "variance": variance,
                              "versions": [version_label(s.result) for s in sequence]},
                    cells=(before["cell_id"], after["cell_id"])))
    return verdicts
