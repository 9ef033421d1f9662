"""One runner per results folder: a second one stops at once naming the holder; a dead holder's lock is taken over."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from runner.cli import main
from runner.storage import RunLocked, run_lock

from .faults import fault_case
from .matrices import REAL, ROOT

HOLD = """
import sys, time
from runner.storage import run_lock
with run_lock(sys.argv[1], "test holder"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder():
    started = []

    def start(folder):
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=str(ROOT), stdout=subprocess.PIPE,
                                   text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def _run(tmp_path, *extra):
    return main(["run", "--matrix", str(REAL), "--backend", "local", "--suite", "error", "--env", "torch-1.0",
                 "--model", "resnet50", "--weights", "random", "--results-dir", str(tmp_path / "results"),
                 "--reports-dir", str(tmp_path / "reports"), "--run", "r"] + list(extra))


def test_a_second_runner_on_one_results_folder_stops_at_once_naming_the_holder(tmp_path, holder, capsys):
    process = holder(tmp_path / "results" / "r")
    tick = time.monotonic()
    assert _run(tmp_path) == 2
    assert time.monotonic() - tick < 30
    err = capsys.readouterr().err
    assert "error: {} is in use by pid {} on {} since".format(tmp_path / "results" / "r", process.pid,
                                                              socket.gethostname()) in err
    assert "(test holder: `" in err and "pass another --run" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "results" / "r").iterdir()) == [".lock"]  # nothing stored
    assert not (tmp_path / "reports").exists()
    fault_case("a second `run` into the same results folder", "exit 2 at once; the first run goes on untouched",
           err.splitlines()[0], group="runs")
    with pytest.raises(RunLocked):
        with run_lock(tmp_path / "results" / "r", "run"):
            pass


def test_a_lock_left_by_a_killed_runner_is_taken_over_with_a_message(tmp_path, holder):
    folder = tmp_path / "results" / "r"
    process = holder(folder)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads((folder / ".lock").read_text())["pid"] == process.pid  # the record outlives its process
    said = []
    with run_lock(folder, "run", said.append) as record:
        assert record["pid"] == os.getpid()
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    assert len(said) == 1 and "taking over the lock left by pid {}".format(process.pid) in said[0]
    fault_case("the lock of a killed runner", "taken over with a message; the run goes on", said[0], group="runs")
    assert (folder / ".lock").read_text() == ""  # released in order: the next runner has nothing to take over
    said.clear()
    with run_lock(folder, "run", said.append):
        pass
    assert said == []


def test_runs_one_after_the_other_share_the_folder(tmp_path, capsys):
    assert _run(tmp_path) == 0
    assert _run(tmp_path) == 0
    assert "1 cell: 0 run now, 1 reused" in capsys.readouterr().out
