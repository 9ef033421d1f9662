"""What a container of the docker backend may touch and do, and how one is run and removed.

Every container the backend starts (a cell, the weights fetch before a pretrained cell, the pip
freeze after a build) is `hardened`: no Linux capabilities, no-new-privileges (a setuid binary
cannot raise its user), a pids limit, a read-only root filesystem with a tmpfs /tmp, the
matrix's memory limit, and no network; only the weights fetch (runner/backends/docker_fetch.py)
gets one. A cell writes nothing but its output folder and, with pretrained weights, the
weights cache, and, in the error suite, the crop cache; the val set, checkpoints and the probe are mounted
read-only.
"""

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import UserError
from .base import PROJECT_ROOT

WATCH = Path(__file__).with_name("docker_watch.py")
CELL_LABEL = "dlmatrix.cell"
OWNER_LABEL = "dlmatrix.owner"  # host:pid of the runner that made the container
CA_IN_CONTAINER = "/etc/dlmatrix/ca.pem"
CROPS_IN_CONTAINER = "/var/cache/dlmatrix-crops"
RUNNER_IN_CONTAINER = "/opt/dlmatrix"
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
# Room for a cell's decoder threads and data-loader workers (hundreds at most), not for a fork bomb.
PIDS_LIMIT = 4096
# HOME of cells without a weights cache is /tmp (Keras writes ~/.keras/keras.json on import). Not
# noexec: a cell may write and load code in its output folder anyway, and JIT caches (Triton,
# torch inductor) dlopen what they build there. No size: tmpfs pages count against the memory limit.
TMPFS = {"/tmp": "rw,nosuid,nodev,exec,mode=1777"}
NO_NETWORK = "none"


def hardened(memory_limit, network=NO_NETWORK):
    """containers.create keywords every container of the backend gets."""
    return {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": PIDS_LIMIT,
            "read_only": True, "tmpfs": dict(TMPFS), "network_mode": network,
            "mem_limit": memory_limit, "memswap_limit": memory_limit}


def owner(pid=None):
    return "{}:{}".format(socket.gethostname(), pid or os.getpid())


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
    crops = (spec.get("crop_cache") or {}).get("dir")
    if crops and os.path.isdir(crops):  # shared by every cell of the host, like the weights cache
        mounts.append(Mount(target=CROPS_IN_CONTAINER, source=os.path.abspath(crops), type="bind", read_only=False))
    return mounts + probe_mounts(ca_bundle)


def container_spec(spec):
    """The spec as the cell sees it: the crop cache at CROPS_IN_CONTAINER, its host folder made first (cell_mounts
    mounts it where it is there). Its host folder may lie where the cell's user cannot reach (root's ~/.cache: the
    runner as root runs its cells as [docker] user). One that cannot be made is "unusable" to the cell, which then
    decodes and says why nothing was stored, as the venv backend's cell does; a folder the container made in its
    own file system would be thrown away with it."""
    crops = (spec.get("crop_cache") or {}).get("dir")
    if not crops:
        return spec
    try:
        os.makedirs(crops, exist_ok=True)
    except OSError as exc:
        return dict(spec, crop_cache=dict(spec["crop_cache"], unusable=str(exc)))
    return dict(spec, crop_cache=dict(spec["crop_cache"], dir=CROPS_IN_CONTAINER))


def probe_mounts(ca_bundle):
    """The probe (runner/), and the CA bundle when there is one: read-only."""
    from docker.types import Mount

    mounts = [Mount(target=RUNNER_IN_CONTAINER + "/runner", source=str(PROJECT_ROOT / "runner"), type="bind",
                    read_only=True)]
    if ca_bundle:
        mounts.append(Mount(target=CA_IN_CONTAINER, source=os.path.abspath(ca_bundle), type="bind", read_only=True))
    return mounts


def cell_environment(spec, ca_bundle):
    """The container's environment variables; HOME is writable (the root filesystem is not)."""
    home = "/tmp"
    cache = (spec.get("weights") or {}).get("cache_dir")
    if cache:  # older Keras caches in ~/.keras whatever KERAS_HOME says: a HOME inside the mounted cache
        home = os.path.join(cache, "home")
        os.makedirs(home, exist_ok=True)
    environment = {"PYTHONPATH": RUNNER_IN_CONTAINER, "PYTHONUNBUFFERED": "1", "HOME": home}
    if ca_bundle:
        environment.update({name: CA_IN_CONTAINER for name in CA_VARIABLES})
    return environment


def make_writable(paths, user):
    """Folders the cell writes must admit its (non-root) user; the host's root owns them here."""
    if os.getuid() != 0:
        return
    uid, gid = (int(part) for part in user.split(":"))
    for path in paths:
        os.chown(path, uid, gid)
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


@dataclass(frozen=True)
class ContainerRun:
    returncode: Optional[int]  # None when it was killed at the timeout or never ran
    timed_out: bool
    error: Optional[str]  # what went wrong outside the command (killed for memory, engine error)
    stdout: str
    output: str  # stdout and stderr together
    out_of_memory: bool = False


def run_container(client, image, command, settings, log, timeout_s, running, owner_lock=None):
    """Run `command` in a container made with `settings` (containers.create keywords); always removed,
    by this process or, if it dies first, by the container's watcher (runner/backends/docker_watch.py).

    `log` (a binary file) gets the command line, the settings as the engine holds them, and the
    container's output; `running` holds the container while it runs (for stop_all); `owner_lock`
    (the attempt's) is held by the watcher until the container is gone.
    """
    import docker
    import requests

    log.write("$ {}\n".format(command_line(image, command, settings)).encode())
    container, watcher = None, None
    returncode, timed_out, error, stdout, output, out_of_memory = None, False, None, "", b"", False
    try:
        container = client.containers.create(image, command, **settings)
        watcher = Watcher(container.id, owner_lock)
        log.write("container settings (from the engine): {}\n".format(json.dumps(
            engine_settings(container.attrs), sort_keys=True)).encode())
        running.add(container)
        container.start()
        try:
            returncode = container.wait(timeout=timeout_s)["StatusCode"]
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            container.kill()
            timed_out = True
        container.reload()
        output = container.logs(stdout=True, stderr=True)
        log.write(output)
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        out_of_memory = bool(container.attrs.get("State", {}).get("OOMKilled"))
        if out_of_memory:
            error = "killed for memory: the container went over its limit of {} (exit code {})".format(
                settings["mem_limit"], returncode)
    except docker.errors.DockerException as exc:
        error = "docker: {}".format(first_line(exc))
    finally:
        if container is not None:
            running.discard(container)
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                pass
        if watcher is not None:
            watcher.release()
    if error:
        log.write((error + "\n").encode())
    return ContainerRun(returncode, timed_out, error, stdout, output.decode(errors="replace"), out_of_memory)


class Watcher:
    """The container's watcher process: it removes the container when this process lets go of it or dies."""

    def __init__(self, container_id, owner_lock=None):
        read_end, self.write_end = os.pipe()
        command = [sys.executable, "-I", str(WATCH), "--parent-fd", str(read_end), container_id]
        command += ["--owner-lock", str(owner_lock)] if owner_lock else []
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                            pass_fds=(read_end,), start_new_session=True, text=True)
        finally:
            os.close(read_end)
        if self.process.stdout.readline().strip() != "watching":  # it holds the owner lock from here on
            self.release()
            raise RuntimeError("the container watcher for {} did not start".format(container_id))

    def release(self):
        """Let go: the watcher removes the container if it still exists, then ends (and frees the owner lock)."""
        os.close(self.write_end)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def engine_settings(attrs):
    """What the engine says a container may do (from its inspect record): the cell log keeps it."""
    host = attrs.get("HostConfig") or {}
    return {"user": (attrs.get("Config") or {}).get("User"), "cap_drop": host.get("CapDrop"),
            "cap_add": host.get("CapAdd"), "privileged": host.get("Privileged"),
            "security_opt": host.get("SecurityOpt"), "pids_limit": host.get("PidsLimit"),
            "read_only_rootfs": host.get("ReadonlyRootfs"), "tmpfs": host.get("Tmpfs"),
            "network_mode": host.get("NetworkMode"), "memory": host.get("Memory"),
            "memory_swap": host.get("MemorySwap"),
            "writable_mounts": sorted(m["Destination"] for m in attrs.get("Mounts") or [] if m.get("RW"))}


def command_line(image, command, settings):
    """The `docker run` a user would type for the same container (for the log; it is not run)."""
    words = ["docker", "run", "--user", settings.get("user") or "(image default)", "--memory", settings["mem_limit"],
             "--network", settings["network_mode"], "--pids-limit", str(settings["pids_limit"])]
    words += ["--read-only"] if settings.get("read_only") else []
    words += ["--cap-drop " + cap for cap in settings.get("cap_drop") or []]
    words += ["--security-opt " + option for option in settings.get("security_opt") or []]
    words += ["--tmpfs {}:{}".format(path, options) for path, options in sorted(settings["tmpfs"].items())]
    words += ["--gpus device=" + ",".join(request["DeviceIDs"]) for request in settings.get("device_requests") or []]
    words += ["-v {}:{}{}".format(m["Source"], m["Target"], ":ro" if m["ReadOnly"] else "")
              for m in settings.get("mounts") or []]
    return " ".join(words + [image] + [word if len(word) < 80 else "'...'" for word in command])


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def no_engine(who, exc):
    """The one message for every command that finds no Docker engine (quoted in the README's table)."""
    return UserError("{}: no Docker engine answers ({}); start one (`sudo bash docker/engine-up.sh` on Debian or "
                     "Ubuntu installs and starts it) or set DOCKER_HOST".format(who, first_line(exc)))
