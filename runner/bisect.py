"""`runner bisect`: the two adjacent releases of a package between which a result changed.

    rows (good, bad) -> releases between their pins -> one derived environment per release
    (the good row with that release, companions moved by [bisect.FRAMEWORK]) -> binary search,
    each probe judged against the good row by the verdicts of `runner compare`

Every probe's cells are ordinary cells stored in the run's results, so a re-run or a wider
bisect reuses them. A release that cannot be installed or run is recorded with the reason and
stepped around, as asv's `find` steps around broken commits; if none around it works, the
answer is the range that could not be narrowed.
"""

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
from packaging.version import Version

from .backends.base import EnvironmentBuildError
from .drift_plan import load_cell
from .errors import UserError
from .executors.local import ensure_environment
from .locks import derived, locked
from .plan import plan_cells
from .releases import between, derive_environment, differing_packages, index_releases, pin_of
from .verdicts import decide
from .verdicts.drift import bit_identical, compare_pair, pair_record as drift_record
from .verdicts.evidence import error_evidence
from .verdicts.judge import throughput_tests
from .verdicts.pairs import Pair, Side
from .verdicts.stats import adjust

GOOD, BAD, UNUSABLE, UNDECIDED = "good", "bad", "unusable", "undecided"


@dataclass
class Probe:
    version: str
    environment: str
    outcome: str  # good, bad, unusable, undecided
    verdict: str = ""
    summary: str = ""
    moved: str = ""  # which pins differ from the good row
    build_s: float = 0.0
    built: bool = False
    cells: list = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    framework: str
    good: str
    bad: str
    model: str
    suite: str
    package: str = None  # default: [bisect.FRAMEWORK] package
    versions: tuple = ()  # releases given by hand (--versions) instead of the index
    criterion: str = "identical"  # drift: "identical" or "close"


class Bisector:
    """Holds what one bisection needs: the matrix, the options to plan cells with, an executor and its store."""

    def __init__(self, matrix, request, options, executor, say):
        self.matrix, self.request, self.options, self.executor, self.say = matrix, request, options, executor, say
        self.store = executor.store
        self.reference = None  # the good row's result the probes are judged against

    def cells_for(self, env):
        matrix = replace(self.matrix, environments=tuple(e for e in self.matrix.environments if e.name != env.name)
                         + (env,))
        options = replace(self.options, environments=(env.name,), models=(self.request.model,),
                          suites=(self.request.suite,))
        return plan_cells(matrix, options)

    def result_of(self, cell):
        stored = self.store.get(cell.id)
        if stored is None or stored["status"] not in ("ok", "skipped"):
            stored = self.executor.run([cell]).get(cell.id) or self.store.get(cell.id)
        return stored

    def measure(self, env, probe):
        """The result to judge for `env`: its suite's cell; for drift, its load of the good row's checkpoint."""
        tick = time.perf_counter()
        ready = ensure_environment(self.executor.backend, env, self.executor.ready_envs, self.executor.progress)
        probe.build_s = time.perf_counter() - tick
        if isinstance(ready, EnvironmentBuildError):
            probe.outcome, probe.summary = UNUSABLE, "environment failed: {}".format(ready.reason[:300])
            return None
        probe.built = not ready.reused
        (cell,) = self.cells_for(env)
        if self.request.suite == "drift" and self.reference is not None:
            cell = load_cell(cell, self.request.good, self.reference, self.store)
        result = self.result_of(cell)
        probe.cells.append(cell.id)
        if result is None or result["status"] != "ok":
            probe.outcome = UNUSABLE
            probe.summary = "cell {}: {}".format(result and result["status"], result and result.get("reason"))
            return None
        return result

    def judge(self, result, probe):
        """good / bad / undecided for `result` against the reference, with the verdict that decided it."""
        settings, suite = self.matrix.compare, self.request.suite
        if suite == "drift":
            evaluation = dict(result["metrics"]["evaluations"][0], origin=self.request.good,
                              origin_cell=self.reference["cell_id"])
            record = drift_record(self.store, result, self.reference, evaluation)
            verdict, text = decide.drift_verdict(record, settings.drift_rtol)
            accepted = {"bit-identical"} | ({"numerically close"} if self.request.criterion == "close" else set())
            outcome = GOOD if verdict in accepted else UNDECIDED if verdict == "not compared" else BAD
        elif suite == "throughput":
            pair = Pair(Side(self.store, self.reference), Side(self.store, result), "bisect")
            tests = throughput_tests(pair, settings)
            found = [e for e, _ in tests]
            q_values = adjust([e["p_value"] for e in found], settings.fdr)
            judged = [decide.throughput_verdict(e, q, f, settings.alpha, e["busy"])
                      for (e, f), q in zip(tests, q_values)]
            busy = any(e["busy"] for e in found)
            verdict = "slower" if any(v == "slower" for v, _ in judged) else "busy" if busy else "not slower"
            text = "; ".join("batch {}: {} {}".format(e["batch_size"], v, t) for e, (v, t) in zip(found, judged))
            outcome = BAD if verdict == "slower" else UNDECIDED if busy else GOOD
        else:
            evidence = error_evidence(Pair(Side(self.store, self.reference), Side(self.store, result), "bisect"))
            if not evidence["comparable"]:
                verdict, text, outcome = "not compared", evidence["reason"], UNDECIDED
            else:
                verdict, text = decide.error_verdict(evidence, evidence["top1"]["p_value"], settings)
                outcome = GOOD if verdict == "same" else BAD if verdict in ("worse", "better") else UNDECIDED
        probe.verdict, probe.summary, probe.outcome = verdict, text, outcome


def run_bisect(matrix, request, options, executor, say):
    """The whole bisection; returns a dict (the committed output's content)."""
    device = options.device or matrix.defaults.device
    good_env, bad_env = (locked(matrix, env, device) for env in _rows(matrix, request))
    rule = matrix.bisect.get(request.framework)
    package = request.package or (rule.package if rule else None)
    if package is None:
        raise UserError("no [bisect.{}] table names the package to bisect; pass --package NAME".format(
            request.framework))
    good_v, bad_v = pin_of(good_env, package), pin_of(bad_env, package)
    if good_v == bad_v:
        raise UserError("{} and {} both pin {}=={}: nothing to bisect in it; the rows differ in: {}".format(
            request.good, request.bad, package, good_v, "; ".join(differing_packages(good_env, bad_env))))
    releases = list(request.versions) or index_releases(package, good_env.python, good_env.index_url,
                                                          good_env.extra_index_urls)
    candidates = [str(v) for v in between(releases, good_v, bad_v)]
    say("bisect {} between {} ({}) and {} ({}): {} releases, at most {} probes".format(
        package, request.good, good_v, request.bad, bad_v, len(candidates),
        math.ceil(math.log2(max(len(candidates) - 1, 1))) + 2))
    # Releases of a package bisected on its own hold everything else, even rules meant for the framework.
    # Each derived environment's lock is resolved into the cache when it is first built (one that cannot be is unusable).
    envs = {v: derived(derive_environment(good_env, package, v, rule if package == (rule and rule.package) else None),
                       device) for v in candidates[1:]}
    bisector = Bisector(matrix, request, options, executor, say)
    reference_probe = Probe(version=good_v, environment=good_env.name, outcome=GOOD, summary="the reference")
    bisector.reference = bisector.measure(good_env, reference_probe)
    if bisector.reference is None:
        raise UserError("the good row {} gave no result to compare with: {}".format(request.good,
                                                                                 reference_probe.summary))
    probes = {good_v: reference_probe}

    def probe(version, env=None):
        env = env or envs[version]
        found = Probe(version=version, environment=env.name, outcome=UNUSABLE,
                      moved="; ".join(differing_packages(good_env, env)))
        result = bisector.measure(env, found)
        if result is not None:
            bisector.judge(result, found)
        say("  {} {} ({}): {}: {}".format(package, version, env.name, found.outcome,
                                          found.verdict or found.summary[:200]))
        return found, result

    row_bad, row_result = probe(bad_v, bad_env)
    answer = {"package": package, "framework": request.framework, "model": request.model, "suite": request.suite,
              "good": request.good, "bad": request.bad, "criterion": request.criterion, "candidates": candidates,
              "rows_differ_in": differing_packages(good_env, bad_env), "bad_row": row_bad.__dict__}
    if row_bad.outcome != BAD:
        answer.update(conclusion="no change to bisect: {} against {} is {} ({})".format(
            request.bad, request.good, row_bad.verdict or row_bad.outcome, row_bad.summary))
        return _finish(answer, probes)
    probes[bad_v], derived_bad_result = probe(bad_v)
    unusable_top = []
    while probes[candidates[-1]].outcome == UNUSABLE and len(candidates) > 2:
        # The bad row's release does not install or run with the good row's other pins (say, a
        # Python it no longer supports): the newest release that does stands in for it.
        unusable_top.append(candidates.pop())
        probes[candidates[-1]], derived_bad_result = probe(candidates[-1])
    bad_v = candidates[-1]
    if unusable_top:
        answer["unusable_after"] = unusable_top
    if probes[bad_v].outcome != BAD:
        answer.update(conclusion="{} {} alone does not reproduce the change ({} with {} {} and every other pin of "
                                 "{} is {}); the rows also differ in: {}. Bisect one of those with --package.".format(
                                     package, bad_v, request.good, package, bad_v, request.good,
                                     probes[bad_v].outcome, "; ".join(differing_packages(good_env, bad_env)))
                      + _unusable_note(unusable_top, probes))
        return _finish(answer, probes)
    low, high = search(candidates, lambda version: (probes.get(version) or probes.setdefault(
        version, probe(version)[0])).outcome)
    skipped = [v for v in candidates[low + 1:high] if v in probes]  # probed, neither good nor bad
    answer.update(last_good=candidates[low], first_bad=candidates[high], adjacent=high - low == 1,
                  unusable_between=skipped)
    if high - low == 1:
        text = "{} {} is the last good release and {} the first bad one".format(package, candidates[low],
                                                                               candidates[high])
    else:
        text = "the change lies between {} {} and {}; the releases between could not be used: {}".format(
            package, candidates[low], candidates[high], ", ".join(
                "{} ({})".format(v, probes[v].summary[:120]) for v in skipped) or "none probed")
    answer.update(conclusion=text + _unusable_note(unusable_top, probes) + ". " + _alone(bisector, package, bad_v, derived_bad_result, row_result,
                                                   good_env, bad_env))
    return _finish(answer, probes)


def search(candidates, outcome_of):
    """(low, high): indices of the last good and first bad candidate found, candidates[0] good and
    candidates[-1] bad. Binary search; a candidate that is neither good nor bad (unusable, undecided)
    is stepped around with the nearest one to the middle, and when none inside is usable the range
    stays wider than one."""
    low, high = 0, len(candidates) - 1
    while high - low > 1:
        middle = (low + high) // 2
        for index in sorted(range(low + 1, high), key=lambda i: (abs(i - middle), i)):
            outcome = outcome_of(candidates[index])
            if outcome in (GOOD, BAD):
                break
        else:
            return low, high
        if outcome == GOOD:
            low = index
        else:
            high = index
    return low, high


def _alone(bisector, package, bad_v, derived, row, good_env, bad_env):
    """Does the package alone explain the difference between the rows? The derived environment with the
    bad row's release against the bad row itself, by the same criterion."""
    check = Probe(version=bad_v, environment=bad_env.name, outcome=UNDECIDED)
    saved, bisector.reference = bisector.reference, derived
    try:
        if bisector.request.suite == "drift":
            # both loaded the good row's checkpoint: compare their outputs directly
            outputs = [np.load(str(bisector.store.side_file(r["cell_id"], r["metrics"]["evaluations"][0][
                "outputs_file"]))) for r in (derived, row)]
            same = bit_identical(outputs[0], outputs[1])
            stats = compare_pair(outputs[0], outputs[1], row["metrics"]["output_kind"])
            check.outcome = GOOD if same else BAD
            check.summary = "max |diff| {:.3g}; the preprocessed inputs are {}".format(
                stats["max_abs_diff"], "identical" if derived["metrics"]["input_sha256"] == row["metrics"][
                    "input_sha256"] else "not identical either, so part of the change is in decoding or preprocessing")
        else:
            bisector.judge(row, check)
    finally:
        bisector.reference = saved
    others = "; ".join(line for line in differing_packages(good_env, bad_env) if not line.startswith(package + " "))
    if check.outcome == GOOD:
        return "{} alone explains the difference between the rows: {} with only {} {} gives the same as {} ({}).".format(
            package, good_env.name, package, bad_v, bad_env.name, check.summary)
    return "{} does not explain all of it: {} with only {} {} differs from {} ({}); the rows also differ in: {}".format(
        package, good_env.name, package, bad_v, bad_env.name, check.summary, others)


def _unusable_note(versions, probes):
    if not versions:
        return ""
    return " ({} could not be used with the good row's other pins: {})".format(
        ", ".join(versions), probes[versions[0]].summary[:160])


def _finish(answer, probes):
    answer["probes"] = [p.__dict__ for p in sorted(probes.values(), key=lambda p: _version_key(p.version))]
    answer["environments_built"] = sum(1 for p in probes.values() if p.built)
    answer["build_s"] = sum(p.build_s for p in probes.values())
    return answer


def _version_key(text):
    return Version(text)


def _rows(matrix, request):
    envs = []
    for name in (request.good, request.bad):
        env = matrix.environment(name)
        if env is None:
            raise UserError("{}: no environment {!r}; valid: {}".format(matrix.path, name, ", ".join(
                e.name for e in matrix.environments)))
        if env.framework != request.framework:
            raise UserError("environment {} is a {} row, not {}".format(name, env.framework, request.framework))
        if request.model not in env.models:
            raise UserError("environment {} does not run model {}".format(name, request.model))
        envs.append(env)
    return envs
