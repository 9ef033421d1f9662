"""Faults injected into real runs (the venv backend, the MXNet rows, the 30 real val images): whatever
happens, nothing computed is lost, no process of the run is left, and no temporary file stays.

- kill -9 of the runner at 20 points drawn at random (seeded) over a small matrix run, each followed
  at once by a re-run: the results are those of an uninterrupted run;
- SIGTERM during a cell: recorded as interrupted, run again by the next run;
- a hung cell: its whole process tree is ended at the timeout, status timeout;
- a cell over its memory limit: status out_of_memory, with what it held.
"""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .faults import fault_case
from .matrices import FAST_SUITES, ROOT, write_matrix

pytestmark = pytest.mark.slow

SEED = 20261130
KILL_POINTS = 20
# Two versions of one framework, so the run has every kind of cell: error, drift writers, a drift load.
CELLS = ["--env", "mxnet-1.5", "--env", "mxnet-1.9", "--model", "mobilenet", "--suite", "error", "--suite", "drift",
         "--weights", "random", "--limit", "12"]
TIMINGS = {"telemetry.csv"}  # side files that hold times, which differ run to run by nature


_STARTED = []  # runners these tests started: none may outlive a failed test (it would race the next one)


@pytest.fixture(scope="module", autouse=True)
def no_runner_outlives_the_tests():
    yield
    for process in _STARTED:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the runner's own clean-up ends its cells' processes
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def start_run(work, sample, run, extra=(), matrix=None):
    args = [sys.executable, "-m", "runner", "run", "--matrix", str(matrix or work / "matrix.toml"), "--backend", "venv",
            "--imagenet", str(sample), "--results-dir", str(work / "results"), "--reports-dir",
            str(work / "reports"), "--run", run] + CELLS + list(extra)
    return started(args)


def started(args):
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _STARTED.append(process)
    return process


def finish(process, timeout_s=900):
    out, _ = process.communicate(timeout=timeout_s)
    return process.returncode, out


def outcome(folder):
    """What a run determined: per cell, its status, the measured numbers that do not depend on timing,
    and the content of its side files (predictions, checkpoints, outputs)."""
    found = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        metrics = data.get("metrics") or {}
        files = {name: hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()
                 for name in (data.get("files") or {}).values() if name.split(".", 1)[1] not in TIMINGS}
        found[data["cell_id"]] = (data["status"], data.get("reason"), metrics.get("top1_correct"),
                                  metrics.get("images_evaluated"), files)
    return found


def processes_of(folder):
    """Processes (other than zombies) whose command line names `folder`: the runner, guards, probes, pip."""
    needle = str(folder).encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path("/proc", name, "cmdline").read_bytes()
            state = Path("/proc", name, "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != b"Z":
            found.append((int(name), cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]))
    return found


def leftovers(folder):
    """Temporary files and scratch folders a run left in its results folder."""
    root = Path(folder)
    temp = [str(p) for p in root.rglob("*.tmp")] + [str(p) for p in root.rglob(".guard-*.json")]
    work = [str(p) for p in (root / ".work").iterdir()] if (root / ".work").is_dir() else []
    return temp + work


def wait_until_gone(folder, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and processes_of(folder):
        time.sleep(0.1)
    return processes_of(folder)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sample):
    work = tmp_path_factory.mktemp("faults")
    write_matrix(work, suites=FAST_SUITES)
    code, out = finish(start_run(work, sample, "warm"))  # builds the environments, so the timed run is cells only
    assert code == 0, out
    tick = time.monotonic()
    code, out = finish(start_run(work, sample, "uninterrupted"))
    duration = time.monotonic() - tick
    assert code == 0, out
    result = outcome(work / "results" / "uninterrupted")
    assert len(result) == 5 and {status for status, *_ in result.values()} == {"ok"}, out
    return {"work": work, "duration": duration, "outcome": result}


def test_kill_9_at_random_points_resumes_to_the_uninterrupted_results(reference, sample):
    work, duration = reference["work"], reference["duration"]
    draw = random.Random(SEED)
    points = sorted(draw.uniform(0.5, 0.95 * duration) for _ in range(KILL_POINTS))
    failures = []
    for number, point in enumerate(points):
        run = "kill{:02d}".format(number)
        folder = work / "results" / run
        process = start_run(work, sample, run)
        time.sleep(point)
        process.kill()  # SIGKILL: no handler, no clean-up in the runner
        process.communicate()
        left = wait_until_gone(folder)
        code, out = finish(start_run(work, sample, run))  # the re-run, at once
        problems = []
        if left:
            problems.append("processes alive 10 s after the kill: {}".format(left))
        if code != 0:
            problems.append("re-run exit {}: {}".format(code, out[-1500:]))
        if outcome(folder) != reference["outcome"]:
            problems.append("results differ from the uninterrupted run")
        if processes_of(folder) or leftovers(folder):
            problems.append("left after the re-run: {} {}".format(processes_of(folder), leftovers(folder)))
        if problems:
            failures.append("kill point {} at {:.2f} s (seed {}): {}".format(number, point, SEED, "; ".join(problems)))
    assert not failures, "\n".join(failures)
    fault_case("`kill -9` of the runner, 20 random points", "a re-run gives the uninterrupted results; no process and "
           "no temporary file of the run is left", "(none: the re-run says how many results it reuses)")


def test_sigterm_records_the_cell_as_interrupted_and_the_next_run_runs_it_again(reference, sample, tmp_path):
    work = reference["work"]
    folder = work / "results" / "term"
    process = start_run(work, sample, "term", extra=["--suite", "error"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("runner.probe" in line for _, line in processes_of(folder)):
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    code, out = finish(process)
    assert code == 130 and "interrupted; results written so far are kept" in out
    assert wait_until_gone(folder, 5.0) == []
    statuses = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    stopped = [r for r in statuses if r["status"] == "interrupted"]
    assert len(stopped) == 1 and "stopped by Ctrl-C or SIGTERM" in stopped[0]["reason"], statuses
    line = next(line for line in out.splitlines() if ": interrupted in" in line)
    fault_case("Ctrl-C or SIGTERM during a cell", "its processes are ended; the cell is stored as `interrupted` and the "
           "next run runs it again; exit 130", line.split("] ", 1)[1])
    code, out = finish(start_run(work, sample, "term"))
    assert code == 0, out
    assert outcome(folder) == reference["outcome"]


def test_a_hung_cell_is_ended_at_its_timeout_with_its_whole_process_tree(reference, sample):
    work = reference["work"]
    # Thousands of timed iterations with a 4 s budget: the probe is still busy when the timeout comes.
    hung = FAST_SUITES.replace("iterations = 3\ntimeout_s = 900", "iterations = 100000\ntimeout_s = 4")
    (work / "hung").mkdir()
    matrix = write_matrix(work / "hung", suites=hung)
    folder = work / "results" / "hung"
    args = [sys.executable, "-m", "runner", "run", "--matrix", str(matrix), "--backend", "venv", "--env", "mxnet-1.5",
            "--model", "mobilenet", "--suite", "throughput", "--weights", "random", "--results-dir",
            str(work / "results"), "--reports-dir", str(work / "reports"), "--run", "hung"]
    code, out = finish(started(args))
    assert code == 1, out
    assert processes_of(folder) == [] and leftovers(folder) == []
    (result,) = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert result["status"] == "timeout" and "timed out after 4 s (suites.throughput.timeout_s)" in result["reason"]
    fault_case("a hung cell", "its whole process tree is ended at the suite's timeout_s; status `timeout`; the other "
           "cells go on", result["reason"])


def test_a_weights_file_whose_sha256_does_not_match_is_refused(reference, sample):
    work = reference["work"]
    (work / "weights").mkdir()
    weights = work / "weights" / "mobilenet.params"
    weights.write_bytes(os.urandom(4096))
    entry = '[models.mobilenet.gluoncv]\nname = "mobilenet1.0"\n'
    matrix = write_matrix(work / "weights", suites=FAST_SUITES, replace=[(entry, entry + 'weights_file = {{ path = '
                          '"{}", sha256 = "{}" }}\n'.format(weights, "0" * 64))])
    args = [sys.executable, "-m", "runner", "run", "--matrix", str(matrix), "--backend", "venv", "--env", "mxnet-1.5",
            "--model", "mobilenet", "--suite", "throughput", "--weights", "file", "--results-dir",
            str(work / "results"), "--reports-dir", str(work / "reports"), "--run", "weights"]
    code, out = finish(started(args))
    assert code == 1, out
    (result,) = [json.loads(p.read_text()) for p in (work / "results" / "weights").glob("*.json")]
    assert result["status"] == "failed" and "refusing to load" in result["reason"], result["reason"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in result["reason"]
    fault_case("a weights file whose sha256 does not match the matrix", "the cell fails with both hashes; nothing is "
               "loaded from the file", result["reason"], group="processes")


def test_a_cell_over_its_memory_limit_is_ended_and_recorded_out_of_memory(reference, sample):
    work = reference["work"]
    (work / "small").mkdir()
    matrix = write_matrix(work / "small", suites=FAST_SUITES, replace=[('memory_limit = "16g"', 'memory_limit = "96m"')])
    folder = work / "results" / "small"
    process = start_run(work, sample, "small", matrix=matrix)
    code, out = finish(process)
    assert code == 1, out
    assert processes_of(folder) == [] and leftovers(folder) == []
    results = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert results and {r["status"] for r in results} == {"out_of_memory"}, [r["reason"] for r in results]
    reason = results[0]["reason"]
    assert "killed for memory: its processes held" in reason and "over the limit of 0.1 GB" in reason
    fault_case("a cell over its memory limit", "its processes are ended; status `out_of_memory` with what they held; "
           "the other cells go on", reason.split(" (log:")[0] + ")")
