"""Drift suite: the same seeded checkpoint through different versions of one framework.

Each version writes a checkpoint of seeded random weights in the framework's own weight-file
format and runs the images through it (a "writer" cell); each newer version then loads an
older version's file in a cell of its own (a "load" cell, spec drift.write = false). Every
version runs the same images through its own official preprocessing and saves the raw outputs;
the host compares them pair by pair (runner/verdicts/drift.py). No pretrained weights are needed.
"""

import hashlib
import os
import shutil
import tempfile

import numpy as np

from .preprocess import preprocess_items
from .weights import sha256_file


def _inputs(adapter, dataset, recipe):
    arrays, kept, _modes, unreadable = preprocess_items(dataset.root, dataset.items, recipe, adapter)
    if not arrays:
        raise RuntimeError("no image of the {} selected could be decoded".format(len(dataset.items)))
    return np.stack(arrays), [rel for rel, _label in kept], unreadable


def _outputs(adapter, model, inputs, batch_size):
    parts = [adapter.predict(model, inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def run_drift_suite(adapter, model_spec, recipe, dataset, params, out_dir, drift, seed):
    """`drift` = {"self", "cell_id", "write": bool, "checkpoints": [{"origin", "cell_id", "path", "sha256"}, ...]}:
    write (and evaluate) this version's own checkpoint, and evaluate the checkpoints given."""
    inputs, files, unreadable = _inputs(adapter, dataset, recipe)
    name, kwargs = model_spec["name"], model_spec.get("kwargs", {})
    checkpoints = list(drift["checkpoints"])
    files_out, own_record = {}, None
    if drift.get("write", True):
        own = "checkpoint" + adapter.weights_suffix()
        adapter.save_seeded(name, kwargs, seed, os.path.join(out_dir, own), recipe.input_shape(1))
        own_record = {"file": own, "sha256": sha256_file(os.path.join(out_dir, own))}
        checkpoints.insert(0, {"origin": drift["self"], "cell_id": drift["cell_id"], "path": os.path.join(out_dir, own),
                               "sha256": own_record["sha256"]})
        files_out["checkpoint"] = own
    evaluations = []
    scratch = tempfile.mkdtemp(prefix="drift-", dir=out_dir)
    try:
        for i, checkpoint in enumerate(checkpoints):
            entry = {"origin": checkpoint["origin"], "origin_cell": checkpoint["cell_id"]}
            if checkpoint.get("unavailable"):
                entry.update(status="unavailable", reason=checkpoint["unavailable"])
                evaluations.append(entry)
                continue
            entry["checkpoint_sha256"] = checkpoint["sha256"]
            try:
                model, record = adapter.build(name, kwargs, {"source": "file", "path": checkpoint["path"],
                                                             "sha256": checkpoint["sha256"]}, scratch,
                                              recipe.input_shape(1))
                outputs = _outputs(adapter, model, inputs, int(params["batch_size"]))
            except Exception as exc:  # noqa: BLE001 - a checkpoint this version cannot read is a finding
                entry.update(status="failed", reason="{}: {}".format(type(exc).__name__, str(exc)[:500]))
                evaluations.append(entry)
                continue
            filename = "outputs-{}.npy".format(i)
            np.save(os.path.join(out_dir, filename), outputs)
            files_out["outputs-{}".format(i)] = filename
            entry.update(status="ok", tensor_digest=record["tensor_digest"], outputs_file=filename,
                         outputs_sha256=hashlib.sha256(outputs.tobytes()).hexdigest(),
                         top1=[int(k) for k in np.argmax(outputs, axis=1)])
            evaluations.append(entry)
            del model
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "output_kind": getattr(adapter, "output_kind", "logits"),
        "seed": int(seed),
        "images_selected": len(dataset.items),
        "images": len(files),
        "files": files,
        "unreadable": unreadable,
        "input_sha256": hashlib.sha256(np.ascontiguousarray(inputs, dtype=np.float32).tobytes()).hexdigest(),
        "checkpoint": own_record,  # None for a cell that only loads another version's file
        "evaluations": evaluations,
    }, files_out
