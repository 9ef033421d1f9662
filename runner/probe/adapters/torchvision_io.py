"""What torchvision reads and resizes apart from the model: the file its pretrained weights were cached in, and
its tensor resize (the explain grid's resize_with = "framework" for the torchvision rows).

Python 3.7, numpy and torch/torchvision of the row.
"""

import inspect
import os

import numpy as np


def tensor_resize(torch, torchvision, array, size, interpolation):
    """HWC uint8 -> HWC uint8 of `size` (width, height) with torchvision.transforms.functional.resize on a uint8
    tensor, antialias off: what a tensor pipeline without antialias gave (pytorch/vision#6506), unlike Pillow,
    which filters when it downscales. torchvision >= 0.9 (InterpolationMode); decoders.resize_unavailable says."""
    functional = torchvision.transforms.functional
    mode = getattr(torchvision.transforms.InterpolationMode, interpolation.upper())
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    extra = {"antialias": False} if "antialias" in inspect.signature(functional.resize).parameters else {}
    out = functional.resize(tensor, [int(size[1]), int(size[0])], interpolation=mode, **extra)
    return out.permute(1, 2, 0).contiguous().numpy()


def cached_weights_file(torchvision, name, tag):
    """The file torchvision cached the pretrained weights of model `name` in, or None."""
    url = None
    get_weight = getattr(torchvision.models, "get_weight", None)
    if get_weight is not None:
        try:
            url = get_weight("{}_Weights.{}".format(_weights_enum_prefix(name), tag)).url
        except Exception:  # noqa: BLE001 - enum names vary; fall back to model_urls
            url = None
    if url is None:
        module = inspect.getmodule(getattr(torchvision.models, name))
        url = getattr(module, "model_urls", {}).get(name)
    if not url:
        return None
    home = os.environ.get("TORCH_HOME", os.path.expanduser("~/.torch"))
    for sub in ("hub/checkpoints", "models", "checkpoints"):
        path = os.path.join(home, sub, os.path.basename(url))
        if os.path.isfile(path):
            return path
    return None


def _weights_enum_prefix(name):
    special = {"inception_v3": "Inception_V3", "mobilenet_v2": "MobileNet_V2", "densenet121": "DenseNet121"}
    if name in special:
        return special[name]
    if name.startswith("resnet"):
        return "ResNet" + name[len("resnet"):]
    return name.capitalize()
