"""The report's telemetry columns, from results shaped as the probe writes them."""

from runner.matrix import load_matrix
from runner.report import build_rows, latest_results, render_markdown

from .matrices import REAL


def gpu_summary(mean, peak=20480.0, joules=0.75, low=False):
    return {"status": "ok", "gpu_utilization_pct": {"mean": mean, "max": 100.0}, "memory_used_mib": {"peak": peak},
            "joules_per_image": joules, "low_utilization": low}


def throughput(env, telemetry_per_batch):
    return {"environment": env, "model": "resnet50", "suite": "throughput", "status": "ok", "cell_id": env + "-t",
            "framework": "torchvision", "ended_at": "2026-11-22T00:00:00Z", "provenance": {"device_requested": "cuda"},
            "metrics": {"cold_start_s": 1.0, "batches": [
                {"batch_size": b, "images_per_s": 100.0 * b, "images_per_s_range": [90.0 * b, 110.0 * b],
                 "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0},
                 "telemetry": t} for b, t in telemetry_per_batch]}}


def error(env, telemetry):
    return {"environment": env, "model": "resnet50", "suite": "error", "status": "ok", "cell_id": env + "-e",
            "framework": "torchvision", "ended_at": "2026-11-22T00:00:00Z", "provenance": {},
            "metrics": {"images_evaluated": 30, "top1_correct": 20, "top5_correct": 27, "top1_error": 33.3,
                        "top5_error": 10.0, "unreadable_count": 0, "decode_images_per_s": 50.0,
                        "model_images_per_s": 400.0, "telemetry": telemetry}}


def test_gpu_columns_per_cell_and_batch_low_utilisation_flagged_unavailable_explained_once():
    matrix = load_matrix(REAL)
    results = [
        throughput("torch-current", [(1, gpu_summary(31.0, low=True)), (16, gpu_summary(97.5, joules=0.125))]),
        throughput("torch-1.0", [(1, {"status": "unavailable", "reason": "device is cpu: there is no GPU to read"}),
                                 (16, {"status": "unavailable", "reason": "device is cpu: there is no GPU to read"})]),
        error("torch-current", gpu_summary(64.0, peak=9000.0, joules=1.5)),
    ]
    rows = build_rows(matrix, latest_results(results))
    by = {(r["environment"], r["suite"], r["batch_size"]): r for r in rows}
    assert by[("torch-current", "throughput", 1)]["telemetry"] == "low GPU utilisation"
    assert by[("torch-current", "throughput", 16)]["joules_per_image"] == 0.125
    assert by[("torch-1.0", "throughput", 16)]["telemetry"] == "unavailable: device is cpu: there is no GPU to read"
    assert by[("torch-current", "error", "")]["model_images_per_s"] == 400.0
    text = render_markdown("r", matrix, rows, [], "now")
    assert "| 1 | 100.0 (90.0-110.0) | 1.0 | 2.0 | 3.0 | 1.0 | 31 **low** | 20480 | 0.750 |" in text
    assert "| 16 | 1600.0 (1440.0-1760.0) | 1.0 | 2.0 | 3.0 | 1.0 | 98 | 20480 | 0.125 |" in text
    assert "| 50.0 | 400.0 | 64 | 9000 | 1.500 |" in text
    assert text.count("device is cpu: there is no GPU to read") == 1


def test_engine_settings_are_a_report_dimension_not_an_overwrite():
    """A run that sweeps precision keeps both results; rows say which settings they ran with."""
    matrix = load_matrix(REAL)
    plain = throughput("torch-current", [(16, None)])
    plain["provenance"]["engine_requested"] = {"precision": "fp32", "channels_last": False,
                                               "cudnn_autotune": "default", "deterministic": "default", "xla": "default"}
    mixed = throughput("torch-current", [(16, None)])
    mixed["cell_id"] = "mixed"
    mixed["provenance"]["engine_requested"] = dict(plain["provenance"]["engine_requested"], precision="bf16",
                                                   channels_last=True, cudnn_autotune=True)
    rows = build_rows(matrix, latest_results([plain, mixed]))
    assert sorted(r["engine"] for r in rows) == ["", "bf16, channels_last, cudnn_autotune=true"]
    text = render_markdown("r", matrix, rows, [], "now")
    assert "| torch-current (torchvision 0.29.1) [bf16, channels_last, cudnn_autotune=true] | resnet50 | cuda | 16 |" in text
    assert "| torch-current (torchvision 0.29.1) | resnet50 | cuda | 16 |" in text


def test_a_batch_size_that_ran_out_of_memory_is_a_row_with_its_reason_and_the_cell_stays_ok():
    matrix = load_matrix(REAL)
    result = throughput("torch-current", [(1, gpu_summary(97.0)), (64, gpu_summary(98.0))])
    result["metrics"]["batches"].append({"batch_size": 256, "status": "out_of_memory",
                                         "reason": "out of memory at batch 256, peak 79321 MiB"})
    rows = build_rows(matrix, latest_results([result]))
    by = {r["batch_size"]: r for r in rows}
    assert [r["batch_status"] for r in rows] == ["ok", "ok", "out_of_memory"]
    assert by[256]["status"] == "ok" and by[256]["images_per_s"] == "" and by[256]["reason"].endswith("79321 MiB")
    text = render_markdown("r", matrix, rows, [], "now")
    assert "| resnet50 | cuda | 256 | out of memory at batch 256, peak 79321 MiB | - | - | - | 1.0 |" in text
    assert "## Failed and skipped cells\n\nNone." in text  # the cell ran: one of its batch sizes did not fit


def test_a_window_too_short_for_nvml_is_not_flagged_low_and_says_why():
    matrix = load_matrix(REAL)
    short = dict(gpu_summary(12.0), gpu_utilization_pct={"mean": 12.0, "max": 40.0, "samples": 3},
                 utilization_verdict="window too short to judge (3 samples, at least 10 needed)")
    # A result from before the verdict was recorded, flagged low on 2 samples: judged again from its count.
    old = dict(gpu_summary(20.0, low=True), gpu_utilization_pct={"mean": 20.0, "max": 30.0, "samples": 2})
    enough = dict(gpu_summary(31.0, low=True), gpu_utilization_pct={"mean": 31.0, "max": 90.0, "samples": 60},
                  utilization_verdict="low")
    rows = build_rows(matrix, latest_results([throughput("torch-current", [(1, short), (16, old), (64, enough)])]))
    by = {r["batch_size"]: r for r in rows}
    assert by[1]["telemetry"] == "window too short to judge (3 samples, at least 10 needed)"
    assert by[16]["telemetry"] == "window too short to judge (2 samples, at least 10 needed)"
    assert by[64]["telemetry"] == "low GPU utilisation" and by[64]["gpu_util_samples"] == 60
    text = render_markdown("r", matrix, rows, [], "now")
    assert "| 12 (too short to judge: 3 samples) | 20480 |" in text
    assert "| 20 (too short to judge: 2 samples) | 20480 |" in text
    assert "| 31 **low** | 20480 |" in text and text.count("**low**") == 2  # the legend and batch 64


def test_the_peak_column_names_the_one_peak_it_used():
    matrix = load_matrix(REAL)
    result = throughput("torch-current", [(1, gpu_summary(97.0)), (64, gpu_summary(98.0)), (256, gpu_summary(99.0))])
    batches = result["metrics"]["batches"]
    batches[0]["fraction_of_peak"] = {"status": "ok", "peak": "tf32", "peak_tflops": 494.7, "fraction": 0.412,
                                      "why": "torch.backends.cudnn.allow_tf32 is True"}
    batches[1]["fraction_of_peak"] = {"status": "ok", "fraction": {"fp32": 0.5, "tf32": 0.07}}  # an older result
    batches[2]["fraction_of_peak"] = {"status": "unavailable", "reason": "no nominal peak for 'Radeon Pro'"}
    rows = build_rows(matrix, latest_results([result]))
    assert [(r["peak_fraction"], r["peak_precision"]) for r in rows] == [(0.412, "tf32"), (0.5, "fp32"), ("", "")]
    text = render_markdown("r", matrix, rows, [], "now")
    assert "| J/image | % of peak (precision in use) |" in text
    assert "| 0.750 | 41.2 % of TF32 peak |" in text and "| 0.750 | 50.0 % of FP32 peak |" in text
    assert "| 0.750 | - |" in text


def test_the_markdown_and_the_html_count_the_same_cells_drift_loads_included():
    """A drift load of an older version's checkpoint is a cell of its own in both: its status can differ from
    the writer's (here the load failed), and a count by position would hide it."""
    import re

    from runner.report.html import render_html

    matrix = load_matrix(REAL)
    writer = {"environment": "mxnet-1.9", "model": "resnet50", "suite": "drift", "status": "ok", "cell_id": "w",
              "framework": "gluoncv", "ended_at": "2026-11-22T00:00:00Z", "provenance": {}, "metrics": {}}
    load = dict(writer, cell_id="l", status="failed", reason="no such checkpoint", drift_origin="mxnet-1.5",
                drift_checkpoint="ab" * 32)
    results = [writer, load, throughput("torch-current", [(1, None), (16, None)])]
    latest = latest_results(results)
    rows = build_rows(matrix, latest)
    text = render_markdown("r", matrix, rows, [], "now")
    assert "3 cells (a drift load of an older version's checkpoint is one of its own): 1 failed, 2 ok." in text
    page = render_html("r", matrix, rows, list(latest.values()), [], "now", [], None, ".", None)
    assert re.search(r"<p>3 cells \(the newest result of each", page)


def test_the_input_pipeline_table_says_wall_wait_and_where_the_crops_came_from():
    matrix = load_matrix(REAL)
    prefilled = error("torch-current", None)
    prefilled["metrics"].update(wall_s=12.25, input_wait_s=0.5, decode_images_per_s=None, crop_cache={
        "status": "hit", "lock_wait_s": 3.2, "entry_built": {"by": "prefill", "at": "2026-12-01T00:00:00+00:00"}})
    refused = dict(error("torch-1.0", None), cell_id="r")
    refused["metrics"] = dict(refused["metrics"], wall_s=40.0, input_wait_s=20.0, crop_cache={
        "status": "not stored", "reason": "the entry would take 9 bytes, over the cache's limit of 1"})
    older = dict(error("tf-current", None), cell_id="o", framework="keras")  # from before the crop cache
    rows = build_rows(matrix, latest_results([prefilled, refused, older]))
    by = {r["environment"]: r for r in rows}
    assert by["torch-current"]["crop_cache"] == "hit (decoded ahead), 3 s waiting for the entry"
    assert by["torch-1.0"]["crop_cache"] == "not stored: the entry would take 9 bytes, over the cache's limit of 1"
    assert by["tf-current"]["crop_cache"] == "" and by["tf-current"]["error_wall_s"] == ""
    text = render_markdown("r", matrix, rows, [], "now")
    assert "| Wall s | Waiting s | Crop cache | Decode images/s | Model images/s |" in text
    assert "| resnet50 | 12.2 | 0.5 | hit (decoded ahead), 3 s waiting for the entry | - | 400.0 |" in text
    assert "| resnet50 | - | - | - | 50.0 | 400.0 |" in text


def test_a_cell_that_ran_other_packages_than_the_pins_is_labelled_and_judged_by_what_ran():
    """The local backend with --ignore-pins (a GPU host's own torch): the row's label and the published number
    follow the versions the result records, not the pins it did not hold."""
    matrix = load_matrix(REAL)
    pinned = matrix.environment("torch-current").pinned_version("torchvision")
    held, other = error("torch-current", None), error("torch-current", None)
    held["provenance"]["packages"] = {"torch": "9.9", "torchvision": pinned + "+cu130"}  # the pin, a local build
    other["provenance"]["packages"] = {"torch": "1.11.0", "torchvision": "0.12.0+cu113"}
    other["cell_id"], other["model"] = "other", "resnet101"
    rows = {row["cell_id"]: row for row in build_rows(matrix, latest_results([held, other])) if row["suite"] == "error"}
    assert rows["torch-current-e"]["framework_version"] == pinned
    assert rows["other"]["framework_version"] == "0.12.0+cu113"
    older = matrix.model("resnet101").variant("torchvision").published_for("0.12.0")
    newer = matrix.model("resnet101").variant("torchvision").published_for(pinned)
    assert older.top1_error != newer.top1_error
    assert rows["other"]["published_top1_error"] == older.top1_error
    assert rows["torch-current-e"]["published_top1_error"] == \
        matrix.model("resnet50").variant("torchvision").published_for(pinned).top1_error
