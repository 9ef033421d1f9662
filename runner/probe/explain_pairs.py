"""The explain suite's pure part: recipe dicts, their changes, and the choice of pairs (no framework, no numpy).

Imported in the cell by runner/probe/explain_suite.py and on the host by runner/explain/grid.py, so the
pairs the cell evaluates follow the rule the host documents and tests. Python 3.7, stdlib and the probe's
preprocess.Recipe only.
"""

from .preprocess import Recipe

OFFICIAL = "official"
# The framework's own resize (the GluonCV adapter's mx.image.imresize codes) has no lanczos.
FRAMEWORK_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
# Axis order: the order the report names axes in when their effects tie.
AXES = ("interpolation", "resize_with", "resize", "crop_offset", "channel_order", "normalisation", "decoder")


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


def choose_pairs(official, variants, errors, target=None, axes=3, values=3):
    """The pair variants to evaluate after the single-axis ones.

    With a `target` (the published top-1 error): the `axes` axes whose variants brought the error closest
    to it (an axis none of whose variants came closer is left out), and of each its variants that came
    closer, closest first (at most `values`); without one: the axes that moved the error most, either way,
    and their variants that moved it, most first. For each two of those axes, the first variant of each
    with every chosen variant of the other: an axis whose best value alone is not the one that combines
    best with the other axis (30 images move an error by a few images) still has its others tried. A pair
    that sets one field to two values, cannot be evaluated, or preprocesses as a variant already in the
    grid is left out. Returns variant dicts like the single ones, plus "parts" (the two names)."""
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
            combinations = [(chosen[first_axis][0], b) for b in chosen[second_axis]] + \
                           [(a, chosen[second_axis][0]) for a in chosen[first_axis][1:]]
            for a, b in combinations:
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
