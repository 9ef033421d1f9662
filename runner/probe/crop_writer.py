"""Storing a crop cache entry's batches from a thread of the cell's own process (crop_cache.Builder).

On a first pass the decoders set the pace. When they wrote each crop into the entry's file and hashed it
themselves, building an entry took 32.6 s where the same decoding into a ring in /dev/shm took 25.9 s
(an H200 host, 16 decoders, 50,000 images: benchmarks/results/eval_speed-cuda.txt). So the decoders write
into the ring as they do without a cache, and this thread writes each batch into the entry with one pwrite
and takes each readable crop's sha256; both let go of the GIL, and the decoders run below the cell's
priority (decode_pool.DECODER_NICENESS), so this thread takes a core when it needs one. At most `depth`
batches wait, their crops held in memory.

Python 3.7, stdlib + numpy.
"""

import hashlib
import os
import queue
import threading


class EntryWriteError(Exception):
    """The entry could not be written (a full disk): it is dropped, and the cell goes on without storing."""


class EntryWriter(object):
    def __init__(self, store, depth=8):
        self.store = store  # decode_pool.CropFile of the entry, one slot per image
        self.digests = {}  # image index -> sha256 of its crop
        self.error = None
        self.stopping = False
        self.queue = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, name="crop cache writer")
        self.thread.daemon = True
        self.thread.start()

    def put(self, start, crops, readable):
        """Store `crops` (a C-ordered uint8 array) in slots start.. and hash those at offsets `readable`."""
        self._raise()
        self.queue.put((start, crops, readable))

    def finish(self):
        """Wait for every batch to be written; {image index: sha256}. Raises what went wrong in the thread."""
        self.queue.put(None)
        self.thread.join()
        self._raise()
        return self.digests

    def stop(self):
        """Drop what is still queued and end the thread (the entry is abandoned)."""
        self.stopping = True
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.queue.put(None)
        self.thread.join()

    def _raise(self):
        if self.error is not None:
            raise EntryWriteError("writing the entry failed: {}".format(self.error))

    def _run(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.stopping or self.error is not None:
                continue
            start, crops, readable = item
            try:
                _write_all(self.store.fd, memoryview(crops).cast("B"),
                           self.store.offset + start * self.store.slot_bytes)
                for offset in readable:
                    self.digests[start + offset] = hashlib.sha256(crops[offset]).hexdigest()
            except Exception as exc:  # noqa: BLE001 - said by the next put() or finish(), in the cell's thread
                self.error = exc


def _write_all(fd, data, position):
    while len(data):
        written = os.pwrite(fd, data, position)
        data, position = data[written:], position + written
