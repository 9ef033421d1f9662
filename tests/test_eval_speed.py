"""benchmarks/eval_speed.py: its synthetic val set (the same files from any number of writer processes) and the
runner runs it makes (--ignore-pins reaches every one)."""

import argparse
import json
import subprocess
import sys

from .matrices import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import eval_speed  # noqa: E402


def test_the_val_set_is_the_same_whichever_number_of_processes_writes_it(tmp_path):
    one = eval_speed.write_val_set(tmp_path / "one", 12, processes=1)
    (tmp_path / "three" / "images").mkdir(parents=True)
    (tmp_path / "three" / "images" / "ILSVRC2012_val_00000003.JPEG.part").write_bytes(b"half a file")
    three = eval_speed.write_val_set(tmp_path / "three", 12, processes=3)
    names = sorted(p.name for p in (one / "images").iterdir())
    assert names == ["ILSVRC2012_val_{:08d}.JPEG".format(i) for i in range(1, 13)]
    assert sorted(p.name for p in (three / "images").iterdir()) == names  # the unfinished .part is gone
    for name in names:
        assert (one / "images" / name).read_bytes() == (three / "images" / name).read_bytes()
    assert (one / "val_labels.txt").read_text() == (three / "val_labels.txt").read_text()
    assert (one / "val_labels.txt").read_text().splitlines()[1] == "ILSVRC2012_val_00000002.JPEG n10000001"
    kept = (three / "images" / names[0]).stat().st_mtime_ns
    eval_speed.write_val_set(three, 12, processes=2)  # --keep: files already there are reused, not rewritten
    assert (three / "images" / names[0]).stat().st_mtime_ns == kept


def test_ignore_pins_reaches_every_runner_run(tmp_path, monkeypatch):
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        name = command[command.index("--run") + 1]
        folder = tmp_path / "results" / name
        folder.mkdir(parents=True)
        (folder / "c.json").write_text(json.dumps({"status": "ok", "model": "resnet50", "reason": None}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(eval_speed.subprocess, "run", fake_run)
    args = argparse.Namespace(backend="local", device="cpu", env="torch-current", model="resnet50", ignore_pins=True)
    text = (ROOT / "matrix.toml").read_text()
    eval_speed.run(text, args, ["--suite", "throughput"], tmp_path, "pure-model")
    eval_speed.run(text, args, ["--suite", "error"], tmp_path, "row-error", row=True)
    args.ignore_pins = False
    eval_speed.run(text, args, ["--suite", "throughput"], tmp_path, "without")
    assert ["--ignore-pins" in command for command in commands] == [True, True, False]
