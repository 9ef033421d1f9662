"""Synthetic ImageNet-like val folders made by the tests: real JPEGs, with the awkward cases."""

import os

import numpy as np
from PIL import Image

# 1000 made-up WordNet ids: enough to define the class order without copying ImageNet's.
WNIDS = ["n{:08d}".format(10000000 + 7 * i) for i in range(1000)]


def write_synsets(folder):
    with open(os.path.join(str(folder), "synsets.txt"), "w") as handle:
        handle.writelines("{} class {}\n".format(w, i) for i, w in enumerate(WNIDS))


def noise_image(seed, size=(500, 375), mode="RGB"):
    rng = np.random.RandomState(seed)
    channels = {"RGB": 3, "CMYK": 4, "L": 1}[mode]
    array = rng.randint(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    if channels == 1:
        array = array[:, :, 0]
    return Image.fromarray(array, mode)


def make_flat_set(folder, count=6, truncated=True, cmyk=True, grey=True):
    """A flat folder of JPEGs + val_labels.txt + synsets.txt. Returns {file: class index}."""
    folder = str(folder)
    images = os.path.join(folder, "images")
    os.makedirs(images)
    labels = {}
    for i in range(count):
        name = "ILSVRC2012_val_{:08d}.JPEG".format(i + 1)
        noise_image(i, size=(320 + 40 * i, 240 + 30 * i)).save(os.path.join(images, name), quality=90)
        labels[name] = i * 3
    extra = []
    if grey:
        extra.append(("ILSVRC2012_val_00000101.JPEG", "L"))
    if cmyk:
        extra.append(("ILSVRC2012_val_00000102.JPEG", "CMYK"))
    for j, (name, mode) in enumerate(extra):
        noise_image(100 + j, mode=mode).save(os.path.join(images, name), quality=90)
        labels[name] = 500 + j
    if truncated:
        name = "ILSVRC2012_val_00000103.JPEG"
        path = os.path.join(images, name)
        noise_image(200).save(path, quality=90)
        with open(path, "rb") as handle:
            data = handle.read()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        labels[name] = 999
    with open(os.path.join(folder, "val_labels.txt"), "w") as handle:
        for name in sorted(labels):
            handle.write("{} {}\n".format(name, WNIDS[labels[name]]))
    write_synsets(folder)
    return labels
