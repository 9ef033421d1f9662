"""The float conversion on the device (runner/probe/adapters/torch_device.py) has the bits of the host's
(preprocess.to_batch) for every recipe in matrix.toml, on the CPU and, where there is one, on the GPU.

The conversion is a function of each value and its channel only, so a batch holding every uint8 value in
every channel covers every input it can meet; the real images then go through the error suite both ways.
"""

import numpy as np
import pytest

from runner.probe.dataset import open_dataset
from runner.probe.error_suite import run_error_suite
from runner.probe.preprocess import to_batch

from .recipes import MATRIX, recipe

torch = pytest.importorskip("torch")

from runner.probe.adapters.torch_device import DeviceConversion  # noqa: E402 - needs torch

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

with open(MATRIX, "rb") as _handle:
    RECIPES = sorted(tomllib.load(_handle)["preprocess"])

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def every_value(size, images=3):
    """images x size x size x 3 uint8, every value 0-255 in every channel, the rest random."""
    crops = np.random.RandomState(size).randint(0, 256, (images, size, size, 3)).astype(np.uint8)
    flat = crops.reshape(-1, 3)
    for channel in range(3):
        flat[:256, channel] = np.roll(np.arange(256, dtype=np.uint8), 85 * channel)
    return crops


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", RECIPES)
def test_every_value_in_every_channel_converts_to_the_hosts_bits(name, device):
    chosen = recipe(name)
    crops = every_value(chosen.crop)
    on_device = DeviceConversion(torch, torch.device(device), chosen)(crops)
    assert on_device.device.type == device and on_device.is_contiguous()
    host = to_batch(crops, chosen)
    converted = on_device.cpu().numpy()
    assert converted.dtype == host.dtype == np.float32 and converted.shape == host.shape
    differ = np.flatnonzero(converted.view(np.uint32) != host.view(np.uint32))
    assert differ.size == 0, "{} of {} values differ, the first {} vs {}".format(
        differ.size, host.size, converted.reshape(-1)[differ[:1]], host.reshape(-1)[differ[:1]])


class TensorModel(object):
    """An adapter whose model is a fixed function of the pixels (as in test_error_suite), taking host arrays
    or device tensors, with the torch adapter's device_conversion on `device` whatever the device is."""

    def __init__(self, device):
        self.device = torch.device(device)

    def device_conversion(self, chosen):
        return DeviceConversion(torch, self.device, chosen)

    def predict(self, model, batch):
        if not isinstance(batch, torch.Tensor):
            batch = torch.from_numpy(batch).to(self.device)
        flat = batch.reshape(len(batch), -1)
        positions = torch.from_numpy(np.linspace(0, flat.shape[1] - 1, 1000).astype(np.int64)).to(self.device)
        return flat[:, positions].double().cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
def test_the_error_suite_predicts_the_same_on_the_real_images_either_way(imagenet_sample, tmp_path, device):
    runs = {}
    for where in ("host", "device"):
        out = tmp_path / where
        out.mkdir()
        metrics = run_error_suite(TensorModel(device), None, recipe("torchvision-224"), open_dataset(str(imagenet_sample)),
                                  {"batch_size": 8, "workers": 2, "convert_on": where}, str(out))
        runs[where] = metrics, (out / "predictions.csv").read_text()
    assert runs["device"][1] == runs["host"][1] and len(runs["host"][1].splitlines()) == 31
    assert runs["device"][0]["convert_on"] == "device" and runs["device"][0]["convert_threads"] == 0
    assert runs["host"][0]["convert_on"] == "host" and runs["host"][0]["convert_threads"] >= 1


@pytest.mark.parametrize("device", DEVICES)
def test_the_adapter_hands_the_same_logits_later_as_now(device):
    """predict_later queues the forward pass and the logits' copy; what it hands over is predict's, bit for bit,
    from host arrays and from batches converted on the device."""
    from runner.probe.adapters import load_adapter

    adapter = load_adapter("torchvision", device, 1)
    chosen = recipe("torchvision-224")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 7, stride=8), torch.nn.AdaptiveAvgPool2d(1)).to(adapter.device)
    crops = every_value(chosen.crop, images=4)
    host = to_batch(crops, chosen)
    now = adapter.predict(model, host)
    later = [adapter.predict_later(model, host), adapter.predict_later(model, host[:2])]
    assert later[0]().tobytes() == now.tobytes() and later[1]().tobytes() == now[:2].tobytes()
    conversion = adapter.device_conversion(chosen)
    assert (conversion is None) == (device == "cpu")  # the CPU converts in the host's threads
    if conversion is not None:
        assert adapter.predict_later(model, conversion(crops))().tobytes() == now.tobytes()


@pytest.mark.parametrize("device", DEVICES)
def test_the_warm_up_leaves_the_model_predicting_the_same_and_says_its_time(tmp_path, device):
    """The torch adapter's warm-up (started by the error suite on a GPU only; here also on the CPU, where its
    code is the same): a forward pass per batch size in a thread, the model unchanged by it."""
    from runner.probe.adapters import load_adapter
    from runner.probe.adapters.torch_device import warm_up_later

    adapter = load_adapter("torchvision", device, 1)
    model, _ = adapter.build("resnet18", {}, {"source": "random", "seed": 0}, str(tmp_path), [1, 3, 64, 64])
    chosen = recipe("torchvision-224")
    batch = np.random.RandomState(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    before = adapter.predict(model, batch)
    seconds = warm_up_later(adapter, model, chosen, [3, 2])()
    assert seconds > 0
    assert np.array_equal(adapter.predict(model, batch).view(np.uint32), before.view(np.uint32))
    started = adapter.warm_up_later(model, chosen, [3])
    assert (started is None) == (device == "cpu")  # on the CPU it would take the decoders' cores
    if started is not None:
        assert started() > 0
    with pytest.raises(TypeError):  # the warm-up's own error, raised where it is waited for
        warm_up_later(adapter, "not a model", chosen, [1])()
