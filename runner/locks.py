"""Each row's lock: every package its environment installs, at an exact version, with the sha256 of each file.

A row in matrix.toml pins its top-level packages; what those pull in (scipy, requests, ...) would be
whatever the index serves on the day of the build. The lock, resolved once by `python -m runner lock`
(runner/locks_resolve.py) and committed beside the matrix as locks/<row>-<device>.txt, holds the whole
set. Builds install exactly it (`pip install --require-hashes --no-deps`), its sha256 is part of every
cell id, and its header records what it was resolved from, so a lock that no longer matches its row
(a pin edited, the lock not re-made) stops the run before anything is built.

Environments travel with their lock attached (LockedEnvironment): plan_cells locks every row of the
matrix, bisect locks the environments it derives (resolved on first use into the cache, not committed).
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .backends.base import EnvironmentBuildError
from .errors import UserError
from .matrix.schema import Environment
from .storage import cache_home

LOCK_FORMAT = 1
LOCKS_FOLDER = "locks"
PYPI = "https://pypi.org/simple"
# Wheels must install where the build runs. CPU: a venv on the host or the docker CPU base (Debian
# bookworm, glibc 2.36); manylinux_2_28 wheels need glibc >= 2.28. CUDA: the row's cuda_image.
CPU_PLATFORM = "x86_64-manylinux_2_28"
# glibc of the CUDA base images' distributions, as the platform uv resolves for (uv names no 2_27:
# Ubuntu 18.04 gets manylinux_2_17, the newest below its glibc 2.27).
IMAGE_PLATFORMS = (
    ("ubuntu18.04", "x86_64-manylinux_2_17"), ("ubuntu20.04", "x86_64-manylinux_2_31"),
    ("ubuntu22.04", "x86_64-manylinux_2_35"), ("ubuntu24.04", "x86_64-manylinux_2_39"),
    ("centos7", "x86_64-manylinux_2_17"), ("ubi8", "x86_64-manylinux_2_28"), ("rockylinux8", "x86_64-manylinux_2_28"),
    ("ubi9", "x86_64-manylinux_2_34"), ("rockylinux9", "x86_64-manylinux_2_34"),
)
DEVICES = ("cpu", "cuda")
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
HEADER = re.compile(r"^# ([a-z0-9-]+): (.*)$")


class LockError(EnvironmentBuildError):
    """A derived environment's lock could not be resolved: its cells fail (bisect steps around it)."""


def device_kind(device):
    """'cpu' or 'cuda' (cuda:N builds the same environment as cuda)."""
    return "cpu" if device == "cpu" else "cuda"


def locks_dir(matrix_path):
    return Path(os.path.abspath(str(matrix_path))).parent / LOCKS_FOLDER


def lock_path(matrix_path, name, device):
    return locks_dir(matrix_path) / "{}-{}.txt".format(name, device_kind(device))


def lock_command(names, device):
    return ".venv/bin/dlmatrix lock {} --device {}".format(" ".join(names), device_kind(device))


def target_platform(env, device):
    """The platform (uv's --python-platform) whose wheels the lock chooses for this row and device."""
    if device_kind(device) == "cpu" or not env.cuda_image:
        return CPU_PLATFORM
    tag = env.cuda_image.rsplit(":", 1)[-1]
    for marker, platform in IMAGE_PLATFORMS:
        if marker in tag:
            return platform
    raise UserError("environments.{}.cuda_image {!r}: cannot tell which C library its distribution has, so not which "
                    "wheels its lock may choose; expected a tag naming one of {}".format(
                        env.name, env.cuda_image, ", ".join(marker for marker, _ in IMAGE_PLATFORMS)))


def lock_inputs(env, device):
    """Everything a lock is resolved from; its sha256 is in the lock's header."""
    return {"format": LOCK_FORMAT, "device": device_kind(device), "python": env.python,
            "platform": target_platform(env, device), "packages": sorted(env.packages),
            "index_url": env.index_url or PYPI, "extra_index_urls": list(env.extra_index_urls)}


def inputs_sha256(inputs):
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Lock:
    path: Path
    text: str
    header: dict  # key -> [values] from the "# key: value" lines
    packages: tuple  # (canonical name, version) pairs, in the file's order
    sha256: str  # of the requirement lines and their hashes: what is installed, not how the header reads

    def versions(self):
        return dict(self.packages)


def parse_lock(path):
    """The lock at `path` (read once per content); FileNotFoundError if there is none."""
    stat = os.stat(str(path))
    return _parse(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _parse(path, mtime_ns, size):
    text = Path(path).read_text(encoding="utf-8")
    header, packages, body = {}, [], []
    for line in text.splitlines():
        match = HEADER.match(line)
        if match:
            header.setdefault(match.group(1), []).append(match.group(2).strip())
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            body.append(stripped)
            requirement = REQUIREMENT.match(line)
            if requirement:
                packages.append((canonicalize_name(requirement.group(1)), requirement.group(2)))
    sha256 = hashlib.sha256("\n".join(body).encode()).hexdigest()
    return Lock(path=Path(path), text=text, header=header, packages=tuple(packages), sha256=sha256)


def stale_reasons(lock, env, device):
    """What makes `lock` no longer the lock of `env` on `device` ([] when it is current)."""
    recorded = (lock.header.get("inputs-sha256") or [""])[0]
    if not recorded:
        return ["it has no '# inputs-sha256:' line; it was not made by `dlmatrix lock`"]
    inputs = lock_inputs(env, device)
    reasons = []
    if recorded != inputs_sha256(inputs):
        reasons = _what_changed(lock.header, inputs) or ["what it was resolved from differs from the row"]
    versions = lock.versions()
    for line in env.packages:
        name, version = line.split("==", 1)
        name = name.split("[", 1)[0]  # tensorflow[and-cuda]: the extra adds packages, the pin is tensorflow's
        have = versions.get(canonicalize_name(name))
        if have is None or not _same_version(have, version):
            reasons.append("it does not install the pin {} ({})".format(line, "has " + have if have else "absent"))
    return reasons


def _what_changed(header, inputs):
    before = {"python": header.get("python", ["?"])[0], "platform": header.get("platform", ["?"])[0],
              "device": header.get("device", ["?"])[0], "index-url": header.get("index-url", ["?"])[0]}
    now = {"python": inputs["python"], "platform": inputs["platform"], "device": inputs["device"],
           "index-url": inputs["index_url"]}
    found = ["{} {} -> {}".format(key, before[key], now[key]) for key in before if before[key] != now[key]]
    extra_before = [url for url in header.get("extra-index-url", []) if url != "(none)"]
    if extra_before != inputs["extra_index_urls"]:
        found.append("extra index URLs {} -> {}".format(extra_before or "none", inputs["extra_index_urls"] or "none"))
    pins_before, pins_now = set(header.get("pin", [])), set(inputs["packages"])
    found += ["pin {} removed".format(pin) for pin in sorted(pins_before - pins_now)]
    found += ["pin {} added".format(pin) for pin in sorted(pins_now - pins_before)]
    return found


def _same_version(a, b):
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


@dataclass(frozen=True)
class LockedEnvironment(Environment):
    """A matrix Environment with its lock attached: the environment the backends build and cell ids name."""

    lock_device: str = "cpu"
    lock_path: str = ""
    lock_derived: bool = False  # resolved on first use into the cache (a bisect step), not committed


def unlocked(env):
    """The plain Environment (deriving from a locked one must not carry its lock along)."""
    return Environment(**{f.name: getattr(env, f.name) for f in fields(Environment)})


def locked_matrix(matrix, device):
    """`matrix` with every row locked for `device`; one UserError naming every row whose lock is missing or stale."""
    kind, done, problems = device_kind(device), [], []
    for env in matrix.environments:
        if isinstance(env, LockedEnvironment) and env.lock_device == kind:
            done.append(env)
            continue
        env = unlocked(env).for_device(kind)  # on a GPU host, the row's GPU build
        problem = _problem(matrix.path, env, kind)
        if problem:
            problems.append((env.name, problem))
        done.append(LockedEnvironment(**_fields(env), lock_device=kind, lock_path=str(lock_path(matrix.path, env.name, kind))))
    if problems:
        raise UserError(_problems_message(problems, kind))
    return replace(matrix, environments=tuple(done))


def locked(matrix, env, device):
    """One row of `matrix`, locked for `device` (UserError if its lock is missing or stale)."""
    kind = device_kind(device)
    env = unlocked(env).for_device(kind)
    problem = _problem(matrix.path, env, kind)
    if problem:
        raise UserError(_problems_message([(env.name, problem)], kind))
    return LockedEnvironment(**_fields(env), lock_device=kind,
                             lock_path=str(lock_path(matrix.path, env.name, kind)))


def derived(env, device):
    """A derived environment (a bisect step) with its lock in the cache, resolved on first use."""
    kind = device_kind(device)
    env = unlocked(env).for_device(kind)
    digest = inputs_sha256(lock_inputs(env, kind))[:12]
    path = Path(cache_home()) / "locks" / "{}-{}-{}.txt".format(env.name, kind, digest)
    return LockedEnvironment(**_fields(env), lock_device=kind, lock_path=str(path), lock_derived=True)


def lock_of(env, device=None):
    """The Lock of a LockedEnvironment (a derived one's is resolved now if the cache lacks it).

    The docker image build: `lock = lock_of(env, options.device)`; install `lock.text` with
    `pip install --require-hashes --no-deps -r`; `lock.sha256` is already in environment_content(env)."""
    if not isinstance(env, LockedEnvironment):
        raise TypeError("environment {} has no lock attached; take it from plan_cells' cells or "
                        "runner.locks.locked()".format(env.name))
    if device is not None and device_kind(device) != env.lock_device:
        raise ValueError("environment {} is locked for {}, not {}".format(env.name, env.lock_device, device))
    path = Path(env.lock_path)
    if env.lock_derived and not path.is_file():
        from .locks_resolve import write_derived_lock

        write_derived_lock(unlocked(env), env.lock_device, path)
    try:
        return parse_lock(path)
    except FileNotFoundError:
        raise UserError(_problems_message([(env.name, "not found")], env.lock_device)) from None


def installed_differences(lock, installed, seeded):
    """How `installed` ({name: version}) differs from the lock; `seeded`: what `python -m venv` put there
    before the lock (pip, setuptools), accepted unless the lock pins them itself. [] when identical."""
    want = {name: version for name, version in lock.packages}
    expected = dict({canonicalize_name(n): v for n, v in seeded.items() if canonicalize_name(n) not in want}, **want)
    have = {canonicalize_name(name): version for name, version in installed.items()}
    found = []
    for name in sorted(set(have) | set(expected)):
        if name not in expected:
            found.append("{} {} is not in the lock".format(name, have[name]))
        elif name not in have:
            found.append("{} {} is missing".format(name, expected[name]))
        elif not _same_version(have[name], expected[name]):
            found.append("{} {} installed, the lock has {}".format(name, have[name], expected[name]))
    return found


def _fields(env):
    return {f.name: getattr(env, f.name) for f in fields(Environment)}


def _problem(matrix_path, env, kind):
    path = lock_path(matrix_path, env.name, kind)
    try:
        lock = parse_lock(path)
    except FileNotFoundError:
        return "not found"
    reasons = stale_reasons(lock, env, kind)
    return "stale: " + "; ".join(reasons) if reasons else None


def _problems_message(problems, kind):
    where = {name: lock_path_label(name, kind) for name, _ in problems}
    lines = "; ".join("environment {}: {} {}".format(name, where[name], problem) for name, problem in problems)
    return ("{} ({} lock{} must match matrix.toml before anything is built); make {} with `{}` and commit "
            "locks/".format(lines, kind, "s" if len(problems) > 1 else "", "them" if len(problems) > 1 else "it",
                            lock_command([name for name, _ in problems], kind)))


def lock_path_label(name, kind):
    return "{}/{}-{}.txt".format(LOCKS_FOLDER, name, kind)


def shown(path):
    """A path as the user knows it: relative to the working folder when under it."""
    relative = os.path.relpath(str(path))
    return str(path) if relative.startswith("..") else relative
