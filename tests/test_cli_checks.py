"""Flags checked at the edge: each bad value is one message and exit 2, before anything is read, built or written."""

import os
import subprocess
import sys

import pytest

from runner.cli import main

from .faults import fault_case
from .matrices import REAL, ROOT

RUN = ["run", "--backend", "local", "--suite", "error", "--env", "torch-1.0", "--model", "resnet50",
       "--weights", "random"]


def _bad_files(tmp_path):
    (tmp_path / "latin1.toml").write_bytes("schema = 1 # caf\xe9\n".encode("latin-1"))
    (tmp_path / "labels-latin1.txt").write_bytes(b"ILSVRC2012_val_00000001.JPEG n01751748 \xe9\n")
    (tmp_path / "a-folder").mkdir()


CASES = [
    (["--limit", "-5"], "--limit -5: expected a number of images, 1 or more"),
    (["--limit", "0"], "--limit 0: expected a number of images, 1 or more"),
    (["--threads", "-3"], "--threads -3: expected 0 (the framework's default) or more"),
    (["--jobs", "0"], "--jobs 0: expected 1 or more"),
    (["--device", "gpu"], "--device gpu: expected cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "--device cuda:x: expected cpu, cuda or cuda:N"),
    (["--run", "../../x"], "--run ../../x: expected a plain name"),
    (["--run", "a/b"], "--run a/b: expected a plain name"),
    (["--run", ".hidden"], "--run .hidden: expected a plain name"),
    (["--run", "a..b"], "--run a..b: expected a plain name"),
    (["--run", "reference"], "--run reference: reports/reference/ holds the project's own reference reports"),
    (["--matrix", "{tmp}/a-folder"], "--matrix {tmp}/a-folder: is a folder, expected a file"),
    (["--matrix", "{tmp}/missing.toml"], "--matrix {tmp}/missing.toml: file not found; pass --matrix PATH"),
    (["--matrix", "{tmp}/latin1.toml"], "--matrix {tmp}/latin1.toml: not UTF-8 text (byte 0xe9 on line 1)"),
    (["--labels", "{tmp}/missing.txt"], "--labels {tmp}/missing.txt: file not found"),
    (["--labels", "{tmp}/a-folder"], "--labels {tmp}/a-folder: is a folder, expected a file"),
    (["--labels", "{tmp}/labels-latin1.txt"], "--labels {tmp}/labels-latin1.txt: not UTF-8 text"),
]


@pytest.mark.parametrize("flags, message", CASES, ids=[" ".join(flags) for flags, _ in CASES])
def test_a_bad_flag_is_one_message_exit_2_and_nothing_written(tmp_path, capsys, flags, message):
    _bad_files(tmp_path)
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    matrix = [] if "--matrix" in flags else ["--matrix", str(REAL)]
    folders = ["--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")]
    assert main(RUN + matrix + folders + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + message.format(tmp=tmp_path)) and "Traceback" not in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "reports").exists()
    fault_case("`{}`".format(" ".join(flags)), "exit 2 before anything is read, built or written",
           err.splitlines()[0], group="flags")


def test_the_same_checks_hold_for_plan_and_report(tmp_path, capsys):
    assert main(["plan", "--matrix", str(REAL), "--device", "gpu"]) == 2
    assert main(["report", "--matrix", str(REAL), "--run", "../x", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--device gpu: expected" in err and "--run ../x: expected a plain name" in err


@pytest.mark.parametrize("flags", [["--device", "cuda:1"], ["--device", "cpu"], ["--threads", "0"],
                                   ["--limit", "1"], ["--run", "venv-cuda1.fp16_x"], ["--jobs", "2"]])
def test_good_values_pass(tmp_path, capsys, flags):
    folders = ["--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")]
    assert main(RUN + ["--matrix", str(REAL)] + folders + flags) == 0, capsys.readouterr().err
    assert "1 cell: 1 run now" in capsys.readouterr().out


def test_a_val_set_with_file_names_outside_utf8_is_refused_before_anything_runs(tmp_path, capsys, imagenet_sample):
    folder = tmp_path / "val" / "n01440764"
    folder.mkdir(parents=True)
    image = (imagenet_sample / "images" / "ILSVRC2012_val_00000001.JPEG").read_bytes()
    with open(os.fsencode(str(folder)) + b"/caf\xe9.JPEG", "wb") as handle:
        handle.write(image)
    (tmp_path / "val" / "synsets.txt").write_bytes((imagenet_sample / "synsets.txt").read_bytes())
    folders = ["--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")]
    assert main(RUN + ["--matrix", str(REAL), "--imagenet", str(tmp_path / "val")] + folders) == 2
    err = capsys.readouterr().err
    assert "1 image file names are not valid UTF-8, e.g. b'n01440764/caf\\xe9.JPEG'" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("args", [["crops", "--dir", "."], ["plan", "--weights", "random"]])
def test_a_reader_that_left_ends_the_command_quietly(args, buffered, tmp_path):
    """`dlmatrix crops | head -1`: stdout is a pipe whose reader is gone before the first write. No traceback,
    and 141, as a shell reports a command SIGPIPE ended; also where the output waits in Python's buffer until
    the end (a pipe's default), not only where each write goes out at once (PYTHONUNBUFFERED)."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    environment.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        environment["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "runner"] + args, stdout=write_end, stderr=subprocess.PIPE,
                              cwd=str(tmp_path if args[0] == "crops" else ROOT), timeout=120, text=True,
                              env=environment)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
