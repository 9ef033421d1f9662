"""Under the Findings: for each error cell that differs from its published number, what the preprocessing sweep
(`runner explain`, runner/explain/gaps.py) found: its answer and the variants nearest the published number."""

import io
import os

from ..explain.table import COLUMNS, rows
from .html_table import esc, table

SHOWN = 5  # variants of each answer shown here; explain.md beside it holds them all
# The table's columns kept here: the variant, its error, its distance to the published number, whether inside.
KEPT = [COLUMNS.index(name) for name in ("#", "Variant", "Top-1 % (95% CI)", "Top-1 - published", "Inside")]
KINDS = {"#": "number", "Variant": "text", "Top-1 % (95% CI)": "number", "Top-1 - published": "number",
         "Inside": "text"}

INTRO = ("For each error cell whose reproduced error differs from the published one, a sweep of its preprocessing "
         "on the cell's own images and weights (`runner explain`; `run --explain` runs it): the official recipe, one "
         "axis at a time, then pairs of the axes that came closest. The {} variants nearest the published number; "
         "each answer's explain.md holds them all, with paired tests against the official recipe.").format(SHOWN)


def _link(entry, report_dir):
    return os.path.relpath(entry["path"], str(report_dir))


def _table(answer):
    return [[row[i] for i in KEPT] for row in rows(answer)[:SHOWN]]


def render_markdown(entries, report_dir):
    if not entries:
        return ""
    out = io.StringIO()
    w = out.write
    w("### Why they differ: the preprocessing sweep\n\n" + INTRO + "\n\n")
    for entry in entries:
        result = entry["result"]
        w("**{} {}**: ".format(result["environment"], result["model"]))
        answer = entry["answer"]
        if answer is None:
            w("{}\n\n".format(entry["note"]))
            continue
        w("{}: {} ([explain.md]({}))\n\n".format(answer["status"], answer["verdict"], _link(entry, report_dir)))
        w("| " + " | ".join(COLUMNS[i] for i in KEPT) + " |\n|" + "---|" * len(KEPT) + "\n")
        for row in _table(answer):
            w("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |\n")
        w("\n")
    return out.getvalue()


def render_html(entries, report_dir):
    if not entries:
        return ""
    out = ['<div id="explain"><h3>Why they differ: the preprocessing sweep</h3>',
           "<p>{}</p>".format(esc(INTRO).replace("`runner explain`", "<code>runner explain</code>")
                              .replace("`run --explain`", "<code>run --explain</code>"))]
    for entry in entries:
        result = entry["result"]
        title = "<strong>{} {}</strong>".format(esc(result["environment"]), esc(result["model"]))
        answer = entry["answer"]
        if answer is None:
            out.append("<p>{}: {}</p>".format(title, esc(entry["note"])))
            continue
        out.append('<p>{}: {}: {} (<a href="{}">explain.md</a>)</p>'.format(
            title, esc(answer["status"]), esc(answer["verdict"]), esc(_link(entry, report_dir))))
        # the page's sortable table (its script sorts "number" columns on the number each cell starts with)
        out.append(table("explain-{}-{}".format(result["environment"], result["model"]),
                         [(esc(COLUMNS[i]), KINDS[COLUMNS[i]]) for i in KEPT],
                         [[esc(cell) for cell in row] for row in _table(answer)]))
    out.append("</div>")
    return "\n".join(out)
