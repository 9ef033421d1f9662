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

from .crop_entry import Builder, Entry, crops_file_problem, manifest_problem, npy_header
from .crop_key import FORMAT
from .decode_pool import CropFile
from .jsonio import read_json


class CropCache(object):
    def __init__(self, folder, limit_bytes):
        self.folder, self.limit_bytes = os.path.abspath(folder), int(limit_bytes)
        for sub in ("entries", "locks", "digests"):
            _make_folder(os.path.join(self.folder, sub))

    def entry_folder(self, key):
        return os.path.join(self.folder, "entries", key)

    # -- reading -------------------------------------------------------------------------------
    def complete_entry(self, key, rels, crop, record=None):
        """The committed entry for `key` (its crops file open), or None when there is none or it is partial.
        One that is damaged (a manifest that cannot be read or names other images, a crops file cut short) is
        not used either, and `record["damaged"]` says why."""
        folder = self.entry_folder(key)
        try:
            manifest = read_json(os.path.join(folder, "manifest.json"))
        except FileNotFoundError:
            return None  # none yet, or partial: the manifest is written last
        except (OSError, ValueError) as exc:  # written atomically, so not a writer that died
            return _damaged(record, key, "its manifest cannot be read ({})".format(exc))
        if isinstance(manifest, dict) and manifest.get("format") != FORMAT and manifest.get("key") == key:
            return None  # an older format's entry: rebuilt without a word
        problem = manifest_problem(manifest, key, rels)
        if problem:
            return _damaged(record, key, problem)
        try:
            fd = os.open(os.path.join(folder, manifest["data"]), os.O_RDONLY)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            if _same_manifest(folder, manifest):
                return _damaged(record, key, crops_file_problem(manifest["data"], None, 0))
            return None  # removed since the manifest was read (evicted or rebuilt)
        entry = Entry(manifest, CropFile(fd, crop, offset=manifest["offset"]))
        expected, size = manifest["offset"] + len(rels) * entry.store.slot_bytes, os.fstat(fd).st_size
        problem = crops_file_problem(manifest["data"], size, expected)
        if problem:
            entry.close()
            return _damaged(record, key, problem)
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
        # The caller holds the key's lock and found no entry it can use: what its folder holds (a builder's partial
        # file, a crops file whose manifest is gone, an entry found damaged) goes now, so it is not counted against
        # the room. A reader with the old crops file open keeps reading it.
        self.remove(key)
        header = npy_header((len(rels), crop, crop, 3))
        size = len(header) + len(rels) * crop * crop * 3
        with open(os.path.join(self.folder, "locks", "evict.lock"), "a") as guard:
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX)  # room made and taken by one builder at a time
            why, evicted = self._no_room(key, size)
            if why:
                _remove_folder(self.entry_folder(key))  # an empty folder would list as an entry left behind
                return None, why
            folder = self.entry_folder(key)
            _make_folder(folder)
            name = "crops-{}.npy".format(uuid.uuid4().hex[:12])
            path = os.path.join(folder, name + ".partial")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, header)
                os.ftruncate(fd, size)  # sparse: its size reserves the room for the next builder's sums
            except OSError:  # a full disk, a file system with a smaller largest file (FAT: 4 GiB)
                os.close(fd)
                os.remove(path)
                _remove_folder(folder)
                raise
        return Builder(self, key, content, rels, name, CropFile(fd, crop, offset=len(header)), evicted), None

    def _no_room(self, key, size):
        """(why `size` more bytes do not fit, or None; the keys evicted to make room)."""
        if size > self.limit_bytes:
            return "the entry would take {} bytes, over the cache's limit of {}".format(size, self.limit_bytes), []
        evicted = self._make_room(size, keep=key)
        promised = self._unwritten()
        used, free = self._written() + promised, _free_bytes(self.folder) - promised
        if used + size > self.limit_bytes:
            return "entries being built or read hold {} bytes of the cache's limit of {}, this one needs {}".format(
                used, self.limit_bytes, size), evicted
        if free < size:
            return "{} bytes free in {} (after what the entries being built still write), the entry needs {}".format(
                max(0, free), self.folder, size), evicted
        return None, evicted

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
                if info.st_size > info.st_blocks * 512 and building(self.folder, key):
                    total += info.st_size - info.st_blocks * 512
        return total

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
        for name in ["manifest.json"] + sorted(n for n in (os.listdir(folder) if os.path.isdir(folder) else [])
                                               if own_file(n)):
            try:
                os.remove(os.path.join(folder, name))
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise

    def remove_unless_busy(self, key, only_left=False):
        """Drop `key`'s entry unless a cell is building it: the bytes freed, or None (also `dlmatrix crops`).
        only_left: only what cells that stopped while building it left, its partial files, and all of it where it
        has no manifest; decided under the lock, so an entry a cell completed since the caller looked stays."""
        with open(os.path.join(self.folder, "locks", key + ".lock"), "a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return None  # a cell is building it
            folder = self.entry_folder(key)
            if only_left and os.path.exists(os.path.join(folder, "manifest.json")):
                size = 0
                for path in glob.glob(os.path.join(folder, "crops-*.npy.partial")):
                    size += os.stat(path).st_blocks * 512
                    os.remove(path)
            else:
                size = _folder_bytes(folder)
                self.remove(key)
            _remove_folder(folder)  # where nothing else is in it
            return size

    def _keys(self):
        return sorted(os.listdir(os.path.join(self.folder, "entries")))

    def _last_used(self, key):
        try:
            return os.stat(os.path.join(self.entry_folder(key), "manifest.json")).st_mtime
        except OSError:
            return 0.0  # partial or half removed: first to go


def building(folder, key):
    """Whether a cell holds `key`'s lock (builds it). A shared probe: two probing at once do not see each other."""
    try:
        handle = open(os.path.join(folder, "locks", key + ".lock"), "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True


def own_file(name):
    """Whether an entry's folder holds `name` as the cache's own: anything else there is left alone."""
    return name == "manifest.json" or name.startswith("crops-") and name.endswith((".npy", ".npy.partial")) \
        or name.startswith(".tmp-") and name.endswith(".json")  # a manifest being written (jsonio)


def _remove_folder(path):
    try:
        os.rmdir(path)
    except OSError:
        pass  # not there, or not empty


def _make_folder(path):
    try:
        os.makedirs(path)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise


def _same_manifest(folder, manifest):
    """Whether the entry's manifest is still `manifest`: an eviction or a rebuild replaces or removes it first."""
    try:
        return read_json(os.path.join(folder, "manifest.json")) == manifest
    except (OSError, ValueError):
        return False


def _damaged(record, key, problem):
    if record is not None:
        record["damaged"] = "entry {}: {}; the entry is not used (status: what became of its rebuild)".format(
            key, problem)


def _free_bytes(folder):
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _folder_bytes(folder):
    """The disk its files take: a crops file being built (or left by a builder that died) is sparse, and only
    what was written counts."""
    total = 0
    for name in (n for n in (os.listdir(folder) if os.path.isdir(folder) else []) if own_file(n)):
        try:
            total += os.stat(os.path.join(folder, name)).st_blocks * 512
        except OSError:
            pass
    return total

