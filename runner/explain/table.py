"""An explain run as a table: on the terminal, and as reports/explain/<row>-<model>/explain.{md,json}."""

import io

from ..probe.explain_pairs import OFFICIAL
from ..storage import write_json, write_text

# Errors in %, differences in points; "same top-1": the share of images whose top-1 class the official recipe's is.
COLUMNS = ("#", "Variant", "Top-1 % (95% CI)", "Top-5 % (95% CI)", "Top-1 vs official", "McNemar p (q)",
           "Same top-1", "Top-1 - published", "Inside")


def rows(answer):
    """The table's cells, one list per variant in ranked order."""
    found = []
    for number, entry in enumerate(answer["ranked"], 1):
        paired = entry["vs_official"]
        official = entry["name"] == OFFICIAL
        distance = entry.get("top1_distance")
        inside = entry.get("top1_inside")
        found.append([
            str(number), entry["name"] + (" ({})".format(answer["recipe"]) if official else ""),
            _error(entry, "top1"), _error(entry, "top5"),
            "-" if official else "{:+.2f}".format(paired["top1_points"]),
            "-" if official else "{:.3g} ({:.3g})".format(paired["p_value"], paired["q_value"]),
            "-" if official else "{:.0%}".format(paired["top1_agreement"]),
            "-" if distance is None else "{:+.2f}".format(distance),
            "-" if inside is None else ("yes" if inside else "no"),
        ])
    return found


def _error(entry, k):
    low, high = entry[k + "_interval"]
    return "{:.2f} ({:.2f}-{:.2f})".format(entry[k + "_error"], low, high)


def _published_line(answer):
    published = answer["published"]
    if published is None:
        return "Published number: none applies to this row's version (matrix.toml models.{}.{}.published).".format(
            answer["model"], answer["framework"])
    if answer["reference"] == "labels":
        return "Published number: 0 % top-1 / 0 % top-5 against {}".format(published["source"].split(": ", 1)[0]) + \
               " (the reference's own top-1 per image)."
    return "Published number: top-1 {:.2f} %, top-5 {:.2f} % ({}; {}; applies to {}).".format(
        published["top1_error"], published["top5_error"], published["source"], published["revision"],
        published["applies_to"])


def _evaluations_line(answer):
    e = answer["evaluations"]
    rule = answer.get("pair_rule") or {}
    aim = "came closest to the published number" if answer["published"] is not None else "moved the error most"
    if e["pairs"]:
        pairs = ("{} pair{} of the (at most {}) axes that {}: each axis's closest variant with each of the other's "
                 "(at most {})".format(e["pairs"], "" if e["pairs"] == 1 else "s", rule.get("axes", 3), aim,
                                       rule.get("values", 3)))
    elif not rule.get("axes", 3):
        pairs = "no pairs (--pair-axes 0)"
    else:
        pairs = "no pairs: fewer than two axes {}".format(
            "came any closer to the published number" if answer["published"] is not None else "moved the error")
    skipped = [entry["name"] for entry in answer.get("variants_skipped") or []]
    return ("{} evaluations of {} images each: the official recipe, {} single-axis variants{} and {}; the full cross "
            "product would be {}. {} decodings (variants that differ only in normalisation or channel order share "
            "theirs).".format(e["total"], answer["dataset"]["images"], e["single_axis"],
                              " (not {}: this version cannot run {})".format(", ".join(skipped), "it" if len(
                                  skipped) == 1 else "them") if skipped else "", pairs,
                              e["cross_product"], e["decodings"]))


def render_text(answer):
    """The terminal's view: the verdict, then the table in fixed-width columns."""
    out = io.StringIO()
    w = out.write
    w("{} {} ({}, {}, weights {}{})\n".format(
        answer["environment"], answer["model"], answer["framework_model"], _versions(answer), answer["weights"],
        ", outputs recentred" if answer.get("recentred") else ""))
    w(_published_line(answer) + "\n")
    w(_evaluations_line(answer) + "\n\n")
    table = [list(COLUMNS)] + rows(answer)
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    for r in table:
        w("  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip() + "\n")
    w("\n{}: {}\n".format(answer["status"], answer["verdict"]))
    return out.getvalue()


def render_markdown(answer):
    out = io.StringIO()
    w = out.write
    w("# Explain: {} on {} ({})\n\n".format(answer["model"], answer["environment"], _versions(answer)))
    w("**{}**: {}\n\n".format(answer["status"], answer["verdict"]))
    if answer.get("command"):
        w("Made by `{}`.\n\n".format(answer["command"]))
    w("{} Weights: {}{}. Model: {} ({}), official recipe [preprocess.{}].\n\n".format(
        _published_line(answer), answer["weights"],
        ", outputs recentred on the official recipe's mean output (runner/probe/explain_suite.py)"
        if answer.get("recentred") else "", answer["framework_model"], answer["framework"], answer["recipe"]))
    w(_evaluations_line(answer) + " Sorted by distance to the published number; McNemar: exact, on the top-1 "
      "outcomes against the official recipe on the same images (q: Benjamini-Hochberg over the variants); "
      "Same top-1: the share of images whose top-1 class is the official recipe's; Inside: the published top-1 "
      "error lies in the variant's 95% Wilson interval. Errors in %, differences in points.\n\n")
    w("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n")
    for r in rows(answer):
        w("| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |\n")
    if answer.get("axis_effects"):
        w("\n| Axis | Moved top-1 (points) | Moved top-5 (points) | Closer to published (points) |\n|---|---|---|---|\n")
        for e in answer["axis_effects"]:
            toward = e.get("toward_target")
            w("| {} | {:.2f} | {:.2f} | {} |\n".format(e["axis"], e["top1_points"], e["top5_points"],
                                                        "-" if toward is None else "{:.2f}".format(toward)))
    w("\nVariants:\n\n")
    for entry in answer["ranked"]:
        if entry["name"] != OFFICIAL:
            w("- `{}`: {}\n".format(entry["name"], entry["description"]))
    for skipped in answer.get("variants_skipped") or []:
        w("- `{}`: not evaluated ({})\n".format(skipped["name"], skipped["reason"]))
    w("\nNot swept: {}.\n".format("; ".join(answer["not_swept"])))
    return out.getvalue()


def _versions(answer):
    return ", ".join("{} {}".format(k, v) for k, v in sorted((answer.get("versions") or {}).items())) or "?"


def write_explain(answer, folder):
    md_path, json_path = folder / "explain.md", folder / "explain.json"
    write_json(json_path, answer, flag="--reports-dir")
    write_text(md_path, render_markdown(answer), flag="--reports-dir")
    return md_path, json_path
