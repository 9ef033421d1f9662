"""Error suite: top-1 / top-5 error on an ImageNet val set, with per-image predictions.

Input pipeline: JPEG decoding and preprocessing run in `workers` threads (Pillow releases the
GIL while it decodes and resizes), up to `prefetch` batches ahead of the model, in the val
set's order, so the model does not wait for the decoder and the predictions are exactly those
of one decoder. What limited the run is recorded: decode capacity, model speed, and how long
the model waited for input.
"""

import collections
import csv
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .preprocess import preprocess_item


def _decode(root, item, recipe, adapter):
    """(array or None, mode, problem, seconds) for one (relative path, label) item."""
    tick = time.perf_counter()
    return preprocess_item(root, item[0], recipe, adapter) + (time.perf_counter() - tick,)


def decoded_batches(root, items, recipe, adapter, batch_size, workers, prefetch):
    """Yield (batch items, their decodes) in order, decoding up to `prefetch` batches ahead."""
    batches = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]
    if workers <= 1:
        for batch in batches:
            yield batch, [_decode(root, item, recipe, adapter) for item in batch]
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = collections.deque()
        upcoming = iter(batches)
        for batch in upcoming:
            pending.append((batch, [pool.submit(_decode, root, item, recipe, adapter) for item in batch]))
            if len(pending) > prefetch:
                break
        while pending:
            batch, futures = pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append((following, [pool.submit(_decode, root, item, recipe, adapter) for item in following]))
            yield batch, [future.result() for future in futures]


def input_workers(params, adapter, recipe):
    """Decoder threads for this cell (0 = one per core, up to 8), and why fewer than asked.

    A recipe that resizes with the framework's own op (GluonCV: mx.image.imresize) gets one
    decoder unless the adapter declares that op thread-safe: MXNet's Python front end is not.
    """
    asked = int(params.get("workers", 1)) or min(8, os.cpu_count() or 1)
    if asked > 1 and recipe.resize_with == "framework" and not getattr(adapter, "resize_thread_safe", False):
        return 1, "the framework's own resize is not thread-safe: one decoder"
    return asked, None


def run_error_suite(adapter, model, recipe, dataset, params, out_dir):
    batch_size = int(params["batch_size"])
    workers, workers_note = input_workers(params, adapter, recipe)
    prefetch = int(params.get("prefetch", 2))
    rows, unreadable, modes = [], [], {}
    top1 = top5 = 0
    decode_s = model_s = wait_s = 0.0
    wall = time.perf_counter()
    waiting = time.perf_counter()
    for batch, decoded in decoded_batches(dataset.root, dataset.items, recipe, adapter, batch_size, workers,
                                          prefetch):
        wait_s += time.perf_counter() - waiting
        arrays, kept = [], []
        for item, (array, mode, problem, seconds) in zip(batch, decoded):
            decode_s += seconds
            if problem is not None:
                unreadable.append(dict(file=item[0], **problem))
                continue
            modes[mode] = modes.get(mode, 0) + 1
            arrays.append(array)
            kept.append(item)
        if arrays:
            tick = time.perf_counter()
            logits = adapter.predict(model, np.stack(arrays))
            model_s += time.perf_counter() - tick
            # mergesort: the stable sort numpy had before kind="stable" (1.15); the MXNet 1.4 row has 1.14
            best = np.argsort(-logits, axis=1, kind="mergesort")[:, :5]
            for (name, label), top in zip(kept, best):
                top1 += int(top[0] == label)
                top5 += int(label in top)
                rows.append([name, label] + [int(k) for k in top])
        waiting = time.perf_counter()
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
        "input_workers_note": workers_note,
        "prefetch_batches": prefetch,
        "decode_s": decode_s,  # summed over the decoder threads
        "model_s": model_s,
        "input_wait_s": wait_s,  # the model loop waiting for decoded batches
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
