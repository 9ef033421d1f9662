"""Throughput suite: synthetic input already on the device, warm-up, timed iterations.

Each timed trial runs at least `iterations` iterations and at least `min_window_s` seconds, so that
a fast GPU's window is long enough for NVML's utilisation samples. An out-of-memory error at one batch
size is that batch size's result ({"status": "out_of_memory", "reason": ...}); the sweep goes on.
"""

import time

import numpy as np

from .cpu_load import Meter


def percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def warm_up(adapter, model, tensor, iterations):
    """Untimed passes (kernel selection, caches, lazy initialisation), then a device synchronisation."""
    for _ in range(iterations):
        adapter.forward(model, tensor)
    adapter.synchronize()


def time_batches(adapter, model, tensor, iterations):
    """Per-iteration latencies in seconds, each ending with a device synchronisation."""
    latencies = []
    for _ in range(iterations):
        tick = time.perf_counter()
        adapter.forward(model, tensor)
        adapter.synchronize()
        latencies.append(time.perf_counter() - tick)
    return latencies


def time_trial(adapter, model, tensor, iterations, min_window_s, clock=time.perf_counter):
    """One trial's per-iteration latencies: iterations go on until there are at least `iterations` of
    them AND they took at least `min_window_s` seconds together. Counted on the timed passes, not on the
    clock since the trial began: the loop's own time between passes (long on a busy machine) is in no
    rate, so a trial's recorded seconds, from which its rate comes, always fill the window."""
    latencies, timed = [], 0.0
    while len(latencies) < iterations or timed < min_window_s:
        tick = clock()
        adapter.forward(model, tensor)
        adapter.synchronize()
        latencies.append(clock() - tick)
        timed += latencies[-1]
    return latencies


def measured_batches(metrics):
    """The batch sizes of a throughput result that have a rate (an out-of-memory batch size has none)."""
    return [b for b in (metrics or {}).get("batches") or [] if b.get("images_per_s") is not None]


def synthetic_input(adapter, recipe, batch, seed):
    array = np.random.RandomState(seed).standard_normal(recipe.input_shape(batch)).astype(np.float32)
    return adapter.to_device(array)


def run_throughput_suite(adapter, model, recipe, params, seed, telemetry):
    """Per batch size: `trials` timed windows of at least `iterations` iterations and `min_window_s`
    seconds each, NVML sampled over all of them.

    One number per batch would hide the run-to-run spread; each trial gives an images/s, and the
    result carries their median with the range, which holds the true median with probability
    1 - 2 * 0.5**trials (94% for 5 trials, order statistics; no distribution assumed).
    """
    per_batch = []
    for batch in params["batch_sizes"]:
        held = {}  # the telemetry window, once opened: an out-of-memory batch still reports its memory
        try:
            per_batch.append(_measure_batch(adapter, model, recipe, params, int(batch), seed, telemetry, held))
            continue
        except Exception as exc:  # noqa: BLE001 - only an out-of-memory error is a batch's result
            if not is_out_of_memory(adapter, exc):
                raise
            error = "{}: {}".format(type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        # Outside the except block: the traceback (and the frames holding the batch's tensors) is gone.
        per_batch.append(out_of_memory_entry(int(batch), error, _peak_mib(adapter, held.get("window")),
                                             held.get("window")))
        _release(adapter)
    return {"batches": per_batch}


def _measure_batch(adapter, model, recipe, params, batch, seed, telemetry, held):
    trials = int(params.get("trials", 1))
    iterations = int(params["iterations"])
    min_window_s = float(params.get("min_window_s", 0) or 0)
    _call(adapter, "reset_memory_peak")
    tensor = synthetic_input(adapter, recipe, batch, seed)
    warm_up(adapter, model, tensor, int(params["warmup"]))  # outside the telemetry window
    latencies, rates, busy, counts, seconds = [], [], [], [], []
    meter = Meter()
    with telemetry.window() as window:
        held["window"] = window
        for _ in range(trials):
            meter.start()
            trial = time_trial(adapter, model, tensor, iterations, min_window_s)
            busy.append(meter.share())
            latencies += trial
            counts.append(len(trial))
            seconds.append(sum(trial))
            rates.append(batch * len(trial) / sum(trial))
    return {
        "batch_size": batch,
        "status": "ok",
        "iterations": len(latencies),
        "warmup": int(params["warmup"]),
        "trials": trials,
        "min_window_s": min_window_s,
        "iterations_trials": counts,  # per trial: the iterations timed (at least `iterations`) ...
        "seconds_trials": seconds,  # ... and the seconds they took (at least min_window_s, loop aside)
        "total_s": sum(latencies),
        "images_per_s": float(np.median(rates)),
        "images_per_s_trials": rates,
        "images_per_s_range": [min(rates), max(rates)],
        "range_covers_median": 1 - 2 * 0.5 ** trials if trials > 1 else None,
        # per trial, the share of all cores other processes kept busy (None: not measurable here)
        "cpu_other_share_trials": busy,
        "latency_ms": {
            "p50": 1000 * percentile(latencies, 50),
            "p90": 1000 * percentile(latencies, 90),
            "p99": 1000 * percentile(latencies, 99),
            "min": 1000 * min(latencies),
            "max": 1000 * max(latencies),
        },
        "telemetry": window.summary(images=batch * len(latencies)),
        "telemetry_series": window.series(),
    }


def is_out_of_memory(adapter, exc):
    """The adapter's judgement (each framework raises its own kind); an adapter without one never says so."""
    judge = getattr(adapter, "is_out_of_memory", None)
    return bool(judge(exc)) if judge is not None else False


def out_of_memory_entry(batch, error, peak_mib, window=None):
    """A batch size that ran out of device memory: its result, with the peak memory where it was measured."""
    reason = "out of memory at batch {}, {}".format(
        batch, "peak {:.0f} MiB".format(peak_mib) if peak_mib is not None else "peak memory not measurable here")
    entry = {"batch_size": batch, "status": "out_of_memory", "reason": reason, "error": error[:500],
             "peak_memory_mib": peak_mib, "telemetry_series": window.series() if window is not None else []}
    if window is not None:
        entry["telemetry"] = window.summary(images=None)
    return entry


def _peak_mib(adapter, window):
    """The framework's own peak allocation where it keeps one, else NVML's peak over the window."""
    peak = _call(adapter, "memory_peak_mib")
    if peak is None and window is not None:
        summary = window.summary(images=None)
        if summary.get("status") == "ok":
            peak = (summary.get("process_memory_mib") or {}).get("peak") or \
                (summary.get("memory_used_mib") or {}).get("peak")
    return peak


def _release(adapter):
    _call(adapter, "release_memory")


def _call(adapter, name):
    method = getattr(adapter, name, None)
    return method() if method is not None else None
