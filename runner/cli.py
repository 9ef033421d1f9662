"""python -m runner {plan,run,status,compare,bisect,explain,report,lock,env,docker-base,wheelhouse,requirements,cell,prune,crops}: the command line.

UserError is caught here, once.
"""

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .cli_checks import check_args
from .errors import UserError
from .matrix import load_matrix
from .prefill import planned as planned_prefills
from .progress import counted, plan_table, say as _say
from .plan import Options, plan_cells, resolve_auto_weights
from .gpu_check import check_gpu
from .pipeline import RunSettings, run_matrix
from .report import report_files
from .cli_slurm import add_run_flags, add_slurm_parsers, cmd_cell, cmd_status, slurm_overrides
from .cli_judge import add_judge_parsers, cmd_bisect, cmd_compare, open_run
from .explain.cli import add_explain_parser, cmd_explain
from .crops import add_crops_parser, cmd_crops
from .cli_tools import (add_tool_parsers, cmd_docker_base, cmd_env, cmd_lock, cmd_prune, cmd_requirements,
                        cmd_wheelhouse)



def _common(parser):
    parser.add_argument("--matrix", default="matrix.toml", help="the matrix file (default: ./matrix.toml)")


def _selection(parser):
    parser.add_argument("--env", action="append", default=[], dest="environments", help="only this environment (repeatable)")
    parser.add_argument("--model", action="append", default=[], dest="models", help="only this model (repeatable)")
    parser.add_argument("--suite", action="append", default=[], dest="suites", choices=["error", "throughput", "drift"],
                        help="only this suite (repeatable)")
    parser.add_argument("--weights", choices=["pretrained", "random", "file", "auto"],
                        help="weights source (matrix default); auto = pretrained if the download host answers, else random")
    parser.add_argument("--seed", type=int, help="seed for random weights and synthetic input")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (matrix default)")
    parser.add_argument("--threads", type=int, help="intra-op threads on CPU (0 = framework default)")
    parser.add_argument("--imagenet", help="ImageNet val folder; without it the error suite is skipped")
    parser.add_argument("--labels", dest="labels_file", help="labels file for a flat val folder")
    parser.add_argument("--limit", type=int, help="evaluate a deterministic subset of N images")
    parser.add_argument("--weights-cache", help="where frameworks cache downloaded weights")
    parser.add_argument("--engine", action="append", default=[], metavar="KEY=VALUE",
                        help="override a matrix [engine] setting, e.g. precision=fp16, cudnn_autotune=true (repeatable)")


def build_parser():
    parser = argparse.ArgumentParser(prog="dlmatrix", description=(
        "Reproduce published ImageNet errors and throughput across deep-learning framework versions "
        "(also `python -m runner`)."))
    parser.add_argument("--version", action=VersionAction, nargs=0,
                        help="print the tool's version and the schemas it reads and writes, then exit")
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="print the cells the matrix expands to, with their ids")
    _common(plan)
    _selection(plan)
    plan.add_argument("--format", choices=["text", "json"], default="text")
    plan.add_argument("--backend", default="venv", help="the backend the GPU check assumes (default: venv)")

    run = sub.add_parser("run", help="run the cells (skipping those with results) and write the report")
    _common(run)
    _selection(run)
    run.add_argument("--backend", default="venv", help="venv, docker or local (default: venv)")
    run.add_argument("--run", dest="run_name", help="results/<run>/ (default: <backend>-<device>)")
    run.add_argument("--results-dir", default="results")
    run.add_argument("--reports-dir", default="reports")
    run.add_argument("--env-dir", help="where the venv backend keeps environments (default: $DLMATRIX_ENV_DIR, else "
                                       "~/.cache/dlmatrix/envs)")
    run.add_argument("--gpus", help="GPUs given to the matrix, e.g. 0,1,2,3 (with --device cuda): that many cells "
                                    "at once, each on its own GPU")
    run.add_argument("--jobs", type=int, default=1, help="CPU cells at once (default 1; they share the CPU, so "
                                                         "throughput is best measured with 1)")
    run.add_argument("--show-plan", action="store_true", help="print the plan (as `plan` does) before running it")
    run.add_argument("--force", action="store_true", help="re-run cells that already have results")
    run.add_argument("--retry-failed", action="store_true", help="re-run cells whose result is failed, timeout or "
                                                                  "out_of_memory")
    run.add_argument("--ignore-pins", action="store_true",
                     help="local backend: run even if the interpreter's packages differ from the pins (recorded)")
    run.add_argument("--explain", action="store_true",
                     help="then, for each error cell whose error differs from the published number, sweep its "
                          "preprocessing as `explain` does (venv or local backend); the answers go into the report")
    add_run_flags(run)
    docker = run.add_argument_group("docker backend")
    docker.add_argument("--base-image", help="build every image on this base (pinned by tag), instead of [docker] "
                                             "cpu_base / the rows' cuda_image; e.g. one loaded with `docker load`")
    docker.add_argument("--ca-bundle", help="CA bundle for pip during builds and for downloads inside cells (TLS-"
                                            "intercepting proxies); default: $PIP_CERT when set")
    docker.add_argument("--wheelhouse", help="build with pip reading only this folder of wheels (fill it with "
                                             "`dlmatrix wheelhouse DIR` on a connected machine)")
    docker.add_argument("--python-dist", help="folder of relocatable CPython builds (python-build-standalone "
                                              "install_only tarballs) for the images; default: the host's own")
    docker.add_argument("--build-dir", help="image build logs and records (default: ~/.cache/dlmatrix/docker)")

    add_slurm_parsers(sub)
    add_tool_parsers(sub, _common)
    add_judge_parsers(sub, _common)
    add_explain_parser(sub, _common)
    add_crops_parser(sub, _common)

    report = sub.add_parser("report", help="write reports/<run>/report.{html,md,csv,json} from results/<run>/")
    _common(report)
    report.add_argument("--run", dest="run_name", required=True, help="the run to report (a folder in results/)")
    report.add_argument("--results-dir", default="results")
    report.add_argument("--reports-dir", default="reports")
    return parser


def _options(args):
    return Options(
        weights=args.weights, seed=args.seed, device=args.device, threads=args.threads, imagenet=args.imagenet,
        labels_file=args.labels_file, limit=args.limit, weights_cache=args.weights_cache,
        environments=tuple(args.environments), models=tuple(args.models), suites=tuple(args.suites),
        engine=tuple(_key_value(item, "--engine") for item in args.engine))


def _key_value(text, flag):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError("{} {!r}: expected KEY=VALUE, e.g. {} precision=fp16".format(flag, text, flag))
    return key.strip(), value.strip()


def cmd_plan(args, out):
    matrix = load_matrix(args.matrix)
    options = resolve_auto_weights(matrix, _options(args), _say)
    from .backends import BACKENDS

    if args.backend not in BACKENDS:
        raise UserError("--backend {!r}: expected one of {}".format(args.backend, ", ".join(sorted(BACKENDS))))
    cells = check_gpu(plan_cells(matrix, options), args.backend, _say)
    if args.format == "json":
        out.write(json.dumps([cell.as_dict() for cell in cells], indent=2) + "\n")
        return 0
    prefills = planned_prefills(cells)
    out.write("".join(line + "\n" for line in plan_table(cells, prefills)))
    if prefills:  # plan knows no executor: say where they happen rather than promise them
        out.write("the crop cache prefills above run where cells run one at a time (`run` without --gpus or --jobs, "
                  "the local executor); `run --show-plan` shows those a run will make\n")
    return 0


def cmd_run(args, out):
    options = _options(args)
    docker = _docker_options(args) if args.backend == "docker" else None
    settings = RunSettings(
        matrix_path=Path(args.matrix), backend=args.backend, run_name=args.run_name,
        results_dir=Path(args.results_dir), reports_dir=Path(args.reports_dir), force=args.force,
        retry_failed=args.retry_failed, env_dir=args.env_dir, ignore_pins=args.ignore_pins, docker=docker,
        gpus=_gpus(args.gpus), jobs=args.jobs, executor=args.executor, no_wait=args.no_wait,
        slurm=slurm_overrides(args), show_plan=args.show_plan, explain=args.explain)
    summary = run_matrix(settings, options, sys.stderr)
    if summary.submitted:
        out.write("{} cells: {} left running in Slurm, the other {} have results; `dlmatrix status --run {}` "
                  "shows them, and the same command again, once they have ended, collects them and writes the "
                  "report\n".format(summary.total, summary.submitted, summary.reused, summary.report_dir.name))
        return 0
    out.write("{}: {} run now, {} reused; {}; report: {}\n".format(
        counted(summary.total, "cell"), summary.ran, summary.reused,
        ", ".join("{} {}".format(v, k) for k, v in sorted(summary.counts.items())), report_files(summary.report_dir)))
    return 1 if summary.failed else 0


def _gpus(text):
    if not text:
        return ()
    gpus = tuple(part.strip() for part in text.split(","))
    if not all(part.isdigit() for part in gpus) or len(set(gpus)) != len(gpus):
        raise UserError("--gpus {}: expected distinct GPU indices separated by commas, e.g. 0,1,2,3".format(text))
    return gpus


def _docker_options(args):
    ca_bundle = args.ca_bundle
    if ca_bundle is None and os.environ.get("PIP_CERT"):
        ca_bundle = os.environ["PIP_CERT"]
        sys.stderr.write("docker: CA bundle {} (from PIP_CERT; --ca-bundle to choose another)\n".format(ca_bundle))
    for flag, path, want in (("--ca-bundle", ca_bundle, os.path.isfile), ("--wheelhouse", args.wheelhouse, os.path.isdir),
                             ("--python-dist", args.python_dist, os.path.isdir)):
        if path and not want(path):
            raise UserError("{} {}: no such {}".format(flag, path, "file" if want is os.path.isfile else "folder"))
    return {"base_image": args.base_image, "ca_bundle": ca_bundle and os.path.abspath(ca_bundle),
            "wheelhouse": args.wheelhouse and os.path.abspath(args.wheelhouse),
            "python_dist": args.python_dist and os.path.abspath(args.python_dist), "build_dir": args.build_dir}


def cmd_report(args, out):
    from .report import write_report
    from .verdicts.drift import compare_versions
    from .verdicts.judge import judge
    from .explain.gaps import explanations

    store = open_run(args.results_dir, args.run_name)
    matrix = load_matrix(args.matrix)
    results, problems = store.load_all()
    drift = compare_versions(store, results)
    judgement = judge(matrix, store, results, drift=drift)
    report_dir = write_report(matrix, results, problems, drift, Path(args.reports_dir) / args.run_name, args.run_name,
                              judgement, store.root, explanations(judgement, results, args.reports_dir))
    out.write("report: {}\n".format(report_files(report_dir)))
    return 0


COMMANDS = {"plan": cmd_plan, "run": cmd_run, "status": cmd_status, "cell": cmd_cell, "report": cmd_report, "compare": cmd_compare, "bisect": cmd_bisect, "explain": cmd_explain, "requirements": cmd_requirements,
            "env": cmd_env, "docker-base": cmd_docker_base, "wheelhouse": cmd_wheelhouse, "lock": cmd_lock,
            "prune": cmd_prune, "crops": cmd_crops}


class VersionAction(argparse.Action):
    """argparse's own version action wraps the line to the terminal's width; this one prints it whole."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()


def version_line():
    from importlib.metadata import PackageNotFoundError, version

    from .matrix import SCHEMA
    from .probe import PROBE_VERSION, RESULT_SCHEMA_VERSION

    try:
        installed = version("dlmatrix")
    except PackageNotFoundError:
        installed = "(not installed: `make setup` installs it)"
    return "dlmatrix {}: reads matrix.toml schema {}, writes results schema {} (probe {})".format(
        installed, SCHEMA, RESULT_SCHEMA_VERSION, PROBE_VERSION)


def entry():
    """The `dlmatrix` command (pyproject.toml [project.scripts])."""
    sys.exit(main())


def _terminate(signum, frame):
    raise KeyboardInterrupt  # `kill` or a CI timeout: the same clean-up as Ctrl-C (containers, child processes)


def main(argv=None, out=None):
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        check_args(args)
        code = COMMANDS[args.command](args, out)
        out.flush()  # here, where a reader that left is caught below, not in the interpreter's flush at exit
        return code
    except UserError as exc:
        sys.stderr.write("error: {}\n".format(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; results written so far are kept\n")
        return 130
    except BrokenPipeError:
        # The reader left (`dlmatrix crops | head -1`): nothing to say, and the interpreter's own flush of
        # stdout at exit must not fail again; 141 as a shell reports a command that SIGPIPE ended.
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
