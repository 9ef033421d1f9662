"""A prefill (runner/prefill.py's probe side): it builds the entry a later cell reads with the tensors and
predictions of its own decoding, does nothing where the entry is there already, and decodes nothing where
the entry cannot be stored."""

import os

from runner.probe.crop_source import prefill
from runner.probe.dataset import open_dataset
from runner.probe.error_suite import batch_ranges

from .recipes import recipe
from .test_crop_cache import run, settings
from .test_decode_pool import Recording, assert_same_tensors, evaluate, reference_batches


def prefilled(sample, tmp_path, chosen, cache):
    dataset = open_dataset(str(sample))
    return prefill(dataset, chosen, Recording(), batch_ranges(len(dataset.items), 4), 2, 1, cache, str(tmp_path))


def test_a_prefilled_entry_is_read_with_the_tensors_and_predictions_of_the_cells_own_decoding(imagenet_sample,
                                                                                             tmp_path):
    chosen, cache = recipe("torchvision-224"), settings(tmp_path)
    dataset = open_dataset(str(imagenet_sample))
    record = prefilled(imagenet_sample, tmp_path, chosen, cache)
    assert record["status"] == "built" and len(record["key"]) == 32
    again = prefilled(imagenet_sample, tmp_path, chosen, cache)
    assert again["status"] == "hit" and again["key"] == record["key"]
    hit, rows, inputs = run(imagenet_sample, tmp_path, "hit", chosen, cache)
    assert hit["crop_cache"]["status"] == "hit" and hit["crop_cache"]["key"] == record["key"]
    assert hit["crop_cache"]["entry_built"]["by"] == "prefill" and again["entry_built"]["by"] == "prefill"
    assert hit["decode_s"] == 0
    assert_same_tensors(inputs, reference_batches(dataset.root, dataset.items, chosen, None, 4))
    assert rows == evaluate(imagenet_sample, tmp_path, "plain", chosen, Recording(), None, workers=1)[1]


def test_where_the_entry_cannot_be_stored_a_prefill_decodes_nothing(imagenet_sample, tmp_path):
    chosen = recipe("torchvision-224")
    small = settings(tmp_path, limit=30 * 224 * 224 * 3 // 2)
    scratch = tmp_path / "scratch"  # where decoders would put the ring of crops they write into
    scratch.mkdir()
    dataset = open_dataset(str(imagenet_sample))
    record = prefill(dataset, chosen, Recording(), batch_ranges(len(dataset.items), 4), 2, 1, small, str(scratch))
    assert record["status"] == "not stored" and "limit" in record["reason"]
    assert not [name for _, _, names in os.walk(os.path.join(small["dir"], "entries")) for name in names]
    assert not os.listdir(str(scratch))
