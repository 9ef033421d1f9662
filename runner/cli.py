"""python -m runner {plan,run,compare,report,env,docker-base,wheelhouse,requirements}: the command line.

UserError is caught here, once.
"""

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .errors import UserError
from .matrix import load_matrix
from .plan import Options, plan_cells, resolve_auto_weights
from .pipeline import RunSettings, run_matrix


def _say(line):
    """Progress and notes go to stderr; stdout carries only each command's answer."""
    sys.stderr.write(line + "\n")


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
    parser = argparse.ArgumentParser(prog="python -m runner", description=(
        "Reproduce published ImageNet errors and throughput across deep-learning framework versions."))
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="print the cells the matrix expands to, with their ids")
    _common(plan)
    _selection(plan)
    plan.add_argument("--format", choices=["text", "json"], default="text")

    run = sub.add_parser("run", help="run the cells (skipping those with results) and write the report")
    _common(run)
    _selection(run)
    run.add_argument("--backend", default="venv", help="venv, docker or local (default: venv)")
    run.add_argument("--run", dest="run_name", help="results/<run>/ (default: <backend>-<device>)")
    run.add_argument("--results-dir", default="results")
    run.add_argument("--reports-dir", default="reports")
    run.add_argument("--env-dir", help="where the venv backend keeps environments (default: ~/.cache/dlmatrix/envs)")
    run.add_argument("--gpus", help="GPUs given to the matrix, e.g. 0,1,2,3 (with --device cuda): that many cells "
                                    "at once, each on its own GPU")
    run.add_argument("--jobs", type=int, default=1, help="CPU cells at once (default 1; they share the CPU, so "
                                                         "throughput is best measured with 1)")
    run.add_argument("--force", action="store_true", help="re-run cells that already have results")
    run.add_argument("--retry-failed", action="store_true", help="re-run cells whose result is 'failed'")
    run.add_argument("--ignore-pins", action="store_true",
                     help="local backend: run even if the interpreter's packages differ from the pins (recorded)")
    docker = run.add_argument_group("docker backend")
    docker.add_argument("--base-image", help="build every image on this base (pinned by tag), instead of [docker] "
                                             "cpu_base / the rows' cuda_image; e.g. one loaded with `docker load`")
    docker.add_argument("--ca-bundle", help="CA bundle for pip during builds and for downloads inside cells (TLS-"
                                            "intercepting proxies); default: $PIP_CERT when set")
    docker.add_argument("--wheelhouse", help="build with pip reading only this folder of wheels (fill it with "
                                             "`python -m runner wheelhouse DIR` on a connected machine)")
    docker.add_argument("--python-dist", help="folder of relocatable CPython builds (python-build-standalone "
                                              "install_only tarballs) for the images; default: the host's own")
    docker.add_argument("--build-dir", help="image build logs and records (default: ~/.cache/dlmatrix/docker)")

    reqs = sub.add_parser("requirements", help="write each environment's pins as a pip requirements file "
                                               "(to rebuild a row by hand: pip install -r)")
    _common(reqs)
    reqs.add_argument("--out", default=".pins", help="folder for <environment>.txt (default: .pins)")

    env = sub.add_parser("env", help="build (or reuse) one environment with the venv backend and print its "
                                     "interpreter's path")
    _common(env)
    env.add_argument("name", help="an environment of the matrix")
    env.add_argument("--env-dir", help="where the venv backend keeps environments (default: ~/.cache/dlmatrix/envs)")
    env.add_argument("--overlay", metavar="PYTHON",
                     help="also let interpreter PYTHON (same minor version; e.g. a tox env with pytest) import the "
                          "environment's packages, ahead of its own")

    base = sub.add_parser("docker-base", help="build the CPU base image without any registry: debootstrap a "
                                              "minimal Debian and `docker import` it under [docker] cpu_base")
    _common(base)
    base.add_argument("--suite", default="bookworm", help="Debian release (default: bookworm)")
    base.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror")
    base.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    base.add_argument("--from-tarball", metavar="FILE", help="no debootstrap: `docker load` FILE (from `docker save` "
                                                             "on another host) and tag it as [docker] cpu_base")

    house = sub.add_parser("wheelhouse", help="download every wheel the matrix's environments install into DIR "
                                              "(on a connected machine), for air-gapped docker builds")
    _common(house)
    house.add_argument("out", help="the wheelhouse folder")
    house.add_argument("--env", action="append", default=[], dest="environments", help="only this environment")

    compare = sub.add_parser("compare", help="judge every pair of versions in a run (or a run against a baseline) "
                                             "and print the findings: regressions, changes, non-reproductions")
    _common(compare)
    compare.add_argument("--run", dest="run_name", required=True, help="the run to judge (a folder in results/)")
    compare.add_argument("--baseline", help="another run: judge each position against the same one there "
                                            "(an A/A check when both hold the same cells)")
    compare.add_argument("--results-dir", default="results")
    compare.add_argument("--format", choices=["text", "json"], default="text")
    compare.add_argument("--all", action="store_true", help="print every verdict, not only the findings")
    compare.add_argument("--fail-on", choices=["regression", "differs", "any"],
                         help="exit 1 when a regression (worse, slower, predictions changed, cannot load), a "
                              "published number that differs, or any finding is present")

    report = sub.add_parser("report", help="write reports/<run>/report.{md,csv,json} from results/<run>/")
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
    cells = plan_cells(matrix, options)
    if args.format == "json":
        out.write(json.dumps([cell.as_dict() for cell in cells], indent=2) + "\n")
        return 0
    for cell in cells:
        note = "  (skipped: {})".format(cell.skip_reason) if cell.skip_reason else ""
        out.write("{}  {:<16} {:<14} {:<10} {}{}\n".format(
            cell.id, cell.environment.name, cell.model.key, cell.suite, cell.device, note))
    out.write("{} cells\n".format(len(cells)))
    return 0


def cmd_run(args, out):
    options = _options(args)
    docker = _docker_options(args) if args.backend == "docker" else None
    if args.jobs < 1:
        raise UserError("--jobs {}: expected 1 or more".format(args.jobs))
    settings = RunSettings(
        matrix_path=Path(args.matrix), backend=args.backend, run_name=args.run_name,
        results_dir=Path(args.results_dir), reports_dir=Path(args.reports_dir), force=args.force,
        retry_failed=args.retry_failed, env_dir=args.env_dir, ignore_pins=args.ignore_pins, docker=docker,
        gpus=_gpus(args.gpus), jobs=args.jobs)
    summary = run_matrix(settings, options, sys.stderr)
    out.write("{} cells: {} run now, {} reused; {}; report: {}\n".format(
        summary.total, summary.ran, summary.reused,
        ", ".join("{} {}".format(v, k) for k, v in sorted(summary.counts.items())), summary.report_dir / "report.md"))
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


def cmd_docker_base(args, out):
    from .dockerbase import build_base_image, load_base_image

    matrix = load_matrix(args.matrix)
    if not matrix.docker.cpu_base:
        raise UserError("{}: [docker] cpu_base is not set; it names the image this command builds".format(args.matrix))
    if args.from_tarball:
        out.write("{} {}\n".format(matrix.docker.cpu_base, load_base_image(matrix.docker.cpu_base, args.from_tarball, _say)))
        return 0
    image_id = build_base_image(matrix.docker.cpu_base, args.suite, args.mirror, args.force, _say)
    out.write("{} {}\n".format(matrix.docker.cpu_base, image_id))
    return 0


def cmd_wheelhouse(args, out):
    from .wheelhouse import fill_wheelhouse

    matrix = load_matrix(args.matrix)
    failures = fill_wheelhouse(matrix, Path(args.out), args.environments, _say)
    out.write("{}: {} wheels{}\n".format(args.out, len(list(Path(args.out).glob("*.whl"))),
                                        "; failed: " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


def _open_run(results_dir, run_name):
    from .results import ResultStore

    store = ResultStore(Path(results_dir) / run_name)
    if not store.root.is_dir():
        raise UserError("{}: no such run; runs here: {}".format(store.root, ", ".join(
            sorted(p.name for p in Path(results_dir).glob("*") if p.is_dir())) or "(none)"))
    return store


def cmd_report(args, out):
    from .report import write_report
    from .verdicts.drift import compare_versions
    from .verdicts.judge import judge

    store = _open_run(args.results_dir, args.run_name)
    matrix = load_matrix(args.matrix)
    results, problems = store.load_all()
    drift = compare_versions(store, results)
    report_dir = write_report(matrix, results, problems, drift, Path(args.reports_dir) / args.run_name, args.run_name,
                              judge(matrix, store, results, drift=drift), store.root)
    out.write("report: {}\n".format(report_dir / "report.md"))
    return 0


def cmd_compare(args, out):
    from .verdicts.judge import judge

    matrix = load_matrix(args.matrix)
    store = _open_run(args.results_dir, args.run_name)
    results, problems = store.load_all()
    for problem in problems:
        _say("not read: {}".format(problem))
    if args.baseline:
        base = _open_run(args.results_dir, args.baseline)
        judgement = judge(matrix, store, results, base, base.load_all()[0], args.baseline)
    else:
        judgement = judge(matrix, store, results)
    findings = judgement.findings()
    if args.format == "json":
        out.write(json.dumps(judgement.as_dict(), indent=2, default=str) + "\n")
    else:
        shown = judgement.verdicts if args.all else findings
        for verdict in shown:
            out.write(verdict.line() + "\n")
        counts = {}
        for verdict in judgement.verdicts:
            counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
        out.write("{} verdicts ({}); {} findings, {} regressions{}\n".format(
            len(judgement.verdicts), ", ".join("{} {}".format(n, v) for v, n in sorted(counts.items())) or "none",
            len(findings), len(judgement.regressions()),
            "; " + judgement.noise["note"] if judgement.noise else ""))
    failing = {"regression": judgement.regressions(), "any": findings,
               "differs": [v for v in findings if v.verdict == "differs"]}.get(args.fail_on, [])
    return 1 if failing else 0


def cmd_requirements(args, out):
    """matrix.toml stays the one place pins live; these files are derived from it."""
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    for env in load_matrix(args.matrix).environments:
        lines = ["# generated from {} [environments.{}]; do not edit".format(args.matrix, env.name)]
        if env.index_url:
            lines.append("--index-url {}".format(env.index_url))
        lines += ["--extra-index-url {}".format(url) for url in env.extra_index_urls]
        path = folder / "{}.txt".format(env.name)
        path.write_text("\n".join(lines + list(env.packages)) + "\n")
        out.write("{}\n".format(path))
    return 0


def cmd_env(args, out):
    from .backends.base import EnvironmentBuildError
    from .backends.venv import VenvBackend, overlay

    matrix = load_matrix(args.matrix)
    env = matrix.environment(args.name)
    if env is None:
        raise UserError("{}: no environment {!r}; valid: {}".format(
            args.matrix, args.name, ", ".join(sorted(e.name for e in matrix.environments))))
    try:
        ready = VenvBackend(args.env_dir).prepare(env, _say)
        if args.overlay:
            sys.stderr.write("{} now imports {}'s packages ({})\n".format(
                args.overlay, args.name, overlay(ready.python, args.overlay)))
    except EnvironmentBuildError as exc:
        sys.stderr.write("error: {}\n".format(exc.reason))
        return 1
    out.write(ready.python + "\n")
    return 0


COMMANDS = {"plan": cmd_plan, "run": cmd_run, "report": cmd_report, "compare": cmd_compare, "requirements": cmd_requirements,
            "env": cmd_env, "docker-base": cmd_docker_base, "wheelhouse": cmd_wheelhouse}


def _terminate(signum, frame):
    raise KeyboardInterrupt  # `kill` or a CI timeout: the same clean-up as Ctrl-C (containers, child processes)


def main(argv=None, out=None):
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return COMMANDS[args.command](args, out)
    except UserError as exc:
        sys.stderr.write("error: {}\n".format(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; results written so far are kept\n")
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
