"""How the verdicts behave on real runs of this machine: an A/A comparison (the same cells run twice)
must give no regression, and planted changes must be found.

Make the runs first (each a `python -m runner run` with the same selection), then:

    python benchmarks/verdicts_aa.py --a aa-1 --b aa-2 --slow threads-1 [--worse interp-nearest --right interp-official]

- A/A: `compare --run B --baseline A`: every verdict, the false regressions (target 0), and the
  between-run ratios of the throughput medians (the noise floor the [compare] factor must exceed).
- Planted slowdown: `compare --run SLOW --baseline A`, where SLOW ran the same cells with fewer
  threads (`--threads 1`): the pairs of a framework that honours the setting should be `slower`.
- Planted accuracy change (optional): the same model and images under a wrong preprocessing
  recipe (WORSE) against the right one (RIGHT): `worse`.
"""

import argparse
import io
import json
import math
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.cli import main  # noqa: E402


def compare(run, baseline, results_dir, matrix):
    out = io.StringIO()
    main(["compare", "--matrix", matrix, "--run", run, "--baseline", baseline, "--results-dir", results_dir,
          "--format", "json"], out=out)
    return json.loads(out.getvalue())


def summary(title, judged):
    print("## {}\n".format(title))
    counts = Counter((v["kind"], v["verdict"]) for v in judged["verdicts"])
    for (kind, verdict), n in sorted(counts.items()):
        print("  {:<12} {:<20} {}".format(kind, verdict, n))
    regressions = [v for v in judged["verdicts"] if v["regression"]]
    print("\n  regressions: {} of {} verdicts".format(len(regressions), len(judged["verdicts"])))
    for verdict in regressions:
        print("    {} {} {} {} {}: {}".format(verdict["verdict"], verdict["framework"], verdict["model"],
                                           verdict["after"], verdict["batch_size"] or "", verdict["summary"]))
    print()
    return regressions


def main_(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="the first run")
    parser.add_argument("--b", required=True, help="the same cells run again")
    parser.add_argument("--slow", help="the same cells with a planted slowdown (e.g. --threads 1)")
    parser.add_argument("--worse", help="a run with a planted accuracy loss")
    parser.add_argument("--right", help="its reference run")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--planted-results-dir", help="where the --worse and --right runs are (default: --results-dir)")
    parser.add_argument("--matrix", default=str(ROOT / "matrix.toml"))
    args = parser.parse_args(argv)

    aa = compare(args.b, args.a, args.results_dir, args.matrix)
    false = summary("A/A: {} against {} (the same cells run twice)".format(args.b, args.a), aa)
    busy = [v for v in aa["verdicts"] if v["kind"] == "throughput" and v["evidence"]["busy"]]
    if busy:
        print("  left out of the noise floor, timed while other processes kept the machine busy: {}\n".format(
            ", ".join("{} {} batch {}".format(v["after"], v["model"], v["batch_size"]) for v in busy)))
    ratios = [(v["evidence"]["ratio_of_medians"], v) for v in aa["verdicts"]
              if v["kind"] == "throughput" and v not in busy]
    if ratios:
        logs = [abs(math.log(r)) for r, _ in ratios]
        print("  throughput ratios of medians between the runs: {} pairs, {:.3f} to {:.3f}; median |log ratio| "
              "{:.3f}; largest factor x{:.3f}".format(len(ratios), min(r for r, _ in ratios),
                                                      max(r for r, _ in ratios), sorted(logs)[len(logs) // 2],
                                                      math.exp(max(logs))))
        print("  so a change smaller than about x{:.2f} cannot be told from run-to-run noise here, whatever the "
              "trials; [compare] throughput_factor_cpu must stay above x{:.3f}\n".format(
                  math.exp(max(logs)), math.exp(max(logs))))
        colds = [v["evidence"]["ratio"] for v in aa["verdicts"] if v["kind"] == "cold_start"]
        if colds:
            print("  cold start ratios between the runs: {:.3f} to {:.3f}\n".format(min(colds), max(colds)))
    found_slow = found_worse = None
    if args.slow:
        slow = compare(args.slow, args.a, args.results_dir, args.matrix)
        summary("Planted slowdown: {} against {}".format(args.slow, args.a), slow)
        pairs = [v for v in slow["verdicts"] if v["kind"] == "throughput"]
        found_slow = any(v["verdict"] == "slower" for v in pairs)
        print("  throughput pairs judged slower: {} of {}; the others: {}\n".format(
            sum(v["verdict"] == "slower" for v in pairs), len(pairs), ", ".join(sorted(
                "{} batch {} {}".format(v["after"], v["batch_size"], v["verdict"]) for v in pairs
                if v["verdict"] != "slower")) or "none"))
    if args.worse and args.right:
        worse = compare(args.worse, args.right, args.planted_results_dir or args.results_dir, args.matrix)
        summary("Planted accuracy change: {} against {}".format(args.worse, args.right), worse)
        pairs = [v for v in worse["verdicts"] if v["kind"] == "error"]
        found_worse = bool(pairs) and all(v["verdict"] == "worse" for v in pairs)
    said = {True: "yes", False: "NO", None: "not run"}
    print("A/A false regressions: {} (target 0); planted slowdown found: {}; planted accuracy change found: {}".format(
        len(false), said[found_slow], said[found_worse]))
    return 0 if not false and found_slow is not False and found_worse is not False else 1


if __name__ == "__main__":
    sys.exit(main_())
