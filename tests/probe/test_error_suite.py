"""The error suite's input pipeline: worker processes and prefetch change the speed, never the predictions.

The model is a fixed function of the pixels (the pipeline is under test here; each framework's
own model runs in the adapter tests and the end-to-end runs).
"""

import numpy as np
import pytest

from runner.probe.dataset import open_dataset
from runner.probe.error_suite import input_workers, run_error_suite

from .imagesets import make_flat_set
from .recipes import recipe


class PixelModel(object):
    """predict(): logits = 1000 fixed pixel positions of each image, so any mix-up of images shows."""

    def predict(self, model, batch):
        flat = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
        positions = np.linspace(0, flat.shape[1] - 1, 1000).astype(int)
        return flat[:, positions]


def evaluate(root, tmp_path, name, **params):
    out = tmp_path / name
    out.mkdir()
    dataset = open_dataset(str(root))
    metrics = run_error_suite(PixelModel(), None, recipe("torchvision-224"), dataset,
                              dict({"batch_size": 4}, **params), str(out))
    return metrics, (out / "predictions.csv").read_text()


@pytest.mark.parametrize("workers, prefetch", [(4, 2), (3, 0), (8, 5)])
def test_workers_and_prefetch_give_the_one_decoder_predictions_on_the_real_images(imagenet_sample, tmp_path,
                                                                                     workers, prefetch):
    serial, serial_rows = evaluate(imagenet_sample, tmp_path, "serial", workers=1, prefetch=0)
    threaded, threaded_rows = evaluate(imagenet_sample, tmp_path, "threaded", workers=workers, prefetch=prefetch)
    assert threaded_rows == serial_rows and len(serial_rows.splitlines()) == 31
    for key in ("images_evaluated", "top1_correct", "top5_correct", "image_modes", "unreadable"):
        assert threaded[key] == serial[key], key
    assert threaded["input_workers"] == workers and serial["input_workers"] == 1
    assert threaded["wall_s"] >= threaded["model_s"] and threaded["input_wait_s"] <= threaded["wall_s"]


def test_unreadable_files_are_listed_in_order_with_workers(tmp_path):
    make_flat_set(tmp_path / "set")
    serial, serial_rows = evaluate(tmp_path / "set", tmp_path, "serial", workers=1)
    threaded, threaded_rows = evaluate(tmp_path / "set", tmp_path, "threaded", workers=4, prefetch=1)
    assert threaded_rows == serial_rows
    assert threaded["unreadable"] == serial["unreadable"] and threaded["unreadable_count"] >= 1


def test_workers_asked_are_given_also_to_a_framework_resize():
    """Worker processes each load their own framework: MXNet's front end needs no sharing between threads."""
    assert input_workers({"workers": 4}) == 4
    assert input_workers({"workers": 0}) >= 1


class QueuedModel(PixelModel):
    """predict_later as the torch adapter offers it on a GPU: logits handed over when asked, with a log."""

    def __init__(self):
        self.log = []

    def predict_later(self, model, batch):
        number = sum(1 for event in self.log if event[0] == "queued")
        self.log.append(("queued", number))
        logits = self.predict(model, batch)

        def handed():
            self.log.append(("read", number))
            return logits
        return handed


def test_the_next_batch_is_queued_before_this_ones_logits_are_read(imagenet_sample, tmp_path):
    serial, serial_rows = evaluate(imagenet_sample, tmp_path, "serial", workers=1, prefetch=0)
    out = tmp_path / "queued"
    out.mkdir()
    model = QueuedModel()
    queued = run_error_suite(model, None, recipe("torchvision-224"), open_dataset(str(imagenet_sample)),
                             {"batch_size": 4, "workers": 2}, str(out))
    assert (out / "predictions.csv").read_text() == serial_rows
    assert queued["top1_correct"] == serial["top1_correct"] and queued["top5_correct"] == serial["top5_correct"]
    batches = 8  # 30 images, 4 a batch
    expected = [("queued", 0)] + [event for k in range(1, batches) for event in (("queued", k), ("read", k - 1))]
    assert model.log == expected + [("read", batches - 1)]
    assert 0 < queued["first_batch_s"] <= queued["wall_s"]
