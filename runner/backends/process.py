"""Subprocesses with a log file, a timeout, a memory limit, and no orphans left behind.

Every long child (the probe, pip) runs under runner/backends/guard.py in a process group of its
own: a timeout, Ctrl-C or `stop_all` kills the whole group, and if this process dies in any way
(kill -9 included) the guard sees its pipe close and kills the group itself.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

GUARD = Path(__file__).with_name("guard.py")
_RUNNING = set()  # processes started by run_logged and not yet ended (kill_all)


@dataclass(frozen=True)
class ProbeRun:
    returncode: Optional[int]  # None when it was killed at the timeout
    timed_out: bool
    duration_s: float
    log_path: str
    error: Optional[str] = None  # why the run went wrong outside the probe (killed for memory, engine error)
    out_of_memory: bool = False
    interrupted: bool = False  # killed by Ctrl-C, SIGTERM or stop_all


def run_logged(command, log_path, timeout_s, env=None, cwd=None, memory_limit=0, owner_lock=None):
    """Run `command` under the guard, appending stdout+stderr to `log_path`.

    `memory_limit` (bytes of resident memory over the whole process tree, 0 for none) ends it as
    out of memory; `owner_lock` is a file the guard holds locked while any of it runs.
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    # In the attempt's work folder when there is one: a runner killed before reading it leaves it where the
    # next run's sweep removes it.
    status_path = os.path.join(os.path.dirname(str(owner_lock)) if owner_lock else os.path.dirname(
        os.path.abspath(log_path)), ".guard-{}-{}.json".format(os.getpid(), time.monotonic_ns()))
    tick = time.perf_counter()
    read_end, write_end = os.pipe()  # both non-inheritable: only the guard gets the read end (pass_fds)
    guard = [sys.executable, "-I", str(GUARD), "--parent-fd", str(read_end), "--memory-limit", str(int(memory_limit)),
             "--status", status_path] + (["--owner-lock", str(owner_lock)] if owner_lock else []) + ["--"]
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(str(c) for c in command) + "\n").encode())
        log.flush()
        try:
            process = subprocess.Popen(guard + [str(c) for c in command], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True,
                                       pass_fds=(read_end,))
        finally:
            os.close(read_end)
        process.stopped = False
        _RUNNING.add(process)
        try:
            returncode = process.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(process)
            returncode, timed_out = None, True
        except BaseException:  # Ctrl-C: take the child down with us
            _kill_group(process)
            raise
        finally:
            _RUNNING.discard(process)
            os.close(write_end)
        interrupted = process.stopped
    ended = _read_status(status_path)
    out_of_memory = ended.get("ended_by_guard") == "memory"
    error = None
    if out_of_memory:
        error = "killed for memory: its processes held {:.1f} GB, over the limit of {:.1f} GB".format(
            ended.get("peak_rss", 0) / 1e9, memory_limit / 1e9)
    return ProbeRun(returncode=returncode, timed_out=timed_out, duration_s=time.perf_counter() - tick,
                    log_path=str(log_path), error=error, out_of_memory=out_of_memory,
                    interrupted=interrupted and not timed_out)


def kill_all():
    """Kill every process group run_logged is waiting for (their threads then return as usual)."""
    for process in list(_RUNNING):
        process.stopped = True
        _signal_group(process)


def _kill_group(process):
    _signal_group(process)
    process.wait()


def _signal_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_status(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def tail(path, lines=5):
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).strip()
    except OSError:
        return ""
