"""`docker` backend: one image per environment, every cell in its own container.

Driven through the Docker Engine API (the docker SDK for Python), never through shell strings.

Image:  runner/backends/docker_image.py: docker/Dockerfile.template rendered for one environment
        ([docker] cpu_base, or the row's cuda_image for CUDA cells), tagged by a hash of its content.
Cell:   a container from that image, running `python -m runner.probe spec.json` as a non-root
        user, with the probe (runner/) mounted read-only and every path the cell reads or writes
        mounted at the same path it has on the host, the matrix's memory limit, the suite's
        timeout, and the GPU the cell asks for. It is removed afterwards, also on Ctrl-C.
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
from .base import PROJECT_ROOT, Backend, ProbeRun
from .docker_image import CELL_LABEL, OWNER_LABEL, ImageBuilder, default_build_dir, first_line, owner

CA_IN_CONTAINER = "/etc/dlmatrix/ca.pem"
RUNNER_IN_CONTAINER = "/opt/dlmatrix"
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


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
        self._running = set()  # containers of cells in progress (stop_all)

    # -- start: the engine is there and can do what the run asks, before anything is built ----------

    def start(self, log):
        import docker

        try:
            self._client = docker.from_env(timeout=600)
            version = self._client.version()
            info = self._client.info()
        except docker.errors.DockerException as exc:
            raise UserError("the docker backend needs a running Docker engine ({}); start it (e.g. `dockerd &` "
                            "after `apt-get install docker.io`) or set DOCKER_HOST".format(first_line(exc))) from None
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
        for stale in self._client.containers.list(all=True, filters={"label": CELL_LABEL}):
            owner_label = stale.labels.get(OWNER_LABEL)
            if (_owner_gone(owner_label) if owner_label else stale.status == "exited"):
                stale.remove(force=True)
        self._images = ImageBuilder(self._client, self.settings, self.options, self._engine)
        log("docker engine {} (API {}), runtimes: {}".format(
            self._engine["engine_version"], self._engine["api_version"], ", ".join(runtimes)))

    # -- prepare: the environment's image (runner/backends/docker_image.py) ------------------------

    def prepare(self, env, log):
        return self._images.prepare(env, log)

    # -- run_probe: one container per cell ---------------------------------------------------------

    def run_probe(self, ready, spec_path, log_path, timeout_s, gpu=None):
        import docker
        import requests

        spec_path = Path(spec_path).resolve()
        spec = absolute_paths(json.loads(spec_path.read_text()))  # the container's cwd is not the host's
        if spec["device"].startswith("cuda"):
            # The container sees only its own GPU (the slot's, else the one the device names), as cuda:0.
            gpu = gpu if gpu is not None else (spec["device"].partition(":")[2] or "0")
            spec["device"] = "cuda:0"
        else:
            gpu = None
        spec_path = spec_path.with_name("spec.container.json")
        write_json(spec_path, spec, flag="--results-dir")
        user = self._user()
        mounts = cell_mounts(spec, spec_path, self.options.ca_bundle)
        home = "/tmp"
        cache = (spec.get("weights") or {}).get("cache_dir")
        if cache:  # older Keras caches in ~/.keras whatever KERAS_HOME says: a HOME inside the mounted cache
            home = os.path.join(cache, "home")
            os.makedirs(home, exist_ok=True)
        _make_writable([m["Source"] for m in mounts if not m["ReadOnly"]], user)
        environment = {"PYTHONPATH": RUNNER_IN_CONTAINER, "PYTHONUNBUFFERED": "1", "HOME": home}
        if self.options.ca_bundle:
            environment.update({name: CA_IN_CONTAINER for name in CA_VARIABLES})
        requests_gpu = [docker.types.DeviceRequest(device_ids=[gpu], capabilities=[["gpu"]])] if gpu else None
        tick = time.perf_counter()
        container = None
        returncode, timed_out, error = None, False, None
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        with open(log_path, "ab") as log:
            log.write("$ docker run --user {} --memory {} {} python -m runner.probe {}\n".format(
                user, self.settings.memory_limit, ready.image, spec_path).encode())
            try:
                container = self._client.containers.create(
                    ready.image, [ready.python, "-m", "runner.probe", str(spec_path)], user=user,
                    environment=environment, mounts=mounts, mem_limit=self.settings.memory_limit,
                    memswap_limit=self.settings.memory_limit, shm_size="1g", device_requests=requests_gpu,
                    labels={CELL_LABEL: spec["cell_id"], OWNER_LABEL: owner()}, working_dir="/tmp")
                self._running.add(container)
                container.start()
                try:
                    returncode = container.wait(timeout=timeout_s)["StatusCode"]
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                    container.kill()
                    timed_out = True
                container.reload()
                log.write(container.logs(stdout=True, stderr=True))
                if container.attrs.get("State", {}).get("OOMKilled"):
                    error = "the container was killed for memory: it exceeded [docker] memory_limit = {}".format(
                        self.settings.memory_limit)
            except docker.errors.DockerException as exc:
                error = "docker: {}".format(first_line(exc))
            finally:
                if container is not None:
                    self._running.discard(container)
                    try:
                        container.remove(force=True)
                    except docker.errors.DockerException:
                        pass
            if error:
                log.write((error + "\n").encode())
        return ProbeRun(returncode=None if timed_out else returncode, timed_out=timed_out,
                        duration_s=time.perf_counter() - tick, log_path=str(log_path), error=error)

    def stop_all(self):
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


def absolute_paths(spec):
    """The spec with every host path it names made absolute (mounts need absolute paths)."""
    spec = json.loads(json.dumps(spec))
    spec["output_dir"] = os.path.abspath(spec["output_dir"])
    for section, keys in (("dataset", ("root", "labels_file")), ("weights", ("cache_dir", "path"))):
        for key in keys:
            if (spec.get(section) or {}).get(key):
                spec[section][key] = os.path.abspath(spec[section][key])
    for checkpoint in ((spec.get("drift") or {}).get("checkpoints") or []):
        if checkpoint.get("path"):
            checkpoint["path"] = os.path.abspath(checkpoint["path"])
    return spec


def cell_mounts(spec, spec_path, ca_bundle):
    """Every host path the cell reads or writes, at the same path inside the container."""
    from docker.types import Mount

    paths = {str(Path(spec["output_dir"])): False, str(spec_path): True}
    dataset = spec.get("dataset") or {}
    for key in ("root", "labels_file"):
        if dataset.get(key):
            paths[os.path.abspath(dataset[key])] = True
    weights = spec.get("weights") or {}
    if weights.get("cache_dir"):
        os.makedirs(weights["cache_dir"], exist_ok=True)
        paths[weights["cache_dir"]] = False
    if weights.get("path"):
        paths[weights["path"]] = True
    for checkpoint in ((spec.get("drift") or {}).get("checkpoints") or []):
        if checkpoint.get("path"):
            paths[checkpoint["path"]] = True
    if str(spec_path).startswith(str(Path(spec["output_dir"])) + os.sep):
        del paths[str(spec_path)]  # inside the output folder, which is mounted already
    mounts = [Mount(target=path, source=path, type="bind", read_only=read_only) for path, read_only in paths.items()]
    mounts.append(Mount(target=RUNNER_IN_CONTAINER + "/runner", source=str(PROJECT_ROOT / "runner"), type="bind",
                        read_only=True))
    if ca_bundle:
        mounts.append(Mount(target=CA_IN_CONTAINER, source=os.path.abspath(ca_bundle), type="bind", read_only=True))
    return mounts


def _make_writable(paths, user):
    """Folders the cell writes must admit its (non-root) user; the host's root owns them here."""
    if os.getuid() != 0:
        return
    uid, gid = (int(part) for part in user.split(":"))
    for path in paths:
        os.chown(path, uid, gid)
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def _nvidia_runtime_version():
    try:
        out = subprocess.run(["nvidia-container-cli", "--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "nvidia runtime present; nvidia-container-cli not on PATH"


