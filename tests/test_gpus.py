import pytest

from runner.gpus import annotate_throughput, fraction_of_peak, peak_for
from runner.errors import UserError
from runner.matrix import load_matrix

from .matrices import REAL, write_matrix


@pytest.mark.parametrize("device, entry", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM5"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA A100-SXM4-80GB", "A100"), ("Tesla V100-SXM2-16GB", "V100 SXM2"), ("Tesla V100-PCIE-32GB", "V100 PCIe"),
    ("NVIDIA GeForce GTX 1080 Ti", "GeForce GTX 1080 Ti"), ("Radeon Pro", None), (None, None),
])
def test_device_names_find_their_datasheet_entry(device, entry):
    found = peak_for(device)
    assert (found.name if found else None) == entry


def test_fraction_of_peak_counts_two_operations_per_multiply_accumulate():
    result = fraction_of_peak(3000.0, 4.09, "NVIDIA H100 80GB HBM3")
    assert result["achieved_tflops"] == pytest.approx(24.54)
    assert result["fraction"]["fp32"] == pytest.approx(24.54 / 67.0)
    assert result["fraction"]["tf32"] == pytest.approx(24.54 / 494.7)
    assert fraction_of_peak(1.0, 4.09, "Radeon Pro")["reason"] == "no nominal peak for 'Radeon Pro' in runner/gpus.py"
    assert fraction_of_peak(1.0, None, "NVIDIA H200")["status"] == "unavailable"


def test_throughput_results_get_a_fraction_per_batch_or_the_reason():
    model = load_matrix(REAL).model("resnet50")
    gpu = {"suite": "throughput", "status": "ok", "metrics": {"batches": [{"images_per_s": 1000.0}]},
           "provenance": {"device": {"framework_device": "cuda:0", "gpu_name": "NVIDIA H200"}}}
    annotate_throughput(gpu, model)
    assert gpu["metrics"]["batches"][0]["fraction_of_peak"]["fraction"]["fp32"] == pytest.approx(8.18 / 67.0)
    cpu = {"suite": "throughput", "status": "ok", "metrics": {"batches": [{"images_per_s": 10.0}]},
           "provenance": {"device": {"framework_device": "cpu"}}}
    annotate_throughput(cpu, model)
    assert cpu["metrics"]["batches"][0]["fraction_of_peak"] == {"status": "unavailable",
                                                                 "reason": "device is cpu: no GPU peak"}


def test_a_gmacs_number_needs_its_source(tmp_path):
    path = write_matrix(tmp_path, replace=[('gmacs_source = "torchvision ResNet101', 'gmacs_sourcx = "torchvision ResNet101')])
    with pytest.raises(UserError, match="models.resnet101.gmacs_source: missing; every gmacs number cites"):
        load_matrix(path)
