"""The torchvision adapter against the real framework of whatever environment runs the tests.

Runs under tox's probe-py37 env (torch 1.0.1 + torchvision 0.2.2, the historical row) and
wherever torchvision imports; skipped where it does not.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from runner.probe.adapters import load_adapter  # noqa: E402
from runner.probe.preprocess import Recipe, preprocess_file  # noqa: E402
from runner.probe.weights import WeightsError, sha256_file  # noqa: E402

from .adapter_checks import check_random_weights_are_seeded_and_go_through_a_weight_file  # noqa: E402

SMALL = "resnet18"


@pytest.fixture
def adapter():
    return load_adapter("torchvision", "cpu", 1)


def test_models_known_to_this_version(adapter):
    assert adapter.has_model("resnet50")
    assert not adapter.has_model("no_such_net")
    assert adapter.has_model("mobilenet_v2") == hasattr(torchvision.models, "mobilenet_v2")


def test_random_weights_are_seeded_and_go_through_a_weight_file(adapter, tmp_path):
    check_random_weights_are_seeded_and_go_through_a_weight_file(adapter, SMALL, None, tmp_path)


def test_weights_file_is_loaded_and_checked(adapter, tmp_path):
    torch.manual_seed(0)
    source = getattr(torchvision.models, SMALL)()
    path = str(tmp_path / "w.pth")
    torch.save(source.state_dict(), path)
    digest = sha256_file(path)
    model, record = adapter.build(SMALL, {}, {"source": "file", "path": path, "sha256": digest}, str(tmp_path))
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key].cpu(), value)
    assert record["sha256"] == digest and record["path"] == path
    with pytest.raises(WeightsError, match="refusing to load"):
        adapter.build(SMALL, {}, {"source": "file", "path": path, "sha256": "0" * 64}, str(tmp_path))


def test_pretrained_download_either_loads_or_says_how_to_go_offline(adapter, tmp_path):
    try:
        _, record = adapter.build(SMALL, {}, {"source": "pretrained", "cache_dir": str(tmp_path)}, str(tmp_path))
    except WeightsError as exc:
        assert "WEIGHTS=random" in str(exc)
    else:
        assert record["source"] == "pretrained" and len(record["sha256"]) == 64


def test_predict_gives_logits_for_every_image(adapter, tmp_path):
    model, _ = adapter.build(SMALL, {}, {"source": "random", "seed": 0}, str(tmp_path))
    logits = adapter.predict(model, np.zeros((2, 3, 224, 224), dtype=np.float32))
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()


def test_probe_preprocessing_matches_torchvision_transforms(imagenet_sample):
    """The probe's tensors equal torchvision's own eval transforms on the 30 real images."""
    from torchvision import transforms

    resize = getattr(transforms, "Resize", None) or transforms.Scale
    for size, crop in ((256, 224), (342, 299)):
        helper = transforms.Compose([resize(size), transforms.CenterCrop(crop), transforms.ToTensor(),
                                     transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        recipe = Recipe(resize=size, crop=crop, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        worst = 0.0
        for path in sorted((imagenet_sample / "images").iterdir()):
            ours, _ = preprocess_file(str(path), recipe)
            from PIL import Image

            with Image.open(str(path)) as image:
                theirs = helper(image.convert("RGB")).numpy()
            worst = max(worst, float(np.abs(ours - theirs).max()))
        assert worst <= 1e-5, "max abs difference {} at resize {} crop {}".format(worst, size, crop)
