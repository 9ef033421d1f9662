"""The decode-once crop cache: each val set's uint8 crops under each recipe, stored once for every cell.

    FOLDER/entries/KEY/manifest.json      what the entry holds (written last: an entry without it is partial)
    FOLDER/entries/KEY/crops-TOKEN.npy    (N, crop, crop, 3) uint8, a .npy file (np.load(mmap_mode="r") reads it)
    FOLDER/locks/KEY.lock                 flock held by the one cell that builds KEY; the others wait, then read
    FOLDER/digests/ROOT.json              the val set's file digests (runner/probe/crop_digests.py)

KEY is a hash of everything that determines the pixels (runner/probe/crop_key.py): the images' digests,
the recipe's decode, resize and crop fields, the decoding and resizing libraries' versions, the machine
architecture. Every cell with the same key reads the crops instead of decoding. The manifest holds each
crop's sha256: a reader checks every crop first, and a damaged entry is rebuilt (crop_source.py).

A committed crops file is never written again: a rebuild writes a new one and renames it in, so a
reader that has the old one open keeps reading consistent bytes. Past the size limit the least
recently used entries that no cell is building are removed.
"""

import errno
import fcntl
import glob
import os
import time
import uuid

import numpy as np

from .crop_key import FORMAT
from .crop_writer import EntryWriteError, EntryWriter
from .decode_pool import CropFile
from .jsonio import read_json, write_json_atomic
from .timestamps import now_iso

class CropCache(object):
    def __init__(self, folder, limit_bytes):
        self.folder, self.limit_bytes = os.path.abspath(folder), int(limit_bytes)
        for sub in ("entries", "locks", "digests"):
            _make_folder(os.path.join(self.folder, sub))

    def entry_folder(self, key):
        return os.path.join(self.folder, "entries", key)

    # -- reading -------------------------------------------------------------------------------
    def complete_entry(self, key, rels, crop):
        """The committed entry for `key` (its crops file open), or None when there is none or it is partial."""
        folder = self.entry_folder(key)
        manifest = _read_or_none(os.path.join(folder, "manifest.json"))
        if not manifest or manifest.get("format") != FORMAT or manifest.get("key") != key:
            return None
        try:
            fd = os.open(os.path.join(folder, manifest["data"]), os.O_RDONLY)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None  # removed since the manifest was read (evicted or rebuilt)
            raise
        entry = Entry(manifest, CropFile(fd, crop, offset=manifest["offset"]))
        expected = manifest["offset"] + len(rels) * entry.store.slot_bytes
        if [item[0] for item in manifest["items"]] != list(rels) or os.fstat(fd).st_size < expected:
            entry.close()
            return None
        try:
            os.utime(os.path.join(folder, "manifest.json"))  # last used: the size limit removes the oldest first
        except OSError:
            pass
        return entry

    # -- building ------------------------------------------------------------------------------
    def lock(self, key):
        """An open file holding the exclusive lock of `key` (close it to let go), and the seconds waited."""
        tick = time.time()
        handle = open(os.path.join(self.folder, "locks", key + ".lock"), "a")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        return handle, time.time() - tick

    def new_entry(self, key, content, rels, crop):
        """A Builder writing a fresh crops file for `key` (the caller holds its lock), or (None, why not)."""
        folder = self.entry_folder(key)
        _make_folder(folder)
        for name in os.listdir(folder):
            if name.endswith(".partial"):
                os.remove(os.path.join(folder, name))  # a builder that died: only the lock holder gets here
        header = _npy_header((len(rels), crop, crop, 3))
        size = len(header) + len(rels) * crop * crop * 3
        if size > self.limit_bytes:
            return None, "the entry would take {} bytes, over the cache's limit of {}".format(size, self.limit_bytes)
        with open(os.path.join(self.folder, "locks", "evict.lock"), "a") as guard:
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX)  # room made and taken by one builder at a time
            evicted = self._make_room(size, keep=key)
            promised = self._unwritten()
            used, free = self._written() + promised, _free_bytes(folder) - promised
            if used + size > self.limit_bytes:
                return None, "entries being built or read hold {} bytes of the cache's limit of {}, this one " \
                             "needs {}".format(used, self.limit_bytes, size)
            if free < size:
                return None, "{} bytes free in {} (after what the entries being built still write), the entry " \
                             "needs {}".format(max(0, free), folder, size)
            name = "crops-{}.npy".format(uuid.uuid4().hex[:12])
            fd = os.open(os.path.join(folder, name + ".partial"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, header)
            os.ftruncate(fd, size)  # sparse: its size reserves the room for the next builder's sums
        return Builder(self, key, content, rels, name, CropFile(fd, crop, offset=len(header)), evicted), None

    def usage(self):
        """Bytes the entries take; a crops file a cell is still building counts whole: the room it took."""
        return self._written() + self._unwritten()

    def _written(self):
        return sum(_folder_bytes(self.entry_folder(key)) for key in self._keys())

    def _unwritten(self):
        """The bytes the crops files being built have reserved (sparse: their size) and not yet written; a
        partial file whose builder died (its key's lock is free) reserves nothing."""
        total = 0
        for key in self._keys():
            for path in glob.glob(os.path.join(self.entry_folder(key), "*.partial")):
                try:
                    info = os.stat(path)
                except OSError:
                    continue  # committed or abandoned meanwhile
                if info.st_size > info.st_blocks * 512 and self._building(key):
                    total += info.st_size - info.st_blocks * 512
        return total

    def _building(self, key):
        try:
            handle = open(os.path.join(self.folder, "locks", key + ".lock"), "rb")
        except OSError:
            return False
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                return False
            except OSError:
                return True

    def _make_room(self, size, keep):
        """Remove least recently used entries until `size` more bytes fit; those being built stay. Their keys."""
        evicted = []
        used = self.usage()
        for _, key in sorted((self._last_used(key), key) for key in self._keys() if key != keep):
            if used + size <= self.limit_bytes:
                break
            freed = self.remove_unless_busy(key)
            if freed is not None:
                used -= freed
                evicted.append(key)
        return evicted

    def remove(self, key):
        """Drop `key`'s entry (the caller holds its lock): the manifest first, so no reader takes it up."""
        folder = self.entry_folder(key)
        for name in ["manifest.json"] + sorted(os.listdir(folder) if os.path.isdir(folder) else []):
            try:
                os.remove(os.path.join(folder, name))
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise

    def remove_unless_busy(self, key):
        """Drop `key`'s entry unless a cell is building it: the bytes freed, or None (also `dlmatrix crops`)."""
        with open(os.path.join(self.folder, "locks", key + ".lock"), "a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return None  # a cell is building it
            size = _folder_bytes(self.entry_folder(key))
            self.remove(key)
            try:
                os.rmdir(self.entry_folder(key))
            except OSError:
                pass
            return size

    def _keys(self):
        return sorted(os.listdir(os.path.join(self.folder, "entries")))

    def _last_used(self, key):
        try:
            return os.stat(os.path.join(self.entry_folder(key), "manifest.json")).st_mtime
        except OSError:
            return 0.0  # partial or half removed: first to go


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
        self.committed = False

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
            _write_shared(os.path.join(folder, "manifest.json"), manifest)
        except OSError as exc:  # a disk that fills at the last moment: dropped as one that filled before
            _remove(data)
            raise EntryWriteError("writing the entry's manifest failed: {}".format(exc))
        self.committed = True
        self.store.close()
        for name in os.listdir(folder):
            if name.startswith("crops-") and name != self.name:
                _remove(os.path.join(folder, name))  # the crops files it replaces; open readers keep theirs

    def abandon(self):
        if self.committed:
            return  # an interrupt between the commit and its caller's bookkeeping: nothing to undo
        self.writer.stop()
        self.store.close()
        _remove(os.path.join(self.cache.entry_folder(self.key), self.name + ".partial"))


def _npy_header(shape):
    import io

    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue()


def _write_shared(path, data):
    """Readable by every user: the venv backend's cells run as the user, the docker backend's as its own uid."""
    write_json_atomic(path, data)
    os.chmod(path, 0o644)


def _make_folder(path):
    try:
        os.makedirs(path)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise


def _read_or_none(path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None  # absent, or cut short by a writer that died: as good as absent


def _free_bytes(folder):
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _folder_bytes(folder):
    """The disk its files take: a crops file being built (or left by a builder that died) is sparse, and only
    what was written counts."""
    total = 0
    for name in (os.listdir(folder) if os.path.isdir(folder) else []):
        try:
            total += os.stat(os.path.join(folder, name)).st_blocks * 512
        except OSError:
            pass
    return total


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
