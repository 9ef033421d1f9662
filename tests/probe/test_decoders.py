"""The decoder axis (runner/probe/decoders.py) in this row's framework, on the 30 real val images: each decoder
gives every image as 8-bit RGB of its true size, near Pillow's but its own; worker processes decode with it
exactly as the probe's own process does; a decoder the row lacks is said, not used."""

import numpy as np
import pytest

from runner.probe.crop_key import key_content
from runner.probe.dataset import open_dataset
from runner.probe.decoders import resize_unavailable, unavailable
from runner.probe.preprocess import Recipe, crop_file, load_rgb, open_checked
from runner.probe.decoders import decode

from .recipes import recipe
from .test_decode_pool import Recording, evaluate
from .test_explain_suite import FRAMEWORK

pytestmark = pytest.mark.skipif(FRAMEWORK is None, reason="no framework in this environment")

RECIPES = {"torchvision": "torchvision-224", "keras": "keras-caffe-224", "gluoncv": "gluoncv-224"}


@pytest.fixture(scope="module")
def adapter():
    from runner.probe.adapters import load_adapter

    return load_adapter(FRAMEWORK, "cpu", 1)


def own_decoders(adapter):
    return [d for d in ("framework", "framework-accurate") if unavailable(d, adapter) is None]


def test_what_the_row_cannot_decode_with_is_said(adapter):
    assert unavailable("pillow", adapter) is None
    if FRAMEWORK != "keras":
        assert unavailable("framework-accurate", adapter) == "only TensorFlow's decode_jpeg has a dct_method to choose"
    if FRAMEWORK == "torchvision" and not own_decoders(adapter):  # torchvision 0.2: no torchvision.io
        assert "has no torchvision.io.decode_image" in unavailable("framework", adapter)
    else:
        assert unavailable("framework", adapter) is None
    reason = unavailable("opencv", adapter)
    assert reason is None or reason == "OpenCV's Python package (cv2) is not installed in this row"


def test_the_rows_decoders_give_every_image_near_pillows_but_their_own(adapter, imagenet_sample):
    decoders = own_decoders(adapter)
    if not decoders:
        pytest.skip("this row has no decoder of its own")
    paths = sorted((imagenet_sample / "images").iterdir())
    for decoder in decoders:
        differ = 0
        for path in paths:
            pillow, mode = load_rgb(str(path))
            image, their_mode = decode(str(path), decoder, adapter, open_checked)
            ours, theirs = np.asarray(pillow, dtype=np.int16), np.asarray(image, dtype=np.int16)
            assert image.mode == "RGB" and their_mode == mode and theirs.shape == ours.shape, (decoder, path.name)
            assert np.abs(theirs - ours).mean() < 4.0, (decoder, path.name)  # the same photo, IDCTs apart (<= 2.6 seen)
            differ += int(not np.array_equal(theirs, ours))
            if mode == "L":  # greyscale: the same grey in every channel
                assert np.array_equal(theirs[..., 0], theirs[..., 1]) and np.array_equal(theirs[..., 1], theirs[..., 2])
        print("{} {}: {} of {} images differ from Pillow's".format(FRAMEWORK, decoder, differ, len(paths)))
        # TF's default DCT is the fast one, Pillow's the accurate one: all 30 differ with TF 1.13-2.21. Seen
        # otherwise: TF 1.13/2.1 accurate and MXNet 1.4/1.5 differ on 23 of 30, TF 2.21 accurate, MXNet 1.9 and
        # torchvision 0.29 on none (libjpeg-turbo versions).
        if FRAMEWORK == "keras" and decoder == "framework":
            assert differ >= 1


class Decoding(Recording):
    """Recording (test_decode_pool.py) with the row's adapter behind it: its decoder and resize."""

    name = FRAMEWORK  # the framework the pool's workers load for the recipe's decoder
    predict_later = device_conversion = staging = None  # Recording's predict, on the host: not the adapter's

    def __getattr__(self, attribute):
        return getattr(self.adapter, attribute)


@pytest.mark.parametrize("uses", ["decoder", "resize"])
def test_worker_processes_decode_and_resize_as_the_probe_does(adapter, imagenet_sample, tmp_path, uses):
    fields = recipe(RECIPES[FRAMEWORK]).as_dict()
    if uses == "decoder":
        decoders = own_decoders(adapter)
        if not decoders:
            pytest.skip("this row has no decoder of its own")
        chosen = Recipe.from_dict(dict(fields, decoder=decoders[0]))
    else:
        if resize_unavailable(adapter):
            pytest.skip(resize_unavailable(adapter))
        chosen = Recipe.from_dict(dict(fields, resize_with="framework"))
    assert chosen.uses_framework
    dataset = open_dataset(str(imagenet_sample))
    inline, pooled = Decoding(adapter), Decoding(adapter)
    _, inline_rows = evaluate(imagenet_sample, tmp_path, "inline", chosen, inline, workers=1, prefetch=0)
    _, pooled_rows = evaluate(imagenet_sample, tmp_path, "pooled", chosen, pooled, workers=2, prefetch=1)
    assert pooled_rows == inline_rows and len(inline_rows.splitlines()) == 31
    assert all(np.array_equal(a, b) for a, b in zip(inline.inputs, pooled.inputs))
    crop, _ = crop_file(str(dataset.root + "/" + dataset.items[0][0]), chosen, adapter)
    assert crop.shape == (chosen.crop, chosen.crop, 3)


def test_the_rows_own_resize_without_antialias_is_near_pillows_but_apart(adapter, imagenet_sample):
    """torchvision's tensor resize with antialias off (pytorch/vision#6506) against Pillow's, which filters when
    it downscales: the same picture, far more than the decoders apart; MXNet's is GluonCV's official."""
    reason = resize_unavailable(adapter)
    if FRAMEWORK == "keras" or (FRAMEWORK == "torchvision" and reason):
        assert reason is not None
        pytest.skip(reason)
    assert reason is None
    pillow = recipe(RECIPES[FRAMEWORK])
    if pillow.resize_with == "framework":
        pillow = Recipe.from_dict(dict(pillow.as_dict(), resize_with="pillow"))
    own = Recipe.from_dict(dict(pillow.as_dict(), resize_with="framework"))
    gaps = []
    for path in sorted((imagenet_sample / "images").iterdir()):
        ours, _ = crop_file(str(path), pillow, adapter)
        theirs, _ = crop_file(str(path), own, adapter)
        assert theirs.dtype == np.uint8 and theirs.shape == ours.shape == (own.crop, own.crop, 3)
        gaps.append(np.abs(theirs.astype(np.int16) - ours).mean())
    print("{}: own resize vs Pillow, mean |difference| per image {:.2f}-{:.2f}".format(FRAMEWORK, min(gaps), max(gaps)))
    assert 0.5 < np.mean(gaps) < 20  # apart (aliasing), yet the same picture


def test_the_crop_cache_keeps_each_decoders_crops_apart(adapter):
    official = recipe(RECIPES[FRAMEWORK])
    key = key_content(["a.JPEG"], ["0" * 64], official, adapter)
    assert "decoder" not in key["recipe"] and "decoder" not in key["libraries"]  # Pillow: the keys of before
    decoders = own_decoders(adapter)
    if decoders:
        other = key_content(["a.JPEG"], ["0" * 64], Recipe.from_dict(dict(official.as_dict(), decoder=decoders[0])),
                            adapter)
        assert other["recipe"]["decoder"] == decoders[0] and other["libraries"]["decoder"]["framework"] == FRAMEWORK
