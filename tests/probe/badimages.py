"""Real awkward image files, written with Pillow: 16-bit, bomb-sized, truncated; and a flat val set holding
each of them next to good JPEGs, an image without a label, a label without an image and a stray file."""

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from .imagesets import WNIDS, noise_image, write_synsets


def sixteen_bit_png(path, size=(64, 48)):
    """A 16-bit greyscale PNG whose values run far above 255 (what a clip to 8 bits turns white)."""
    values = (np.arange(size[0] * size[1]) * 97 % 65536).astype(np.uint16).reshape(size[1], size[0])
    Image.fromarray(values).save(str(path))
    return str(path)


def png_claiming(path, width, height):
    """An 8x8 PNG whose header says width x height: Pillow takes the size from the header at open(),
    which is how a decompression bomb gets in without being large on disk."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"  # signature (8 bytes), then the IHDR chunk: length, type, data, CRC
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    with open(str(path), "wb") as handle:
        handle.write(bytes(data))
    return str(path)


def truncated_jpeg(path, seed=200):
    noise_image(seed).save(str(path), quality=90)
    with open(str(path), "rb") as handle:
        data = handle.read()
    with open(str(path), "wb") as handle:
        handle.write(data[: len(data) // 2])
    return str(path)


BAD = {
    "ILSVRC2012_val_00000201.png": "more than 8 bits per channel",
    "ILSVRC2012_val_00000202.png": "too large",
    "ILSVRC2012_val_00000203.JPEG": "OSError",
}


def make_bad_set(folder, good=3):
    """images/: `good` JPEGs, the three BAD files (labelled), one JPEG without a label, a README.txt;
    val_labels.txt also names a file that is not there. Returns the folder."""
    folder = str(folder)
    images = os.path.join(folder, "images")
    os.makedirs(images)
    labelled = []
    for i in range(good):
        name = "ILSVRC2012_val_{:08d}.JPEG".format(i + 1)
        noise_image(i, size=(300 + 20 * i, 240)).save(os.path.join(images, name), quality=90)
        labelled.append(name)
    names = sorted(BAD)
    sixteen_bit_png(os.path.join(images, names[0]))
    png_claiming(os.path.join(images, names[1]), 20000, 20000)
    truncated_jpeg(os.path.join(images, names[2]))
    labelled += names
    noise_image(300).save(os.path.join(images, "ILSVRC2012_val_00000301.JPEG"), quality=90)  # no label
    with open(os.path.join(images, "README.txt"), "w") as handle:
        handle.write("not an image\n")
    with open(os.path.join(folder, "val_labels.txt"), "w") as handle:
        for i, name in enumerate(labelled + ["ILSVRC2012_val_00000999.JPEG"]):  # the last has no image
            handle.write("{} {}\n".format(name, WNIDS[i * 11]))
    write_synsets(folder)
    return folder
