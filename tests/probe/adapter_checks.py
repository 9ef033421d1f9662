"""What every framework adapter must do with weights, checked the same way for each.

Called from the per-adapter test modules, inside the environment that has the framework.
"""

import pytest

from runner.probe.weights import WeightsError, sha256_file


def check_random_weights_are_seeded_and_go_through_a_weight_file(adapter, name, shape, tmp_path):
    _, first = adapter.build(name, {}, {"source": "random", "seed": 3}, str(tmp_path), shape)
    _, again = adapter.build(name, {}, {"source": "random", "seed": 3}, str(tmp_path), shape)
    _, other = adapter.build(name, {}, {"source": "random", "seed": 4}, str(tmp_path), shape)
    assert first["tensor_digest"] == again["tensor_digest"] != other["tensor_digest"]
    assert len(first["sha256"]) == 64


def check_weights_file_is_loaded_and_checked(adapter, name, shape, tmp_path):
    """A file in the framework's own format loads to the weights it holds; a wrong sha256 is refused."""
    path = adapter.save_seeded(name, {}, 5, str(tmp_path / ("w" + adapter.weights_suffix())), shape)
    digest = sha256_file(path)
    _, record = adapter.build(name, {}, {"source": "file", "path": path, "sha256": digest}, str(tmp_path), shape)
    _, seeded = adapter.build(name, {}, {"source": "random", "seed": 5}, str(tmp_path), shape)
    assert record["tensor_digest"] == seeded["tensor_digest"] and record["path"] == path
    with pytest.raises(WeightsError, match="refusing to load"):
        adapter.build(name, {}, {"source": "file", "path": path, "sha256": "0" * 64}, str(tmp_path), shape)
