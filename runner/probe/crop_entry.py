"""A crop cache entry (runner/probe/crop_cache.py): a committed one as a reader holds it, and one being built.

A Builder writes its crops file as FOLDER/entries/KEY/crops-TOKEN.npy.partial through a writer thread
(crop_writer.py), then commit() renames it in and writes the manifest last: an entry without a manifest is
partial and never read.
"""

import io
import os
import re

import numpy as np

from .crop_key import FORMAT
from .crop_writer import EntryWriteError, EntryWriter
from .jsonio import write_json_atomic
from .timestamps import now_iso


SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def manifest_problem(manifest, key, rels=None):
    """Why `manifest` is no entry of `key` a cell may read, or None. A hand-edited or half-restored manifest
    must not pass: an item without its sha256 would be read unchecked. `rels`: the images the key names."""
    if not isinstance(manifest, dict):
        return "its manifest is not a JSON object"
    if manifest.get("format") != FORMAT or manifest.get("key") != key:
        return "its manifest is of format {!r} for key {!r}, not format {} for its own key".format(
            manifest.get("format"), manifest.get("key"), FORMAT)
    data, offset, items = manifest.get("data"), manifest.get("offset"), manifest.get("items")
    if not isinstance(data, str) or not data.startswith("crops-") or os.path.basename(data) != data:
        return "its manifest names {!r} as its crops file".format(data)
    content, built = manifest.get("content"), manifest.get("built")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or not isinstance(content, dict) \
            or not isinstance(items, list) or not isinstance(built, (dict, type(None))) \
            or any(not isinstance(content.get(name), (dict, type(None))) for name in ("recipe", "libraries")):
        return "its manifest lacks a field (offset, content, items, built) or has one of the wrong type"
    if content.get("count") is not None and content["count"] != len(items):
        return "its manifest lists {} images, its key {}".format(len(items), content["count"])
    for index, item in enumerate(items):
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str) and (
                item[2] is None and isinstance(item[3], str) and SHA256.match(item[3])
                or isinstance(item[2], dict) and item[3] is None)):
            return "item {} of its manifest is not [image, mode, problem, sha256 of its crop]".format(index)
    if rels is not None and [item[0] for item in items] != list(rels):
        return "its manifest lists other images than its key names"
    return None


def crops_file_problem(name, size, expected):
    """Why an entry's crops file `name` of `size` bytes (None: not there) cannot hold the `expected` bytes its
    images take, or None: as a cell checks it and as `dlmatrix crops` lists it."""
    if size is None:
        return "its crops file {} is missing".format(name)
    if size < expected:
        return "its crops file is {} bytes, of the {} its images take".format(size, expected)
    return None


class Entry(object):
    """A committed entry: its manifest and its crops file (open, read-only)."""

    def __init__(self, manifest, store):
        self.manifest, self.store = manifest, store
        self.data = manifest["data"]
        self.items = manifest["items"]  # [rel, Pillow mode, problem, sha256 of the crop]

    def close(self):
        self.store.close()


class Builder(object):
    """A crops file being written for one key; commit() makes it the entry."""

    def __init__(self, cache, key, content, rels, name, store, evicted):
        self.cache, self.key, self.content, self.rels, self.name = cache, key, content, rels, name
        self.store, self.evicted = store, evicted
        self.infos = [None] * len(rels)
        self.decode_s = 0.0
        self.writer = EntryWriter(store)
        self.committed, self.built = False, None

    def add(self, batch):
        """A decoded batch (its crops from the decoders' ring or this process): queued for the writer thread."""
        readable = []
        for offset, (index, info) in enumerate(zip(range(batch.start, batch.stop), batch.infos)):
            self.infos[index] = info
            self.decode_s += info[2]
            if info[1] is None:
                readable.append(offset)
        self.writer.put(batch.start, np.ascontiguousarray(batch.crops), readable)

    def commit(self, by="cell"):
        """`by`: "cell" (an error cell decoded it for itself) or "prefill" (ahead of the cell, runner/prefill.py)."""
        digests = self.writer.finish()
        folder = self.cache.entry_folder(self.key)
        manifest = {"format": FORMAT, "key": self.key, "content": self.content, "data": self.name,
                    "offset": self.store.offset, "shape": [len(self.rels), self.store.crop, self.store.crop, 3],
                    "decode_s": self.decode_s, "built": {"by": by, "at": now_iso()},
                    "items": [[rel, info[0], info[1], digests.get(index)]
                              for index, (rel, info) in enumerate(zip(self.rels, self.infos))]}
        data = os.path.join(folder, self.name)
        try:
            # No fsync of the crops: a crash may leave pages of it unwritten under a durable manifest, and the
            # per-crop sha256 a reader checks finds them (the entry is rebuilt); syncing 7.5 GB would not pay.
            os.rename(data + ".partial", data)
            write_shared(os.path.join(folder, "manifest.json"), manifest)
        except OSError as exc:  # a disk that fills at the last moment: dropped as one that filled before
            remove_quietly(data)
            raise EntryWriteError("writing the entry's manifest failed: {}".format(exc))
        self.committed, self.built = True, manifest["built"]
        self.store.close()
        for name in os.listdir(folder):
            if name.startswith("crops-") and name != self.name:
                remove_quietly(os.path.join(folder, name))  # the crops files it replaces; open readers keep theirs

    def abandon(self):
        if self.committed:
            return  # an interrupt between the commit and its caller's bookkeeping: nothing to undo
        self.writer.stop()
        self.store.close()
        remove_quietly(os.path.join(self.cache.entry_folder(self.key), self.name + ".partial"))


def npy_header(shape):
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue()


def write_shared(path, data):
    """Readable by every user: the venv backend's cells run as the user, the docker backend's as its own uid."""
    write_json_atomic(path, data)
    os.chmod(path, 0o644)


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
