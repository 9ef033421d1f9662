"""The torchvision adapter against the real framework of whatever environment runs the tests.

Runs under tox's probe-py37 env (torch 1.0.1 + torchvision 0.2.2, the historical row) and
wherever torchvision imports; skipped where it does not.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from runner.probe.adapters import load_adapter  # noqa: E402
from runner.probe.preprocess import Recipe, preprocess_file  # noqa: E402
from runner.probe.weights import WeightsError, sha256_file  # noqa: E402

from .adapter_checks import (  # noqa: E402
    check_random_weights_are_seeded_and_go_through_a_weight_file, check_the_model_is_where_the_cell_asked, run_with_engine)

SMALL = "resnet18"


@pytest.fixture
def adapter():
    return load_adapter("torchvision", "cpu", 1)


def test_models_known_to_this_version(adapter):
    assert adapter.has_model("resnet50")
    assert not adapter.has_model("no_such_net")
    assert adapter.has_model("mobilenet_v2") == hasattr(torchvision.models, "mobilenet_v2")


def test_random_weights_are_seeded_and_go_through_a_weight_file(adapter, tmp_path):
    check_random_weights_are_seeded_and_go_through_a_weight_file(adapter, SMALL, None, tmp_path)


def test_weights_file_is_loaded_and_checked(adapter, tmp_path):
    torch.manual_seed(0)
    source = getattr(torchvision.models, SMALL)()
    path = str(tmp_path / "w.pth")
    torch.save(source.state_dict(), path)
    digest = sha256_file(path)
    model, record = adapter.build(SMALL, {}, {"source": "file", "path": path, "sha256": digest}, str(tmp_path))
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key].cpu(), value)
    assert record["sha256"] == digest and record["path"] == path
    with pytest.raises(WeightsError, match="refusing to load"):
        adapter.build(SMALL, {}, {"source": "file", "path": path, "sha256": "0" * 64}, str(tmp_path))


def test_pretrained_download_either_loads_or_says_how_to_go_offline(adapter, tmp_path):
    try:
        _, record = adapter.build(SMALL, {}, {"source": "pretrained", "cache_dir": str(tmp_path)}, str(tmp_path))
    except WeightsError as exc:
        assert "WEIGHTS=random" in str(exc)
    else:
        assert record["source"] == "pretrained" and len(record["sha256"]) == 64


def test_predict_gives_logits_for_every_image(adapter, tmp_path):
    model, _ = adapter.build(SMALL, {}, {"source": "random", "seed": 0}, str(tmp_path))
    logits = adapter.predict(model, np.zeros((2, 3, 224, 224), dtype=np.float32))
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()


def test_probe_preprocessing_matches_torchvision_transforms(imagenet_sample):
    """The probe's tensors equal torchvision's own eval transforms on the 30 real images."""
    from torchvision import transforms

    resize = getattr(transforms, "Resize", None) or transforms.Scale
    for size, crop in ((256, 224), (342, 299)):
        helper = transforms.Compose([resize(size), transforms.CenterCrop(crop), transforms.ToTensor(),
                                     transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        recipe = Recipe(resize=size, crop=crop, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        worst = 0.0
        for path in sorted((imagenet_sample / "images").iterdir()):
            ours, _ = preprocess_file(str(path), recipe)
            from PIL import Image

            with Image.open(str(path)) as image:
                theirs = helper(image.convert("RGB")).numpy()
            worst = max(worst, float(np.abs(ours - theirs).max()))
        assert worst <= 1e-5, "max abs difference {} at resize {} crop {}".format(worst, size, crop)


# -- [engine] settings, each in a fresh process as in a cell ------------------------------------
SHAPE = (1, 3, 224, 224)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return run_with_engine("torchvision", SMALL, SHAPE, {}, tmp_path_factory.mktemp("fp32"))


def test_default_engine_leaves_torchs_own_choices(fp32):
    settings, _ = fp32
    assert settings["cudnn_benchmark"] is False and settings["precision"] == "fp32" and settings["autocast"] is None
    assert settings["memory_format"] == "contiguous (NCHW)"
    # TF32 read back from torch itself (the fraction of peak follows it): None where this torch predates TF32
    conv = getattr(torch.backends.cudnn, "allow_tf32", None)
    matmul = getattr(getattr(getattr(torch.backends, "cuda", None), "matmul", None), "allow_tf32", None)
    assert settings["cudnn_allow_tf32"] == (None if conv is None else bool(conv))
    assert settings["matmul_allow_tf32"] == (None if matmul is None else bool(matmul))
    if hasattr(torch, "autocast"):  # torch 1.7 and later: convolutions may use TF32 unless told not to
        assert settings["cudnn_allow_tf32"] is True


def test_autotune_and_determinism_take_effect(tmp_path, fp32):
    settings, outputs = run_with_engine("torchvision", SMALL, SHAPE, {"cudnn_autotune": True, "deterministic": True},
                                        tmp_path)
    assert settings["cudnn_benchmark"] is True and settings["cudnn_deterministic"] is True
    # torch.use_deterministic_algorithms arrived in 1.8; older versions have only the cuDNN flag, and say so.
    assert settings["deterministic_algorithms"] is (True if hasattr(torch, "use_deterministic_algorithms") else None)
    np.testing.assert_array_equal(outputs, fp32[1])  # on the CPU neither changes a single bit


def test_channels_last_runs_the_same_network_or_is_refused_by_old_torch(tmp_path, fp32):
    answer = run_with_engine("torchvision", SMALL, SHAPE, {"channels_last": True}, tmp_path)
    if not hasattr(torch, "channels_last"):
        assert answer == "channels_last needs torch >= 1.5 (torch.channels_last); this row has torch " + torch.__version__
        return
    settings, outputs = answer
    assert settings["memory_format"] == "channels_last"
    np.testing.assert_allclose(outputs, fp32[1], rtol=1e-3, atol=1e-4)


def test_mixed_precision_really_changes_the_arithmetic_or_is_refused(tmp_path, fp32):
    answer = run_with_engine("torchvision", SMALL, SHAPE, {"precision": "bf16"}, tmp_path)
    if not hasattr(torch, "autocast"):
        assert "needs torch.autocast (torch >= 1.10)" in answer
        return
    settings, outputs = answer
    assert settings["autocast"] == "torch.autocast(cpu, bfloat16)"
    reference = fp32[1]
    assert not np.array_equal(outputs, reference)  # bfloat16 has 8 mantissa bits: the logits move...
    assert np.abs(outputs - reference).max() < 0.1 * np.abs(reference).max() + 0.1  # ...but stay the same network's


def test_seeded_inception_is_the_same_across_processes(tmp_path):
    """torchvision 0.2 initialises Inception from numpy's generator (scipy truncnorm), which a fresh process
    seeds from the OS: the adapter must seed it too, or "seeded" random weights differ per run."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_with_engine("torchvision", "inception_v3", (1, 3, 299, 299), {}, tmp_path / "a")
    second = run_with_engine("torchvision", "inception_v3", (1, 3, 299, 299), {}, tmp_path / "b")
    np.testing.assert_array_equal(first[1], second[1])


def test_the_model_is_where_the_cell_asked(adapter, tmp_path):
    check_the_model_is_where_the_cell_asked(adapter, SMALL, None, tmp_path)


def test_out_of_memory_is_told_apart_from_other_errors(adapter):
    """The throughput sweep records an out-of-memory batch size and goes on; any other error fails the cell."""
    error = getattr(torch.cuda, "OutOfMemoryError", None)  # torch >= 1.13
    if error is not None:
        assert adapter.is_out_of_memory(error("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert adapter.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0)"))
    assert not adapter.is_out_of_memory(RuntimeError("size mismatch, m1: [1 x 2048], m2: [512 x 1000]"))
    assert not adapter.is_out_of_memory(ValueError("out of memory"))
    assert adapter.memory_peak_mib() is None  # a CPU cell: no allocator peak (telemetry has none either)
    adapter.reset_memory_peak()
    adapter.release_memory()
