"""NVML telemetry: what a cell says without a GPU, and the summary's arithmetic on real-shaped samples.

The sampling itself needs a GPU; tests/gpu/ (run on a lent GPU machine) covers it.
"""

import pytest

from runner.probe.telemetry import open_telemetry
from runner.probe.telemetry_summary import LOW_UTILISATION_PCT, summarise, utilisation_verdict, write_series

from ..faults import fault_case


def test_a_cpu_cell_has_no_telemetry_and_says_why():
    telemetry = open_telemetry("cpu")
    assert telemetry.describe() == {"status": "unavailable", "reason": "device is cpu: there is no GPU to read"}
    with telemetry.window() as window:
        pass
    assert window.summary(images=10) == telemetry.describe()
    assert window.series() == []


def test_a_cuda_cell_without_nvml_says_why_and_invents_nothing():
    telemetry = open_telemetry("cuda:0")
    described = telemetry.describe()
    if described["status"] == "ok":
        pytest.skip("this machine has a GPU")
    assert described["status"] == "unavailable"
    assert (described["reason"].startswith("nvidia-ml-py is not installed")
            or described["reason"].startswith("NVML cannot start"))
    with telemetry.window() as window:
        pass
    assert set(window.summary(images=3)) == {"status", "reason"}
    fault_case("a CUDA cell where NVML is missing or cannot start", "the cell runs; its GPU telemetry is "
               "`unavailable` with the reason, and no figure is invented", described["reason"], group="processes")


ROWS = [  # t_s, util %, memory MiB, power W, SM MHz, memory MHz, temperature C
    (0.0, 40, 1000.0, 100.0, 1700, 2600, 50),
    (0.2, 90, 3000.0, 300.0, 1900, 2600, 60),
    (0.4, None, 2000.0, None, None, None, None),  # a poll where NVML answered only for memory
]


def test_the_summary_prefers_nvml_sample_buffers_and_counts_energy_per_image():
    summary = summarise(ROWS, util_buffer=[100, 100, 70, 90], power_buffer=[250000, 350000], memory_util=[10, 30],
                        energy_start_mj=1000000, energy_end_mj=1600000, wall_s=0.5, images=300,
                        throttle=["SwPowerCap"], process_memory_mib=2500.0, errors={"temperature": "Not Supported"},
                        interval_s=0.2)
    assert summary["gpu_utilization_pct"] == {"source": "NVML sample buffer", "samples": 4, "mean": 90.0,
                                              "max": 100.0, "min": 70.0}
    assert summary["power_w"]["mean"] == 300.0 and summary["power_w"]["source"] == "NVML sample buffer"
    assert summary["energy_j"] == 600.0 and summary["joules_per_image"] == 2.0
    assert summary["memory_used_mib"] == {"peak": 3000.0} and summary["process_memory_mib"] == {"peak": 2500.0}
    assert summary["memory_utilization_pct"]["mean"] == 20.0
    assert summary["sm_clock_mhz"]["mean"] == 1800.0 and summary["temperature_c"] == {"max": 60}
    assert summary["throttle_reasons"] == ["SwPowerCap"] and summary["unsupported"] == {"temperature": "Not Supported"}
    assert summary["low_utilization"] is False
    assert summary["utilization_verdict"] == "window too short to judge (4 samples, at least 10 needed)"


def test_without_sample_buffers_or_energy_counter_the_polls_are_used_and_energy_is_absent():
    summary = summarise(ROWS, util_buffer=[], power_buffer=[], memory_util=[], energy_start_mj=None,
                        energy_end_mj=None, wall_s=0.5, images=300, throttle=[], process_memory_mib=None, errors={},
                        interval_s=0.2)
    assert summary["gpu_utilization_pct"]["source"] == "polled"
    assert summary["gpu_utilization_pct"]["mean"] == 65.0
    assert summary["power_w"]["mean"] == 200.0 and summary["power_w"]["source"] == "polled"
    assert "energy_j" not in summary and "joules_per_image" not in summary
    assert summary["low_utilization"] is (65.0 < LOW_UTILISATION_PCT)


def _with_util(util_buffer, rows=ROWS[:1]):
    return summarise(rows, util_buffer=util_buffer, power_buffer=[], memory_util=[], energy_start_mj=None,
                     energy_end_mj=None, wall_s=2.0, images=1, throttle=[], process_memory_mib=None, errors={},
                     interval_s=0.2)


def test_low_utilisation_is_flagged_over_ten_samples_or_more():
    summary = _with_util([10, 20] * 5)
    assert summary["utilization_verdict"] == "low" and summary["low_utilization"] is True
    busy = _with_util([97, 98, 99] * 4)
    assert busy["utilization_verdict"] == "ok" and busy["low_utilization"] is False


@pytest.mark.parametrize("buffer, verdict", [
    ([10, 20], "window too short to judge (2 samples, at least 10 needed)"),  # the tens of milliseconds
    ([5], "window too short to judge (1 sample, at least 10 needed)"),
    ([30] * 9, "window too short to judge (9 samples, at least 10 needed)"),
])
def test_a_window_with_fewer_than_ten_samples_is_not_judged_low(buffer, verdict):
    summary = _with_util(buffer)
    assert summary["gpu_utilization_pct"]["mean"] < LOW_UTILISATION_PCT  # would have been flagged before
    assert summary["utilization_verdict"] == verdict and summary["low_utilization"] is False


def test_without_any_utilisation_sample_there_is_no_verdict():
    summary = _with_util([], rows=[(0.0, None, 1000.0, None, None, None, None)])
    assert summary["utilization_verdict"] == "no utilisation samples" and summary["low_utilization"] is False
    assert utilisation_verdict(0, None) == "no utilisation samples"
    assert utilisation_verdict(10, 49.9) == "low" and utilisation_verdict(10, 50.0) == "ok"


def test_the_series_is_a_small_csv_with_its_window(tmp_path):
    path = tmp_path / "telemetry.csv"
    write_series(str(path), [("batch 16", ROWS[0]), ("batch 16", ROWS[2])])
    lines = path.read_text().splitlines()
    assert lines[0] == "window,t_s,gpu_util_pct,memory_used_mib,power_w,sm_clock_mhz,memory_clock_mhz,temperature_c"
    assert lines[1] == "batch 16,0.0,40,1000.0,100.0,1700,2600,50"
    assert lines[2] == "batch 16,0.4,,2000.0,,,,"
