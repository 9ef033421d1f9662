"""Where the error suite's crops come from: the crop cache when it holds them, else the decoders.

input_batches() yields decode_pool.Batch per range of the val set, in order, and fills `record` (the
result's "crop_cache"): status "off" (no cache), "hit", "built" (decoded and stored), "rebuilt" (an
entry was damaged: the crops before the damage were checked and used, the rest come from the rebuilt
entry), or "not stored" (with the reason: the limit, the free space); the key, the seconds spent making
the key and waiting for another cell that was building the same entry.
"""

import collections
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

from .crop_cache import CropCache
from .crop_digests import UNREADABLE, changed_since, digests_and_marks
from .crop_key import content_key, key_content
from .crop_writer import EntryWriteError
from .decode_pool import Batch, CropFile, crop_batches


class EntryDamaged(Exception):
    pass


# The key of a val set's crops under a recipe (key_content: what it is made of), the images that could not be
# read when it was made (their digests are markers), and each file's marks as they were before it was hashed
# (runner/probe/crop_digests.py).
Key = collections.namedtuple("Key", "rels content key unreadable marks")


def input_batches(dataset, recipe, adapter, ranges, workers, window, settings, scratch_dir, record):
    """Batches for `ranges` of dataset.items; settings {"dir", "limit_bytes"} or None (no cache)."""
    if not settings:
        record.update(status="off", reason="the crop cache is off for this cell (\"off\" in DLMATRIX_CACHE or "
                                           "[suites.error] crop_cache)")
    cache = _open(settings, record) if settings else None
    if cache is None:
        for batch in decoded(dataset.root, dataset.items, recipe, adapter, ranges, workers, window, scratch_dir):
            yield batch
        return
    key = _key(cache, dataset, recipe, adapter, workers, record)
    delivered, damaged = 0, None
    entry = cache.complete_entry(key.key, key.rels, recipe.crop, record)
    while True:
        if entry is None:
            lock, waited = _lock(cache, key, record)
            if lock is None:  # a cache folder that cannot be written: its entries are read, none is added
                for batch in decoded(dataset.root, dataset.items, recipe, adapter, ranges[delivered:], workers, window,
                                     scratch_dir):
                    yield batch
                return
            record["lock_wait_s"] += waited
            try:
                entry = cache.complete_entry(key.key, key.rels, recipe.crop, record)  # built while this cell waited?
                if entry is not None and entry.data == damaged:
                    entry.close()
                    entry = None
                if entry is None:
                    build = _build(cache, key, dataset, recipe, adapter, ranges, delivered, workers, window,
                                   scratch_dir, record, rebuild=record["damaged"] is not None)
                    try:
                        for batch in build:
                            yield batch
                    finally:
                        build.close()  # a cell that stopped early: its partial file goes before the lock is free
                    return
            finally:
                lock.close()
        record["status"] = "rebuilt" if damaged else "hit"  # rebuilt: this cell read the rest of it after damage
        record["entry_built"] = entry.manifest.get("built")  # by a cell or ahead of it, and when; None: older
        try:
            for batch in _read(entry, ranges[delivered:], workers, window):
                delivered += 1
                yield batch
            return
        except EntryDamaged as exc:
            record["damaged"] = "{}; the crops before it were checked and used, the rest are decoded again (status: " \
                                "what became of its rebuild)".format(exc)
            damaged = entry.data
        finally:
            entry.close()
        entry = None


def prefill(dataset, recipe, adapter, ranges, workers, window, settings, scratch_dir):
    """Decode `recipe`'s crops of the val set into the cache ahead of the cell that will read them
    (runner/prefill.py); nothing is delivered. Returns the record: status "hit" (there already, or built by
    another cell while this waited), "built", or "not stored" (with the reason); key, key_s, lock_wait_s."""
    record = {}
    cache = _open(settings, record)
    if cache is None:
        return record
    key = _key(cache, dataset, recipe, adapter, workers, record)
    entry = cache.complete_entry(key.key, key.rels, recipe.crop, record)
    if entry is None:
        lock, waited = _lock(cache, key, record)
        if lock is None:
            return record
        record["lock_wait_s"] += waited
        try:
            entry = cache.complete_entry(key.key, key.rels, recipe.crop, record)
            if entry is None:
                for _ in _build(cache, key, dataset, recipe, adapter, ranges, 0, workers, window,
                                scratch_dir, record, rebuild=record["damaged"] is not None, deliver=False):
                    pass
                return record
        finally:
            lock.close()
    record.update(status="hit", entry_built=entry.manifest.get("built"))
    entry.close()  # its crops are checked by the cell that reads them
    return record


def _open(settings, record):
    """The cache, or None where its folder cannot be made (a path on a read-only disk, a parent this user cannot
    write): as with one that cannot be written, the cell decodes and the record says why nothing was stored."""
    try:
        if settings.get("unusable"):  # the docker backend could not make its host folder to mount
            raise OSError(settings["unusable"])
        return CropCache(settings["dir"], settings["limit_bytes"])
    except OSError as exc:
        record.update(status="not stored", key=None, folder=settings["dir"], damaged=None,
                      reason="the crop cache {} cannot be made ({}): these crops were decoded; choose a folder this "
                             "user can write, or \"off\", with DLMATRIX_CACHE or [suites.error] crop_cache".format(
                                 settings["dir"], exc))
        return None


def _key(cache, dataset, recipe, adapter, workers, record):
    """The Key; the record gets it and the seconds it took."""
    rels = [rel for rel, _ in dataset.items]
    tick = time.perf_counter()
    digests, marks = digests_and_marks(cache.folder, dataset.root, rels, workers)
    content = key_content(rels, digests, recipe, adapter)
    key = content_key(content)
    record.update(key=key, folder=cache.folder, limit_bytes=cache.limit_bytes, key_s=time.perf_counter() - tick,
                  lock_wait_s=0.0, damaged=None)
    return Key(rels, content, key, frozenset(i for i, digest in enumerate(digests) if digest.startswith(UNREADABLE)),
               marks)


def _lock(cache, key, record):
    """(the key's lock, seconds waited), or (None, 0) where the cache folder does not let a lock be taken (read-only):
    the record says the crops are not stored."""
    try:
        return cache.lock(key.key)
    except OSError as exc:
        record.update(status="not stored", reason="no entry can be added to the crop cache {} ({}); its entries are "
                                                  "read, these crops were decoded".format(cache.folder, exc))
        return None, 0.0


def decoded(root, items, recipe, adapter, ranges, workers, window, scratch_dir):
    """Batches from the decoders, without the cache: the worker processes write into a ring of slots."""
    if workers <= 1:
        for batch in crop_batches(root, items, recipe, adapter, ranges, workers, window, None):
            yield batch
        return
    size = max(stop - start for start, stop in ranges)
    ring = CropFile.scratch(recipe.crop, (window + 1) * size, scratch_dir)  # window + 1: the batch being read too
    try:
        for batch in crop_batches(root, items, recipe, adapter, ranges, workers, window, ring):
            yield batch
    finally:
        ring.close()


def _build(cache, key, dataset, recipe, adapter, ranges, delivered, workers, window, scratch_dir, record, rebuild,
           deliver=True):
    """Decode every range into a new entry, delivering ranges[delivered:] first (a rebuild after damage:
    the ones before were delivered from the old entry), then commit it. deliver=False (a prefill): the
    batches are only stored, and where the entry cannot be stored nothing is decoded."""
    try:
        builder, why = cache.new_entry(key.key, key.content, key.rels, recipe.crop)
    except OSError as exc:  # a cache folder that cannot be written
        builder, why = None, "the entry could not be started in {} ({})".format(cache.folder, exc)
    if builder is None:
        record.update(status="not stored", reason=why)
        if not deliver:
            return
        for batch in decoded(dataset.root, dataset.items, recipe, adapter, ranges[delivered:], workers, window,
                             scratch_dir):
            yield batch
        return
    record.update(status="rebuilt" if rebuild else "built", evicted=builder.evicted)
    order = ranges[delivered:] + ranges[:delivered]
    wanted = len(ranges) - delivered if deliver else 0  # batches the cell reads
    # Decoded as without a cache (into a ring); the builder's thread stores them (runner/probe/crop_writer.py).
    batches = decoded(dataset.root, dataset.items, recipe, adapter, order, workers, window, scratch_dir)
    try:
        for count, batch in enumerate(batches):
            if builder is None and count >= wanted:
                break  # nothing left to deliver, and nothing is stored any more
            if builder is not None:
                builder = _stored(builder, lambda: builder.add(batch), record)
            if count < wanted:
                yield batch
        if builder is not None:
            lost = _read_errors(builder.infos, key) or _changed(dataset.root, key)
            if lost:
                builder.abandon()
                record.update(status="not stored", reason=lost)
            else:
                builder = _stored(builder, lambda: builder.commit(by="cell" if deliver else "prefill"), record)
                if builder is not None:
                    record["entry_built"] = builder.built  # this build's, not a damaged entry's read before it
            builder = None
    finally:
        batches.close()  # the decoders end now, also where the loop stopped early
        if builder is not None:
            builder.abandon()


def _read_errors(infos, key):
    """Why the entry must not be kept, or None: an image whose file was read for the key but could not be read
    while decoding (moved away for a moment, an NFS error) would stay unreadable for every later cell, and one
    the key holds as unreadable but that decoded would be an image the key does not name."""
    lost = [key.rels[i] for i, info in enumerate(infos)
            if info is not None and info[1] and info[1].get("errno") and i not in key.unreadable]
    if lost:
        return "{} could not be read while decoding, though it could be read for the key: not stored, so the next " \
               "cell reads it again".format(_some(lost))
    found = [key.rels[i] for i in sorted(key.unreadable) if infos[i] is not None and infos[i][1] is None]
    if found:
        return "{} could not be read for the key but decoded: not stored, so the next cell's key names it".format(
            _some(found))
    return None


def _changed(root, key):
    """Why the entry must not be kept, or None: a file rewritten since it was hashed for the key (a sync or an
    in-place fix while the entry was built) would give every later cell with the old files its new crops."""
    changed = changed_since(root, key.rels, key.marks)
    if not changed:
        return None
    return "{} changed while the entry was built: not stored, so the next cell's key is made of what it holds " \
           "now".format(_some(changed))


def _some(rels):
    return "{}{}".format(rels[0], " and {} more".format(len(rels) - 1) if len(rels) > 1 else "")


def _stored(builder, step, record):
    """`builder` after `step` (an add or the commit); None where writing the entry failed (a full disk): the
    entry is dropped, the cell goes on with the crops it decoded, and its record says why nothing was stored."""
    try:
        step()
        return builder
    except EntryWriteError as exc:
        builder.abandon()
        record.update(status="not stored", reason=str(exc))
        return None


def _read(entry, ranges, threads, window):
    """The entry's batches, each crop checked against its sha256 in threads up to `window` batches ahead."""

    def load(start, stop):
        crops = entry.store.read(start, stop - start)
        infos = []
        for index in range(start, stop):
            rel, mode, problem, digest = entry.items[index]
            if digest is not None and hashlib.sha256(crops[index - start].tobytes()).hexdigest() != digest:
                raise EntryDamaged("crop {} ({}) of the entry's crops file {} differs from its sha256".format(
                    index, rel, entry.data))
            infos.append([mode, problem, 0.0, digest])
        return Batch(start, stop, crops, infos)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending = collections.deque()
        upcoming = iter(ranges)
        for start, stop in upcoming:
            pending.append(pool.submit(load, start, stop))
            if len(pending) > window:
                break
        while pending:
            future = pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append(pool.submit(load, *following))
            yield future.result()
