"""Can this framework build run on this GPU? Decided from facts before a cell runs, never by trying it.

    gpu = read_gpu("cuda:0")          # {"name", "capability": (9, 0), "driver_cuda": (13, 0)} or {"unavailable": why}
    verdict = decide(gpu, build)      # {"status": "ok" | "jit" | "incompatible" | "unknown", "reason": ...}

`build` is {"label", "cuda", "sass", "ptx"}: the matrix's [environments.NAME.cuda] on the host, or what the
framework reports about itself in the cell (torch.cuda.get_arch_list(), tf.sysconfig.get_build_info()).
The rules, in order:
1. The driver must support the build's CUDA runtime. From CUDA 11 on, a driver of the same major version runs
   any minor release (CUDA's minor version compatibility); before 11 it must be at least the exact release.
2. A CUDA release and the libraries built with it (cuBLAS, cuDNN) carry kernels up to the newest architecture
   that release knows (NEWEST_ARCH). A GPU of a newer major architecture has no cuDNN convolution for it.
3. Machine code (SASS) runs on GPUs of the same major architecture and an equal or higher minor one.
4. Without such code, PTX of an equal or older virtual architecture is compiled by the driver at start
   ("jit"): it runs, after a compilation that can take minutes, which the cell reports apart from its cold start.
5. Otherwise the build has no kernel for the GPU: incompatible.

Python 3.7, stdlib only; nvidia-ml-py is imported only by read_gpu.
"""

import os
import re

# (CUDA release, the newest sm_XY it compiles for), from the CUDA Toolkit release notes of each release.
NEWEST_ARCH = (((8, 0), 62), ((9, 0), 70), ((9, 2), 72), ((10, 0), 75), ((11, 0), 80), ((11, 1), 86),
               ((11, 8), 90), ((12, 8), 120))
_ARCH = re.compile(r"^(sm|compute)_(\d+)([a-z]?)$")


def version_tuple(text):
    """'10.0' -> (10, 0); '12.5.1' -> (12, 5); None for None."""
    if text is None:
        return None
    parts = [int(p) for p in re.findall(r"\d+", str(text))[:2]]
    return tuple(parts + [0] * (2 - len(parts)))


def arch_number(name):
    """'sm_90' -> 90, 'compute_70' -> 70, 'sm_90a' -> 90; None for anything else."""
    match = _ARCH.match(name.strip())
    return int(match.group(2)) if match else None


def sm(capability):
    return "sm_{}{}".format(capability[0], capability[1])


def newest_arch(cuda):
    newest = None
    for release, arch in NEWEST_ARCH:
        if cuda >= release:
            newest = arch
    return newest


def decide(gpu, build):
    """The verdict for running `build` on `gpu`; see the module's rules."""
    label = build.get("label") or "this build"
    if gpu.get("unavailable"):
        return {"status": "unknown", "reason": "the GPU could not be read ({}); the cell checks again when it "
                                               "starts".format(gpu["unavailable"])}
    name, capability = gpu["name"], tuple(gpu["capability"])
    code = capability[0] * 10 + capability[1]
    cuda, driver = version_tuple(build.get("cuda")), gpu.get("driver_cuda") and tuple(gpu["driver_cuda"])
    if cuda is None:
        return {"status": "incompatible", "reason": "{} is not a CUDA build: it cannot use the GPU".format(label)}
    if driver is not None:
        enough = driver[0] >= cuda[0] if cuda[0] >= 11 else driver >= cuda
        if not enough:
            return {"status": "incompatible", "reason": "{} needs CUDA {}.{}; the driver supports CUDA up to {}.{}: "
                                                        "update the driver".format(label, cuda[0], cuda[1], *driver)}
    newest = newest_arch(cuda)
    if newest is not None and newest // 10 < capability[0]:
        return {"status": "incompatible", "reason": "{} (CUDA {}.{}) has kernels up to sm_{}: CUDA {}.{} and the "
                                                    "libraries built with it know no newer GPU; {} is {}".format(
                                                        label, cuda[0], cuda[1], newest, cuda[0], cuda[1], name,
                                                        sm(capability))}
    sass = [a for a in (arch_number(x) for x in build.get("sass") or ()) if a is not None]
    ptx = [a for a in (arch_number(x) for x in build.get("ptx") or ()) if a is not None]
    if not sass and not ptx:
        return {"status": "ok", "reason": "{} lists no architectures; CUDA {}.{} knows {} ({})".format(
            label, cuda[0], cuda[1], sm(capability), name)}
    if any(a // 10 == capability[0] and a % 10 <= capability[1] for a in sass):
        return {"status": "ok", "reason": "{} has machine code for {} ({})".format(label, sm(capability), name)}
    usable = [a for a in ptx if a <= code]
    if usable:
        return {"status": "jit", "reason": "{} has no machine code for {} ({}); the driver compiles its compute_{} "
                                           "PTX when the cell starts, which can take minutes (cached after in "
                                           "~/.nv/ComputeCache)".format(label, sm(capability), name, max(usable))}
    listed = ", ".join(sorted(set(["sm_{}".format(a) for a in sass] + ["compute_{}".format(a) for a in ptx])))
    return {"status": "incompatible", "reason": "{} has kernels for {} only; {} is {}".format(
        label, listed, name, sm(capability))}


def read_gpu(device):
    """Name, compute capability and the driver's CUDA version of the GPU `device` ('cuda', 'cuda:N') names,
    through NVML; {"unavailable": why} where NVML cannot tell."""
    try:
        import pynvml
    except ImportError:
        return {"unavailable": "nvidia-ml-py is not installed"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound and friends: no GPU here
        return {"unavailable": "NVML cannot start: {}".format(exc)}
    try:
        from .telemetry import nvml_handle
        index = int(device.partition(":")[2] or "0")
        handle, _ = nvml_handle(pynvml, index, os.environ.get("CUDA_VISIBLE_DEVICES"))
        name = pynvml.nvmlDeviceGetName(handle)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        driver = pynvml.nvmlSystemGetCudaDriverVersion()  # 13000 for CUDA 13.0
        return {"name": name.decode() if isinstance(name, bytes) else name, "capability": [major, minor],
                "driver_cuda": [driver // 1000, (driver % 1000) // 10]}
    except Exception as exc:  # noqa: BLE001 - an old driver without these calls, or no such GPU
        return {"unavailable": "NVML: {}: {}".format(type(exc).__name__, exc)}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def framework_build(framework):
    """What the imported framework says of its own build: {"cuda": "13.0" or None for a CPU build, "sass": [...],
    "ptx": [...]}, with the keys it cannot tell left out (the matrix's table stands in for them)."""
    if framework == "torchvision":
        import torch
        found = {"cuda": torch.version.cuda}
        get_arch_list = getattr(torch.cuda, "get_arch_list", None)  # torch >= 1.7
        archs = get_arch_list() if get_arch_list is not None and torch.version.cuda else []
        if archs:
            found.update(sass=[a for a in archs if a.startswith("sm_")],
                         ptx=[a for a in archs if a.startswith("compute_")])
        return found
    if framework == "keras":
        import tensorflow as tf
        get_build_info = getattr(getattr(tf, "sysconfig", None), "get_build_info", None)  # TF >= 2.3
        if get_build_info is None:
            return {} if tf.test.is_built_with_cuda() else {"cuda": None}
        info = get_build_info()
        if not info.get("is_cuda_build"):
            return {"cuda": None}
        archs = list(info.get("cuda_compute_capabilities") or [])
        found = {"cuda": info.get("cuda_version")}
        if any(arch_number(a) is not None for a in archs):
            found.update(sass=[a for a in archs if a.startswith("sm_")],
                         ptx=[a for a in archs if a.startswith("compute_")])
        return found
    if framework == "gluoncv":
        try:
            from mxnet import runtime  # MXNet >= 1.5
        except ImportError:
            return {}
        return {} if runtime.Features().is_enabled("CUDA") else {"cuda": None}
    return {}


def cell_verdict(framework, device, table):
    """The cell's own check at start: the framework's word on its build over the matrix's table (`table`, the
    spec's gpu_build), against the GPU the cell was given."""
    build = dict(table or {"label": framework})
    build.update(framework_build(framework))
    if "cuda" in build and build["cuda"] is None:
        build["label"] = "{} (as installed here)".format(build.get("label") or framework)
    verdict = decide(read_gpu(device), build)
    verdict["build"] = {k: build.get(k) for k in ("label", "cuda", "sass", "ptx")}
    return verdict
