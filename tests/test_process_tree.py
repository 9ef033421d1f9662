"""A child's whole process tree lives and dies with the runner (runner/backends/guard.py, process.py).

Real processes throughout: shells that leave background children, a runner killed with kill -9,
a Python that allocates past its limit; what is left is read from /proc.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from runner.backends.guard import group_members
from runner.backends.process import run_logged
from runner.storage import lock_holder

ROOT = Path(__file__).resolve().parents[1]


def alive(pid):
    """True while `pid` runs (a zombie has ended: only its parent has not read its status yet)."""
    try:
        with open("/proc/{}/stat".format(pid), "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_gone(pids, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def wait_for_lines(path, count, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file():
            lines = path.read_text().split()
            if len(lines) >= count:
                return [int(line) for line in lines[:count]]
        time.sleep(0.05)
    raise AssertionError("{} did not get {} pids".format(path, count))


# A tree of three: the shell, a background sleep it starts, and a sleep it waits on.
TREE = 'echo $$ >> {pids}; sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait'


def test_kill_9_of_the_runner_takes_the_whole_tree_down(tmp_path):
    pids = tmp_path / "pids"
    runner = textwrap.dedent("""
        import sys
        from runner.backends.process import run_logged
        run_logged(["sh", "-c", sys.argv[1]], sys.argv[2], 600)
    """)
    process = subprocess.Popen([sys.executable, "-c", runner, TREE.format(pids=pids), str(tmp_path / "log")],
                               cwd=ROOT)
    tree = wait_for_lines(pids, 3)
    assert all(alive(pid) for pid in tree)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert wait_gone(tree) == [], "orphans left by a killed runner: {}".format(tree)


def test_a_timeout_ends_every_process_of_the_tree(tmp_path):
    pids = tmp_path / "pids"
    run = run_logged(["sh", "-c", TREE.format(pids=pids)], tmp_path / "log", timeout_s=1.5)
    assert run.timed_out and run.returncode is None
    assert wait_gone(wait_for_lines(pids, 3), 2.0) == []


def test_what_a_command_leaves_behind_ends_with_it(tmp_path):
    pids = tmp_path / "pids"
    # The shell exits at once; the sleep it started in the background would outlive it.
    run = run_logged(["sh", "-c", "sleep 300 & echo $! >> {}".format(pids)], tmp_path / "log", timeout_s=60)
    assert run.returncode == 0 and not run.timed_out
    assert wait_gone(wait_for_lines(pids, 1), 2.0) == []


def test_the_exit_code_is_the_commands(tmp_path):
    assert run_logged(["sh", "-c", "exit 3"], tmp_path / "log", 60).returncode == 3
    killed = run_logged(["sh", "-c", "kill -9 $$"], tmp_path / "log", 60)
    assert killed.returncode == 128 + 9 and not killed.out_of_memory


def test_past_its_memory_limit_a_tree_is_ended_and_says_so(tmp_path):
    hog = "import time; block = bytearray(400 * 1024 * 1024); time.sleep(300)"
    tick = time.monotonic()
    run = run_logged([sys.executable, "-c", hog], tmp_path / "log", timeout_s=120, memory_limit=150 * 1024 ** 2)
    assert run.out_of_memory and not run.timed_out
    assert time.monotonic() - tick < 30
    assert "killed for memory" in run.error and "over the limit of 0.2 GB" in run.error
    fine = run_logged([sys.executable, "-c", "x = bytearray(10 * 1024 * 1024)"], tmp_path / "log", timeout_s=60,
                      memory_limit=150 * 1024 ** 2)
    assert fine.returncode == 0 and not fine.out_of_memory and fine.error is None


def test_the_owner_lock_is_held_exactly_while_the_tree_lives(tmp_path):
    owner = tmp_path / ".owner"
    owner.write_text("")
    started = tmp_path / "started"
    done = {}
    thread = threading.Thread(target=lambda: done.update(run=run_logged(
        ["sh", "-c", "touch {}; sleep 2".format(started)], tmp_path / "log", 60, owner_lock=owner)))
    thread.start()
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    holder = lock_holder(owner)
    assert holder is not None and alive(int(holder)), "the guard holds the lock and records its pid"
    thread.join()
    assert done["run"].returncode == 0
    assert lock_holder(owner) is None


def test_group_members_reads_proc(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert group_members(sleeper.pid) == [sleeper.pid]
        assert os.getpid() not in group_members(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
