import os

import pytest

from runner.probe.dataset import DatasetError, open_dataset

from .imagesets import WNIDS, make_flat_set, noise_image, write_synsets


def test_flat_layout_with_labels_file(tmp_path):
    labels = make_flat_set(tmp_path)
    data = open_dataset(str(tmp_path))
    assert data.layout == "flat"
    assert len(data.items) == len(labels)
    index = dict(data.items)
    assert index["images/ILSVRC2012_val_00000002.JPEG"] == labels["ILSVRC2012_val_00000002.JPEG"]


def test_folder_layout(tmp_path):
    for i, wnid in enumerate(WNIDS[:3]):
        os.makedirs(str(tmp_path / wnid))
        noise_image(i).save(str(tmp_path / wnid / "img{}.JPEG".format(i)))
    write_synsets(tmp_path)
    data = open_dataset(str(tmp_path))
    assert data.layout == "folder"
    assert [label for _, label in data.items] == [0, 1, 2]


def test_image_names_that_are_not_utf8_are_refused_naming_one(tmp_path):
    """A Latin-1 name (byte 0xe9) comes out of os.listdir with a surrogate escape: the predictions file, the
    results and the crop cache's key could not name it. Refused at once, before any cell runs."""
    os.makedirs(str(tmp_path / WNIDS[0]))
    noise_image(0).save(str(tmp_path / WNIDS[0] / "plain.JPEG"))
    noise_image(1).save(os.fsdecode(os.fsencode(str(tmp_path / WNIDS[0])) + b"/caf\xe9.JPEG"))
    write_synsets(tmp_path)
    with pytest.raises(DatasetError) as refused:
        open_dataset(str(tmp_path))
    assert "1 image file names are not valid UTF-8, e.g. b'{}/caf\\xe9.JPEG'".format(WNIDS[0]) in str(refused.value)
    assert "convmv" in str(refused.value)


def test_kaggle_csv_labels(tmp_path):
    os.makedirs(str(tmp_path / "val"))
    noise_image(0).save(str(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG"))
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,{} 1 2 3 4 {} 5 6 7 8\n".format(WNIDS[7], WNIDS[7]))
    write_synsets(tmp_path)
    data = open_dataset(str(tmp_path))
    assert data.items == [("val/ILSVRC2012_val_00000001.JPEG", 7)]


def test_limit_is_deterministic_and_a_subset(tmp_path):
    make_flat_set(tmp_path, count=10)
    full = open_dataset(str(tmp_path))
    first = open_dataset(str(tmp_path), limit=4)
    again = open_dataset(str(tmp_path), limit=4)
    assert first.items == again.items
    assert len(first.items) == 4 and set(first.items) <= set(full.items)
    assert first.total == len(full.items)
    assert first.manifest_sha256() != full.manifest_sha256()


def test_manifest_changes_when_a_file_changes(tmp_path):
    make_flat_set(tmp_path, count=3, truncated=False, cmyk=False, grey=False)
    before = open_dataset(str(tmp_path)).manifest_sha256()
    noise_image(99, size=(100, 80)).save(str(tmp_path / "images" / "ILSVRC2012_val_00000001.JPEG"))
    assert open_dataset(str(tmp_path)).manifest_sha256() != before


def test_class_order_needs_all_1000_ids(tmp_path):
    make_flat_set(tmp_path, count=2)
    os.remove(str(tmp_path / "synsets.txt"))
    with pytest.raises(DatasetError, match="1000-class order is unknown"):
        open_dataset(str(tmp_path))


def test_bad_labels_line_names_file_and_line(tmp_path):
    make_flat_set(tmp_path, count=2)
    with open(str(tmp_path / "val_labels.txt"), "a") as handle:
        handle.write("just-one-field\n")
    with pytest.raises(DatasetError, match=r"val_labels.txt' line \d+"):
        open_dataset(str(tmp_path))


def test_missing_folder_and_missing_labels(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        open_dataset(str(tmp_path / "nope"))
    os.makedirs(str(tmp_path / "images"))
    noise_image(0).save(str(tmp_path / "images" / "a.JPEG"))
    with pytest.raises(DatasetError, match="no labels file"):
        open_dataset(str(tmp_path))


def test_real_sample(imagenet_sample):
    data = open_dataset(str(imagenet_sample))
    assert len(data.items) == 30
    assert len(data.wnids) == 1000
    # Image 1 is class 65 (sea snake), as the sample's README says.
    assert dict(data.items)["images/ILSVRC2012_val_00000001.JPEG"] == 65
