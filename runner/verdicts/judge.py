"""Every version-to-version change of a run judged: the verdicts and the findings they make.

    pairs (versions in a run, or a run against a baseline) -> evidence -> adjust p-values
    (false-discovery rate over the whole comparison) -> verdicts -> findings, most important first
"""

from dataclasses import dataclass

import numpy as np

from .changepoints import sequence_verdicts
from .decide import (PUBLISHED_WEIGHTS, busy_machine, cold_start_verdict, drift_verdict, noise_factor, error_verdict,
                     importance, published_verdict, throughput_verdict)
from .drift import compare_pair, compare_versions
from .evidence import cold_start_evidence, error_evidence, published_evidence, throughput_evidence
from .published import published_for
from .pairs import Pair, Side, baseline_pairs, version_label, version_pairs, version_sequences
from .stats import adjust
from .verdict import Verdict
from ..probe.throughput import measured_batches
from ..results import engine_label, latest_results


@dataclass
class Judgement:
    verdicts: list
    fdr: str
    alpha: float
    baseline: str = None
    noise: dict = None  # between-run ratios of an A/A comparison

    def findings(self):
        return sorted((v for v in self.verdicts if v.is_finding), key=importance)

    def regressions(self):
        return [v for v in self.verdicts if v.regression]

    def as_dict(self):
        return {"fdr": self.fdr, "alpha": self.alpha, "baseline": self.baseline, "noise": self.noise,
                "verdicts": [v.as_dict() for v in self.verdicts],
                "findings": [v.as_dict() for v in self.findings()]}


def _verdict(kind, pair, relation=None, **fields):
    before, after = pair.before.result, pair.after.result
    return Verdict(kind=kind, framework=after["framework"], model=after["model"], engine=engine_label(after),
                   before=before["environment"], after=after["environment"], before_version=version_label(before),
                   after_version=version_label(after), relation=relation or pair.relation,
                   cells=(before["cell_id"], after["cell_id"]), **fields)


def _ok(pair):
    return pair.before.result["status"] == "ok" and pair.after.result["status"] == "ok"


def judge(matrix, store, results, baseline_store=None, baseline_results=None, baseline_name=None, drift=None):
    """Verdicts for every pair in `results` (a ResultStore.load_all() list); `drift` = compare_versions's
    records when the caller has them already."""
    settings = matrix.compare
    sequences = version_sequences(store, results)
    if baseline_store is not None:
        pairs = baseline_pairs(store, results, baseline_store, baseline_results)
    else:
        pairs = [pair for sequence in sequences.values() for pair in version_pairs(sequence)]
    tested = []  # (verdict, decide(q) -> (verdict, text)): the family whose p-values are adjusted together
    verdicts = []
    for pair in pairs:
        suite = pair.after.result["suite"]
        if not _ok(pair) or suite == "drift":
            continue
        if suite == "error":
            evidence = error_evidence(pair)
            verdict = _verdict("error", pair, verdict="not compared", evidence=evidence)
            if not evidence["comparable"]:
                verdict.summary = evidence["reason"]
                verdicts.append(verdict)
                continue
            verdict.p_value = evidence["top1"]["p_value"]
            tested.append((verdict, lambda q, e=evidence: error_verdict(e, q, settings)))
        elif suite == "throughput":
            for evidence, factor in throughput_tests(pair, settings):
                verdict = _verdict("throughput", pair, verdict="", evidence=evidence,
                                   batch_size=evidence["batch_size"], p_value=evidence["p_value"])
                tested.append((verdict, lambda q, e=evidence, f=factor: throughput_verdict(
                    e, q, f, settings.alpha, e["busy"])))
            evidence = cold_start_evidence(pair)
            if evidence is not None:
                verdict = _verdict("cold_start", pair, evidence=evidence, verdict="")
                verdict.verdict, verdict.summary = cold_start_verdict(
                    evidence, settings.cold_start_factor,
                    busy_machine(evidence, settings.busy_share, (pair.before.env, pair.after.env)))
                verdicts.append(verdict)
    q_values = adjust([verdict.p_value for verdict, _ in tested], settings.fdr)
    for (verdict, decide), q_value in zip(tested, q_values):
        verdict.q_value = q_value
        verdict.verdict, verdict.summary = decide(q_value)
        verdicts.append(verdict)
    verdicts += _drift_verdicts(store, results, pairs, settings, baseline_store is not None, drift)
    if baseline_store is None:
        verdicts += _published_verdicts(matrix, results, settings)
        verdicts += sequence_verdicts(sequences, settings)
    return Judgement(verdicts=verdicts, fdr=settings.fdr, alpha=settings.alpha, baseline=baseline_name,
                     noise=_noise(verdicts) if baseline_store is not None else None)


def throughput_tests(pair, settings):
    """(evidence, noise factor) per batch size both results timed; evidence["busy"] says why a timing made
    on a busy machine is not judged (None when it was quiet)."""
    factor = noise_factor(settings, pair.after.result)
    tests = []
    for batch in measured_batches(pair.after.result["metrics"]):  # an out-of-memory batch size has no rate to judge
        evidence = throughput_evidence(pair, batch["batch_size"])
        if evidence is not None:
            evidence["busy"] = busy_machine(evidence, settings.busy_share, (pair.before.env, pair.after.env))
            tests.append((evidence, factor))
    return tests


def _drift_verdicts(store, results, pairs, settings, across_runs, drift):
    verdicts = []
    if across_runs:
        # The same drift cell in two runs: its own checkpoint's outputs, run against run.
        for pair in pairs:
            if pair.after.result["suite"] != "drift" or not _ok(pair):
                continue
            record = _own_outputs_record(pair)
            verdict = _verdict("drift", pair, verdict="", evidence=record)
            verdict.verdict, verdict.summary = drift_verdict(record, settings.drift_rtol)
            verdicts.append(verdict)
        return verdicts
    by_id = {result["cell_id"]: result for result in results}
    for record in compare_versions(store, results) if drift is None else drift:
        before = by_id.get(record["from_cell"]) or {"environment": record["from_env"], "framework": record["framework"],
                                                     "model": record["model"], "cell_id": record["from_cell"]}
        pair = Pair(Side(store, before), Side(store, by_id[record["to_cell"]]), "checkpoint of the older version")
        verdict = _verdict("drift", pair, verdict="", evidence=record)
        verdict.verdict, verdict.summary = drift_verdict(record, settings.drift_rtol)
        verdicts.append(verdict)
    return verdicts


def _own_outputs_record(pair):
    sides = []
    for side in (pair.before, pair.after):
        metrics = side.result["metrics"]
        own = metrics["evaluations"][0]
        sides.append((own, np.load(str(side.store.side_file(side.result["cell_id"], own["outputs_file"])))))
    (own_a, a), (own_b, b) = sides
    record = {"status": "ok", "from_env": pair.before.env, "to_env": pair.after.env,
              "checkpoint_sha256": own_b.get("checkpoint_sha256"),
              "inputs_identical": pair.before.result["metrics"]["input_sha256"] ==
              pair.after.result["metrics"]["input_sha256"],
              "weights_identical": own_a.get("tensor_digest") == own_b.get("tensor_digest")}
    if a.shape != b.shape:
        record.update(status="failed", reason="the two runs evaluated different images")
        return record
    record.update(compare_pair(a, b, pair.after.result["metrics"]["output_kind"]))
    return record


def _published_verdicts(matrix, results, settings):
    """Each error cell against its published number; the checks with the published weights are one family
    for the false-discovery adjustment (40 cells that all reproduce would otherwise give 2 that `differ`)."""
    checks = []
    for result in latest_results(results).values():
        if result["suite"] != "error" or result["status"] != "ok":
            continue
        published = published_for(matrix, result)
        if published is None:
            continue
        source = ((result.get("provenance") or {}).get("weights") or {}).get("source")
        checks.append((result, source, published_evidence(result, published, settings.resolve_points)))
    tested = [i for i, (_, source, _) in enumerate(checks) if source in PUBLISHED_WEIGHTS]
    q_values = dict(zip(tested, adjust([checks[i][2]["p_value"] for i in tested], settings.fdr)))
    verdicts = []
    for i, (result, source, evidence) in enumerate(checks):
        verdict, text = published_verdict(evidence, source, q_values.get(i), settings.alpha, len(tested))
        verdicts.append(Verdict(kind="published", framework=result["framework"], model=result["model"],
                                engine=engine_label(result), before=None, after=result["environment"],
                                before_version="published", after_version=version_label(result),
                                relation="published", verdict=verdict, summary=text, evidence=evidence,
                                p_value=evidence["p_value"] if i in q_values else None, q_value=q_values.get(i),
                                cells=(result["cell_id"],)))
    return verdicts


def _noise(verdicts):
    """An A/A comparison's spread: the throughput ratios between runs of the same cells."""
    # a timing made while other processes kept the machine busy says nothing about the noise of a quiet one
    ratios = [v.evidence["ratio_of_medians"] for v in verdicts if v.kind == "throughput" and not v.evidence["busy"]]
    if not ratios:
        return None
    worst = max(max(ratios), 1 / min(ratios))
    return {"pairs": len(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios), "largest_factor": worst,
            "note": "throughput ratios of medians between the two runs; where they are the same cells, the noise "
                    "floor between runs is at least x{:.3f}: set [compare] throughput_factor_* above it".format(worst)}
