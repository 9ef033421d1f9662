"""report.html's part for one framework: its plots (error vs published, throughput, cold start, drift,
GPU), then its tables. Cells that gave no number are marked in the plots and listed, with their
reason, in the page's table of cells that did not run."""

from ..frameworks import FRAMEWORKS
from ..results import engine_label
from ..verdicts.decide import drift_verdict
from . import plots
from .html_gpu import gpu_part
from .html_table import (esc, number, percent, result_links, significant, table, version_axis_label, versions_in_order,
                         yes_no)

TITLES = {"torchvision": "PyTorch / torchvision", "keras": "TensorFlow / Keras applications",
          "gluoncv": "MXNet / GluonCV"}
SUBSECTIONS = (("error", "Error vs published"), ("throughput", "Throughput per version"),
               ("cold-start", "Cold start per version"), ("drift", "Drift across versions"), ("gpu", "GPU"),
               ("tables", "Tables"))


def section_ids(framework):
    return ["fw-" + framework] + ["{}-{}".format(framework, key) for key, _ in SUBSECTIONS]


def _figure(alt, uri, caption):
    return '<figure><img alt="{0}" src="{1}"><figcaption>{2}</figcaption></figure>'.format(esc(alt), uri, caption)


class FrameworkPart:
    def __init__(self, framework, rows, results, drift, matrix, judgement, results_dir, results_link):
        self.framework, self.rows, self.results, self.drift = framework, rows, results, drift
        self.matrix, self.results_dir, self.link = matrix, results_dir, results_link
        ok_first = sorted(results, key=lambda r: r["status"] != "ok")
        self.versions = versions_in_order(ok_first)
        self.by_position = {(v.environment, v.engine): v for v in self.versions}
        self.labels = [v.label for v in self.versions]
        info = FRAMEWORKS.get(framework)
        self.axis = version_axis_label(info.packages if info else (framework,))
        order = {model.key: i for i, model in enumerate(matrix.models)}
        self.models = sorted({r["model"] for r in results}, key=lambda m: (order.get(m, len(order)), m))
        self.published = {}
        for verdict in judgement.verdicts if judgement else ():
            if verdict.kind == "published":
                self.published[verdict.cells[0]] = verdict.verdict

    def version(self, row):
        return self.by_position[(row["environment"], row["engine"])]

    def _rows(self, suite, ok=True):
        return [r for r in self.rows if r["suite"] == suite and (r["status"] == "ok") == ok]

    # -- plots --------------------------------------------------------------------------------------------

    def error(self):
        panels = []
        for model in self.models:
            points = {}
            for row in (r for r in self.rows if r["suite"] == "error" and r["model"] == model):
                points[self.version(row).label] = {
                    "status": row["status"], "top1": row["top1_error"], "top5": row["top5_error"],
                    "top1_ci": (row["top1_ci_low"], row["top1_ci_high"]),
                    "top5_ci": (row["top5_ci_low"], row["top5_ci_high"]),
                    "published_top1": _value(row["published_top1_error"]),
                    "published_top5": _value(row["published_top5_error"])}
            if points:
                panels.append((model, points))
        if not panels:
            return "<p>No error results for this framework in this run (the error suite needs --imagenet).</p>"
        random = any(r["weights"] == "random" for r in self._rows("error"))
        note = " Random weights: the error of an untrained network (about 99.9%), a test of the pipeline, not of " \
               "the published number." if random else ""
        return _figure("ImageNet error vs published, {}".format(self.framework),
                       plots.error_plot(self.labels, panels, self.axis),
                       "Reproduced top-1 and top-5 error with their 95% Wilson interval over the images evaluated; "
                       "the bar marker is the published value for that version.{}".format(note))

    def _throughput_panels(self):
        statuses = {}
        for result in self.results:
            if result["suite"] == "throughput":
                statuses.setdefault(result["model"], {})[self.by_position[_position(result)].label] = result["status"]
        panels = []
        for model in self.models:
            batches = {}
            for row in (r for r in self._rows("throughput") if r["model"] == model and r["images_per_s"] != ""):
                low = row["images_per_s_low"] if row["images_per_s_low"] != "" else row["images_per_s"]
                high = row["images_per_s_high"] if row["images_per_s_high"] != "" else row["images_per_s"]
                batches.setdefault(row["batch_size"], {})[self.version(row).label] = (row["images_per_s"], low, high)
            if batches or model in statuses:
                panels.append((model, batches, statuses.get(model, {})))
        return panels

    def throughput(self):
        panels = self._throughput_panels()
        if not panels:
            return "<p>No throughput results for this framework in this run.</p>"
        return _figure("throughput per version, {}".format(self.framework),
                       plots.throughput_plot(self.labels, panels, self.axis),
                       "Synthetic input on the device; the point is the median images/s over the trials, the bar "
                       "their range. A regression shows as a step between versions.")

    def cold_start(self):
        series = {}
        for row in self._rows("throughput"):
            series.setdefault(row["model"], {})[self.version(row).label] = row["cold_start_s"]
        if not series:
            return "<p>No cold start in this run (it is timed by the throughput suite).</p>"
        ordered = [(model, series[model]) for model in self.models if model in series]
        return _figure("cold start per version, {}".format(self.framework),
                       plots.cold_start_plot(self.labels, ordered, self.axis),
                       "Process start to the first prediction: import, model build, weights and the first batch.")

    def _drift_pairs(self):
        order = {}
        for version in self.versions:
            order.setdefault(version.environment, version.key)
        records = sorted(self.drift, key=lambda p: (order.get(p["from_env"], ()), order.get(p["to_env"], ())))
        pairs = []
        for record in records:
            label = "{} -> {}".format(record["from_env"], record["to_env"])
            if label not in pairs:
                pairs.append(label)
        return records, pairs

    def drift_plot(self):
        records, pairs = self._drift_pairs()
        if not records:
            return "<p>No drift pairs: the drift suite needs --imagenet and at least two versions of the framework.</p>"
        cells = {}
        for record in records:
            verdict, _ = drift_verdict(record, self.matrix.compare.drift_rtol)
            lines = ["max |diff| {:.3g}".format(record["max_abs_diff"]),
                     "top-1 {:.0%}, top-5 {:.0%}".format(record["top1_agreement"], record["top5_agreement"])] \
                if record["status"] == "ok" else [record["status"] + " (reason in the table)"]
            cells[("{} -> {}".format(record["from_env"], record["to_env"]), record["model"])] = (verdict, lines)
        models = [m for m in self.models if any(r["model"] == m for r in records)]
        return _figure("drift grid, {}".format(self.framework), plots.drift_grid(pairs, models, cells),
                       "One seeded checkpoint per model, written by the older version and loaded by the newer; "
                       "each square: verdict, the largest absolute output difference (logits; Keras: "
                       "log-probabilities) and the top-1 / top-5 agreement over the same images. Tolerance of "
                       "numerically close: matrix.toml [compare] "
                       "drift_rtol x the largest reference output.")

    # -- tables -------------------------------------------------------------------------------------------

    def error_table(self):
        rows = []
        for row in self._rows("error"):
            rows.append([esc(self.version(row).text), esc(row["model"]), esc(row["weights"] or "-"),
                         number(row["images"], 0), _ci(row, "top1"), _ci(row, "top5"),
                         number(_value(row["published_top1_error"])), number(_value(row["published_top5_error"])),
                         number(_value(row["delta_top1"])), number(_value(row["delta_top5"])),
                         esc(self.published.get(row["cell_id"], "-")), result_links(self.link, row["cell_id"])])
        columns = [("Version", "text"), ("Model", "text"), ("Weights", "text"), ("Images", "number"),
                   ("Top-1 error % (95% CI)", "number"), ("Top-5 error % (95% CI)", "number"),
                   ("Published top-1 %", "number"), ("Published top-5 %", "number"), ("Delta top-1", "number"),
                   ("Delta top-5", "number"), ("Published verdict", "text"), ("Result", "text")]
        return table(self.framework + "-error-table", columns, rows, "Error vs published (delta = reproduced - "
                                                                     "published, in points)") if rows else ""

    def throughput_table(self):
        rows = []
        for row in self._rows("throughput"):
            low, high = row["images_per_s_low"], row["images_per_s_high"]
            rows.append([esc(self.version(row).text), esc(row["model"]), esc(row["device"]),
                         number(row["batch_size"], 0),
                         number(row["images_per_s"], 1) if row["images_per_s"] != "" else (esc(row["reason"]), ""),
                         "-" if low == "" else "{:.1f}-{:.1f}".format(low, high), number(row["latency_p50_ms"], 1),
                         number(row["latency_p90_ms"], 1), number(row["latency_p99_ms"], 1),
                         number(row["cold_start_s"], 2), result_links(self.link, row["cell_id"])])
        columns = [("Version", "text"), ("Model", "text"), ("Device", "text"), ("Batch", "number"),
                   ("Images/s (median)", "number"), ("Trial range", "text"), ("p50 ms", "number"), ("p90 ms", "number"),
                   ("p99 ms", "number"), ("Cold start s", "number"), ("Result", "text")]
        return table(self.framework + "-throughput-table", columns, rows, "Throughput and cold start") if rows else ""

    def drift_table(self):
        records, _ = self._drift_pairs()
        rows = []
        for record in records:
            verdict, _ = drift_verdict(record, self.matrix.compare.drift_rtol)
            ok = record["status"] == "ok"
            reason = "" if ok else ": " + esc((record.get("reason") or "").replace("\n", " ")[:300])
            rows.append([esc(record["from_env"]), esc(record["to_env"]), esc(record["model"]),
                         '<span class="reason">{}{}</span>'.format(esc(verdict), reason),
                         significant(record.get("max_abs_diff") if ok else None),
                         significant(record.get("mean_abs_diff") if ok else None),
                         percent(record.get("top1_agreement") if ok else None),
                         percent(record.get("top5_agreement") if ok else None),
                         yes_no(record.get("inputs_identical")), yes_no(record.get("weights_identical")),
                         number(record.get("images"), 0),
                         result_links(self.link, record["from_cell"], record["to_cell"])])
        columns = [("From", "text"), ("To", "text"), ("Model", "text"), ("Verdict", "text"), ("Max |diff|", "number"),
                   ("Mean |diff|", "number"), ("Top-1 agree", "number"), ("Top-5 agree", "number"),
                   ("Inputs identical", "text"), ("Weights identical", "text"), ("Images", "number"),
                   ("Results (from, to)", "text")]
        return table(self.framework + "-drift-table", columns, rows, "Drift pairs") if rows else ""

    def render(self):
        fw = self.framework
        gpu_plots, gpu_table = gpu_part(self.results, self.results_dir, self.link)
        bodies = {"error": self.error(), "throughput": self.throughput(), "cold-start": self.cold_start(),
                  "drift": self.drift_plot(), "gpu": gpu_plots}
        tables = [self.error_table(), self.throughput_table(), self.drift_table(), gpu_table]
        bodies["tables"] = "\n".join(t for t in tables if t) or "<p>No results of this framework gave numbers.</p>"
        out = ['<section class="framework" id="fw-{}"><h2>{}</h2>'.format(esc(fw), esc(TITLES.get(fw, fw)))]
        out.append('<p class="muted">Versions in release order: {}.</p>'.format(
            ", ".join(esc(v.text) for v in self.versions)))
        for key, title in SUBSECTIONS:
            out.append('<section id="{}-{}"><h3>{}</h3>\n{}</section>'.format(esc(fw), key, title, bodies[key]))
        out.append("</section>")
        return "\n".join(out)


def _position(result):
    return result["environment"], engine_label(result)


def _value(value):
    return None if value == "" else value


def _ci(row, key):
    return ("{:.2f} ({:.1f}-{:.1f})".format(row[key + "_error"], row[key + "_ci_low"], row[key + "_ci_high"]),
            repr(float(row[key + "_error"])))
