"""reports/<run>/report.md, report.html, report.csv and report.json from the results of a run.

Published numbers come from the matrix, matched to each environment's pinned framework
version (the revision of the published table that applies to it). For each position
(environment, model, suite) the newest result is reported; older ones stay on disk.
"""

import csv
import datetime
import io
import os
from pathlib import Path

from ..results import latest_results
from ..storage import make_folder, write_json, write_text
from .explanations import render_html as explained_html, render_markdown as explained_markdown
from .findings import VERDICT_COLUMNS, verdict_rows
from .html import render_html
from .markdown import DRIFT_COLUMNS, render_markdown
from .tables import COLUMNS, build_rows

REPORT_SCHEMA_VERSION = 6  # 2: drift; 3: GPU telemetry, decode/model images/s; 4: engine; 5: verdicts; 6: image accounting


def report_files(report_dir):
    """How a command names the report it wrote: the page to open first, then what lies beside it."""
    return "{} (report.md, report.csv and report.json beside it)".format(Path(report_dir) / "report.html")


def write_report(matrix, results, problems, drift, report_dir, run_name, judgement=None, results_dir=None,
                 explained=()):
    """report.md, report.html (the same with plots, one self-contained page), report.csv (one row per cell and
    batch size), drift.csv, verdicts.csv and report.json (all).

    `results, problems` as ResultStore.load_all() gives them; `drift` from verdicts.drift.compare_versions;
    `judgement` from verdicts.judge.judge; `results_dir` is where the findings link to; `explained` from
    explain.gaps.explanations, shown under the Findings.
    """
    latest = latest_results(results)
    rows = build_rows(matrix, latest)
    generated_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    report_dir = make_folder(report_dir, flag="--reports-dir")
    link = os.path.relpath(str(results_dir), str(report_dir)) if results_dir else "."
    flag = "--reports-dir"
    write_text(report_dir / "report.md", render_markdown(run_name, matrix, rows, problems, generated_at, drift,
                                                         judgement, link, explained_markdown(explained, report_dir)),
               flag)
    write_text(report_dir / "report.html", render_html(run_name, matrix, rows, list(latest.values()), problems,
                                                      generated_at, drift, judgement, link,
                                                      Path(results_dir) if results_dir else None,
                                                      explained_html(explained, report_dir)), flag)
    write_text(report_dir / "verdicts.csv", _csv(VERDICT_COLUMNS, verdict_rows(judgement)), flag)
    write_text(report_dir / "report.csv", _csv(COLUMNS, rows), flag)
    write_text(report_dir / "drift.csv", _csv(DRIFT_COLUMNS, drift), flag)
    write_json(report_dir / "report.json", {
        "schema_version": REPORT_SCHEMA_VERSION, "run": run_name, "generated_at": generated_at,
        "matrix": str(matrix.path), "rows": rows, "drift": list(drift), "problems": problems,
        "verdicts": judgement.as_dict() if judgement else None}, flag)
    return report_dir


def _csv(columns, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
