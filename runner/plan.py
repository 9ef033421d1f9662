"""Expand a Matrix into cells (environment x model x suite) with stable, content-derived ids."""

import hashlib
import json
import os
from dataclasses import dataclass, replace
from typing import Optional

from .errors import UserError
from packaging.version import Version

from .cells import Cell, DatasetRef
from .frameworks import FRAMEWORKS
from .locks import lock_of, locked_matrix
from .matrix import SUITES
from .probe import PROBE_VERSION
from .probe.dataset import DatasetError, open_dataset
from .storage import cache_home


@dataclass(frozen=True)
class Options:
    """What the command line adds to the matrix. None means "the matrix's default"."""

    weights: Optional[str] = None
    seed: Optional[int] = None
    device: Optional[str] = None
    threads: Optional[int] = None
    imagenet: Optional[str] = None
    labels_file: Optional[str] = None
    limit: Optional[int] = None
    weights_cache: Optional[str] = None
    environments: tuple = ()
    models: tuple = ()
    suites: tuple = ()
    engine: tuple = ()  # (key, text) pairs from --engine, over the matrix's [engine]


def cell_id(content):
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def environment_content(env):
    """What determines an environment's installed state (not its name): its row and its lock's packages and
    file hashes (runner/locks.py), so re-making a lock that moved a transitive package re-runs its cells."""
    return {"framework": env.framework, "python": env.python, "packages": sorted(env.packages),
            "index_url": env.index_url, "extra_index_urls": list(env.extra_index_urls),
            "lock_sha256": lock_of(env).sha256}


def plan_cells(matrix, options):
    defaults = matrix.defaults
    device = options.device or defaults.device
    matrix = locked_matrix(matrix, device)  # a missing or stale lock stops here, before anything is built
    seed = defaults.seed if options.seed is None else options.seed
    threads = defaults.threads if options.threads is None else options.threads
    source = options.weights or defaults.weights
    cache = options.weights_cache or defaults.weights_cache
    dataset, no_dataset_reason = _dataset(matrix, options, limit=None)
    drift_dataset = _dataset(matrix, options, limit=matrix.drift.images)[0] if dataset else None
    suites = _select("suite", options.suites, SUITES)
    env_names = _select("environment", options.environments, [e.name for e in matrix.environments])
    model_keys = _select("model", options.models, [m.key for m in matrix.models])
    engine = matrix.engine.replaced(dict(options.engine), "--engine").as_dict()
    common = {"device": device, "threads": threads, "seed": seed, "engine": engine}
    drift_cells = drift_writer_cells(matrix, drift_dataset, no_dataset_reason, common)
    crops = crop_cache_settings(matrix)

    cells = []
    for env in matrix.environments:
        if env.name not in env_names:
            continue
        for key in env.models:
            if key not in model_keys:
                continue
            model = matrix.model(key)
            variant = model.variant(env.framework)
            weights = _weights(source, seed, cache, variant, env, model, matrix.path)
            for suite in suites:
                if suite == "drift":
                    cells.append(drift_cells[(env.name, key)])
                    continue
                params, timeout = _suite_params(matrix, suite, device)
                cell_dataset = dataset if suite == "error" else None
                skip = no_dataset_reason if suite == "error" and dataset is None else None
                content = dict(common, **{
                    "probe_version": PROBE_VERSION,
                    "environment": environment_content(env),
                    "model": {"name": variant.name, "kwargs": dict(variant.kwargs)},
                    "preprocess": variant.preprocess.recipe() if suite == "error" else
                    {"input_shape": [variant.preprocess.crop, variant.preprocess.layout]},
                    "suite": suite, "params": params,
                    # Where weights are read from does not change them; their hash does.
                    "weights": {k: v for k, v in weights.items() if k not in ("cache_dir", "path")},
                    "dataset": None if cell_dataset is None else cell_dataset.manifest_sha256,
                })
                cells.append(Cell(
                    id=cell_id(content), environment=env, model=model, variant=variant, suite=suite,
                    params=params, timeout_s=timeout, weights=weights, device=device, threads=threads,
                    seed=seed, engine=engine, dataset=cell_dataset, skip_reason=skip,
                    crop_cache=crops if suite == "error" else None,
                    prefill=bool(crops) and suite == "error" and matrix.error.for_device(device).prefill,
                ))
    if not cells:
        raise UserError("no cells selected: the filters (--env/--model/--suite) leave nothing to run")
    return cells


MEANT_OFF = ("0ff", "of", "none", "no", "false", "0", "disable", "disabled")  # what people type for "off"


def crop_cache_settings(matrix):
    """{"dir", "limit_bytes"} of the crop cache error cells share, or None: $DLMATRIX_CACHE (relative to the
    current folder, as a shell's paths are), else [suites.error] crop_cache (relative to matrix.toml), else
    ~/.cache/dlmatrix/crops; "off" in either turns it off."""
    variable = os.environ.get("DLMATRIX_CACHE", "").strip()
    chosen = variable or matrix.error.crop_cache or os.path.join(cache_home(), "crops")
    if chosen.strip().lower() == "off":
        return None
    if chosen.strip().lower() in MEANT_OFF:  # else a folder of that name appears in the current folder
        raise UserError("{}: {!r} is not a folder name the crop cache takes; \"off\" turns it off, and a folder of "
                        "that name is written ./{}".format("DLMATRIX_CACHE" if variable else
                                                           "{}: [suites.error] crop_cache".format(matrix.path),
                                                           chosen.strip(), chosen.strip()))
    base = os.getcwd() if variable else os.path.dirname(os.path.abspath(matrix.path))
    folder = os.path.abspath(os.path.join(base, os.path.expanduser(chosen)))
    _check_folder(folder, "DLMATRIX_CACHE={}".format(variable) if variable else
                  "{}: [suites.error] crop_cache = {!r}".format(matrix.path, chosen) if matrix.error.crop_cache else
                  "the default crop cache (DLMATRIX_CACHE or [suites.error] crop_cache choose another)")
    return {"dir": folder, "limit_bytes": matrix.error.crop_cache_limit_bytes}


def _check_folder(folder, named):
    """Refused now, not in every error cell: a path that is a file or lies under one. A folder that is not
    there yet is made by the first cell; one that cannot be written is still read."""
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError("{}: {} cannot be the crop cache's folder, {} is {}; give a folder, or \"off\"".format(
            named, folder, existing, "a link to nothing ({})".format(os.readlink(existing))
            if os.path.islink(existing) and not os.path.exists(existing) else "a file"))


def version_order(matrix, framework):
    """The framework's environments, oldest pinned framework version first."""
    package = FRAMEWORKS[framework].version_package
    envs = [env for env in matrix.environments if env.framework == framework]
    return sorted(envs, key=lambda env: Version(env.pinned_version(package)))


def drift_content(env, variant, params, dataset, common):
    """What determines a drift cell's outputs, before the checkpoint it reads (drift_plan adds that)."""
    return dict(common, **{
        "probe_version": PROBE_VERSION,
        "environment": environment_content(env),
        "model": {"name": variant.name, "kwargs": dict(variant.kwargs)},
        "preprocess": variant.preprocess.recipe(),
        "suite": "drift", "params": params,
        "dataset": None if dataset is None else dataset.manifest_sha256,
    })


def drift_writer_cells(matrix, dataset, no_dataset_reason, common):
    """Each version writes its own seeded checkpoint: its id depends on nothing but its own content,
    so adding, removing or reordering other versions re-runs none of it. The loads of older
    versions' checkpoints are planned once those exist (drift_plan.plan_drift_loads)."""
    matrix = locked_matrix(matrix, common["device"])
    params = {"images": matrix.drift.images, "batch_size": matrix.drift.batch_size}
    weights = {"source": "seeded checkpoint", "seed": common["seed"]}
    cells = {}
    for env in matrix.environments:
        variant_of = {model.key: model.variant(env.framework) for model in matrix.models}
        for key in env.models:
            variant = variant_of[key]
            content = dict(drift_content(env, variant, params, dataset, common), weights=weights)
            cells[(env.name, key)] = Cell(
                id=cell_id(content), environment=env, model=matrix.model(key), variant=variant, suite="drift",
                params=params, timeout_s=matrix.drift.timeout_s, weights=weights, dataset=dataset,
                skip_reason=no_dataset_reason if dataset is None else None, **common)
    return cells


def resolve_auto_weights(matrix, options, say, timeout_s=5.0):
    """Options with weights=auto replaced: pretrained where every weights host answers, else random, said out loud."""
    import socket

    if (options.weights or matrix.defaults.weights) != "auto":
        return options
    # Only the rows this run selects: a torch-only run needs no answer from MXNet's host.
    chosen = set(options.environments) or {env.name for env in matrix.environments}
    hosts = sorted({FRAMEWORKS[env.framework].weights_host for env in matrix.environments if env.name in chosen})
    for host in hosts:
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
        except OSError as exc:
            say("weights: random, because {} is unreachable ({}); the reproduced errors will be those of "
                "untrained networks. Pass --weights pretrained (make: WEIGHTS=pretrained) to insist.".format(host, exc))
            return replace(options, weights="random")
    say("weights: pretrained ({} reachable)".format(", ".join(hosts)))
    return replace(options, weights="pretrained")


def _select(what, chosen, valid):
    for name in chosen:
        if name not in valid:
            raise UserError("unknown {} {!r}; valid: {}".format(what, name, ", ".join(valid)))
    return tuple(chosen) or tuple(valid)


def _suite_params(matrix, suite, device):
    if suite == "error":
        e = matrix.error.for_device(device)  # a GPU cell: [suites.error.cuda] over the suite's keys
        params = {"batch_size": e.batch_size, "workers": e.workers, "prefetch": e.prefetch}
        if e.convert_on != "device":  # the default stays out, so earlier cells keep their ids
            params["convert_on"] = e.convert_on
        return params, e.timeout_s
    t = matrix.throughput.for_device(device)  # a GPU cell: [suites.throughput.cuda] over the suite's keys
    return {"batch_sizes": list(t.batch_sizes), "warmup": t.warmup, "iterations": t.iterations,
            "trials": t.trials, "min_window_s": t.min_window_s}, t.timeout_s


def _weights(source, seed, cache, variant, env, model, matrix_path):
    if source == "auto":
        raise ValueError("weights 'auto' must be resolved (resolve_auto_weights) before planning")
    if source == "random":
        return {"source": "random", "seed": seed}
    if source == "pretrained":
        return {"source": "pretrained", "cache_dir": os.path.abspath(cache) if cache else None}
    if variant.weights_file is None:
        raise UserError("--weights file: models.{}.{}.weights_file is not set in the matrix (environment {}); "
                        "add weights_file = {{ path = ..., sha256 = ... }}".format(model.key, env.framework, env.name))
    # Relative paths are relative to matrix.toml, so the file reads the same from any directory.
    path = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(matrix_path)), variant.weights_file.path))
    if not os.path.isfile(path):
        raise UserError("{}: models.{}.{}.weights_file.path: {} is {} (--weights file, environment {})".format(
            matrix_path, model.key, env.framework, path, "a folder, expected a file" if os.path.isdir(path) else
            "not there", env.name))
    return {"source": "file", "path": path, "sha256": variant.weights_file.sha256}


def _dataset(matrix, options, limit):
    """The val set for the error suite (limit None: the matrix's or --limit), or a fixed first-N subset."""
    if not options.imagenet:
        return None, "no ImageNet val set given (pass --imagenet DIR, or make matrix IMAGENET=DIR)"
    if limit is None:
        limit = matrix.error.limit if options.limit is None else options.limit
    try:
        data = open_dataset(options.imagenet, options.labels_file, limit)
    except DatasetError as exc:
        raise UserError("--imagenet {} (make IMAGENET=): {}".format(options.imagenet, exc)) from None
    return DatasetRef(root=os.path.abspath(data.root), labels_file=data.labels_file, limit=limit,
                      manifest_sha256=data.manifest_sha256(), images=len(data.items)), None
