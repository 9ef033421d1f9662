"""Error suite: top-1 / top-5 error on an ImageNet val set, with per-image predictions.

Input pipeline: JPEG decoding and the recipe's resize and crop run in `workers` worker processes
(runner/probe/decode_pool.py), up to `prefetch` batches ahead of the model, into uint8 crops that are
read back in the val set's order, so the predictions are exactly those of one decoder. With a crop
cache (runner/probe/crop_cache.py) a val set is decoded once per recipe and library versions, and
every later cell reads the checked crops instead. The float conversion and normalisation run in
threads, a batch ahead of the model (runner/probe/convert.py), or on the GPU where the adapter can
(torch: runner/probe/adapters/torch_device.py), where the model's first pass of each batch size also runs
while the input starts. What limited the run is recorded:
decode capacity, model speed, how long the model waited for input, and the cache's part.
"""

import csv
import os
import time

from .convert import Converter, conversion_threads
from .cores import usable_cores
from .crop_source import input_batches
from .top5 import best_classes


def input_workers(params, device="cpu"):
    """Decoder processes for this cell: `workers` (1 = decode in this process), or for 0 from the cores this
    process may keep busy (runner/probe/cores.py: its affinity and CPU quota). On a CPU cell one per core,
    up to 8: the model's own threads need the cores too. On a GPU cell one per core: the decoders run below
    the probe's priority (decode_pool.DECODER_NICENESS), so the model loop and the crops' reading, conversion
    and storing take a core when they need one. (At equal priority, 16 decoders on 16 cores slowed an H200's
    loop to 61% of the model's speed, benchmarks/results/eval_speed-cuda.txt; leaving two cores idle instead
    gave a 2-core GPU cell one decoder, at 55% of two niced ones' rate.)"""
    asked = int(params.get("workers", 1))
    if asked:
        return asked
    cores = usable_cores()
    return cores if device.startswith("cuda") else min(8, cores)


def device_conversion(adapter, recipe, params):
    """The adapter's conversion on its device (uint8 crops over, the same float bits), or None: the suite's
    convert_on is "host", or the adapter has none for this device (every CPU cell, Keras and GluonCV)."""
    if params.get("convert_on", "device") != "device":
        return None
    make = getattr(adapter, "device_conversion", None)
    return make(recipe) if make is not None else None


def _predict_now(adapter):
    """predict_later for an adapter without one: the logits are made now and handed over when asked."""
    def later(model, batch):
        logits = adapter.predict(model, batch)
        return lambda: logits
    return later


def batch_ranges(count, batch_size):
    return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def run_error_suite(adapter, model, recipe, dataset, params, out_dir, crop_cache=None):
    """crop_cache: {"dir", "limit_bytes"} from the cell's spec, or None."""
    batch_size = int(params["batch_size"])
    workers = input_workers(params)
    prefetch = int(params.get("prefetch", 2))
    rows, unreadable, modes, cache = [], [], {}, {}
    counted = {"top1": 0, "top5": 0}
    seen, kept_of = {"decode_s": 0.0}, {}  # kept_of: batch start -> offsets of its readable images
    wait_s = 0.0

    def kept_crops(batch):
        """Count the batch's images (decoded, unreadable, modes); its readable crops, or None."""
        kept = []
        for offset, (mode, problem, seconds, _) in enumerate(batch.infos):
            seen["decode_s"] += seconds
            if problem is not None:
                unreadable.append(dict(file=dataset.items[batch.start + offset][0], **problem))
                continue
            modes[mode] = modes.get(mode, 0) + 1
            kept.append(offset)
        kept_of[batch.start] = kept
        if not kept:
            return None
        return batch.crops if len(kept) == len(batch.infos) else batch.crops[kept]

    wall = time.perf_counter()
    ranges = batch_ranges(len(dataset.items), batch_size)
    warm_up = getattr(adapter, "warm_up_later", None)  # the model's first passes, while the input starts
    warmed = warm_up(model, recipe, sorted({stop - start for start, stop in ranges})) if warm_up else None
    batches = input_batches(dataset, recipe, adapter, ranges, workers, prefetch, crop_cache, out_dir, cache)
    converter = Converter(recipe, conversion_threads(params.get("convert_threads", 0)),
                          staging=getattr(adapter, "staging", None), on_device=device_conversion(adapter, recipe, params))
    later = getattr(adapter, "predict_later", None) or _predict_now(adapter)
    pending, timing = None, {"model_s": 0.0}  # pending: the batch whose logits are still on their way

    def rank(start, kept, logits):
        tick = time.perf_counter()
        logits = logits()  # waits for the forward pass and the logits' copy
        timing["model_s"] += time.perf_counter() - tick
        best = best_classes(logits)
        for offset, top in zip(kept, best):
            name, label = dataset.items[start + offset]
            counted["top1"] += int(top[0] == label)
            counted["top5"] += int(label in top)
            rows.append([name, label] + [int(k) for k in top])

    try:
        waiting = time.perf_counter()
        for batch, floats in converter.ahead(batches, kept_crops):
            wait_s += time.perf_counter() - waiting  # for decoded crops, and for their conversion
            timing.setdefault("first_batch_s", time.perf_counter() - wall)
            kept = kept_of.pop(batch.start)
            if floats is not None:
                tick = time.perf_counter()
                if warmed is not None:
                    timing["warm_up_s"], warmed = warmed(), None
                queued = (batch.start, kept, later(model, floats))
                timing["model_s"] += time.perf_counter() - tick
                # this batch is queued before the one before it is ranked: the GPU does not wait for the host
                if pending is not None:
                    rank(*pending)
                pending = queued
            waiting = time.perf_counter()
        if pending is not None:
            rank(*pending)
    finally:
        if warmed is not None:  # ended before its first batch: the warm-up is waited for, not left on the GPU
            try:
                warmed()
            except Exception:
                pass  # the loop's own error, or the message that no image decoded, says what went wrong
        converter.close()
        batches.close()  # ends the decoder processes and lets go of the cache's lock now, not at collection
    decode_s, model_s, top1, top5 = seen["decode_s"], timing["model_s"], counted["top1"], counted["top5"]
    wall_s = time.perf_counter() - wall
    evaluated = len(rows)
    predictions = os.path.join(out_dir, "predictions.csv")
    with open(predictions, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "top1", "top2", "top3", "top4", "top5"])
        writer.writerows(rows)
    if not evaluated:
        kinds = unreadable_kinds(unreadable)
        raise RuntimeError("no image of the {} selected could be decoded ({}); the first, {}: {}".format(
            len(dataset.items), ", ".join("{} {}".format(n, kind) for kind, n in sorted(kinds.items())),
            unreadable[0]["file"], unreadable[0]["error"]))
    return dict(image_accounting(dataset, evaluated, unreadable), **{
        "top1_correct": top1,
        "top5_correct": top5,
        "top1_error": 100.0 * (evaluated - top1) / evaluated,
        "top5_error": 100.0 * (evaluated - top5) / evaluated,
        "image_modes": modes,
        "batch_size": batch_size,
        "input_workers": workers,
        "input_pipeline": "worker processes" if workers > 1 else "this process",
        "prefetch_batches": prefetch,
        "crop_cache": cache,
        "decode_s": decode_s,  # summed over the decoders; 0 when every crop came from the cache
        "model_s": model_s,
        "input_wait_s": wait_s,  # the model loop waiting for input: decoded crops and their conversion
        "first_batch_s": timing.get("first_batch_s"),  # from the start to the first batch: pool, cache, checks
        # the model's first pass of each batch size, started with the input (a GPU's kernels load then);
        # the loop's wait for it is in model_s. None: the adapter has none on this device
        "warm_up_s": timing.get("warm_up_s"),
        "convert_on": "host" if converter.on_device is None else "device",
        "convert_threads": converter.threads,  # 0: converted on the device
        "wall_s": wall_s,
        "decode_images_per_s": workers * evaluated / decode_s if decode_s else None,  # the decoders' capacity
        "model_images_per_s": evaluated / model_s if model_s else None,
        "images_per_s": evaluated / wall_s if wall_s else None,
        "predictions_file": "predictions.csv",
    })


def unreadable_kinds(unreadable):
    kinds = {}
    for entry in unreadable:
        kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
    return kinds


def image_accounting(dataset, evaluated, unreadable):
    """Where every image went: selected = evaluated + unreadable (with each one's reason), and, over
    the whole folder, images without a label, labels without an image and other files where only
    images belong (from the dataset)."""
    return {
        "images_selected": len(dataset.items),
        "images_evaluated": evaluated,
        "unreadable_count": len(unreadable),
        "unreadable_kinds": unreadable_kinds(unreadable),
        "unreadable": unreadable,
        "unlabeled_count": dataset.unlabeled.count,
        "unlabeled_examples": dataset.unlabeled.examples,
        "labels_without_image_count": dataset.labels_without_image.count,
        "labels_without_image_examples": dataset.labels_without_image.examples,
        "not_image_count": dataset.not_images.count,
        "not_image_examples": dataset.not_images.examples,
    }
