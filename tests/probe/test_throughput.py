"""The throughput suite's timing bounds and its out-of-memory handling, through a fake adapter (no framework needed)."""

import time

import pytest

import runner.probe.cell as cell
from runner.probe.preprocess import Recipe
from runner.probe.telemetry import open_telemetry
from runner.probe.throughput import measured_batches, run_throughput_suite, time_trial

RECIPE = {"resize": 8, "crop": 8}


class FakeOutOfMemory(RuntimeError):
    pass


class FakeAdapter(object):
    """What the suite calls: forward sleeps `step_s`, and raises an out-of-memory error at the batch sizes in `oom`."""

    def __init__(self, oom=(), step_s=0.002, error=FakeOutOfMemory):
        self.oom, self.step_s, self.error = set(oom), step_s, error
        self.released = 0

    def to_device(self, array):
        return array

    def forward(self, model, tensor):
        if tensor.shape[0] in self.oom:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep(self.step_s)

    def synchronize(self):
        pass

    def is_out_of_memory(self, exc):
        return isinstance(exc, FakeOutOfMemory)

    def memory_peak_mib(self):
        return 1234.4

    def release_memory(self):
        self.released += 1


class FakeClock(object):
    """A clock that a forward pass advances by `step` seconds."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        return self.now

    def forward(self, model, tensor):
        self.now += self.step

    def synchronize(self):
        pass


def params(**extra):
    values = {"batch_sizes": [1, 4, 2], "warmup": 1, "iterations": 3, "trials": 2, "min_window_s": 0.0}
    values.update(extra)
    return values


def test_a_trial_runs_its_iterations_when_they_outlast_the_window():
    clock = FakeClock(0.25)
    assert len(time_trial(clock, None, None, 3, 0.5, clock=clock)) == 3  # 0.75 s: the count bounds it


class BusyClock(FakeClock):
    """As FakeClock, and each reading of it costs `gap` seconds: the loop's own time on a busy machine."""

    def __init__(self, step, gap):
        FakeClock.__init__(self, step)
        self.gap = gap

    def __call__(self):
        self.now += self.gap
        return self.now


def test_the_window_is_filled_by_timed_passes_not_by_the_loop_between_them():
    """0.25 s passes, and each reading of the clock costs 0.05 s (the loop between passes reads it too): the
    recorded seconds still fill a 2 s window (the rate comes from them), where counting the clock since the trial
    began stopped before they did."""
    clock = BusyClock(0.25, 0.05)
    latencies = time_trial(clock, None, None, 3, 2.0, clock=clock)
    assert sum(latencies) >= 2.0 and sum(latencies[:-1]) < 2.0
    assert all(latency == pytest.approx(0.3) for latency in latencies)  # the pass and one reading's gap


def test_a_trial_runs_past_its_iterations_until_the_window_is_full():
    clock = FakeClock(0.25)
    latencies = time_trial(clock, None, None, 3, 2.0, clock=clock)
    assert len(latencies) == 8 and sum(latencies) == 2.0  # 8 x 0.25 s: the time bounds it
    assert len(time_trial(clock, None, None, 1, 0.0, clock=clock)) == 1  # min_window_s 0: iterations alone


def test_each_trial_records_its_iterations_and_seconds_and_the_rates_follow_them():
    found = run_throughput_suite(FakeAdapter(), None, Recipe.from_dict(RECIPE), params(batch_sizes=[2], min_window_s=0.05),
                                 0, open_telemetry("cpu"))
    batch = found["batches"][0]
    assert batch["status"] == "ok" and batch["min_window_s"] == 0.05 and batch["trials"] == 2
    assert len(batch["iterations_trials"]) == len(batch["seconds_trials"]) == 2
    assert all(n > 3 for n in batch["iterations_trials"])  # 2 ms a pass: 0.05 s needs more than 3
    assert all(s >= 0.05 * 0.9 for s in batch["seconds_trials"])  # the loop's own time is outside the latencies
    assert sum(batch["iterations_trials"]) == batch["iterations"]
    rates = [2 * n / s for n, s in zip(batch["iterations_trials"], batch["seconds_trials"])]
    assert batch["images_per_s_trials"] == pytest.approx(rates)
    assert batch["images_per_s_range"] == [min(rates), max(rates)]
    assert set(batch["latency_ms"]) == {"p50", "p90", "p99", "min", "max"}


def test_out_of_memory_at_one_batch_size_is_its_result_and_the_sweep_goes_on():
    adapter = FakeAdapter(oom=[4])
    found = run_throughput_suite(adapter, None, Recipe.from_dict(RECIPE), params(), 0, open_telemetry("cpu"))
    by = {b["batch_size"]: b for b in found["batches"]}
    assert [b["batch_size"] for b in found["batches"]] == [1, 4, 2]
    assert by[4]["status"] == "out_of_memory" and "images_per_s" not in by[4]
    assert by[4]["reason"] == "out of memory at batch 4, peak 1234 MiB"
    assert by[4]["error"] == "FakeOutOfMemory: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert by[4]["telemetry_series"] == []  # cell.py pops it from every batch entry
    assert by[1]["status"] == by[2]["status"] == "ok" and by[2]["images_per_s"] > 0
    assert adapter.released == 1
    assert [b["batch_size"] for b in measured_batches(found)] == [1, 2]


def test_other_errors_still_fail_the_cell():
    with pytest.raises(ValueError, match="CUDA out of memory"):
        run_throughput_suite(FakeAdapter(oom=[4], error=ValueError), None, Recipe.from_dict(RECIPE), params(), 0,
                             open_telemetry("cpu"))


class FakeFramework(FakeAdapter):
    """Enough of an adapter for run_cell; with `fits_once`, the first pass at each batch size fits (the cold start)."""

    def __init__(self, oom, fits_once):
        FakeAdapter.__init__(self, oom=oom)
        self.fits_once, self.seen = fits_once, set()

    def forward(self, model, tensor):
        if self.fits_once and tensor.shape[0] not in self.seen:
            self.seen.add(tensor.shape[0])
            return
        FakeAdapter.forward(self, model, tensor)

    def versions(self):
        return {"fake": "1.0"}

    def device_info(self):
        return {"framework_device": "cpu"}

    def has_model(self, name):
        return True

    def build(self, name, kwargs, weights, workdir, input_shape=None):
        return object(), {"source": "random"}

    def placement(self, model):
        return {"framework_device": "cpu", "from": "the fake"}

    def settings(self):
        return {"precision": "fp32"}


@pytest.mark.parametrize("oom, fits_once, status, reason", [
    ([4], False, "ok", None),
    ([2, 4], True, "out_of_memory", "out of memory at batch 2, peak 1234 MiB; out of memory at batch 4, peak 1234 MiB"),
    ([2], False, "out_of_memory", "FakeOutOfMemory: CUDA out of memory. Tried to allocate 2.00 GiB"),  # cold start
])
def test_a_cell_whose_every_batch_size_ran_out_of_memory_has_that_status(tmp_path, monkeypatch, oom, fits_once,
                                                                          status, reason):
    monkeypatch.setattr(cell, "load_adapter", lambda *args: FakeFramework(oom, fits_once))
    spec = {"cell_id": "c", "suite": "throughput", "environment": "fake-1", "framework": "fake",
            "model": {"key": "m", "name": "m", "kwargs": {}}, "preprocess": RECIPE, "weights": {"source": "random"},
            "device": "cpu", "seed": 0, "suite_params": params(batch_sizes=[2, 4]), "output_dir": str(tmp_path),
            "launched_at": None}
    result = cell.run_cell(spec)
    assert (result["status"], result["reason"]) == (status, reason)
    if status == "ok":
        assert [b["status"] for b in result["metrics"]["batches"]] == ["ok", "out_of_memory"]
