"""What a result was produced with: interpreter, every installed package, CPU, host, probe.

Stdlib only and Python 3.7-compatible (importlib.metadata is 3.8+), so installed
distributions are read from their *.dist-info / *.egg-info metadata directly.
"""

import hashlib
import os
import platform
import re
import socket
import sys

from .cores import cpu_quota, usable_cores

_DIST_DIR = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+?)(-py[^-]*)?\.(dist-info|egg-info)$")


def installed_packages():
    """{normalised name: version} for every distribution importable by this interpreter."""
    found = {}
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            match = _DIST_DIR.match(name)
            if match:
                key = re.sub(r"[-_.]+", "-", match.group("name")).lower()
                found.setdefault(key, match.group("version"))
    return dict(sorted(found.items()))


def python_info():
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
    }


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info():
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        # what the cell's decoders and threads are sized by: the affinity, and a cgroup's CPU quota (in cores)
        "usable_cores": usable_cores(),
        "cpu_quota": cpu_quota(),
    }


def probe_source_sha256():
    """Hash of the probe's own source files, so every result names the exact probe that ran."""
    root = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode("utf-8") + b"\0")
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def nvidia_driver():
    """The NVIDIA driver version through NVML (nvidia-ml-py), or why it is unavailable."""
    try:
        import pynvml
    except ImportError:
        return {"driver": None, "unavailable": "nvidia-ml-py (pynvml) is not installed in this environment"}
    try:
        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound and friends: no GPU here
        return {"driver": None, "unavailable": "{}: {}".format(type(exc).__name__, exc)}
    return {"driver": version.decode() if isinstance(version, bytes) else version}
