"""Can this host keep a GPU fed? The error suite's real loop against a simulated GPU, on a crop cache hit.

The GPU machine is not always at hand, but what the host does for it is: read and check the cached crops,
copy each batch into a staging buffer, queue it, rank the logits that come back. Here the suite's own code
(runner/probe/error_suite.py with the cache, the reading threads and the one-batch-ahead conversion) drives
a stand-in device: one thread that takes each queued batch in order and holds it for `batch_ms`, sleeping,
as a GPU works without the host's CPU or its GIL. The host's share of the work is all real: every crop is
read and checked against its sha256, each batch is copied once into one of three staging buffers (as into
page-locked memory) and the logits are ranked. What is not real is the device: no transfer over PCIe, and
the kernel launches only as `--launch-ms` of Python holding the GIL per forward pass (a pessimistic model:
PyTorch lets go of the GIL inside each operation).

The loop keeps the device busy when, per batch, the host's work fits in the device's time: wall / device
time near 1 with the device idle a small share of it, on this machine's cores. A loop that waited for each
batch's logits before queueing the next would show wall = device + host instead.

    .venv/bin/python benchmarks/eval_feed.py [--images 50000] [--batch-size 64] [--rates 6625 3000 1500]
        [--launch-ms 0 3] [--workers 0] [--keep DIR]

--rates are the stand-in device's images/s (6,625: ResNet50 fp32 batch 64 on an H200,
benchmarks/results/eval_speed-cuda.txt). Its latest output is committed as benchmarks/results/eval_feed-cpu.txt.
"""

import argparse
import platform
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_pipeline import RECIPE  # noqa: E402
from eval_speed import cores, load, write_val_set  # noqa: E402
from runner.probe.dataset import open_dataset  # noqa: E402
from runner.probe.error_suite import input_workers, run_error_suite  # noqa: E402
from runner.probe.preprocess import Recipe  # noqa: E402


class StandInDevice(object):
    """An adapter whose device is one thread holding each queued batch for `batch_s` (a stream, in order).
    The conversion copies the crops into the next of three staging buffers and queues the batch; predict_later
    queues the forward pass and returns () -> logits, which waits for it."""

    name = "stand-in"

    def __init__(self, batch_s, launch_s=0.0, classes=1000):
        self.batch_s, self.launch_s, self.busy_s = batch_s, launch_s, 0.0
        self.stream = queue.Queue()
        self.logits = np.random.RandomState(0).standard_normal((1024, classes)).astype(np.float32)
        self.staging, self.turn = [], 0
        self.thread = threading.Thread(target=self._run, name="stand-in device")
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        while True:
            work = self.stream.get()
            if work is None:
                return
            seconds, done = work
            tick = time.perf_counter()
            time.sleep(seconds)
            self.busy_s += time.perf_counter() - tick
            done.set()

    def device_conversion(self, recipe):
        def convert(crops):
            if len(self.staging) < 3:
                self.staging.append(np.empty((len(crops),) + crops.shape[1:], dtype=np.uint8))
            buffer = self.staging[self.turn % 3][:len(crops)]
            self.turn += 1
            np.copyto(buffer, crops)  # as into page-locked memory; the copy's bytes are real
            return buffer
        return convert

    def predict_later(self, model, batch):
        end = time.perf_counter() + self.launch_s
        while time.perf_counter() < end:  # the host's CPU to queue a forward pass, in Python, holding the GIL
            pass
        done = threading.Event()
        self.stream.put((self.batch_s * len(batch) / self.batch_images, done))
        logits = self.logits[:len(batch)]

        def later():
            done.wait()
            return logits
        return later

    def predict(self, model, batch):
        return self.predict_later(model, batch)()

    def versions(self):
        return {}

    def close(self):
        self.stream.put(None)
        self.thread.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rates", type=float, nargs="+", default=[6625.0, 3000.0, 1500.0],
                        help="the stand-in device's images/s")
    parser.add_argument("--launch-ms", type=float, nargs="+", default=[0.0, 3.0],
                        help="the host's CPU time to queue each forward pass, spent in Python (a GPU framework's "
                             "kernel launches: a few milliseconds for ResNet50 in eager PyTorch)")
    parser.add_argument("--workers", type=int, default=0, help="as [suites.error.cuda]: 0 = one per core")
    parser.add_argument("--keep", help="keep the synthetic set and its crop cache here (reused when they exist)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.keep) if args.keep else Path(scratch)
        data, cache = work / "val", {"dir": str(work / "crops"), "limit_bytes": 1 << 40}
        write_val_set(data, args.images)
        dataset, recipe = open_dataset(str(data)), Recipe(**RECIPE)
        workers = input_workers({"workers": args.workers}, "cuda")
        print("eval feed: {} synthetic JPEGs, torchvision's resnet50 recipe (crops of 224), batch {}; decoders and "
              "reading threads: {} (workers = {}, as a GPU cell's here)".format(args.images, args.batch_size, workers,
                                                                                args.workers))
        print("host: {}, {}, Python {}, numpy {}; load average (1, 5, 15 min) at the start: {}".format(
            platform.processor() or platform.machine(), cores(), platform.python_version(),
            np.__version__, load()))
        print("{:>12} {:>10} {:>10} {:>12} {:>9} {:>9} {:>12} {:>10} {:>14}".format(
            "device img/s", "launch ms", "cache", "device s", "wall s", "wait s", "first batch", "idle",
            "wall / device"))
        # (None, 0): the first pass, which builds the cache (a device taking no time)
        for rate, launch_ms in [(None, 0.0)] + [(r, ms) for ms in args.launch_ms for r in args.rates]:
            device = StandInDevice(0.0 if rate is None else args.batch_size / rate, launch_ms / 1000.0)
            device.batch_images = args.batch_size
            out = tempfile.mkdtemp(dir=scratch)
            try:
                m = run_error_suite(device, None, recipe, dataset, {"batch_size": args.batch_size,
                                                                     "workers": workers, "prefetch": 4}, out, cache)
            finally:
                device.close()
            if rate is None:
                print("{:>12} {:>10} {:>10} {:>12} {:>9.1f} {:>9.2f} {:>12.2f} {:>10} {:>14}".format(
                    "-", "-", m["crop_cache"]["status"], "-", m["wall_s"], m["input_wait_s"], m["first_batch_s"], "-",
                    "-"))
                continue
            print("{:>12.0f} {:>10.1f} {:>10} {:>12.2f} {:>9.2f} {:>9.2f} {:>12.2f} {:>9.1%} {:>14.3f}".format(
                rate, launch_ms, m["crop_cache"]["status"], device.busy_s, m["wall_s"], m["input_wait_s"],
                m["first_batch_s"], 1 - device.busy_s / m["wall_s"], m["wall_s"] / device.busy_s))
        print("(the first line: the first pass, building the crop cache, with a device that takes no time; device s: "
              "the stand-in's busy time, its batches' sum; idle: the share of the wall it had no batch)")
        print("load average at the end: {}".format(load()))


if __name__ == "__main__":
    main()
