"""`compare` (verdicts on every pair of versions, or a run against a baseline) and `bisect` (the two
adjacent releases where a result changed): the command line of the verdicts."""

import json
import sys
from pathlib import Path

from .errors import UserError
from .matrix import load_matrix
from .progress import say as _say



def add_judge_parsers(sub, common):
    compare = sub.add_parser("compare", help="judge every pair of versions in a run (or a run against a baseline) "
                                             "and print the findings: regressions, changes, non-reproductions")
    common(compare)
    compare.add_argument("--run", dest="run_name", required=True, help="the run to judge (a folder in results/)")
    compare.add_argument("--baseline", help="another run: judge each position against the same one there "
                                            "(an A/A check when both hold the same cells)")
    compare.add_argument("--results-dir", default="results")
    compare.add_argument("--format", choices=["text", "json"], default="text")
    compare.add_argument("--all", action="store_true", help="print every verdict, not only the findings")
    compare.add_argument("--fail-on", choices=["regression", "differs", "any"],
                         help="exit 1 when a regression (worse, slower, predictions changed, cannot load), a "
                              "published number that differs, or any finding is present")


    bisect = sub.add_parser("bisect", help="find the two adjacent releases of a package between which a result "
                                           "changed, from a good row to a bad row (binary search over releases)")
    common(bisect)
    bisect.add_argument("--framework", required=True, help="torchvision, keras or gluoncv")
    bisect.add_argument("--good", required=True, help="the row whose result is the reference, e.g. mxnet-1.5")
    bisect.add_argument("--bad", required=True, help="the row whose result differs, e.g. mxnet-1.9")
    bisect.add_argument("--model", required=True, help="one model key of the matrix")
    bisect.add_argument("--suite", required=True, choices=["drift", "throughput", "error"],
                        help="drift: outputs no longer bit-identical (or close, --criterion close); throughput: "
                             "slower; error: a different error")
    bisect.add_argument("--package", help="bisect this package's releases, every other pin held at the good row "
                                          "(default: [bisect.FRAMEWORK] package)")
    bisect.add_argument("--versions", help="the releases to search, separated by commas, instead of asking the "
                                           "package index (offline)")
    bisect.add_argument("--criterion", choices=["identical", "close"], default="identical",
                        help="drift: a probe is good while its outputs are bit-identical (default) or numerically "
                             "close ([compare] drift_rtol) to the good row's")
    for flag, kwargs in (("--imagenet", {"help": "ImageNet val folder (drift and error)"}),
                         ("--labels", {"dest": "labels_file", "help": "labels file for a flat val folder"}),
                         ("--limit", {"type": int, "help": "evaluate a deterministic subset of N images"}),
                         ("--weights", {"choices": ["pretrained", "random", "file"], "default": "random",
                                        "help": "for the error and throughput suites (default: random)"}),
                         ("--device", {"help": "cpu, cuda or cuda:N (matrix default)"}),
                         ("--threads", {"type": int, "help": "intra-op threads on CPU (0 = framework default)"}),
                         ("--backend", {"default": "venv", "help": "venv, docker or local (default: venv)"}),
                         ("--run", {"dest": "run_name", "help": "results/<run>/ (default: <backend>-<device>, "
                                                                "the run `make matrix` writes, so its cells are reused)"}),
                         ("--results-dir", {"default": "results"}), ("--reports-dir", {"default": "reports"}),
                         ("--env-dir", {"help": "where the venv backend keeps environments"})):
        bisect.add_argument(flag, **kwargs)


def open_run(results_dir, run_name):
    from .results import ResultStore

    store = ResultStore(Path(results_dir) / run_name)
    if not store.root.is_dir():
        raise UserError("{}: no such run; runs here: {}".format(store.root, ", ".join(
            sorted(p.name for p in Path(results_dir).glob("*") if p.is_dir())) or "(none)"))
    return store


def cmd_compare(args, out):
    from .verdicts.judge import judge

    matrix = load_matrix(args.matrix)
    store = open_run(args.results_dir, args.run_name)
    results, problems = store.load_all()
    for problem in problems:
        _say("not read: {}".format(problem))
    if args.baseline:
        base = open_run(args.results_dir, args.baseline)
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




def cmd_bisect(args, out):
    from .backends import get_backend
    from .bisect import Request, run_bisect
    from .bisect_output import write_bisect
    from .executors.local import LocalExecutor
    from .plan import Options
    from .progress import Progress
    from .releases import parse_versions
    from .results import ResultStore
    from .storage import run_lock

    matrix = load_matrix(args.matrix)
    if args.framework not in {env.framework for env in matrix.environments}:
        raise UserError("--framework {}: the matrix's frameworks are {}".format(args.framework, ", ".join(
            sorted({env.framework for env in matrix.environments}))))
    request = Request(framework=args.framework, good=args.good, bad=args.bad, model=args.model, suite=args.suite,
                      package=args.package, versions=tuple(parse_versions(args.versions)) if args.versions else (),
                      criterion=args.criterion)
    options = Options(weights=args.weights, device=args.device, threads=args.threads, imagenet=args.imagenet,
                      labels_file=args.labels_file, limit=args.limit)
    if args.suite in ("drift", "error") and not args.imagenet:
        raise UserError("--suite {} needs the val set: --imagenet DIR".format(args.suite))
    device = args.device or matrix.defaults.device
    run_name = args.run_name or "{}-{}".format(args.backend, device.replace(":", ""))
    backend = get_backend(args.backend, matrix=matrix, env_dir=args.env_dir, ignore_pins=False, docker=None)
    store = ResultStore(Path(args.results_dir) / run_name)
    executor = LocalExecutor(backend, store, Progress(0, sys.stderr))
    with run_lock(store.root, "bisect", _say):
        answer = run_bisect(matrix, request, options, executor, _say)
    paths = write_bisect(answer, Path(args.reports_dir) / run_name)
    out.write(answer["conclusion"] + "\n")
    out.write("probed {} of {} releases; {} environments built ({:.0f} s); written to {}\n".format(
        len(answer["probes"]) - 1, len(answer["candidates"]), answer["environments_built"], answer["build_s"],
        paths[0]))
    return 0
