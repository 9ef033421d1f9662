"""`local` backend: the current interpreter, as it is. Nothing is installed.

The environment's pins are checked against what this interpreter has; a mismatch fails the
environment's cells (with what differs) unless --ignore-pins was given, which every result
then records, so a result never claims versions it did not run.
"""

import platform
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..probe.provenance import installed_packages
from .base import Backend, EnvironmentBuildError, ReadyEnvironment


class LocalBackend(Backend):
    name = "local"

    def __init__(self, ignore_pins=False):
        self.ignore_pins = ignore_pins

    def prepare(self, env, log):
        mismatches = pin_mismatches(env, platform.python_version(), installed_packages())
        if mismatches and not self.ignore_pins:
            raise EnvironmentBuildError(
                "the current interpreter does not match environment {}: {}; use --backend venv to build it, "
                "or --ignore-pins to run with what is installed (recorded in each result)".format(
                    env.name, "; ".join(mismatches)))
        # No lock: this interpreter's own packages run, whatever else it holds; only the row's pins are checked.
        provenance = {"backend": self.name, "path": sys.prefix, "python": platform.python_version(),
                      "pin_mismatches": mismatches, "ignore_pins": self.ignore_pins,
                      "lock": "none: the interpreter's own packages (--ignore-pins: not even the pins are held)"
                      if self.ignore_pins else "none: the interpreter's own packages, the row's pins checked"}
        return ReadyEnvironment(env.name, sys.executable, provenance, reused=True)


def pin_mismatches(env, python_version, installed):
    found = []
    if not (python_version == env.python or python_version.startswith(env.python + ".")):
        found.append("Python {} (wants {})".format(python_version, env.python))
    for line in env.packages:
        requirement = Requirement(line)
        have = installed.get(canonicalize_name(requirement.name))
        if have is None:
            found.append("{} not installed (wants {})".format(requirement.name, line))
        elif not requirement.specifier.contains(have, prereleases=True):
            found.append("{} {} (wants {})".format(requirement.name, have, line))
    return found
