"""Evaluation preprocessing, done the same way for every framework: Pillow + numpy.

Each framework's official recipe (from matrix.toml) is a Recipe: resize the shorter side
(or both sides), centre crop, scale, subtract mean, divide by std, channel order and
layout. The arithmetic follows torchvision's PIL path (shorter side -> `resize`, the long
side truncated; crop offsets rounded) so the tensors can be compared with each framework's
own helper inside its environment.
"""

import numpy as np
from PIL import Image

INTERPOLATIONS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


class Recipe(object):
    def __init__(self, resize, crop, interpolation="bilinear", resize_mode="shorter",
                 scale=255.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="RGB", layout="NCHW"):
        if interpolation not in INTERPOLATIONS:
            raise ValueError("interpolation {!r}: expected one of {}".format(interpolation, sorted(INTERPOLATIONS)))
        if resize_mode not in ("shorter", "square"):
            raise ValueError("resize_mode {!r}: expected 'shorter' or 'square'".format(resize_mode))
        if channel_order not in ("RGB", "BGR") or layout not in ("NCHW", "NHWC"):
            raise ValueError("channel_order must be RGB or BGR and layout NCHW or NHWC")
        self.resize = int(resize)
        self.crop = int(crop)
        self.interpolation = interpolation
        self.resize_mode = resize_mode
        self.scale = float(scale)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.channel_order = channel_order
        self.layout = layout

    @classmethod
    def from_dict(cls, spec):
        return cls(**spec)

    def input_shape(self, batch):
        if self.layout == "NCHW":
            return (batch, 3, self.crop, self.crop)
        return (batch, self.crop, self.crop, 3)


def load_rgb(path):
    """Decode an image into RGB. Greyscale, CMYK, palette and alpha images are converted.

    A truncated or unreadable file raises (OSError or ValueError from Pillow); the caller
    counts and lists it. Pillow's LOAD_TRUNCATED_IMAGES is deliberately left off: a
    half-grey image would be scored as if it were the real one.
    """
    with Image.open(path) as image:
        image.load()
        mode = image.mode
        return image.convert("RGB"), mode


def resize_and_crop(image, recipe):
    width, height = image.size
    if recipe.resize_mode == "square":
        size = (recipe.resize, recipe.resize)
    elif width <= height:
        size = (recipe.resize, int(recipe.resize * height / width))
    else:
        size = (int(recipe.resize * width / height), recipe.resize)
    if size != (width, height):
        image = image.resize(size, INTERPOLATIONS[recipe.interpolation])
    width, height = image.size
    top = int(round((height - recipe.crop) / 2.0))
    left = int(round((width - recipe.crop) / 2.0))
    return image.crop((left, top, left + recipe.crop, top + recipe.crop))


def to_array(image, recipe):
    """HWC uint8 RGB image -> normalised float32 array in the recipe's channel order and layout (CHW or HWC)."""
    array = np.asarray(image, dtype=np.float32) / recipe.scale
    array = (array - recipe.mean) / recipe.std
    if recipe.channel_order == "BGR":
        array = array[:, :, ::-1]
    if recipe.layout == "NCHW":
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array, dtype=np.float32)


def preprocess_file(path, recipe):
    image, mode = load_rgb(path)
    return to_array(resize_and_crop(image, recipe), recipe), mode
