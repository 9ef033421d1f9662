"""Statistics, ranking and verdict of an explain run, from the per-image top-5 of every variant.

Per variant, on the images every variant was evaluated on (the same images, so the tests are paired):
top-1 and top-5 error with 95% Wilson intervals (runner/stats.py); the exact McNemar test of its top-1
outcomes against the official recipe's (statsmodels), with Benjamini-Hochberg q-values over the
variants, and Newcombe's interval of the paired difference (runner/verdicts/stats.py); its top-1
agreement with the official recipe; and its distance to the published number. A variant "closes the
gap" when the published top-1 error lies inside its 95% interval, the rule by which `compare` calls a
reproduced number one that `differs` (runner/verdicts/decide.py published_verdict), and it differs from the
official recipe (q < alpha); an official recipe inside it has no gap only where its interval resolves one,
as `compare` asks before it says "reproduces".
"""

import csv

from ..probe.explain_pairs import OFFICIAL
from ..stats import wilson_interval
from ..matrix.schema import CompareSettings
from ..verdicts.stats import adjust, images_to_resolve, mcnemar_sample_size, paired_difference_interval


def mcnemar_p(only_official, only_variant):
    """Two-sided exact McNemar p-value from the discordant counts (official right only, variant right only)."""
    from statsmodels.stats.contingency_tables import mcnemar

    if only_official + only_variant == 0:
        return 1.0
    return float(mcnemar([[0, only_official], [only_variant, 0]], exact=True).pvalue)


def read_predictions(path):
    """{variant: {file: (label, [top1..top5])}} from the suite's explain_predictions.csv."""
    found = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            found.setdefault(row["variant"], {})[row["file"]] = (
                int(row["label"]), [int(row["top{}".format(k)]) for k in range(1, 6)])
    return found


def variant_stats(official_rows, rows, files):
    """The numbers of one variant against the official recipe on `files` (each in both)."""
    n = len(files)
    wrong1 = [rows[f][1][0] != rows[f][0] for f in files]
    wrong5 = [rows[f][0] not in rows[f][1] for f in files]
    official_wrong = [official_rows[f][1][0] != official_rows[f][0] for f in files]
    both = sum(1 for a, b in zip(official_wrong, wrong1) if a and b)
    only_official_wrong = sum(1 for a, b in zip(official_wrong, wrong1) if a and not b)
    only_variant_wrong = sum(1 for a, b in zip(official_wrong, wrong1) if b and not a)
    neither = n - both - only_official_wrong - only_variant_wrong
    errors1, errors5 = sum(wrong1), sum(wrong5)
    official_errors = sum(official_wrong)
    return {
        "images": n,
        "top1_errors": errors1, "top1_error": 100.0 * errors1 / n, "top1_interval": list(wilson_interval(errors1, n)),
        "top5_errors": errors5, "top5_error": 100.0 * errors5 / n, "top5_interval": list(wilson_interval(errors5, n)),
        "vs_official": {
            "top1_points": 100.0 * (errors1 - official_errors) / n,
            # rate of wrong top-1: variant minus official, 95% interval (Newcombe)
            "top1_interval": list(paired_difference_interval(both, only_official_wrong, only_variant_wrong, neither)),
            "right_official_only": only_variant_wrong, "right_variant_only": only_official_wrong,
            "p_value": mcnemar_p(only_variant_wrong, only_official_wrong),
            "top1_agreement": sum(1 for f in files if rows[f][1][0] == official_rows[f][1][0]) / float(n),
        },
    }


def rank(predictions, meta, published):
    """Every evaluated variant with its numbers, sorted by distance to the published number.

    `meta`: {name: variant dict ("axis", "description", "changes", "parts" for pairs)}; `published`:
    {"top1_error", "top5_error"} or None. Without a published number: the official recipe first, then
    the variants that moved the top-1 error most."""
    official_rows = predictions[OFFICIAL]
    files = sorted(set.intersection(*(set(rows) for rows in predictions.values())))
    if not files:
        raise ValueError("no image was evaluated under every variant")
    ranked = []
    for name, rows in predictions.items():
        entry = dict(name=name, **variant_stats(official_rows, rows, files))
        info = meta.get(name, {})
        entry.update(axis=info.get("axis", OFFICIAL), description=info.get("description", "the row's recipe"),
                     changes=info.get("changes", {}), axes=0 if name == OFFICIAL else len(info.get("parts") or [1]))
        if published is not None:
            for k in ("top1", "top5"):
                target = published.get(k + "_error")
                if target is None:
                    entry[k + "_distance"], entry[k + "_inside"] = None, None
                    continue
                low, high = entry[k + "_interval"]
                entry[k + "_distance"] = entry[k + "_error"] - target
                entry[k + "_inside"] = low <= target <= high
        ranked.append(entry)
    tested = [e for e in ranked if e["name"] != OFFICIAL]
    for entry, q in zip(tested, adjust([e["vs_official"]["p_value"] for e in tested], "bh")):
        entry["vs_official"]["q_value"] = q
    order = list(predictions)  # the suite's order: official, single-axis variants, pairs

    def key(entry):
        if published is not None:
            d5 = entry.get("top5_distance")
            return (abs(entry["top1_distance"]), abs(d5) if d5 is not None else 0.0, entry["axes"],
                    order.index(entry["name"]))
        return (entry["axes"] != 0, -abs(entry["vs_official"]["top1_points"]), entry["axes"],
                order.index(entry["name"]))

    return sorted(ranked, key=key)


def verdict(ranked, published, weights, reference, settings=None):
    """(status, sentence): explained / no gap / inconclusive / not explained / no published number.

    `reference`: "published" (the matrix's number for the row's version) or "labels" (--published-labels:
    the reference's own top-1 per image, whose published error is 0 by construction). `settings`: the matrix's
    [compare] (alpha, resolve_points), the numbers `compare` judges a reproduced error by."""
    settings = settings or CompareSettings()
    official = next(e for e in ranked if e["name"] == OFFICIAL)
    if published is None:
        moved = [e for e in ranked if e["name"] != OFFICIAL and e["vs_official"]["top1_points"] != 0]
        return "no published number", (
            "no published number applies to this row's version, so nothing is ranked against one; the {} variants "
            "that moved the top-1 error are listed first, the most moved first".format(len(moved)))
    caveat = ""
    if reference == "published" and weights not in ("pretrained", "file"):
        caveat = ("weights are {}, not the published ones: no preprocessing brings an untrained network to the "
                  "published number (use --weights pretrained, or --published-labels for a planted check). ".format(
                      weights))
    closing = [e for e in ranked if e["name"] != OFFICIAL and e["top1_inside"]]
    target = published["top1_error"]
    if official["top1_inside"]:
        return _inside(official, closing, target, reference, settings, caveat)
    # A variant closes the gap only where it also differs from the official recipe: else these images cannot
    # tell whether it moved the error at all (the official one is just outside, the variant just inside).
    decided = [e for e in closing if e["vs_official"]["q_value"] < settings.alpha]
    if decided:
        best = decided[0]
        others = [e["name"] for e in closing if e is not best]
        return "explained", caveat + (
            "{} brings the reproduced top-1 error to {}, whose interval holds the published {:.2f} (official recipe: "
            "{}; exact McNemar against it p={:.3g}, q={:.3g}, {} images){}".format(
                _named(best), _error(best), target, _error(official), best["vs_official"]["p_value"],
                best["vs_official"]["q_value"], best["images"],
                "; also inside: {}".format(", ".join(others[:5]) + (" and {} more".format(len(others) - 5)
                                                                    if len(others) > 5 else "")) if others else ""))
    if closing:
        best, vs = closing[0], closing[0]["vs_official"]
        discordant = (vs["right_official_only"] + vs["right_variant_only"]) / best["images"]
        needed = mcnemar_sample_size(vs["top1_points"] / 100, discordant, alpha=settings.alpha)
        return "inconclusive", caveat + (
            "{} brings the reproduced top-1 error to {}, whose interval holds the published {:.2f}, but on {} images "
            "it cannot be told from the official recipe ({}; exact McNemar p={:.3g}, q={:.3g} over the variants)"
            "{}".format(_named(best), _error(best), target, best["images"], _error(official), vs["p_value"],
                        vs["q_value"], "; about {} images would decide".format(needed) if needed else ""))
    closest = next((e for e in ranked if e["name"] != OFFICIAL), official)
    return "not explained", caveat + (
        "no variant brings the reproduced top-1 error inside the published number's interval: the closest, {}, "
        "reaches {}, {:+.2f} points from the published {:.2f} (official recipe: {}, {:+.2f} points)".format(
            closest["name"], _error(closest), closest["top1_distance"], target, _error(official),
            official["top1_distance"]))


def _inside(official, closing, target, reference, settings, caveat):
    """The official recipe's interval holds the published number: no gap where the interval is narrow enough
    to resolve one (`compare` says "not testable" otherwise); against reference labels, an interval that
    holds 0 % means no image differs."""
    low, high = official["top1_interval"]
    if reference == "published" and (high - low) / 2 > settings.resolve_points:
        return "inconclusive", caveat + (
            "the official recipe's top-1 error {} holds the published {:.2f}, but on {} images its interval is "
            "+-{:.1f} points, too wide to resolve a {:.1f}-point gap: about {} images would".format(
                _error(official), target, official["images"], (high - low) / 2, settings.resolve_points,
                images_to_resolve(settings.resolve_points, official["top1_error"])))
    also = (" {} variant(s) are inside it as well, so these images cannot tell them apart from it".format(
        len(closing)) if closing else "")
    return "no gap", caveat + (
        "the official recipe already reproduces the published top-1 error {:.2f}: reproduced {} on {} images; "
        "nothing to explain.{}".format(target, _error(official), official["images"], also))


def _named(entry):
    return "{} {} ({})".format("the pair" if entry["axes"] == 2 else "the variant", entry["name"], entry["description"])


def _error(entry):
    low, high = entry["top1_interval"]
    return "{:.2f} % (95% CI {:.2f}-{:.2f})".format(entry["top1_error"], low, high)
