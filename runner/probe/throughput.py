"""Throughput suite: synthetic input already on the device, warm-up, timed iterations."""

import time

import numpy as np


def percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def time_batches(adapter, model, tensor, warmup, iterations):
    """Per-iteration latencies in seconds, each ending with a device synchronisation."""
    for _ in range(warmup):
        adapter.forward(model, tensor)
    adapter.synchronize()
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
    """Per batch size: timed iterations, with NVML sampled over the timed window (telemetry.py)."""
    per_batch = []
    for batch in params["batch_sizes"]:
        tensor = synthetic_input(adapter, recipe, int(batch), seed)
        for _ in range(int(params["warmup"])):
            adapter.forward(model, tensor)
        adapter.synchronize()
        with telemetry.window() as window:
            latencies = time_batches(adapter, model, tensor, 0, int(params["iterations"]))
        total = sum(latencies)
        per_batch.append({
            "batch_size": int(batch),
            "iterations": len(latencies),
            "warmup": int(params["warmup"]),
            "total_s": total,
            "images_per_s": batch * len(latencies) / total,
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
