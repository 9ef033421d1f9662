"""The explain sweep for a run's gaps: every error cell whose reproduced error `differs` from the published one.

    the run's judgement -> its published `differs` verdicts -> for each, the explain cell of that (row, model) on
    the cell's own images, weights and device (`run --explain`) -> reports/explain/<row>-<model>/explain.json
    -> the run's report shows each answer under its finding (also `report`, and answers `explain` made by hand)

An explain that cannot run is said in the report with its reason; it never fails the run, whose cells have
their results already.
"""

import os

from ..errors import UserError
from ..probe.jsonio import read_json
from .run import ExplainFailed, ExplainRequest, answer_folder, run_explain

EXPLAIN_BACKENDS = ("venv", "local")


def gaps(judgement, results):
    """(verdict, result) for each published check that says `differs`, in the findings' order."""
    if judgement is None:
        return []
    by_id = {result["cell_id"]: result for result in results}
    return [(verdict, by_id[verdict.cells[0]]) for verdict in judgement.findings()
            if verdict.kind == "published" and verdict.verdict == "differs" and verdict.cells[0] in by_id]


def request_for(result):
    """The explain request that sweeps the cell's own images, weights, seed, device and threads."""
    provenance = result.get("provenance") or {}
    dataset = provenance.get("dataset") or {}
    return ExplainRequest(env=result["environment"], model=result["model"], imagenet=dataset.get("root"),
                          labels_file=dataset.get("labels_file"), limit=dataset.get("limit") or None,
                          weights=(provenance.get("weights") or {}).get("source"), seed=provenance.get("seed"),
                          device=provenance.get("device_requested"), threads=provenance.get("threads_requested"))


def explain_gaps(matrix, judgement, results, backend, env_dir, reports_dir, say):
    """Run the explain cell of every gap; returns {(row, model): the reason} for those that could not run."""
    failed = {}
    found = gaps(judgement, results)
    if found:
        say("explain: {} error cell(s) differ from the published number: {}".format(
            len(found), ", ".join("{} {}".format(r["environment"], r["model"]) for _, r in found)))
    for _, result in found:
        key = (result["environment"], result["model"])
        if backend not in EXPLAIN_BACKENDS:
            failed[key] = "explain runs with the venv or local backend, not {} (run `.venv/bin/dlmatrix explain --env " \
                          "{} --model {} --backend venv ...`)".format(backend, *key)
            continue
        try:
            answer, md_path, _ = run_explain(matrix, request_for(result), backend, env_dir, reports_dir, say)
        except (ExplainFailed, UserError) as exc:
            failed[key] = str(exc)
            say("explain {} {}: could not run: {}".format(key[0], key[1], exc))
            continue
        say("explain {} {}: {}: {} ({})".format(key[0], key[1], answer["status"], answer["verdict"], md_path))
    return failed


def explanations(judgement, results, reports_dir, failed=None):
    """For the report: one entry per gap, {verdict, result, answer (or None), note, link}. An answer is shown
    only when it swept this cell's own images and weights; otherwise the note says why it is not."""
    failed = failed or {}
    entries = []
    for verdict, result in gaps(judgement, results):
        key = (result["environment"], result["model"])
        folder = answer_folder(reports_dir, *key)
        entry = {"verdict": verdict, "result": result, "answer": None, "note": None,
                 "path": str(folder / "explain.md")}
        if key in failed:
            entry["note"] = "explain could not run: " + failed[key]
        elif not (folder / "explain.json").is_file():
            entry["note"] = "not explained yet: `.venv/bin/dlmatrix run ... --explain`, or `.venv/bin/dlmatrix explain " \
                            "--env {} --model {} --imagenet DIR`".format(*key)
        else:
            answer = read_json(str(folder / "explain.json"))
            mismatch = _mismatch(answer, result)
            if mismatch:
                entry["note"] = "{} holds an explain of {}, not this cell's; run it again".format(
                    folder / "explain.json", mismatch)
            else:
                entry["answer"] = answer
        entries.append(entry)
    return entries


def _mismatch(answer, result):
    """What differs between the sweep an answer made and the cell (None: it is this cell's)."""
    provenance = result.get("provenance") or {}
    dataset = provenance.get("dataset") or {}
    weights = (provenance.get("weights") or {}).get("source")
    evaluated = (result.get("metrics") or {}).get("images_evaluated")
    if answer.get("weights") != weights:
        return "weights {}".format(answer.get("weights"))
    if dataset.get("root") and os.path.abspath(answer["dataset"]["root"]) != os.path.abspath(dataset["root"]):
        return "the images in {}".format(answer["dataset"]["root"])
    if evaluated is not None and answer["dataset"]["images"] != evaluated:
        return "{} images".format(answer["dataset"]["images"])
    return None
