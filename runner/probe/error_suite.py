"""Error suite: top-1 / top-5 error on an ImageNet val set, with per-image predictions."""

import csv
import os
import time

import numpy as np

from .preprocess import preprocess_items


def run_error_suite(adapter, model, recipe, dataset, params, out_dir):
    batch_size = int(params["batch_size"])
    rows, unreadable, modes = [], [], {}
    top1 = top5 = 0
    decode_s = model_s = 0.0
    items = dataset.items
    for start in range(0, len(items), batch_size):
        tick = time.perf_counter()
        arrays, kept, batch_modes, batch_unreadable = preprocess_items(
            dataset.root, items[start:start + batch_size], recipe, adapter)
        unreadable += batch_unreadable
        for mode in batch_modes:
            modes[mode] = modes.get(mode, 0) + 1
        decode_s += time.perf_counter() - tick
        if not arrays:
            continue
        tick = time.perf_counter()
        logits = adapter.predict(model, np.stack(arrays))
        model_s += time.perf_counter() - tick
        # mergesort: the stable sort numpy had before kind="stable" (1.15); the MXNet 1.4 row has 1.14
        best = np.argsort(-logits, axis=1, kind="mergesort")[:, :5]
        for (name, label), top in zip(kept, best):
            top1 += int(top[0] == label)
            top5 += int(label in top)
            rows.append([name, label] + [int(k) for k in top])
    evaluated = len(rows)
    predictions = os.path.join(out_dir, "predictions.csv")
    with open(predictions, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "top1", "top2", "top3", "top4", "top5"])
        writer.writerows(rows)
    if not evaluated:
        raise RuntimeError("no image of the {} selected could be decoded".format(len(items)))
    return {
        "images_selected": len(items),
        "images_evaluated": evaluated,
        "top1_correct": top1,
        "top5_correct": top5,
        "top1_error": 100.0 * (evaluated - top1) / evaluated,
        "top5_error": 100.0 * (evaluated - top5) / evaluated,
        "unreadable_count": len(unreadable),
        "unreadable": unreadable,
        "image_modes": modes,
        "batch_size": batch_size,
        "decode_s": decode_s,
        "model_s": model_s,
        "decode_images_per_s": evaluated / decode_s if decode_s else None,
        "model_images_per_s": evaluated / model_s if model_s else None,
        "predictions_file": "predictions.csv",
    }
