import threading
import time

import pytest

from runner.errors import UserError
from runner.executors.local import Slot, make_slots, run_in_slots
from runner.pipeline import RunSettings


def settings(**kw):
    return RunSettings(matrix_path=None, backend="venv", run_name=None, results_dir=None, reports_dir=None, **kw)


def test_slots_from_gpus_or_jobs_and_the_device_they_need():
    assert make_slots(settings(), "cpu") == ()
    assert [s.gpu for s in make_slots(settings(gpus=("0", "3")), "cuda")] == ["0", "3"]
    assert [s.label for s in make_slots(settings(jobs=3), "cpu")] == ["job 1", "job 2", "job 3"]
    with pytest.raises(UserError, match="--gpus 0,1 needs --device cuda"):
        make_slots(settings(gpus=("0", "1")), "cuda:1")
    with pytest.raises(UserError, match="--jobs is for CPU runs"):
        make_slots(settings(jobs=2), "cuda")


def test_each_cell_holds_its_own_slot_and_every_slot_is_used():
    held, seen, lock = set(), [], threading.Lock()

    def run_one(cell, slot):
        with lock:
            assert slot.label not in held, "two cells on one slot"
            held.add(slot.label)
            seen.append((cell, slot.label))
        time.sleep(0.05)
        with lock:
            held.discard(slot.label)

    run_in_slots(list(range(8)), (Slot("GPU 0", "0"), Slot("GPU 1", "1")), run_one, lambda: None)
    assert sorted(cell for cell, _ in seen) == list(range(8))
    assert {label for _, label in seen} == {"GPU 0", "GPU 1"}


def test_a_failure_in_a_cell_thread_stops_the_rest_and_surfaces():
    stopped = []

    def run_one(cell, slot):
        if cell == 1:
            raise RuntimeError("bug in cell 1")
        time.sleep(0.05)

    with pytest.raises(RuntimeError, match="bug in cell 1"):
        run_in_slots(list(range(20)), (Slot("job 1"), Slot("job 2")), run_one, lambda: stopped.append(True))
    assert stopped == [True]
