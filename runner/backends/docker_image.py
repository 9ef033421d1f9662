"""The docker backend's images: docker/Dockerfile.template rendered for one environment (a base
image pinned by tag, the row's CPython under /opt/python, its pins in /opt/env), tagged
dlmatrix/<env>:<hash of all of that>; an image with the tag is reused, a failed build fails the
environment's cells. Containers (one per cell) are runner/backends/docker.py's.
"""

import hashlib
import http.server
import json
import os
import re
import shutil
import socketserver
import tempfile
import threading
import time
from pathlib import Path

from ..frameworks import FRAMEWORKS
from ..locks import installed_differences, lock_of, shown
from ..plan import cell_id, environment_content
from ..storage import write_json, write_text
from .base import PROJECT_ROOT, EnvironmentBuildError, ReadyEnvironment, default_cache_home
from .docker_cell import CELL_LABEL, OWNER_LABEL, first_line, hardened, owner
from .docker_python import python_for_image

TEMPLATE = PROJECT_ROOT / "docker" / "Dockerfile.template"
REPOSITORY = "dlmatrix"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class ImageBuilder:
    """Builds (or finds) the image of one environment on an engine: the docker backend's `prepare`."""

    def __init__(self, client, settings, options, engine):
        self._client, self.settings, self.options, self._engine = client, settings, options, engine
        self.build_dir = Path(options.build_dir or default_build_dir())

    def base_for(self, env):
        if self.options.base_image:
            return self.options.base_image, "--base-image"
        if self.options.device.startswith("cuda"):
            return env.cuda_image, "environments.{}.cuda_image".format(env.name)
        return self.settings.cpu_base, "[docker] cpu_base"

    def prepare(self, env, log):
        base, where = self.base_for(env)
        if not base:
            raise EnvironmentBuildError("no base image for {}: {} is not set in matrix.toml".format(env.name, where))
        base_image = self._base_image(base, log)
        python = python_for_image(env.python, self.options.python_dist)
        framework = FRAMEWORKS[env.framework]
        content = {
            "environment": environment_content(env), "base": base, "base_id": base_image.id,
            "python": python.identity, "system_packages": list(framework.system_packages),
            "template_sha256": _sha256_file(TEMPLATE), "user": self.settings.user,
            # Same pins either way, but a wheelhouse build is a different build: its own tag.
            "pip_source": "wheelhouse" if self.options.wheelhouse else "index",
        }
        tag = "{}/{}:{}".format(REPOSITORY, env.name, cell_id(content)[:12])
        record_path = self.build_dir / "{}-{}.json".format(env.name, tag.rsplit(":", 1)[1])
        image = self._image(tag)
        if image is not None and record_path.is_file():
            record = json.loads(record_path.read_text())
            return ReadyEnvironment(env.name, "python", self._provenance(image, base_image, record), reused=True,
                                    image=tag)
        record = self._build(env, tag, base, python, framework, record_path, log)
        image = self._image(tag)
        return ReadyEnvironment(env.name, "python", self._provenance(image, base_image, record), reused=False,
                                image=tag)

    def _base_image(self, ref, log):
        import docker

        try:
            return self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            pass
        log("pulling base image {}".format(ref))
        try:
            return self._client.images.pull(ref)
        except docker.errors.DockerException as exc:
            raise EnvironmentBuildError(
                "base image {} is not on this host and cannot be pulled ({}). Without a registry: "
                "`.venv/bin/dlmatrix docker-base` builds the CPU base with debootstrap, or `docker load -i FILE.tar` "
                "loads one from a tarball".format(ref, first_line(exc)))

    def _image(self, tag):
        import docker

        try:
            return self._client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None

    def _build(self, env, tag, base, python, framework, record_path, log):
        self.build_dir.mkdir(parents=True, exist_ok=True)
        build_log = record_path.with_suffix(".log")
        log("building image {} for {} (base {}); log: {}".format(tag, env.name, base, build_log))
        tick = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="dlmatrix-build-") as context, _wheel_server(
                self.options.wheelhouse) as wheel_url:
            context = Path(context)
            (context / "build").mkdir()
            pip_args, pip_env, pip_source = [], "", "PyPI"
            if env.index_url:
                pip_args += ["--index-url", env.index_url]
                pip_source = env.index_url
            for url in env.extra_index_urls:
                pip_args += ["--extra-index-url", url]
            if wheel_url:
                pip_args = ["--no-index", "--find-links", wheel_url]
                pip_source = "only the wheelhouse {}".format(self.options.wheelhouse)
            if self.options.ca_bundle:
                shutil.copyfile(self.options.ca_bundle, context / "build" / "ca.pem")
                pip_env = "PIP_CERT=/opt/dlmatrix-build/ca.pem "
            lock = lock_of(env, self.options.device)  # its sha256 is in environment_content(env), hence in the tag
            write_text(context / "build" / "requirements.txt", lock.text)
            python_step = python.stage(context)
            dockerfile = render_dockerfile(
                base=base, system_packages=" ".join(framework.system_packages),
                python_step=python_step, python_source=python.identity, python_minor=python.minor,
                pip_env=pip_env, pip_args=" ".join(pip_args), pip_source=pip_source, user=self.settings.user)
            write_text(context / "Dockerfile", dockerfile)
            error = self._stream_build(context, tag, env, build_log, network_host=bool(wheel_url))
        if error:
            raise EnvironmentBuildError("building image {} for {} failed: {} (full log: {})".format(
                tag, env.name, error, build_log), log_path=str(build_log))
        listed = json.loads(self._client.containers.run(tag, ["python", "-c", LISTS], remove=True,
                                                        labels={CELL_LABEL: "freeze", OWNER_LABEL: owner()},
                                                        **hardened(self.settings.memory_limit)).decode())
        freeze = listed["pip-freeze.txt"].splitlines()
        differences = installed_differences(lock, _versions(listed["installed.json"]), _versions(listed["seeded.json"]))
        if differences:
            self._client.images.remove(tag, force=True)
            raise EnvironmentBuildError("image {} for {} differs from its lock {}: {}; the image was removed".format(
                tag, env.name, shown(lock.path), "; ".join(differences)), log_path=str(build_log))
        record = {"tag": tag, "base": base, "python": python.identity, "pip_source": pip_source,
                  "ca_bundle": _file_identity(self.options.ca_bundle), "freeze": freeze,
                  "build_log": str(build_log), "build_s": round(time.perf_counter() - tick, 1)}
        write_json(record_path, record, flag="--build-dir")
        log("built {} in {:.0f} s".format(tag, record["build_s"]))
        return record

    def _stream_build(self, context, tag, env, build_log, network_host):
        """Build, writing the engine's output to build_log; the error message, or None."""
        error = None
        with open(build_log, "w") as out:
            try:
                stream = self._client.api.build(
                    path=str(context), tag=tag, rm=True, forcerm=True, decode=True, pull=False,
                    network_mode="host" if network_host else None,
                    labels={"dlmatrix.environment": env.name})
                for chunk in stream:
                    if "stream" in chunk:
                        out.write(ANSI_COLOUR.sub("", chunk["stream"]))  # the engine colours a step's stderr
                    if "error" in chunk:
                        error = chunk["error"].strip()
                        out.write("ERROR: " + error + "\n")
            except Exception as exc:  # the engine's API errors and connection errors alike
                error = first_line(exc)
                out.write("ERROR: " + error + "\n")
        if error:
            # pip's own last word ("No matching distribution found for pillow==0.0.1") says more than the engine's.
            step_errors = [line for line in build_log.read_text().splitlines()
                           if line.startswith("ERROR:") and not line.startswith("ERROR: " + error[:40])]
            error = step_errors[-1][len("ERROR:"):].strip() if step_errors else error
        return error

    def _provenance(self, image, base_image, record):
        return {
            "backend": "docker", "image": record["tag"], "image_id": image.id,
            "image_digests": image.attrs.get("RepoDigests") or [],
            "base_image": record["base"], "base_image_id": base_image.id,
            "base_image_digests": base_image.attrs.get("RepoDigests") or [],
            "python": record["python"], "pip_source": record["pip_source"], "ca_bundle": record["ca_bundle"],
            "freeze": record["freeze"], "build_log": record["build_log"], "build_s": record["build_s"],
            "docker": self._engine, "user": self.settings.user, "memory_limit": self.settings.memory_limit,
        }


# What the image's pip put there, read back in one container: the freeze for provenance, the lists for the lock check.
LISTS = ("import json; print(json.dumps({name: open('/opt/env/' + name).read() for name in "
         "('pip-freeze.txt', 'seeded.json', 'installed.json')}))")


def _versions(listing):
    return {entry["name"]: entry["version"] for entry in json.loads(listing)}


def default_build_dir():
    return os.path.join(default_cache_home(), "docker")


def render_dockerfile(**values):
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    if "{{" in text:
        raise EnvironmentBuildError("{}: placeholder {} has no value".format(TEMPLATE, text[text.index("{{"):][:40]))
    return text


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _wheel_server:
    """Serve the wheelhouse over HTTP on 127.0.0.1 for the build (the classic builder cannot mount a folder)."""

    def __init__(self, wheelhouse):
        self.wheelhouse = wheelhouse
        self.server = None

    def __enter__(self):
        if not self.wheelhouse:
            return None
        if not os.path.isdir(self.wheelhouse):
            raise EnvironmentBuildError("--wheelhouse {}: not a folder; fill one with `.venv/bin/dlmatrix wheelhouse "
                                        "DIR` on a connected machine".format(self.wheelhouse))
        handler = lambda *a, **k: _QuietHandler(*a, directory=self.wheelhouse, **k)  # noqa: E731
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:{}/".format(self.server.server_address[1])

    def __exit__(self, *exc):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def _sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _file_identity(path):
    return None if not path else {"path": os.path.abspath(path), "sha256": _sha256_file(path)}
