"""The report's Findings (regressions, non-reproductions and changes, most important first) and
the table of every verdict, from a verdicts.judge.Judgement."""

import io

VERDICT_COLUMNS = ["kind", "framework", "model", "engine", "batch_size", "before", "after", "before_version",
                   "after_version", "relation", "verdict", "regression", "p_value", "q_value", "summary", "cells"]


def _link(cell_id, results_link):
    return "[{}]({}/{}.json)".format(cell_id[:8], results_link, cell_id)


def _where(verdict):
    if verdict.before is None:
        return verdict.after
    return "{} -> {}".format(verdict.before, verdict.after)


def render_findings(judgement, results_link, explained=""):
    """Markdown: '## Findings' (one line each, with links to the results; then `explained`, from
    report/explanations.py) and '## Verdicts' (every pair)."""
    out = io.StringIO()
    w = out.write
    w("## Findings\n\n")
    if judgement is None:
        w("No verdicts: the run has no results to compare.\n\n")
        return out.getvalue()
    w("Every pair of versions in the run is judged (consecutive versions, and oldest -> newest); "
      "p-values are adjusted for the false-discovery rate ({}, alpha {}) over the whole comparison. ".format(
          {"bh": "Benjamini-Hochberg", "holm": "Holm"}[judgement.fdr], judgement.alpha))
    if judgement.baseline:
        w("Compared against the run `{}`, position by position. ".format(judgement.baseline))
    w("Thresholds: matrix.toml `[compare]`.\n\n")
    findings = judgement.findings()
    if not findings:
        w("None: no regression, no change and no published number that differs.\n")
    for verdict in findings:
        w("- **{}** {} {}{} {}{} ({}): {} {}\n".format(
            verdict.verdict, verdict.framework, verdict.model, " [{}]".format(verdict.engine) if verdict.engine else "",
            verdict.kind.replace("_", " "), "" if verdict.batch_size is None else " batch {}".format(verdict.batch_size),
            _where(verdict), verdict.summary, " ".join(_link(c, results_link) for c in verdict.cells)))
    if judgement.noise:
        w("\nBetween-run noise: {}.\n".format(judgement.noise["note"]))
    if explained:
        w("\n" + explained)
    w("\n## Verdicts\n\n")
    counts = {}
    for verdict in judgement.verdicts:
        counts.setdefault(verdict.kind, {}).setdefault(verdict.verdict, 0)
        counts[verdict.kind][verdict.verdict] += 1
    if not counts:
        w("No pairs to judge: a comparison needs two versions of a framework, or `--baseline`.\n")
        return out.getvalue()
    for kind, by in sorted(counts.items()):
        w("- {}: {}\n".format(kind.replace("_", " "), ", ".join("{} {}".format(n, v) for v, n in sorted(by.items()))))
    w("\n| Kind | Framework | Model | Batch | Versions | Verdict | Evidence |\n|---|---|---|---|---|---|---|\n")
    for verdict in sorted(judgement.verdicts, key=lambda v: (v.kind, v.framework, v.model, v.batch_size or 0,
                                                              v.before or "", v.after)):
        w("| {} | {} | {}{} | {} | {} | {} | {} |\n".format(
            verdict.kind.replace("_", " "), verdict.framework, verdict.model,
            " [{}]".format(verdict.engine) if verdict.engine else "", verdict.batch_size or "-", _where(verdict),
            verdict.verdict, verdict.summary.replace("|", "\\|")))
    return out.getvalue()


def verdict_rows(judgement):
    rows = []
    for verdict in judgement.verdicts if judgement else ():
        row = verdict.as_dict()
        row["cells"] = " ".join(row["cells"])
        rows.append(row)
    return rows
