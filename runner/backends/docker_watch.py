"""A container's watcher: the docker backend's counterpart of runner/backends/guard.py.

A cell's container is the engine's child, not the runner's, so a killed runner would leave it
running. For each container the runner starts this script (on the host's interpreter) with the
read end of a pipe only the runner writes to. When the pipe closes (the runner ended the
container itself, or the runner died in any way, kill -9 included) the watcher removes the
container, forcibly; removing one that is already gone is no error. It holds the attempt's
owner lock (--owner-lock) until then, so the cell's work folder counts as in use exactly while
its container may still write into it.

Prints "watching" once it holds the lock, so the runner starts the container only then.
"""

import argparse
import fcntl
import os
import select
import signal
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="docker_watch")
    parser.add_argument("--parent-fd", type=int, required=True)
    parser.add_argument("--owner-lock")
    parser.add_argument("container")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the pipe ends a watcher: the container must not outlive it
    if args.owner_lock:
        lock_fd = os.open(args.owner_lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        os.ftruncate(lock_fd, 0)
        os.write(lock_fd, "{}\n".format(os.getpid()).encode())
    sys.stdout.write("watching\n")
    sys.stdout.flush()
    while True:
        select.select([args.parent_fd], [], [])
        if not os.read(args.parent_fd, 4096):
            break
    import docker  # only now: the watcher's start stays quick

    try:
        docker.from_env(timeout=120).containers.get(args.container).remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.DockerException as exc:
        sys.stderr.write("docker_watch: could not remove container {}: {}\n".format(args.container, exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
