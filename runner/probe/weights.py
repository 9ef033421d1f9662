"""Weights bookkeeping shared by the adapters: file hashes and a digest of loaded tensors."""

import hashlib

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
