"""The interface every backend implements: make an environment ready, run the probe in it."""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..storage import cache_home as default_cache_home  # noqa: F401 - the backends' name for it
from .process import ProbeRun, kill_all, run_logged  # noqa: F401 - ProbeRun: the backends' return type

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # holds runner/, which the probe is imported from


class EnvironmentBuildError(Exception):
    """An environment could not be made ready; every cell of it is recorded as failed with this reason."""

    def __init__(self, reason, log_path=None):
        super().__init__(reason)
        self.reason = reason
        self.log_path = log_path


@dataclass(frozen=True)
class ReadyEnvironment:
    """A built environment: the interpreter to run the probe with, and what to record about it."""

    name: str
    python: str  # path of the interpreter inside the environment (in a docker image: on its PATH)
    provenance: dict = field(default_factory=dict)
    reused: bool = False
    image: Optional[str] = None  # docker backend: the image tag cells run in


class Backend:
    """Subclasses set `name` and implement `prepare`; `run_probe` runs the probe as a subprocess."""

    name = "?"
    memory_limit = 0  # bytes of resident memory a cell's processes may hold together (0: none); set by get_backend

    def start(self, log):
        """Check, before anything is built, that this backend can run at all (raise UserError if not)."""

    def prepare(self, env, log):
        """Return a ReadyEnvironment for matrix.Environment `env`, or raise EnvironmentBuildError.

        `log(message)` reports progress on the terminal (what is being built).
        """
        raise NotImplementedError

    def stop_all(self):
        """Kill every probe this process is running (Ctrl-C while cells run side by side)."""
        kill_all()

    def run_probe(self, ready, spec_path, log_path, timeout_s, gpu=None, owner_lock=None):
        """Run the probe on spec_path; `gpu` (a host GPU index) is then the only GPU the cell sees.

        `owner_lock`: a file in the cell's work folder, held locked while any process of the cell lives."""
        env = dict(os.environ)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's device N is then NVML's and nvidia-smi's N (telemetry)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        env.update({
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONNOUSERSITE": "1",      # nothing from ~/.local may leak into a pinned environment
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        })
        return run_logged([ready.python, "-m", "runner.probe", str(spec_path)], log_path, timeout_s, env=env,
                          memory_limit=self.memory_limit, owner_lock=owner_lock)
