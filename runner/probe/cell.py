"""Run one cell (environment x model x suite) from a spec and write its result.

`python -m runner.probe SPEC.json` inside the environment. Every outcome, including a
crash of the framework code, becomes a result file with a status and a reason; the process
exits 0 when it wrote one, so the host can tell "the cell failed" from "the probe died".
"""

import os
import shutil
import sys
import tempfile
import time
import traceback

from . import PROBE_VERSION, RESULT_SCHEMA_VERSION
from .adapters import Unsupported, load_adapter
from .crop_source import prefill
from .dataset import DatasetError, open_dataset
from .drift_suite import run_drift_suite
from .error_suite import batch_ranges, input_workers, run_error_suite
from .explain_suite import run_explain_suite
from .gpu_compat import cell_verdict
from .jsonio import read_json, write_json_atomic
from .preprocess import Recipe
from .provenance import host_info, installed_packages, nvidia_driver, probe_source_sha256, python_info
from .telemetry import open_telemetry
from .telemetry_summary import write_series
from .throughput import is_out_of_memory, measured_batches, run_throughput_suite, synthetic_input
from .timestamps import now_iso
from .weights import WeightsError
from .cpu_load import Meter


PREFILL_NICENESS = 10


class Skip(Exception):
    """The cell cannot apply here (e.g. the model does not exist in this version)."""


class Incompatible(Exception):
    """The framework's build has no kernel for this GPU, or the driver is too old for it (gpu_compat.py)."""


def run_cell(spec):
    """Return the result dict for `spec`; never raises for failures inside the cell."""
    wall_start = time.time()
    tick = time.perf_counter()
    load = Meter()  # other processes' share of the machine from here to the first prediction (cold start)
    timeline = {"launched_at": spec.get("launched_at"), "probe_started_at": wall_start}
    result = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "probe_version": PROBE_VERSION,
        "cell_id": spec["cell_id"],
        "suite": spec["suite"],
        "environment": spec["environment"],
        "framework": spec["framework"],
        "model": spec["model"]["key"],
        "status": "failed",
        "reason": None,
        "metrics": None,
        "files": {},
        "started_at": now_iso(wall_start),
    }
    provenance = {
        "python": python_info(),
        "host": host_info(),
        "probe_sha256": probe_source_sha256(),
        "preprocessing": spec["preprocess"],
        "model": spec["model"],
        "device_requested": spec["device"],
        "build": spec.get("build"),
        "engine_requested": spec.get("engine"),
        "seed": spec.get("seed", 0),
        "threads_requested": spec.get("threads", 0),
    }
    adapter = None
    try:
        adapter = load_adapter(spec["framework"], spec["device"], spec.get("threads", 0), spec.get("engine"))
        timeline["framework_imported_at"] = time.time()
        provenance["framework"] = adapter.versions()
        provenance["device"] = adapter.device_info()
        if spec["device"].startswith("cuda"):
            provenance["device"].update(nvidia_driver())
            # Before any model is built: a build with no kernel for this GPU fails fast and says why.
            compat = provenance["gpu_compatibility"] = cell_verdict(spec["framework"], spec["device"],
                                                                     spec.get("gpu_build"))
            if compat["status"] == "incompatible":
                raise Incompatible(compat["reason"])
            if compat["status"] == "jit":  # the log says why the first batch takes minutes
                sys.stderr.write("probe: {}\n".format(compat["reason"]))
        result["status"], result["metrics"], provenance["weights"], provenance["dataset"], result["files"] = \
            _run_suite(adapter, spec, timeline, load, provenance)
        if spec["suite"] == "throughput" and not measured_batches(result["metrics"]):  # no batch size fitted
            result["status"] = "out_of_memory"
            result["reason"] = "; ".join(b["reason"] for b in result["metrics"]["batches"])
    except (Skip, Unsupported) as skip:
        result["status"], result["reason"] = "skipped", str(skip)
    except Incompatible as exc:
        result["status"], result["reason"] = "incompatible", str(exc)
    except (WeightsError, DatasetError) as exc:
        result["reason"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure of the framework is a recorded result
        traceback.print_exc()
        result["reason"] = "{}: {}".format(type(exc).__name__, exc)
        if adapter is not None and is_out_of_memory(adapter, exc):  # outside the sweep: cold start, error suite
            result["status"] = "out_of_memory"
    if adapter is not None:
        provenance["settings"] = adapter.settings()
    provenance["packages"] = installed_packages()
    provenance["timeline"] = timeline
    result["provenance"] = provenance
    result["ended_at"] = now_iso()
    result["duration_s"] = time.perf_counter() - tick
    return result


def _run_suite(adapter, spec, timeline, load, provenance):
    model_spec = spec["model"]
    if not adapter.has_model(model_spec["name"]):
        versions = ", ".join("{} {}".format(k, v) for k, v in sorted(adapter.versions().items()))
        raise Skip("not available in this version: {} has no model {!r}".format(versions, model_spec["name"]))
    recipe = Recipe.from_dict(spec["preprocess"])
    dataset = None
    if spec["suite"] in ("error", "drift", "explain", "prefill"):
        data = spec["dataset"]
        dataset = open_dataset(data["root"], data.get("labels_file"), data.get("limit", 0))
        if data.get("manifest_sha256") and dataset.manifest_sha256() != data["manifest_sha256"]:
            raise DatasetError("ImageNet val set {!r} changed since the cell was planned (manifest hash differs); "
                               "plan again".format(data["root"]))
    if spec["suite"] == "prefill":  # runner/prefill.py: a later cell's crops, no model
        return "ok", _prefill(adapter, recipe, dataset, spec), None, dataset.describe(), {}
    if spec["suite"] == "drift":
        metrics, files = run_drift_suite(adapter, model_spec, recipe, dataset, spec["suite_params"],
                                         spec["output_dir"], spec["drift"], spec.get("seed", 0))
        loaded = (spec["drift"]["checkpoints"] or [{}])[0]
        weights = {"source": "seeded checkpoint", "seed": metrics["seed"], "sha256": metrics["checkpoint"]["sha256"]} \
            if metrics["checkpoint"] else {"source": "checkpoint", "origin": loaded.get("origin"),
                                           "sha256": loaded.get("sha256")}
        return "ok", metrics, weights, dataset.describe(), files
    workdir = tempfile.mkdtemp(prefix="weights-", dir=spec["output_dir"])
    try:
        model, weights = adapter.build(model_spec["name"], model_spec.get("kwargs", {}), spec["weights"], workdir,
                                       recipe.input_shape(1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    timeline["model_ready_at"] = time.time()
    provenance["device_used"] = device_used(adapter.placement(model), spec["device"])
    params = spec["suite_params"]
    files = {}
    telemetry = open_telemetry(spec["device"])
    series = []  # (window, row) pairs for telemetry.csv
    if spec["suite"] == "error":
        with telemetry.window() as window:
            workers = input_workers(params, spec["device"])  # 0: from this host's cores and the device
            metrics = run_error_suite(adapter, model, recipe, dataset, dict(params, workers=workers),
                                      spec["output_dir"], spec.get("crop_cache"))
        metrics["telemetry"] = window.summary(images=metrics["images_evaluated"])
        series += [("error", row) for row in window.series()]
        files["predictions"] = metrics["predictions_file"]
    elif spec["suite"] == "explain":  # runner/explain: one model, many preprocessing variants, the same images
        metrics = run_explain_suite(adapter, model, spec["preprocess"], dataset, params, spec["output_dir"],
                                    spec.get("crop_cache"))
        files["predictions"] = metrics["predictions_file"]
    elif spec["suite"] == "throughput":
        jit = (provenance.get("gpu_compatibility") or {}).get("status") == "jit"
        metrics = _cold_start(adapter, model, recipe, params, spec, timeline, jit)
        metrics["cold_start_cpu_other_share"] = load.share()
        metrics.update(run_throughput_suite(adapter, model, recipe, params, spec.get("seed", 0), telemetry))
        for entry in metrics["batches"]:
            series += [("batch {}".format(entry["batch_size"]), row) for row in entry.pop("telemetry_series")]
    else:
        raise ValueError("unknown suite {!r}".format(spec["suite"]))
    metrics["telemetry_source"] = telemetry.describe()
    if series:
        write_series(os.path.join(spec["output_dir"], "telemetry.csv"), series)
        files["telemetry"] = "telemetry.csv"
    return "ok", metrics, weights, dataset.describe() if dataset else None, files


def _prefill(adapter, recipe, dataset, spec):
    """Decode the cell's crops into the crop cache, beside a GPU cell that reads its own from there."""
    # Below that cell's priority: the decoders (which inherit it) take only the cores its loop leaves idle.
    os.nice(PREFILL_NICENESS)
    try:
        # With autogroup scheduling each session (this probe's guard starts one) is weighed as a whole, and a
        # niceness counts only inside it: the session's own weight is lowered too.
        with open("/proc/self/autogroup", "w") as handle:
            handle.write(str(PREFILL_NICENESS))
    except OSError:
        pass  # no autogroup here (a kernel without it, a container): the niceness above is what counts
    params = spec["suite_params"]
    workers = input_workers(params, "cuda")  # as many as a GPU cell's: one per core, niced below the cells' threads
    tick = time.perf_counter()
    record = prefill(dataset, recipe, adapter, batch_ranges(len(dataset.items), int(params["batch_size"])), workers,
                     int(params.get("prefetch", 2)), spec["crop_cache"], spec["output_dir"])
    return {"crop_cache": record, "input_workers": workers, "images_selected": len(dataset.items),
            "wall_s": time.perf_counter() - tick}


def device_used(placement, asked):
    """The placement with its kind (cpu or cuda), checked against the device asked for: a model on another
    device than asked would be measured and stored as if it were on the asked one."""
    text = placement["framework_device"].lower()
    kind = "cuda" if ("gpu" in text or "cuda" in text) else "cpu"
    if kind != asked.split(":")[0]:
        raise RuntimeError("asked for device {}, but the model is on {} ({}); nothing was measured".format(
            asked, placement["framework_device"], placement["from"]))
    return dict(placement, kind=kind)


def _cold_start(adapter, model, recipe, params, spec, timeline, jit=False):
    """Process start to first prediction (import, build, weights, first batch), kept apart from steady state.

    Where the driver compiles the build's PTX for this GPU (jit), the first batch holds that compilation: a second
    batch tells it apart, and it is reported as ptx_jit_s beside the cold start, not hidden in it."""
    tensor = synthetic_input(adapter, recipe, int(params["batch_sizes"][0]), spec.get("seed", 0))
    adapter.forward(model, tensor)
    adapter.synchronize()
    timeline["first_prediction_at"] = time.time()
    origin = timeline["launched_at"] or timeline["probe_started_at"]
    jit_s = None
    if jit:
        tick = time.perf_counter()
        adapter.forward(model, tensor)
        adapter.synchronize()
        jit_s = max(0.0, timeline["first_prediction_at"] - timeline["model_ready_at"] - (time.perf_counter() - tick))
    return {
        "ptx_jit_s": jit_s,
        "cold_start_s": timeline["first_prediction_at"] - origin,
        "cold_start_breakdown_s": {
            "process_start": timeline["probe_started_at"] - origin,
            "import": timeline["framework_imported_at"] - timeline["probe_started_at"],
            "build_and_weights": timeline["model_ready_at"] - timeline["framework_imported_at"],
            "first_batch": timeline["first_prediction_at"] - timeline["model_ready_at"],
        },
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m runner.probe SPEC.json\n")
        return 2
    spec = read_json(argv[0])
    result = run_cell(spec)
    write_json_atomic(os.path.join(spec["output_dir"], "result.json"), result)
    sys.stderr.write("probe: {} {} {}: {}{}\n".format(
        spec["environment"], spec["model"]["key"], spec["suite"], result["status"],
        " ({})".format(result["reason"]) if result["reason"] else ""))
    return 0
