"""[environments.*]: each row's Python and exact pins, its GPU build, and the models it runs."""

import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..frameworks import FRAMEWORKS
from .schema import NAME, PROBE_NEEDS, PYTHON, Environment, GpuBuild
from .table import string_list

CUDA_VERSION = re.compile(r"^\d+\.\d+\Z")
ARCH = {"sass": re.compile(r"^sm_\d+[a-z]?\Z"), "ptx": re.compile(r"^compute_\d+[a-z]?\Z")}


def read_environments(table, models):
    environments = []
    model_keys = [m.key for m in models]
    for name in table.keys():
        entry = table.table(name)
        if entry.keys() and all(isinstance(v, dict) for v in entry.data.values()):
            table.fail(name, "expected an environment table, got only sub-tables ({}); a dot in an unquoted "
                       "name splits it: write [environments.\"{}.{}\"]".format(
                           ", ".join(entry.keys()), name, entry.keys()[0]))
        if not NAME.match(name):
            table.fail(name, "environment names are lower-case letters, digits, '.', '_' and '-'")
        framework = entry.get("framework", str, check=lambda v: v in FRAMEWORKS,
                              expected="one of " + ", ".join(sorted(FRAMEWORKS)))
        python = entry.get("python", str, check=lambda v: PYTHON.match(v), expected="a Python version such as '3.7'")
        packages = string_list(entry, "packages")
        pins = check_pins(entry, packages)
        for needed in FRAMEWORKS[framework].packages + PROBE_NEEDS:
            if needed not in pins:
                entry.fail("packages", "no pin for {!r}; every environment pins its framework packages ({}) and "
                           "what the probe needs ({}), e.g. '{}==X.Y.Z'".format(
                               needed, ", ".join(FRAMEWORKS[framework].packages), ", ".join(PROBE_NEEDS), needed))
        chosen = string_list(entry, "models", tuple(
            k for k in model_keys if next(m for m in models if m.key == k).variant(framework)))
        for i, key in enumerate(chosen):
            model = next((m for m in models if m.key == key), None)
            if model is None:
                entry.fail("models[{}]".format(i), "unknown model {!r}; known: {}".format(key, ", ".join(model_keys)))
            if model.variant(framework) is None:
                entry.fail("models[{}]".format(i), "model {!r} has no [models.{}.{}] table".format(key, key, framework))
        if len(set(chosen)) != len(chosen):
            entry.fail("models", "a model is listed twice")
        environments.append(Environment(
            name=name, framework=framework, python=python, packages=packages,
            index_url=entry.get("index_url", str, None),
            extra_index_urls=string_list(entry, "extra_index_urls", ()),
            cuda_image=entry.get("cuda_image", str, None, check=pinned_image,
                                 expected="an image pinned by tag (name:tag, not latest)"),
            models=chosen,
            gpu=read_gpu_build(entry, pins),
        ))
        entry.done()
    if not environments:
        table.fail("", "no environments; expected at least one [environments.NAME] table")
    return tuple(environments)


def check_pins(table, packages, key=None):
    pins = {}
    named = key
    for i, line in enumerate(packages):
        key = named or "packages[{}]".format(i)
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            table.fail(key, "not a requirement pip can parse ({}): {!r}".format(exc, line))
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            table.fail(key, "expected an exact pin 'name==version' (results must be reproducible), got {!r}".format(line))
        try:
            Version(specs[0].version)
        except InvalidVersion:
            table.fail(key, "version {!r} is not one pip can parse".format(specs[0].version))
        name = canonicalize_name(requirement.name)
        if name in pins:
            table.fail(key, "{!r} is pinned twice".format(requirement.name))
        pins[name] = specs[0].version
    return pins


def pinned_image(ref):
    """name:tag or name@sha256:...; a bare name would be whatever 'latest' is today."""
    name = ref.rsplit("/", 1)[-1]
    return "@sha256:" in ref or (":" in name and not name.endswith(":latest"))


def read_gpu_build(entry, pins):
    """[environments.NAME.cuda]: the row's GPU build, or None where it names none (a CPU-only row)."""
    table = entry.table("cuda", None)
    if table is None:
        return None
    swap = table.get("swap", dict, {}, expected="a table of CPU package = \"its CUDA build's exact pin\"")
    pairs = []
    for name, pin in swap.items():
        if canonicalize_name(name) not in pins:
            table.fail("swap." + name, "the row pins no {!r}; swap replaces one of its pins ({})".format(
                name, ", ".join(sorted(pins))))
        if not isinstance(pin, str):
            table.fail("swap." + name, "expected an exact pin such as 'tensorflow-gpu==1.13.1', got {!r}".format(pin))
        check_pins(table, (pin,), key="swap." + name)
        pairs.append((name, pin))
    arches = {}
    for kind, pattern in ARCH.items():
        arches[kind] = string_list(table, kind, (), check=pattern.match,
                                   expected="an array of architectures such as '{}'".format(
                                       "sm_70" if kind == "sass" else "compute_70"))
    build = GpuBuild(
        swap=tuple(pairs),
        cuda=table.get("cuda", str, check=CUDA_VERSION.match, expected="the CUDA runtime version, such as '10.0'"),
        cudnn=table.get("cudnn", str, None, check=re.compile(r"^\d+(\.\d+)?\Z").match, expected="a cuDNN version such as '7.4' or '9'"),
        sass=arches["sass"], ptx=arches["ptx"],
        system_libs=string_list(table, "system_libs", (), check=lambda v: ".so" in v,
                                expected="an array of shared library names such as 'libcudart.so.10.0'"),
        source=table.get("source", str, check=lambda v: v.strip() != "",
                         expected="where the wheel name, CUDA/cuDNN pair and architectures come from"),
    )
    table.done()
    return build
