"""Explain suite: one model, many preprocessing variants, the same images; per-image top-5 for each.

`python -m runner explain` (runner/explain/) plans one cell of suite "explain" per (row, model). Its
suite_params carry the variants (each a set of changes to the row's official recipe, one axis at a
time: runner/explain/grid.py) and the rule for pairs. Here, in the row's environment, the model is built
once and:

    the official recipe -> every single-axis variant -> pairs of the axes that moved the error most

are evaluated on the same images, each variant's crops decoded by the error suite's input pipeline
(decoder processes, the crop cache where the cell has one: every variant is a recipe), variants that
share their pixels (they differ only in normalisation or channel order) from one decoding. The
pairs are chosen here (explain_pairs.choose_pairs), from the single-axis results, so the model is built once.

Random weights: an untrained network gives nearly every image the same top-1 class, which no
preprocessing moves. With suite_params recentre = true the network's outputs are recentred on the
official recipe's mean output over these images (logits; the log of probabilities for a model that
ends in a softmax), which is what setting its output bias to minus that mean does: the top-1 class
then varies from image to image, and so does what a preprocessing variant changes. The same
recentring (one vector, from the official recipe) applies to every variant.

Writes explain_predictions.csv (variant, file, label, top1..top5) and returns the counts per variant.
Python 3.7, numpy and Pillow only (the probe's rule).
"""

import csv
import os
import time

import numpy as np

from .crop_key import PIXEL_FIELDS
from .crop_source import input_batches
from .error_suite import batch_ranges, image_accounting, input_workers
from .decoders import resize_unavailable, unavailable
from .explain_pairs import OFFICIAL, apply_changes, axis_effects, choose_pairs, invalid_reason
from .preprocess import Recipe, to_batch
from .top5 import best_classes

PREDICTIONS = "explain_predictions.csv"


# -- in the cell ------------------------------------------------------------------------------------------
class _Scores(object):
    """What turns a batch's outputs into the scores ranked for top-5 (recentred or not)."""

    def __init__(self, adapter, recentre):
        self.probabilities = getattr(adapter, "output_kind", "logits") == "probabilities"
        self.recentre = recentre
        self.bias = None  # minus the official recipe's mean output, once it is known

    def transform(self, outputs):
        outputs = np.asarray(outputs, dtype=np.float64)
        if self.recentre and self.probabilities:
            outputs = np.log(np.maximum(outputs, 1e-30))  # logits up to a constant per image
        return outputs

    def ranked(self, outputs):
        scores = self.transform(outputs)
        if self.bias is not None:
            scores = scores + self.bias
        return best_classes(scores)  # as the error suite ranks


def run_explain_suite(adapter, model, official, dataset, params, out_dir, crop_cache=None):
    """`official`: the row's recipe (the spec's dict, or a preprocess.Recipe); params: batch_size, workers, prefetch, variants
    (single-axis variant dicts), pairs ({"axes", "values"}), target ({"top1_error"} or None), recentre."""
    official_dict = dict(official) if isinstance(official, dict) else official.as_dict()
    singles = [dict(v) for v in params.get("variants", [])]
    scores = _Scores(adapter, bool(params.get("recentre")))
    run = _Run(adapter, model, dataset, params, out_dir, crop_cache, scores)
    tick = time.perf_counter()
    skipped, runnable = [], []
    for variant in singles:
        recipe = apply_changes(official_dict, variant["changes"])
        reason = invalid_reason(recipe) or unavailable(recipe.get("decoder", "pillow"), adapter) or (
            resize_unavailable(adapter) if recipe.get("resize_with") == "framework" else None)
        if reason:
            skipped.append({"name": variant["name"], "reason": reason})
        else:
            runnable.append(variant)
    first = [{"name": OFFICIAL, "axis": OFFICIAL, "value": "", "changes": {}, "description": "the row's recipe"}]
    if scores.recentre:
        # The official recipe alone first: its mean output is the recentring every variant gets.
        run.evaluate(first, official_dict, keep_outputs=True)
        outputs = run.kept_outputs
        scores.bias = -np.mean(scores.transform(outputs), axis=0)
        run.rows[OFFICIAL] = [row[:2] + [int(k) for k in top] for row, top in zip(run.rows[OFFICIAL],
                                                                                 scores.ranked(outputs))]
        run.kept_outputs = None
        run.evaluate(runnable, official_dict)
    else:
        run.evaluate(first + runnable, official_dict)
    rule = params.get("pairs") or {}
    target = (params.get("target") or {}).get("top1_error")
    pairs = choose_pairs(official_dict, runnable, run.errors(), target, int(rule.get("axes", 3)),
                         int(rule.get("values", 3))) if rule.get("axes", 3) else []
    run.evaluate(pairs, official_dict)
    path = os.path.join(out_dir, PREDICTIONS)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "file", "label", "top1", "top2", "top3", "top4", "top5"])
        for variant in [OFFICIAL] + [v["name"] for v in runnable + pairs]:
            for row in run.rows[variant]:
                writer.writerow([variant] + row)
    counts = {}
    for name, rows in run.rows.items():
        top1 = sum(1 for row in rows if row[2] == row[1])
        top5 = sum(1 for row in rows if row[1] in row[2:7])
        counts[name] = {"images": len(rows), "top1_correct": top1, "top5_correct": top5,
                        "top1_error": 100.0 * (len(rows) - top1) / len(rows) if rows else None,
                        "top5_error": 100.0 * (len(rows) - top5) / len(rows) if rows else None}
    evaluated = len(run.rows[OFFICIAL])
    return dict(image_accounting(dataset, evaluated, run.unreadable), **{
        "official": official_dict,
        "variants": runnable,
        "variants_skipped": skipped,
        "pairs": pairs,
        "pair_rule": {"axes": int(rule.get("axes", 3)), "values": int(rule.get("values", 3)), "target_top1": target},
        "axis_effects": axis_effects(runnable, run.errors(), target),
        "evaluations": 1 + len(runnable) + len(pairs),
        "decodings": run.decodings,
        "counts": counts,
        "recentred": scores.recentre,
        # 1: the model gives every image the same class (an untrained network whose outputs are constant)
        "official_top1_classes": len(set(row[2] for row in run.rows[OFFICIAL])),
        "output_kind": getattr(adapter, "output_kind", "logits"),
        "crop_cache": run.cache_records,
        "model_s": run.model_s,
        "wall_s": time.perf_counter() - tick,
        "predictions_file": PREDICTIONS,
    })


class _Run(object):
    """Evaluates lists of variants on the dataset, one decoding per distinct set of pixel fields."""

    def __init__(self, adapter, model, dataset, params, out_dir, crop_cache, scores):
        self.adapter, self.model, self.dataset, self.out_dir = adapter, model, dataset, out_dir
        self.crop_cache, self.scores = crop_cache, scores
        self.batch_size = int(params.get("batch_size", 32))
        self.workers = input_workers(params)
        self.prefetch = int(params.get("prefetch", 2))
        self.rows = {}
        self.unreadable = []
        self.kept_outputs = None
        self.decodings = 0
        self.cache_records = []
        self.model_s = 0.0

    def errors(self):
        found = {}
        for name, rows in self.rows.items():
            if rows:
                found[name] = (100.0 * sum(1 for r in rows if r[2] != r[1]) / len(rows),
                               100.0 * sum(1 for r in rows if r[1] not in r[2:7]) / len(rows))
        return found

    def evaluate(self, variants, official, keep_outputs=False):
        groups = []
        for variant in variants:
            recipe = apply_changes(official, variant["changes"])
            fields = Recipe.from_dict(recipe).as_dict()  # with the defaults a recipe dict may leave out
            key = tuple(str(fields[field]) for field in PIXEL_FIELDS)
            for group_key, members in groups:
                if group_key == key:
                    members.append((variant, recipe))
                    break
            else:
                groups.append((key, [(variant, recipe)]))
        for _, members in groups:
            self._group(members, keep_outputs)

    def _group(self, members, keep_outputs):
        recipes = [(variant["name"], Recipe.from_dict(recipe)) for variant, recipe in members]
        for name, _ in recipes:
            self.rows[name] = []
        record = {}
        first = self.decodings == 0
        self.decodings += 1
        kept_outputs = []
        items = self.dataset.items
        batches = input_batches(self.dataset, recipes[0][1], self.adapter,
                                batch_ranges(len(items), self.batch_size), self.workers, self.prefetch,
                                self.crop_cache, self.out_dir, record)
        try:
            for batch in batches:
                kept = []
                for offset, (mode, problem, seconds, _) in enumerate(batch.infos):
                    if problem is not None:
                        if first:
                            self.unreadable.append(dict(file=items[batch.start + offset][0], **problem))
                        continue
                    kept.append(offset)
                if not kept:
                    continue
                crops = batch.crops if len(kept) == len(batch.infos) else batch.crops[kept]
                for name, recipe in recipes:
                    tick = time.perf_counter()
                    outputs = self.adapter.predict(self.model, to_batch(crops, recipe))
                    self.model_s += time.perf_counter() - tick
                    if keep_outputs:
                        kept_outputs.append(np.asarray(outputs, dtype=np.float32))
                    best = self.scores.ranked(outputs)
                    for offset, top in zip(kept, best):
                        rel, label = items[batch.start + offset]
                        self.rows[name].append([rel, label] + [int(k) for k in top])
        finally:
            batches.close()
        self.cache_records.append({"variants": [name for name, _ in recipes], "crop_cache": record})
        if keep_outputs:
            self.kept_outputs = np.concatenate(kept_outputs) if kept_outputs else np.zeros((0, 0), np.float32)
        if first and not self.rows[recipes[0][0]]:
            raise RuntimeError("no image of the {} selected could be decoded; the first, {}: {}".format(
                len(items), self.unreadable[0]["file"] if self.unreadable else "?",
                self.unreadable[0]["error"] if self.unreadable else "?"))
