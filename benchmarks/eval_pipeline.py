"""The error suite's input pipeline by itself: decode + official preprocessing, no model, images/s.

One decoder in this process first, then one process and as many processes as workers decoding and cropping
with no pipeline around them (one core's rate, and the most CPU decoding reaches here), then, with the same files, the
same recipe (torchvision's resnet50 eval: resize 256 bilinear, centre crop 224, normalise) and the same
number of workers, every pipeline delivering float32 batches the model could take:
  threads      the error suite before the worker processes (threads decoding and normalising, np.stack)
  processes    the error suite's worker processes (uint8 crops through a ring), converted to float in threads
               a batch ahead (runner/probe/convert.py); and the crops alone (the GPU converts them)
  dataloader   torch DataLoader, worker processes, torchvision transforms (what timm's validate.py does);
               only where torch and torchvision import (run this with a torch row's python)
  cache build  the first pass with the crop cache: file digests, the worker processes, the entry written
  cache hit    every later pass: the entry's crops read and checked, converted as above; and the crops
               alone, read and checked: all the host does where the GPU converts (convert_on = "device")

    python benchmarks/eval_pipeline.py DATA_DIR [--workers 2] [--batch-size 64] [--repeat 2] [--limit N]

Called by benchmarks/eval_speed.py (with --pipeline-python, which may be a torch row's python).
"""

import argparse
import collections
import glob
import multiprocessing
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from runner.probe.convert import Converter, conversion_threads  # noqa: E402
from runner.probe.crop_source import decoded, input_batches  # noqa: E402
from runner.probe.dataset import open_dataset  # noqa: E402
from runner.probe.error_suite import batch_ranges  # noqa: E402
from runner.probe.preprocess import Recipe, crop_item, preprocess_item  # noqa: E402

RECIPE = dict(resize=256, crop=224, interpolation="bilinear", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def threads(dataset, recipe, workers, batch_size, prefetch=2):
    """The error suite's decoder threads as they were (runner/probe/error_suite.py before the worker processes)."""
    items = dataset.items
    batches = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = collections.deque()
        upcoming = iter(batches)
        for batch in upcoming:
            pending.append([pool.submit(preprocess_item, dataset.root, rel, recipe) for rel, _ in batch])
            if len(pending) > prefetch:
                break
        while pending:
            futures = pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append([pool.submit(preprocess_item, dataset.root, rel, recipe) for rel, _ in following])
            yield np.stack([future.result()[0] for future in futures])


def converted(batches, recipe, threads):
    """The error suite's conversion: slices in threads, a batch ahead (runner/probe/convert.py)."""
    converter = Converter(recipe, threads)
    try:
        for _, floats in converter.ahead(batches, lambda batch: batch.crops):
            yield floats
    finally:
        converter.close()
        batches.close()


def delivered(batches, recipe, threads, floats):
    """Float batches converted as the error suite does, or (floats=False) the uint8 crops alone: all the host
    does where the GPU converts them."""
    if not floats:
        return (batch.crops for batch in batches)
    return converted(batches, recipe, conversion_threads(threads))


def processes(dataset, recipe, workers, batch_size, scratch, prefetch=2, threads=0, floats=True):
    ranges = batch_ranges(len(dataset.items), batch_size)
    batches = decoded(dataset.root, dataset.items, recipe, None, ranges, workers, prefetch, scratch)
    return delivered(batches, recipe, threads, floats)


def cached(dataset, recipe, workers, batch_size, scratch, cache_dir, record, prefetch=2, threads=0, floats=True):
    ranges = batch_ranges(len(dataset.items), batch_size)
    settings = {"dir": cache_dir, "limit_bytes": 1 << 40}
    batches = input_batches(dataset, recipe, None, ranges, workers, prefetch, settings, scratch, record)
    return delivered(batches, recipe, threads, floats)


def dataloader(dataset, recipe, workers, batch_size):
    import torch
    from PIL import Image
    from torchvision import transforms

    transform = transforms.Compose([transforms.Resize(recipe.resize), transforms.CenterCrop(recipe.crop),
                                    transforms.ToTensor(), transforms.Normalize(list(recipe.mean), list(recipe.std))])

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(dataset.items)

        def __getitem__(self, index):
            with open(os.path.join(dataset.root, dataset.items[index][0]), "rb") as handle:
                return transform(Image.open(handle).convert("RGB"))

    loader = torch.utils.data.DataLoader(Files(), batch_size=batch_size, num_workers=workers, shuffle=False)
    for batch in loader:
        yield batch.numpy()


def _decode_share(job):
    root, rels, recipe = job
    for rel in rels:
        crop_item(root, rel, recipe)
    return len(rels)


def all_cores(dataset, recipe, processes, of):
    """(seconds, images, 0.0): `processes` forked processes decoding and cropping at once, each an
    interleaved share, one of `of`, of the files, timed once they are all started. No pipeline around them:
    with every core busy (shared caches, the all-core clock, two threads on a core where a core has two),
    this is the most any CPU decoding reaches here."""
    shares = [[rel for rel, _ in dataset.items[k::of]] for k in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(abs, range(processes), chunksize=1)  # every process started before the clock
        tick = time.perf_counter()
        images = sum(pool.map(_decode_share, [(dataset.root, share, recipe) for share in shares], chunksize=1))
        return time.perf_counter() - tick, images, 0.0


def physical_cores():
    """Cores, not hardware threads: the distinct thread-sibling sets in sysfs (None where unreadable)."""
    sets = set()
    for cpu in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list"):
        try:
            with open(cpu) as handle:
                sets.add(handle.read().strip())
        except OSError:
            return None
    return len(sets) or None


def timed(batches):
    """(seconds, images, CPU seconds of this process) to drain a pipeline, its start-up included. This
    process's CPU, its threads' included, is what the pipeline takes from the cores the model loop runs on."""
    tick, used = time.perf_counter(), _cpu_s()
    images = sum(len(batch) for batch in batches)
    return time.perf_counter() - tick, images, _cpu_s() - used


def _cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs of each pipeline")
    parser.add_argument("--limit", type=int, default=0, help="the first N images (0: all)")
    args = parser.parse_args()
    dataset = open_dataset(args.data, limit=args.limit)
    recipe = Recipe(**RECIPE)
    scratch = tempfile.mkdtemp(prefix="eval-pipeline-")
    try:
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
            peer = "torch {}, torchvision {}".format(torch.__version__, torchvision.__version__)
        except ImportError as exc:
            peer = None
            peer_why = "not measured: {} (run with a torch row's python: --pipeline-python)".format(exc)
        print("input pipeline alone: {} images, {} workers, batch {}, Python {}{}, best of {}".format(
            len(dataset.items), args.workers, args.batch_size, platform.python_version(),
            " with " + peer if peer else "", args.repeat))
        print("  (us: this process's CPU per image, its threads' included; the workers' CPU is their own)")
        rows = []

        def measure(name, make, note=""):
            best = min((timed(make(run)) for run in range(args.repeat)), key=lambda trial: trial[0])
            rows.append((name, best[1] / best[0]))
            print("  {:<34} {:>9.1f} images/s  ({:.1f} s)  {:>6.0f} us{}".format(
                name, best[1] / best[0], best[0], 1e6 * best[2] / best[1], note))

        measure("one decoder, this process", lambda _: processes(dataset, recipe, 1, args.batch_size, scratch,
                                                                 threads=1))
        for count, name in ((1, "one core"), (args.workers, "all at once")):
            # one process takes the share each of all takes: the same images per process, a fraction of the time
            best = min((all_cores(dataset, recipe, count, args.workers) for _ in range(args.repeat)),
                       key=lambda t: t[0])
            rows.append((name, best[1] / best[0]))
            print("  {:<34} {:>9.1f} images/s  ({:.1f} s)  (decode and crop alone, no pipeline)".format(
                "{} process{} decoding at once".format(count, "" if count == 1 else "es"), best[1] / best[0],
                best[0]))
        measure("threads (before)", lambda _: threads(dataset, recipe, args.workers, args.batch_size))
        measure("worker processes", lambda _: processes(dataset, recipe, args.workers, args.batch_size, scratch))
        measure("worker processes, uint8 crops", lambda _: processes(
            dataset, recipe, args.workers, args.batch_size, scratch, floats=False),
            "  (the host's part where the GPU converts)")
        if peer:
            measure("torch DataLoader", lambda _: dataloader(dataset, recipe, args.workers, args.batch_size))
        else:
            print("  {:<34} {}".format("torch DataLoader", peer_why))
        records = []

        def build(run):
            folder = os.path.join(scratch, "cache-{}".format(run))
            records.append({})
            return cached(dataset, recipe, args.workers, args.batch_size, scratch, folder, records[-1])

        measure("crop cache, first pass (build)", build)
        assert all(record["status"] == "built" for record in records), records
        hits = []

        def hit(floats):
            hits.append({})
            return cached(dataset, recipe, args.workers, args.batch_size, scratch, os.path.join(scratch, "cache-0"),
                          hits[-1], floats=floats)

        measure("crop cache, hit", lambda _: hit(True))
        measure("crop cache, hit, uint8 crops", lambda _: hit(False), "  (the host's part where the GPU converts)")
        assert all(record["status"] == "hit" for record in hits), hits
        rate = dict(rows)
        first, again, ours = rate["crop cache, first pass (build)"], rate["crop cache, hit"], rate["worker processes"]
        cores = physical_cores()
        print("one core decodes and crops {:.1f} images/s alone; {} at once{} {:.0f} ({:.1f} each): at most {:.0f} "
              "images/s with CPU decoding here".format(
                  rate["one core"], args.workers,
                  " on {} logical CPUs of {} cores".format(os.cpu_count(), cores) if cores and cores != os.cpu_count()
                  else " on {} cores".format(os.cpu_count()),
                  rate["all at once"], rate["all at once"] / args.workers, rate["all at once"]))
        print("the worker processes deliver {:.0%} of that as uint8 crops, {:.0%} as float batches converted here"
              .format(rate["worker processes, uint8 crops"] / rate["all at once"],
                      rate["worker processes"] / rate["all at once"]))
        peers = [name for name in rate if "DataLoader" in name]
        if peers:
            print("target: worker processes >= the DataLoader peer: {:.2f} x ({})".format(
                ours / rate[peers[0]], "met" if ours >= rate[peers[0]] else "NOT met"))
        print("target: cache hit >= 10 x the first pass: {:.1f} x ({})".format(
            again / first, "met" if again >= 10 * first else "NOT met"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
