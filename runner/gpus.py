"""Nominal peak throughput of GPUs, for a throughput result's fraction of peak.

Dense (no structured sparsity) tera-operations per second from NVIDIA's data sheets, by the
precision the model ran in. "fp32" is the CUDA cores' FP32; "tf32", "fp16" and "bf16" the tensor
cores. A result is measured against ONE of them, the one for the precision in use (choose_peak):
fp16 / bf16 -> that tensor-core peak; fp32 where the framework let convolutions run as TF32 (read
back in the cell: torch.backends.cudnn.allow_tf32, TensorFlow's tensor_float_32_execution_enabled())
on a GPU that has TF32 -> "tf32"; otherwise "fp32". Boost clocks; sustained clocks are lower.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuPeak:
    name: str
    match: tuple  # lower-case substrings of the device name that select this entry (all must occur)
    tflops: dict  # precision -> dense peak, 10^12 operations/s
    source: str


GPU_PEAKS = (
    GpuPeak("H100 SXM5", ("h100", "hbm3"), {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4},
            "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column; tensor figures halved: the sheet lists them with sparsity)"),
    GpuPeak("H100 PCIe", ("h100", "pcie"), {"fp32": 51.0, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0},
            "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe column, dense)"),
    GpuPeak("H200 SXM", ("h200",), {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4},
            "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column, dense)"),
    GpuPeak("A100", ("a100",), {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
            "NVIDIA A100 Tensor Core GPU datasheet (dense)"),
    GpuPeak("V100 SXM2", ("v100", "sxm2"), {"fp32": 15.7, "fp16": 125.0}, "NVIDIA Tesla V100 datasheet (SXM2)"),
    GpuPeak("V100 PCIe", ("v100",), {"fp32": 14.0, "fp16": 112.0}, "NVIDIA Tesla V100 datasheet (PCIe)"),
    GpuPeak("T4", ("t4",), {"fp32": 8.1, "fp16": 65.0}, "NVIDIA T4 Tensor Core GPU datasheet"),
    GpuPeak("GeForce GTX 1080 Ti", ("1080 ti",), {"fp32": 11.3}, "NVIDIA GeForce GTX 1080 Ti specifications (boost)"),
)

# Where each framework's cell records whether FP32 convolutions may run as TF32 (its adapter's settings()),
# with the words the result gives as the reason for the peak it is measured against.
TF32_SETTINGS = (
    ("cudnn_allow_tf32", "torch.backends.cudnn.allow_tf32 is {} (PyTorch's default for convolutions: True)"),
    ("tf32_execution_enabled", "tf.config.experimental.tensor_float_32_execution_enabled() is {} (TensorFlow's "
                               "default from 2.4: True)"),
)


def peak_for(device_name):
    """The table entry for a device name such as 'NVIDIA H100 80GB HBM3', or None."""
    name = (device_name or "").lower()
    for entry in GPU_PEAKS:
        if all(part in name for part in entry.match):
            return entry
    return None


def choose_peak(settings, entry):
    """(peak name or None, why) for a cell's settings (its provenance["settings"]: what took effect) on `entry`."""
    settings = settings or {}
    precision = settings.get("precision") or "fp32"
    if precision in ("fp16", "bf16"):
        if precision not in entry.tflops:
            return None, "precision {}, and runner/gpus.py has no {} peak for {}".format(
                precision, precision.upper(), entry.name)
        return precision, "precision {} (the engine's mixed precision runs convolutions on the tensor cores)".format(
            precision)
    for key, text in TF32_SETTINGS:
        if settings.get(key) is not None:
            why = text.format(bool(settings[key]))
            if not settings[key]:
                return "fp32", why
            if "tf32" not in entry.tflops:
                return "fp32", why + "; {} has no TF32 tensor cores".format(entry.name)
            return "tf32", why
    return "fp32", "precision fp32; the cell records no TF32 setting (framework without one, or a result from " \
                   "before it was recorded)"


def fraction_of_peak(images_per_s, gmacs, device_name, settings=None):
    """What share of the GPU's nominal peak, for the precision in use (choose_peak), a throughput reached
    (2 operations per multiply-accumulate)."""
    if not gmacs:
        return {"status": "unavailable", "reason": "the model has no gmacs in matrix.toml"}
    entry = peak_for(device_name)
    if entry is None:
        return {"status": "unavailable",
                "reason": "no nominal peak for {!r} in runner/gpus.py".format(device_name or "this device")}
    peak, why = choose_peak(settings, entry)
    if peak is None:
        return {"status": "unavailable", "reason": why}
    achieved = images_per_s * 2 * gmacs / 1000.0  # TFLOPS
    return {"status": "ok", "peak": peak, "peak_tflops": entry.tflops[peak], "fraction": achieved / entry.tflops[peak],
            "achieved_tflops": achieved, "gpu": entry.name, "source": entry.source, "why": why}


def annotate_throughput(result, model):
    """Add each batch size's fraction of peak to a throughput result (host side: the table lives here)."""
    if result.get("suite") != "throughput" or result.get("status") != "ok":
        return
    provenance, metrics = result.get("provenance") or {}, result["metrics"]
    device = str((provenance.get("device") or {}).get("framework_device") or provenance.get("device_requested", ""))
    name = (provenance.get("device") or {}).get("gpu_name") or (metrics.get("telemetry_source") or {}).get("gpu")
    settings = dict(provenance.get("settings") or {})
    settings.setdefault("precision", (provenance.get("engine_requested") or {}).get("precision"))
    for batch in metrics["batches"]:
        if batch.get("images_per_s") is None:  # out of memory at this batch size: no rate, no fraction
            continue
        if "cuda" not in device.lower() and "gpu" not in device.lower():  # torch cuda:0, MXNet gpu(0), TF /GPU:0
            batch["fraction_of_peak"] = {"status": "unavailable", "reason": "device is {}: no GPU peak".format(device)}
        else:
            batch["fraction_of_peak"] = fraction_of_peak(batch["images_per_s"], model.gmacs, name, settings)
