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


def run_with_engine(framework, name, shape, engine, tmp_path):
    """tests/probe/engine_cell.py in a fresh interpreter: (settings, outputs as an array) or the Unsupported reason."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.probe.engine_cell", framework, name, json.dumps(engine), json.dumps(list(shape)),
         str(tmp_path)], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    if "unsupported" in answer:
        return answer["unsupported"]
    return answer["settings"], np.asarray(answer["outputs"], dtype=np.float32)


def check_the_model_is_where_the_cell_asked(adapter, name, shape, tmp_path):
    """A CPU build reports its model on the CPU; the same placement would fail a cell that asked for CUDA."""
    from runner.probe.cell import device_used

    model, _ = adapter.build(name, {}, {"source": "random", "seed": 1}, str(tmp_path), shape)
    placement = adapter.placement(model)
    assert device_used(placement, "cpu")["kind"] == "cpu", placement
    with pytest.raises(RuntimeError, match="asked for device cuda, but the model is on"):
        device_used(placement, "cuda")
