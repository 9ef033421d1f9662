"""The decode-once crop cache on the real sample images: built once, then read with the same predictions;
keyed by what determines the pixels; a damaged or partial entry is never used but rebuilt; two cells on
one key: one builds, the other waits and reads; past the size limit, the oldest entry goes."""

import errno
import gc
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from runner.probe.crop_cache import CropCache
from runner.probe.crop_digests import file_digests
from runner.probe.crop_key import content_key, key_content
from runner.probe.dataset import open_dataset
from runner.probe.preprocess import Recipe, crop_file

from .recipes import recipe
from .test_decode_pool import ROOT, Recording, assert_same_tensors, evaluate, reference_batches

LIMIT = 1 << 30


def settings(tmp_path, limit=LIMIT):
    return {"dir": str(tmp_path / "crops"), "limit_bytes": limit}


def run(sample, tmp_path, name, chosen, cache, workers=2):
    model = Recording()
    metrics, rows = evaluate(sample, tmp_path, name, chosen, model, cache, workers=workers, prefetch=1)
    return metrics, rows, model.inputs


def entry_files(cache, key):
    folder = os.path.join(cache["dir"], "entries", key)
    with open(os.path.join(folder, "manifest.json")) as handle:
        manifest = json.load(handle)
    return folder, manifest


def test_built_once_then_read_with_the_same_tensors_and_predictions(imagenet_sample, tmp_path):
    chosen, cache = recipe("torchvision-224"), settings(tmp_path)
    dataset = open_dataset(str(imagenet_sample))
    expected = reference_batches(dataset.root, dataset.items, chosen, None, 4)
    built, built_rows, built_inputs = run(imagenet_sample, tmp_path, "built", chosen, cache)
    hit, hit_rows, hit_inputs = run(imagenet_sample, tmp_path, "hit", chosen, cache, workers=1)
    assert built["crop_cache"]["status"] == "built" and hit["crop_cache"]["status"] == "hit"
    assert hit["crop_cache"]["key"] == built["crop_cache"]["key"] and len(hit["crop_cache"]["key"]) == 32
    assert hit["crop_cache"]["entry_built"]["by"] == "cell"  # not decoded ahead (tests/probe/test_crop_prefill.py)
    assert hit_rows == built_rows and hit["image_modes"] == built["image_modes"]
    assert_same_tensors(built_inputs, expected)
    assert_same_tensors(hit_inputs, expected)
    assert hit["decode_s"] == 0 and built["decode_s"] > 0
    # The entry is an ordinary .npy array: numpy maps it, and its crops are the recipe's.
    folder, manifest = entry_files(cache, hit["crop_cache"]["key"])
    crops = np.load(os.path.join(folder, manifest["data"]), mmap_mode="r")
    assert crops.shape == (30, 224, 224, 3)
    first = os.path.join(dataset.root, dataset.items[0][0])
    assert np.array_equal(crops[0], crop_file(first, chosen)[0])


def test_a_damaged_entry_is_detected_never_used_and_rebuilt(imagenet_sample, tmp_path):
    chosen, cache = recipe("torchvision-224"), settings(tmp_path)
    dataset = open_dataset(str(imagenet_sample))
    expected = reference_batches(dataset.root, dataset.items, chosen, None, 4)
    built, rows, _ = run(imagenet_sample, tmp_path, "built", chosen, cache)
    key = built["crop_cache"]["key"]
    folder, manifest = entry_files(cache, key)
    damaged_file = os.path.join(folder, manifest["data"])
    with open(damaged_file, "r+b") as handle:  # one pixel of crop 17 (the fifth batch of four)
        handle.seek(manifest["offset"] + 17 * 224 * 224 * 3 + 5000)
        value = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([value[0] ^ 0xFF]))
    rebuilt, rebuilt_rows, inputs = run(imagenet_sample, tmp_path, "rebuilt", chosen, cache)
    assert rebuilt["crop_cache"]["status"] == "rebuilt"
    assert "crop 17 (" in rebuilt["crop_cache"]["damaged"]
    assert "the crops before it were checked and used" in rebuilt["crop_cache"]["damaged"]
    assert rebuilt["crop_cache"]["entry_built"]["at"] > built["crop_cache"]["entry_built"]["at"]
    assert rebuilt_rows == rows
    assert_same_tensors(inputs, expected)  # the damaged crop never reached the model
    _, fresh = entry_files(cache, key)
    assert fresh["data"] != manifest["data"] and not os.path.exists(damaged_file)
    again, again_rows, _ = run(imagenet_sample, tmp_path, "again", chosen, cache)
    assert again["crop_cache"]["status"] == "hit" and again_rows == rows


def _edited(manifest, damage):
    """A manifest edited by hand or half restored from a backup."""
    if damage == "item without its sha256":  # would be read unchecked
        manifest["items"][3][3] = None
    elif damage == "short item":
        manifest["items"][3] = manifest["items"][3][:2]
    elif damage == "crops file elsewhere":
        manifest["data"] = "../" + manifest["data"]
    elif damage == "other images":
        manifest["items"][0][0] = "elsewhere.JPEG"
    elif damage == "fewer items":
        manifest["items"] = manifest["items"][:10]
    elif damage == "built a word":  # a report reads it as a dict
        manifest["built"] = "x"
    elif damage == "libraries a word":  # `dlmatrix crops` reads it as a dict
        manifest["content"]["libraries"] = "x"
    else:
        manifest = [manifest]
    return manifest


@pytest.mark.parametrize("damage, reason", [
    ("no manifest", None), ("cut manifest", "its manifest cannot be read"),
    ("short crops file", "its crops file is "), ("no crops file", "its crops file crops-"),
    ("item without its sha256", "item 3 of its manifest is not"),
    ("short item", "item 3 of its manifest is not"), ("crops file elsewhere", "its manifest names '../crops-"),
    ("other images", "its manifest lists other images"), ("a list", "its manifest is not a JSON object"),
    ("fewer items", "its manifest lists 10 images, its key 30"),
    ("built a word", "its manifest lacks a field"), ("libraries a word", "its manifest lacks a field")])
def test_a_partial_or_damaged_entry_is_not_used_but_built_again(imagenet_sample, tmp_path, damage, reason):
    """Under a limit that holds one entry: what the partial one left is no one's and does not count. An entry
    without its manifest is partial (the manifest is written last); one with a manifest that cannot be read or
    names other things (written atomically, so edited or damaged since), or a crops file cut short, is damaged:
    the result says why."""
    chosen, cache = recipe("torchvision-224"), settings(tmp_path, limit=int((30 * 224 * 224 * 3 + 4096) * 1.5))
    built, rows, _ = run(imagenet_sample, tmp_path, "built", chosen, cache)
    folder, manifest = entry_files(cache, built["crop_cache"]["key"])
    if damage == "no manifest":  # the builder died before it committed
        os.remove(os.path.join(folder, "manifest.json"))
    elif damage == "cut manifest":
        with open(os.path.join(folder, "manifest.json"), "r+") as handle:
            handle.truncate(100)
    elif damage == "short crops file":
        with open(os.path.join(folder, manifest["data"]), "r+b") as handle:
            handle.truncate(manifest["offset"] + 10 * 224 * 224 * 3)
    elif damage == "no crops file":
        os.remove(os.path.join(folder, manifest["data"]))
    else:
        with open(os.path.join(folder, "manifest.json"), "w") as handle:
            json.dump(_edited(json.loads(json.dumps(manifest)), damage), handle)
    again, again_rows, _ = run(imagenet_sample, tmp_path, "again", chosen, cache)
    assert again["crop_cache"]["status"] == ("built" if reason is None else "rebuilt") and again_rows == rows
    if reason is None:
        assert again["crop_cache"]["damaged"] is None
    else:
        assert again["crop_cache"]["damaged"].startswith("entry {}: {}".format(built["crop_cache"]["key"], reason))
    assert again["crop_cache"]["entry_built"]["at"] > built["crop_cache"]["entry_built"]["at"]  # the new build's
    assert sorted(os.listdir(folder)) == sorted(["manifest.json", entry_files(cache, again["crop_cache"]["key"])[1]["data"]])
    hit, hit_rows, _ = run(imagenet_sample, tmp_path, "hit", chosen, cache)
    assert hit["crop_cache"]["status"] == "hit" and hit["crop_cache"]["damaged"] is None and hit_rows == rows


def test_a_cache_folder_that_cannot_be_made_decodes_and_says_why(imagenet_sample, tmp_path):
    """A path on a file system where no folder can be made (here /proc, which even root cannot write): the cell
    is not failed; it decodes, as with a cache that cannot be written, and the record says why nothing was
    stored."""
    chosen = recipe("torchvision-224")
    _, rows, _ = run(imagenet_sample, tmp_path, "off", chosen, None)
    blocker = tmp_path / "a-file"  # the host refuses this one before any cell (tests/test_crop_cache_plan.py)
    blocker.write_text("not a folder")
    for name, folder in (("proc", "/proc/dlmatrix-test-crops"), ("file", str(blocker / "crops"))):
        unmade, unmade_rows, _ = run(imagenet_sample, tmp_path, name, chosen, {"dir": folder, "limit_bytes": LIMIT})
        assert unmade_rows == rows
        assert unmade["crop_cache"]["status"] == "not stored"
        assert unmade["crop_cache"]["reason"].startswith("the crop cache {} cannot be made (".format(folder))
        assert "DLMATRIX_CACHE" in unmade["crop_cache"]["reason"]
    # the docker backend says so in the spec where it could not make the host folder to mount
    told, told_rows, _ = run(imagenet_sample, tmp_path, "told", chosen, {"dir": str(tmp_path / "crops"),
                                                                      "limit_bytes": LIMIT, "unusable": "no room"})
    assert told_rows == rows and told["crop_cache"]["status"] == "not stored"
    assert told["crop_cache"]["reason"].startswith("the crop cache {} cannot be made (no room)".format(
        tmp_path / "crops")) and not (tmp_path / "crops").exists()


def test_an_entry_refused_or_failing_to_start_leaves_nothing_behind(imagenet_sample, tmp_path, monkeypatch):
    """Over the limit, or a crops file the file system refuses at its full size (FAT's 4 GiB): no folder that
    `dlmatrix crops` would list as left by a cell, no file, no descriptor kept open."""
    chosen = recipe("torchvision-224")
    refused, rows, _ = run(imagenet_sample, tmp_path, "refused", chosen, settings(tmp_path, limit=1000))
    assert refused["crop_cache"]["status"] == "not stored" and "over the cache's limit" in refused["crop_cache"]["reason"]
    assert os.listdir(os.path.join(str(tmp_path / "crops"), "entries")) == []

    truncate = os.ftruncate

    def too_large(fd, size):  # the crops file only: the decoders' ring is made the same way
        if os.readlink("/proc/self/fd/{}".format(fd)).endswith(".npy.partial"):
            raise OSError(errno.EFBIG, "File too large")
        return truncate(fd, size)

    gc.collect()  # what earlier runs left to the collector closes now, not during the count
    opened = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "ftruncate", too_large)
    failed, failed_rows, _ = run(imagenet_sample, tmp_path, "failed", chosen, settings(tmp_path))
    monkeypatch.undo()
    assert failed["crop_cache"]["status"] == "not stored" and "File too large" in failed["crop_cache"]["reason"]
    gc.collect()
    assert failed_rows == rows and len(os.listdir("/proc/self/fd")) == opened
    assert os.listdir(os.path.join(str(tmp_path / "crops"), "entries")) == []


def test_the_key_follows_the_pixels_and_nothing_else(imagenet_sample, tmp_path):
    """Same key: another normalisation (it runs after the cache). Another key: a resize or crop field, a changed
    image file, the libraries' versions."""
    dataset = open_dataset(str(imagenet_sample))
    cache = CropCache(str(tmp_path / "crops"), LIMIT)
    rels = [rel for rel, _ in dataset.items]
    digests = file_digests(cache.folder, dataset.root, rels, 2)
    base = Recipe(256, 224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

    def key(chosen, files=digests):
        return content_key(key_content(rels, files, chosen, None))

    assert key(Recipe(256, 224, scale=1.0, channel_order="BGR", layout="NHWC")) == key(base)
    for changed in (Recipe(257, 224), Recipe(256, 225), Recipe(256, 224, interpolation="bicubic"),
                    Recipe(256, 224, crop_offset="floor"), Recipe(256, 224, resize_mode="square")):
        assert key(changed) != key(base)
    assert key(base, digests[:3] + ["0" * 64] + digests[4:]) != key(base)
    content = key_content(rels, digests, base, None)
    assert content["libraries"]["pillow"] and content["libraries"]["machine"]
    # A file rewritten with other bytes gets a new digest, though its name stays (the memo checks mtime and size).
    copy = tmp_path / "copy"
    os.makedirs(str(copy / "images"))
    for rel in rels[:3]:
        with open(os.path.join(dataset.root, rel), "rb") as source, open(str(copy / rel), "wb") as target:
            target.write(source.read())
    first = file_digests(cache.folder, str(copy), rels[:3], 1)
    time.sleep(0.01)
    with open(str(copy / rels[1]), "ab") as handle:
        handle.write(b"\0")
    second = file_digests(cache.folder, str(copy), rels[:3], 1)
    assert first[0] == second[0] and first[2] == second[2] and first[1] != second[1]


BUILD = """
import json, sys
sys.path.insert(0, {root!r})
from runner.probe.dataset import open_dataset
from runner.probe.error_suite import run_error_suite
from tests.probe.recipes import recipe
from tests.probe.test_decode_pool import Recording
metrics = run_error_suite(Recording(sleep_s={sleep}), None, recipe("torchvision-224"), open_dataset({sample!r}),
                          {{"batch_size": 4, "workers": 1}}, {out!r}, {cache!r})
print(json.dumps(metrics["crop_cache"]))
"""


def test_two_cells_on_one_key_one_builds_the_other_waits_then_reads(imagenet_sample, tmp_path):
    cache = settings(tmp_path)

    def start(name, sleep):
        out = tmp_path / name
        out.mkdir()
        script = BUILD.format(root=ROOT, sleep=sleep, sample=str(imagenet_sample), out=str(out), cache=cache)
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, universal_newlines=True)

    first = start("first", 0.3)  # 8 batches: about 2.5 s holding the key's lock
    locks = tmp_path / "crops" / "locks"
    deadline = time.time() + 60
    while time.time() < deadline and not [n for n in (os.listdir(str(locks)) if locks.is_dir() else [])
                                          if n != "evict.lock"]:
        time.sleep(0.05)
    time.sleep(0.5)
    second = start("second", 0.0)
    results = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in (first, second)]
    assert [r["status"] for r in results] == ["built", "hit"]
    assert results[1]["lock_wait_s"] > 0.5 and results[0]["key"] == results[1]["key"]


def test_past_the_size_limit_the_least_recently_used_entry_goes(imagenet_sample, tmp_path):
    one_entry = 30 * 224 * 224 * 3 + 4096
    cache = settings(tmp_path, limit=int(one_entry * 1.5))
    first, _, _ = run(imagenet_sample, tmp_path, "first", recipe("torchvision-224"), cache)
    second, _, _ = run(imagenet_sample, tmp_path, "second", recipe("keras-caffe-224"), cache)  # bicubic: another key
    assert first["crop_cache"]["status"] == second["crop_cache"]["status"] == "built"
    assert second["crop_cache"]["evicted"] == [first["crop_cache"]["key"]]
    assert not os.path.exists(os.path.join(cache["dir"], "entries", first["crop_cache"]["key"]))
    small = settings(tmp_path, limit=one_entry // 2)
    refused, rows, _ = run(imagenet_sample, tmp_path, "refused", recipe("torchvision-224"), small)
    assert refused["crop_cache"]["status"] == "not stored" and "limit" in refused["crop_cache"]["reason"]
    assert rows == evaluate(imagenet_sample, tmp_path, "plain", recipe("torchvision-224"), Recording(), None,
                            workers=1)[1]


def test_an_entry_being_built_holds_its_room_until_its_builder_stops(imagenet_sample, tmp_path):
    """Two cells building two keys at once (--jobs, --gpus, a prefill): the first's crops file is sparse while it
    is written, and counts whole all the same; one whose builder died (its lock free) counts what it holds."""
    one_entry = 30 * 224 * 224 * 3 + 4096
    cache = settings(tmp_path, limit=int(one_entry * 1.5))
    store = CropCache(cache["dir"], cache["limit_bytes"])
    rels = [rel for rel, _ in open_dataset(str(imagenet_sample)).items]
    lock, _ = store.lock("a" * 32)  # as the cell building this key holds it
    builder, why = store.new_entry("a" * 32, {"building": True}, rels, 224)
    assert builder is not None and store.usage() >= 30 * 224 * 224 * 3
    second, rows, _ = run(imagenet_sample, tmp_path, "second", recipe("keras-caffe-224"), cache)
    assert second["crop_cache"]["status"] == "not stored"
    assert "entries being built or read hold" in second["crop_cache"]["reason"]
    lock.close()  # the first builder dies here: its partial file stays, its lock is free
    assert glob.glob(os.path.join(cache["dir"], "entries", "a" * 32, "*.partial"))
    third, third_rows, _ = run(imagenet_sample, tmp_path, "third", recipe("keras-caffe-224"), cache)
    assert third["crop_cache"]["status"] == "built" and third_rows == rows
    builder.store.close()


def test_a_cell_that_stops_early_drops_its_partial_entry_before_it_lets_go_of_the_key(imagenet_sample, tmp_path,
                                                                                      monkeypatch):
    """Else the next cell with the key may start its entry while the first one's writer and file are still there."""
    from runner.probe import crop_entry
    from runner.probe.crop_cache import building
    from runner.probe.crop_source import input_batches
    from runner.probe.error_suite import batch_ranges

    cache = settings(tmp_path)
    held, abandon = [], crop_entry.Builder.abandon

    def watched(self):
        held.append(building(cache["dir"], self.key))
        abandon(self)

    monkeypatch.setattr(crop_entry.Builder, "abandon", watched)
    dataset, record = open_dataset(str(imagenet_sample)), {}
    batches = input_batches(dataset, recipe("torchvision-224"), Recording(), batch_ranges(len(dataset.items), 4), 2,
                            1, cache, str(tmp_path), record)
    next(batches)
    batches.close()  # the model failed on the first batch
    assert record["status"] == "built" and held == [True]
    assert not building(cache["dir"], record["key"])
    assert not glob.glob(os.path.join(cache["dir"], "entries", "*", "*.partial"))
