"""The crop cache's key reads the val set's files: it must see a file rewritten in place, count a file that
cannot be read as the decoders do, survive a damaged memo, and never keep an entry that holds an image
that failed to be read only for a moment. A cache folder that cannot be written is read, never a failure."""

import hashlib
import json
import os
import shutil

import pytest

from runner.probe import crop_cache
from runner.probe.crop_digests import file_digests

from ..filesystems import Switchable
from .recipes import recipe
from .test_decode_pool import Recording, evaluate

COUNT = 8


@pytest.fixture
def small_set(imagenet_sample, tmp_path):
    """The sample's first 8 JPEGs in the flat layout (images/, val_labels.txt, synsets.txt), copies to change."""
    folder = tmp_path / "val"
    (folder / "images").mkdir(parents=True)
    for name in sorted(os.listdir(str(imagenet_sample / "images")))[:COUNT]:
        shutil.copy(str(imagenet_sample / "images" / name), str(folder / "images"))
    for name in ("val_labels.txt", "synsets.txt"):
        shutil.copy(str(imagenet_sample / name), str(folder))
    return folder


def files(folder):
    return ["images/" + name for name in sorted(os.listdir(str(folder / "images")))]


def sha256(path):
    with open(str(path), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def cell(folder, tmp_path, name, cache):
    metrics, rows = evaluate(folder, tmp_path, name, recipe("torchvision-224"), Recording(), cache, workers=2,
                             prefetch=1)
    return metrics, rows


def test_a_file_rewritten_in_place_with_its_size_and_mtime_kept_gets_a_new_digest(small_set, tmp_path):
    """exiftool -P and rsync --inplace -t rewrite a file and put its mtime back: the size, mtime and inode
    are those the memo holds, the ctime is not."""
    cache = str(tmp_path / "crops")
    rels = files(small_set)
    first = file_digests(cache, str(small_set), rels, 2)
    path = small_set / rels[3]
    before = os.stat(str(path))
    with open(str(path), "r+b") as handle:
        handle.seek(before.st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    os.utime(str(path), ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(str(path))
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    second = file_digests(cache, str(small_set), rels, 2)
    assert second[3] == sha256(path) != first[3]
    assert second[:3] + second[4:] == first[:3] + first[4:]


def test_a_damaged_or_older_memo_is_hashed_again(small_set, tmp_path):
    cache = tmp_path / "crops"
    rels = files(small_set)
    truth = [sha256(small_set / rel) for rel in rels]
    assert file_digests(str(cache), str(small_set), rels, 2) == truth
    memo = next((cache / "digests").glob("*.json"))
    good = json.loads(memo.read_text())
    older = dict(good, format=1, files={rel: mark[:2] + mark[3:4] + ["0" * 64] for rel, mark in good["files"].items()})
    for damaged in ("[1, 2]", '{"files": [1]}', json.dumps(older), '{"format": 2, "root": "x"',
                    json.dumps(dict(good, files={rels[0]: [1, 2]})), json.dumps(dict(good, files={rels[0]: 7})),
                    json.dumps(dict(good, files=dict(good["files"], **{rels[0]: good["files"][rels[0]][:-1] + [None]})))):
        memo.write_text(damaged)
        assert file_digests(str(cache), str(small_set), rels, 2) == truth
        assert json.loads(memo.read_text())["files"][rels[0]][-1] == truth[0]  # written again, whole


def test_an_image_that_cannot_be_read_is_counted_as_without_a_cache(small_set, tmp_path):
    """A dangling link and a folder named like an image: the key holds markers, the cell evaluates the others
    and lists these two as unreadable, with or without the cache; once the files are back the key is new."""
    rels = files(small_set)
    kept = {rel: (small_set / rel).read_bytes() for rel in rels[2:4]}
    (small_set / rels[2]).unlink()
    os.symlink(str(small_set / "gone.JPEG"), str(small_set / rels[2]))
    (small_set / rels[3]).unlink()
    (small_set / rels[3]).mkdir()
    assert file_digests(str(tmp_path / "crops"), str(small_set), rels, 2)[2:4] == ["unreadable:ENOENT",
                                                                                    "unreadable:EISDIR"]
    memo = next((tmp_path / "crops" / "digests").glob("*.json"))
    written = memo.stat().st_mtime_ns
    assert file_digests(str(tmp_path / "crops"), str(small_set), rels, 2)[2:4] == ["unreadable:ENOENT",
                                                                                    "unreadable:EISDIR"]
    assert memo.stat().st_mtime_ns == written  # nothing new to keep: the memo is not written again
    cache = {"dir": str(tmp_path / "crops"), "limit_bytes": 1 << 30}
    off, off_rows = cell(small_set, tmp_path, "off", None)
    built, built_rows = cell(small_set, tmp_path, "built", cache)
    hit, hit_rows = cell(small_set, tmp_path, "hit", cache)
    assert [built["crop_cache"]["status"], hit["crop_cache"]["status"]] == ["built", "hit"]
    for metrics in (off, built, hit):
        assert metrics["images_evaluated"] == COUNT - 2
        assert sorted(u["file"] for u in metrics["unreadable"]) == rels[2:4]
    assert off_rows == built_rows == hit_rows
    (small_set / rels[2]).unlink()
    (small_set / rels[3]).rmdir()
    for rel, data in kept.items():
        (small_set / rel).write_bytes(data)
    back, _ = cell(small_set, tmp_path, "back", cache)
    assert back["crop_cache"]["status"] == "built" and back["crop_cache"]["key"] != hit["crop_cache"]["key"]
    assert back["images_evaluated"] == COUNT and not back["unreadable"]


def test_an_image_unreadable_only_while_it_is_decoded_is_not_stored(small_set, tmp_path, monkeypatch):
    """The file is moved away after the key is made and before the decoders read it, and back after the cell:
    an entry holding it unreadable would serve that to every later cell with the same (unchanged) key."""
    rels = files(small_set)
    victim = small_set / rels[5]
    started = crop_cache.CropCache.new_entry

    def new_entry(self, *args):
        victim.rename(str(victim) + ".away")
        return started(self, *args)

    monkeypatch.setattr(crop_cache.CropCache, "new_entry", new_entry)
    cache = {"dir": str(tmp_path / "crops"), "limit_bytes": 1 << 30}
    first, _ = cell(small_set, tmp_path, "first", cache)
    monkeypatch.undo()
    os.rename(str(victim) + ".away", str(victim))
    assert first["crop_cache"]["status"] == "not stored"
    assert first["crop_cache"]["reason"].startswith("{} could not be read while decoding".format(rels[5]))
    assert [u.get("errno") for u in first["unreadable"]] == ["ENOENT"] and first["images_evaluated"] == COUNT - 1
    assert not list((tmp_path / "crops" / "entries").glob("*/manifest.json"))
    again, _ = cell(small_set, tmp_path, "again", cache)
    assert again["crop_cache"]["status"] == "built" and again["images_evaluated"] == COUNT


def test_a_file_rewritten_while_the_entry_is_built_is_not_stored(small_set, tmp_path, monkeypatch):
    """A sync or an in-place fix after the key was made: the crops are of the new bytes, the key of the old.
    Stored, every later cell with the old files would read the new file's crop, its sha256 check passing."""
    rels = files(small_set)
    victim, other = small_set / rels[3], (small_set / rels[4]).read_bytes()
    started = crop_cache.CropCache.new_entry

    def new_entry(self, *args):
        victim.write_bytes(other)
        return started(self, *args)

    monkeypatch.setattr(crop_cache.CropCache, "new_entry", new_entry)
    cache = {"dir": str(tmp_path / "crops"), "limit_bytes": 1 << 30}
    first, first_rows = cell(small_set, tmp_path, "first", cache)
    monkeypatch.undo()
    assert first["crop_cache"]["status"] == "not stored"
    assert first["crop_cache"]["reason"].startswith("{} changed while the entry was built".format(rels[3]))
    assert not list((tmp_path / "crops" / "entries").glob("*/manifest.json"))
    off, off_rows = cell(small_set, tmp_path, "off", None)
    assert first_rows == off_rows  # the cell itself evaluated what the files held when it read them
    again, again_rows = cell(small_set, tmp_path, "again", cache)
    assert again["crop_cache"]["status"] == "built" and again["crop_cache"]["key"] != first["crop_cache"]["key"]
    hit, hit_rows = cell(small_set, tmp_path, "hit", cache)
    assert hit["crop_cache"]["status"] == "hit" and hit_rows == again_rows == off_rows


def test_an_image_unreadable_for_the_key_that_then_decodes_is_not_stored(small_set, tmp_path, monkeypatch):
    """The file arrives (an rsync finishing) after the key was made: the key names it unreadable, so an entry
    holding its crop would hand that crop to a later cell whose file is missing again."""
    rels = files(small_set)
    victim = small_set / rels[6]
    victim.rename(str(victim) + ".later")
    os.symlink(str(victim) + ".partial", str(victim))  # listed, not there yet: the key holds unreadable:ENOENT
    started = crop_cache.CropCache.new_entry

    def new_entry(self, *args):
        os.rename(str(victim) + ".later", str(victim))
        return started(self, *args)

    monkeypatch.setattr(crop_cache.CropCache, "new_entry", new_entry)
    cache = {"dir": str(tmp_path / "crops"), "limit_bytes": 1 << 30}
    first, _ = cell(small_set, tmp_path, "first", cache)
    monkeypatch.undo()
    assert first["crop_cache"]["status"] == "not stored" and first["images_evaluated"] == COUNT
    assert first["crop_cache"]["reason"].startswith("{} could not be read for the key but decoded".format(rels[6]))
    assert not list((tmp_path / "crops" / "entries").glob("*/manifest.json"))
    victim.unlink()
    os.symlink(str(victim) + ".partial", str(victim))  # missing again
    missing, _ = cell(small_set, tmp_path, "missing", cache)
    assert missing["crop_cache"]["status"] == "built" and missing["images_evaluated"] == COUNT - 1


def test_a_cache_folder_that_cannot_be_written_is_read_and_never_fails_a_cell(small_set, tmp_path):
    folder = Switchable(tmp_path / "crops", size="16m")
    try:
        cache = {"dir": str(folder.folder), "limit_bytes": 1 << 30}
        built, rows = cell(small_set, tmp_path, "built", cache)
        assert built["crop_cache"]["status"] == "built"
        folder.freeze()
        touched = small_set / files(small_set)[0]
        os.utime(str(touched), ns=(os.stat(str(touched)).st_atime_ns, os.stat(str(touched)).st_mtime_ns + 10 ** 9))
        hit, hit_rows = cell(small_set, tmp_path, "hit", cache)  # the file is hashed again; the memo stays as it was
        assert hit["crop_cache"]["status"] == "hit" and hit_rows == rows
        other, _ = evaluate(small_set, tmp_path, "other", recipe("torchvision-inception"), Recording(), cache,
                            workers=2, prefetch=1)
        assert other["crop_cache"]["status"] == "not stored" and other["images_evaluated"] == COUNT
        assert other["crop_cache"]["reason"].startswith("no entry can be added to the crop cache")
        assert "Read-only file system" in other["crop_cache"]["reason"]
    finally:
        folder.close()
