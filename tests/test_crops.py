"""`dlmatrix crops` over real crop cache entries (the probe's prefill decodes the sample's crops into them):
the listing says what each entry holds, which val set, how big and in what state; --remove, --partial and
--all take entries out, but never one another process is building; bad input is one message and exit 2."""

import fcntl
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from runner.cli import main
from runner.probe.crop_cache import CropCache
from runner.probe.dataset import open_dataset
from runner.probe.crop_source import prefill
from runner.probe.error_suite import batch_ranges

from .matrices import ROOT
from .probe.recipes import recipe
from .probe.test_decode_pool import Recording

RECIPES = ("torchvision-224", "torchvision-inception")  # the torch row's two: 256 -> 224 and 342 -> 299


def crops(*args, env=None, cwd=ROOT):
    """The command run as a user runs it: (exit code, stdout, stderr)."""
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    done = subprocess.run([sys.executable, "-m", "runner", "crops"] + list(args), cwd=str(cwd), capture_output=True,
                          text=True, env=environ, timeout=120)
    return done.returncode, done.stdout, done.stderr


def listing(folder):
    out = io.StringIO()
    assert main(["crops", "--dir", str(folder), "--format", "json"], out=out) == 0
    return json.loads(out.getvalue())


@pytest.fixture
def cache(imagenet_sample, tmp_path):
    """A cache with the sample's crops under the torch row's two recipes; (folder, {recipe name: key})."""
    folder = tmp_path / "crops"
    dataset = open_dataset(str(imagenet_sample))
    keys = {}
    for name in RECIPES:
        record = prefill(dataset, recipe(name), Recording(), batch_ranges(len(dataset.items), 8), 2, 1,
                         {"dir": str(folder), "limit_bytes": 1 << 30}, str(tmp_path))
        assert record["status"] == "built"
        keys[name] = record["key"]
    return folder, keys


def test_the_listing_says_what_each_entry_holds(cache, imagenet_sample):
    folder, keys = cache
    shown = listing(folder)
    entries = {entry["key"]: entry for entry in shown["entries"]}
    assert set(entries) == set(keys.values())
    for name, crop in zip(RECIPES, (224, 299)):
        entry = entries[keys[name]]
        assert entry["state"] == "complete" and entry["images"] == 30 and entry["unreadable"] == 0
        assert entry["recipe"]["crop"] == crop and entry["built"]["by"] == "prefill"
        assert entry["val_set"] == os.path.abspath(str(imagenet_sample))  # matched through the files' digests
        data = [p for p in (folder / "entries" / entry["key"]).iterdir() if p.name.startswith("crops-")]
        assert entry["bytes"] >= data[0].stat().st_size >= 30 * crop * crop * 3
    assert shown["used_bytes"] == sum(entry["bytes"] for entry in shown["entries"])

    code, out, err = crops("--dir", str(folder))
    assert code == 0 and not err
    assert "2 entries" in out and "256->224 shorter bilinear" in out and "342->299 shorter bilinear" in out
    assert keys[RECIPES[0]][:12] in out and str(os.path.abspath(str(imagenet_sample))) in out


def test_a_val_set_whose_files_changed_is_not_named(cache, tmp_path):
    folder, keys = cache
    for memo in (folder / "digests").glob("*.json"):
        data = json.loads(memo.read_text())
        first = sorted(data["files"])[0]
        data["files"][first][-1] = "0" * 64  # as if the file had been hashed again after an edit
        memo.write_text(json.dumps(data))
    assert {entry["val_set"] for entry in listing(folder)["entries"]} == {None}


def test_remove_takes_out_one_entry_by_the_start_of_its_key(cache):
    folder, keys = cache
    gone, kept = keys[RECIPES[1]], keys[RECIPES[0]]
    code, out, err = crops("--dir", str(folder), "--remove", gone[:8], "--dry-run")
    assert code == 0 and "would remove {}".format(gone) in out
    assert (folder / "entries" / gone / "manifest.json").exists()
    code, out, err = crops("--dir", str(folder), "--remove", gone[:8])
    assert code == 0 and "removed {}".format(gone) in out, err
    assert not (folder / "entries" / gone).exists()
    assert [entry["key"] for entry in listing(folder)["entries"]] == [kept]


def test_a_cell_reading_an_entry_as_it_is_removed_keeps_its_crops(cache):
    folder, keys = cache
    key = keys[RECIPES[0]]
    store = CropCache(str(folder), 1 << 30)
    entry = store.complete_entry(key, [item[0] for item in
                                       json.loads((folder / "entries" / key / "manifest.json").read_text())["items"]],
                                 224)
    before = [bytes(entry.store.read(index, 1)) for index in (0, 29)]
    assert crops("--dir", str(folder), "--remove", key)[0] == 0
    assert [bytes(entry.store.read(index, 1)) for index in (0, 29)] == before
    entry.close()


def test_an_entry_another_process_is_building_is_left_in_place(cache):
    folder, keys = cache
    busy, free = keys[RECIPES[0]], keys[RECIPES[1]]
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        "handle = open(sys.argv[1], 'a')\n"
        "fcntl.flock(handle.fileno(), fcntl.LOCK_EX)\n"  # what a cell building the entry holds
        "print('held', flush=True)\n"
        "time.sleep(120)\n"), str(folder / "locks" / (busy + ".lock"))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        states = {entry["key"]: entry["state"] for entry in listing(folder)["entries"]}
        assert states == {busy: "building", free: "complete"}
        code, out, err = crops("--dir", str(folder), "--all")
        assert code == 0, err
        assert "left in place: {} (the entry): a cell is building it".format(busy) in out
        assert "removed {}".format(free) in out and "file digests" in out
    finally:
        holder.kill()
        holder.wait()
    assert (folder / "entries" / busy / "manifest.json").exists() and not (folder / "entries" / free).exists()
    assert not list((folder / "digests").glob("*.json"))


@pytest.mark.parametrize("damage, problem", [
    ("short item", "item 2 of its manifest is not [image, mode, problem, sha256 of its crop]"),
    ("not json", "its manifest cannot be read ("), ("a list", "its manifest is not a JSON object"),
    ("short crops file", "its crops file is "), ("no crops file", "its crops file crops-"),
    ("fewer items", "its manifest lists 10 images, its key 30"), ("built a word", "its manifest lacks a field")])
def test_a_damaged_entry_is_listed_as_such_and_removed_by_its_key(cache, damage, problem):
    """A hand-edited manifest: said, not a traceback; --partial leaves it (the next cell rebuilds it)."""
    folder, keys = cache
    damaged, kept = keys[RECIPES[1]], keys[RECIPES[0]]
    path = folder / "entries" / damaged / "manifest.json"
    manifest = json.loads(path.read_text())
    data = folder / "entries" / damaged / manifest["data"]
    if damage == "short crops file":
        os.truncate(str(data), data.stat().st_size - 1)
    elif damage == "no crops file":
        data.unlink()
    elif damage == "fewer items":
        path.write_text(json.dumps(dict(manifest, items=manifest["items"][:10])))
    elif damage == "built a word":
        path.write_text(json.dumps(dict(manifest, built="x")))
    else:
        manifest["items"][2] = manifest["items"][2][:1]
        path.write_text({"short item": json.dumps(manifest), "not json": "{\"format\": 1,",
                         "a list": json.dumps([manifest])}[damage])
    entries = {entry["key"]: entry for entry in listing(folder)["entries"]}
    assert entries[damaged]["state"] == "damaged" and entries[damaged]["problem"].startswith(problem)
    assert entries[damaged]["images"] is None and entries[damaged]["last_used"]
    assert entries[kept]["state"] == "complete" and entries[kept]["problem"] is None
    code, out, err = crops("--dir", str(folder))
    assert code == 0 and not err
    assert "damaged: {}: {}".format(damaged[:12], problem) in out and "--remove {}".format(damaged[:12]) in out
    code, out, err = crops("--dir", str(folder), "--partial")
    assert code == 0 and damaged not in out and path.exists()
    code, out, err = crops("--dir", str(folder), "--remove", damaged[:12])
    assert code == 0 and "removed {}".format(damaged) in out, err
    assert [entry["key"] for entry in listing(folder)["entries"]] == [kept]


def test_partial_removes_what_a_killed_builder_left_and_nothing_else(cache, tmp_path):
    folder, keys = cache
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import eval_speed

    images = eval_speed.write_val_set(tmp_path / "val", 400, processes=1)
    builder = subprocess.Popen([sys.executable, "-c", (
        "import sys\n"
        "from runner.probe.crop_source import prefill\n"
        "from runner.probe.dataset import open_dataset\n"
        "from runner.probe.error_suite import batch_ranges\n"
        "from tests.probe.recipes import recipe\n"
        "from tests.probe.test_decode_pool import Recording\n"
        "dataset = open_dataset(sys.argv[1])\n"
        "prefill(dataset, recipe('torchvision-224'), Recording(), batch_ranges(len(dataset.items), 4), 1, 1,\n"
        "        {'dir': sys.argv[2], 'limit_bytes': 1 << 30}, sys.argv[3])\n"),
        str(images), str(folder), str(tmp_path)], cwd=str(ROOT))
    deadline = time.monotonic() + 60
    while not list(folder.glob("entries/*/*.partial")):
        assert builder.poll() is None and time.monotonic() < deadline, "the builder ended before its entry showed"
        time.sleep(0.01)
    builder.send_signal(signal.SIGKILL)  # as an OOM kill or a power cut leaves it: no clean-up ran
    builder.wait()
    shown = listing(folder)["entries"]
    left = [entry for entry in shown if entry["state"] == "left"]
    assert len(left) == 1 and left[0]["partial_bytes"] > 0 and left[0]["images"] is None
    code, out, err = crops("--dir", str(folder))
    assert "left" in out and "`dlmatrix crops --partial` removes it" in out
    code, out, err = crops("--dir", str(folder), "--partial")
    assert code == 0 and "removed {} (left by a cell that stopped building it)".format(left[0]["key"]) in out, err
    assert sorted(entry["key"] for entry in listing(folder)["entries"]) == sorted(keys.values())
    with open(str(folder / "locks" / (left[0]["key"] + ".lock"))) as handle:  # its lock file stays, free
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_bad_input_is_one_message_and_exit_2(cache, tmp_path):
    folder, keys = cache
    code, out, err = crops("--dir", str(folder), "--remove", "zz")
    assert code == 2 and "no entry's key starts with it" in err and keys[RECIPES[0]] in err
    assert "Traceback" not in err and len(list((folder / "entries").iterdir())) == 2
    code, out, err = crops("--dir", str(folder), "--remove", "")
    assert code == 2 and "2 entries' keys start with it" in err
    code, out, err = crops("--remove", "abc", env={"DLMATRIX_CACHE": "off"})
    assert code == 2 and "crop cache is off ($DLMATRIX_CACHE" in err and "--dir" in err and "Traceback" not in err
    (tmp_path / "a-file").write_text("x")
    code, out, err = crops("--dir", str(tmp_path / "a-file"))
    assert code == 2 and "is a file, not a crop cache folder" in err and "Traceback" not in err
    code, out, err = crops("--dir", str(tmp_path / "nothing"))
    assert code == 0 and "nothing there yet" in out
    code, out, err = crops("--dir", str(tmp_path / "nothing"), "--remove", "abc")
    assert code == 2 and "holds no entries yet" in err


def test_the_default_folder_follows_dlmatrix_cache(cache):
    folder, keys = cache
    code, out, err = crops(env={"DLMATRIX_CACHE": str(folder)})
    assert code == 0 and out.startswith("crop cache {} ($DLMATRIX_CACHE): 2 entries".format(folder))


def test_dir_needs_no_matrix_and_works_from_any_folder(cache, tmp_path):
    folder, keys = cache
    code, out, err = crops("--dir", str(folder), cwd=tmp_path)
    assert code == 0 and "2 entries" in out, err


def test_partial_keeps_an_entry_a_cell_completed_since_the_listing(cache):
    """--partial lists an entry as left, then takes its lock: by then a cell may have built it. Only what has no
    manifest, or is a .partial file, goes."""
    def remove_left(folder, key):
        return CropCache(str(folder), 1 << 30).remove_unless_busy(key, only_left=True)

    folder, keys = cache
    key = keys[RECIPES[0]]
    where = folder / "entries" / key
    kept = sorted(os.listdir(str(where)))
    (where / "crops-0123456789ab.npy.partial").write_bytes(b"x" * 8192)  # a builder before the last one died
    assert remove_left(folder, key) >= 8192
    assert sorted(os.listdir(str(where))) == kept and listing(folder)["entries"][0]["state"] == "complete"
    (where / "manifest.json").unlink()  # now it is left: its crops file goes too
    assert remove_left(folder, key) > 30 * 224 * 224 * 3 and not where.exists()


def test_a_folder_that_is_no_crop_cache_keeps_its_files(tmp_path):
    """A wrong --dir with --all: only names the cache gives (32 hex digits; crops-*.npy, manifest.json in an
    entry; <32 hex>.json memos) are its own."""
    mine = tmp_path / "photos"
    (mine / "entries" / "2024-trip").mkdir(parents=True)
    (mine / "entries" / "2024-trip" / "notes.txt").write_text("mine")
    (mine / "entries" / ("a" * 32)).mkdir()
    (mine / "entries" / ("a" * 32) / "notes.txt").write_text("mine too")
    (mine / "digests").mkdir()
    (mine / "digests" / "backup.json").write_text("{}")
    code, out, err = crops("--dir", str(mine), "--all")
    assert code == 0, err
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob("*") if p.is_file()) == [
        "digests/backup.json", "entries/2024-trip/notes.txt", "entries/{}/notes.txt".format("a" * 32)]


def test_an_entry_with_an_unreadable_image_names_its_val_set(imagenet_sample, tmp_path):
    """The key holds a marker for the file that could not be read, the memo holds no digest for it: the
    manifest says why it could not be read, which gives the marker back."""
    val = tmp_path / "val"
    (val / "images").mkdir(parents=True)
    names = sorted(os.listdir(str(imagenet_sample / "images")))[:6]
    for name in names[:5]:
        (val / "images" / name).write_bytes((imagenet_sample / "images" / name).read_bytes())
    os.symlink(str(val / "nowhere.JPEG"), str(val / "images" / names[5]))
    for name in ("val_labels.txt", "synsets.txt"):
        (val / name).write_bytes((imagenet_sample / name).read_bytes())
    dataset = open_dataset(str(val))
    record = prefill(dataset, recipe(RECIPES[0]), Recording(), batch_ranges(len(dataset.items), 4), 1, 1,
                     {"dir": str(tmp_path / "crops"), "limit_bytes": 1 << 30}, str(tmp_path))
    assert record["status"] == "built"
    entry, = listing(tmp_path / "crops")["entries"]
    assert entry["unreadable"] == 1 and entry["val_set"] == str(val)
    assert entry["images"] == 6 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", entry["last_used"])
    code, out, err = crops("--dir", str(tmp_path / "crops"))
    assert code == 0 and "6 (1 unreadable)" in out and "1 entry," in out
