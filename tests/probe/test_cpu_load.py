"""The share of the machine other processes use while a trial is timed (Linux /proc/stat)."""

import os
import subprocess
import sys
import time

import pytest

from runner.probe.cpu_load import Meter

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc/stat on this system")


def _spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass


def _machine_busy_seconds():
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6, 7) if i < len(fields)) / float(os.sysconf("SC_CLK_TCK"))


def _process_seconds(pid):
    with open("/proc/{}/stat".format(pid)) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))  # utime, stime


# Both checks hold however busy the machine already is (a CI host runs other test environments
# beside this one), because each compares the meter with a measurement of the same window, not
# with a fixed expectation of an idle machine. A tick is 10 ms: 0.02 of slack is two ticks a core.

def test_our_own_work_is_not_counted_as_the_others():
    cores = os.cpu_count() or 1
    meter = Meter()
    busy, ours, wall = _machine_busy_seconds(), _process_seconds(os.getpid()), time.monotonic()
    _spin(1.0)
    others = meter.share()
    window = (time.monotonic() - wall) * cores
    machine = (_machine_busy_seconds() - busy) / window
    own = (_process_seconds(os.getpid()) - ours) / window
    assert own > 0.1 / cores  # we did spin
    assert 0.0 <= others <= machine + 0.02
    assert machine - others >= 0.7 * own  # the part of the machine's busy time that is ours is left out


def test_a_process_that_hogs_a_core_is_seen():
    cores = os.cpu_count() or 1
    hog = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        meter = Meter()
        hogged, wall = _process_seconds(hog.pid), time.monotonic()
        _spin(1.0)
        others = meter.share()
        hog_share = (_process_seconds(hog.pid) - hogged) / ((time.monotonic() - wall) * cores)
    finally:
        hog.kill()
        hog.wait()
    assert hog_share > 0.05 / cores  # it did run
    assert others >= hog_share - 0.02  # the hog is one of the others
