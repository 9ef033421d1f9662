"""report.md: the run's summary, findings, and its tables."""

import io

from ..frameworks import FRAMEWORKS
from .findings import render_findings

def _fmt(value, digits=2):
    if value == "" or value is None:
        return "-"
    if isinstance(value, float):
        return "{:.{}f}".format(value, digits)
    return str(value)


def _env_label(row):
    package = FRAMEWORKS[row["framework"]].version_package if row["framework"] in FRAMEWORKS else row["framework"]
    version = " ({} {})".format(package, row["framework_version"]) if row["framework_version"] else ""
    engine = " [{}]".format(row["engine"]) if row.get("engine") else ""
    return row["environment"] + version + engine


def _signed(value):
    return "-" if value == "" else "{:+.2f}".format(value)


DRIFT_COLUMNS = [
    "framework", "model", "from_env", "to_env", "status", "reason", "images", "inputs_identical",
    "weights_identical", "outputs_identical", "compared_as", "max_abs_diff", "mean_abs_diff", "top1_agreement",
    "top5_agreement", "checkpoint_sha256", "from_cell", "to_cell",
]


def _yes(value):
    return {True: "yes", False: "no"}.get(value, "-")


def render_drift(drift, matrix):
    out = io.StringIO()
    w = out.write
    w("\n## Drift across versions (one seeded checkpoint per framework x model)\n\n")
    if not drift:
        w("No drift comparisons: the drift suite needs the ImageNet val set (--imagenet) and at least two versions "
          "of a framework.\n")
        return out.getvalue()
    w("The older version writes seeded random weights in its framework's own weight-file format; the newer one "
      "loads that file and both run the same images through their official preprocessing. Inputs / weights / "
      "outputs identical: bit for bit. Max and mean |diff| are over logits (Keras: log-probabilities, as its "
      "models end in a softmax). Agreement: share of images with the same top-1 class / the same top-5 set.\n\n")
    w("| Framework | Model | From -> to | Status | Images | Inputs identical | Weights identical | Outputs identical "
      "| Max abs diff | Mean abs diff | Top-1 agree | Top-5 agree |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    order = {env.name: i for i, env in enumerate(matrix.environments)}
    models = {model.key: i for i, model in enumerate(matrix.models)}
    for pair in sorted(drift, key=lambda p: (p["framework"], models.get(p["model"], 99), order.get(p["from_env"], 99),
                                             order.get(p["to_env"], 99))):
        status = pair["status"] if pair["status"] == "ok" else "{}: {}".format(
            pair["status"], (pair.get("reason") or "").replace("|", "\\|").replace("\n", " ")[:160])
        ok = pair["status"] == "ok"
        w("| {} | {} | {} -> {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n".format(
            pair["framework"], pair["model"], pair["from_env"], pair["to_env"], status, pair["images"],
            _yes(pair.get("inputs_identical")), _yes(pair.get("weights_identical")),
            _yes(pair.get("outputs_identical")),
            "{:.3g}".format(pair["max_abs_diff"]) if ok else "-", "{:.3g}".format(pair["mean_abs_diff"]) if ok else "-",
            "{:.0%}".format(pair["top1_agreement"]) if ok else "-", "{:.0%}".format(pair["top5_agreement"]) if ok else "-"))
    return out.getvalue()


def render_markdown(run_name, matrix, rows, problems, generated_at, drift=(), judgement=None, results_link="",
                    explained=""):
    out = io.StringIO()
    w = out.write
    counts = {}
    # One per result, as report.html counts them: a drift load of an older version's checkpoint is a cell of its
    # own (its status can differ from the writer's); a throughput cell's batch sizes are rows of one cell.
    cells = {r["cell_id"]: r["status"] for r in rows}
    for status in cells.values():
        counts[status] = counts.get(status, 0) + 1
    w("# Reproducibility matrix: run `{}`\n\n".format(run_name))
    w("Generated {} from `{}`. {} cells (a drift load of an older version's checkpoint is one of its own): {}.\n\n"
      .format(generated_at, matrix.path.name, len(cells),
              ", ".join("{} {}".format(v, k) for k, v in sorted(counts.items()))))
    w(render_findings(judgement, results_link, explained))
    w("\n## Tables\n\n")
    w("Engine settings (matrix `[engine]`): fp32, each framework's own cuDNN autotuning, determinism and XLA, "
      "unless an environment is marked [like this]; each result's provenance.settings says what took effect.\n\n")

    w("## ImageNet top-1 / top-5 error (%): reproduced vs published\n\n")
    w("Reproduced errors carry a 95% Wilson interval over the images evaluated; delta = reproduced - published. "
      "With random weights the reproduced error is that of an untrained network (about 99.9%): it tests the "
      "pipeline, not the published number.\n\n")
    w("Images evaluated / unreadable / unlabeled: the error is over the evaluated ones; an unreadable image "
      "(corrupt, truncated, more than 8 bits per channel, over Pillow's decompression-bomb limit) is listed with "
      "its reason in the result's `metrics.unreadable`, an unlabeled one (no label for it) in "
      "`metrics.unlabeled_examples`.\n\n")
    w("| Environment | Model | Weights | Images evaluated / unreadable / unlabeled | Top-1 (95% CI) | Top-5 (95% CI) | Published top-1 / top-5 | "
      "Delta top-1 / top-5 | Source |\n|---|---|---|---|---|---|---|---|---|\n")
    sources, not_evaluated = [], []
    for row in (r for r in rows if r["suite"] == "error"):
        ref = ""
        if row["published_source"]:
            citation = "{}; revision: {}".format(row["published_source"], row["published_revision"])
            if citation not in sources:
                sources.append(citation)
            ref = "[{}]".format(sources.index(citation) + 1)
        if row["status"] == "ok":
            top1 = "{} ({}-{})".format(_fmt(row["top1_error"]), _fmt(row["top1_ci_low"], 1), _fmt(row["top1_ci_high"], 1))
            top5 = "{} ({}-{})".format(_fmt(row["top5_error"]), _fmt(row["top5_ci_low"], 1), _fmt(row["top5_ci_high"], 1))
            not_evaluated.append((_not_evaluated(row), "{} {}".format(_env_label(row), row["model"])))
        else:
            top1, top5 = row["status"], "-"
        w("| {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} |\n".format(
            _env_label(row), row["model"], row["weights"] or "-", _images(row), top1, top5,
            _fmt(row["published_top1_error"]), _fmt(row["published_top5_error"]),
            _signed(row["delta_top1"]), _signed(row["delta_top5"]), ref or "-"))
    w(_render_not_evaluated(not_evaluated))
    if sources:
        w("\nPublished numbers:\n\n")
        for i, citation in enumerate(sources, 1):
            w("{}. {}\n".format(i, citation))

    w("\n## Throughput (synthetic input on the device)\n\n")
    w("GPU columns are NVML's, over the timed window (mean utilisation, peak memory used, energy per image); "
      "**low** marks a GPU that stayed under 50% busy on average over at least 10 NVML samples; a window with "
      "fewer is too short to judge (NVML samples every 1/6 s to 1 s, depending on the GPU).\n\n")
    w("Images/s is the median over the trials, with their range. % of peak: images/s x 2 x GMACs against the GPU's "
      "nominal peak for the precision in use: FP16 / BF16 tensor peak under mixed precision, TF32 where the framework "
      "let FP32 convolutions run as TF32, FP32 otherwise (runner/gpus.py).\n\n")
    w("| Environment | Model | Device | Batch | Images/s | p50 ms | p90 ms | p99 ms | Cold start s | GPU util % | "
      "Peak MiB | J/image | % of peak (precision in use) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    unavailable = []
    for row in (r for r in rows if r["suite"] == "throughput" and r["status"] == "ok"):
        if row["images_per_s"] == "":  # this batch size ran out of memory; the sweep went on
            w("| {} | {} | {} | {} | {} | - | - | - | {} | - | - | - | - |\n".format(
                _env_label(row), row["model"], row["device"], row["batch_size"], row["reason"] or row["batch_status"],
                _fmt(row["cold_start_s"], 1)))
            continue
        w("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n".format(
            _env_label(row), row["model"], row["device"], row["batch_size"], _rate(row),
            _fmt(row["latency_p50_ms"], 1), _fmt(row["latency_p90_ms"], 1), _fmt(row["latency_p99_ms"], 1),
            _fmt(row["cold_start_s"], 1), _gpu_columns(row, unavailable), _peak(row)))

    w("\n## Error suite: input pipeline and GPU\n\n")
    w("Decode = JPEG decoding and preprocessing (the decoders together; - where every crop came from the crop "
      "cache); model = the forward passes; waiting = the model loop waiting for input. A model far faster than "
      "decoding means the input pipeline, not the framework, set the pace.\n\n")
    w("| Environment | Model | Wall s | Waiting s | Crop cache | Decode images/s | Model images/s | GPU util % | "
      "Peak MiB | J/image |\n|---|---|---|---|---|---|---|---|---|---|\n")
    for row in (r for r in rows if r["suite"] == "error" and r["status"] == "ok"):
        w("| {} | {} | {} | {} | {} | {} | {} | {} |\n".format(
            _env_label(row), row["model"], _fmt(row["error_wall_s"], 1), _fmt(row["input_wait_s"], 1),
            row["crop_cache"].replace("|", "\\|") or "-", _fmt(row["decode_images_per_s"], 1),
            _fmt(row["model_images_per_s"], 1), _gpu_columns(row, unavailable)))
    if unavailable:
        w("\nGPU telemetry unavailable (-): {}.\n".format("; ".join(unavailable)))

    w(render_drift(drift, matrix))

    not_ok = [r for r in rows if r["status"] != "ok"]
    w("\n## Failed and skipped cells\n\n")
    if not not_ok:
        w("None.\n")
    else:
        w("| Environment | Model | Suite | Status | Reason |\n|---|---|---|---|---|\n")
        for row in not_ok:
            w("| {} | {} | {} | {} | {} |\n".format(_env_label(row), row["model"], row["suite"], row["status"],
                                                 row["reason"].replace("|", "\\|").replace("\n", " ")))
    if problems:
        w("\n## Result files not read\n\n")
        for problem in problems:
            w("- {}\n".format(problem))
    return out.getvalue()


def _images(row):
    if row["status"] != "ok":
        return "-"
    return "{} / {} / {}".format(_fmt(row["images"]), _fmt(row["unreadable_images"]), _fmt(row["unlabeled_images"]))


def _not_evaluated(row):
    """What of an ok error row's images was selected or found but not evaluated, or ''."""
    parts = []
    if row["unreadable_images"]:
        reasons = row["unreadable_reasons"].replace(";", ",")
        parts.append("{} unreadable{}".format(row["unreadable_images"], " ({})".format(reasons) if reasons else ""))
    if row["unlabeled_images"]:
        parts.append("{} unlabeled".format(row["unlabeled_images"]))
    if row["labels_without_image"]:
        parts.append("{} labels without an image".format(row["labels_without_image"]))
    return ", ".join(parts)


def _render_not_evaluated(notes):
    """'Not evaluated' lines, one per distinct note (the same val set gives every cell the same one)."""
    cells = {}
    for note, cell in notes:
        if note:
            cells.setdefault(note, []).append(cell)
    if not cells:
        return ""
    lines = ["\nNot evaluated:\n\n"]
    for note, where in cells.items():
        lines.append("- {}: {}\n".format("every cell" if len(where) == len(notes) else "; ".join(where), note))
    return "".join(lines)


def _peak(row):
    if row["peak_fraction"] == "":
        return "-"
    return "{:.1f} % of {} peak".format(100 * row["peak_fraction"], row["peak_precision"].upper())


def _rate(row):
    if row["images_per_s_low"] == "" or row["images_per_s_low"] == row["images_per_s_high"]:
        return _fmt(row["images_per_s"], 1)
    return "{} ({}-{})".format(_fmt(row["images_per_s"], 1), _fmt(row["images_per_s_low"], 1),
                               _fmt(row["images_per_s_high"], 1))


def _utilisation_note(row):
    """' **low**' over enough samples; where the window held too few, the count instead of a verdict."""
    if row["telemetry"] == "low GPU utilisation":
        return " **low**"
    if row["telemetry"].startswith("window too short"):
        return " (too short to judge: {} sample{})".format(row["gpu_util_samples"],
                                                           "" if row["gpu_util_samples"] == 1 else "s")
    if row["telemetry"] == "no utilisation samples":
        return " (no samples)"
    return ""


def _gpu_columns(row, unavailable):
    """'util | peak | J/image' cells; an unavailable reason is listed once below the table."""
    if row["telemetry"].startswith("unavailable: ") or row["telemetry"] == "not recorded":
        reason = row["telemetry"][len("unavailable: "):] if row["telemetry"] != "not recorded" else "not recorded"
        if reason not in unavailable:
            unavailable.append(reason)
        return "- | - | -"
    util = _fmt(row["gpu_util_mean_pct"], 0) + _utilisation_note(row)
    return "{} | {} | {}".format(util, _fmt(row["gpu_memory_peak_mib"], 0), _fmt(row["joules_per_image"], 3))
