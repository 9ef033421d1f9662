"""`docker` backend: one image per environment, every cell in its own container.

Driven through the Docker Engine API (the docker SDK for Python), never through shell strings.

Image:  runner/backends/docker_image.py: docker/Dockerfile.template rendered for one environment
        ([docker] cpu_base, or the row's cuda_image for CUDA cells), tagged by a hash of its content.
Cell:   a container from that image, running `python -m runner.probe spec.json` as a non-root
        user, with the probe (runner/) mounted read-only and every path the cell reads or writes
        mounted at the same path it has on the host, the suite's timeout, the GPU the cell asks
        for, and what runner/backends/docker_cell.py allows every container: no capabilities,
        no-new-privileges, a pids limit, a read-only root filesystem, the matrix's memory limit,
        no network. It is removed afterwards, also on Ctrl-C.
Weights: a pretrained cell's weights are fetched first, into the host's weights cache, by a
        container with the network (runner/backends/docker_fetch.py); the cell reads the cache.
"""

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..storage import write_json
from .base import Backend, ProbeRun
from .docker_cell import (CELL_LABEL, OWNER_LABEL, absolute_paths, cell_environment, cell_mounts, container_spec,
                          hardened, make_writable, no_engine, owner, run_container)
from .docker_fetch import WeightsFetcher
from .docker_image import ImageBuilder, default_build_dir


@dataclass(frozen=True)
class DockerOptions:
    device: str = "cpu"  # the run's device: cpu selects [docker] cpu_base, cuda the rows' cuda_image
    base_image: Optional[str] = None  # overrides both (e.g. an image loaded from a tarball)
    ca_bundle: Optional[str] = None  # for builds and cells behind a TLS-intercepting proxy
    wheelhouse: Optional[str] = None  # pip reads only this folder of wheels (air-gapped builds)
    python_dist: Optional[str] = None  # folder of relocatable CPython builds for the images
    build_dir: Optional[str] = None  # build logs and records (default ~/.cache/dlmatrix/docker)


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, settings, options):
        self.settings = settings  # matrix.DockerSettings
        self.options = options
        self.build_dir = Path(options.build_dir or default_build_dir())
        self._client = None
        self._engine = None
        self._images = None  # docker_image.ImageBuilder, once the engine answers
        self._fetcher = None  # docker_fetch.WeightsFetcher, once the engine answers
        self._running = set()  # containers of cells in progress (stop_all)
        self._stopped = False  # stop_all was called: a container that ends now was killed by it

    # -- start: the engine is there and can do what the run asks, before anything is built ----------

    def start(self, log):
        import docker

        try:
            self._client = docker.from_env(timeout=600)
            version = self._client.version()
            info = self._client.info()
        except docker.errors.DockerException as exc:
            raise no_engine("the docker backend", exc) from None
        runtimes = sorted(info.get("Runtimes") or {})
        self._engine = {"engine_version": version.get("Version"), "api_version": version.get("ApiVersion"),
                        "os": info.get("OperatingSystem"), "runtimes": runtimes}
        if self.options.device.startswith("cuda"):
            if "nvidia" not in runtimes:
                raise UserError("device {} asks for a GPU, but this Docker engine has no NVIDIA runtime (runtimes: "
                                "{}); install the NVIDIA Container Toolkit (nvidia-ctk runtime configure) or run "
                                "with DEVICE=cpu".format(self.options.device, ", ".join(runtimes)))
            self._engine["nvidia_runtime"] = _nvidia_runtime_version()
        # Containers a killed runner of this host left behind. A live runner's, or another host's
        # (a shared engine), are not ours to remove; an unlabelled one only once it has exited.
        # A container can go (its watcher removes it) between the listing and its inspection or removal.
        for stale in self._client.containers.list(all=True, filters={"label": CELL_LABEL}, ignore_removed=True):
            owner_label = stale.labels.get(OWNER_LABEL)
            if (_owner_gone(owner_label) if owner_label else stale.status == "exited"):
                try:
                    stale.remove(force=True)
                except docker.errors.NotFound:
                    pass
        self._images = ImageBuilder(self._client, self.settings, self.options, self._engine)
        self._fetcher = WeightsFetcher(self._client, self.settings, self.options.ca_bundle, self._running)
        log("docker engine {} (API {}), runtimes: {}".format(
            self._engine["engine_version"], self._engine["api_version"], ", ".join(runtimes)))

    # -- prepare: the environment's image (runner/backends/docker_image.py) ------------------------

    def prepare(self, env, log):
        return self._images.prepare(env, log)

    # -- run_probe: one container per cell ---------------------------------------------------------

    def run_probe(self, ready, spec_path, log_path, timeout_s, gpu=None, owner_lock=None):
        """`owner_lock` is held by the container's watcher until the container is gone."""
        import docker

        spec_path = Path(spec_path).resolve()
        spec = absolute_paths(json.loads(spec_path.read_text()))  # the container's cwd is not the host's
        if spec["device"].startswith("cuda"):
            # The container sees only its own GPU (the slot's, else the one the device names), as cuda:0.
            gpu = gpu if gpu is not None else (spec["device"].partition(":")[2] or "0")
            spec["device"] = "cuda:0"
        elif spec.get("for_device", "cpu").startswith("cuda"):  # a prefill (runner/prefill.py) beside a GPU cell
            gpu = spec["for_device"].partition(":")[2] or "0"  # its CUDA build imports only with the driver
        else:
            gpu = None
        spec_path = spec_path.with_name("spec.container.json")
        seen = container_spec(spec)  # first: it makes the crop cache's host folder that cell_mounts mounts
        mounts = cell_mounts(spec, spec_path, self.options.ca_bundle)
        spec = seen
        write_json(spec_path, spec, flag="--results-dir")
        user = self._user()
        environment = cell_environment(spec, self.options.ca_bundle)
        make_writable([m["Source"] for m in mounts if not m["ReadOnly"]], user)
        settings = dict(hardened(self.settings.memory_limit), user=user, environment=environment, mounts=mounts,
                        shm_size="1g", labels={CELL_LABEL: spec["cell_id"], OWNER_LABEL: owner()},
                        working_dir="/tmp",
                        device_requests=[docker.types.DeviceRequest(device_ids=[gpu], capabilities=[["gpu"]])]
                        if gpu else None)
        if spec["suite"] == "prefill":  # a tenth of a cell's CPU weight: the cell beside it keeps its cores
            settings["cpu_shares"] = 102
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        with open(log_path, "ab") as log:
            if (spec.get("weights") or {}).get("source") == "pretrained":
                failed = self._fetcher.ensure(ready.image, ready.python, spec, settings, log, timeout_s)
                if failed:
                    log.write((failed[0] + "\n").encode())
                    return ProbeRun(returncode=failed[1], timed_out=False, duration_s=0.0, log_path=str(log_path),
                                    error=failed[0], interrupted=self._stopped)
            tick = time.perf_counter()
            run = run_container(self._client, ready.image, [ready.python, "-m", "runner.probe", str(spec_path)],
                                settings, log, timeout_s, self._running, owner_lock=owner_lock)
        return ProbeRun(returncode=None if run.timed_out else run.returncode, timed_out=run.timed_out,
                        duration_s=time.perf_counter() - tick, log_path=str(log_path), error=run.error,
                        out_of_memory=run.out_of_memory, interrupted=self._stopped and not run.timed_out)

    def stop_all(self):
        self._stopped = True
        for container in list(self._running):
            try:
                container.kill()
            except Exception:  # already gone: nothing left to stop
                pass

    def _user(self):
        """The host user's uid:gid, so files come back theirs; the matrix's non-root user when the host user is root."""
        uid = os.getuid()
        return "{}:{}".format(uid, os.getgid()) if uid != 0 else self.settings.user


def _owner_gone(label):
    """True when `label` (host:pid) names a runner of this host that no longer runs."""
    host, _, pid = label.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
        return False
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False


def _nvidia_runtime_version():
    try:
        out = subprocess.run(["nvidia-container-cli", "--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "nvidia runtime present; nvidia-container-cli not on PATH"


