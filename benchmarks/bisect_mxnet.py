"""The MXNet bisection of the drift suite, and its check by running the adjacent releases directly.

1. `runner bisect --framework gluoncv --good mxnet-1.5 --bad mxnet-1.9 --model resnet50 --suite drift`
   over the releases the package index lists for Python 3.7.
2. The answer's two adjacent releases as rows of their own (the mxnet-1.5 row with only MXNet
   changed) next to mxnet-1.5 and mxnet-1.9, run as an ordinary drift matrix: the drift table must
   show the outputs bit-identical up to the last good release and not from the first bad one.

    python benchmarks/bisect_mxnet.py --imagenet ../shared/data/imagenet-val-sample | tee benchmarks/results/bisect_mxnet-cpu.txt
"""

import argparse
import os
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.cli import main  # noqa: E402


def cli(args):
    out = io.StringIO()
    code = main(args, out=out)
    if code != 0:
        raise SystemExit("runner {} failed with exit code {}".format(args[0], code))
    return out.getvalue()


def row(name, mxnet, base_pins):
    pins = ['"mxnet=={}"'.format(mxnet)] + ['"{}"'.format(p) for p in base_pins if not p.startswith("mxnet==")]
    return '\n[environments."{}"]\nframework = "gluoncv"\npython = "3.7"\npackages = [{}]\n'.format(
        name, ", ".join(pins))


def main_(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imagenet", required=True)
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--reports-dir", default="reports/reference")
    args = parser.parse_args(argv)
    os.chdir(str(ROOT))  # the paths printed are the repository's own
    common = ["--results-dir", args.results_dir, "--reports-dir", args.reports_dir]

    print("$ python -m runner bisect --framework gluoncv --good mxnet-1.5 --bad mxnet-1.9 --model resnet50 "
          "--suite drift --imagenet DIR --run bisect-mxnet")
    print(cli(["bisect", "--matrix", "matrix.toml", "--framework", "gluoncv", "--good", "mxnet-1.5",
               "--bad", "mxnet-1.9", "--model", "resnet50", "--suite", "drift", "--imagenet", args.imagenet,
               "--run", "bisect-mxnet"] + common))
    answer = json.loads(next(Path(args.reports_dir, "bisect-mxnet").glob(
        "bisect-mxnet-mxnet-1.5-mxnet-1.9-resnet50-drift.json")).read_text())
    good, bad = answer["last_good"], answer["first_bad"]

    from runner.matrix import load_matrix

    base = load_matrix(ROOT / "matrix.toml").environment("mxnet-1.5")
    # the extended matrix is kept beside the report it made, so the run can be repeated
    matrix = Path(args.reports_dir, "mxnet-adjacent", "matrix.toml")
    matrix.parent.mkdir(parents=True, exist_ok=True)
    names = ["mxnet-{}".format(good), "mxnet-{}".format(bad)]
    matrix.write_text((ROOT / "matrix.toml").read_text() + row(names[0], good, base.packages)
                      + row(names[1], bad, base.packages))
    print("$ python -m runner run --matrix {m} --suite drift --model resnet50 --env mxnet-1.5 --env {a} --env {b} "
          "--env mxnet-1.9 --imagenet DIR --weights random --run mxnet-adjacent   # matrix.toml + rows {a}, {b}".format(
              m=matrix, a=names[0], b=names[1]))
    print(cli(["run", "--matrix", str(matrix), "--suite", "drift", "--model", "resnet50", "--env", "mxnet-1.5",
               "--env", names[0], "--env", names[1], "--env", "mxnet-1.9", "--imagenet", args.imagenet,
               "--weights", "random", "--run", "mxnet-adjacent"] + common))
    report = Path(args.reports_dir, "mxnet-adjacent", "report.json")
    print("Drift pairs run directly (from -> to: outputs identical, max |diff|, inputs identical):")
    for pair in json.loads(report.read_text())["drift"]:
        print("  {} -> {}: {}, {:.3g}, {}".format(pair["from_env"], pair["to_env"],
                                                  "identical" if pair.get("outputs_identical") else "differ",
                                                  pair.get("max_abs_diff", float("nan")),
                                                  "yes" if pair.get("inputs_identical") else "no"))
    pairs = {(p["from_env"], p["to_env"]): p for p in json.loads(report.read_text())["drift"]}
    agrees = pairs[("mxnet-1.5", names[0])]["outputs_identical"] and not pairs[(names[0], names[1])][
        "outputs_identical"]
    print("The direct run {} the bisection: {} -> {} bit-identical, {} -> {} not.".format(
        "confirms" if agrees else "CONTRADICTS", "mxnet-1.5", names[0], names[0], names[1]))
    return 0 if agrees else 1


if __name__ == "__main__":
    sys.exit(main_())
