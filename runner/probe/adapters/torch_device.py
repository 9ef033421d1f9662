"""The torch adapter's side of a GPU that the error suite's loop needs: uint8 crops go over and are converted
there, and each batch's logits come back without the loop waiting for them before it queues the next batch.

Measured on an H200 with 16 cores (benchmarks/results/eval_speed-cuda.txt): converting on the host (in
threads) and copying 38 MB of floats for 64 crops at 224 kept a crop cache hit at 4.2x the pure model time.
Sent as uint8 the batch is a quarter of that, and the four elementwise passes take a fraction of a
millisecond on the GPU.

The conversion's bits are those of preprocess.to_batch_into: the same float32 operations (uint8 -> float32,
divide by scale, subtract mean, divide by std), each rounded once as IEEE 754 asks, in the same order. One
trap: CUDA torch divides by a number kept on the host as a multiplication by its reciprocal (one bit off now
and then), so scale, mean and std are tensors on the device. tests/probe/test_device_conversion.py compares
every recipe in matrix.toml bit for bit, on the CPU and on a GPU where there is one.

Python 3.7, numpy and torch.
"""

import threading
import time

import numpy as np


class DeviceConversion(object):
    """conversion(crops) -> the recipe's float32 batch as a tensor on `device`, from NHWC uint8 crops."""

    def __init__(self, torch, device, recipe):
        self.torch, self.device, self.recipe = torch, device, recipe
        mean, std = recipe.mean, recipe.std
        if recipe.channel_order == "BGR":
            mean, std = mean[::-1], std[::-1]
        shape = (3, 1, 1) if recipe.layout == "NCHW" else (3,)

        def on_device(values):
            return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).reshape(shape)).to(device)

        self.scale = on_device(np.full(3, recipe.scale, dtype=np.float32))
        self.mean, self.std = on_device(mean), on_device(std)
        # Page-locked host memory lets the copy be queued without a staging copy of its own; torch's caching
        # host allocator keeps a block until the copy queued from it is done, so each batch may take a new one.
        self.pinned = device.type == "cuda"

    def __call__(self, crops):
        torch = self.torch
        host = pinned_empty(torch, crops.shape, torch.uint8) if self.pinned else torch.empty(
            tuple(crops.shape), dtype=torch.uint8)
        host.numpy()[...] = crops
        batch = host.to(self.device, non_blocking=self.pinned)
        if self.recipe.channel_order == "BGR":
            batch = batch.flip(3)
        if self.recipe.layout == "NCHW":
            batch = batch.permute(0, 3, 1, 2)
        out = batch.contiguous().float()
        out.div_(self.scale)
        out.sub_(self.mean)
        out.div_(self.std)
        return out


def pinned_empty(torch, shape, dtype):
    """A page-locked host tensor from torch's caching host allocator. Asked for directly where empty() takes
    pin_memory: pin_memory() of a plain tensor copies it (9.6 MB of fresh pages for 64 crops at 224) into
    the pinned block first. torch 1.0's empty() takes no pin_memory, so there it is the copy."""
    try:
        return torch.empty(tuple(shape), dtype=dtype, pin_memory=True)
    except TypeError:
        return torch.empty(tuple(shape), dtype=dtype).pin_memory()


def predict_later(adapter, model, batch):
    """Queue the forward pass and the logits' copy to page-locked host memory; () -> the logits as numpy, which
    waits for the copy. Meanwhile the caller converts and queues the next batch, so the GPU does not idle
    while the host ranks this one."""
    if adapter.device.type != "cuda":  # nothing to overlap: computed now
        computed = adapter.predict(model, batch)
        return lambda: computed
    torch = adapter.torch
    out = adapter.forward(model, adapter.to_device(batch)).float()
    host = pinned_empty(torch, out.shape, torch.float32)
    host.copy_(out, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def logits():
        copied.synchronize()
        return host.numpy()
    return logits


def warm_up_later(adapter, model, recipe, batch_sizes):
    """Start a forward pass on zeros of each batch size in a thread; () -> the seconds it took, after waiting
    for it (its error, if any, is raised there). The first forward pass of a shape loads the CUDA kernels it
    uses and, with cudnn_autotune, times the convolution algorithms: time the error suite's loop would
    otherwise spend on its first batch, with the GPU idle until then. Here it runs while the input starts (the
    decoder processes, the crop cache's key and checks). Eval mode and no_grad: the model is unchanged."""
    torch = adapter.torch
    outcome = {}

    def run():
        tick = time.perf_counter()
        try:
            for size in batch_sizes:
                zeros = torch.zeros(recipe.input_shape(size), dtype=torch.float32, device=adapter.device)
                adapter.forward(model, adapter.to_device(zeros))
            adapter.synchronize()
        except BaseException as exc:  # raised in the suite's thread, where the cell records it
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - tick

    thread = threading.Thread(target=run, name="model warm-up")
    thread.daemon = True  # a cell that fails before joining it does not wait for it
    thread.start()

    def join():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["seconds"]
    return join
