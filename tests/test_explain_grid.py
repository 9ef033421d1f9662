"""The variant grid of `runner explain` and the choice of pairs, on the matrix's own recipes."""

import pytest

from runner.explain.grid import (NORMALISATIONS, cross_product_size, most_pairs, normalisation_of, single_variants)
from runner.matrix import load_matrix
from runner.probe.explain_pairs import (OFFICIAL, apply_changes, axis_effects, choose_pairs, invalid_reason,
                                        merged_changes, same_recipe)

from .conftest import ROOT


@pytest.fixture(scope="module")
def recipes():
    matrix = load_matrix(ROOT / "matrix.toml")
    return {variant.preprocess.name: (variant.preprocess.recipe(), variant.framework)
            for model in matrix.models for variant in model.variants}


def names(variants):
    return [v["name"] for v in variants]


def test_torchvision_grid_is_one_axis_at_a_time_around_the_official_recipe(recipes):
    official, framework = recipes["torchvision-224"]
    variants = single_variants(official, framework)
    assert names(variants) == [
        "interpolation=nearest", "interpolation=bicubic", "interpolation=lanczos", "resize_with=framework",
        "resize=shorter-224", "resize=square-256", "resize=square-224",
        "crop_offset=floor", "channel_order=BGR", "normalisation=caffe", "normalisation=tf",
        "decoder=framework", "decoder=opencv"]
    for variant in variants:
        recipe = apply_changes(official, variant["changes"])
        assert not same_recipe(recipe, official) and invalid_reason(recipe) is None
        changed = {k for k in recipe if recipe[k] != official.get(k, "pillow" if k == "decoder" else None)}
        assert changed <= set(variant["changes"]) and changed, variant["name"]
    # 224 / 0.875 is exactly the official 256: neither rounding of it is a variant of its own
    assert not any(v["name"] == "resize=shorter-256" for v in variants)
    assert cross_product_size(variants) == 4 * 2 * 4 * 2 * 2 * 3 * 3 == 1152
    resize = next(v for v in variants if v["axis"] == "resize_with")
    assert "antialiasing off (torchvision's tensor resize, as pytorch/vision#6506)" in resize["description"]


def test_the_decoder_axis_is_each_frameworks_own_and_opencv(recipes):
    """Pillow decodes for every official recipe; the axis offers the row's own decoder (two for TF: its default
    and its accurate DCT) and OpenCV; the probe says which the row lacks (runner/probe/decoders.py)."""
    decoders = {}
    for name, (official, framework) in recipes.items():
        decoders[framework] = [v["changes"]["decoder"] for v in single_variants(official, framework)
                               if v["axis"] == "decoder"]
        assert "decoder" not in official
    assert decoders == {"torchvision": ["framework", "opencv"], "keras": ["framework", "framework-accurate", "opencv"],
                        "gluoncv": ["framework", "opencv"]}
    official, framework = recipes["keras-caffe-224"]
    variant = next(v for v in single_variants(official, framework) if v["name"] == "decoder=framework-accurate")
    assert "INTEGER_ACCURATE" in variant["description"]
    assert invalid_reason(apply_changes(official, {"decoder": "libjpeg"})) == (
        "decoder 'libjpeg': expected one of pillow, framework, framework-accurate, opencv")


def test_resize_rounding_of_a_299_crop_and_straight_resize(recipes):
    official, framework = recipes["keras-tf-299"]
    variants = {v["name"]: v for v in single_variants(official, framework)}
    assert official["resize"] == 342
    assert variants["resize=shorter-341"]["changes"] == {"resize_mode": "shorter", "resize": 341}  # floor(299/0.875)
    assert "resize=shorter-342" not in variants  # ceil: the official one
    assert variants["resize=square-299"]["changes"] == {"resize_mode": "square", "resize": 299}
    assert "no crop" in variants["resize=square-299"]["description"]


def test_gluoncv_grid_has_the_framework_resize_axis_and_no_lanczos_for_it(recipes):
    official, framework = recipes["gluoncv-224"]
    variants = names(single_variants(official, framework))
    assert "resize_with=pillow" in variants and "interpolation=lanczos" not in variants
    assert "crop_offset=round" in variants  # the official floors (mx.image.center_crop)
    assert "antialias" not in " ".join(variants)
    assert invalid_reason(apply_changes(official, {"interpolation": "lanczos"})).startswith("the framework's own")
    assert invalid_reason(apply_changes(official, {"interpolation": "lanczos", "resize_with": "pillow"})) is None


def test_normalisation_modes_are_keras_preprocess_input(recipes):
    assert normalisation_of(recipes["keras-caffe-224"][0]) == "caffe"
    assert normalisation_of(recipes["keras-tf-224"][0]) == "tf"
    assert normalisation_of(recipes["torchvision-224"][0]) == "torch"
    assert NORMALISATIONS["caffe"]["channel_order"] == "BGR"
    caffe = {v["name"]: v for v in single_variants(*recipes["keras-caffe-224"])}
    assert "normalisation=caffe" not in caffe and caffe["channel_order=RGB"]["changes"] == {"channel_order": "RGB"}
    assert caffe["normalisation=tf"]["changes"]["channel_order"] == "RGB"


def test_every_recipe_of_the_matrix_gives_a_grid_without_duplicates(recipes):
    for name, (official, framework) in recipes.items():
        variants = single_variants(official, framework)
        built = [apply_changes(official, v["changes"]) for v in variants]
        assert len(variants) >= 10, name
        for i, recipe in enumerate(built):
            assert not any(same_recipe(recipe, other) for other in built[i + 1:]), (name, variants[i]["name"])


def simulated_errors(variants, moves, base=50.0):
    """{name: (top1, top5)}: the official at `base`, each named variant moved by moves[name] points."""
    errors = {OFFICIAL: (base, base / 2)}
    for variant in variants:
        shift = moves.get(variant["name"], 0.0)
        errors[variant["name"]] = (base + shift, base / 2 + shift / 2)
    return errors


def test_axes_ranked_by_how_far_they_moved_the_error(recipes):
    official, framework = recipes["torchvision-224"]
    variants = single_variants(official, framework)
    errors = simulated_errors(variants, {"interpolation=nearest": 6.0, "interpolation=bicubic": -2.0,
                                         "channel_order=BGR": 10.0, "resize=square-224": -4.0})
    effects = axis_effects(variants, errors)
    assert [e["axis"] for e in effects[:3]] == ["channel_order", "interpolation", "resize"]
    assert (effects[0]["top1_points"], effects[0]["top5_points"], effects[0]["toward_target"]) == (10.0, 5.0, None)
    assert all(e["top1_points"] == 0 for e in effects[3:])
    # toward a published 45 (official 50): BGR moved most, but away from it
    toward = axis_effects(variants, errors, target=45.0)
    assert [(e["axis"], e["toward_target"]) for e in toward[:3]] == [
        ("resize", 4.0), ("interpolation", 2.0), ("channel_order", 0.0)]


def test_pairs_combine_the_axes_that_came_closest_to_the_published_number(recipes):
    official, framework = recipes["torchvision-224"]
    variants = single_variants(official, framework)
    errors = simulated_errors(variants, {"interpolation=nearest": 6.0, "interpolation=bicubic": -2.0,
                                         "interpolation=lanczos": -1.0, "channel_order=BGR": -3.0,
                                         "resize=square-224": -4.0, "resize=shorter-224": 3.0,
                                         "normalisation=tf": 20.0})
    pairs = choose_pairs(official, variants, errors, target=45.0, axes=3, values=2)
    # toward 45: resize (square-224 at 46; shorter-224 went away), channel order (47), interpolation
    # (bicubic 48, lanczos 49; nearest went away); normalisation only moved away
    assert names(pairs) == [
        "resize=square-224 + channel_order=BGR", "resize=square-224 + interpolation=bicubic",
        "resize=square-224 + interpolation=lanczos", "channel_order=BGR + interpolation=bicubic",
        "channel_order=BGR + interpolation=lanczos"]
    assert len(pairs) <= most_pairs(variants)
    assert pairs[0]["changes"] == {"resize_mode": "square", "resize": 224, "channel_order": "BGR"}
    assert pairs[0]["parts"] == ["resize=square-224", "channel_order=BGR"]
    # without a published number: the axes and values that moved the error most, either way
    unaimed = choose_pairs(official, variants, errors, target=None, axes=2, values=1)
    assert names(unaimed) == ["normalisation=tf + interpolation=nearest"]
    # one axis came closer: nothing to pair it with
    assert choose_pairs(official, variants, simulated_errors(variants, {"interpolation=bicubic": -5.0,
                                                                        "channel_order=BGR": 9.0}), 45.0) == []


def test_pairs_that_conflict_or_repeat_a_variant_are_left_out(recipes):
    official, framework = recipes["keras-caffe-224"]
    variants = single_variants(official, framework)
    errors = simulated_errors(variants, {"channel_order=RGB": 8.0, "normalisation=tf": 9.0,
                                         "normalisation=torch": 7.0})
    pairs = choose_pairs(official, variants, errors, target=None, axes=2, values=2)
    # tf and torch set channel_order RGB, as the channel-order variant does: the pair is each mode alone
    assert pairs == []
    assert merged_changes({"channel_order": "RGB"}, {"channel_order": "BGR", "scale": 1.0}) is None
    assert merged_changes({"interpolation": "nearest"}, {"scale": 1.0}) == {"interpolation": "nearest", "scale": 1.0}


def test_nothing_moved_means_no_pairs(recipes):
    official, framework = recipes["torchvision-224"]
    variants = single_variants(official, framework)
    assert choose_pairs(official, variants, simulated_errors(variants, {}), target=20.0) == []


def test_each_axis_best_variant_is_paired_with_every_variant_of_the_other(recipes):
    """Interpolation: bicubic, lanczos and nearest came closer (in that order); resize: square-224 and
    shorter-224. The pairs: bicubic with both resizes, and square-224 with lanczos and nearest: 3 + 2 - 1."""
    official, framework = recipes["torchvision-224"]
    variants = single_variants(official, framework)
    errors = simulated_errors(variants, {"interpolation=bicubic": -4.0, "interpolation=lanczos": -3.0,
                                         "interpolation=nearest": -1.0, "resize=square-224": -5.0,
                                         "resize=shorter-224": -2.0})
    pairs = choose_pairs(official, variants, errors, target=40.0, axes=3, values=3)
    assert names(pairs) == ["resize=square-224 + interpolation=bicubic", "resize=square-224 + interpolation=lanczos",
                            "resize=square-224 + interpolation=nearest", "resize=shorter-224 + interpolation=bicubic"]
    assert len(choose_pairs(official, variants, errors, target=40.0, axes=3, values=2)) == 3
    assert most_pairs(variants) == (3 + 3 - 1) + (3 + 2 - 1) + (3 + 2 - 1) == 13
