"""Decoding in worker processes: the model gets the very tensors, and makes the very predictions, that one
decoder in the probe's own process gave before (preprocess_item, one image at a time, np.stack).

Every recipe of matrix.toml on the 30 real sample images; the recipes that resize with the framework's own
op (GluonCV) where that framework is installed (tox's probe-mx* envs). With the row's own small model on
the recipes its framework uses, in each row's env.
"""

import importlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from runner.probe.dataset import open_dataset
from runner.probe.error_suite import run_error_suite
from runner.probe.preprocess import preprocess_item

from .imagesets import make_flat_set
from .recipes import MATRIX, recipe, tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = {"torchvision": ("resnet18", "torch"), "keras": ("MobileNet", "tensorflow"),
         "gluoncv": ("mobilenet0.25", "gluoncv")}


def recipe_names():
    with open(MATRIX, "rb") as handle:
        return sorted(tomllib.load(handle)["preprocess"])


def framework_recipes():
    """{framework: the recipes its models use in matrix.toml}."""
    with open(MATRIX, "rb") as handle:
        models = tomllib.load(handle)["models"]
    used = {}
    for model in models.values():
        for framework, variant in model.items():
            if isinstance(variant, dict) and "preprocess" in variant:
                used.setdefault(framework, set()).add(variant["preprocess"])
    return {framework: sorted(names) for framework, names in used.items()}


def installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def adapter_for(chosen, framework):
    """The framework's adapter where the recipe uses its resize (skipped where it is not installed)."""
    if chosen.resize_with != "framework":
        return None
    pytest.importorskip(SMALL[framework][1])
    from runner.probe.adapters import load_adapter

    return load_adapter(framework, "cpu", 1)


class Recording(object):
    """A model that records every input tensor; logits = 1000 fixed pixel positions (a mix-up shows)."""

    name = "gluoncv"  # the framework whose resize the pool's workers load for a framework recipe

    def __init__(self, adapter=None, sleep_s=0.0):
        self.inputs, self.adapter, self.sleep_s = [], adapter, sleep_s

    def resize(self, array, size, interpolation):
        return self.adapter.resize(array, size, interpolation)

    def versions(self):
        return self.adapter.versions() if self.adapter else {}

    def predict(self, model, batch):
        self.inputs.append(np.array(batch, copy=True))
        time.sleep(self.sleep_s)
        flat = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
        return flat[:, np.linspace(0, flat.shape[1] - 1, 1000).astype(int)]


def reference_batches(root, items, chosen, adapter, batch_size):
    """Today's path before the pool: preprocess_item on each image, the readable ones stacked per batch."""
    batches = []
    for start in range(0, len(items), batch_size):
        arrays = [preprocess_item(root, rel, chosen, adapter)[0] for rel, _ in items[start:start + batch_size]]
        arrays = [array for array in arrays if array is not None]
        if arrays:
            batches.append(np.stack(arrays))
    return batches


def evaluate(root, tmp_path, name, chosen, model, cache=None, **params):
    out = tmp_path / name
    out.mkdir()
    metrics = run_error_suite(model, None, chosen, open_dataset(str(root)), dict({"batch_size": 4}, **params),
                              str(out), cache)
    return metrics, (out / "predictions.csv").read_text()


def assert_same_tensors(got, expected):
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected):
        assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape
        assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))  # bit for bit, not just close


@pytest.mark.parametrize("name", recipe_names())
def test_worker_processes_give_the_one_decoder_tensors_for_every_recipe(imagenet_sample, tmp_path, name):
    chosen = recipe(name)
    adapter = adapter_for(chosen, "gluoncv")
    dataset = open_dataset(str(imagenet_sample))
    expected = reference_batches(dataset.root, dataset.items, chosen, adapter, 4)
    inline, pooled = Recording(adapter), Recording(adapter)
    _, inline_rows = evaluate(imagenet_sample, tmp_path, "inline", chosen, inline, workers=1, prefetch=0)
    metrics, pooled_rows = evaluate(imagenet_sample, tmp_path, "pooled", chosen, pooled, workers=3, prefetch=1)
    assert_same_tensors(inline.inputs, expected)
    assert_same_tensors(pooled.inputs, expected)
    assert pooled_rows == inline_rows and len(inline_rows.splitlines()) == 31
    assert metrics["input_workers"] == 3 and metrics["input_pipeline"] == "worker processes"


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_a_slow_model_and_a_short_ring_still_get_every_batch_in_order(imagenet_sample, tmp_path, prefetch):
    """The ring holds prefetch + 1 batches: workers far ahead of a slow model must not overwrite unread crops."""
    chosen = recipe("torchvision-224")
    dataset = open_dataset(str(imagenet_sample))
    slow = Recording(sleep_s=0.05)
    evaluate(imagenet_sample, tmp_path, "slow", chosen, slow, workers=4, prefetch=prefetch, batch_size=3)
    assert_same_tensors(slow.inputs, reference_batches(dataset.root, dataset.items, chosen, None, 3))


def test_unreadable_files_are_listed_in_order_by_the_workers(tmp_path):
    make_flat_set(tmp_path / "set")
    chosen = recipe("torchvision-224")
    serial, serial_rows = evaluate(tmp_path / "set", tmp_path, "serial", chosen, Recording(), workers=1)
    pooled, pooled_rows = evaluate(tmp_path / "set", tmp_path, "pooled", chosen, Recording(), workers=3, prefetch=1)
    assert pooled_rows == serial_rows
    assert pooled["unreadable"] == serial["unreadable"] and pooled["unreadable_count"] >= 1
    assert pooled["image_modes"] == serial["image_modes"] and "CMYK" in pooled["image_modes"]


@pytest.mark.parametrize("framework", sorted(SMALL))
def test_the_rows_own_model_predicts_as_before(imagenet_sample, tmp_path, framework):
    """The real framework and a small seeded model: predictions.csv from the worker processes (and from the
    crop cache, built then hit) equals the one-decoder loop's, for each recipe its models use."""
    small, module = SMALL[framework]
    if not installed(module):
        pytest.skip("{} is not installed here".format(module))
    from runner.probe.adapters import load_adapter

    adapter = load_adapter(framework, "cpu", 1)
    dataset = open_dataset(str(imagenet_sample))
    cache = {"dir": str(tmp_path / "crops"), "limit_bytes": 1 << 30}
    for name in framework_recipes()[framework]:
        chosen = recipe(name)
        # Keras builds a fixed input size: its small model gets the recipe's (a 299 crop for keras-tf-299).
        kwargs = {"input_shape": (chosen.crop, chosen.crop, 3)} if framework == "keras" else {}
        model, _ = adapter.build(small, kwargs, {"source": "random", "seed": 2}, str(tmp_path), chosen.input_shape(1))
        expected = []
        for batch, kept in zip(reference_batches(dataset.root, dataset.items, chosen, adapter, 4),
                               _kept_items(dataset, chosen, adapter, 4)):
            best = np.argsort(-adapter.predict(model, batch), axis=1, kind="mergesort")[:, :5]
            expected += ["{},{},{}".format(rel, label, ",".join(str(int(k)) for k in top))
                         for (rel, label), top in zip(kept, best)]
        for run, settings in (("pool", None), ("built", cache), ("hit", cache)):
            metrics, rows = evaluate(imagenet_sample, tmp_path, "{}-{}".format(name, run), chosen,
                                     _Model(adapter, model), settings, workers=2, prefetch=1)
            assert rows.splitlines()[1:] == expected, (name, run)
        assert metrics["crop_cache"]["status"] == "hit", name


class _Model(object):
    """The adapter, with the built model bound (run_error_suite calls predict(model, batch))."""

    def __init__(self, adapter, model):
        self.adapter, self.model, self.name = adapter, model, adapter.name

    def __getattr__(self, attr):
        return getattr(self.adapter, attr)

    def predict(self, _, batch):
        return self.adapter.predict(self.model, batch)

    @property
    def predict_later(self):
        """The adapter's, with the model bound (None where the adapter has none: the suite predicts now)."""
        later = getattr(self.adapter, "predict_later", None)
        return None if later is None else (lambda _, batch: later(self.model, batch))


def _kept_items(dataset, chosen, adapter, batch_size):
    kept = []
    for start in range(0, len(dataset.items), batch_size):
        part = [item for item in dataset.items[start:start + batch_size]
                if preprocess_item(dataset.root, item[0], chosen, adapter)[2] is None]
        if part:
            kept.append(part)
    return kept


WORKERS_THEN_HANG = """
import os, sys, time
sys.path.insert(0, {root!r})
from runner.probe.dataset import open_dataset
from runner.probe.decode_pool import CropFile, Pool
from runner.probe.preprocess import Recipe
dataset = open_dataset({sample!r})
recipe = Recipe(256, 224)
pool = Pool(dataset.root, dataset.items, recipe, None, 3, CropFile.scratch(224, 8, {scratch!r}))
print(" ".join(str(w.process.pid) for w in pool.workers), flush=True)
time.sleep(600)
"""


def _alive(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_the_workers_run_below_the_probes_priority(imagenet_sample, tmp_path):
    """So that a GPU cell's own threads (the model loop, the crops' reading and storing) take a core the moment
    they need one, while the decoders keep all the others."""
    from runner.probe.decode_pool import DECODER_NICENESS, CropFile, Pool
    from runner.probe.preprocess import Recipe

    dataset = open_dataset(str(imagenet_sample))
    store = CropFile.scratch(224, 8, str(tmp_path))
    pool = Pool(dataset.root, dataset.items, Recipe(256, 224), None, 2, store)
    try:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert DECODER_NICENESS > 0
        assert [os.getpriority(os.PRIO_PROCESS, worker.process.pid) for worker in pool.workers] == \
            [min(19, mine + DECODER_NICENESS)] * 2
    finally:
        pool.close()
        store.close()


def test_the_workers_end_when_their_parent_is_killed(imagenet_sample, tmp_path):
    """kill -9 of the probe alone (not its group): each worker reads end-of-file on its task pipe and ends."""
    script = WORKERS_THEN_HANG.format(root=ROOT, sample=str(imagenet_sample), scratch=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, universal_newlines=True)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 3 and all(_alive(pid) for pid in pids)
        assert all(os.getpgid(pid) == os.getpgid(parent.pid) for pid in pids)  # the guard's group ends them too
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
