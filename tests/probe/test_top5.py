"""top5 picks exactly what a full stable argsort picks: ties, NaN, infinities, signed zeros, any batch."""

import numpy as np
import pytest

from runner.probe.top5 import best_classes


def reference(logits, k=5):
    return np.argsort(-logits, axis=1, kind="mergesort")[:, :k]


def batches():
    rng = np.random.RandomState(7)
    yield "random", rng.randn(64, 1000).astype(np.float32)
    yield "ties everywhere", rng.randint(0, 4, (64, 1000)).astype(np.float32)
    yield "ties at the fifth", np.tile(np.array([9, 8, 7, 6] + [5] * 10 + [1] * 986, dtype=np.float32), (3, 1))
    yield "one row", rng.randn(1, 1000).astype(np.float32)
    yield "float64", rng.randn(5, 1000)
    few = rng.randn(8, 1000).astype(np.float32)
    few[0, :] = np.nan
    few[1, 3:] = np.nan  # three numbers, the rest NaN
    few[2, ::2] = np.nan
    few[3, :7] = np.inf
    few[4, :] = -np.inf
    few[5, 10:20] = 0.0
    few[5, 20:30] = -0.0
    few[5, 30:] = -1.0
    yield "NaN, infinities, signed zeros", few
    yield "five classes", rng.randn(4, 5).astype(np.float32)
    yield "three classes", rng.randn(4, 3).astype(np.float32)


@pytest.mark.parametrize("name, logits", list(batches()), ids=[name for name, _ in batches()])
def test_the_same_classes_in_the_same_order_as_a_full_stable_sort(name, logits):
    assert np.array_equal(best_classes(logits), reference(logits))


def test_many_random_batches_with_ties():
    rng = np.random.RandomState(11)
    for _ in range(200):
        logits = rng.randint(0, rng.randint(2, 50), (rng.randint(1, 40), 1000)).astype(np.float32)
        assert np.array_equal(best_classes(logits), reference(logits))
