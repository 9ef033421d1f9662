"""matrix.toml -> frozen, validated objects (schema.py). The only place the file is read.

Every problem is a UserError naming the file, the key path and what was expected, raised
before anything is built or run. Models and environments, the long tables, are read in
load_models.py and load_environments.py.
"""

import math
import re
import tomllib
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from .engine import engine_values
from .load_bisect import read_bisect
from .load_environments import pinned_image, read_environments
from .load_models import read_models, read_preprocess
from .schema import (FDR_METHODS, SCHEMA, WEIGHT_SOURCES, CompareSettings, Defaults, DockerSettings, DriftSuite, Engine,
                     ErrorSuite, Matrix, SlurmSettings, ThroughputSuite)
from .schema_hosts import sbatch_arg_problem
from .table import Table, is_kind, positive, string_list


def load_matrix(path):
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError("{}: file not found; pass --matrix PATH or run from the project root".format(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError("{}: not valid TOML: {}".format(path, exc)) from None
    top = Table(raw, "", str(path))
    top.get("schema", int, check=lambda v: v == SCHEMA, expected="{} (this runner's matrix schema)".format(SCHEMA))
    defaults = _defaults(top.table("defaults"))
    suites = top.table("suites")
    error = _error_suite(suites.table("error"))
    throughput = _throughput_suite(suites.table("throughput"))
    drift = _drift_suite(suites.table("drift"))
    suites.done()
    preprocess = read_preprocess(top.table("preprocess"))
    models = read_models(top.table("models"), preprocess)
    environments = read_environments(top.table("environments"), models)
    docker = _docker(top.table("docker", None), defaults.memory_limit)
    engine = _engine(top.table("engine", {}))
    compare = _compare(top.table("compare", {}))
    bisect = read_bisect(top.table("bisect", {}), environments)
    slurm = _slurm(top.table("slurm", {}))
    top.done()
    return Matrix(path=path, defaults=defaults, docker=docker, error=error, throughput=throughput, drift=drift,
                  engine=engine, environments=environments, models=models, compare=compare, slurm=slurm, bisect=bisect)


def _defaults(table):
    defaults = Defaults(
        weights=table.get("weights", str, "pretrained", check=lambda v: v in WEIGHT_SOURCES,
                          expected="one of " + ", ".join(WEIGHT_SOURCES)),
        seed=table.get("seed", int, 0),
        device=table.get("device", str, "cpu", check=lambda v: re.fullmatch(r"cpu|cuda(:\d+)?", v),
                         expected="'cpu' or 'cuda' / 'cuda:N'"),
        threads=table.get("threads", int, 0, check=lambda v: v >= 0, expected="0 (framework default) or more"),
        weights_cache=table.get("weights_cache", str, None),
        memory_limit=_size(table, "memory_limit", "16g"),
    )
    table.done()
    return defaults


def _docker(table, memory_limit):
    if table is None:
        return DockerSettings(cpu_base=None, memory_limit=memory_limit, user="1000:1000")
    if "memory_limit" in table.data:
        table.fail("memory_limit", "moved to [defaults] memory_limit (it limits every cell, venv and local too)")
    settings = DockerSettings(
        cpu_base=table.get("cpu_base", str, None, check=pinned_image, expected="an image pinned by tag (name:tag)"),
        memory_limit=memory_limit,
        user=table.get("user", str, "1000:1000", check=lambda v: re.fullmatch(r"[1-9]\d*:\d+", v),
                       expected="a non-root uid:gid such as '1000:1000'"),
    )
    table.done()
    return settings


def _engine(table):
    return Engine(**engine_values(table))


def _compare(table):
    """[compare], every key optional: CompareSettings' defaults are the ones documented in matrix.toml."""
    defaults = CompareSettings()

    def number(key, check, expected):
        # Finite only: TOML allows inf and nan, and neither is a threshold a verdict can be judged by.
        return float(table.get(key, float, getattr(defaults, key), check=lambda v: math.isfinite(v) and check(v),
                               expected=expected))

    positive_points = "a positive number of top-1 points"
    factor = "a factor of 1 or more (a ratio inside [1/f, f] is no change)"
    settings = CompareSettings(
        alpha=number("alpha", lambda v: 0 < v < 1, "a number between 0 and 1 (both excluded)"),
        fdr=table.get("fdr", str, defaults.fdr, check=lambda v: v in FDR_METHODS,
                      expected="\"bh\" (Benjamini-Hochberg) or \"holm\""),
        error_margin_points=number("error_margin_points", lambda v: v > 0, positive_points),
        resolve_points=number("resolve_points", lambda v: v > 0, positive_points),
        throughput_factor_cpu=number("throughput_factor_cpu", lambda v: v >= 1, factor),
        throughput_factor_gpu=number("throughput_factor_gpu", lambda v: v >= 1, factor),
        cold_start_factor=number("cold_start_factor", lambda v: v >= 1, factor),
        drift_rtol=number("drift_rtol", lambda v: v >= 0, "0 or a positive number (relative to max |reference output|)"),
        busy_share=number("busy_share", lambda v: 0 < v <= 1, "a share of the machine above 0 and at most 1"),
    )
    table.done()
    return settings


def _slurm(table):
    """[slurm], every key optional (SlurmSettings' defaults): read by `run --executor slurm` only."""
    defaults = SlurmSettings()
    name = dict(check=lambda v: v.strip() and not any(c.isspace() for c in v), expected="a name without spaces")
    args = string_list(table, "sbatch_args", ())
    for i, arg in enumerate(args):
        if sbatch_arg_problem(arg):
            table.fail("sbatch_args[{}]".format(i), "{!r}: {}".format(arg, sbatch_arg_problem(arg)))
    settings = SlurmSettings(
        partition=table.get("partition", str, None, **name), account=table.get("account", str, None, **name),
        qos=table.get("qos", str, None, **name), sbatch_args=args,
        cpus_per_task=positive(table, "cpus_per_task", defaults.cpus_per_task),
        time_margin_s=table.get("time_margin_s", int, defaults.time_margin_s, check=lambda v: v >= 0,
                                expected="0 or more seconds"),
        poll_s=positive(table, "poll_s", defaults.poll_s),
        max_running=table.get("max_running", int, defaults.max_running, check=lambda v: v >= 0,
                              expected="0 (as many as Slurm gives) or more"),
    )
    table.done()
    return settings


def _size(table, key, default):
    return table.get(key, str, default, check=lambda v: re.fullmatch(r"[1-9]\d*[bkmgBKMG]?", v),
                     expected="a size above 0, as a string in Docker's notation: bytes, or with b, k, m or g (binary "
                              "units), e.g. \"{}\" or \"512m\"".format(default))


def _error_suite(table):
    """[suites.error], and its optional [suites.error.cuda] whose pipeline keys replace the suite's for GPU cells."""
    cuda = table.table("cuda", None)
    suite = ErrorSuite(
        batch_size=positive(table, "batch_size"),
        limit=table.get("limit", int, 0, check=lambda v: v >= 0, expected="0 (all images) or a positive integer"),
        timeout_s=positive(table, "timeout_s"),
        workers=_workers(table, 4),
        prefetch=_prefetch(table, 2),
        convert_on=table.get("convert_on", str, "device", check=lambda v: v in ("device", "host"),
                             expected="\"device\" or \"host\""),
        # stripped as DLMATRIX_CACHE is: a space typed after the path is not meant to name a folder
        crop_cache=(table.get("crop_cache", str, None, check=lambda v: v.strip() != "",
                              expected="a folder for the decoded crops, or \"off\"") or "").strip() or None,
        crop_cache_limit=_size(table, "crop_cache_limit", "50g"),
        prefill=table.get("prefill", bool, False),
    )
    table.done()
    if cuda is not None:
        suite = replace(suite, cuda=replace(
            suite, batch_size=positive(cuda, "batch_size", suite.batch_size), workers=_workers(cuda, suite.workers),
            prefetch=_prefetch(cuda, suite.prefetch), prefill=cuda.get("prefill", bool, suite.prefill),
            timeout_s=positive(cuda, "timeout_s", suite.timeout_s)))
        cuda.done()
    return suite


def _workers(table, default):
    return table.get("workers", int, default, check=lambda v: v >= 0,
                     expected="0 (as many as the cell's cores allow) or more")


def _prefetch(table, default):
    return table.get("prefetch", int, default, check=lambda v: v >= 0, expected="0 or more batches")


def _throughput_suite(table):
    """[suites.throughput], and its optional [suites.throughput.cuda] whose keys replace the suite's for GPU cells."""
    cuda = table.table("cuda", None)
    suite = _throughput_settings(table, None)
    table.done()
    if cuda is not None:
        suite = replace(suite, cuda=_throughput_settings(cuda, suite))
        cuda.done()
    return suite


def _throughput_settings(table, base):
    """One throughput table: every key required but trials and min_window_s, or (base given) every key optional,
    base's value where absent."""
    def given(key, fallback=...):
        return getattr(base, key) if base is not None else fallback

    sizes = table.get("batch_sizes", list, given("batch_sizes"), expected="a non-empty array of positive integers",
                      check=lambda v: v and all(is_kind(b, int) and b > 0 for b in v))
    if len(set(sizes)) != len(sizes):
        table.fail("batch_sizes", "duplicate batch size in {!r}".format(list(sizes)))
    return ThroughputSuite(
        batch_sizes=tuple(sizes),
        warmup=table.get("warmup", int, given("warmup"), check=lambda v: v >= 0, expected="0 or more"),
        iterations=positive(table, "iterations", given("iterations")),
        trials=positive(table, "trials", given("trials", 1)),
        timeout_s=positive(table, "timeout_s", given("timeout_s")),
        min_window_s=float(table.get("min_window_s", float, given("min_window_s", 0.0),
                                     check=lambda v: math.isfinite(v) and 0 <= v <= 600,
                                     expected="seconds from 0 (iterations alone bound a trial) to 600")),
    )


def _drift_suite(table):
    suite = DriftSuite(images=positive(table, "images"), batch_size=positive(table, "batch_size"),
                       timeout_s=positive(table, "timeout_s"))
    table.done()
    return suite
