"""Verdicts from evidence, once every p-value of the comparison has been adjusted.

Each rule is written out here, so the README's table of verdicts can be checked against it.
"""

import math

from .stats import equivalence_sample_size, images_to_resolve, mcnemar_sample_size

REGRESSIONS = {"worse", "slower", "predictions changed", "cannot load"}
PUBLISHED_WEIGHTS = ("pretrained", "file")  # the weights a published number was measured with (a file: the user's)
CHANGES = {"better", "faster", "outputs differ", "step"}


def _points(value):
    return "{:+.2f}".format(value)


def error_verdict(evidence, q_value, settings):
    """same (interval inside +-margin: a real but negligible difference too), worse / better (FDR-adjusted
    McNemar), else inconclusive."""
    top1 = evidence["top1"]
    low, high = top1["interval_points"]
    margin = settings.error_margin_points
    if -margin <= low and high <= margin:
        verdict = "same"
    elif q_value < settings.alpha:
        verdict = "worse" if top1["difference_points"] > 0 else "better"
    else:
        verdict = "inconclusive"
    text = "top-1 error {:.2f} -> {:.2f} ({} points, 95% CI {} to {}; McNemar p={:.3g}, q={:.3g}; {} of {} images " \
           "changed top-1 class)".format(top1["error_before"], top1["error_after"], _points(top1["difference_points"]),
                                        _points(low), _points(high), top1["p_value"], q_value,
                                        evidence["changed_top1_class"], evidence["images"])
    if verdict in ("inconclusive", "worse", "better") and (low > 0 or high < 0) != (top1["p_value"] < 0.05):
        # Newcombe's 95% interval and the exact test at 5% are different approximations, and at the edge one may
        # exclude no difference while the other does not
        text += "; the 95% interval and the exact test at 5% disagree at this edge: the verdict follows the test " \
                "(its q-value after the adjustment)"
    if verdict == "inconclusive":
        text += "; " + _images_to_decide(evidence, settings)
    if not evidence["weights"]["same"]:
        text += "; the weights differ ({} / {}): a changed weight file is a different question".format(
            evidence["weights"]["before"]["source"], evidence["weights"]["after"]["source"])
    return verdict, text


def _images_to_decide(evidence, settings):
    """With the difference seen inside the margin, more images would show "same" (an interval inside it);
    beyond it, they would show the difference (McNemar's power): 80% of the time either way. At least three
    images count as changed: two versions that agreed on every image of a small subset may not on more."""
    top1, margin, images = evidence["top1"], settings.error_margin_points, evidence["images"]
    discordant = max(top1["right_before_only"] + top1["right_after_only"], 3) / images
    difference = abs(top1["difference_points"])
    if difference < margin:
        needed = equivalence_sample_size(difference / 100, discordant, margin / 100)
        if needed <= images:  # the normal approximation ignores how wide the interval stays on few changes
            return "more than the {} images evaluated would show whether it is within +-{:g} points (same)".format(
                images, margin)
        return "about {} images would show whether it is within +-{:g} points (same)".format(needed, margin)
    needed = mcnemar_sample_size(difference / 100, discordant, alpha=settings.alpha)
    return "about {} images would decide a {:.1f}-point difference".format(needed, difference)


def noise_factor(settings, result):
    """The [compare] noise factor for the device a result was asked to run on."""
    device = (result.get("provenance") or {}).get("device_requested") or "cpu"
    return settings.throughput_factor_gpu if device.startswith("cuda") else settings.throughput_factor_cpu


def busy_machine(evidence, busy_share, names):
    """Why a timing is not judged: other processes kept more than `busy_share` of the cores busy."""
    shares = evidence.get("cpu_other_share") or [None, None]
    busy = ["{} {:.0%}".format(name, share) for name, share in zip(names, shares)
            if share is not None and share > busy_share]
    if not busy:
        return None
    return "other processes kept the machine busy while it was timed ({} of all cores; above busy_share {:.0%}): " \
           "a busy machine, not the version, may explain the difference".format(", ".join(busy), busy_share)


def throughput_verdict(evidence, q_value, factor, alpha, busy=None):
    """slower / faster: significant after FDR and the whole interval beyond the noise factor;
    no change: the whole interval inside [1/factor, factor]; otherwise inconclusive (also when
    the machine was busy with other work during either timing: `busy` says why, and when too few
    trials give an interval of less than 1 - alpha confidence)."""
    low, high = evidence["interval"]
    significant = q_value < alpha
    too_few = evidence["confidence"] < 1 - alpha - 1e-9
    if too_few or busy and not (1 / factor <= low and high <= factor):
        verdict = "inconclusive"
    elif significant and high < 1 / factor:
        verdict = "slower"
    elif significant and low > factor:
        verdict = "faster"
    elif 1 / factor <= low and high <= factor:
        verdict = "no change"
    else:
        verdict = "inconclusive"
    text = "x{:.3f} images/s ({:.1f} -> {:.1f}; {:.0%} CI x{:.3f}-x{:.3f}, Mann-Whitney p={:.3g}, q={:.3g}; {}+{} " \
           "trials; noise factor {:.2f})".format(evidence["ratio"], evidence["images_per_s"][0],
                                                evidence["images_per_s"][1], evidence["confidence"], low, high,
                                                evidence["p_value"], q_value, evidence["trials"][0],
                                                evidence["trials"][1], factor)
    smallest = smallest_p(*evidence["trials"])
    if verdict == "inconclusive" and busy and not too_few:
        text += "; " + busy
    elif verdict == "inconclusive" and (too_few or smallest >= alpha):
        text += "; {}+{} trials cannot reach p < {:g} or a {:.0%} interval (the smallest p possible is {:.3g}; 4 a " \
                "side can)".format(evidence["trials"][0], evidence["trials"][1], alpha, 1 - alpha, smallest)
    return verdict, text


def smallest_p(n1, n2):
    """The smallest two-sided exact Mann-Whitney p-value n1 and n2 trials can give: 2 / C(n1 + n2, n1)."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1)) if n1 and n2 else 1.0


def cold_start_verdict(evidence, factor, busy=None):
    ratio = evidence["ratio"]
    verdict = "slower" if ratio > factor else "faster" if ratio < 1 / factor else "no change"
    text = "cold start {:.2f} s -> {:.2f} s (x{:.2f}; one sample each, judged against factor {:.2f})".format(
        evidence["cold_start_s"][0], evidence["cold_start_s"][1], ratio, factor)
    if busy and verdict != "no change":
        verdict, text = "inconclusive", text + "; " + busy
    return verdict, text


def drift_verdict(record, rtol):
    """bit-identical, numerically close (a near tie may flip), outputs differ (same predictions), predictions
    changed (beyond the tolerance), cannot load."""
    if record["status"] == "failed":
        return "cannot load", "cannot load: {}".format(record.get("reason"))
    if record["status"] != "ok":
        return "not compared", "{}: {}".format(record["status"], record.get("reason"))
    tolerance = rtol * record["reference_scale"]
    flipped = record["top1_agreement"] < 1 or record["top5_agreement"] < 1
    if record["outputs_identical"]:
        verdict = "bit-identical"
    elif record["max_abs_diff"] <= tolerance:
        # No output moved by more than the tolerance, so a class could overtake another only where the
        # two were within twice the tolerance already: a near tie broken by rounding, not a change.
        verdict = "numerically close"
    elif flipped:
        verdict = "predictions changed"
    else:
        verdict = "outputs differ"
    text = "max |diff| {:.3g} (tolerance {:.3g}), {}; inputs {}, weights {}".format(
        record["max_abs_diff"], tolerance, _agreement(record),
        "identical" if record.get("inputs_identical") else "differ",
        "identical" if record.get("weights_identical") else "differ")
    if flipped and verdict == "numerically close":
        text += "; the predictions that changed were near ties, classes within twice the tolerance of each other"
    return verdict, text


def _agreement(record):
    """Counts where the record has them: 99.998% agreement prints as 100% and hides the one image."""
    if "top1_changed" not in record or not record.get("images"):
        return "top-1 agreement {:.0%}, top-5 {:.0%}".format(record["top1_agreement"], record["top5_agreement"])
    return "top-1 changed on {} of {} images, top-5 on {}".format(
        record["top1_changed"], record["images"], record["top5_changed"])


def published_verdict(evidence, weights_source, q_value=None, alpha=0.05, family=1):
    """reproduces (published inside the 95% interval, which resolves the gap asked for), differs (outside,
    and the exact binomial test significant after the adjustment over the run's `family` checks), inconclusive
    (outside, not after it), or not testable (random weights, or an interval too wide to resolve the gap)."""
    low, high = evidence["interval"]
    if weights_source not in PUBLISHED_WEIGHTS:
        return "not testable", "weights are {}, not the published ones".format(weights_source)
    text = "reproduced {:.2f} (95% CI {:.2f}-{:.2f}, {} images) vs published {:.2f}".format(
        evidence["reproduced"], low, high, evidence["images"], evidence["published"])
    q_value = evidence["p_value"] if q_value is None else q_value
    if not low <= evidence["published"] <= high:
        text += " ({} points; binomial p={:.3g}, q={:.3g} over {} published check{})".format(
            _points(evidence["difference_points"]), evidence["p_value"], q_value, family, "" if family == 1 else "s")
        if q_value < alpha:
            return "differs", text
        return "inconclusive", text + ": outside its interval, but not after the false-discovery adjustment"
    if evidence["half_width"] > evidence["resolve_points"]:
        needed = images_to_resolve(evidence["resolve_points"], evidence["reproduced"])
        return "not testable", text + "; the interval is +-{:.1f} points: about {} images resolve a {:.1f}-point " \
                                      "gap".format(evidence["half_width"], needed, evidence["resolve_points"])
    return "reproduces", text


def importance(verdict):
    """Sort key of a finding: regressions, then non-reproductions, then other changes; the larger first."""
    evidence = verdict.evidence or {}
    size = 0.0
    if verdict.kind == "error" and "top1" in evidence:
        size = abs(evidence["top1"]["difference_points"])
    elif verdict.kind in ("throughput", "cold_start") and evidence.get("ratio"):
        size = 10 * abs(math.log(evidence["ratio"]))
    elif verdict.kind == "drift":
        size = 100 * (1 - min(evidence.get("top1_agreement", 0), 1)) + 50
    elif verdict.kind == "published":
        size = abs(evidence.get("difference_points", 0))
    elif verdict.kind == "sequence":
        size = abs(evidence.get("step", 0))
    rank = 0 if verdict.verdict in REGRESSIONS else 1 if verdict.verdict == "differs" else 2
    return rank, -size
