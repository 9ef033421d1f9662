"""Every image accounted for: a 16-bit image, a decompression bomb, a truncated file, an image without a
label and a label without an image each end up counted with a reason, never silently changed or dropped.
Real files written by Pillow (tests/probe/badimages.py), on each row's own Pillow."""

import os

import numpy as np
import pytest
from PIL import Image

from runner.probe.dataset import open_dataset
from runner.probe.error_suite import run_error_suite
from runner.probe.preprocess import MAX_IMAGE_PIXELS, ImageRefused, load_rgb, preprocess_item

from .badimages import BAD, make_bad_set, png_claiming, sixteen_bit_png, truncated_jpeg
from .imagesets import WNIDS, noise_image, write_synsets
from .recipes import recipe
from .test_error_suite import PixelModel


def test_a_16_bit_png_is_refused_with_the_reason_not_clipped_to_white(tmp_path):
    path = sixteen_bit_png(tmp_path / "deep.png")
    with Image.open(path) as image:
        mode = image.mode  # "I;16" on Pillow >= 10, "I" on the older rows
        assert mode.startswith("I") and np.asarray(image).max() > 255  # really more than 8 bits
    with pytest.raises(ImageRefused) as refused:
        load_rgb(path)
    reason = str(refused.value)
    assert "Pillow mode {}".format(mode) in reason
    assert "clip it to white" in reason and "scale it to 8 bits" in reason and "convert the file to 8-bit" in reason
    array, seen, problem = preprocess_item(str(tmp_path), "deep.png", recipe("torchvision-224"))
    assert array is None and seen is None
    assert problem == {"error": reason, "kind": "more than 8 bits per channel"}


def test_an_8_bit_version_of_it_is_read(tmp_path):
    with Image.open(sixteen_bit_png(tmp_path / "deep.png")) as image:
        eight = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8), "L")
    eight.save(str(tmp_path / "eight.png"))
    rgb, mode = load_rgb(str(tmp_path / "eight.png"))
    assert mode == "L" and rgb.mode == "RGB" and rgb.size == (64, 48)


def test_a_bomb_pillow_refuses_is_one_unreadable_image_with_pixels_and_limit(tmp_path):
    path = png_claiming(tmp_path / "bomb.png", 20000, 20000)  # over twice the limit: Pillow raises
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with pytest.raises(ImageRefused) as refused:
        load_rgb(path)
    assert str(refused.value).startswith(
        "too large: 400000000 pixels, over the limit of {} pixels (Pillow's default Image.MAX_IMAGE_PIXELS".format(
            MAX_IMAGE_PIXELS))
    assert preprocess_item(str(tmp_path), "bomb.png", recipe("torchvision-224"))[2]["kind"] == "too large"


def test_an_image_pillow_only_warns_about_is_refused_too(tmp_path):
    path = png_claiming(tmp_path / "big.png", 10000, 9000)  # 90 MP: Pillow warns and would decode it
    with pytest.warns(Image.DecompressionBombWarning):
        with pytest.raises(ImageRefused, match=r"^too large: 10000 x 9000 = 90000000 pixels, over the limit"):
            load_rgb(path)


def test_the_limit_holds_when_a_framework_switches_pillows_guard_off(tmp_path, monkeypatch):
    # Some libraries set Image.MAX_IMAGE_PIXELS = None for the whole process; the probe's own limit must
    # still stop a bomb before it is decoded. monkeypatch puts Pillow's value back after the test.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = png_claiming(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageRefused, match=r"^too large: 20000 x 20000 = 400000000 pixels"):
        load_rgb(path)


def test_a_truncated_jpeg_stays_an_oserror(tmp_path):
    truncated_jpeg(tmp_path / "half.JPEG")
    problem = preprocess_item(str(tmp_path), "half.JPEG", recipe("torchvision-224"))[2]
    assert problem["kind"] == "OSError" and problem["error"].startswith("OSError: ")


def test_the_error_suite_accounts_for_every_image(tmp_path):
    make_bad_set(tmp_path / "set")
    dataset = open_dataset(str(tmp_path / "set"))
    out = tmp_path / "out"
    out.mkdir()
    metrics = run_error_suite(PixelModel(), None, recipe("torchvision-224"), dataset,
                              {"batch_size": 2, "workers": 3, "prefetch": 1}, str(out))
    assert metrics["images_selected"] == 6
    assert metrics["images_evaluated"] == 3 and metrics["unreadable_count"] == 3
    assert metrics["images_selected"] == metrics["images_evaluated"] + metrics["unreadable_count"]
    assert {e["file"]: e["kind"] for e in metrics["unreadable"]} == {"images/" + n: k for n, k in BAD.items()}
    assert metrics["unreadable_kinds"] == {"more than 8 bits per channel": 1, "too large": 1, "OSError": 1}
    assert metrics["unlabeled_count"] == 1 and metrics["unlabeled_examples"] == ["images/ILSVRC2012_val_00000301.JPEG"]
    assert metrics["labels_without_image_count"] == 1
    assert metrics["labels_without_image_examples"] == ["ILSVRC2012_val_00000999.JPEG"]
    assert metrics["not_image_count"] == 1 and metrics["not_image_examples"] == ["images/README.txt"]
    assert len((out / "predictions.csv").read_text().splitlines()) == 1 + 3


def test_no_decodable_image_fails_the_cell_saying_why(tmp_path):
    make_bad_set(tmp_path / "set", good=0)
    dataset = open_dataset(str(tmp_path / "set"))
    with pytest.raises(RuntimeError) as failed:
        run_error_suite(PixelModel(), None, recipe("torchvision-224"), dataset, {"batch_size": 2}, str(tmp_path))
    assert str(failed.value).startswith("no image of the 3 selected could be decoded (1 OSError, "
                                        "1 more than 8 bits per channel, 1 too large); the first, images/")


def test_describe_counts_what_the_flat_layout_left_out(tmp_path):
    make_bad_set(tmp_path / "set")
    described = open_dataset(str(tmp_path / "set"), limit=2).describe()
    assert described["images_available"] == 6 and described["images_selected"] == 2
    assert described["unlabeled_images"] == {"count": 1, "examples": ["images/ILSVRC2012_val_00000301.JPEG"]}
    assert described["labels_without_image"] == {"count": 1, "examples": ["ILSVRC2012_val_00000999.JPEG"]}
    assert described["not_images"] == {"count": 1, "examples": ["images/README.txt"]}


def test_kaggle_labels_name_stems_and_a_stem_without_image_is_counted(tmp_path):
    os.makedirs(str(tmp_path / "val"))
    noise_image(0).save(str(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG"))
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,{0} 1 2 3 4\nILSVRC2012_val_00000002,{0} 1 2 3 4\n".format(
            WNIDS[7]))
    write_synsets(tmp_path)
    data = open_dataset(str(tmp_path))
    assert data.items == [("val/ILSVRC2012_val_00000001.JPEG", 7)]
    assert (data.labels_without_image.count, data.labels_without_image.examples) == (1, ["ILSVRC2012_val_00000002"])
    assert data.unlabeled.count == 0


def test_folder_layout_counts_images_outside_class_folders_and_empty_classes(tmp_path):
    for i, wnid in enumerate(WNIDS[:3]):
        os.makedirs(str(tmp_path / wnid))
        if i < 2:
            noise_image(i).save(str(tmp_path / wnid / "img{}.JPEG".format(i)))
    (tmp_path / WNIDS[0] / "notes.txt").write_text("x")
    noise_image(5).save(str(tmp_path / "loose.JPEG"))
    os.makedirs(str(tmp_path / "extra"))
    noise_image(6).save(str(tmp_path / "extra" / "other.jpg"))
    write_synsets(tmp_path)
    data = open_dataset(str(tmp_path))
    assert [rel for rel, _ in data.items] == [WNIDS[0] + "/img0.JPEG", WNIDS[1] + "/img1.JPEG"]
    assert (data.unlabeled.count, data.unlabeled.examples) == (2, ["extra/other.jpg", "loose.JPEG"])
    assert (data.labels_without_image.count, data.labels_without_image.examples) == (1, [WNIDS[2] + "/"])
    assert (data.not_images.count, data.not_images.examples) == (1, [WNIDS[0] + "/notes.txt"])


def test_a_set_with_only_unlabeled_images_names_them(tmp_path):
    make_bad_set(tmp_path / "set", good=0)
    with open(str(tmp_path / "set" / "val_labels.txt"), "w") as handle:
        handle.write("ILSVRC2012_val_00000999.JPEG {}\n".format(WNIDS[0]))
    with pytest.raises(Exception, match=r"no labelled images found \(4 without a label, e\.g\. images/"):
        open_dataset(str(tmp_path / "set"))


def test_the_real_sample_every_image_evaluated_the_grey_and_the_large_one_included(imagenet_sample, tmp_path):
    dataset = open_dataset(str(imagenet_sample))
    metrics = run_error_suite(PixelModel(), None, recipe("torchvision-224"), dataset, {"batch_size": 8, "workers": 2},
                              str(tmp_path))
    assert (metrics["images_selected"], metrics["images_evaluated"], metrics["unreadable_count"]) == (30, 30, 0)
    assert metrics["unlabeled_count"] == 0 and metrics["not_image_count"] == 0
    # val_labels.txt lists the whole val set, the sample holds 30 of its images.
    assert metrics["labels_without_image_count"] == 50000 - 30
    assert metrics["image_modes"] == {"RGB": 29, "L": 1}
    big, mode = load_rgb(str(imagenet_sample / "images" / "ILSVRC2012_val_00018683.JPEG"))
    assert big.size == (2816, 2112) and big.size[0] * big.size[1] < MAX_IMAGE_PIXELS
