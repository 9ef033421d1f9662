"""Benchmark: what the NVML sampler costs. Throughput with the probe's telemetry window on vs off,
same process, model, batch and device; trials alternate off/on and the medians are compared.
Target (issue 5): the difference stays within 1%.

On a host without a GPU the sampler cannot start (the result says "unavailable"), so both
columns run the same code: the difference printed is then this machine's noise floor, and says so.

    .venv/bin/python benchmarks/nvml_cost.py [--env torch-current] [--model resnet50] [--batch-sizes 1 64]
        [--iterations 50] [--trials 5] [--device cuda] [--backend local]

Its latest output is committed as benchmarks/results/nvml_cost-<device>.txt.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.backends import get_backend  # noqa: E402
from runner.locks import locked  # noqa: E402
from runner.matrix import load_matrix  # noqa: E402
from runner.probe.provenance import cpu_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="torch-current")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="venv")
    args = parser.parse_args()

    matrix = load_matrix(ROOT / "matrix.toml")
    env = matrix.environment(args.env)
    if env is None:
        raise SystemExit("unknown environment {!r}; valid: {}".format(
            args.env, ", ".join(e.name for e in matrix.environments)))
    variant = matrix.model(args.model).variant(env.framework)
    env = locked(matrix, env, args.device)  # the venv backend builds the row from its lock
    ready = get_backend(args.backend, ignore_pins=True).prepare(env, lambda line: print("  " + line))
    print("NVML sampler cost: {} {} on {}, {} warm-up, {} timed iterations per trial, median of {} alternating "
          "off/on trials".format(args.env, args.model, args.device, args.warmup, args.iterations, args.trials))
    print("host: {}, {} cores, Python {}".format(cpu_model(), os.cpu_count(), platform.python_version()))
    print("{:>5} {:>16} {:>16} {:>10}  {}".format("batch", "off img/s", "on img/s", "on/off", "sampler"))
    for batch in args.batch_sizes:
        out = subprocess.run(
            [ready.python, str(ROOT / "benchmarks" / "nvml_cost_cell.py"), env.framework, variant.name, str(batch),
             str(args.warmup), str(args.iterations), str(args.trials), args.device, str(args.threads),
             json.dumps(variant.preprocess.recipe())], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit("the in-environment run failed:\n" + out.stderr[-3000:])
        found = json.loads(out.stdout.strip().splitlines()[-1])
        off, on = statistics.median(found["off"]), statistics.median(found["on"])
        telemetry = found["telemetry"]
        if telemetry["status"] == "ok":
            sampler = "NVML on {} ({} utilisation samples per trial)".format(
                telemetry["gpu"], "/".join(str(n) for n in found["samples_per_trial"]))
        else:
            sampler = "unavailable ({}): on and off ran the same code, so on/off is the noise floor".format(
                telemetry["reason"])
        spread = "off {:.2f}-{:.2f}, on {:.2f}-{:.2f}".format(min(found["off"]), max(found["off"]),
                                                               min(found["on"]), max(found["on"]))
        print("{:>5} {:>16.2f} {:>16.2f} {:>10.4f}  {}; range {}".format(batch, off, on, on / off, sampler, spread))


if __name__ == "__main__":
    main()
