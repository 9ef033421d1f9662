"""The error suite's decoders: JPEG decoding and the recipe's resize and crop, in worker processes.

Each worker (runner/probe/decode_worker.py, a fresh interpreter with numpy and Pillow, plus the
framework only where the recipe resizes with the framework's own op) decodes the images it is
handed and writes their uint8 crops into slots of a CropFile; the parent reads whole batches back
in the val set's order, so the batches are those one decoder makes, whatever the number of workers
or the order they finish in. At most `window` batches are handed out beyond the last one read
(bounded look-ahead), so the slots of a ring can be reused.

Workers are plain child processes in the cell's process group (the guard that ends the cell ends
them), and each ends by itself when its task pipe closes: when the parent ends, however it ends.
"""

import collections
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time

import numpy as np

from .preprocess import crop_item

# Tasks waiting in one worker's pipe ("index position count\n", about 20 bytes each): enough to keep it
# busy, far below a pipe's 64 KiB, so writing a task never blocks while the worker waits to answer.
QUEUED_PER_WORKER = 32
# Images per task. A task per image cost the parent about 100 us an image (a write, a wake-up, a JSON
# line): at 16 cores' decode rate, 40% of the core that also runs the model loop. Two tasks per worker
# per batch keep the workers' shares even when one image decodes slowly.
MAX_TASK_IMAGES = 16
# Decoders run below the probe's priority (nice, relative to it): where the cell's own threads need a core (a
# GPU's model loop, the crops' reading and conversion, the cache entry's writer), they take it at once, and the
# decoders keep every other cycle. So a GPU cell decodes on all its cores (error_suite.input_workers) instead of
# leaving two idle for the loop. On 2 cores against a stand-in GPU, a first pass ran at 292 images/s with one
# decoder and 527-534 with two, niced or not; a CPU cell's wall was the same within the runs' spread either way.
DECODER_NICENESS = 10
PROBE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# infos: [mode, problem, seconds, sha256 of the crop] each; the sha256 only where the crop came from a cache
# entry (runner/probe/crop_source.py), None from the decoders
Batch = collections.namedtuple("Batch", "start stop crops infos")


class CropFile(object):
    """A file of fixed-size uint8 crop slots after `offset` bytes, read and written with pread/pwrite.

    Not mapped: mapped pages would count in the resident memory of every process that touched them,
    and the guard ends a cell whose processes together pass its memory limit.
    `ring` slots (a multiple of the batch size) are reused in turn; ring=None: one slot per image.
    """

    def __init__(self, fd, crop, offset=0, ring=None):
        self.fd, self.crop, self.offset, self.ring = fd, crop, offset, ring
        self.slot_bytes = crop * crop * 3

    @classmethod
    def scratch(cls, crop, slots, spill_dir):
        """A ring of `slots` in /dev/shm where there is room for it, else in `spill_dir` (the cell's
        folder: the page cache still holds it). Unlinked at once: nothing is left behind, whatever ends the cell."""
        size = crop * crop * 3 * slots
        folder = "/dev/shm" if _free_bytes("/dev/shm") > 2 * size else spill_dir
        handle, path = tempfile.mkstemp(prefix="crops-", dir=folder)
        os.unlink(path)
        os.ftruncate(handle, size)
        ring = cls(handle, crop, ring=slots)
        ring.folder = folder
        return ring

    def position(self, sequence, start, index, batch_size):
        """The ring slot of image `index` of the `sequence`-th batch (which starts at image `start`)."""
        return (sequence * batch_size) % self.ring + index - start

    def read(self, position, count):
        size = count * self.slot_bytes
        data = os.pread(self.fd, size, self.offset + position * self.slot_bytes)
        if len(data) != size:
            raise IOError("crop file: {} bytes at slot {}, {} expected".format(len(data), position, size))
        return np.frombuffer(data, dtype=np.uint8).reshape(count, self.crop, self.crop, 3)

    def close(self):
        os.close(self.fd)


def task_images(batch_size, workers):
    """Images per task: about two tasks per worker per batch, at most MAX_TASK_IMAGES."""
    return max(1, min(MAX_TASK_IMAGES, batch_size // (2 * workers)))


def _free_bytes(folder):
    try:
        stats = os.statvfs(folder)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


def crop_batches(root, items, recipe, adapter, ranges, workers, window, store):
    """Batch per (start, stop) of `ranges`, in that order: workers > 1 decode in processes into `store` (a ring),
    else here."""
    if workers <= 1:
        return _inline(root, items, recipe, adapter, ranges)
    return _pooled(root, items, recipe, adapter, ranges, workers, window, store)


def _inline(root, items, recipe, adapter, ranges):
    """One decoder, this process: the reference the pool must equal."""
    for start, stop in ranges:
        crops = np.zeros((stop - start, recipe.crop, recipe.crop, 3), dtype=np.uint8)
        infos = []
        for index in range(start, stop):
            tick = time.perf_counter()
            crop, mode, problem = crop_item(root, items[index][0], recipe, adapter)
            if crop is not None:
                crops[index - start] = crop
            infos.append([mode, problem, time.perf_counter() - tick, None])
        yield Batch(start, stop, crops, infos)


def _pooled(root, items, recipe, adapter, ranges, workers, window, store):
    pool = Pool(root, items, recipe, adapter, workers, store)
    try:
        for batch in pool.batches(ranges, window):
            yield batch
    finally:
        pool.close()


class Pool(object):
    def __init__(self, root, items, recipe, adapter, workers, store):
        self.store = store
        framework = getattr(adapter, "name", None) if recipe.uses_framework else None
        header = json.dumps({"root": os.path.abspath(root), "items": [rel for rel, _ in items],
                             "recipe": recipe.as_dict(), "framework": framework, "data_offset": store.offset,
                             "slot_bytes": store.slot_bytes})
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [PROBE_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        self.workers, self.selector = [], selectors.DefaultSelector()
        try:
            for _ in range(workers):
                self.workers.append(_Worker(environment, store.fd))
            for worker in self.workers:
                worker.send(header + "\n")
            for worker in self.workers:
                worker.wait_ready()
                self.selector.register(worker.answers, selectors.EVENT_READ, worker)
        except BaseException:
            self.close()
            raise

    def batches(self, ranges, window):
        """Batch per range in order; ranges up to `window` ahead of the last one read are handed out."""
        size = max(stop - start for start, stop in ranges)
        chunk = task_images(size, len(self.workers))
        pending = collections.deque()  # (first index, its position, images) not yet handed out
        done = {}
        handed = 0  # ranges whose tasks are queued
        for sequence, (start, stop) in enumerate(ranges):
            while handed < len(ranges) and handed <= sequence + window:
                first, last = ranges[handed]
                pending.extend((i, self.store.position(handed, first, i, size), min(chunk, last - i))
                               for i in range(first, last, chunk))  # a batch's slots are consecutive
                handed += 1
            while any(i not in done for i in range(start, stop)):
                self._hand_out(pending)
                self._collect(done)
            crops = self.store.read(self.store.position(sequence, start, start, size), stop - start)
            yield Batch(start, stop, crops, [done.pop(i) for i in range(start, stop)])

    def _hand_out(self, pending):
        while pending:
            worker = min(self.workers, key=lambda w: w.queued)
            if worker.queued >= QUEUED_PER_WORKER:
                return
            worker.task(*pending.popleft())

    def _collect(self, done):
        for key, _ in self.selector.select():
            for answer in key.data.answers_ready():
                for index, mode, problem, seconds in answer:
                    done[index] = [mode, problem, seconds, None]

    def close(self):
        for worker in self.workers:
            worker.stop()
        self.selector.close()


class _Worker(object):
    def __init__(self, environment, data_fd):
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runner.probe.decode_worker", str(write_end), str(data_fd),
                 str(DECODER_NICENESS)],
                stdin=subprocess.PIPE, pass_fds=(write_end, data_fd), env=environment, cwd=PROBE_ROOT)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.answers = os.fdopen(read_end, "rb", buffering=0)
        self.queued, self.buffer = 0, b""

    def send(self, text):
        try:
            self.process.stdin.write(text.encode("ascii"))
            self.process.stdin.flush()
        except BrokenPipeError:  # it ended before this task reached it: say how, as a read would
            self._died()

    def task(self, index, position, count):
        self.send("{} {} {}\n".format(index, position, count))
        self.queued += 1

    def wait_ready(self):
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.answers.read(1)
            if not chunk:
                self._died()
            line += chunk
        if line != b"ready\n":
            raise RuntimeError("decoder process {}: expected 'ready', got {!r}".format(self.process.pid, line[:200]))

    def answers_ready(self):
        """The answers that have arrived, a list per task (one read, never blocking past what select said is there)."""
        chunk = os.read(self.answers.fileno(), 1 << 16)
        if not chunk:
            self._died()
        lines = (self.buffer + chunk).split(b"\n")
        self.buffer = lines.pop()
        self.queued -= len(lines)
        return [json.loads(line.decode("ascii")) for line in lines]

    def _died(self):
        code = self.process.wait()
        raise RuntimeError("decoder process {} ended early with {} (its error, if any, is in the cell's log "
                           "above)".format(self.process.pid, "signal {}".format(-code) if code < 0 else
                                           "exit code {}".format(code)))

    def stop(self):
        """Close its task pipe (it ends on its own at end-of-file), then make sure it has."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()
