"""Benchmark: the runner's throughput vs a bare timed loop of the same model, batch and device,
in the same environment. Prints images/s for both and their ratio (runner / bare; 1.0 = no
overhead). Trials alternate runner and bare loop so drift on the machine hits both alike; the
median of each is compared.

    .venv/bin/python benchmarks/harness_overhead.py [--env torch-current] [--model resnet50]
        [--batch-sizes 1 8] [--iterations 15] [--trials 3] [--device cpu]

Its latest output is committed as benchmarks/results/harness_overhead.txt.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.backends import get_backend  # noqa: E402
from runner.matrix import load_matrix  # noqa: E402
from runner.executors.local import run_cell  # noqa: E402
from runner.plan import Options, plan_cells  # noqa: E402
from runner.probe.provenance import cpu_model  # noqa: E402
from runner.probe.throughput import measured_batches  # noqa: E402
from runner.results import ResultStore  # noqa: E402


def runner_images_per_s(backend, ready, cell, store):
    result = run_cell(backend, ready, cell, store)
    if result["status"] != "ok":
        raise SystemExit("runner cell failed: {}".format(result["reason"]))
    return {b["batch_size"]: b["images_per_s"] for b in measured_batches(result["metrics"])}


def bare_images_per_s(ready, model, batch, warmup, iterations, threads, device):
    out = subprocess.run([ready.python, str(ROOT / "benchmarks" / "bare_loop.py"), model, str(batch), str(warmup),
                          str(iterations), str(threads), device], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", dest="envs")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="venv")
    args = parser.parse_args()

    matrix = load_matrix(ROOT / "matrix.toml")
    matrix = replace(matrix, throughput=replace(matrix.throughput, batch_sizes=tuple(args.batch_sizes),
                                                warmup=args.warmup, iterations=args.iterations, trials=1,
                                                min_window_s=0.0, cuda=None))  # the bare loop's N iterations exactly
    envs = args.envs or [e.name for e in matrix.environments]
    backend = get_backend(args.backend, ignore_pins=True)
    cells = plan_cells(matrix, Options(weights="random", device=args.device, threads=args.threads,
                                       environments=tuple(envs), models=(args.model,), suites=("throughput",)))
    print("harness overhead: runner vs bare loop, model {}, device {}, {} warm-up + {} timed iterations, "
          "median of {} alternating trials".format(args.model, args.device, args.warmup, args.iterations, args.trials))
    print("host: {}, {} cores, Python {}".format(cpu_model(), __import__("os").cpu_count(), platform.python_version()))
    print("{:<16} {:>5} {:>14} {:>14} {:>8}".format("environment", "batch", "runner img/s", "bare img/s", "ratio"))
    with tempfile.TemporaryDirectory() as scratch:
        store = ResultStore(scratch)
        for cell in cells:
            ready = backend.prepare(cell.environment, lambda line: print("  " + line))
            runs, bares = {b: [] for b in args.batch_sizes}, {b: [] for b in args.batch_sizes}
            for _ in range(args.trials):
                for batch, value in runner_images_per_s(backend, ready, cell, store).items():
                    runs[batch].append(value)
                for batch in args.batch_sizes:
                    bares[batch].append(bare_images_per_s(ready, args.model, batch, args.warmup, args.iterations,
                                                          args.threads, args.device))
            for batch in args.batch_sizes:
                ours, bare = statistics.median(runs[batch]), statistics.median(bares[batch])
                print("{:<16} {:>5} {:>14.2f} {:>14.2f} {:>8.3f}".format(
                    cell.environment.name, batch, ours, bare, ours / bare))


if __name__ == "__main__":
    main()
