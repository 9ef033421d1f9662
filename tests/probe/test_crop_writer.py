"""The crop cache's entry writer (runner/probe/crop_writer.py): a disk that fills during a build costs the
cell nothing but the entry; the crops it is handed are the decoders', bit for bit."""

import os
import time

import numpy as np
import pytest

from runner.probe.crop_source import input_batches
from runner.probe.dataset import open_dataset
from runner.probe.error_suite import batch_ranges
from runner.probe.preprocess import crop_file

from ..filesystems import Switchable
from .recipes import recipe
from .test_decode_pool import Recording


def fill(folder):
    with open(os.path.join(str(folder), "ballast"), "wb", buffering=0) as out:
        try:
            while out.write(b"\0" * (1 << 16)):
                pass
        except OSError:
            pass  # ENOSPC: full


@pytest.mark.parametrize("workers", [1, 2])
def test_a_disk_that_fills_during_a_build_drops_the_entry_and_the_cell_keeps_its_crops(imagenet_sample, tmp_path,
                                                                                      workers):
    small = Switchable(tmp_path / "small", size="8m")  # room for the 30 crops' entry (4.5 MB), at the start
    try:
        if not small.mounted:
            pytest.skip("a filesystem that fills needs a tmpfs mount, which needs root")
        chosen = recipe("torchvision-224")
        dataset = open_dataset(str(imagenet_sample))
        record = {}
        cache = {"dir": str(small.folder / "crops"), "limit_bytes": 1 << 30}
        batches = input_batches(dataset, chosen, Recording(), batch_ranges(len(dataset.items), 4), workers, 1, cache,
                                str(tmp_path), record)
        got = [next(batches)]
        assert record["status"] == "built"
        fill(small.folder)  # another program takes the rest of the disk
        got += list(batches)
        assert record["status"] == "not stored" and "No space left on device" in record["reason"], record
        assert [batch.start for batch in got] == list(range(0, len(dataset.items), 4))
        for batch in got:
            for offset, info in enumerate(batch.infos):
                path = os.path.join(dataset.root, dataset.items[batch.start + offset][0])
                assert info[1] is None and np.array_equal(batch.crops[offset], crop_file(path, chosen)[0])
        entry = os.path.join(cache["dir"], "entries", record["key"])
        assert os.listdir(entry) == []  # no manifest, no crops file: the next cell builds it again
    finally:
        small.close()


def test_a_disk_that_fills_just_before_the_manifest_drops_the_entry_and_the_cell_goes_on(imagenet_sample, tmp_path):
    small = Switchable(tmp_path / "small", size="8m")
    try:
        if not small.mounted:
            pytest.skip("a filesystem that fills needs a tmpfs mount, which needs root")
        chosen = recipe("torchvision-224")
        dataset = open_dataset(str(imagenet_sample))
        record, ranges = {}, batch_ranges(len(dataset.items), 4)
        cache = {"dir": str(small.folder / "crops"), "limit_bytes": 1 << 30}
        batches = input_batches(dataset, chosen, Recording(), ranges, 2, 1, cache, str(tmp_path), record)
        got = [next(batches) for _ in ranges]  # every batch delivered; the commit comes with the next step
        entry = os.path.join(cache["dir"], "entries", record["key"])
        [partial] = os.listdir(entry)
        deadline = time.time() + 30  # until the writer thread has stored every crop
        while os.stat(os.path.join(entry, partial)).st_blocks * 512 < 30 * 224 * 224 * 3 and time.time() < deadline:
            time.sleep(0.05)
        fill(small.folder)
        assert list(batches) == []
        assert record["status"] == "not stored" and "manifest" in record["reason"], record
        assert "No space left on device" in record["reason"] and len(got) == len(ranges)
        assert os.listdir(entry) == []  # neither the crops file nor a manifest is left
    finally:
        small.close()
