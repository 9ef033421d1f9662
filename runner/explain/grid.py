"""The variant grid: one axis at a time around a row's official recipe (pure; no framework).

Each variant is a dict {"name", "axis", "value", "description", "changes"}: `changes` are the fields of
the probe's recipe (runner/probe/preprocess.py Recipe; matrix.toml [preprocess.*]) it sets, the rest is
the official recipe. The axes, each value other than the official one:

    interpolation   nearest, bilinear, bicubic, lanczos (the framework's own resize has no lanczos)
    resize_with     the framework's own resize, antialiasing off (OpenCV inside MXNet; torchvision's tensor
                    resize, torchvision >= 0.9) vs Pillow's (which filters when it downscales): the antialias
                    question, both ways round (GluonCV's official recipe resizes with MXNet)
    resize          shorter side to floor/ceil(crop / 0.875) (crop_pct 0.875 from the input size), shorter
                    side to the crop size (crop_pct 1.0), both sides to the official resize then centre
                    crop, both sides straight to the crop size (no crop)
    crop_offset     round vs floor of the centre crop's offset
    channel_order   RGB vs BGR
    normalisation   Keras preprocess_input's three modes: caffe (BGR, minus the ImageNet mean in 0-255),
                    tf (x / 127.5 - 1), torch (x / 255, ImageNet mean and std)
    decoder         the row's own JPEG decoder instead of Pillow (tf.image.decode_jpeg with TF's default and
                    with its accurate DCT, mx.image.imdecode, torchvision.io.decode_image), and OpenCV where
                    the row has it (runner/probe/decoders.py); each also converts greyscale and CMYK its way.
                    A decoder the row lacks is listed as not evaluated, with the reason.

A variant that preprocesses exactly as the official recipe (e.g. 224 / 0.875 = 256 is the official
resize) is left out. The pairs (the axes that moved the error most, two at a time) are chosen in the cell
from these results: runner/probe/explain_pairs.py choose_pairs.

Not swept: the colour conversion of greyscale/CMYK images apart from the decoder that does it.
"""

import math

from ..probe.explain_pairs import AXES, apply_changes, invalid_reason, same_recipe

CROP_PCT = 0.875
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
# Keras preprocess_input (keras_applications/imagenet_utils.py): mean/std in RGB order, after / scale.
NORMALISATIONS = {
    "caffe": {"scale": 1.0, "mean": [123.68, 116.779, 103.939], "std": [1.0, 1.0, 1.0], "channel_order": "BGR"},
    "tf": {"scale": 127.5, "mean": [1.0, 1.0, 1.0], "std": [1.0, 1.0, 1.0], "channel_order": "RGB"},
    "torch": {"scale": 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channel_order": "RGB"},
}
NOT_SWEPT = ("colour conversion of greyscale/CMYK images: each decoder's own (Pillow's convert('RGB'), the "
             "framework's, OpenCV's), not apart from its decoder",)
# framework: (decoder, description) of the decoder axis besides OpenCV (runner/probe/decoders.py)
FRAMEWORK_DECODERS = {
    "keras": (("framework", "tf.image.decode_jpeg (TF's default dct_method) instead of Pillow"),
              ("framework-accurate", "tf.image.decode_jpeg with dct_method INTEGER_ACCURATE instead of Pillow")),
    "gluoncv": (("framework", "mx.image.imdecode (OpenCV inside MXNet) instead of Pillow"),),
    "torchvision": (("framework", "torchvision.io.decode_image (libjpeg-turbo) instead of Pillow"),),
}
# Frameworks whose adapter has its own resize (Adapter.resize; runner/probe/decoders.py says where it is missing).
FRAMEWORK_RESIZE_OPS = {"gluoncv": "mx.image.imresize, OpenCV inside MXNet",
                        "torchvision": "torchvision's tensor resize, as pytorch/vision#6506"}
FRAMEWORK_RESIZE = tuple(FRAMEWORK_RESIZE_OPS)


def normalisation_of(recipe):
    """The preprocess_input mode the recipe's scale, mean and std are (channel order aside), or None."""
    for mode, values in NORMALISATIONS.items():
        fields = {k: v for k, v in values.items() if k != "channel_order"}
        if same_recipe({k: recipe[k] for k in fields}, fields):
            return mode
    return None


def single_variants(official, framework=None):
    """Every single-axis variant of recipe dict `official` (matrix Preprocess.recipe()), in axis order."""
    variants = []

    def add(axis, value, description, changes):
        recipe = apply_changes(official, changes)
        if same_recipe(recipe, official) or invalid_reason(recipe):
            return
        if any(same_recipe(recipe, apply_changes(official, v["changes"])) for v in variants):
            return
        variants.append({"name": "{}={}".format(axis, value), "axis": axis, "value": value,
                         "description": description, "changes": changes})

    for method in INTERPOLATIONS:
        add("interpolation", method, "{} interpolation".format(method), {"interpolation": method})
    if official["resize_with"] == "framework":
        add("resize_with", "pillow", "resize with Pillow (antialiased) instead of the framework's own",
            {"resize_with": "pillow"})
    elif framework in FRAMEWORK_RESIZE:
        add("resize_with", "framework", "resize with the framework's own op, antialiasing off ({}) instead of "
            "Pillow".format(FRAMEWORK_RESIZE_OPS[framework]), {"resize_with": "framework"})
    for value, description, changes in resize_rules(official):
        add("resize", value, description, changes)
    flipped = "floor" if official["crop_offset"] == "round" else "round"
    add("crop_offset", flipped, "centre-crop offset rounded {}".format("down" if flipped == "floor" else "to nearest"),
        {"crop_offset": flipped})
    order = "BGR" if official["channel_order"] == "RGB" else "RGB"
    add("channel_order", order, "{} channel order".format(order), {"channel_order": order})
    for mode, values in sorted(NORMALISATIONS.items()):
        add("normalisation", mode, "Keras preprocess_input mode '{}' ({})".format(mode, _mode_words(mode)),
            dict(values))
    official_decoder = official.get("decoder", "pillow")
    for decoder, description in FRAMEWORK_DECODERS.get(framework, ()) + (
            ("opencv", "cv2.imdecode (OpenCV, where the row has it) instead of Pillow"),):
        if decoder != official_decoder:
            add("decoder", decoder, description, {"decoder": decoder})
    assert all(v["axis"] in AXES for v in variants)
    return variants


def resize_rules(official):
    """(value, description, changes) of the resize axis around `official`."""
    crop, resize = official["crop"], official["resize"]
    rules = []
    for rounding, size in (("floor", int(math.floor(crop / CROP_PCT))), ("ceil", int(math.ceil(crop / CROP_PCT)))):
        rules.append(("shorter-{}".format(size), "shorter side to {} ({} of {} / {}), centre crop {}".format(
            size, rounding, crop, CROP_PCT, crop), {"resize_mode": "shorter", "resize": size}))
    rules.append(("shorter-{}".format(crop), "shorter side to {} (crop_pct 1.0), centre crop {}".format(crop, crop),
                  {"resize_mode": "shorter", "resize": crop}))
    rules.append(("square-{}".format(resize), "both sides to {}, centre crop {}".format(resize, crop),
                  {"resize_mode": "square", "resize": resize}))
    rules.append(("square-{}".format(crop), "both sides straight to {}, no crop".format(crop),
                  {"resize_mode": "square", "resize": crop}))
    if official["resize_mode"] == "square":
        rules.append(("shorter-{}".format(resize), "shorter side to {}, centre crop {}".format(resize, crop),
                      {"resize_mode": "shorter", "resize": resize}))
    return rules


def _mode_words(mode):
    return {"caffe": "BGR, minus the ImageNet mean", "tf": "x / 127.5 - 1",
            "torch": "x / 255, ImageNet mean and std"}[mode]


def cross_product_size(variants):
    """Evaluations the full cross product of the axes would take (each axis: its variants + the official value)."""
    counts = {}
    for variant in variants:
        counts[variant["axis"]] = counts.get(variant["axis"], 0) + 1
    total = 1
    for count in counts.values():
        total *= count + 1
    return total


def most_pairs(variants, axes=3, values=3):
    """The most pair evaluations choose_pairs can add for these variants (its bound, before any is left out):
    for each two of the `axes` largest axes, a + b - 1 (a, b: their variants, at most `values` each)."""
    per_axis = sorted((min(values, sum(1 for v in variants if v["axis"] == axis)) for axis in
                       {v["axis"] for v in variants}), reverse=True)[:axes]
    return sum(per_axis[i] + per_axis[j] - 1 for i in range(len(per_axis)) for j in range(i + 1, len(per_axis)))
