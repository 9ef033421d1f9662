import numpy as np
import pytest

from runner.verdicts.drift import compare_pair


def logits(seed, images=8, classes=20):
    return np.random.RandomState(seed).standard_normal((images, classes)).astype(np.float32)


def test_identical_outputs():
    a = logits(0)
    stats = compare_pair(a, a.copy(), "logits")
    assert stats["outputs_identical"] and stats["max_abs_diff"] == 0.0
    assert stats["top1_agreement"] == stats["top5_agreement"] == 1.0 and stats["compared_as"] == "logits"


def test_a_small_drift_is_measured_and_a_swapped_winner_is_counted():
    a = logits(1)
    b = a.copy()
    b[0, 3] += 1e-3
    stats = compare_pair(a, b, "logits")
    assert not stats["outputs_identical"]
    assert stats["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    assert stats["mean_abs_diff"] == pytest.approx(1e-3 / a.size, rel=1e-3)
    c = a.copy()
    winner, runner_up = np.argsort(-a[2])[:2]
    c[2, winner], c[2, runner_up] = a[2, runner_up], a[2, winner]
    stats = compare_pair(a, c, "logits")
    assert stats["top1_agreement"] == pytest.approx(7 / 8)
    assert stats["top5_agreement"] == 1.0  # the same five classes, in another order


def test_probabilities_are_compared_as_log_probabilities():
    a = logits(2)
    pa = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    shifted = a + 0.5  # same softmax: logits that differ by a per-image constant
    pb = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    stats = compare_pair(pa.astype(np.float32), pb.astype(np.float32), "probabilities")
    assert stats["compared_as"] == "log-probabilities" and stats["max_abs_diff"] < 1e-5
    b = a.copy()
    b[1, 0] += 0.1
    pb = np.exp(b) / np.exp(b).sum(axis=1, keepdims=True)
    assert compare_pair(pa.astype(np.float32), pb.astype(np.float32), "probabilities")["max_abs_diff"] > 0.05


def test_bit_identical_means_the_same_bits():
    """A NaN output both versions give alike is identical; 0.0 against -0.0 is equal in value, not in bits."""
    a = np.random.RandomState(1).randn(4, 10).astype(np.float32)
    a[2, 3] = np.nan
    assert compare_pair(a, a.copy(), "logits")["outputs_identical"]
    b = a.copy()
    a[0, 0], b[0, 0] = 0.0, -0.0
    assert not compare_pair(a, b, "logits")["outputs_identical"]
    assert not compare_pair(a, a.astype(np.float64), "logits")["outputs_identical"]


def test_an_underflowed_probability_does_not_set_the_tolerance_scale():
    """The scale is the largest |log p| among the probabilities that did not underflow; a softmax whose
    smallest output underflowed to 0 has the same scale as one whose did not."""
    a = logits(3).astype(np.float64)
    p = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    expected = float(np.abs(np.log(p)).max())
    assert compare_pair(p.astype(np.float32), p.astype(np.float32), "probabilities")["reference_scale"] == \
        pytest.approx(expected, rel=1e-5)
    p[0, 0] = 0.0  # underflowed: its clipped log(TINY) = -85 would be the scale
    assert compare_pair(p.astype(np.float32), p.astype(np.float32), "probabilities")["reference_scale"] == \
        pytest.approx(expected, rel=1e-5)
    assert compare_pair(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32),
                        "probabilities")["reference_scale"] == 0.0


def test_changed_predictions_are_counted():
    a = logits(4)
    b = a.copy()
    winner, runner_up = np.argsort(-a[5])[:2]
    b[5, winner], b[5, runner_up] = a[5, runner_up], a[5, winner]
    stats = compare_pair(a, b, "logits")
    assert (stats["images"], stats["top1_changed"], stats["top5_changed"]) == (8, 1, 0)
