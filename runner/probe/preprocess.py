"""Evaluation preprocessing, done the same way for every framework: Pillow + numpy.

Each framework's official recipe (from matrix.toml) is a Recipe: resize the shorter side
(or both sides), centre crop, scale, subtract mean, divide by std, channel order and
layout. The arithmetic follows torchvision's PIL path (shorter side -> `resize`, the long
side truncated; crop offsets rounded) so the tensors can be compared with each framework's
own helper inside its environment.
"""

import errno
import os
import re

import numpy as np
from PIL import Image, ImageFile

from .decoders import DECODERS, FRAMEWORK_DECODERS, decode

# Pillow's default Image.MAX_IMAGE_PIXELS (1024 * 1024 * 1024 // 4 // 3). Pillow only warns above it
# (DecompressionBombWarning) and raises at twice it, and a framework may change the global; the probe
# refuses everything above it itself, before decoding: one such image takes 358 MB decoded, in each
# decoder thread, while real photos are far smaller (the val sample's largest is 2816x2112, 5.9 MP).
MAX_IMAGE_PIXELS = 89478485


class ImageRefused(Exception):
    """An image the probe will not evaluate; str() is the whole reason, `kind` its short name."""

    def __init__(self, kind, reason):
        super(ImageRefused, self).__init__(reason)
        self.kind = kind


# Pillow's ways of saying "not an image": a truncated, corrupt or non-image file; DecompressionBombError
# is not an OSError.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, ImageRefused)

INTERPOLATIONS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


class Recipe(object):
    def __init__(self, resize, crop, interpolation="bilinear", resize_mode="shorter",
                 scale=255.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="RGB", layout="NCHW",
                 crop_offset="round", resize_with="pillow", decoder="pillow"):
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
        if decoder not in DECODERS:
            raise ValueError("decoder {!r}: expected one of {}".format(decoder, ", ".join(DECODERS)))
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
        self.decoder = decoder

    @classmethod
    def from_dict(cls, spec):
        return cls(**spec)

    @property
    def uses_framework(self):
        """Whether the crops need the row's framework: its own resize or its own JPEG decoder."""
        return self.resize_with == "framework" or self.decoder in FRAMEWORK_DECODERS

    def as_dict(self):
        """The fields, JSON-ready (for decoder processes and results); from_dict(as_dict()) is the same recipe."""
        return {"resize": self.resize, "crop": self.crop, "interpolation": self.interpolation,
                "resize_mode": self.resize_mode, "scale": self.scale, "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std], "channel_order": self.channel_order, "layout": self.layout,
                "crop_offset": self.crop_offset, "resize_with": self.resize_with, "decoder": self.decoder}

    def input_shape(self, batch):
        if self.layout == "NCHW":
            return (batch, 3, self.crop, self.crop)
        return (batch, self.crop, self.crop, 3)


def load_rgb(path):
    """Decode an image into RGB. Greyscale, CMYK, palette and alpha images are converted.

    That conversion is what each framework's own loader does: torchvision's pil_loader
    (torchvision/datasets/folder.py) and Keras' load_img (color_mode="rgb") call PIL's
    convert("RGB"); MXNet's imdecode (flag 1, OpenCV's IMREAD_COLOR) always gives 3-channel
    8-bit colour with the alpha dropped. A 16-bit RGB or RGBA PNG arrives here already 8-bit
    (Pillow's PNG plugin keeps the high byte, as OpenCV's 8-bit conversion does).

    A truncated or unreadable file raises (OSError or ValueError from Pillow); an image with
    more than 8 bits per channel or more than MAX_IMAGE_PIXELS pixels raises ImageRefused
    before it is decoded; the caller counts and lists it. Pillow's LOAD_TRUNCATED_IMAGES is
    held off here: a half-grey image would be scored as if it were the real one, and importing
    gluoncv 0.10 turns the flag on for the whole process (gluoncv/data/mhp.py).
    """
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with open_checked(path) as image:
            image.load()
            mode = image.mode
            return image.convert("RGB"), mode
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def open_checked(path):
    """Pillow's image of the file, not yet decoded; ImageRefused when it is too large or wider than 8 bits."""
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageRefused("too large", _too_large(_pillow_pixels(exc), str(exc)))
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageRefused("too large", _too_large("{} x {} = {}".format(width, height, width * height)))
    if _wide(image.mode):
        image.close()
        raise ImageRefused("more than 8 bits per channel", _WIDE_REASON.format(mode=image.mode))
    return image


# PIL's convert("RGB") clips 16- and 32-bit values to 255 (torchvision, Keras); OpenCV's imdecode
# (MXNet) scales 16-bit to 8-bit: the frameworks would see different images, so none is chosen here.
_WIDE_REASON = ("more than 8 bits per channel (Pillow mode {mode}): torchvision and Keras (PIL convert('RGB')) "
                "would clip it to white, MXNet (OpenCV imdecode) would scale it to 8 bits, so it is not evaluated; "
                "convert the file to 8-bit")


def _wide(mode):
    # "I;16", "I;16B", ... are 16-bit greyscale (Pillow >= 10 opens 16-bit PNGs so, older Pillow as "I").
    return mode in ("I", "F") or mode.startswith("I;")


def _pillow_pixels(exc):
    # Pillow's message since 5.0: "Image size (N pixels) exceeds limit of M pixels, ...".
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return found.group(1) if found else None


def _too_large(pixels, pillow=None):
    said = "{} pixels".format(pixels) if pixels else "Pillow: {}".format(pillow)
    return ("too large: {}, over the limit of {} pixels (Pillow's default Image.MAX_IMAGE_PIXELS, its "
            "decompression-bomb guard), so it is not decoded; downscale the file if it is a real photo".format(
                said, MAX_IMAGE_PIXELS))


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


def to_batch(crops, recipe):
    """(N, crop, crop, 3) uint8 RGB crops -> the float32 batch np.stack([to_array(c) for c in crops]) gives.

    The same operations on the same values, so the same bits (tested on every recipe), but in place and
    with the layout and channel order taken while converting to float: several times faster than one
    to_array per image, and numpy lets go of the GIL for them.
    """
    return to_batch_into(crops, recipe, np.empty(recipe.input_shape(len(crops)), dtype=np.float32))


def to_batch_into(crops, recipe, out):
    """to_batch writing into `out` (float32, the batch's layout); element by element the same operations, so a
    batch converted in slices (runner/probe/convert.py) has the bits of one converted whole."""
    mean, std = recipe.mean, recipe.std
    if recipe.channel_order == "BGR":
        crops, mean, std = crops[..., ::-1], mean[::-1], std[::-1]
    if recipe.layout == "NCHW":
        crops, mean, std = crops.transpose(0, 3, 1, 2), mean.reshape(3, 1, 1), std.reshape(3, 1, 1)
    out[...] = crops
    np.divide(out, recipe.scale, out=out)
    np.subtract(out, mean, out=out)
    np.divide(out, std, out=out)
    return out


def preprocess_file(path, recipe, adapter=None):
    crop, mode = crop_file(path, recipe, adapter)
    return to_array(crop, recipe), mode


def crop_file(path, recipe, adapter=None):
    """(HWC uint8 RGB crop, Pillow mode): everything of the recipe before the float conversion."""
    if recipe.decoder == "pillow":
        image, mode = load_rgb(path)
    else:
        image, mode = decode(path, recipe.decoder, adapter, open_checked)
    return np.asarray(resize_and_crop(image, recipe, adapter), dtype=np.uint8), mode


def crop_item(root, rel, recipe, adapter=None):
    """(uint8 crop, Pillow mode, None) for one file under `root`, or (None, None, problem) when it cannot be read.

    problem = {"error": the reason, "kind": a short name to count reasons by, and "errno" (ENOENT, EIO...) where
    the file system refused the file rather than the image being bad}.
    """
    try:
        crop, mode = crop_file(os.path.join(root, rel), recipe, adapter)
    except UNREADABLE as exc:
        if isinstance(exc, ImageRefused):
            return None, None, {"error": str(exc), "kind": exc.kind}
        problem = {"error": "{}: {}".format(type(exc).__name__, exc), "kind": type(exc).__name__}
        if isinstance(exc, OSError) and exc.errno is not None:  # the file system's, not the image's (Pillow: None)
            problem["errno"] = errno.errorcode.get(exc.errno, str(exc.errno))
        return None, None, problem
    return crop, mode, None


def preprocess_item(root, rel, recipe, adapter=None):
    """(array, Pillow mode, None) for one file under `root`, or (None, None, problem) as crop_item."""
    crop, mode, problem = crop_item(root, rel, recipe, adapter)
    return (None if crop is None else to_array(crop, recipe)), mode, problem


def preprocess_items(root, items, recipe, adapter=None):
    """Preprocess (relative path, label) items; unreadable files are listed, not raised.

    Returns (arrays, kept items, their Pillow modes, unreadable [{"file", "error", "kind"}]).
    """
    arrays, kept, modes, unreadable = [], [], [], []
    for rel, label in items:
        array, mode, problem = preprocess_item(root, rel, recipe, adapter)
        if problem is not None:
            unreadable.append(dict(file=rel, **problem))
            continue
        arrays.append(array)
        kept.append((rel, label))
        modes.append(mode)
    return arrays, kept, modes, unreadable
