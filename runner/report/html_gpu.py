"""report.html's GPU part of a framework: utilisation and power over each cell's timed windows (the
probe's telemetry.csv beside the result), with the NVML summary and the fraction of peak per cell."""

import csv

from . import plots
from .html_table import esc, number, percent, result_links, table, version_of
from .tables import peak_fields, telemetry_verdict

NO_TELEMETRY = "no GPU telemetry in this run"


def _windows(result):
    """(label, telemetry summary, fraction of peak) per timed window of a result, in the probe's window names."""
    metrics = result.get("metrics") or {}
    if result["suite"] == "error":
        return [("error", metrics.get("telemetry"), None)]
    return [("batch {}".format(b["batch_size"]), b.get("telemetry"), b.get("fraction_of_peak"))
            for b in metrics.get("batches") or [] if b.get("images_per_s") is not None]  # not out-of-memory ones


def _has_telemetry(result):
    return result["status"] == "ok" and any((summary or {}).get("status") == "ok"
                                             for _, summary, _ in _windows(result))


def read_series(path):
    """{window: (t_s, gpu util %, power W)} from a telemetry.csv (runner/probe/telemetry_summary.py write_series)."""
    series = {}
    with open(str(path), newline="") as handle:
        for row in csv.DictReader(handle):
            times, util, power = series.setdefault(row["window"], ([], [], []))
            times.append(_float(row["t_s"]))
            util.append(_float(row["gpu_util_pct"]))
            power.append(_float(row["power_w"]))
    return series


def _float(text):
    return float(text) if text not in ("", None) else None


def _peak_text(peak):
    fields = peak_fields(peak)
    if not fields:
        return ""
    return "{:.0%} of {} peak".format(fields["peak_fraction"], fields["peak_precision"].upper())


def gpu_part(framework_results, results_dir, results_link):
    """(plots html, table html) for one framework's results (newest per position)."""
    cells = sorted((r for r in framework_results if _has_telemetry(r)),
                   key=lambda r: (version_of(r).key, r["model"], r["suite"]))
    if not cells:
        reasons = sorted({summary.get("reason") for r in framework_results if r["status"] == "ok"
                          for _, summary, _ in _windows(r) if summary and summary.get("status") != "ok"} - {None})
        because = " ({})".format("; ".join(esc(reason) for reason in reasons)) if reasons else ""
        return '<p class="no-telemetry">{}{}.</p>'.format(NO_TELEMETRY, because), ""
    figures, rows = [], []
    for result in cells:
        title = "{} {} {}".format(version_of(result).text, result["model"], result["suite"])
        windows = _windows(result)
        name = (result.get("files") or {}).get("telemetry")
        series = {}
        problem = "no telemetry series was stored with this result"
        if name and results_dir is None:
            problem = "the results folder was not given to the report"
        elif name:
            try:
                series = read_series(results_dir / name)
            except (OSError, KeyError, ValueError) as exc:
                problem = "telemetry series {} unreadable: {}".format(name, exc)
        drawn = [("{}{}".format(label, " ({})".format(_peak_text(peak)) if _peak_text(peak) else ""),) + series[label]
                 for label, _, peak in windows if label in series]
        if drawn:
            figures.append('<figure><img alt="GPU utilisation and power of {0}" src="{1}"><figcaption>{0}: NVML, '
                           'sampled every {2} s over each timed window</figcaption></figure>'.format(
                               esc(title), plots.gpu_plot(title, drawn), esc(_interval(windows))))
        else:
            figures.append('<p>{}: {}.</p>'.format(esc(title), esc(problem)))
        for label, summary, peak in windows:
            rows.append(_row(result, label, summary or {}, peak or {}, results_link))
    columns = [("Version", "text"), ("Model", "text"), ("Window", "text"), ("GPU util mean %", "number"),
               ("GPU util max %", "number"), ("Utilisation verdict", "text"), ("Power mean W", "number"), ("Peak memory MiB", "number"),
               ("J/image", "number"), ("% of peak", "number"), ("Peak used", "text"), ("Result", "text")]
    caption = "GPU over the timed windows (NVML). Fraction of peak: images/s x 2 x GMACs against the GPU's " \
              "nominal peak for the precision in use: FP16 / BF16 under mixed precision, TF32 where the framework " \
              "let FP32 convolutions run as TF32, FP32 otherwise (runner/gpus.py)."
    return '<div class="gpu-cells">{}</div>'.format("\n".join(figures)), table(
        "{}-gpu-table".format(cells[0]["framework"]), columns, rows, caption)


def _verdict_text(summary):
    verdict = telemetry_verdict(summary)
    return "low (under 50% on average)" if verdict == "low" else verdict


def _interval(windows):
    for _, summary, _ in windows:
        if summary and summary.get("interval_s"):
            return summary["interval_s"]
    return "?"


def _row(result, label, summary, peak, results_link):
    fields = peak_fields(peak)
    if summary.get("status") != "ok":
        unavailable = "unavailable: {}".format(esc(summary.get("reason") or "not recorded"))
        return [esc(version_of(result).text), esc(result["model"]), esc(label), (unavailable, "")] + [("-", "")] * 7 + \
            [result_links(results_link, result["cell_id"])]
    util, power = summary.get("gpu_utilization_pct") or {}, summary.get("power_w") or {}
    return [esc(version_of(result).text), esc(result["model"]), esc(label), number(util.get("mean"), 0),
            number(util.get("max"), 0), esc(_verdict_text(summary)), number(power.get("mean"), 1),
            number((summary.get("memory_used_mib") or {}).get("peak"), 0), number(summary.get("joules_per_image"), 3),
            percent(fields.get("peak_fraction"), 1),
            esc(fields["peak_precision"].upper() + (": " + peak["why"] if peak.get("why") else "")) if fields else
            ("-", ""),
            result_links(results_link, result["cell_id"])]
