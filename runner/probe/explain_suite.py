"""Explain suite: one model, many preprocessing variants, the same images; per-image top-5 for each.

`python -m runner explain` (runner/explain/) plans one cell of suite "explain" per (row, model). Its
suite_params carry the variants (each a set of changes to the row's official recipe, one axis at a
time: runner/explain/grid.py) and the rule for pairs. Here, in the row's environment, the model is built
once and:

    the official recipe -> every single-axis variant -> pairs of the axes that moved the error most

are evaluated on the same images, each variant's crops decoded by the error suite's input pipeline
(decoder processes, the crop cache where the cell has one: every variant is a recipe), variants that
share their pixels (they differ only in normalisation or channel order) from one decoding. The
pairs are chosen here (choose_pairs), from the single-axis results, so the model is built once.

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

from .crop_cache import PIXEL_FIELDS
from .crop_source import input_batches
from .error_suite import batch_ranges, image_accounting, input_workers
from .preprocess import Recipe, to_batch

OFFICIAL = "official"
PREDICTIONS = "explain_predictions.csv"
# The framework's own resize (the GluonCV adapter's mx.image.imresize codes) has no lanczos.
FRAMEWORK_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
# Axis order: the order the report names axes in when their effects tie.
AXES = ("interpolation", "resize_with", "resize", "crop_offset", "channel_order", "normalisation")


# -- pure: recipes and the choice of pairs (also imported by the host: runner/explain/grid.py) ------------
def apply_changes(official, changes):
    """The recipe dict `official` with `changes` over it."""
    recipe = dict(official)
    recipe.update(changes)
    return recipe


def invalid_reason(recipe):
    """Why a recipe dict cannot be evaluated, or None."""
    if recipe.get("resize_with") == "framework" and recipe.get("interpolation") not in FRAMEWORK_INTERPOLATIONS:
        return "the framework's own resize has no {} interpolation (only {})".format(
            recipe.get("interpolation"), ", ".join(FRAMEWORK_INTERPOLATIONS))
    try:
        Recipe.from_dict(recipe)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def merged_changes(first, second):
    """The changes of two variants together, or None where they set one field to two values."""
    changes = dict(first)
    for key, value in second.items():
        if key in changes and changes[key] != value:
            return None
        changes[key] = value
    return changes


def _close(x, y):
    x, y = float(x), float(y)
    return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))  # float32 (a Recipe's mean and std) against float64


def same_recipe(a, b):
    """Two recipe dicts that preprocess alike (floats compared as numbers, to float32's precision)."""
    if set(a) != set(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
            if len(x) != len(y) or not all(_close(p, q) for p, q in zip(x, y)):
                return False
        elif isinstance(x, float) or isinstance(y, float):
            if not _close(x, y):
                return False
        elif x != y:
            return False
    return True


def axis_effects(variants, errors, target=None):
    """How far each axis moved the top-1 error (and the top-5), largest first: [{"axis", "top1_points",
    "top5_points", "toward_target"}]. top1/top5_points: the farthest any of its variants moved the error
    from the official recipe's, either way; toward_target (with a `target`, the published top-1 error):
    how much closer to it its best variant came (0 when none came closer). Ranked by toward_target where
    there is a target, else by top1_points. `errors` maps a variant's name to (top-1 %, top-5 %); OFFICIAL
    must be in it."""
    base1, base5 = errors[OFFICIAL]
    effects = {}
    for variant in variants:
        if variant["name"] not in errors:
            continue
        top1, top5 = errors[variant["name"]]
        found = effects.setdefault(variant["axis"], {"axis": variant["axis"], "top1_points": 0.0,
                                                     "top5_points": 0.0, "toward_target": None})
        found["top1_points"] = max(found["top1_points"], abs(top1 - base1))
        found["top5_points"] = max(found["top5_points"], abs(top5 - base5))
        if target is not None:
            closer = max(0.0, abs(base1 - target) - abs(top1 - target))
            found["toward_target"] = max(found["toward_target"] or 0.0, closer)

    def order(effect):
        first = effect["toward_target"] if target is not None else effect["top1_points"]
        return (-first, -effect["top1_points"], -effect["top5_points"], _axis_rank(effect["axis"]))

    return sorted(effects.values(), key=order)


def _axis_rank(axis):
    return AXES.index(axis) if axis in AXES else len(AXES)


def choose_pairs(official, variants, errors, target=None, axes=3, values=2):
    """The pair variants to evaluate after the single-axis ones.

    With a `target` (the published top-1 error): the `axes` axes whose variants brought the error closest
    to it (an axis none of whose variants came closer is left out), from each its `values` variants that
    came closest; without one: the axes that moved the error most, either way, and their variants that
    moved it most. For each two of those axes, every combination of their chosen variants. A pair that
    sets one field to two values, cannot be evaluated, or preprocesses as a variant already in the grid
    is left out. Returns variant dicts like the single ones, plus "parts" (the two names)."""
    base1 = errors[OFFICIAL][0]
    effects = axis_effects(variants, errors, target)
    if target is not None:
        moved = [e["axis"] for e in effects if e["toward_target"] > 0][:axes]
    else:
        moved = [e["axis"] for e in effects if e["top1_points"] > 0 or e["top5_points"] > 0][:axes]

    def helps(variant):
        top1 = errors[variant["name"]][0]
        if target is not None:
            return abs(top1 - target) < abs(base1 - target)
        return errors[variant["name"]] != errors[OFFICIAL]

    def closeness(variant):
        top1 = errors[variant["name"]][0]
        return (abs(top1 - target) if target is not None else -abs(top1 - base1), variant["name"])

    chosen = {}
    for axis in moved:
        candidates = [v for v in variants if v["axis"] == axis and v["name"] in errors and helps(v)]
        chosen[axis] = sorted(candidates, key=closeness)[:values]
    known = [apply_changes(official, {})] + [apply_changes(official, v["changes"]) for v in variants]
    pairs = []
    for i, first_axis in enumerate(moved):
        for second_axis in moved[i + 1:]:
            for a in chosen[first_axis]:
                for b in chosen[second_axis]:
                    changes = merged_changes(a["changes"], b["changes"])
                    if changes is None:
                        continue
                    recipe = apply_changes(official, changes)
                    if invalid_reason(recipe) or any(same_recipe(recipe, other) for other in known):
                        continue
                    known.append(recipe)
                    pairs.append({"name": "{} + {}".format(a["name"], b["name"]),
                                  "axis": "{} + {}".format(a["axis"], b["axis"]),
                                  "value": "{} + {}".format(a["value"], b["value"]),
                                  "description": "{}; {}".format(a.get("description", a["name"]),
                                                                 b.get("description", b["name"])),
                                  "changes": changes, "parts": [a["name"], b["name"]]})
    return pairs


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
        # mergesort: stable, as the error suite ranks (numpy 1.14 has no kind="stable")
        return np.argsort(-scores, axis=1, kind="mergesort")[:, :5]


def run_explain_suite(adapter, model, official, dataset, params, out_dir, crop_cache=None):
    """`official`: the row's recipe (the spec's dict, or a preprocess.Recipe); params: batch_size, workers, prefetch, variants
    (single-axis variant dicts), pairs ({"axes", "values"}), target ({"top1_error"} or None), recentre."""
    official_dict = dict(official) if isinstance(official, dict) else _recipe_dict(official)
    singles = [dict(v) for v in params.get("variants", [])]
    scores = _Scores(adapter, bool(params.get("recentre")))
    run = _Run(adapter, model, dataset, params, out_dir, crop_cache, scores)
    tick = time.perf_counter()
    skipped, runnable = [], []
    for variant in singles:
        reason = invalid_reason(apply_changes(official_dict, variant["changes"]))
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
                         int(rule.get("values", 2))) if rule.get("axes", 3) else []
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
        "pair_rule": {"axes": int(rule.get("axes", 3)), "values": int(rule.get("values", 2)), "target_top1": target},
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
            key = tuple(str(recipe[field]) for field in PIXEL_FIELDS)
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


def _recipe_dict(recipe):
    return {"resize": recipe.resize, "crop": recipe.crop, "interpolation": recipe.interpolation,
            "resize_mode": recipe.resize_mode, "scale": float(recipe.scale), "mean": [float(v) for v in recipe.mean],
            "std": [float(v) for v in recipe.std], "channel_order": recipe.channel_order, "layout": recipe.layout,
            "crop_offset": recipe.crop_offset, "resize_with": recipe.resize_with}
