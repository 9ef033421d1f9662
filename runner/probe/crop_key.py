"""A crop cache entry's key: everything that determines the pixels of a val set's crops under a recipe
(runner/probe/crop_cache.py keeps the entries under it).

Python 3.7, stdlib, and Pillow and the framework to read their versions.
"""

import hashlib
import json
import platform

from .decoders import FRAMEWORK_DECODERS

FORMAT = 1
PIXEL_FIELDS = ("resize", "crop", "interpolation", "resize_mode", "crop_offset", "resize_with", "decoder")


def pixel_libraries(recipe, adapter):
    """What decodes and resizes: the libraries and versions whose output the crops are."""
    from PIL import Image
    import PIL

    libraries = {"pillow": PIL.__version__, "libjpeg": getattr(Image.core, "jpeglib_version", None),
                 "zlib": getattr(Image.core, "zlib_version", None), "machine": platform.machine()}
    if recipe.resize_with == "framework":
        libraries["resize"] = {"framework": adapter.name, "versions": adapter.versions()}
    if recipe.decoder in FRAMEWORK_DECODERS:
        libraries["decoder"] = {"framework": adapter.name, "versions": adapter.versions()}
    elif recipe.decoder == "opencv":
        import cv2

        libraries["decoder"] = {"opencv": cv2.__version__}
    return libraries


def images_sha256(rels, digests):
    """One digest of a val set: its file names and their contents' sha256, in order."""
    listing = "".join("{}\t{}\n".format(rel, digest) for rel, digest in zip(rels, digests))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def key_content(rels, digests, recipe, adapter):
    return {"format": FORMAT, "count": len(rels), "images_sha256": images_sha256(rels, digests),
            # Pillow decodes unless the recipe says otherwise: left out then, so earlier entries keep their keys
            "recipe": {field: getattr(recipe, field) for field in PIXEL_FIELDS
                       if field != "decoder" or recipe.decoder != "pillow"},
            "libraries": pixel_libraries(recipe, adapter)}


def content_key(content):
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
