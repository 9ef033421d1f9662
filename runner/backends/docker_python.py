"""The CPython that goes into a docker image: the row's own version, as a relocatable installation
(a python-build-standalone tarball or folder from --python-dist, else the host's pyenv-style one)."""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .base import EnvironmentBuildError
from .venv import find_python


@dataclass(frozen=True)
class ImagePython:
    """The CPython that goes into an image: a relocatable installation (folder or tarball)."""

    version: str  # full, e.g. 3.7.16
    source: str  # the folder or tarball it comes from
    kind: str  # "host interpreter" or "python-build-standalone"

    @property
    def minor(self):
        return ".".join(self.version.split(".")[:2])

    @property
    def identity(self):
        return "CPython {} ({}: {})".format(self.version, self.kind, self.source)

    def stage(self, context):
        """Put it into the build context; the Dockerfile step that installs it as /opt/python."""
        if self.source.endswith((".tar.gz", ".tgz")):
            shutil.copyfile(self.source, context / "python.tar.gz")
            return "ADD python.tar.gz /opt/"  # python-build-standalone's install_only tarballs hold python/
        minor = self.minor
        skip = {os.path.join("lib", "python" + minor, name) for name in ("site-packages", "test")}

        def ignore(folder, names):
            relative = os.path.relpath(folder, self.source)
            return [name for name in names if os.path.join(relative, name) in skip or name == "__pycache__"]

        shutil.copytree(self.source, context / "python", symlinks=True, ignore=ignore)
        (context / "python" / "lib" / ("python" + minor) / "site-packages").mkdir(parents=True, exist_ok=True)
        return "COPY python /opt/python"


def python_for_image(version, python_dist):
    """The row's CPython for an image: from --python-dist, else the host's own (pyenv-style) installation.

    The host's interpreter runs in the image only where the base image's C library is at least
    the host's (a Debian bookworm base on this host); older CUDA bases (Ubuntu 18.04) need a
    python-build-standalone build, which is made to run anywhere.
    """
    minor = ".".join(version.split(".")[:2])
    if python_dist:
        folder = Path(python_dist)
        for candidate in sorted(folder.glob("cpython-{}.*install_only*.tar.gz".format(minor))):
            full = candidate.name.split("-")[1].split("+")[0]
            if full.startswith(version):
                return ImagePython(full, str(candidate), "python-build-standalone")
        for candidate in sorted(folder.glob("{}*".format(minor))):
            if (candidate / "bin" / ("python" + minor)).is_file() and candidate.name.startswith(version):
                return ImagePython(candidate.name, str(candidate), "python-dist folder")
        raise EnvironmentBuildError(
            "--python-dist {}: no CPython {} there; expected cpython-{}.*-x86_64-unknown-linux-gnu-install_only.tar.gz "
            "(python-build-standalone) or a folder {}.N with bin/python{}".format(folder, version, minor, minor, minor))
    python = find_python(version)
    probe = subprocess.run([python, "-c", "import sys, platform; print(sys.base_prefix); print(platform.python_version())"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    prefix, full = probe[0], probe[1]
    if prefix in ("/usr", "/usr/local", "/") or not os.path.isfile(os.path.join(prefix, "bin", "python" + minor)):
        raise EnvironmentBuildError(
            "Python {} for the image: the host's {} lives in {}, which is not a self-contained installation to copy; "
            "pass --python-dist DIR with a python-build-standalone build (cpython-{}.*-install_only.tar.gz)".format(
                version, python, prefix, minor))
    return ImagePython(full, prefix, "host interpreter")
