"""Weights bookkeeping shared by the adapters: file hashes and a digest of loaded tensors."""

import hashlib
import os

import numpy as np


class WeightsError(Exception):
    """Weights could not be obtained or did not match what was expected."""


def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_digest(named_arrays):
    """sha256 over (name, dtype, shape, bytes) of every tensor, in name order.

    Unlike a file hash it identifies the weights actually in the model, whatever format or
    download they came from, so two framework versions can be shown to hold the same ones.
    """
    digest = hashlib.sha256()
    for name, array in sorted(named_arrays, key=lambda item: item[0]):
        array = np.ascontiguousarray(array)
        digest.update("{}|{}|{}\n".format(name, array.dtype.str, array.shape).encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_to_load(adapter, name, kwargs, weights, workdir, input_shape):
    """(path, record) of the weight file a non-pretrained build loads.

    Random weights are written now by the adapter (seeded), so they reach the model through
    the same file path as real ones; a given file's sha256 is checked before it is read.
    """
    record = {"source": weights["source"]}
    if weights["source"] == "random":
        record["seed"] = int(weights["seed"])
        path = adapter.save_seeded(name, kwargs, weights["seed"], os.path.join(
            workdir, "{}-seed{}{}".format(name, weights["seed"], adapter.weights_suffix())), input_shape)
    else:
        path = weights["path"]
    record["sha256"] = sha256_file(path)
    if weights.get("sha256") and record["sha256"] != weights["sha256"]:
        raise WeightsError("weights file {} has sha256 {}, expected {}; refusing to load it".format(
            path, record["sha256"], weights["sha256"]))
    record["path"] = None if weights["source"] == "random" else path
    return path, record
