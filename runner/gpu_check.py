"""Before any GPU cell runs: can its row's build run on this host's GPU?

The pipeline's step between planning and running. It reads the GPU once (NVML), decides each row's
GPU build with runner/probe/gpu_compat.py, and marks the cells of a build that cannot run as
`incompatible` with the reason, so no environment is built and no cell waits minutes to fail.
A venv host must also have the system libraries the build loads (CUDA runtime, cuDNN); the docker
backend's cuda_image brings them. The local backend runs what is installed, not the row's build, so
its cells are judged by the probe from what the framework reports of itself.
"""

import os
from dataclasses import replace

from .probe.gpu_compat import decide, read_gpu


def build_facts(env):
    """The row's GPU build as gpu_compat.decide reads it."""
    gpu = env.gpu
    return {"label": "{} {}".format(env.name, env.build_label()), "cuda": gpu.cuda if gpu else None,
            "sass": list(gpu.sass) if gpu else [], "ptx": list(gpu.ptx) if gpu else []}


def missing_libraries(names, search_dirs=None, known=None):
    """The shared libraries of `names` the dynamic loader would not find: neither in ldconfig's cache nor in
    LD_LIBRARY_PATH (or `search_dirs`)."""
    dirs = search_dirs if search_dirs is not None else \
        [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    cached = known if known is not None else _ldconfig_names()
    return [name for name in names
            if name not in cached and not any(os.path.exists(os.path.join(d, name)) for d in dirs)]


def _ldconfig_names():
    import subprocess

    for ldconfig in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            listing = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        return {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}
    return set()


def no_gpu_here(gpu, executor, driver_node="/dev/nvidiactl"):
    """Why no cell can use CUDA on this host, or None. Only where the cells run here (the local executor: a Slurm
    login node has no GPU and its compute nodes do) and only when NVML cannot start and the NVIDIA driver's
    control device is absent: a loaded driver makes it, on the host and in every container given a GPU."""
    if executor != "local" or not gpu.get("unavailable") or os.path.exists(driver_node):
        return None
    return ("this host has no NVIDIA GPU driver ({}; no {}): DEVICE=cuda needs an NVIDIA GPU and its driver; "
            "run DEVICE=cpu here, or on a GPU host (or --executor slurm for a cluster's GPU nodes)").format(
                gpu["unavailable"], driver_node)


def check_gpu(cells, backend_name, say, gpu=None, libraries=missing_libraries, executor="local",
              driver_node="/dev/nvidiactl"):
    """`cells` with those that cannot run on this GPU marked incompatible; says one line per row."""
    gpu_cells = [cell for cell in cells if cell.device.startswith("cuda") and not cell.skip_reason]
    if not gpu_cells:
        return cells
    checked = {cell.id for cell in gpu_cells}
    gpu = gpu if gpu is not None else read_gpu(gpu_cells[0].device)
    absent = no_gpu_here(gpu, executor, driver_node)
    if absent:
        # Every GPU build would be downloaded (GBs) only for each cell to fail loading the CUDA runtime.
        say("GPU check: {}; its {} GPU cells are incompatible, no GPU build is made".format(
            absent, len(gpu_cells)))
        return [replace(cell, incompatible=absent) if cell.id in checked else cell for cell in cells]
    if gpu.get("unavailable"):
        say("GPU check: {}; each cell checks its build when it starts".format(gpu["unavailable"]))
        return cells
    verdicts = {}
    for cell in gpu_cells:
        env = cell.environment
        if env.name in verdicts:
            continue
        if backend_name == "local":
            verdict = {"status": "unknown", "reason": "the local backend runs what is installed; the cell checks it"}
        else:
            verdict = decide(gpu, build_facts(env))
            missing = libraries(env.gpu.system_libs) if (backend_name == "venv" and env.gpu) else []
            if verdict["status"] != "incompatible" and missing:
                verdict = {"status": "incompatible", "reason": (
                    "{} {} loads {} from the system, and this host has no {} (ldconfig -p, LD_LIBRARY_PATH): "
                    "install CUDA {}{} here, or run it with --backend docker, whose image {} provides them").format(
                        env.name, env.build_label(), ", ".join(env.gpu.system_libs), ", ".join(missing),
                        env.gpu.cuda, " and cuDNN " + env.gpu.cudnn if env.gpu.cudnn else "",
                        env.cuda_image or "(environments.{}.cuda_image)".format(env.name))}
        verdicts[env.name] = verdict
        say("GPU check, {} on {} ({}): {}{}".format(env.name, gpu["name"], "sm_{}{}".format(*gpu["capability"]),
                                                    verdict["status"], ": " + verdict["reason"]
                                                    if verdict["status"] != "ok" else ""))
    marked = []
    for cell in cells:
        verdict = verdicts[cell.environment.name] if cell.id in checked else None
        if verdict is None:
            marked.append(cell)
        elif verdict["status"] == "incompatible":
            marked.append(replace(cell, incompatible=verdict["reason"]))
        else:
            marked.append(replace(cell, gpu_check=verdict))
    return marked
