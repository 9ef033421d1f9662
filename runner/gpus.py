"""Nominal peak throughput of GPUs, for a throughput result's fraction of peak.

Dense (no structured sparsity) tera-operations per second from NVIDIA's data sheets, by the
precision the model ran in. "fp32" is the CUDA cores' FP32; "tf32" and "fp16" the tensor cores
(PyTorch lets cuDNN use TF32 for FP32 convolutions on Ampere and later unless told not to, so a
result gives its fraction of both). Boost clocks; sustained clocks are lower.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuPeak:
    name: str
    match: tuple  # lower-case substrings of the device name that select this entry (all must occur)
    tflops: dict  # precision -> dense peak, 10^12 operations/s
    source: str


GPU_PEAKS = (
    GpuPeak("H100 SXM5", ("h100", "hbm3"), {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4},
            "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column; tensor figures halved: the sheet lists them with sparsity)"),
    GpuPeak("H100 PCIe", ("h100", "pcie"), {"fp32": 51.0, "tf32": 378.0, "fp16": 756.0},
            "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe column, dense)"),
    GpuPeak("H200 SXM", ("h200",), {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4},
            "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column, dense)"),
    GpuPeak("A100", ("a100",), {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0},
            "NVIDIA A100 Tensor Core GPU datasheet (dense)"),
    GpuPeak("V100 SXM2", ("v100", "sxm2"), {"fp32": 15.7, "fp16": 125.0}, "NVIDIA Tesla V100 datasheet (SXM2)"),
    GpuPeak("V100 PCIe", ("v100",), {"fp32": 14.0, "fp16": 112.0}, "NVIDIA Tesla V100 datasheet (PCIe)"),
    GpuPeak("T4", ("t4",), {"fp32": 8.1, "fp16": 65.0}, "NVIDIA T4 Tensor Core GPU datasheet"),
    GpuPeak("GeForce GTX 1080 Ti", ("1080 ti",), {"fp32": 11.3}, "NVIDIA GeForce GTX 1080 Ti specifications (boost)"),
)


def peak_for(device_name):
    """The table entry for a device name such as 'NVIDIA H100 80GB HBM3', or None."""
    name = (device_name or "").lower()
    for entry in GPU_PEAKS:
        if all(part in name for part in entry.match):
            return entry
    return None


def fraction_of_peak(images_per_s, gmacs, device_name, precisions=("fp32", "tf32")):
    """What share of the GPU's nominal peak a throughput reached (2 operations per multiply-accumulate)."""
    if not gmacs:
        return {"status": "unavailable", "reason": "the model has no gmacs in matrix.toml"}
    entry = peak_for(device_name)
    if entry is None:
        return {"status": "unavailable",
                "reason": "no nominal peak for {!r} in runner/gpus.py".format(device_name or "this device")}
    achieved = images_per_s * 2 * gmacs / 1000.0  # TFLOPS
    return {"status": "ok", "gpu": entry.name, "achieved_tflops": achieved, "source": entry.source,
            "fraction": {p: achieved / entry.tflops[p] for p in precisions if p in entry.tflops}}


def annotate_throughput(result, model):
    """Add each batch size's fraction of peak to a throughput result (host side: the table lives here)."""
    if result.get("suite") != "throughput" or result.get("status") != "ok":
        return
    provenance, metrics = result.get("provenance") or {}, result["metrics"]
    device = str((provenance.get("device") or {}).get("framework_device") or provenance.get("device_requested", ""))
    name = (provenance.get("device") or {}).get("gpu_name") or (metrics.get("telemetry_source") or {}).get("gpu")
    for batch in metrics["batches"]:
        if batch.get("images_per_s") is None:  # out of memory at this batch size: no rate, no fraction
            continue
        if "cuda" not in device.lower() and "gpu" not in device.lower():  # torch cuda:0, MXNet gpu(0), TF /GPU:0
            batch["fraction_of_peak"] = {"status": "unavailable", "reason": "device is {}: no GPU peak".format(device)}
        else:
            batch["fraction_of_peak"] = fraction_of_peak(batch["images_per_s"], model.gmacs, name)
