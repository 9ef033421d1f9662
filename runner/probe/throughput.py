"""Throughput suite: synthetic input already on the device, warm-up, timed iterations."""

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


def synthetic_input(adapter, recipe, batch, seed):
    array = np.random.RandomState(seed).standard_normal(recipe.input_shape(batch)).astype(np.float32)
    return adapter.to_device(array)


def run_throughput_suite(adapter, model, recipe, params, seed, telemetry):
    """Per batch size: `trials` timed windows of `iterations` each, NVML sampled over all of them.

    One number per batch would hide the run-to-run spread; each trial gives an images/s, and the
    result carries their median with the range, which holds the true median with probability
    1 - 2 * 0.5**trials (94% for 5 trials, order statistics; no distribution assumed).
    """
    per_batch = []
    trials = int(params.get("trials", 1))
    for batch in params["batch_sizes"]:
        tensor = synthetic_input(adapter, recipe, int(batch), seed)
        warm_up(adapter, model, tensor, int(params["warmup"]))  # outside the telemetry window
        latencies, rates, busy = [], [], []
        meter = Meter()
        with telemetry.window() as window:
            for _ in range(trials):
                meter.start()
                trial = time_batches(adapter, model, tensor, int(params["iterations"]))
                busy.append(meter.share())
                latencies += trial
                rates.append(batch * len(trial) / sum(trial))
        total = sum(latencies)
        per_batch.append({
            "batch_size": int(batch),
            "iterations": len(latencies),
            "warmup": int(params["warmup"]),
            "trials": trials,
            "total_s": total,
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
        })
    return {"batches": per_batch}
