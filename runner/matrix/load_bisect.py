"""[bisect.FRAMEWORK]: how `runner bisect` derives an environment for one release from a good row."""

import re

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from ..frameworks import FRAMEWORKS
from .load_environments import check_pins
from .schema import PYTHON, BisectRule
from .table import Table, string_list

# PEP 508's distribution name: what pip would accept as the package to bisect.
DISTRIBUTION = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def read_bisect(table, environments):
    """{framework: BisectRule}; a framework without a table has no rule (an absent [bisect] is an empty one)."""
    rules = {}
    for framework in table.keys():
        if framework not in FRAMEWORKS:
            table.fail(framework, "unknown framework; expected one of: " + ", ".join(sorted(FRAMEWORKS)))
        rules[framework] = _rule(table.table(framework), framework, environments)
    return rules


def _rule(table, framework, environments):
    # Without `package`, bisect the package whose version identifies the framework (its version_package).
    package = table.get("package", str, FRAMEWORKS[framework].version_package, check=DISTRIBUTION.match,
                        expected="a distribution name such as 'mxnet'")
    # The bisected package must be one the good row pins: everything else of that row is held around it.
    pinned = sorted({canonicalize_name(Requirement(line).name) for env in environments if env.framework == framework
                     for line in env.packages})
    if canonicalize_name(package) not in pinned:
        table.fail("package", "{!r} is pinned by no [environments.*] row of {}; expected one of: {}".format(
            package, framework, ", ".join(pinned) or "(no such row)"))
    python = []
    for versions, entry in _ranges(table, "python"):
        python.append((versions, entry.get("python", str, check=PYTHON.match, expected="a Python version such as '3.7'")))
        entry.done()
    moves = []
    for versions, entry in _ranges(table, "with"):
        pins = string_list(entry, "packages", check=None, expected="a non-empty array of pins 'name==version'")
        if not pins:
            entry.fail("packages", "expected a non-empty array of pins 'name==version', got []")
        if canonicalize_name(package) in check_pins(entry, pins):
            entry.fail("packages", "pins the bisected package {!r} itself; its version is the one being bisected".format(package))
        moves.append((versions, pins))
        entry.done()
    table.done()
    return BisectRule(framework=framework, package=package, python=tuple(python), moves=tuple(moves))


def _ranges(table, key):
    """[(versions, entry)] for each [[bisect.FRAMEWORK.<key>]] table; the caller reads the rest of entry and calls done()."""
    ranges = []
    for i, item in enumerate(table.get(key, list, [], expected="an array of tables")):
        if not isinstance(item, dict):
            table.fail("{}[{}]".format(key, i), "expected a table, got {!r}".format(item))
        entry = Table(item, "{}.{}[{}]".format(table.path, key, i), table.file)
        ranges.append((entry.get("versions", str, check=_specifier_set,
                                 expected="a PEP 440 version range of the bisected package such as '>=1.9' or '==1.3.*'"),
                       entry))
    return ranges


def _specifier_set(text):
    # An empty set would match every release; a catch-all rule is written explicitly (e.g. '>=0').
    try:
        return bool(text.strip()) and SpecifierSet(text) is not None
    except InvalidSpecifier:
        return False
