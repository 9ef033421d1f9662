"""Float batches from uint8 crops, off the model's critical path.

On a GPU host the float conversion and normalisation of a batch (preprocess.to_batch, four passes over
a 38 MB batch of 64 crops at 224) took longer than the model's forward pass: measured on an H200 with 16
cores, the error suite reached 1,400-1,800 images/s against the model's 6,700, with the model loop hardly
waiting for decoded crops (benchmarks/results/eval_speed-cuda.txt). Two things take it off that path:
- each batch is converted in slices of a few images, one thread each (numpy lets go of the GIL, and a
  slice stays in the core's cache across the four passes);
- the next batch is converted while the model runs on this one.
Every slice goes through preprocess.to_batch's operations on the same values, so the bits are those of
one to_batch over the whole batch (tested).

Python 3.7, stdlib + numpy.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .cores import usable_cores
from .preprocess import to_batch_into

SLICE_IMAGES = 4  # 4 float crops at 224 are 2.4 MB: about what one core's cache holds


def conversion_threads(requested=0):
    """Threads for the conversion: `requested`, or (0) one per core this process may keep busy, up to 8."""
    return int(requested) or min(8, usable_cores())


class Converter(object):
    """convert(crops) -> float batch, with slices in `threads` threads; ahead(batches, select) -> an iterator
    that converts each batch while the caller works on the one before."""

    def __init__(self, recipe, threads, staging=None, on_device=None):
        """staging(shape) -> a float32 host array the framework copies to its device fastest (page-locked
        memory for a CUDA copy), or None for plain numpy memory. on_device(crops) -> the float batch made on
        the framework's device instead (the torch adapter's device_conversion): then no thread converts here."""
        self.recipe = recipe
        self.on_device = on_device
        self.threads = 0 if on_device is not None else max(1, int(threads))
        self._slices = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self._ahead = ThreadPoolExecutor(1)  # apart from the slices' pool: it waits for them
        self._staging, self._buffers, self._turn = staging, [], 0

    def _out(self, shape):
        """A batch array: plain, or the next of three staging buffers (sized by the first batch), so that the
        one being filled is never the one the device still copies from: the caller's predict of a batch ends
        with its logits on the host, and only the batch after it is converted meanwhile."""
        if self._staging is not None and len(self._buffers) < 3:
            self._buffers.append(self._staging(shape))
        if self._buffers:
            buffer = self._buffers[self._turn % 3]
            self._turn += 1
            if buffer is not None and buffer.shape[1:] == shape[1:] and len(buffer) >= shape[0]:
                return buffer[:shape[0]]
        return np.empty(shape, dtype=np.float32)

    def convert(self, crops):
        if self.on_device is not None:
            return self.on_device(crops)
        recipe = self.recipe
        out = self._out(recipe.input_shape(len(crops)))
        if self._slices is None or len(crops) <= SLICE_IMAGES:
            return to_batch_into(crops, recipe, out)
        starts = range(0, len(crops), SLICE_IMAGES)
        for future in [self._slices.submit(to_batch_into, crops[s:s + SLICE_IMAGES], recipe,
                                           out[s:s + SLICE_IMAGES]) for s in starts]:
            future.result()
        return out

    def ahead(self, items, crops_of):
        """(item, float batch or None) for each of `items`; crops_of(item) gives its crops (None: nothing to
        convert). Item i+1 is fetched and its conversion started before item i is handed over."""
        pending = None
        for item in items:
            crops = crops_of(item)
            started = (item, self._ahead.submit(self.convert, crops) if crops is not None else None)
            if pending is not None:
                yield pending[0], pending[1].result() if pending[1] is not None else None
            pending = started
        if pending is not None:
            yield pending[0], pending[1].result() if pending[1] is not None else None

    def close(self):
        self._ahead.shutdown(wait=True)
        if self._slices is not None:
            self._slices.shutdown(wait=True)
