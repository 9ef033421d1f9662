import os

import pytest

from runner.probe.jsonio import read_json, write_json_atomic


def test_write_is_atomic_and_readable(tmp_path):
    path = str(tmp_path / "sub" / "r.json")
    write_json_atomic(path, {"a": 1})
    assert read_json(path) == {"a": 1}
    assert os.listdir(str(tmp_path / "sub")) == ["r.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "r.json")
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # not JSON: refused, nothing replaced
    assert read_json(path) == {"a": 1}
    assert os.listdir(str(tmp_path)) == ["r.json"]
