"""The tool's own install is reproducible: locks/host.txt (what `make setup` and tox's host env install with
hash checking) holds every dependency pyproject.toml and locks/host-tools.in name, at a version they allow."""

import re
import sys

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .matrices import ROOT

if sys.version_info >= (3, 11):
    import tomllib


def locked():
    """{name: [(version, marker or None)]} and the packages that lack a hash."""
    text = (ROOT / "locks" / "host.txt").read_text()
    entries, unhashed = {}, []
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = block.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        spec, _, marker = head.partition(";")
        name, _, version = spec.strip().partition("==")
        entries.setdefault(canonicalize_name(name), []).append((version, Marker(marker) if marker.strip() else None))
        if "--hash=sha256:" not in block:
            unhashed.append(name)
    return entries, unhashed


def wanted():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["test"]
    lines += [line.split("#")[0].strip() for line in (ROOT / "locks" / "host-tools.in").read_text().splitlines()]
    return [Requirement(line) for line in lines if line]


def test_every_host_dependency_is_locked_at_an_allowed_version_with_hashes():
    entries, unhashed = locked()
    assert unhashed == []
    host = {"python_full_version": "3.11.7", "python_version": "3.11", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "os_name": "posix"}
    problems = []
    for requirement in wanted():
        versions = [v for v, marker in entries.get(canonicalize_name(requirement.name), [])
                    if marker is None or marker.evaluate(host)]
        if len(versions) != 1:
            problems.append("{}: {} locked versions for Python 3.11 on Linux".format(requirement.name, len(versions)))
        elif not requirement.specifier.contains(versions[0], prereleases=True):
            problems.append("{} {} does not satisfy {}".format(requirement.name, versions[0], requirement))
    assert problems == [], "locks/host.txt is stale: {}; run `make host-lock`".format("; ".join(problems))
