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


def test_a_process_that_hogs_a_core_is_seen_and_our_own_work_is_not():
    meter = Meter()
    _spin(1.0)
    own = meter.share()
    hog = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        meter.start()
        _spin(1.0)
        busy = meter.share()
    finally:
        hog.kill()
        hog.wait()
    cores = os.cpu_count() or 1
    assert 0.0 <= own <= 1.0 and 0.0 <= busy <= 1.0
    # one more process spinning: up to a core's share more than while we ran alone (less when other
    # work already fills the machine, as on a busy CI host, but always clearly more)
    assert busy - own > 0.2 / cores and busy >= 0.5 / cores
