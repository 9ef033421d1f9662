"""The val set's file digests a crop cache key is made of (runner/probe/crop_key.py), each file hashed once.

FOLDER/digests/ROOT.json keeps each file's sha256 with the marks it was taken under: size, mtime, ctime,
inode and device. A file whose marks are those recorded is not read again; ctime is among them because a
rewrite in place that restores the size and mtime (exiftool -P, rsync --inplace -t) still moves it.

A file that cannot be read (a dangling link, a folder named *.JPEG, no permission) gets a marker instead of a
digest, "unreadable:ENOENT": the key says what the cell saw, the decoders report the image as unreadable as
they do without a cache, and once the file can be read its digest gives a new key. Markers are not kept.

The memo only saves reading: one that cannot be read or is not what this writes counts as absent, and one
that cannot be written (a read-only or full cache folder) is left as it was.

Python 3.7, stdlib.
"""

import errno
import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor

from .jsonio import read_json, write_json_atomic
from .weights import sha256_file

UNREADABLE = "unreadable:"
MEMO_FORMAT = 2  # format 1 held (size, mtime, inode, sha256): its files are hashed once more


def file_digests(folder, root, rels, threads):
    """sha256 (or an UNREADABLE marker) of each file `rels` under `root`; the memo in `folder`/digests."""
    return digests_and_marks(folder, root, rels, threads)[0]


def digests_and_marks(folder, root, rels, threads):
    """(file_digests' list, each file's marks as they were before it was hashed: changed_since compares them)."""
    root = os.path.abspath(root)
    memo_path = os.path.join(folder, "digests", hashlib.sha256(os.fsencode(root)).hexdigest()[:32] + ".json")
    memo = _memo(memo_path, root)
    marks = current_marks(root, rels)
    before = list(marks)
    missing = [i for i, rel in enumerate(rels)
               if not _is_marker(marks[i]) and (memo.get(rel) or [None])[:-1] != marks[i]]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # hashlib lets go of the GIL
        for i, digest in zip(missing, pool.map(lambda i: _digest(os.path.join(root, rels[i])), missing)):
            if digest.startswith(UNREADABLE):
                marks[i] = digest
            else:
                memo[rels[i]] = marks[i] + [digest]
    digests = [marks[i] if _is_marker(marks[i]) else memo[rel][-1] for i, rel in enumerate(rels)]
    if missing:
        try:
            write_json_atomic(memo_path, {"format": MEMO_FORMAT, "root": root, "files": memo})
            os.chmod(memo_path, 0o644)  # the venv backend's cells run as the user, the docker backend's as its own
        except OSError:
            pass  # a read-only or full cache folder: the next cell hashes these files again
    return digests, before


def current_marks(root, rels):
    top = os.open(root, os.O_RDONLY)  # stat each file from it: no path to join and walk from / (50,000 a hit)
    try:
        return [_marks(rel, top) for rel in rels]
    finally:
        os.close(top)


def changed_since(root, rels, marks):
    """The files whose marks are no longer `marks` (rewritten, removed, made readable) in the meantime."""
    return [rel for rel, now, then in zip(rels, current_marks(root, rels), marks) if now != then]


def _marks(rel, top):
    """[size, mtime, ctime, inode, device] of a regular file, or an UNREADABLE marker where there is none."""
    try:
        info = os.stat(rel, dir_fd=top)
    except OSError as exc:
        return _marker(exc)
    if not stat.S_ISREG(info.st_mode):
        return _marker(OSError(errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL, "not a file"))
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev]


def _digest(path):
    try:
        return sha256_file(path)
    except OSError as exc:
        return _marker(exc)


def _marker(exc):
    return UNREADABLE + errno.errorcode.get(exc.errno, "EIO")


def _is_marker(mark):
    return isinstance(mark, str)


def _memo(path, root):
    """{file: marks + [sha256]} from the memo at `path`, or {} where it is absent, damaged or another root's."""
    try:
        memo = read_json(path)
    except (OSError, ValueError):
        return {}
    if not isinstance(memo, dict) or memo.get("format") != MEMO_FORMAT or memo.get("root") != root \
            or not isinstance(memo.get("files"), dict):
        return {}
    return {rel: mark for rel, mark in memo["files"].items()
            if isinstance(mark, list) and len(mark) == 6 and isinstance(mark[-1], str)}
