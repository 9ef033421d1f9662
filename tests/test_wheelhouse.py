import pytest

from runner.errors import UserError
from runner.matrix import load_matrix
from runner.wheelhouse import fill_wheelhouse

from .matrices import REAL


def test_an_unknown_environment_is_named_with_the_valid_ones(tmp_path):
    with pytest.raises(UserError, match="no environment 'tf-9'; valid: mxnet-1.4, mxnet-1.5"):
        fill_wheelhouse(load_matrix(REAL), tmp_path / "wheels", ["tf-9"], lambda line: None)
    assert not (tmp_path / "wheels").exists()  # nothing written for bad input
