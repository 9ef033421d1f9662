"""The device a cell actually ran on is recorded and checked against the one asked for (runner/probe/cell.py)."""

import pytest

from runner.probe.cell import device_used


@pytest.mark.parametrize("placement, asked, kind", [
    ({"framework_device": "cpu", "from": "x"}, "cpu", "cpu"),
    ({"framework_device": "cuda:0", "from": "x"}, "cuda", "cuda"),
    ({"framework_device": "gpu(1)", "from": "x"}, "cuda:1", "cuda"),
    ({"framework_device": "/job:localhost/replica:0/task:0/device:CPU:0", "from": "x"}, "cpu", "cpu"),
    ({"framework_device": "/job:localhost/replica:0/task:0/device:GPU:0", "from": "x"}, "cuda:0", "cuda"),
])
def test_the_placement_is_recorded_with_its_kind(placement, asked, kind):
    assert device_used(placement, asked) == dict(placement, kind=kind)


@pytest.mark.parametrize("placement, asked", [
    ({"framework_device": "cpu(0)", "from": "the parameters' context"}, "cuda"),
    ({"framework_device": "/device:CPU:0", "from": "tf.device the model was built under"}, "cuda:1"),
    ({"framework_device": "cuda:0", "from": "the parameters' device"}, "cpu"),
])
def test_a_model_on_another_device_than_asked_fails_the_cell(placement, asked):
    with pytest.raises(RuntimeError, match="asked for device {}, but the model is on".format(asked)):
        device_used(placement, asked)
