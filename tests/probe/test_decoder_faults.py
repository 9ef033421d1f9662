"""A decoder process that dies under the pool (the OOM killer, a crash in a decoding library) is named in the
cell's reason with how it ended."""

import os
import signal
import time

import pytest

from runner.probe.dataset import open_dataset

from .recipes import recipe


def test_a_decoder_killed_between_batches_is_named_with_its_signal(imagenet_sample, tmp_path):
    """The OOM killer or a crash in a decoding library: the cell's reason names the process and how it ended,
    whether the pool notices on its next task or on its next answer."""
    from runner.probe.decode_pool import CropFile, crop_batches
    from runner.probe.error_suite import batch_ranges

    dataset = open_dataset(str(imagenet_sample))
    chosen = recipe("torchvision-224")
    ring = CropFile.scratch(chosen.crop, 4, str(tmp_path))
    batches = crop_batches(dataset.root, dataset.items, chosen, None, batch_ranges(len(dataset.items), 2), 2, 1, ring)
    try:
        with pytest.raises(RuntimeError) as ended:
            for number, _ in enumerate(batches):
                if number == 0:
                    victim = _decoders_of(os.getpid())[0]
                    os.kill(victim, signal.SIGKILL)
                    time.sleep(0.3)  # dead before the pool hands it the next task
        assert str(ended.value).startswith("decoder process {} ended early with signal 9".format(victim))
    finally:
        batches.close()
        ring.close()


def _decoders_of(parent):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/{}/stat".format(entry)) as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/{}/cmdline".format(entry), "rb") as handle:
                command = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"runner.probe.decode_worker" in command:
            found.append(int(entry))
    return sorted(found)
