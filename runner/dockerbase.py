"""`python -m runner docker-base`: the CPU base image, built with no registry at all.

debootstrap installs a minimal Debian (variant minbase) from a Debian mirror into a folder,
which `docker import` (through the Engine API) turns into the image [docker] cpu_base names.
It carries what the rows' copied CPythons and the frameworks' wheels load from the OS, so
image builds on it need no apt and no network beyond pip's.
"""

import os
import shutil
import subprocess
import tempfile
import time

from .backends.base import default_cache_home
from .backends.docker_cell import first_line, no_engine
from .backends.process import run_logged
from .errors import UserError
from .frameworks import FRAMEWORKS

# Shared libraries a CPython build links (ssl, ctypes, bz2, lzma, sqlite3, expat, readline, curses).
PYTHON_RUNTIME = ("ca-certificates", "libssl3", "libffi8", "libbz2-1.0", "liblzma5", "libsqlite3-0", "libexpat1",
                  "libreadline8", "libncursesw6")

DEBOOTSTRAP_TIMEOUT_S = 3600


def base_packages():
    extra = sorted({package for info in FRAMEWORKS.values() for package in info.system_packages})
    return list(PYTHON_RUNTIME) + extra


def _client():
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise no_engine("docker-base", exc) from None
    return client


def load_base_image(tag, tarball, log):
    """`docker load` a base image saved elsewhere (docker save) and tag it `tag`; returns the image id."""
    client = _client()
    try:
        with open(tarball, "rb") as handle:
            images = client.images.load(handle)
    except OSError as exc:
        raise UserError("--from-tarball {}: {}".format(tarball, exc.strerror)) from None
    except Exception as exc:  # the engine's own words on a file that is no image archive
        raise UserError("--from-tarball {}: not an image archive `docker save` wrote ({})".format(
            tarball, first_line(exc))) from None
    if len(images) != 1:
        raise UserError("--from-tarball {}: holds {} images; expected one".format(tarball, len(images)))
    repository, _, version = tag.rpartition(":")
    images[0].tag(repository, version)
    log("loaded {} from {} as {}".format(images[0].id, tarball, tag))
    return images[0].id


def build_base_image(tag, suite, mirror, force, log):
    """Build `tag` unless it exists (or `force`); returns the image id."""
    import docker

    client = _client()
    if not force:
        try:
            image = client.images.get(tag)
            log("{} exists ({}); --force rebuilds it".format(tag, image.id))
            return image.id
        except docker.errors.ImageNotFound:
            pass
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise UserError("debootstrap is not installed (apt-get install debootstrap); or load a base image with "
                        "`docker load -i FILE.tar` and name it in [docker] cpu_base")
    if os.getuid() != 0:
        raise UserError("debootstrap needs root: run `sudo .venv/bin/dlmatrix docker-base`")
    log_dir = os.path.join(default_cache_home(), "docker")
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, "base-{}.log".format(tag.replace("/", "_").replace(":", "_")))
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dlmatrix-base-") as work:
        root = os.path.join(work, "root")
        log("debootstrap {} (minbase + {}) from {}; log: {}".format(suite, ", ".join(base_packages()), mirror, log_path))
        if os.path.exists(log_path):
            os.unlink(log_path)
        # Under the guard: a killed or interrupted command takes debootstrap (and its dpkg children) down too.
        run = run_logged([debootstrap, "--variant=minbase", "--include=" + ",".join(base_packages()), suite, root,
                          mirror], log_path, DEBOOTSTRAP_TIMEOUT_S)
        if run.returncode != 0:
            raise UserError("debootstrap {}; see {}".format("timed out after {} s".format(DEBOOTSTRAP_TIMEOUT_S) if
                                                             run.timed_out else "failed with exit code {}".format(
                                                                 run.returncode), log_path))
        shutil.rmtree(os.path.join(root, "var", "cache", "apt", "archives"), ignore_errors=True)
        tarball = os.path.join(work, "root.tar")
        subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", tarball, "."], check=True)
        repository, _, version = tag.rpartition(":")
        client.api.import_image(src=tarball, repository=repository, tag=version,
                                changes=['CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"])
    image = client.images.get(tag)
    log("imported {} ({}) in {:.0f} s".format(tag, image.id, time.perf_counter() - tick))
    return image.id
