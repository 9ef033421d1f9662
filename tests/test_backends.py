import platform
import sys

import pytest

from runner.backends import get_backend
from runner.backends.base import EnvironmentBuildError
from runner.backends.local import pin_mismatches
from runner.backends.venv import find_python
from runner.errors import UserError
from runner.matrix import load_matrix

from .matrices import REAL


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(UserError, match="unknown backend 'dokker'; valid: local, venv"):
        get_backend("dokker")


def test_local_backend_refuses_an_interpreter_that_does_not_match_the_pins():
    env = load_matrix(REAL).environment("torch-1.0")
    found = pin_mismatches(env, "3.11.7", {"torch": "2.13.0+cpu", "numpy": "1.16.6"})
    assert "Python 3.11.7 (wants 3.7)" in found
    assert "torch 2.13.0+cpu (wants torch==1.0.1)" in found
    assert "torchvision not installed (wants torchvision==0.2.2.post3)" in found
    assert not any(item.startswith("numpy") for item in found)
    with pytest.raises(EnvironmentBuildError, match="does not match environment torch-1.0"):
        get_backend("local").prepare(env, print)


def test_local_backend_with_ignore_pins_records_the_mismatch():
    env = load_matrix(REAL).environment("torch-1.0")
    ready = get_backend("local", ignore_pins=True).prepare(env, print)
    assert ready.python == sys.executable
    assert ready.provenance["ignore_pins"] and ready.provenance["pin_mismatches"]


def test_find_python_for_the_running_version_and_a_missing_one():
    version = "{}.{}".format(*sys.version_info[:2])
    assert platform.python_version().startswith(version)
    assert find_python(version)
    with pytest.raises(EnvironmentBuildError, match="Python 3.99 not found"):
        find_python("3.99")
