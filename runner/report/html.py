"""report.html: one self-contained page (styles, script and plots inline; it loads nothing) that puts the
run's findings first and plots every comparison.

    summary (what ran where, cells by status) -> Findings -> per framework: error vs published,
    throughput, cold start, drift, GPU, then its tables -> cells that gave no number -> every verdict
"""

from ..results import engine_label
from .html_assets import CONTENT_SECURITY_POLICY, CSS, SCRIPT
from .html_framework import TITLES, FrameworkPart, section_ids
from .html_table import esc, result_links, table, version_of

# Every status a cell can end with (runner/results.py STATUSES), in the order the summary counts them.
STATUS_ORDER = ("ok", "failed", "skipped", "incompatible", "timeout", "out_of_memory", "interrupted")


def expected_sections(frameworks):
    """The ids of the sections a report of these frameworks holds, in page order (the browser test checks them)."""
    ids = ["summary", "findings"]
    for framework in frameworks:
        ids += section_ids(framework)
    return ids + ["not-ok", "verdicts"]


def frameworks_of(matrix, results):
    order = []
    for name in [env.framework for env in matrix.environments] + sorted(r["framework"] for r in results):
        if name not in order and any(r["framework"] == name for r in results):
            order.append(name)
    return order


def render_html(run_name, matrix, rows, results, problems, generated_at, drift=(), judgement=None,
                results_link=".", results_dir=None, explained=""):
    """The page. `rows` from tables.build_rows, `results` the newest result per position (a list),
    `results_dir` where the telemetry series lie (result["files"]), `results_link` the same seen from the page."""
    frameworks = frameworks_of(matrix, results)
    body = [_summary(run_name, matrix, results, generated_at), _findings(judgement, results_link, explained)]
    for framework in frameworks:
        body.append(FrameworkPart(
            framework, [r for r in rows if r["framework"] == framework],
            [r for r in results if r["framework"] == framework], [p for p in drift if p["framework"] == framework],
            matrix, judgement, results_dir, results_link).render())
    body += [_not_ok(matrix, results, results_link), _verdicts(judgement, results_link), _problems(problems)]
    nav = [("summary", "Summary"), ("findings", "Findings")] + [("fw-" + f, TITLES.get(f, f)) for f in frameworks] + \
        [("not-ok", "Cells that gave no number"), ("verdicts", "Every verdict")]
    return """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reproducibility matrix: run {run}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>Reproducibility matrix: run <code>{run}</code></h1>
<p class="muted">Generated {generated} from <code>{matrix}</code>. Everything on this page is inline: it opens
without a network. Tables sort on a click of their header.</p>
<nav><ul>{nav}</ul></nav>
</header>
<main>
{body}
</main>
<script>{script}</script>
</body>
</html>
""".format(csp=CONTENT_SECURITY_POLICY, run=esc(run_name), css=CSS, generated=esc(generated_at),
           matrix=esc(matrix.path.name), nav="".join('<li><a href="#{}">{}</a></li>'.format(i, esc(t)) for i, t in nav),
           body="\n".join(part for part in body if part), script=SCRIPT)


def _summary(run_name, matrix, results, generated_at):
    counts = dict.fromkeys(STATUS_ORDER, 0)
    for result in results:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    items = "".join('<li class="{}"><strong>{}</strong> {}</li>'.format("zero" if n == 0 else "", n,
                                                                        esc(status.replace("_", " ")))
                    for status, n in counts.items())
    order = {env.name: i for i, env in enumerate(matrix.environments)}
    by_env = {}
    for result in results:
        by_env.setdefault(result["environment"], []).append(result)
    rows = []
    for env in sorted(by_env, key=lambda name: (order.get(name, len(order)), name)):
        env_results = by_env[env]
        facts = _where(env_results)
        statuses = {}
        for result in env_results:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        rows.append([esc(env), esc(env_results[0]["framework"]), esc(facts["packages"]), esc(facts["python"]),
                     esc(facts["backend"]), esc(facts["built"]), esc(facts["device"]), esc(facts["gpu"]),
                     esc(facts["driver"]), esc(facts["host"]), esc(facts["weights"]),
                     esc(", ".join("{} {}".format(n, s) for s, n in sorted(statuses.items())))])
    columns = [(title, "text") for title in ("Environment", "Framework", "Versions", "Python", "Backend",
                                             "Image / environment", "Device", "GPU", "Driver", "Host", "Weights",
                                             "Cells")]
    return ('<section id="summary"><h2>Summary: what ran where</h2>\n<p>{} cells (the newest result of each; a '
            'drift load of an older version\'s checkpoint is a cell of its own):</p><ul class="counts">{}</ul>\n'
            '{}</section>').format(len(results), items,
                                   table("where-table", columns, rows) if rows else "<p>No results.</p>")


def _distinct(values):
    seen = []
    for value in values:
        if value not in (None, "") and value not in seen:
            seen.append(value)
    return "; ".join(str(v) for v in seen) or "-"


def _where(results):
    """What an environment's results say about where they ran (a field each result may lack: failed builds)."""
    provenance = [r.get("provenance") or {} for r in results]
    runner = [p.get("runner") or {} for p in provenance]
    device = [p.get("device") or {} for p in provenance]
    host = [p.get("host") or {} for p in provenance]
    telemetry = [(r.get("metrics") or {}).get("telemetry_source") or {} for r in results]
    ok = [r for r in results if r["status"] == "ok"] or results
    return {
        "packages": version_of(ok[0]).packages or "-",
        "python": _distinct((p.get("python") or {}).get("version") for p in provenance),
        "backend": _distinct(r.get("backend") for r in runner),
        "built": _distinct(_built(r.get("environment") or {}) for r in runner),
        "device": _distinct("{} ({})".format(p.get("device_requested"), d["framework_device"])
                            if d.get("framework_device") else p.get("device_requested")
                            for p, d in zip(provenance, device)),
        "gpu": _distinct([d.get("gpu_name") for d in device] + [t.get("gpu") for t in telemetry]),
        "driver": _distinct(d.get("driver") for d in device),
        "host": _distinct(_host(h) if h.get("hostname") else None for h in host),
        "weights": _distinct(((p.get("weights") or {}).get("source")) for p in provenance),
    }


def _host(host):
    quota = host.get("cpu_quota")
    return "{} ({}, {} CPUs{})".format(host["hostname"], host.get("cpu_model") or "?", host.get("cpu_count") or "?",
                                       ", a CPU quota of {:g}".format(quota) if quota else "")


def _built(environment):
    if environment.get("image"):
        return environment["image"]
    path = environment.get("path")
    return "{} {}".format(environment.get("backend", ""), path.rstrip("/").rsplit("/", 1)[-1]).strip() if path else None


def _where_text(verdict):
    return verdict.after if verdict.before is None else "{} -> {}".format(verdict.before, verdict.after)


def _badge(verdict):
    kind = "regression" if verdict.regression else "differs" if verdict.verdict == "differs" else \
        "change" if verdict.is_finding else "quiet"
    return '<span class="badge {}">{}</span>'.format(kind, esc(verdict.verdict))


def _what(verdict):
    engine = " [{}]".format(verdict.engine) if verdict.engine else ""
    return "{} {}{} {}{}".format(verdict.framework, verdict.model, engine, verdict.kind.replace("_", " "),
                                 "" if verdict.batch_size is None else " batch {}".format(verdict.batch_size))


def _findings(judgement, results_link, explained=""):
    """The section; `explained` (report/explanations.py) goes at its end."""
    out = ['<section id="findings"><h2>Findings</h2>']
    if judgement is None:
        out.append("<p>No verdicts: the run has no results to compare.</p></section>")
        return "\n".join(out)
    out.append("<p>Every pair of versions in the run is judged (consecutive versions, and oldest -> newest); "
               "p-values are adjusted for the false-discovery rate ({}, alpha {}) over the whole comparison.{} "
               "Thresholds: matrix.toml <code>[compare]</code>. Regressions first, then published numbers that "
               "differ, then other changes; the larger first.</p>".format(
                   {"bh": "Benjamini-Hochberg", "holm": "Holm"}.get(judgement.fdr, judgement.fdr), judgement.alpha,
                   " Compared against the run <code>{}</code>, position by position.".format(esc(judgement.baseline))
                   if judgement.baseline else ""))
    findings = judgement.findings()
    if not findings:
        out.append("<p>None: no regression, no change and no published number that differs.</p>")
    else:
        out.append('<ul class="findings">')
        for verdict in findings:
            out.append("<li>{} <strong>{}</strong> ({}): {} <span class=\"links\">{}</span></li>".format(
                _badge(verdict), esc(_what(verdict)), esc(_where_text(verdict)), esc(verdict.summary),
                result_links(results_link, *verdict.cells).replace("<br>", " ")))
        out.append("</ul>")
    if judgement.noise:
        out.append("<p>Between-run noise: {}.</p>".format(esc(judgement.noise["note"])))
    counts = {}
    for verdict in judgement.verdicts:
        counts.setdefault(verdict.kind, {}).setdefault(verdict.verdict, 0)
        counts[verdict.kind][verdict.verdict] += 1
    if counts:
        text = "; ".join("{}: {}".format(kind.replace("_", " "), ", ".join("{} {}".format(n, v) for v, n in sorted(
            by.items()))) for kind, by in sorted(counts.items()))
        out.append('<p>Verdicts (all in <a href="#verdicts">Every verdict</a>): {}.</p>'.format(esc(text)))
    out.append(explained)
    out.append("</section>")
    return "\n".join(out)


def _verdicts(judgement, results_link):
    out = ['<section id="verdicts"><h2>Every verdict</h2>']
    verdicts = judgement.verdicts if judgement else []
    if not verdicts:
        out.append("<p>No pairs to judge: a comparison needs two versions of a framework, or --baseline.</p>")
    else:
        rows = [[esc(v.kind.replace("_", " ")), esc(v.framework),
                 esc(v.model + (" [{}]".format(v.engine) if v.engine else "")),
                 ("-", "") if v.batch_size is None else (str(v.batch_size), str(v.batch_size)), esc(_where_text(v)),
                 _badge(v), ("-", "") if v.q_value is None else ("{:.3g}".format(v.q_value), repr(v.q_value)),
                 '<span class="reason">{}</span>'.format(esc(v.summary)), result_links(results_link, *v.cells)]
                for v in sorted(verdicts, key=lambda v: (v.kind, v.framework, v.model, v.batch_size or 0,
                                                         v.before or "", v.after))]
        columns = [("Kind", "text"), ("Framework", "text"), ("Model", "text"), ("Batch", "number"),
                   ("Versions", "text"), ("Verdict", "text"), ("q-value", "number"), ("Evidence", "text"),
                   ("Results", "text")]
        out.append(table("verdicts-table", columns, rows))
    out.append("</section>")
    return "\n".join(out)


def _not_ok(matrix, results, results_link):
    order = {env.name: i for i, env in enumerate(matrix.environments)}
    models = {model.key: i for i, model in enumerate(matrix.models)}
    not_ok = sorted((r for r in results if r["status"] != "ok"),
                    key=lambda r: (order.get(r["environment"], len(order)), models.get(r["model"], len(models)),
                                   r["suite"]))
    out = ['<section id="not-ok"><h2>Cells that gave no number</h2>',
           "<p>Failed, skipped, incompatible with the GPU, timed out, out of memory or interrupted, each with its reason; the plots mark "
           "them at their version.</p>"]
    if not not_ok:
        out.append("<p>None: every cell ran and gave its numbers.</p>")
    else:
        rows = []
        for result in not_ok:
            engine = engine_label(result)
            load = " (loads {}'s checkpoint)".format(result["drift_origin"]) if result.get("drift_origin") else ""
            rows.append([esc(result["environment"] + (" [{}]".format(engine) if engine else "")),
                         esc(result["framework"]), esc(result["model"]), esc(result["suite"] + load),
                         esc(result["status"].replace("_", " ")),
                         '<span class="reason">{}</span>'.format(esc(result.get("reason") or "no reason recorded")),
                         result_links(results_link, result["cell_id"])])
        columns = [("Environment", "text"), ("Framework", "text"), ("Model", "text"), ("Suite", "text"),
                   ("Status", "text"), ("Reason", "text"), ("Result", "text")]
        out.append(table("not-ok-table", columns, rows))
    out.append("</section>")
    return "\n".join(out)


def _problems(problems):
    if not problems:
        return ""
    return '<section id="problems"><h2>Result files not read</h2><ul>{}</ul></section>'.format(
        "".join("<li>{}</li>".format(esc(p)) for p in problems))
