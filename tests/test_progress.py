"""Progress a person can follow: estimates from earlier results, the time left, a live footer on a
terminal (with a build's current pip step), plain lines elsewhere."""

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
import types

import pytest

from runner.progress import Progress, clock, past_durations

from .matrices import FAST_SUITES, ROOT, write_matrix


def cell(cell_id, suite="error", label=None):
    return types.SimpleNamespace(id=cell_id, suite=suite, label=label or "env model " + suite)


def result(suite, seconds, status="ok"):
    return {"suite": suite, "status": status, "duration_s": seconds, "reason": None, "metrics": None}


def test_past_durations_come_from_ok_results_of_the_same_cell_in_any_run(tmp_path):
    for run, cell_id, status, seconds in (("a", "c1", "ok", 30.0), ("b", "c2", "failed", 5.0), ("b", "c3", "ok", 12.5)):
        (tmp_path / run).mkdir(exist_ok=True)
        (tmp_path / run / "{}.json".format(cell_id)).write_text(json.dumps({"status": status, "duration_s": seconds}))
    (tmp_path / "b" / "c4.json").write_text("{truncated")
    assert past_durations(tmp_path, ["c1", "c2", "c3", "c4", "c5"]) == {"c1": 30.0, "c3": 12.5}
    assert past_durations(tmp_path / "missing", ["c1"]) == {}


def test_each_start_line_says_what_the_cell_and_the_rest_should_take():
    out = io.StringIO()
    cells = [cell("a"), cell("b"), cell("c", suite="throughput")]
    progress = Progress(3, out, estimates={"a": 60, "c": 30}, live=False)
    progress.plan(cells)
    first = progress.start(cells[0])
    assert out.getvalue().splitlines()[-1].endswith("(about 0:01:00)")  # b has no estimate yet: no total
    progress.done(cells[0], result("error", 40.0), first)
    second = progress.start(cells[1])
    # b is an error cell: the error cell that ended took 40 s; then c, known from before: 30 s.
    assert out.getvalue().splitlines()[-1].endswith("(about 0:00:40; 1 more after it, about 0:01:10 in all)")
    progress.done(cells[1], result("error", 41.0, status="failed"), second)
    assert "cell 2/3 env model error: failed in 41.0 s" in out.getvalue()


def test_a_running_cell_without_an_estimate_leaves_the_total_unsaid():
    """The first cell of a suite with nothing known of it: the rest's sum would be the time left without it."""
    out = io.StringIO()
    cells = [cell("a", suite="throughput"), cell("b"), cell("c")]
    progress = Progress(3, out, estimates={"b": 20, "c": 30}, live=False)
    progress.plan(cells)
    number = progress.start(cells[0])
    assert out.getvalue().splitlines()[-1].endswith("env model throughput (a) ...")
    assert progress._time_left() is None
    progress.done(cells[0], result("throughput", 10.0), number)
    progress.start(cells[1])
    assert out.getvalue().splitlines()[-1].endswith("(about 0:00:20; 1 more after it, about 0:00:50 in all)")


def test_drift_loads_to_come_count_in_the_time_left_until_the_real_ones_are_planned():
    out = io.StringIO()
    writers = [cell("w1", suite="drift"), cell("w2", suite="drift")]
    progress = Progress(2, out, estimates={"w1": 10, "w2": 20}, live=False)
    progress.plan(writers)
    progress.expect([writers[1]])  # w2 will load w1's checkpoint: a load about as long as w2
    assert progress._time_left() == 50
    number = progress.start(writers[0])
    assert out.getvalue().splitlines()[-1].endswith("(about 0:00:10; 1 more and about 1 drift load after it, about 0:00:50 in all)")
    progress.done(writers[0], result("drift", 10.0), number)
    progress.done(writers[1], result("drift", 20.0), progress.start(writers[1]))
    assert out.getvalue().splitlines()[-2].endswith("(about 0:00:20; about 1 drift load after it, about 0:00:40 in all)")
    progress.add(1, {"load": 7.0})  # the real load, known from an earlier run
    progress.plan([cell("load", suite="drift")])
    assert progress._time_left() == 7.0 and progress.total == 3


def test_slots_share_the_time_left():
    progress = Progress(4, io.StringIO(), estimates={c: 100 for c in "abcd"}, live=False, slots=2)
    progress.plan([cell(c) for c in "abcd"])
    assert progress._time_left() == 200
    # two cells on two slots, one of 90 s and one of 70: the run takes 90, not their mean of 80
    uneven = Progress(2, io.StringIO(), estimates={"a": 90, "b": 70}, live=False, slots=2)
    uneven.plan([cell(c) for c in "ab"])
    assert uneven._time_left() == 90


def test_the_live_footer_shows_counts_running_cells_and_a_builds_current_step(tmp_path):
    log = tmp_path / "install.log"
    log.write_text("$ python -m pip install ...\nCollecting scipy==1.13.1\r  Downloading scipy (38.6 MB)\n")
    out = io.StringIO()
    progress = Progress(2, out, estimates={"a": 90}, live=True)
    progress.console.force_terminal = True
    progress.plan([cell("a"), cell("b")])
    progress.start(cell("a"))
    progress.follow("building mxnet-1.9", log)
    footer = progress._footer().plain
    assert footer.splitlines()[0].startswith("0/2 cells ended, 2 left")
    assert "cell 1/2 env model error: 0:00:00 of about 0:01:30" in footer
    assert footer.splitlines()[-1] == "  building mxnet-1.9: Downloading scipy (38.6 MB)"
    progress.say("built mxnet-1.9 in 20 s")  # a message ends the build's live line
    assert "building mxnet-1.9" not in progress._footer().plain
    progress.close()


def test_clock():
    assert clock(3725.4) == "1:02:05" and clock(59.6) == "0:01:00" and clock(-3) == "0:00:00"


@pytest.mark.slow
def test_a_run_on_a_terminal_shows_the_live_footer_and_in_a_pipe_only_lines(tmp_path, sample):
    matrix = write_matrix(tmp_path, suites=FAST_SUITES.replace("iterations = 3", "iterations = 40"))
    args = [sys.executable, "-m", "runner", "run", "--matrix", str(matrix), "--backend", "venv", "--env", "mxnet-1.5",
            "--model", "mobilenet", "--suite", "throughput", "--weights", "random", "--results-dir",
            str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")]
    leader, follower = pty.openpty()
    process = subprocess.Popen(args + ["--run", "tty"], cwd=str(ROOT), stdin=follower, stdout=follower,
                               stderr=follower, env=dict(os.environ, TERM="xterm", COLUMNS="160"))
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the pty closes when the run ends
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    process.wait()
    os.close(leader)
    text = seen.decode(errors="replace")
    assert process.returncode == 0, text
    assert "0/1 cells ended, 1 left" in text and "cell 1/1 mxnet-1.5 mobilenet throughput: 0:00:0" in text
    assert "cell 1/1 mxnet-1.5 mobilenet throughput: ok in" in text
    piped = subprocess.run(args + ["--run", "pipe", "--force"], cwd=str(ROOT), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    assert piped.returncode == 0, piped.stdout
    assert "cells ended" not in piped.stdout and "\x1b[" not in piped.stdout
    # The second run knew how long this cell took in the first: its start line says so.
    assert "(about 0:00:" in piped.stdout


def test_the_planned_line_says_which_cells_run_again_under_force():
    from runner.pipeline import _stored_text

    cells = [cell(c) for c in "abc"]
    store = types.SimpleNamespace(root="results/x", get=lambda cell_id: {"status": "ok"} if cell_id in "ab" else None)
    assert _stored_text(cells, cells[2:], store, types.SimpleNamespace(force=False)) == \
        "2 already have results in results/x"
    assert _stored_text(cells, cells, store, types.SimpleNamespace(force=True)) == \
        "2 have results in results/x and run again (--force)"
    assert _stored_text(cells[2:], cells[2:], store, types.SimpleNamespace(force=True)) == "0 have results in results/x"
    assert _stored_text(cells[1:], cells[1:], store, types.SimpleNamespace(force=True)) == \
        "1 has results in results/x and runs again (--force)"
