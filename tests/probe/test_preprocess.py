import numpy as np
import pytest
from PIL import Image

from runner.probe.preprocess import Recipe, load_rgb, preprocess_file, resize_and_crop, to_array

from .imagesets import make_flat_set, noise_image

TORCH_224 = dict(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_shorter_side_resize_and_centre_crop_sizes():
    recipe = Recipe(**TORCH_224)
    image = noise_image(0, size=(500, 375))
    out = resize_and_crop(image, recipe)
    assert out.size == (224, 224)
    # 375 -> 256, so 500 -> int(256 * 500 / 375) = 341, as torchvision computes it.
    resized = image.resize((341, 256), Image.BILINEAR)
    left, top = int(round((341 - 224) / 2.0)), int(round((256 - 224) / 2.0))
    assert np.array_equal(np.asarray(out), np.asarray(resized.crop((left, top, left + 224, top + 224))))


def test_normalisation_layout_and_channel_order():
    pixel = Image.new("RGB", (4, 4), (255, 0, 128))
    recipe = Recipe(resize=4, crop=4, **{k: v for k, v in TORCH_224.items() if k in ("mean", "std")})
    chw = to_array(pixel, recipe)
    assert chw.shape == (3, 4, 4) and chw.dtype == np.float32
    assert chw[0, 0, 0] == pytest.approx((1.0 - 0.485) / 0.229, rel=1e-6)
    assert chw[1, 0, 0] == pytest.approx((0.0 - 0.456) / 0.224, rel=1e-6)
    caffe = Recipe(resize=4, crop=4, scale=1.0, mean=(123.68, 116.779, 103.939), channel_order="BGR", layout="NHWC")
    hwc = to_array(pixel, caffe)
    assert hwc.shape == (4, 4, 3)
    assert hwc[0, 0, 0] == pytest.approx(128 - 103.939)  # blue first
    assert hwc[0, 0, 2] == pytest.approx(255 - 123.68)


def test_greyscale_and_cmyk_are_converted_and_truncated_raises(tmp_path):
    make_flat_set(tmp_path, count=1)
    images = tmp_path / "images"
    for name, mode in (("ILSVRC2012_val_00000101.JPEG", "L"), ("ILSVRC2012_val_00000102.JPEG", "CMYK")):
        array, seen = preprocess_file(str(images / name), Recipe(**TORCH_224))
        assert seen == mode and array.shape == (3, 224, 224)
    with pytest.raises(OSError):
        load_rgb(str(images / "ILSVRC2012_val_00000103.JPEG"))


def test_bad_recipe_values_are_refused():
    with pytest.raises(ValueError, match="interpolation"):
        Recipe(resize=256, crop=224, interpolation="area")


def test_real_images_including_the_large_and_the_grey_one(imagenet_sample):
    recipe = Recipe(**TORCH_224)
    modes = set()
    for path in sorted((imagenet_sample / "images").iterdir()):
        array, mode = preprocess_file(str(path), recipe)
        modes.add(mode)
        assert array.shape == (3, 224, 224) and np.isfinite(array).all()
    assert "L" in modes


def test_crop_offset_rounds_like_torchvision_or_floors_like_mxnet():
    image = noise_image(1, size=(341, 256))  # 341 - 224 = 117: offset 58.5
    rounded = resize_and_crop(image, Recipe(resize=256, crop=224, crop_offset="round"))
    floored = resize_and_crop(image, Recipe(resize=256, crop=224, crop_offset="floor"))
    assert np.array_equal(np.asarray(rounded), np.asarray(image.crop((58, 16, 282, 240))))  # round(58.5) == 58 in py3
    image = noise_image(1, size=(343, 256))  # 119: offset 59.5
    rounded = resize_and_crop(image, Recipe(resize=256, crop=224, crop_offset="round"))
    floored = resize_and_crop(image, Recipe(resize=256, crop=224, crop_offset="floor"))
    assert np.array_equal(np.asarray(floored), np.asarray(image.crop((59, 16, 283, 240))))
    assert np.array_equal(np.asarray(rounded), np.asarray(image.crop((60, 16, 284, 240))))


class HalvingResizer(object):
    """A stand-in framework resize that is visibly not Pillow's: every pixel halved."""

    def resize(self, array, size, interpolation):
        assert interpolation == "bilinear"
        resized = np.asarray(Image.fromarray(array).resize(size, Image.NEAREST))
        return (resized // 2).astype(np.uint8)


def test_resize_with_framework_uses_the_adapters_resize():
    image = noise_image(2, size=(500, 375))
    recipe = Recipe(resize=256, crop=224, resize_with="framework")
    out = np.asarray(resize_and_crop(image, recipe, HalvingResizer()))
    assert out.shape == (224, 224, 3) and out.max() <= 127
    with pytest.raises(ValueError, match="resize_with"):
        Recipe(resize=256, crop=224, resize_with="opencv")
