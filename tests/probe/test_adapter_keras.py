"""The Keras adapter against the real TensorFlow of whatever environment runs the tests.

Runs under tox's probe-tf-1.13 (graph mode, Keras 2.2.4-tf) and probe-tf-current (Keras 3)
envs; skipped where TensorFlow does not import.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from runner.probe.adapters import load_adapter  # noqa: E402
from runner.probe.preprocess import load_rgb, resize_and_crop, to_array  # noqa: E402
from runner.probe.weights import WeightsError  # noqa: E402

from .adapter_checks import (  # noqa: E402
    check_random_weights_are_seeded_and_go_through_a_weight_file, check_the_model_is_where_the_cell_asked,
    check_weights_file_is_loaded_and_checked, run_with_engine)
from .recipes import recipe, sample_images  # noqa: E402

SMALL = "MobileNet"
SHAPE = (1, 224, 224, 3)


@pytest.fixture(scope="module")
def adapter():
    return load_adapter("keras", "cpu", 1)


def test_models_known_to_this_version(adapter):
    assert adapter.has_model("ResNet50") and adapter.has_model("MobileNet")
    assert not adapter.has_model("NoSuchNet")
    # ResNet101 arrived in tf.keras with TF 1.14 / 2.0.
    assert adapter.has_model("ResNet101") == (int(tf.__version__.split(".")[0]) >= 2)


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
        assert record["tag"] == "imagenet"


def test_predict_gives_one_distribution_per_image(adapter, tmp_path):
    model, _ = adapter.build(SMALL, {}, {"source": "random", "seed": 0}, str(tmp_path), SHAPE)
    out = adapter.predict(model, np.zeros((2, 224, 224, 3), dtype=np.float32))
    assert out.shape == (2, 1000) and np.isfinite(out).all()
    assert np.allclose(out.sum(axis=1), 1.0, atol=1e-4)  # Keras applications end in a softmax


# Keras ships the normalisation (preprocess_input); it ships no resize/crop for evaluation, so
# both sides start from the probe's crop and the comparison isolates preprocess_input's mode.
HELPERS = [
    ("keras-caffe-224", "resnet50"),
    ("keras-tf-224", "mobilenet"),
    ("keras-tf-299", "inception_v3"),
    ("keras-torch-224", "densenet"),
]


@pytest.mark.parametrize("recipe_name,module", HELPERS)
def test_probe_normalisation_matches_keras_preprocess_input(imagenet_sample, recipe_name, module):
    helper = getattr(tf.keras.applications, module).preprocess_input
    chosen = recipe(recipe_name)
    worst = 0.0
    for path in sample_images(imagenet_sample):
        image, _ = load_rgb(path)
        crop = resize_and_crop(image, chosen)
        ours = to_array(crop, chosen)
        theirs = np.asarray(helper(np.asarray(crop, dtype=np.float32)[None].copy()))[0]
        assert ours.shape == theirs.shape == (chosen.crop, chosen.crop, 3)
        worst = max(worst, float(np.abs(ours - theirs).max()))
    # float32 arithmetic in a different order: values up to ~150 (caffe mode) keep ~1e-5 relative.
    assert worst <= 1e-4, "{}: max abs difference {}".format(recipe_name, worst)


# -- [engine] settings, each in a fresh process as in a cell ------------------------------------
GRAPH_MODE = not tf.executing_eagerly()
KERAS3 = int(str(getattr(tf.keras, "__version__", "2")).split(".")[0]) >= 3


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return run_with_engine("keras", SMALL, SHAPE, {}, tmp_path_factory.mktemp("fp32"))


def test_default_engine_is_float32_without_xla_on_the_cpu(fp32):
    settings, _ = fp32
    assert settings["dtype_policy"] == "float32" and settings["cudnn_autotune"] == "1 (TensorFlow default)"
    # Keras 3's jit_compile="auto" turns XLA off only because no GPU is visible here.
    assert settings["xla"] in ("model.jit_compile=False", "auto-clustering=False", "global_jit_level=DEFAULT")
    # TF32 read back from TensorFlow (the fraction of peak follows it): on by default from TF 2.4, absent before
    enabled = getattr(getattr(getattr(tf, "config", None), "experimental", None), "tensor_float_32_execution_enabled",
                      None)
    assert settings["tf32_execution_enabled"] is (None if enabled is None else True)


def test_xla_is_switched_on_and_computes_the_same_network(tmp_path, fp32):
    settings, outputs = run_with_engine("keras", SMALL, SHAPE, {"xla": True, "cudnn_autotune": False}, tmp_path)
    assert settings["xla"] in ("model.jit_compile=True", "auto-clustering=True", "global_jit_level=ON_1")
    assert settings["cudnn_autotune"] == "0"
    np.testing.assert_allclose(outputs, fp32[1], atol=1e-5)


def test_mixed_float16_or_a_clear_refusal(tmp_path, fp32):
    answer = run_with_engine("keras", SMALL, SHAPE, {"precision": "fp16"}, tmp_path)
    if GRAPH_MODE:
        assert answer == "precision=fp16 needs Keras mixed precision (TF >= 2.1); this row has TF " + tf.__version__
        return
    settings, outputs = answer
    assert settings["dtype_policy"] == "mixed_float16"
    assert not np.array_equal(outputs, fp32[1])  # float16 activations move the probabilities a little
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=1e-2)
    np.testing.assert_allclose(outputs, fp32[1], atol=1e-2)


def test_determinism_on_from_tf_2_1_and_refused_before(tmp_path, fp32):
    answer = run_with_engine("keras", SMALL, SHAPE, {"deterministic": True}, tmp_path)
    if GRAPH_MODE:
        assert "deterministic=true needs TF >= 2.1" in answer
        return
    settings, outputs = answer
    assert settings["deterministic"] is True
    np.testing.assert_allclose(outputs, fp32[1], atol=1e-6)


def test_the_model_is_where_the_cell_asked(adapter, tmp_path):
    check_the_model_is_where_the_cell_asked(adapter, SMALL, SHAPE, tmp_path)


def test_out_of_memory_is_told_apart_from_other_errors(adapter):
    """The throughput sweep records an out-of-memory batch size and goes on; any other error fails the cell."""
    assert adapter.is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"))
    assert not adapter.is_out_of_memory(tf.errors.InvalidArgumentError(None, None, "incompatible shapes"))
    assert not adapter.is_out_of_memory(MemoryError())
    assert adapter.memory_peak_mib() is None  # a CPU cell
    adapter.reset_memory_peak()
