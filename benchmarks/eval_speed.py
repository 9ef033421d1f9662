"""Benchmark: is the error suite limited by the model or by JPEG decoding?

Writes a synthetic ImageNet-like val set (N JPEGs of about 500x375, sizes varied as in the real
set, 1000 classes), runs the error suite on it through the runner, and compares the wall time
with the pure-model time at the same batch size (the throughput suite's median images/s on
input already on the device). Target (issue 5): wall <= 1.15 x pure model on the GPU machine
with 50,000 images. Prints one line per decoder-thread setting.

    .venv/bin/python benchmarks/eval_speed.py [--images 50000] [--env torch-current] [--model resnet50]
        [--device cuda] [--backend local] [--batch-size 64] [--workers 1 8] [--keep DIR]

Its latest output is committed as benchmarks/results/eval_speed-<device>.txt.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(500, 375), (500, 333), (375, 500), (500, 400), (640, 480), (333, 500), (500, 281)]


def write_val_set(folder, count, seed=0):
    """Flat layout: images/ILSVRC2012_val_N.JPEG, val_labels.txt, synsets.txt (the runner's accepted layout)."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    # Smooth shapes plus grain: about 100 KB at 500x375, quality 90 (the 30-image real sample averages
    # 130 KB, one 2816x2112 among them); pure noise would be several times larger, smooth content smaller.
    tiles = []
    for w, h in SIZES:
        coarse = Image.fromarray(rng.randint(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        grain = rng.normal(0, 14, (h, w, 3))
        tiles.append(Image.fromarray(np.clip(np.asarray(coarse, dtype=np.float64) + grain, 0, 255).astype(np.uint8)))
    wnids = ["n{:08d}".format(10000000 + k) for k in range(1000)]
    labels = []
    for i in range(count):
        name = "ILSVRC2012_val_{:08d}.JPEG".format(i + 1)
        path = images / name
        if not path.exists():
            tiles[i % len(tiles)].rotate(i % 360).save(str(path), quality=90)
        labels.append("{} {}".format(name, wnids[i % 1000]))
    (folder / "val_labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "synsets.txt").write_text("".join("{} class {}\n".format(w, k) for k, w in enumerate(wnids)))
    return folder


def run(matrix_text, args, extra, work, name):
    """One runner run in its own results folder; its one result."""
    matrix = work / "matrix.toml"
    matrix.write_text(matrix_text)
    command = [sys.executable, "-m", "runner", "run", "--matrix", str(matrix), "--backend", args.backend,
               "--device", args.device, "--weights", "random", "--env", args.env, "--model", args.model,
               "--results-dir", str(work / "results"), "--reports-dir", str(work / "reports"),
               "--run", name, "--force"] + extra
    done = subprocess.run(command, cwd=str(ROOT), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("{} run failed ({}):\n{}".format(name, done.returncode, done.stderr[-3000:]))
    (result,) = [json.loads(p.read_text()) for p in (work / "results" / name).glob("*.json")]
    if result["status"] != "ok":
        raise SystemExit("{} cell {}: {}".format(name, result["status"], result["reason"]))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--env", default="torch-current")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--keep", help="keep the synthetic set here (reused when it exists)")
    args = parser.parse_args()

    base = (ROOT / "matrix.toml").read_text()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        data = Path(args.keep) if args.keep else work / "val"
        tick = time.perf_counter()
        write_val_set(data, args.images)
        size_mb = sum(p.stat().st_size for p in (data / "images").iterdir()) / 2 ** 20
        print("eval speed: {} synthetic JPEGs ({:.0f} MB, written in {:.0f} s), model {}, env {}, device {}, backend "
              "{}, batch {}".format(args.images, size_mb, time.perf_counter() - tick, args.model, args.env,
                                    args.device, args.backend, args.batch_size))
        print("host: {}, {} cores, Python {}".format(platform.processor() or platform.machine(), os.cpu_count(),
                                                   platform.python_version()))
        suites = base[base.index("[suites.error]"):base.index("# ----")]
        throughput = base.replace(suites, "[suites.error]\nbatch_size = {b}\ntimeout_s = 86400\n\n"
                                          "[suites.throughput]\nbatch_sizes = [{b}]\nwarmup = 5\niterations = 30\n"
                                          "trials = 3\ntimeout_s = 3600\n\n[suites.drift]\nimages = 1\nbatch_size = 1\n"
                                          "timeout_s = 60\n".format(b=args.batch_size))
        pure = run(throughput, args, ["--suite", "throughput"], work, "pure-model")
        model_rate = pure["metrics"]["batches"][0]["images_per_s"]
        print("pure model: {:.1f} images/s (median of 3 trials) -> {:.1f} s for {} images".format(
            model_rate, args.images / model_rate, args.images))
        print("{:>8} {:>10} {:>14} {:>14} {:>12} {:>16}".format(
            "workers", "wall s", "decode img/s", "model img/s", "wait s", "wall / model"))
        for workers in args.workers:
            text = throughput.replace("[suites.error]\n", "[suites.error]\nworkers = {}\nprefetch = 4\n".format(workers))
            result = run(text, args, ["--suite", "error", "--imagenet", str(data)], work, "workers-{}".format(workers))
            m = result["metrics"]
            print("{:>8} {:>10.1f} {:>14.1f} {:>14.1f} {:>12.1f} {:>16.3f}".format(
                m["input_workers"], m["wall_s"], m["decode_images_per_s"], m["model_images_per_s"],
                m["input_wait_s"], m["wall_s"] / (args.images / model_rate)))


if __name__ == "__main__":
    main()
