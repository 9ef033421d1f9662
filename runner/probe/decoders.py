"""The JPEG decoders a recipe can name (Recipe.decoder), for explain's decoder axis.

    pillow               Pillow, then convert("RGB"): what torchvision's and Keras' loaders do (the default)
    framework            the row's own: tf.image.decode_jpeg (TF's default dct_method, INTEGER_FAST in TF's
                         libjpeg path), mx.image.imdecode (OpenCV inside MXNet: GluonCV's own eval),
                         torchvision.io.decode_image (libjpeg-turbo, torchvision >= 0.8)
    framework-accurate   tf.image.decode_jpeg with dct_method="INTEGER_ACCURATE" (TF only)
    opencv               cv2.imdecode(IMREAD_COLOR), where the row has OpenCV's Python package

Each decoder converts greyscale and CMYK images to RGB its own way, so the axis is also the colour
conversion's. Whatever decodes, the image is first opened by Pillow for its mode and size, and refused as
preprocess.load_rgb refuses it (too large, more than 8 bits per channel), so every decoder sees the same
images; the resize and crop that follow are the recipe's.

Python 3.7, numpy, Pillow and the row's framework.
"""

import importlib.util

import numpy as np
from PIL import Image

DECODERS = ("pillow", "framework", "framework-accurate", "opencv")
FRAMEWORK_DECODERS = ("framework", "framework-accurate")


def unavailable(decoder, adapter):
    """Why this row cannot decode with `decoder`, or None."""
    if decoder == "pillow":
        return None
    if decoder == "opencv":
        if importlib.util.find_spec("cv2") is None:
            return "OpenCV's Python package (cv2) is not installed in this row"
        return None
    name = getattr(adapter, "name", None)
    if decoder == "framework-accurate" and name != "keras":
        return "only TensorFlow's decode_jpeg has a dct_method to choose"
    io = getattr(adapter.torchvision, "io", None) if name == "torchvision" else None
    if name == "torchvision" and not (hasattr(io, "decode_image") and hasattr(io, "ImageReadMode")):
        return "torchvision {} has no torchvision.io.decode_image with ImageReadMode".format(
            adapter.torchvision.__version__)
    if name not in ("keras", "gluoncv", "torchvision"):
        return "no framework decoder for {}".format(name)
    return None


def resize_unavailable(adapter):
    """Why this row has no resize of its own for recipe.resize_with = "framework", or None."""
    name = getattr(adapter, "name", None)
    if name == "gluoncv":
        return None
    if name == "torchvision":
        if hasattr(getattr(adapter.torchvision, "transforms", None), "InterpolationMode"):
            return None
        return "torchvision {} has no tensor resize with InterpolationMode (0.9 and later)".format(
            adapter.torchvision.__version__)
    return "no resize of its own in the probe for {}".format(name)


def decode(path, decoder, adapter, open_checked):
    """(RGB Pillow image, Pillow's mode of the file); open_checked(path) (preprocess.py) refuses what load_rgb
    refuses, before anything is decoded."""
    with open_checked(path) as header:
        mode = header.mode
    with open(path, "rb") as handle:
        data = handle.read()
    if decoder == "opencv":
        import cv2

        array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if array is None:
            raise ValueError("cv2.imdecode could not decode {}".format(path))
        array = array[..., ::-1]  # OpenCV gives BGR
    elif adapter.name == "keras":
        array = _tensorflow(adapter, data, "INTEGER_ACCURATE" if decoder == "framework-accurate" else "")
    elif adapter.name == "gluoncv":
        array = adapter.mx.image.imdecode(data, flag=1, to_rgb=True).asnumpy()
    else:
        array = _torchvision(adapter, data)
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)), mode


def _torchvision(adapter, data):
    io = adapter.torchvision.io
    tensor = adapter.torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())
    return io.decode_image(tensor, mode=io.ImageReadMode.RGB).permute(1, 2, 0).numpy()


def _tensorflow(adapter, data, dct_method):
    tf = adapter.tf
    if tf.executing_eagerly():
        return tf.image.decode_jpeg(data, channels=3, dct_method=dct_method).numpy()
    # TF 1.x runs graphs: one small graph and session per dct_method, kept on the adapter
    sessions = adapter.__dict__.setdefault("_decode_sessions", {})
    if dct_method not in sessions:
        graph = tf.Graph()
        with graph.as_default():
            encoded = tf.placeholder(tf.string, shape=[])
            decoded = tf.image.decode_jpeg(encoded, channels=3, dct_method=dct_method)
        sessions[dct_method] = (tf.Session(graph=graph), encoded, decoded)
    session, encoded, decoded = sessions[dct_method]
    return session.run(decoded, feed_dict={encoded: data})
