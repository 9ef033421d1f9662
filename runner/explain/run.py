"""`runner explain`: one cell of suite "explain" for (row, model), run in the row's environment, then ranked.

    check the flags -> plan the row's error cell (plan_cells) -> make it an explain cell (the grid, the
    pair rule, the published number) -> build or reuse the environment -> the probe (explain_suite.py)
    -> rank its per-image predictions -> reports/explain/<row>-<model>/explain.{md,json}

The run's results folder is not touched: an explain cell is not a cell of the matrix, so `run`, `compare`
and the report never see it.
"""

import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..backends import get_backend
from ..backends.base import EnvironmentBuildError
from ..backends.process import tail
from ..errors import UserError
from ..plan import Options, cell_id, plan_cells, resolve_auto_weights
from ..probe.explain_pairs import OFFICIAL
from ..probe.explain_suite import PREDICTIONS
from ..probe.jsonio import read_json
from ..storage import make_folder, write_json
from ..verdicts.published import published_for
from .grid import NOT_SWEPT, cross_product_size, most_pairs, single_variants
from .ranking import rank, read_predictions, verdict

EXPLAIN_SCHEMA_VERSION = 1


class ExplainFailed(Exception):
    """The explain cell could not run or gave no result (not bad input: exit 1, with the reason)."""


@dataclass(frozen=True)
class ExplainRequest:
    env: str
    model: str
    imagenet: str = None
    labels_file: str = None
    published_labels: str = None  # the reference's own top-1 per image (a labels file): published error 0
    limit: int = None
    weights: str = None
    seed: int = None
    device: str = None
    threads: int = None
    weights_cache: str = None
    pair_axes: int = 3
    pair_values: int = 3


def check_request(matrix, request):
    """Every flag against the matrix, before anything is built: one UserError naming the flag."""
    names = [e.name for e in matrix.environments]
    env = matrix.environment(request.env)
    if env is None:
        raise UserError("--env {}: no such environment in {}; valid: {}".format(request.env, matrix.path,
                                                                               ", ".join(names)))
    if matrix.model(request.model) is None:
        raise UserError("--model {}: no such model in {}; valid: {}".format(
            request.model, matrix.path, ", ".join(m.key for m in matrix.models)))
    if request.model not in env.models:
        raise UserError("--model {}: environment {} does not run it; its models: {}".format(
            request.model, env.name, ", ".join(env.models)))
    if not request.imagenet:
        raise UserError("explain needs the val set: --imagenet DIR (an ImageNet val folder, as for `run`)")
    if request.published_labels and request.labels_file:
        raise UserError("--published-labels replaces --labels (its labels are the reference's own predictions); "
                        "give one of them")
    for flag, value, low in (("--pair-axes", request.pair_axes, 0), ("--pair-values", request.pair_values, 1)):
        if value < low:
            raise UserError("{} {}: expected {} or more".format(flag, value, low))
    return env


def plan_explain(matrix, request, say):
    """(the explain cell, the published number or None, "published" or "labels")."""
    env = check_request(matrix, request)
    options = Options(weights=request.weights, seed=request.seed, device=request.device, threads=request.threads,
                      imagenet=request.imagenet, labels_file=request.published_labels or request.labels_file,
                      limit=request.limit, weights_cache=request.weights_cache, environments=(env.name,),
                      models=(request.model,), suites=("error",))
    options = resolve_auto_weights(matrix, options, say)
    (cell,) = plan_cells(matrix, options)
    if request.published_labels:
        reference = "labels"
        published = {"top1_error": 0.0, "top5_error": 0.0, "source": "--published-labels {}: the reference "
                     "evaluation's own top-1 per image, so it has no errors against them".format(
                         os.path.abspath(request.published_labels))}
    else:
        reference = "published"
        entry = published_for(matrix, {"environment": env.name, "model": request.model, "framework": env.framework})
        published = None if entry is None else {
            "top1_error": entry.top1_error, "top5_error": entry.top5_error, "applies_to": entry.applies_to,
            "source": entry.source, "revision": entry.revision, "weights": entry.weights}
    official = cell.variant.preprocess.recipe()
    variants = single_variants(official, env.framework)
    params = dict(cell.params, variants=variants, pairs={"axes": request.pair_axes, "values": request.pair_values},
                  target=None if published is None else {"top1_error": published["top1_error"]},
                  recentre=cell.weights["source"] == "random")
    evaluations = 1 + len(variants) + most_pairs(variants, request.pair_axes, request.pair_values)
    explain_cell = replace(cell, suite="explain", params=params, timeout_s=cell.timeout_s * evaluations,
                           id=cell_id({"explain": cell.id, "params": params}))
    return explain_cell, published, reference


def answer_folder(reports_dir, environment, model):
    """Where the answer of (row, model) is written: REPORTS_DIR/explain/<row>-<model>/."""
    return Path(reports_dir) / "explain" / "{}-{}".format(environment, model)


def run_explain(matrix, request, backend_name, env_dir, reports_dir, say, command=None):
    """Plan, run and rank; returns (answer, markdown path, json path)."""
    cell, published, reference = plan_explain(matrix, request, say)
    out = make_folder(answer_folder(reports_dir, cell.environment.name, cell.model.key), flag="--reports-dir")
    variants = cell.params["variants"]
    say("explain {} {}: the official recipe ({}), {} single-axis variants (fewer where this version cannot run "
        "some), then up to {} pairs, on {} images; "
        "weights {}".format(cell.environment.name, cell.model.key, cell.variant.preprocess.name, len(variants),
                            most_pairs(variants, request.pair_axes, request.pair_values), cell.dataset.images,
                            cell.weights["source"]))
    result = _run_cell(cell, backend_name, env_dir, matrix, out, say)
    answer = build_answer(cell, result, read_predictions(str(out / PREDICTIONS)), published, reference, command,
                          matrix.compare)
    from .table import write_explain

    md_path, json_path = write_explain(answer, out)
    return answer, md_path, json_path


def _run_cell(cell, backend_name, env_dir, matrix, out, say):
    backend = get_backend(backend_name, matrix=matrix, env_dir=env_dir, ignore_pins=False, docker=None)
    backend.start(say)
    try:
        ready = backend.prepare(cell.environment, say)
    except EnvironmentBuildError as exc:
        raise ExplainFailed("environment {} could not be made ready: {}".format(cell.environment.name, exc.reason))
    work = out / "cell"
    if work.exists():
        shutil.rmtree(str(work))
    work.mkdir()
    spec_path = work / "spec.json"
    write_json(spec_path, cell.spec(str(work.resolve()), time.time()), flag="--reports-dir")
    log_path = out / "probe.log"
    if log_path.exists():
        log_path.unlink()
    run = backend.run_probe(ready, spec_path, log_path, cell.timeout_s)
    result_path = work / "result.json"
    if run.timed_out:
        raise ExplainFailed("the explain cell timed out after {} s; log: {}".format(cell.timeout_s, log_path))
    if run.interrupted:
        raise KeyboardInterrupt
    if not result_path.is_file():
        raise ExplainFailed("the probe exited with code {} without a result: {} (log: {})".format(
            run.returncode, run.error or tail(log_path, 3) or "(no output)", log_path))
    result = read_json(str(result_path))
    if result["status"] != "ok":
        raise ExplainFailed("the explain cell of {} {} is {}: {} (log: {})".format(
            cell.environment.name, cell.model.key, result["status"], result["reason"], log_path))
    shutil.move(str(work / PREDICTIONS), str(out / PREDICTIONS))
    shutil.move(str(result_path), str(out / "result.json"))
    shutil.rmtree(str(work), ignore_errors=True)
    return result


def build_answer(cell, result, predictions, published, reference, command=None, settings=None):
    """Everything the table shows and explain.json keeps; `settings`: the matrix's [compare]."""
    metrics = result["metrics"]
    meta = {v["name"]: v for v in metrics["variants"] + metrics["pairs"]}
    ranked = rank(predictions, meta, published)
    weights = cell.weights["source"]
    status, sentence = verdict(ranked, published, weights, reference, settings)
    if metrics.get("recentred") and metrics.get("official_top1_classes") == 1:
        sentence += ("; note: this random network gives every image the same class even recentred (its outputs do "
                     "not depend on the image), so no variant can move anything")
    images = next(e["images"] for e in ranked if e["name"] == OFFICIAL)
    singles, pairs = metrics["variants"], metrics["pairs"]
    return {
        "schema_version": EXPLAIN_SCHEMA_VERSION,
        "environment": cell.environment.name, "framework": cell.environment.framework, "model": cell.model.key,
        "framework_model": cell.variant.name, "versions": (result.get("provenance") or {}).get("framework"),
        "device": cell.device, "weights": weights, "recentred": metrics.get("recentred"),
        "official_top1_classes": metrics.get("official_top1_classes"),
        "dataset": {"root": cell.dataset.root, "labels_file": cell.dataset.labels_file, "images": images,
                    "unreadable": metrics.get("unreadable_count", 0)},
        "reference": reference, "published": published,
        "recipe": cell.variant.preprocess.name, "official": metrics["official"],
        "evaluations": {"total": metrics["evaluations"], "official": 1, "single_axis": len(singles),
                        "pairs": len(pairs), "cross_product": cross_product_size(singles),
                        "decodings": metrics.get("decodings")},
        "pair_rule": metrics.get("pair_rule"), "axis_effects": metrics.get("axis_effects"),
        "variants_skipped": metrics.get("variants_skipped", []), "not_swept": list(NOT_SWEPT),
        "status": status, "verdict": sentence, "ranked": ranked, "command": command,
        "wall_s": result.get("duration_s"),
    }
