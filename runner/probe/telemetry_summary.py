"""What a telemetry window's samples say (pure: no NVML, testable without a GPU), and the series file.

runner/probe/telemetry.py samples; this turns the samples into the result's summary and writes the series
beside it. Python 3.7, stdlib only.
"""

SERIES_COLUMNS = ("t_s", "gpu_util_pct", "memory_used_mib", "power_w", "sm_clock_mhz", "memory_clock_mhz",
                  "temperature_c")
LOW_UTILISATION_PCT = 50.0  # the report flags cells whose GPU stayed below this on average ...
MIN_UTILISATION_SAMPLES = 10  # ... over at least this many utilisation samples: fewer, and the window was too short


def summarise(rows, util_buffer, power_buffer, memory_util, energy_start_mj, energy_end_mj, wall_s, images,
              throttle, process_memory_mib, errors, interval_s):
    """The result's telemetry summary from what was sampled (pure: testable without a GPU)."""
    polled_util = [r[1] for r in rows if r[1] is not None]
    polled_power = [r[3] for r in rows if r[3] is not None]
    util, util_source = (util_buffer, "NVML sample buffer") if util_buffer else (polled_util, "polled")
    power = [p / 1000.0 for p in power_buffer] if power_buffer else polled_power
    summary = {
        "status": "ok",
        "window_s": wall_s,
        "polls": len(rows),
        "interval_s": interval_s,
        "gpu_utilization_pct": _stats(util, source=util_source, samples=len(util)),
        "memory_utilization_pct": _stats(memory_util),
        "memory_used_mib": {"peak": _max(r[2] for r in rows)},
        "process_memory_mib": {"peak": process_memory_mib},
        "power_w": _stats(power, source="NVML sample buffer" if power_buffer else "polled"),
        "sm_clock_mhz": _stats([r[4] for r in rows if r[4] is not None]),
        "memory_clock_mhz": _stats([r[5] for r in rows if r[5] is not None]),
        "temperature_c": {"max": _max(r[6] for r in rows)},
        "throttle_reasons": list(throttle),
        "unsupported": dict(errors),
    }
    if energy_start_mj is not None and energy_end_mj is not None:
        joules = (energy_end_mj - energy_start_mj) / 1000.0
        summary["energy_j"] = joules
        summary["joules_per_image"] = joules / images if images else None
    summary["utilization_verdict"] = utilisation_verdict(len(util), summary["gpu_utilization_pct"].get("mean"))
    summary["low_utilization"] = summary["utilization_verdict"] == "low"
    return summary


def utilisation_verdict(samples, mean):
    """"low", "ok", or why there is no verdict: NVML's sample period is 1/6 s to 1 s depending on the GPU, so a
    window of tens of milliseconds holds one sample or none, and its mean says nothing about the GPU's load."""
    if not samples or mean is None:
        return "no utilisation samples"
    if samples < MIN_UTILISATION_SAMPLES:
        return "window too short to judge ({} sample{}, at least {} needed)".format(
            samples, "" if samples == 1 else "s", MIN_UTILISATION_SAMPLES)
    return "low" if mean < LOW_UTILISATION_PCT else "ok"


def _stats(values, **extra):
    values = [float(v) for v in values if v is not None]
    out = dict(extra)
    if values:
        out.update(mean=sum(values) / len(values), max=max(values), min=min(values))
    return out


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def write_series(path, labelled_rows):
    """The time series as a small CSV beside the result: (window label, row) pairs."""
    with open(path, "w") as handle:
        handle.write(",".join(("window",) + SERIES_COLUMNS) + "\n")
        for label, row in labelled_rows:
            handle.write(",".join([label] + ["" if v is None else str(v) for v in row]) + "\n")
