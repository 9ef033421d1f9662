"""The GluonCV adapter against the real MXNet + GluonCV of whatever environment runs the tests.

Runs under tox's probe-mxnet-1.4 and probe-mxnet-1.9 envs; skipped where gluoncv does not import.
"""

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
pytest.importorskip("gluoncv")

from runner.probe.adapters import load_adapter  # noqa: E402
from runner.probe.preprocess import Recipe, load_rgb, preprocess_file  # noqa: E402
from runner.probe.weights import WeightsError  # noqa: E402

from .adapter_checks import (  # noqa: E402
    check_random_weights_are_seeded_and_go_through_a_weight_file, check_the_model_is_where_the_cell_asked,
    check_weights_file_is_loaded_and_checked, run_with_engine)
from .recipes import recipe, sample_images  # noqa: E402

SMALL = "mobilenet0.25"
SHAPE = (1, 3, 224, 224)


@pytest.fixture(scope="module")
def adapter():
    return load_adapter("gluoncv", "cpu", 1)


def test_truncated_images_stay_unreadable_after_gluoncv_is_imported(adapter, tmp_path):
    """gluoncv 0.10 sets Pillow's LOAD_TRUNCATED_IMAGES for the whole process when imported."""
    from .imagesets import make_flat_set

    make_flat_set(tmp_path, count=1)
    with pytest.raises(OSError):
        load_rgb(str(tmp_path / "images" / "ILSVRC2012_val_00000103.JPEG"))


def test_models_known_to_this_version(adapter):
    for name in ("resnet50_v1", "resnet50_v1b", "mobilenet1.0", "mobilenetv2_1.0", "densenet121", "inceptionv3"):
        assert adapter.has_model(name), name
    assert not adapter.has_model("no_such_net")


def test_random_weights_are_seeded_and_go_through_a_weight_file(adapter, tmp_path):
    check_random_weights_are_seeded_and_go_through_a_weight_file(adapter, SMALL, SHAPE, tmp_path)


def test_weights_file_is_loaded_and_checked(adapter, tmp_path):
    check_weights_file_is_loaded_and_checked(adapter, SMALL, SHAPE, tmp_path)


def test_pretrained_download_either_loads_or_says_how_to_go_offline(adapter, tmp_path):
    try:
        _, record = adapter.build(SMALL, {}, {"source": "pretrained", "cache_dir": str(tmp_path)}, str(tmp_path), SHAPE)
    except WeightsError as exc:
        assert "WEIGHTS=random" in str(exc)
    else:
        assert record["source"] == "pretrained"


def test_forward_is_asynchronous_until_synchronised(adapter, tmp_path):
    model, _ = adapter.build(SMALL, {}, {"source": "random", "seed": 0}, str(tmp_path), SHAPE)
    out = adapter.forward(model, adapter.to_device(np.zeros((2, 3, 224, 224), dtype=np.float32)))
    adapter.synchronize()
    assert out.shape == (2, 1000) and np.isfinite(out.asnumpy()).all()


@pytest.mark.parametrize("recipe_name,size,crop", [("gluoncv-224", 256, 224), ("gluoncv-inception", 342, 299)])
def test_probe_preprocessing_matches_gluoncv_transform_eval(imagenet_sample, adapter, recipe_name, size, crop):
    """Same decoded pixels through GluonCV's eval preset and through the probe's recipe."""
    from gluoncv.data.transforms.presets.imagenet import transform_eval

    chosen = recipe(recipe_name)
    assert (chosen.resize, chosen.crop, chosen.resize_with) == (size, crop, "framework")
    worst = 0.0
    for path in sample_images(imagenet_sample):
        ours, _ = preprocess_file(path, chosen, adapter)
        image, _ = load_rgb(path)
        theirs = transform_eval(mx.nd.array(np.asarray(image), dtype="uint8"), resize_short=size,
                                crop_size=crop).asnumpy()[0]
        worst = max(worst, float(np.abs(ours - theirs).max()))
    assert worst <= 1e-5, "{}: max abs difference {}".format(recipe_name, worst)


def test_pillow_resize_is_measurably_not_gluoncvs(imagenet_sample, adapter):
    """Why the GluonCV recipes resize with MXNet: Pillow's bilinear differs from OpenCV's."""
    from gluoncv.data.transforms.presets.imagenet import transform_eval

    pillow = Recipe(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_offset="floor")
    means = []
    for path in sample_images(imagenet_sample):
        ours, _ = preprocess_file(path, pillow)
        image, _ = load_rgb(path)
        theirs = transform_eval(mx.nd.array(np.asarray(image), dtype="uint8")).asnumpy()[0]
        means.append(float(np.abs(ours - theirs).mean()))
    assert np.mean(means) > 0.01  # about 0.044 in normalised units measured on the 30 images


# -- [engine] settings, each in a fresh process as in a cell ------------------------------------
def test_autotune_and_determinism_reach_mxnets_environment(tmp_path):
    settings, outputs = run_with_engine("gluoncv", SMALL, SHAPE, {"cudnn_autotune": False, "deterministic": True},
                                        tmp_path)
    assert settings["cudnn_autotune"] == "0" and settings["deterministic"] == "1"
    default, reference = run_with_engine("gluoncv", SMALL, SHAPE, {}, tmp_path)
    assert default["cudnn_autotune"] == "1 (MXNet default)" and default["deterministic"] == "0 (MXNet default)"
    np.testing.assert_array_equal(outputs, reference)


@pytest.mark.parametrize("engine, reason", [
    ({"precision": "fp16"}, "precision=fp16 on the CPU: MXNet has no float16 GEMM on the CPU"),
    ({"precision": "bf16"}, "precision=bf16: MXNet/GluonCV is run in float32 or float16 (net.cast) here"),
    ({"channels_last": True}, "channels_last: GluonCV's model zoo builds NCHW networks only"),
])
def test_settings_mxnet_cannot_honour_are_refused_with_the_reason(tmp_path, engine, reason):
    assert run_with_engine("gluoncv", SMALL, SHAPE, engine, tmp_path) == reason


def test_the_model_is_where_the_cell_asked(adapter, tmp_path):
    check_the_model_is_where_the_cell_asked(adapter, SMALL, SHAPE, tmp_path)


def test_out_of_memory_is_told_apart_from_other_errors(adapter):
    """The throughput sweep records an out-of-memory batch size and goes on; any other error fails the cell."""
    assert adapter.is_out_of_memory(mx.base.MXNetError("[12:00:00] src/storage/./pooled_storage_manager.h:157: "
                                                       "cudaMalloc failed: out of memory"))
    assert not adapter.is_out_of_memory(mx.base.MXNetError("Shape inconsistent, Provided = [1,3], inferred = [1,2]"))
    assert not adapter.is_out_of_memory(RuntimeError("out of memory"))
    adapter.release_memory()  # a CPU context: nothing to release
