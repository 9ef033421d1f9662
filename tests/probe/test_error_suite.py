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


def evaluate(root, tmp_path, name, model=None, **params):
    out = tmp_path / name
    out.mkdir()
    dataset = open_dataset(str(root))
    metrics = run_error_suite(model or PixelModel(), None, recipe("torchvision-224"), dataset,
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
    assert input_workers({"workers": 4}) == 4 == input_workers({"workers": 4}, "cuda:1")
    assert input_workers({"workers": 0}) >= 1


@pytest.mark.parametrize("cores, cpu, cuda", [(16, 8, 16), (4, 4, 4), (2, 2, 2), (1, 1, 1)])
def test_workers_0_counts_the_cores_this_cell_may_use(monkeypatch, cores, cpu, cuda):
    """A Slurm allocation or docker's --cpuset-cpus shows in the affinity, not in os.cpu_count()."""
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert input_workers({"workers": 0}) == input_workers({"workers": 0}, "cpu") == cpu
    assert input_workers({"workers": 0}, "cuda") == input_workers({"workers": 0}, "cuda:3") == cuda


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
    model = QueuedModel()
    queued, queued_rows = evaluate(imagenet_sample, tmp_path, "queued", model, workers=2)
    assert queued_rows == serial_rows
    assert queued["top1_correct"] == serial["top1_correct"] and queued["top5_correct"] == serial["top5_correct"]
    batches = 8  # 30 images, 4 a batch
    expected = [("queued", 0)] + [event for k in range(1, batches) for event in (("queued", k), ("read", k - 1))]
    assert model.log == expected + [("read", batches - 1)]
    assert 0 < queued["first_batch_s"] <= queued["wall_s"]


class WarmedModel(PixelModel):
    """warm_up_later as the torch adapter offers it on a GPU, with a log; `fails`: the warm-up's error."""

    def __init__(self, fails=None):
        self.log, self.fails = [], fails

    def warm_up_later(self, model, chosen, batch_sizes):
        self.log.append(("warm-up", tuple(batch_sizes), chosen.input_shape(1)))

        def joined():
            self.log.append(("joined",))
            if self.fails:
                raise self.fails
            return 0.25
        return joined

    def predict(self, model, batch):
        self.log.append(("predict", len(batch)))
        return PixelModel.predict(self, model, batch)


def test_the_warm_up_starts_with_the_input_and_ends_before_the_first_batch(imagenet_sample, tmp_path):
    serial, serial_rows = evaluate(imagenet_sample, tmp_path, "serial", workers=1, prefetch=0)
    model = WarmedModel()
    warmed, warmed_rows = evaluate(imagenet_sample, tmp_path, "warmed", model, workers=2)
    assert warmed_rows == serial_rows
    # 30 images, 4 a batch: shapes of 4 and of the last 2, once each, joined before the first forward pass
    assert model.log[:3] == [("warm-up", (2, 4), (1, 3, 224, 224)), ("joined",), ("predict", 4)]
    assert model.log.count(("joined",)) == 1 and model.log[-1] == ("predict", 2)
    assert warmed["warm_up_s"] == 0.25 and serial["warm_up_s"] is None


def test_a_warm_up_that_fails_fails_the_suite_with_its_own_error(imagenet_sample, tmp_path):
    with pytest.raises(MemoryError, match="warm-up ran out"):
        run_error_suite(WarmedModel(fails=MemoryError("warm-up ran out")), None, recipe("torchvision-224"),
                        open_dataset(str(imagenet_sample)), {"batch_size": 4, "workers": 1}, str(tmp_path))


def test_a_warm_up_is_waited_for_when_no_image_reaches_the_model(tmp_path):
    """Every file unreadable: the suite's own message, and the warm-up is not left running."""
    folder = tmp_path / "set" / "images"
    folder.mkdir(parents=True)
    for k in range(3):
        (folder / "ILSVRC2012_val_{:08d}.JPEG".format(k + 1)).write_bytes(b"not a jpeg")
    (tmp_path / "set" / "val_labels.txt").write_text("".join(
        "ILSVRC2012_val_{:08d}.JPEG n{:08d}\n".format(k + 1, k) for k in range(3)))
    (tmp_path / "set" / "synsets.txt").write_text("".join("n{:08d} class {}\n".format(k, k) for k in range(1000)))
    model = WarmedModel(fails=MemoryError("not this one"))
    with pytest.raises(RuntimeError, match="no image of the 3 selected could be decoded"):
        run_error_suite(model, None, recipe("torchvision-224"), open_dataset(str(tmp_path / "set")),
                        {"batch_size": 2, "workers": 1}, str(tmp_path))
    assert model.log == [("warm-up", (1, 2), (1, 3, 224, 224)), ("joined",)]
