"""[preprocess.*] and [models.*]: recipes, and each model as every framework names, builds and publishes it."""

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..frameworks import FRAMEWORKS
from .schema import NAME, SHA256, Model, Preprocess, Published, Variant, WeightsFile
from .table import Table, is_kind, positive


def read_preprocess(table):
    recipes = {}
    for name in table.keys():
        entry = table.table(name)
        three = lambda v: len(v) == 3 and all(is_kind(x, float) for x in v)  # noqa: E731
        recipes[name] = Preprocess(
            name=name,
            resize=positive(entry, "resize"),
            crop=positive(entry, "crop"),
            interpolation=entry.get("interpolation", str, "bilinear",
                                    check=lambda v: v in ("nearest", "bilinear", "bicubic", "lanczos"),
                                    expected="nearest, bilinear, bicubic or lanczos"),
            resize_mode=entry.get("resize_mode", str, "shorter", check=lambda v: v in ("shorter", "square"),
                                  expected="'shorter' (shorter side to `resize`) or 'square'"),
            scale=float(entry.get("scale", float, 255.0)),
            mean=tuple(float(x) for x in entry.get("mean", list, check=three, expected="three numbers (RGB order)")),
            std=tuple(float(x) for x in entry.get("std", list, check=three, expected="three numbers (RGB order)")),
            channel_order=entry.get("channel_order", str, "RGB", check=lambda v: v in ("RGB", "BGR"),
                                    expected="'RGB' or 'BGR'"),
            layout=entry.get("layout", str, "NCHW", check=lambda v: v in ("NCHW", "NHWC"), expected="'NCHW' or 'NHWC'"),
            crop_offset=entry.get("crop_offset", str, "round", check=lambda v: v in ("round", "floor"),
                                  expected="'round' (torchvision) or 'floor' (MXNet's center_crop)"),
            resize_with=entry.get("resize_with", str, "pillow", check=lambda v: v in ("pillow", "framework"),
                                  expected="'pillow' or 'framework' (the framework's own resize, e.g. MXNet's)"),
            source=entry.get("source", str, expected="where this recipe is published (a citation)"),
        )
        if recipes[name].crop > recipes[name].resize:
            entry.fail("crop", "must not exceed resize ({})".format(recipes[name].resize))
        entry.done()
    return recipes


def read_models(table, preprocess):
    models = []
    for key in table.keys():
        entry = table.table(key)
        if not NAME.match(key):
            table.fail(key, "model names are lower-case letters, digits, '.', '_' and '-'")
        title = entry.get("title", str, key)
        gmacs = entry.get("gmacs", float, None, check=lambda v: v > 0, expected="a positive number (10^9 MACs)")
        gmacs_source = entry.get("gmacs_source", str, None)
        if gmacs is not None and not gmacs_source:
            entry.fail("gmacs_source", "missing; every gmacs number cites where it comes from")
        variants = []
        for framework in [k for k in entry.keys() if k not in ("title", "gmacs", "gmacs_source")]:
            if framework not in FRAMEWORKS:
                entry.fail(framework, "unknown framework; expected 'title' or one of: " + ", ".join(sorted(FRAMEWORKS)))
            variants.append(_variant(entry.table(framework), framework, preprocess))
        entry.done()
        if not variants:
            table.fail(key, "no framework table; expected e.g. [models.{}.torchvision]".format(key))
        models.append(Model(key=key, title=title, variants=tuple(variants), gmacs=gmacs, gmacs_source=gmacs_source))
    return tuple(models)


def _variant(table, framework, preprocess):
    info = FRAMEWORKS[framework]
    name = table.get("name", str, check=lambda v: v in info.models,
                     expected="a {} model name (known: {})".format(framework, ", ".join(sorted(info.models))))
    recipe = table.get("preprocess", str, check=lambda v: v in preprocess,
                       expected="the name of a [preprocess.*] table (known: {})".format(", ".join(sorted(preprocess)) or "none"))
    kwargs = table.get("kwargs", dict, {})
    published = []
    for i, item in enumerate(table.get("published", list, [], expected="an array of tables")):
        if not isinstance(item, dict):
            table.fail("published[{}]".format(i), "expected a table")
        published.append(_published(Table(item, "{}.published[{}]".format(table.path, i), table.file), info))
    weights_file = None
    file_table = table.table("weights_file", None)
    if file_table is not None:
        weights_file = WeightsFile(
            path=file_table.get("path", str),
            sha256=file_table.get("sha256", str, check=lambda v: SHA256.match(v), expected="64 lower-case hex digits"),
        )
        file_table.done()
    table.done()
    return Variant(framework=framework, name=name, preprocess=preprocess[recipe],
                   kwargs=tuple(sorted(kwargs.items())), published=tuple(published), weights_file=weights_file)


def _published(table, info):
    def valid_requirement(value):
        try:
            return canonicalize_name(Requirement(value).name) == info.version_package
        except InvalidRequirement:
            return False

    percent = lambda v: 0 <= v <= 100  # noqa: E731
    entry = Published(
        top1_error=float(table.get("top1_error", float, check=percent, expected="a percentage")),
        top5_error=float(table.get("top5_error", float, check=percent, expected="a percentage")),
        applies_to=table.get("applies_to", str, check=valid_requirement,
                             expected="a version range of {} such as '{}<0.13'".format(info.version_package, info.version_package)),
        source=table.get("source", str, expected="the document the number is published in"),
        revision=table.get("revision", str, expected="the document's revision (tag, commit or version)"),
        weights=table.get("weights", str, expected="which published weights the number is for"),
    )
    table.done()
    return entry
