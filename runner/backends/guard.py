"""The guard: the process between the runner and a long child (the probe, pip), so that the child's
whole process tree lives and dies with the runner.

    runner --pipe--> guard (leader of its own process group) --> command (and whatever it starts)

It runs as a script on the host's interpreter (`python guard.py ...`, stdlib only, nothing of the
runner imported, so it starts in milliseconds) and:
- watches the read end of a pipe whose write end only the runner holds: the kernel closes it when
  the runner ends in any way, kill -9 included, and the guard then kills its process group: the
  command and everything it started (pip's build steps, decoder processes);
- polls the resident memory of its group and kills the group past --memory-limit, saying so in
  --status (a venv cell's memory limit; a container gets the engine's instead);
- kills what the command left running in the group when the command ends (a forked worker
  whose parent died), so nothing of the cell outlives it;
- holds --owner-lock (flock) from start to end and passes it down, so the work folder the lock
  belongs to is provably in use while any process of the cell is alive.
Its exit code is the command's (128 + signal when it was killed).
"""

import argparse
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time

POLL_S = 0.25
GRACE_S = 2.0  # between SIGTERM to the group (a child may flush its log) and SIGKILL


def group_members(pgid, exclude=()):
    """Pids whose process group is `pgid` (from /proc), except `exclude`."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        try:
            with open("/proc/{}/stat".format(name), "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if int(fields[2]) == pgid and fields[0] != b"Z":
            pids.append(int(name))
    return pids


def resident_bytes(pids):
    """Summed resident memory of `pids` (VmRSS; shared pages counted in each, which errs on the safe side)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/{}/status".format(pid)) as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


def _kill_others(pgid, sig):
    for pid in group_members(pgid, exclude=(os.getpid(),)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stop_group(pgid, child):
    """SIGTERM everything in the group but this guard, a grace period, then SIGKILL what is left."""
    _kill_others(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and group_members(pgid, exclude=(os.getpid(),)):
        child.poll()  # reap the command, so it stops counting as a member
        time.sleep(0.05)
    _kill_others(pgid, signal.SIGKILL)
    child.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="guard")
    parser.add_argument("--parent-fd", type=int, required=True)
    parser.add_argument("--memory-limit", type=int, default=0, help="bytes of resident memory; 0: none")
    parser.add_argument("--owner-lock", help="a file to hold an exclusive flock on for the whole run")
    parser.add_argument("--status", help="a JSON file this guard writes when it ends the command itself")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    pgid = os.getpgid(0)
    if pgid != os.getpid():
        sys.stderr.write("guard: not the leader of its process group (start it with start_new_session)\n")
        return 125
    keep = []
    if args.owner_lock:
        lock_fd = os.open(args.owner_lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # the runner created the folder for this attempt alone: no wait
        os.ftruncate(lock_fd, 0)
        os.write(lock_fd, "{}\n".format(os.getpid()).encode())
        keep.append(lock_fd)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # the runner ends this guard through the pipe or SIGKILL only
    child = subprocess.Popen(command, pass_fds=keep, close_fds=True)
    why, peak = None, 0
    while child.poll() is None:
        readable, _, _ = select.select([args.parent_fd], [], [], POLL_S)
        if readable and not os.read(args.parent_fd, 1):
            why = "runner gone"
            break
        if args.memory_limit:
            used = resident_bytes(group_members(pgid, exclude=(os.getpid(),)))
            peak = max(peak, used)
            if used > args.memory_limit:
                why = "memory"
                break
    # Also when the command ended by itself: whatever it left behind in the group goes with it.
    _stop_group(pgid, child)
    if args.status and why == "memory":  # after "runner gone" nobody is left to read it
        _write_status(args.status, {"ended_by_guard": why, "memory_limit": args.memory_limit, "peak_rss": peak})
    code = child.returncode
    return 128 - code if code < 0 else code


def _write_status(path, record):
    # Not runner/storage.py: this script imports nothing of the runner, to start in milliseconds.
    temp = path + ".tmp"
    with open(temp, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


if __name__ == "__main__":
    sys.exit(main())
