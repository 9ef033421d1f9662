"""How many cores this process may keep busy: its CPU affinity, lowered by a CPU quota where its cgroup has one.

os.cpu_count() counts the host's cores. A Slurm allocation or docker's --cpuset-cpus shows in the affinity,
but a CPU quota does not: docker's --cpus, a Kubernetes pod's CPU limit and systemd's CPUQuota let a
process run on every core for a fraction of each period. Forty decoders under a limit of four cores
are throttled in turn and the cell runs slower than with four. The quota is read from the cgroup
files the kernel exposes (v2: cpu.max, v1: cpu.cfs_quota_us and cpu.cfs_period_us) on this process's
cgroup and every cgroup above it inside the mount, where a pod's limit may sit above its container's;
the tightest applies, rounded up to whole cores as Go (GOMAXPROCS) and Java do.

Python 3.7, stdlib only.
"""

import math
import os


def usable_cores(proc="/proc/self"):
    """The cores this process may keep busy (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota(proc)
    return cores if quota is None else max(1, min(cores, int(math.ceil(quota - 1e-9))))


def cpu_quota(proc="/proc/self"):
    """The tightest CPU quota over this process's cgroups, in cores (1.5: 150 ms of CPU per 100 ms), or None
    where there is none or no cgroup file can be read (not Linux, no cgroup mounted, a sandbox)."""
    try:
        memberships = [line.split(":", 2) for line in _lines(os.path.join(proc, "cgroup")) if line.count(":") >= 2]
        mounts = [_mount(line) for line in _lines(os.path.join(proc, "mountinfo"))]
    except OSError:
        return None
    found = []
    for mount in mounts:
        if mount is None:
            continue
        root, point, fstype, options = mount
        if fstype == "cgroup2":
            paths, read = [path for hierarchy, controllers, path in memberships if hierarchy == "0"], _v2_limit
        elif fstype == "cgroup" and "cpu" in options:
            paths = [path for _, controllers, path in memberships if "cpu" in controllers.split(",")]
            read = _v1_limit
        else:
            continue
        for path in paths:
            found += _limits_up(_folder(root, point, path), point, read)
    return min(found) if found else None


def _lines(path):
    """The file's lines as the os module spells paths: a mount or cgroup anywhere on the host whose name is not
    valid in the locale's encoding (a USB stick named in Latin-1) must not stop the reading, and its name
    must still open the same folder."""
    with open(path, "rb") as handle:
        return [os.fsdecode(line.rstrip(b"\n")) for line in handle]


def _mount(line):
    """(root, mount point, fstype, super options) of a /proc/PID/mountinfo line, or None."""
    fields = line.split()
    if "-" not in fields:
        return None
    dash = fields.index("-")
    if dash < 5 or len(fields) < dash + 3:
        return None
    return (_unescape(fields[3]), _unescape(fields[4]), fields[dash + 1], fields[dash + 3].split(","))


def _unescape(text):
    """mountinfo writes a space, tab, newline and backslash in a path as octal escapes (\\040 and so on)."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        text = text.replace(code, chr(int(code[1:], 8)))
    return text


def _folder(root, point, path):
    """The folder of cgroup `path` under a mount of cgroup `root` at `point`. A container's mount starts at its own
    cgroup (root /docker/ID, path /docker/ID); a path outside the mount's root (a cgroup namespace that
    hides it) is taken as the mount's root, whose files the container's runtime set."""
    root, path = root.rstrip("/"), path.rstrip("/")
    if path == root or path.startswith(root + "/"):
        return os.path.join(point, path[len(root):].lstrip("/"))
    return point


def _limits_up(folder, top, read):
    """The limits set on `folder` and each folder above it up to `top`, the mount point."""
    limits, folder, top = [], os.path.normpath(folder), os.path.normpath(top)
    while True:
        limit = read(folder)
        if limit is not None:
            limits.append(limit)
        if folder == top or not folder.startswith(top + os.sep):
            return limits
        folder = os.path.dirname(folder)


def _v2_limit(folder):
    """cpu.max holds "QUOTA PERIOD" in microseconds, or "max PERIOD" for none."""
    text = _read(os.path.join(folder, "cpu.max"))
    parts = text.split() if text else []
    if len(parts) != 2 or parts[0] == "max":
        return None
    return _ratio(parts[0], parts[1])


def _v1_limit(folder):
    """cpu.cfs_quota_us is -1 for none."""
    return _ratio(_read(os.path.join(folder, "cpu.cfs_quota_us")), _read(os.path.join(folder, "cpu.cfs_period_us")))


def _ratio(quota, period):
    try:
        quota, period = int(quota), int(period)
    except (TypeError, ValueError):
        return None
    return quota / float(period) if quota > 0 and period > 0 else None


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None
