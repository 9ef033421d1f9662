"""GPU telemetry through NVML (nvidia-ml-py), sampled while a suite's timed window runs.

    telemetry = open_telemetry(spec["device"])      # GpuTelemetry, or Unavailable with the reason
    with telemetry.window() as window:
        ... the timed loop ...
    summary = window.summary(images=n)               # {"status": "ok", ...} or {"status": "unavailable", ...}
    rows = window.series()                           # [(t_s, util %, mem MiB, power W, sm MHz, mem MHz, temp C)]

GPU utilisation and power come from NVML's own sample buffers where the GPU keeps them (the
driver samples far more often than a Python thread could); a background thread polls the
rest every `interval_s`. Energy is the delta of the GPU's total-energy counter. Nothing here
invents a number: whatever NVML cannot give is absent, with the reason.

Python 3.7, stdlib + nvidia-ml-py (imported only when a GPU is asked for).
"""

import os
import threading
import time

from .telemetry_summary import summarise

INTERVAL_S = 0.2


class Unavailable(object):
    """No telemetry for this cell, and why (CPU cell, no NVML, no such GPU)."""

    def __init__(self, reason):
        self.reason = reason

    def window(self):
        return _UnavailableWindow(self.reason)

    def describe(self):
        return {"status": "unavailable", "reason": self.reason}


class _UnavailableWindow(object):
    def __init__(self, reason):
        self.reason = reason

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def summary(self, images=None):
        return {"status": "unavailable", "reason": self.reason}

    def series(self):
        return []


def open_telemetry(device, interval_s=INTERVAL_S):
    """Telemetry for the GPU this process was given for `device` ('cpu', 'cuda', 'cuda:N')."""
    if not device.startswith("cuda"):
        return Unavailable("device is {}: there is no GPU to read".format(device))
    try:
        import pynvml
    except ImportError:
        return Unavailable("nvidia-ml-py is not installed in this environment (add it to the row's packages)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return Unavailable("NVML cannot start: {}".format(exc))
    try:
        index = device.partition(":")[2] or "0"
        handle, how = nvml_handle(pynvml, int(index), os.environ.get("CUDA_VISIBLE_DEVICES"))
        return GpuTelemetry(pynvml, handle, how, interval_s)
    except (pynvml.NVMLError, ValueError) as exc:
        return Unavailable("NVML has no GPU for {}: {}".format(device, exc))


def nvml_handle(pynvml, cuda_index, visible):
    """NVML's handle for the process's CUDA device `cuda_index`.

    NVML ignores CUDA_VISIBLE_DEVICES and counts every GPU of the machine (of the container,
    under Docker), so map through it; the runner sets CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA's
    order is NVML's.
    """
    if visible:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        if cuda_index >= len(entries):
            raise ValueError("CUDA_VISIBLE_DEVICES={} has no device {}".format(visible, cuda_index))
        entry = entries[cuda_index]
        if entry.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(entry)), "NVML index {} (CUDA_VISIBLE_DEVICES)".format(entry)
        return pynvml.nvmlDeviceGetHandleByUUID(entry), "NVML UUID {} (CUDA_VISIBLE_DEVICES)".format(entry)
    return pynvml.nvmlDeviceGetHandleByIndex(cuda_index), "NVML index {}".format(cuda_index)


class GpuTelemetry(object):
    def __init__(self, pynvml, handle, how, interval_s):
        self.nvml, self.handle, self.how, self.interval_s = pynvml, handle, how, interval_s

    def describe(self):
        nvml = self.nvml
        return {"status": "ok", "gpu": _text(nvml.nvmlDeviceGetName(self.handle)),
                "uuid": _text(nvml.nvmlDeviceGetUUID(self.handle)), "bound_by": self.how}

    def window(self):
        return _GpuWindow(self)


class _GpuWindow(object):
    def __init__(self, telemetry):
        self.t = telemetry
        self.rows = []
        self.throttle = set()
        self.process_memory_mib = None
        self.memory_util = []
        self.errors = {}
        self._stop = threading.Event()
        self._thread = None

    # -- sampling ---------------------------------------------------------------------------------

    def __enter__(self):
        nvml, handle = self.t.nvml, self.t.handle
        self.energy_start = self._try("energy", nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        self.nvml_start_us = self._latest_sample_timestamp()
        self.wall_start = time.perf_counter()
        self._poll()
        self._thread = threading.Thread(target=self._loop, name="nvml-sampler")
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._poll()
        self.wall_s = time.perf_counter() - self.wall_start
        nvml, handle = self.t.nvml, self.t.handle
        self.energy_end = self._try("energy", nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        self.util_buffer = self._buffer(nvml.NVML_GPU_UTILIZATION_SAMPLES)
        self.power_buffer = self._buffer(nvml.NVML_TOTAL_POWER_SAMPLES)
        return False

    def _loop(self):
        while not self._stop.wait(self.t.interval_s):
            self._poll()

    def _poll(self):
        nvml, handle = self.t.nvml, self.t.handle
        util = self._try("utilization", nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = self._try("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
        power_mw = self._try("power", nvml.nvmlDeviceGetPowerUsage, handle)
        sm = self._try("clocks", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        mem_clock = self._try("clocks", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM)
        temperature = self._try("temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        reasons = self._try("throttle", _throttle_reasons, nvml, handle)
        if reasons:
            self.throttle.update(_reason_names(nvml, reasons))
        mine = self._try("process memory", _process_memory_mib, nvml, handle, os.getpid())
        if mine is not None:
            self.process_memory_mib = max(mine, self.process_memory_mib or 0)
        self.rows.append((
            round(time.perf_counter() - self.wall_start, 3),
            None if util is None else util.gpu,
            None if memory is None else round(memory.used / 2.0 ** 20, 1),
            None if power_mw is None else round(power_mw / 1000.0, 2),
            sm, mem_clock, temperature))
        if util is not None:
            self.memory_util.append(util.memory)

    def _latest_sample_timestamp(self):
        """NVML's clock (µs) now, so the sample buffer is read from this window's start only."""
        nvml = self.t.nvml
        try:
            _, samples = nvml.nvmlDeviceGetSamples(self.t.handle, nvml.NVML_GPU_UTILIZATION_SAMPLES, 0)
            return max((s.timeStamp for s in samples), default=0)
        except nvml.NVMLError:
            return 0

    def _buffer(self, kind):
        nvml = self.t.nvml
        try:
            value_type, samples = nvml.nvmlDeviceGetSamples(self.t.handle, kind, self.nvml_start_us)
        except nvml.NVMLError as exc:
            self.errors["sample buffer {}".format(kind)] = str(exc)
            return []
        return [_sample_value(nvml, value_type, s.sampleValue) for s in samples if s.timeStamp > self.nvml_start_us]

    def _try(self, what, function, *args):
        try:
            return function(*args)
        except self.t.nvml.NVMLError as exc:  # not supported on this GPU: absent, with the reason
            self.errors.setdefault(what, str(exc))
            return None

    # -- results -------------------------------------------------------------------------------------

    def series(self):
        return list(self.rows)

    def summary(self, images=None):
        return summarise(self.rows, self.util_buffer, self.power_buffer, self.memory_util,
                         self.energy_start, self.energy_end, self.wall_s, images, sorted(self.throttle),
                         self.process_memory_mib, self.errors, self.t.interval_s)


def _throttle_reasons(nvml, handle):
    # Renamed "clocks event reasons" in newer NVML; the bitmask is the same.
    getter = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return getter(handle)


def _reason_names(nvml, mask):
    names = []
    for attr in dir(nvml):
        if attr.startswith("nvmlClocksThrottleReason") and attr not in ("nvmlClocksThrottleReasonAll",
                                                                         "nvmlClocksThrottleReasonNone"):
            bit = getattr(nvml, attr)
            if isinstance(bit, int) and bit and mask & bit == bit:
                names.append(attr[len("nvmlClocksThrottleReason"):])
    return names


def _process_memory_mib(nvml, handle, pid):
    """This process's GPU memory; None where NVML cannot see it (another PID namespace, e.g. Docker)."""
    for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
        if process.pid == pid and process.usedGpuMemory is not None:
            return round(process.usedGpuMemory / 2.0 ** 20, 1)
    return None


def _sample_value(nvml, value_type, value):
    field = {nvml.NVML_VALUE_TYPE_DOUBLE: "dVal", nvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
             nvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal", nvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal"}
    return getattr(value, field.get(value_type, "uiVal"))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
