"""Subprocesses with a log file, a timeout, and no orphans left behind."""

import os
import signal
import subprocess
import time

from .base import ProbeRun

_RUNNING = set()  # processes started by run_logged and not yet ended (kill_all)


def run_logged(command, log_path, timeout_s, env=None, cwd=None):
    """Run `command`, appending stdout+stderr to `log_path`; kill its whole process group at the timeout."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    tick = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(str(c) for c in command) + "\n").encode())
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=cwd, start_new_session=True)
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
    return ProbeRun(returncode=returncode, timed_out=timed_out, duration_s=time.perf_counter() - tick,
                    log_path=str(log_path))


def kill_all():
    """Kill every probe run_logged is waiting for (their threads then return as usual)."""
    for process in list(_RUNNING):
        _signal_group(process)


def _kill_group(process):
    _signal_group(process)
    process.wait()


def _signal_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail(path, lines=5):
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).strip()
    except OSError:
        return ""
