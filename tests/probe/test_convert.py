"""Float batches converted in slices and a batch ahead (runner/probe/convert.py) have the bits of one
preprocess.to_batch over the whole batch, for every layout and channel order, and come in order."""

import threading
import time

import numpy as np
import pytest

from runner.probe.convert import Converter, conversion_threads
from runner.probe.preprocess import Recipe, to_batch

RECIPES = {
    "torchvision": dict(resize=256, crop=224, interpolation="bilinear", mean=(0.485, 0.456, 0.406),
                        std=(0.229, 0.224, 0.225)),
    "keras-caffe": dict(resize=256, crop=224, interpolation="bicubic", scale=1.0, mean=(123.68, 116.779, 103.939),
                        std=(1.0, 1.0, 1.0), channel_order="BGR", layout="NHWC"),
    "keras-tf": dict(resize=342, crop=299, interpolation="bicubic", scale=127.5, mean=(1.0, 1.0, 1.0),
                     std=(1.0, 1.0, 1.0), layout="NHWC"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("threads, images", [(1, 9), (3, 9), (8, 64), (4, 3)])
def test_slices_give_the_bits_of_the_whole_batch(name, threads, images):
    recipe = Recipe(**RECIPES[name])
    crops = np.random.RandomState(images).randint(0, 256, (images, recipe.crop, recipe.crop, 3)).astype(np.uint8)
    converter = Converter(recipe, threads)
    try:
        sliced = converter.convert(crops)
    finally:
        converter.close()
    whole = to_batch(crops, recipe)
    assert sliced.dtype == whole.dtype == np.float32 and sliced.shape == whole.shape
    assert sliced.tobytes() == whole.tobytes()


def test_the_next_batch_is_converted_while_the_caller_works_on_this_one():
    recipe = Recipe(**RECIPES["torchvision"])
    batches = [np.full((2, 224, 224, 3), k, dtype=np.uint8) for k in range(4)]
    converted_at = {}

    class Timed(Converter):
        def convert(self, crops):
            out = Converter.convert(self, crops)
            converted_at[int(crops[0, 0, 0, 0])] = time.perf_counter()
            return out

    converter = Timed(recipe, 2)
    seen = []
    try:
        for index, floats in converter.ahead(range(4), lambda k: batches[k] if k != 2 else None):
            handed = time.perf_counter()
            seen.append((index, None if floats is None else float(floats[0, 0, 0, 0])))
            time.sleep(0.2)  # the model's forward pass
            if index + 1 in converted_at and index + 1 != 2:
                assert converted_at[index + 1] < handed + 0.15  # converted during the "forward pass", not after
    finally:
        converter.close()
    expected = [(k, None if k == 2 else float((np.float32(k) / np.float32(255) - np.float32(0.485)) / np.float32(0.229)))
                for k in range(4)]
    assert seen == expected


def test_a_failed_conversion_reaches_the_caller():
    recipe = Recipe(**RECIPES["torchvision"])
    converter = Converter(recipe, 2)
    try:
        with pytest.raises(ValueError):
            list(converter.ahead([np.zeros((2, 100, 100, 3), dtype=np.uint8)], lambda crops: crops))
    finally:
        converter.close()


def test_thread_count():
    assert conversion_threads(3) == 3 and 1 <= conversion_threads(0) <= 8
    assert threading.active_count() >= 1
