"""A package's releases from the package index, and the environment one release derives from a row.

Releases are read with pip itself (`pip index versions`), so the index, proxy and certificate
settings a user already has for pip apply; only releases with a wheel or sdist for the row's
Python are listed. `--versions` gives the list by hand where no index can be reached.
"""

import re
import subprocess
import sys
from dataclasses import replace

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import UserError
from .locks import unlocked


def index_releases(package, python, index_url=None, extra_index_urls=()):
    """Every final release of `package` the index offers for Python `python` (e.g. "3.7"), oldest first."""
    command = [sys.executable, "-m", "pip", "index", "versions", package, "--python-version", python,
               "--disable-pip-version-check"]
    if index_url:
        command += ["--index-url", index_url]
    for url in extra_index_urls:
        command += ["--extra-index-url", url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise UserError("pip index versions {} did not answer in 120 s; give the releases with --versions".format(
            package)) from None
    match = re.search(r"^Available versions: (.+)$", done.stdout, re.M)
    if done.returncode != 0 or not match:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError("cannot list the releases of {} from the package index ({}); give them with --versions "
                        "A,B,C".format(package, last))
    return sorted(Version(v.strip()) for v in match.group(1).split(","))


def parse_versions(text):
    try:
        return sorted({Version(part.strip()) for part in text.split(",") if part.strip()})
    except InvalidVersion as exc:
        raise UserError("--versions {!r}: {}; expected versions separated by commas, e.g. 1.6.0,1.7.0".format(
            text, exc)) from None


def between(releases, good, bad):
    """The releases from `good` to `bad`, both included, in order (either may be the older one)."""
    low, high = sorted((Version(good), Version(bad)))
    inside = [v for v in releases if low < v < high and not v.is_prerelease and not v.is_devrelease]
    ordered = [low] + inside + [high]
    return ordered if Version(good) == low else ordered[::-1]


def pin_of(env, package):
    version = env.pinned_version(package)
    if version is None:
        raise UserError("environment {} pins no {}; pins: {}".format(env.name, package, ", ".join(env.packages)))
    return version


def derive_environment(good, package, version, rule=None):
    """`good` with `package` pinned to `version`, and the companions and Python the matrix's
    [bisect.FRAMEWORK] rule moves with that release; every other pin held."""
    python, moves = rule.derive(version) if rule else (None, ())
    pins = {canonicalize_name(line.split("==")[0]): line for line in good.packages}
    pins[canonicalize_name(package)] = "{}=={}".format(package, version)
    for line in moves:
        pins[canonicalize_name(line.split("==")[0])] = line
    name = "bisect-{}-{}-from-{}".format(canonicalize_name(package), version, good.name)
    # Never the good row's lock: a derived environment gets its own (runner.locks.derived, resolved on first use).
    return replace(unlocked(good), name=name, python=python or good.python, packages=tuple(pins.values()))


def differing_packages(good, bad):
    """'name a -> b' for each pin (and the Python) that differs between two environments."""
    a = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in good.packages}
    b = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in bad.packages}
    lines = ["python {} -> {}".format(good.python, bad.python)] if good.python != bad.python else []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            lines.append("{} {} -> {}".format(name, a.get(name, "(none)"), b.get(name, "(none)")))
    return lines
