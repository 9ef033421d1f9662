"""Report rows: one per cell and batch size, from the newest result of each position (the CSV's and JSON's rows)."""

from ..probe.telemetry_summary import utilisation_verdict
from ..results import engine_label
from ..stats import wilson_interval
from ..verdicts.published import ran_version

COLUMNS = [
    "environment", "framework", "framework_version", "model", "suite", "status", "reason", "device", "weights",
    "engine", "images", "images_selected", "unreadable_images", "unreadable_reasons", "unlabeled_images",
    "labels_without_image", "top1_error", "top1_ci_low", "top1_ci_high", "top5_error", "top5_ci_low", "top5_ci_high",
    "published_top1_error", "published_top5_error", "delta_top1", "delta_top5", "published_source",
    "published_revision", "batch_size", "batch_status", "images_per_s", "images_per_s_low", "images_per_s_high", "latency_p50_ms", "latency_p90_ms",
    "latency_p99_ms", "cold_start_s", "decode_images_per_s", "model_images_per_s", "error_wall_s", "input_wait_s",
    "crop_cache", "gpu_util_mean_pct", "gpu_util_samples",
    "gpu_memory_peak_mib", "joules_per_image", "telemetry", "peak_fraction", "peak_precision", "cell_id",
]


def _reasons(metrics):
    kinds = metrics.get("unreadable_kinds")
    if kinds is None:  # results from before the reasons were counted
        return ""
    return "; ".join("{} {}".format(n, kind) for kind, n in sorted(kinds.items()))


def image_accounting(metrics):
    """Report fields saying where every image of an error result went ('' where the result predates a count)."""
    return {"images": metrics["images_evaluated"], "images_selected": metrics.get("images_selected", ""),
            "unreadable_images": metrics["unreadable_count"], "unreadable_reasons": _reasons(metrics),
            "unlabeled_images": metrics.get("unlabeled_count", ""),
            "labels_without_image": metrics.get("labels_without_image_count", "")}


def crop_cache_text(record):
    """The error cell's crops: "hit", "hit (decoded ahead)" where a prefill built the entry (runner/prefill.py),
    "built", "rebuilt", "not stored: <why>", "off"; "" for a result from before the cache."""
    if not record:
        return ""
    text = record["status"]
    built = record.get("entry_built")  # a dict; anything else came from a manifest edited by hand
    if text == "hit" and isinstance(built, dict) and built.get("by") == "prefill":
        text += " (decoded ahead)"
    if record.get("lock_wait_s", 0) >= 1:
        text += ", {:.0f} s waiting for the entry".format(record["lock_wait_s"])
    if text.startswith("not stored") and record.get("reason"):
        text += ": " + record["reason"]
    return text


def image_counts_text(metrics):
    """'28 of 30 images evaluated, 2 unreadable (1 OSError, 1 too large), 1 unlabeled', for the terminal and
    the report; labels without an image are named only when there are some."""
    fields = image_accounting(metrics)
    parts = ["{} of {} images evaluated".format(fields["images"], fields["images_selected"])
             if fields["images_selected"] != "" else "{} images evaluated".format(fields["images"])]
    reasons = fields["unreadable_reasons"].replace(";", ",")
    parts.append("{} unreadable{}".format(fields["unreadable_images"], " ({})".format(reasons) if reasons else ""))
    parts.append("{} unlabeled".format(fields["unlabeled_images"]) if fields["unlabeled_images"] != ""
                 else "unlabeled not recorded")
    if fields["labels_without_image"]:
        parts.append("{} labels without an image".format(fields["labels_without_image"]))
    return ", ".join(parts)


UTILISATION_TEXT = {"low": "low GPU utilisation", "ok": "ok"}


def telemetry_verdict(summary):
    """The utilisation verdict of a telemetry summary: 'low', 'ok', 'window too short to judge (...)' or 'no
    utilisation samples'. Results from before the verdict was recorded get it from their sample count."""
    if summary.get("utilization_verdict"):
        return summary["utilization_verdict"]
    util = summary.get("gpu_utilization_pct") or {}
    if "samples" not in util:  # older still: only the flag
        return "low" if summary.get("low_utilization") else "ok"
    return utilisation_verdict(util["samples"], util.get("mean"))


def _telemetry(summary):
    """Report fields from a telemetry summary: 'ok', 'low GPU utilisation', 'window too short to judge (...)',
    'no utilisation samples', or 'unavailable: why'."""
    if not summary:
        return {"telemetry": "not recorded"}
    if summary.get("status") != "ok":
        return {"telemetry": "unavailable: {}".format(summary.get("reason"))}
    verdict = telemetry_verdict(summary)
    return {"gpu_util_mean_pct": summary["gpu_utilization_pct"].get("mean", ""),
            "gpu_util_samples": summary["gpu_utilization_pct"].get("samples", ""),
            "gpu_memory_peak_mib": summary["memory_used_mib"].get("peak") or "",
            "joules_per_image": summary.get("joules_per_image") or "",
            "telemetry": UTILISATION_TEXT.get(verdict, verdict)}


def peak_fields(peak):
    """peak_fraction and peak_precision ('fp32', 'tf32', 'fp16', 'bf16': the one peak measured against), or ''."""
    if not peak or peak.get("status") != "ok":
        return {}
    if isinstance(peak.get("fraction"), dict):  # results from before one peak was chosen: their FP32 fraction
        return {"peak_fraction": peak["fraction"].get("fp32", ""), "peak_precision": "fp32"}
    return {"peak_fraction": peak["fraction"], "peak_precision": peak["peak"]}


def _published(matrix, result):
    """(the framework version the result ran with, the published number for it)."""
    env, model = matrix.environment(result["environment"]), matrix.model(result["model"])
    if env is None or model is None or model.variant(env.framework) is None:
        return None, None
    version = ran_version(env, result)
    return version, model.variant(env.framework).published_for(version)


def _base_row(matrix, result):
    version, published = _published(matrix, result)
    provenance = result.get("provenance") or {}
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        environment=result["environment"], framework=result["framework"], framework_version=version or "",
        model=result["model"], suite=result["suite"], status=result["status"], reason=result.get("reason") or "",
        device=(provenance.get("device") or {}).get("framework_device") or provenance.get("device_requested", ""),
        weights=(provenance.get("weights") or {}).get("source", ""), cell_id=result["cell_id"],
        engine=engine_label(result),
    )
    if published is not None:
        row.update(published_top1_error=published.top1_error, published_top5_error=published.top5_error,
                   published_source=published.source, published_revision=published.revision)
    return row


def _matrix_order(matrix):
    envs = {env.name: i for i, env in enumerate(matrix.environments)}
    models = {model.key: i for i, model in enumerate(matrix.models)}
    # Positions no longer in the matrix sort after the rest, by name.
    return lambda key: (envs.get(key[0], len(envs)), key[0], models.get(key[1], len(models)), key[1], key[2], key[3])


def build_rows(matrix, results):
    rows = []
    for key in sorted(results, key=_matrix_order(matrix)):
        result = results[key]
        row = _base_row(matrix, result)
        metrics = result.get("metrics") or {}
        if result["suite"] == "error" and result["status"] == "ok":
            n = metrics["images_evaluated"]
            low1, high1 = wilson_interval(n - metrics["top1_correct"], n)
            low5, high5 = wilson_interval(n - metrics["top5_correct"], n)
            row.update(image_accounting(metrics))
            row.update(top1_error=metrics["top1_error"], top5_error=metrics["top5_error"],
                       top1_ci_low=low1, top1_ci_high=high1, top5_ci_low=low5, top5_ci_high=high5,
                       decode_images_per_s=metrics.get("decode_images_per_s") or "",
                       model_images_per_s=metrics.get("model_images_per_s") or "",
                       error_wall_s=metrics.get("wall_s", ""), input_wait_s=metrics.get("input_wait_s", ""),
                       crop_cache=crop_cache_text(metrics.get("crop_cache")))
            row.update(_telemetry(metrics.get("telemetry")))
            if row["published_top1_error"] != "":
                row.update(delta_top1=metrics["top1_error"] - row["published_top1_error"],
                           delta_top5=metrics["top5_error"] - row["published_top5_error"])
        if result["suite"] == "throughput" and result["status"] == "ok":
            for batch in metrics["batches"]:
                per = dict(row)
                if batch.get("images_per_s") is None:  # this batch size ran out of memory: its result is the reason
                    per.update(batch_size=batch["batch_size"], batch_status=batch.get("status", ""),
                               reason=batch.get("reason", ""), cold_start_s=metrics["cold_start_s"])
                    rows.append(per)
                    continue
                low, high = batch.get("images_per_s_range") or ("", "")
                per.update(batch_size=batch["batch_size"], batch_status=batch.get("status", "ok"),
                           images_per_s=batch["images_per_s"], images_per_s_low=low,
                           images_per_s_high=high,
                           latency_p50_ms=batch["latency_ms"]["p50"], latency_p90_ms=batch["latency_ms"]["p90"],
                           latency_p99_ms=batch["latency_ms"]["p99"], cold_start_s=metrics["cold_start_s"])
                per.update(_telemetry(batch.get("telemetry")))
                per.update(peak_fields(batch.get("fraction_of_peak")))
                rows.append(per)
            continue
        rows.append(row)
    return rows
