"""One decoder process of the error suite's pool (runner/probe/decode_pool.py).

    python -m runner.probe.decode_worker RESULT_FD DATA_FD NICENESS

Reads one header line (JSON: the val set's root and items, the recipe, the framework whose resize the
recipe uses, where crops go in the data file), then one task per line, "index position count": images
index .. index+count-1 into slots position .. position+count-1. For each image it decodes and crops
exactly as the in-process path does (preprocess.crop_item) and writes the uint8 crop into its slot of
the data file (pwrite: the pages stay in the page cache or /dev/shm and count in no process's resident
memory); then it answers one JSON line per task on RESULT_FD, a list with one entry per image:
[index, Pillow mode, problem, seconds]. (A cache entry's digests are taken by runner/probe/crop_writer.py.)

It ends when its task pipe closes, which the kernel does when the parent ends in any way (kill -9
included): an idle worker then reads end-of-file, a busy one fails its next answer (broken pipe).
It stays in the parent's process group, so the guard that ends a cell ends it too.
"""

import json
import os
import signal
import sys
import time


def open_resizer(framework):
    """The framework's own resize or JPEG decoder (Recipe.uses_framework), on the CPU, one thread."""
    from .adapters import load_adapter

    return load_adapter(framework, "cpu", 1)


def serve(tasks, answers, data_fd):
    header = json.loads(tasks.readline())  # first: the parent writes it to every worker in turn
    from .preprocess import Recipe, crop_item

    recipe = Recipe.from_dict(header["recipe"])
    adapter = open_resizer(header["framework"]) if recipe.uses_framework else None
    root, items = header["root"], header["items"]
    offset, slot_bytes = int(header["data_offset"]), int(header["slot_bytes"])
    answers.write("ready\n")
    answers.flush()
    for line in tasks:
        first, position, count = (int(word) for word in line.split())
        done = []
        for index in range(first, first + count):
            tick = time.perf_counter()
            crop, mode, problem = crop_item(root, items[index], recipe, adapter)
            if crop is not None:
                data = crop.tobytes()
                if len(data) != slot_bytes:
                    raise RuntimeError("crop of {} is {} bytes, the slot {}".format(items[index], len(data),
                                                                                   slot_bytes))
                os.pwrite(data_fd, data, offset + (position + index - first) * slot_bytes)
            done.append([index, mode, problem, time.perf_counter() - tick])
        answers.write(json.dumps(done) + "\n")
        answers.flush()


def main(argv):
    result_fd, data_fd, niceness = int(argv[0]), int(argv[1]), int(argv[2])
    os.nice(niceness)  # below the probe: its threads take a core first (decode_pool.DECODER_NICENESS)
    # Ctrl-C reaches the whole process group: the probe decides what happens (closing the pipe ends this).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(result_fd, "w", encoding="ascii")  # json.dumps escapes the rest
    # Whatever a library prints goes to stderr (the cell's log), never into the answers.
    os.dup2(2, 1)
    try:
        serve(sys.stdin, answers, data_fd)
    except BrokenPipeError:
        return 0  # the parent is gone: nothing to answer to
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
