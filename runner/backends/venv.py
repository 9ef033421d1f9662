"""`venv` backend: one virtualenv per environment, with the Python version the matrix asks for.

A virtualenv lives in <env_dir>/<name>-<content hash>/ and is reused while its content
(Python version, pins, index URLs, the packages and hashes of its lock) is unchanged; it counts as
built only once the marker file `.complete` exists, so an interrupted install is redone, never
half-used. It holds exactly its lock (runner/locks.py): pip installs the lock alone, every file
checked against its sha256, and the installed set is compared with the lock after the build and
at every reuse; any difference refuses the environment, with the difference listed.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..locks import installed_differences, lock_of, shown
from ..plan import cell_id, environment_content
from ..storage import waiting_lock, write_json, write_text
from .base import Backend, EnvironmentBuildError, ReadyEnvironment, default_cache_home
from .process import run_logged, tail

INSTALL_TIMEOUT_S = 3600
ENV_DIR_FLAG = "--env-dir (or DLMATRIX_ENV_DIR)"  # what chooses another folder, in storage faults


def default_env_dir():
    """Shared between checkouts on one host (envs are content-addressed, so sharing is safe)."""
    return os.environ.get("DLMATRIX_ENV_DIR") or os.path.join(default_cache_home(), "envs")


def find_python(version):
    """Path of an interpreter for `version` ('3.7' or '3.7.16'): PATH first, then pyenv."""
    major_minor = ".".join(version.split(".")[:2])
    candidates = []
    on_path = shutil.which("python" + major_minor)
    if on_path:
        candidates.append(on_path)
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            prefix = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            prefix = ""
        for line in prefix.splitlines():
            candidates.append(os.path.join(line, "bin", "python" + major_minor))
    if version == "{}.{}".format(*sys.version_info[:2]) or version == "{}.{}.{}".format(*sys.version_info[:3]):
        candidates.append(sys.executable)
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK) and _version_of(path).startswith(version):
            return _base_interpreter(path)
    raise EnvironmentBuildError(
        "Python {} not found: no python{} on PATH and pyenv has no {}; install it "
        "(e.g. `pyenv install {}`) or change the environment's `python`".format(version, major_minor, version, version))


def _base_interpreter(python):
    """The real interpreter behind `python`. A python3.7 found on PATH inside a tox env or venv is that env's;
    an environment built on it breaks when that env is deleted (seen: a row env whose bin/python was gone)."""
    code = "import os, sys; print(os.path.join(sys.base_prefix, 'bin', 'python%d.%d' % sys.version_info[:2]))"
    try:
        base = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return python
    return base if base and os.path.isfile(base) and os.access(base, os.X_OK) else python


def _version_of(python):
    try:
        out = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


class VenvBackend(Backend):
    name = "venv"

    def __init__(self, env_dir=None):
        self.env_dir = Path(env_dir or default_env_dir())

    def location(self, env):
        return self.env_dir / "{}-{}".format(env.name, cell_id(environment_content(env))[:12])

    def prepare(self, env, log):
        """Build (or reuse) `env` (a LockedEnvironment) from its lock; refuse one whose packages differ from it.

        One process at a time per environment folder (two runs, or a run and `make test`, may want the same
        one): a second waits and then reuses what the first built, instead of deleting it half-built."""
        lock = lock_of(env)  # a bisect step's is resolved now; LockError (an EnvironmentBuildError) if it cannot be
        root = self.location(env)
        with waiting_lock(root.parent / ".{}.lock".format(root.name), "building environment {}".format(env.name),
                          log, flag=ENV_DIR_FLAG):
            return self._prepare(env, lock, root, log)

    def _prepare(self, env, lock, root, log):
        marker = root / ".complete"
        python = root / "bin" / "python"
        if marker.is_file() and _version_of(str(python)):
            record = json.loads(marker.read_text())
            self._check_against_lock(env, root, lock, record["seeded"])
            return ReadyEnvironment(env.name, str(python), self._provenance(root, record, lock), reused=True)
        base_python = find_python(env.python)
        if root.exists():
            # An earlier build that did not finish, or one whose interpreter has gone.
            log("rebuilding {}: {}".format(root, "its Python no longer runs" if marker.is_file() else "unfinished"))
            shutil.rmtree(root)
        root.mkdir(parents=True)
        install_log = root / "install.log"
        log("building environment {} (venv, Python {}) from {} in {}; log: {}".format(
            env.name, env.python, shown(lock.path), root, install_log))
        tick = time.perf_counter()
        if hasattr(log, "follow"):  # runner/progress.py: pip's current step, live on a terminal
            log.follow("building {}".format(env.name), install_log)
        self._step([base_python, "-m", "venv", str(root)], install_log, env)
        seeded = installed(str(python))  # pip and setuptools as the Python's own venv puts them there
        # The environment keeps the very lock it was built from (a committed one may be re-made later).
        write_text(root / "lock.txt", lock.text, flag=ENV_DIR_FLAG)
        command = [str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                   "--require-hashes", "--no-deps"]
        if env.index_url:
            command += ["--index-url", env.index_url]
        for url in env.extra_index_urls:
            command += ["--extra-index-url", url]
        self._step(command + ["-r", str(root / "lock.txt")], install_log, env)
        self._check_against_lock(env, root, lock, seeded)
        freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True).stdout
        record = {"python": _version_of(str(python)), "base_python": base_python, "packages": list(env.packages),
                  "index_url": env.index_url, "extra_index_urls": list(env.extra_index_urls),
                  "seeded": seeded, "lock": shown(lock.path), "lock_sha256": lock.sha256,
                  "freeze": freeze.splitlines(), "build_s": round(time.perf_counter() - tick, 1)}
        write_json(marker, record, flag=ENV_DIR_FLAG)
        log("built {} in {:.0f} s".format(env.name, record["build_s"]))
        return ReadyEnvironment(env.name, str(python), self._provenance(root, record, lock), reused=False)

    def _check_against_lock(self, env, root, lock, seeded):
        differences = installed_differences(lock, installed(str(root / "bin" / "python")), seeded)
        if differences:
            raise EnvironmentBuildError(
                "environment {} in {} differs from its lock {}: {}; remove {} to rebuild it from the lock".format(
                    env.name, root, shown(lock.path), "; ".join(differences), root), log_path=str(root / "install.log"))

    def _step(self, command, install_log, env):
        run = run_logged(command, install_log, INSTALL_TIMEOUT_S)
        if run.returncode != 0:
            what = "timed out" if run.timed_out else "exited with {}".format(run.returncode)
            raise EnvironmentBuildError("building environment {} failed: `{}` {}: {} (full log: {})".format(
                env.name, " ".join(str(c) for c in command[:3]) + " ...", what, _last_error(install_log), install_log),
                log_path=str(install_log))

    def _provenance(self, root, record, lock):
        return {"backend": self.name, "path": str(root), "install_log": str(root / "install.log"),
                "python": record["python"], "base_python": record["base_python"], "freeze": record["freeze"],
                "build_s": record["build_s"],
                "lock": {"path": shown(lock.path), "sha256": lock.sha256, "packages": len(lock.packages),
                         "seeded_by_venv": record["seeded"]}}


def installed(python):
    """{name: version} of every distribution `python` sees (pip's own view, on any Python the rows use)."""
    run = subprocess.run([python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise EnvironmentBuildError("cannot list the packages of {}: {}".format(
            python, (run.stderr.strip().splitlines() or ["pip list failed"])[-1]))
    return {entry["name"]: entry["version"] for entry in json.loads(run.stdout)}


def _last_error(install_log):
    """The pip line that says what went wrong (ERROR: ...), else the log's last line."""
    text = tail(install_log, 40)
    errors = [line for line in text.splitlines() if line.startswith("ERROR")]
    return (errors[0] if errors else (text.splitlines() or [""])[-1]).strip()


def overlay(env_python, tool_python):
    """Make interpreter `tool_python` (a tox env with the test tools) import `env_python`'s packages.

    The probe's tests then run against the very packages the cells run with, without a second
    install of several GB per row. The row's site-packages go in front of the tool env's own, so
    a test tool's dependency (packaging, typing_extensions) never shadows the row's pin.
    Returns the .pth file written.
    """
    query = ("import json, site, sys, sysconfig; print(json.dumps([sys.version_info[:2], "
             "sorted({sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']})]))")
    (env_version, env_dirs), (tool_version, tool_dirs) = (_ask(python, query) for python in (env_python, tool_python))
    if env_version != tool_version:
        raise EnvironmentBuildError("{} is Python {}.{} but the environment is {}.{}; the overlay needs the same "
                                    "minor version".format(tool_python, *tool_version, *env_version))
    # One line (.pth files run only lines that start with `import`), and no comprehensions: site exec()s it, where a comprehension cannot see `site` or `sys`.
    line = ("import site, sys; n = len(sys.path); list(map(site.addsitedir, {env})); added = sys.path[n:]; "
            "del sys.path[n:]; i = min(map(sys.path.index, filter(sys.path.__contains__, {tool}))); "
            "sys.path[i:i] = added\n").format(env=env_dirs, tool=tool_dirs)
    pth = Path(tool_dirs[0]) / "_dlmatrix_environment.pth"
    write_text(pth, line)
    return pth


def _ask(python, code):
    try:
        run = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentBuildError("cannot run {}: {}".format(python, exc))
    if run.returncode != 0:
        raise EnvironmentBuildError("{} failed: {}".format(python, (run.stderr.strip().splitlines() or ["?"])[-1]))
    return json.loads(run.stdout)

