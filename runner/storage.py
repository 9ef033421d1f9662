"""The one place the host writes results, reports, records and locks.

Every write is atomic and durable (a temporary file in the same folder, flushed and fsynced,
renamed over the target, the folder fsynced), so a kill or a power cut leaves the old file or
the new one, never half of one. Any OSError (permission, read-only filesystem, no space,
quota) becomes one StorageError naming the path and what to do, instead of a traceback.

The probe (Python 3.7, stdlib only, inside the cell) keeps its own runner/probe/jsonio.py.
"""

import contextlib
import errno
import fcntl
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from .errors import UserError

def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once, at import: os.umask can only be read by setting it, which races with the cell threads.
MODE = 0o666 & ~_umask()  # mkstemp's 0600 would hide results and reports from the user's group
FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


class StorageError(UserError):
    """A file could not be written: the message names the path, the errno and what to do."""

    def __init__(self, message, path=None, errno_name=None):
        super().__init__(message)
        self.path, self.errno_name = path, errno_name


def cache_home():
    """~/.cache/dlmatrix (or under $XDG_CACHE_HOME): environments, build records, weights, unsaved results."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dlmatrix")


def storage_error(exc, path, flag=None, doing="write"):
    """The StorageError for OSError `exc` at `path`; `flag` is the option that chooses another folder."""
    name = errno.errorcode.get(exc.errno, "errno {}".format(exc.errno)) if exc.errno else type(exc).__name__
    folder = os.path.dirname(os.path.abspath(str(path)))
    if exc.errno in FULL:
        advice = "free space on {} (see `df -h {}`{}) and run again".format(
            _mount_point(folder), folder, "; the quota: `quota`" if exc.errno == errno.EDQUOT else "")
    elif exc.errno in NOT_WRITABLE:
        advice = "make {} writable{}".format(folder, " or pass {} to choose another folder".format(flag) if flag else "")
    else:
        advice = "check the folder {}{}".format(folder, " or pass {}".format(flag) if flag else "")
    return StorageError("cannot {} {}: {} ({}); {}".format(doing, path, exc.strerror or exc, name, advice),
                        path=str(path), errno_name=name)


def _mount_point(folder):
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def write_json(path, data, flag=None):
    """`data` as indented JSON (NaN refused: it is not JSON), atomically; StorageError on any OSError."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n", flag=flag)


def write_text(path, text, flag=None):
    """`text` to `path` atomically and durably (creating its folder); StorageError on any OSError."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        os.fchmod(handle, MODE)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_folder(folder)
    except OSError as exc:
        raise storage_error(exc, path, flag) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


def fsync_folder(folder):
    """Make a rename in `folder` durable: without it a power cut can forget the new name."""
    fd = os.open(str(folder), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some filesystems cannot fsync a folder; the rename still stands
            raise
    finally:
        os.close(fd)


def move(source, target, flag=None):
    """Move `source` to `target` durably (a copy and a removal across filesystems); StorageError on any OSError."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(str(target))), exist_ok=True)
        try:
            os.replace(str(source), str(target))
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy(source, target)
            os.remove(str(source))
        fsync_folder(os.path.dirname(os.path.abspath(str(target))))
    except OSError as exc:
        raise storage_error(exc, target, flag, doing="move {} to".format(source)) from exc


def copy_file(source, target, flag=None):
    """Copy `source` to `target` atomically and durably; StorageError on any OSError."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(str(target))), exist_ok=True)
        _copy(source, target)
        fsync_folder(os.path.dirname(os.path.abspath(str(target))))
    except OSError as exc:
        raise storage_error(exc, target, flag, doing="copy {} to".format(source)) from exc


def _copy(source, target):
    folder = os.path.dirname(os.path.abspath(str(target)))
    handle, tmp = tempfile.mkstemp(prefix="." + os.path.basename(str(target)) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(handle, MODE)
        with os.fdopen(handle, "wb") as out, open(str(source), "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, str(target))
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def make_folder(path, flag=None):
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path, flag, doing="create the folder") from exc
    return Path(path)


def lock_holder(path, wait_s=0.0):
    """None when no process holds an flock on `path` (or it does not exist), else the pid recorded in it ("?"
    when none is). Waits up to `wait_s` for a holder that is on its way out (a guard killing its group)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, path, "--results-dir", doing="read") from exc
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return None
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                time.sleep(0.1)
    finally:
        os.close(fd)


@contextlib.contextmanager
def waiting_lock(path, what, say=None, flag=None):
    """Hold an exclusive flock on `path` for the block, waiting (and saying for whom) while another process
    holds it: for work two runs may both need, such as building one environment, where the second should use
    what the first builds rather than fail or destroy it."""
    say = say or (lambda line: sys.stderr.write(line + "\n"))
    make_folder(os.path.dirname(os.path.abspath(str(path))), flag=flag)
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage_error(exc, path, flag, doing="create the lock") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for pid {} to finish {}".format(os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                                                          or "?", what))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, "{}\n".format(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


class RunLocked(UserError):
    """Another live process holds the folder's run lock."""


@contextlib.contextmanager
def run_lock(folder, what, say=None, flag="--run"):
    """Hold `folder`/.lock (fcntl.flock, exclusive) for the block: one runner per results folder.

    Used by `run` (runner/pipeline.py run_matrix) and meant for any command that runs cells into
    a ResultStore (bisect wraps its loop the same way). The file records who holds it (pid,
    host, command, since when); a second runner gets RunLocked (exit 2) naming the holder. The
    lock dies with its process, so a file left by a killed runner is taken over, with a message.
    The file itself stays (emptied on release): unlinking it would let a third runner lock a
    file the second already has open, and both would run.

    On a network filesystem the lock is only as good as its locking: NFSv4 (and v3 with lockd)
    carries flock to the server on Linux; where locks are local to a host, two hosts can both
    hold it, and the recorded host in the file is what tells them apart.
    """
    say = say or (lambda line: sys.stderr.write(line + "\n"))
    folder = make_folder(folder, flag="--results-dir")
    path = folder / ".lock"
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage_error(exc, path, "--results-dir", doing="create the lock") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked("{} is in use by {}; wait for it to end (or stop it), or pass another {}".format(
                folder, _holder(_read_record(fd)), flag)) from None
        previous = _read_record(fd)
        if previous:
            elsewhere = previous.get("host") not in (None, socket.gethostname())
            say("{}: taking over the lock left by {}, which is gone{}".format(path, _holder(previous), (
                " (another host: if it still runs, this filesystem does not share locks between hosts; stop one)"
                if elsewhere else "")))
        record = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                  "command": shlex.join(sys.argv), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            os.fsync(fd)
        except OSError as exc:
            raise storage_error(exc, path, "--results-dir") from exc
        try:
            yield record
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # released in order: nothing to take over
    finally:
        os.close(fd)  # releases the flock


def _read_record(fd):
    try:
        text = os.pread(fd, 65536, 0).decode("utf-8", "replace").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {"pid": "?", "note": "an unreadable lock record"}


def _holder(record):
    if not record:
        return "another process (it has not written its name yet)"
    return "pid {} on {} since {} ({}: `{}`)".format(record.get("pid", "?"), record.get("host", "?"),
                                                     record.get("since", "?"), record.get("what", "?"),
                                                     record.get("command", "?"))
