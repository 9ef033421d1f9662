"""Evaluation preprocessing, done the same way for every framework: Pillow + numpy.

Each framework's official recipe (from matrix.toml) is a Recipe: resize the shorter side
(or both sides), centre crop, scale, subtract mean, divide by std, channel order and
layout. The arithmetic follows torchvision's PIL path (shorter side -> `resize`, the long
side truncated; crop offsets rounded) so the tensors can be compared with each framework's
own helper inside its environment.
"""

import os

import numpy as np
from PIL import Image, ImageFile

# Pillow's ways of saying "not an image": a truncated, corrupt or non-image file.
UNREADABLE = (OSError, ValueError, SyntaxError)

INTERPOLATIONS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


class Recipe(object):
    def __init__(self, resize, crop, interpolation="bilinear", resize_mode="shorter",
                 scale=255.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="RGB", layout="NCHW",
                 crop_offset="round", resize_with="pillow"):
        if interpolation not in INTERPOLATIONS:
            raise ValueError("interpolation {!r}: expected one of {}".format(interpolation, sorted(INTERPOLATIONS)))
        if resize_mode not in ("shorter", "square"):
            raise ValueError("resize_mode {!r}: expected 'shorter' or 'square'".format(resize_mode))
        if channel_order not in ("RGB", "BGR") or layout not in ("NCHW", "NHWC"):
            raise ValueError("channel_order must be RGB or BGR and layout NCHW or NHWC")
        if resize_with not in ("pillow", "framework"):
            raise ValueError("resize_with {!r}: expected 'pillow' or 'framework'".format(resize_with))
        if crop_offset not in ("round", "floor"):
            raise ValueError("crop_offset {!r}: expected 'round' or 'floor'".format(crop_offset))
        self.resize = int(resize)
        self.crop = int(crop)
        self.interpolation = interpolation
        self.resize_mode = resize_mode
        self.scale = float(scale)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.channel_order = channel_order
        self.layout = layout
        self.crop_offset = crop_offset
        self.resize_with = resize_with

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
    counts and lists it. Pillow's LOAD_TRUNCATED_IMAGES is held off here: a half-grey image
    would be scored as if it were the real one, and importing gluoncv 0.10 turns the flag on
    for the whole process (gluoncv/data/mhp.py).
    """
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            return image.convert("RGB"), mode
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def resize_and_crop(image, recipe, adapter=None):
    """Resize (Pillow, or the framework's own resize where the recipe says so) and centre-crop."""
    width, height = image.size
    if recipe.resize_mode == "square":
        size = (recipe.resize, recipe.resize)
    elif width <= height:
        size = (recipe.resize, int(recipe.resize * height / width))
    else:
        size = (int(recipe.resize * width / height), recipe.resize)
    if size != (width, height):
        if recipe.resize_with == "framework":
            # Pillow's bilinear filters when downscaling and OpenCV's (inside MXNet) does not:
            # 2.5 grey levels apart on average, enough to move a published error.
            image = Image.fromarray(adapter.resize(np.asarray(image), size, recipe.interpolation))
        else:
            image = image.resize(size, INTERPOLATIONS[recipe.interpolation])
    width, height = image.size
    # torchvision rounds the centre-crop offset; MXNet's center_crop floors it (one pixel apart).
    offset = (lambda extra: int(round(extra / 2.0))) if recipe.crop_offset == "round" else (lambda extra: extra // 2)
    top, left = offset(height - recipe.crop), offset(width - recipe.crop)
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


def preprocess_file(path, recipe, adapter=None):
    image, mode = load_rgb(path)
    return to_array(resize_and_crop(image, recipe, adapter), recipe), mode


def preprocess_item(root, rel, recipe, adapter=None):
    """(array, Pillow mode, None) for one file under `root`, or (None, None, why) when it cannot be read."""
    try:
        array, mode = preprocess_file(os.path.join(root, rel), recipe, adapter)
    except UNREADABLE as exc:
        return None, None, "{}: {}".format(type(exc).__name__, exc)
    return array, mode, None


def preprocess_items(root, items, recipe, adapter=None):
    """Preprocess (relative path, label) items; unreadable files are listed, not raised.

    Returns (arrays, kept items, their Pillow modes, unreadable [{"file", "error"}]).
    """
    arrays, kept, modes, unreadable = [], [], [], []
    for rel, label in items:
        array, mode, error = preprocess_item(root, rel, recipe, adapter)
        if error is not None:
            unreadable.append({"file": rel, "error": error})
            continue
        arrays.append(array)
        kept.append((rel, label))
        modes.append(mode)
    return arrays, kept, modes, unreadable
