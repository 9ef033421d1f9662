"""How much of the machine other processes used while we timed something.

A throughput trial on a CPU host shares the cores with whatever else runs there; a second run of
the same cell during someone's compile can be many times slower (seen here: 10 -> 0.4 images/s
for torch 1.0 ResNet50 at batch 1, its OpenMP threads spinning against another process). The
verdicts then have to tell "the version got slower" from "the machine was busy", so each timed
window records the share of all cores that processes other than this one kept busy: the
kernel's busy time (/proc/stat, steal included: a VM's neighbours) less this process's own CPU
time. Linux only; elsewhere the share is None and the verdicts say it is unknown.
"""

import os
import time

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (not idle, iowait)


def _busy_seconds():
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()[1:]
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields)) / float(ticks)


def _own_seconds():
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Meter(object):
    """`start()` then `share()`: the share (0..1) of all cores other processes used in between."""

    def __init__(self):
        self.start()

    def start(self):
        self.busy, self.own, self.wall = _busy_seconds(), _own_seconds(), time.monotonic()

    def share(self):
        busy, own, wall = _busy_seconds(), _own_seconds(), time.monotonic()
        if busy is None or self.busy is None or wall <= self.wall:
            return None
        others = (busy - self.busy) - (own - self.own)
        return max(0.0, min(1.0, others / ((wall - self.wall) * (os.cpu_count() or 1))))
