"""Which results are judged against which: version pairs inside a run, or positions across two runs.

Inside a run, the results of one framework x model x suite x engine settings are ordered by the
versions of the framework's packages (as installed, else as pinned), and every consecutive pair
is judged, plus oldest -> newest when there are more than two. Across runs (`--baseline`), each
position is judged against the same position in the baseline run (an A/A check when both runs
hold the same cells).
"""

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from ..frameworks import FRAMEWORKS
from ..results import engine_label, latest_results


@dataclass(frozen=True)
class Side:
    """One result and the store that holds its side files (predictions, drift outputs)."""

    store: object  # results.ResultStore
    result: dict

    @property
    def env(self):
        return self.result["environment"]


@dataclass(frozen=True)
class Pair:
    before: Side
    after: Side
    relation: str  # "consecutive", "oldest -> newest" or "baseline"


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def package_versions(result):
    """{package: version} of the framework's packages in the environment the result ran in."""
    provenance = result.get("provenance") or {}
    installed = provenance.get("packages") or {}
    pins = (provenance.get("runner") or {}).get("pins") or provenance.get("pins") or []
    pinned = {}
    for pin in pins:
        name, sep, version = pin.partition("==")
        if sep:
            pinned[_norm(name)] = version
    info = FRAMEWORKS.get(result["framework"])
    names = info.packages if info else ()
    return {name: installed.get(_norm(name)) or pinned.get(_norm(name)) for name in names}


def version_label(result):
    return ", ".join("{} {}".format(k, v) for k, v in package_versions(result).items() if v) or result["environment"]


def version_key(result):
    key = []
    for version in package_versions(result).values():
        try:
            key.append(Version(version or "0"))
        except InvalidVersion:
            key.append(Version("0"))
    return tuple(key) + (result["environment"],)


def _position(result):
    return (result["framework"], result["model"], result["suite"], engine_label(result))


def version_sequences(store, results):
    """{(framework, model, suite, engine): [Side, ...] oldest first} for the run's newest result per position."""
    groups = {}
    for result in latest_results(results).values():
        groups.setdefault(_position(result), []).append(Side(store, result))
    return {key: sorted(sides, key=lambda side: version_key(side.result)) for key, sides in sorted(groups.items())}


def version_pairs(sequence):
    pairs = [Pair(a, b, "consecutive") for a, b in zip(sequence, sequence[1:])]
    if len(sequence) > 2:
        pairs.append(Pair(sequence[0], sequence[-1], "oldest -> newest"))
    return pairs


def baseline_pairs(store, results, baseline_store, baseline_results):
    """The same (environment, model, suite, engine) in both runs."""
    before = latest_results(baseline_results)
    return [Pair(Side(baseline_store, before[key]), Side(store, result), "baseline")
            for key, result in sorted(latest_results(results).items()) if key in before]
