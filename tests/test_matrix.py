import subprocess
import sys

import pytest

from runner.errors import UserError
from runner.matrix import load_matrix

from .matrices import REAL, ROOT, write_matrix


def test_real_matrix_loads_with_both_pytorch_rows_and_citations():
    matrix = load_matrix(REAL)
    assert [e.name for e in matrix.environments] == ["torch-1.0", "torch-current"]
    old = matrix.environment("torch-1.0")
    assert old.python == "3.7" and old.pinned_version("torchvision") == "0.2.2.post3"
    for model in matrix.models:
        variant = model.variant("torchvision")
        for version in ("0.2.2.post3", "0.29.1"):
            published = variant.published_for(version)
            assert published is not None, (model.key, version)
            assert published.source and published.revision
    assert matrix.model("inception_v3").variant("torchvision").preprocess.crop == 299


def test_matrix_objects_are_frozen():
    matrix = load_matrix(REAL)
    with pytest.raises(Exception):
        matrix.environments[0].python = "3.8"


@pytest.mark.parametrize("replace, append, message", [
    ((("schema = 1", "schema = 1\nshcema = 2"),), "", r"matrix.toml: shcema: unknown key"),
    ((("batch_size = 32", 'batch_size = "32"'),), "", r"suites.error.batch_size: expected a positive integer"),
    ((('"torch==1.0.1"', '"torch>=1.0"'),), "", r'environments.torch-1.0.packages\[0\]: expected an exact pin'),
    ((('"torch==1.0.1"', '"torch==1.0.1.banana"'),), "", r"packages\[0\]: .*(not a requirement|not one pip can parse)"),
    ((('"torch==1.0.1", ', ''),), "", r"environments.torch-1.0.packages: no pin for 'torch'"),
    ((('name = "resnet50"', 'name = "resnet5"'),), "", r"models.resnet50.torchvision.name: expected a torchvision model name"),
    ((('python = "3.7"', 'python = 3.7'),), "", r"environments.torch-1.0.python: expected a Python version"),
    ((('[environments."torch-1.0"]', '[environments.torch-1.0]'),), "", r'a dot in an unquoted name splits it'),
    ((), '\n[environments.torch-current]\nframework = "torchvision"\n', r"not valid TOML"),
    ((), '\n[models.resnet50.mxnet]\nname = "x"\n', r"not valid TOML|models.resnet50.mxnet: unknown framework"),
    ((('applies_to = "torchvision<0.13"', 'applies_to = "torch<0.13"'),), "",
     r"published\[0\].applies_to: expected a version range of torchvision"),
])
def test_bad_input_names_file_key_and_expectation(tmp_path, replace, append, message):
    path = write_matrix(tmp_path, replace=replace, append=append)
    with pytest.raises(UserError, match=message):
        load_matrix(path)


def test_model_listed_twice_in_an_environment(tmp_path):
    path = write_matrix(tmp_path, replace=(('cuda_image = "nvidia/cuda:10.0',
                                            'models = ["resnet50", "resnet50"]\ncuda_image = "nvidia/cuda:10.0'),))
    with pytest.raises(UserError, match="environments.torch-1.0.models: a model is listed twice"):
        load_matrix(path)


def test_cli_reports_bad_input_with_exit_code_2_and_no_traceback(tmp_path):
    path = write_matrix(tmp_path, replace=(("iterations = 10", "iterations = -1"),))
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "runner", "run", "--matrix", str(path), "--results-dir", str(results)],
                          cwd=str(ROOT), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "suites.throughput.iterations: expected a positive integer" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not results.exists(), "nothing may be built or run on bad input"


def test_cli_missing_matrix_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "runner", "plan", "--matrix", str(tmp_path / "none.toml")],
                          cwd=str(ROOT), capture_output=True, text=True)
    assert proc.returncode == 2 and "file not found" in proc.stderr and "Traceback" not in proc.stderr
