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


H100 = "NVIDIA H100 80GB HBM3"
TORCH_FP32 = {"precision": "fp32", "cudnn_allow_tf32": True, "matmul_allow_tf32": False}


def test_fraction_of_peak_counts_two_operations_per_multiply_accumulate_against_one_peak():
    result = fraction_of_peak(3000.0, 4.09, H100, {"precision": "bf16", "cudnn_allow_tf32": True})
    assert result["achieved_tflops"] == pytest.approx(2 * 4.09e9 * 3000 / 1e12)
    assert result["fraction"] == pytest.approx(2 * 4.09e9 * 3000 / 989.4e12)
    assert (result["peak"], result["peak_tflops"], result["gpu"]) == ("bf16", 989.4, "H100 SXM5")
    assert result["why"].startswith("precision bf16")
    assert fraction_of_peak(1.0, 4.09, "Radeon Pro")["reason"] == "no nominal peak for 'Radeon Pro' in runner/gpus.py"
    assert fraction_of_peak(1.0, None, "NVIDIA H200")["status"] == "unavailable"


@pytest.mark.parametrize("device, settings, peak, why", [
    # the case: bf16 was measured against FP32 and TF32 (153.7 / 20.8 %); now against the bf16 peak
    (H100, {"precision": "bf16"}, "bf16", "precision bf16"),
    (H100, {"precision": "fp16", "cudnn_allow_tf32": False}, "fp16", "precision fp16"),
    (H100, TORCH_FP32, "tf32", "torch.backends.cudnn.allow_tf32 is True (PyTorch's default for convolutions: True)"),
    (H100, dict(TORCH_FP32, cudnn_allow_tf32=False), "fp32", "torch.backends.cudnn.allow_tf32 is False"),
    (H100, {"precision": "fp32", "tf32_execution_enabled": True}, "tf32",
     "tf.config.experimental.tensor_float_32_execution_enabled() is True"),
    (H100, {"precision": "fp32", "cudnn_allow_tf32": None}, "fp32", "precision fp32; the cell records no TF32 setting"),
    (H100, {"precision": "fp32", "dtype": "float32"}, "fp32", "precision fp32; the cell records no TF32 setting"),  # MXNet
    (H100, None, "fp32", "precision fp32; the cell records no TF32 setting"),
    ("Tesla V100-SXM2-16GB", TORCH_FP32, "fp32", "allow_tf32 is True (PyTorch's default for convolutions: True); "
                                                 "V100 SXM2 has no TF32 tensor cores"),
    ("Tesla V100-SXM2-16GB", {"precision": "fp16"}, "fp16", "precision fp16"),
    ("NVIDIA A100-SXM4-80GB", {"precision": "bf16"}, "bf16", "precision bf16"),
])
def test_the_peak_is_the_one_for_the_precision_in_use(device, settings, peak, why):
    result = fraction_of_peak(1000.0, 4.09, device, settings)
    assert result["status"] == "ok" and result["peak"] == peak and why in result["why"]
    assert result["fraction"] == pytest.approx(8.18 / peak_for(device).tflops[peak])


def test_a_precision_the_gpu_has_no_peak_for_is_unavailable_with_the_reason():
    result = fraction_of_peak(1000.0, 4.09, "Tesla T4", {"precision": "bf16"})
    assert result == {"status": "unavailable", "reason": "precision bf16, and runner/gpus.py has no BF16 peak for T4"}


def test_throughput_results_get_a_fraction_per_batch_or_the_reason():
    model = load_matrix(REAL).model("resnet50")
    gpu = {"suite": "throughput", "status": "ok",
           "metrics": {"batches": [{"images_per_s": 1000.0}, {"batch_size": 256, "status": "out_of_memory"}]},
           "provenance": {"device": {"framework_device": "cuda:0", "gpu_name": "NVIDIA H200"},
                          "settings": TORCH_FP32}}
    annotate_throughput(gpu, model)
    found = gpu["metrics"]["batches"][0]["fraction_of_peak"]
    assert (found["peak"], found["peak_tflops"]) == ("tf32", 494.7)
    assert found["fraction"] == pytest.approx(8.18 / 494.7)
    assert "fraction_of_peak" not in gpu["metrics"]["batches"][1]  # out of memory: no rate, no fraction
    # a result whose settings lack the precision: the engine it asked for
    mixed = {"suite": "throughput", "status": "ok", "metrics": {"batches": [{"images_per_s": 1000.0}]},
             "provenance": {"device": {"framework_device": "cuda:0", "gpu_name": "NVIDIA H200"},
                            "engine_requested": {"precision": "fp16"}}}
    annotate_throughput(mixed, model)
    assert mixed["metrics"]["batches"][0]["fraction_of_peak"]["peak"] == "fp16"
    cpu = {"suite": "throughput", "status": "ok", "metrics": {"batches": [{"images_per_s": 10.0}]},
           "provenance": {"device": {"framework_device": "cpu"}}}
    annotate_throughput(cpu, model)
    assert cpu["metrics"]["batches"][0]["fraction_of_peak"] == {"status": "unavailable",
                                                                 "reason": "device is cpu: no GPU peak"}


def test_a_gmacs_number_needs_its_source(tmp_path):
    path = write_matrix(tmp_path, replace=[('gmacs_source = "torchvision ResNet101', 'gmacs_sourcx = "torchvision ResNet101')])
    with pytest.raises(UserError, match="models.resnet101.gmacs_source: missing; every gmacs number cites"):
        load_matrix(path)
