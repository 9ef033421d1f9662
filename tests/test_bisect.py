"""bisect: the search, the releases between two rows, the environments derived for them, and a real
bisection over MXNet releases on the val sample."""

import io
import json
import os

import pytest
from packaging.version import Version

from runner.bisect import BAD, GOOD, UNUSABLE, search
from runner.cli import main
from runner.errors import UserError
from runner.matrix import load_matrix
from runner.releases import between, derive_environment, differing_packages, index_releases, parse_versions

from .matrices import REAL


def outcomes(table):
    asked = []

    def outcome_of(version):
        asked.append(version)
        return table[version]
    return outcome_of, asked


def test_search_finds_the_adjacent_pair_in_log2_probes():
    candidates = [str(v) for v in range(17)]
    table = {v: GOOD if int(v) < 11 else BAD for v in candidates}
    outcome_of, asked = outcomes(table)
    assert search(candidates, outcome_of) == (10, 11)
    assert len(asked) <= 4  # log2(16)


def test_search_steps_around_an_unusable_release_and_reports_a_range_it_cannot_narrow():
    candidates = ["a", "b", "c", "d", "e"]
    outcome_of, asked = outcomes({"a": GOOD, "b": GOOD, "c": UNUSABLE, "d": BAD, "e": BAD})
    assert search(candidates, outcome_of) == (1, 3)
    assert "c" in asked
    outcome_of, _ = outcomes({"a": GOOD, "b": UNUSABLE, "c": UNUSABLE, "d": UNUSABLE, "e": BAD})
    assert search(candidates, outcome_of) == (0, 4)


def test_releases_between_two_pins_either_way_round():
    releases = parse_versions("1.4.1, 1.5.1.post0, 1.6.0, 1.7.0b1, 1.7.0.post1, 1.9.1, 2.0.0")
    assert [str(v) for v in between(releases, "1.5.1.post0", "1.9.1")] == ["1.5.1.post0", "1.6.0", "1.7.0.post1",
                                                                         "1.9.1"]
    assert [str(v) for v in between(releases, "1.9.1", "1.6.0")] == ["1.9.1", "1.7.0.post1", "1.6.0"]
    with pytest.raises(UserError, match="expected versions separated by commas"):
        parse_versions("1.6.0,not-a-version")


def test_releases_come_from_the_index_for_the_rows_python(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    page = tmp_path / "simple" / "demo"
    page.mkdir(parents=True)
    files = ["demo-1.0-py3-none-any.whl", "demo-1.1-cp37-cp37m-manylinux1_x86_64.whl",
             "demo-1.2-cp311-cp311-manylinux1_x86_64.whl", "demo-2.0rc1-py3-none-any.whl"]
    page.joinpath("index.html").write_text("".join('<a href="{0}">{0}</a>\n'.format(f) for f in files))
    url = (tmp_path / "simple").as_uri()
    assert index_releases("demo", "3.7", url) == [Version("1.0"), Version("1.1")]
    assert index_releases("demo", "3.11", url) == [Version("1.0"), Version("1.2")]
    with pytest.raises(UserError, match="give them with --versions"):
        index_releases("nothing-here", "3.7", url)


def test_a_derived_environment_holds_the_good_rows_pins_and_moves_what_the_rule_says():
    matrix = load_matrix(REAL)
    good = matrix.environment("torch-1.0")
    derived = derive_environment(good, "torch", "1.2.0", matrix.bisect["torchvision"])
    pins = dict(line.split("==") for line in derived.packages)
    assert pins["torch"] == "1.2.0" and pins["torchvision"] == "0.4.0"
    assert {k: v for k, v in pins.items() if k not in ("torch", "torchvision")} == \
        {k: v for k, v in (line.split("==") for line in good.packages) if k not in ("torch", "torchvision")}
    assert derived.name == "bisect-torch-1.2.0-from-torch-1.0" and derived.python == good.python
    mx = derive_environment(matrix.environment("mxnet-1.5"), "mxnet", "1.7.0.post1", matrix.bisect["gluoncv"])
    assert differing_packages(matrix.environment("mxnet-1.5"), mx) == ["mxnet 1.5.1.post0 -> 1.7.0.post1"]


@pytest.mark.parametrize("args, message", [
    (["--good", "mxnet-1.5", "--bad", "mxnet-9"], "no environment 'mxnet-9'"),
    (["--good", "mxnet-1.5", "--bad", "torch-1.0"], "torch-1.0 is a torchvision row, not gluoncv"),
    (["--good", "mxnet-1.5", "--bad", "mxnet-1.9", "--package", "nvidia-ml-py"],
     "both pin nvidia-ml-py==13.615.71: nothing to bisect in it; the rows differ in: python 3.7 -> 3.9"),
    (["--good", "mxnet-1.5", "--bad", "mxnet-1.9", "--versions", "1.6,x.y"], "expected versions separated"),
])
def test_bad_bisect_input_is_one_message_and_exit_2(tmp_path, capsys, args, message):
    sample = tmp_path / "val"
    sample.mkdir()
    code = main(["bisect", "--matrix", str(REAL), "--framework", "gluoncv", "--model", "resnet50", "--suite",
                 "throughput", "--results-dir", str(tmp_path / "r"), "--reports-dir", str(tmp_path / "p")] + args,
                out=io.StringIO())
    assert code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_bisect_names_the_mxnet_release_where_outputs_stop_being_bit_identical(tmp_path):
    from .conftest import sample_dir

    sample = sample_dir()
    if sample is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    out = io.StringIO()
    args = ["bisect", "--matrix", str(REAL), "--framework", "gluoncv", "--good", "mxnet-1.5", "--bad", "mxnet-1.9",
            "--model", "resnet50", "--suite", "drift", "--imagenet", str(sample), "--versions",
            "1.5.1.post0,1.6.0,1.7.0.post1,1.8.0.post0,1.9.1", "--results-dir", str(tmp_path / "results"),
            "--reports-dir", str(tmp_path / "reports"), "--run", "b"]
    assert main(args, out=out) == 0
    answer = json.loads(next((tmp_path / "reports" / "b").glob("bisect-*.json")).read_text())
    assert (answer["last_good"], answer["first_bad"], answer["adjacent"]) == ("1.6.0", "1.7.0.post1", True)
    assert "mxnet 1.6.0 is the last good release and 1.7.0.post1 the first bad one" in out.getvalue()
    assert "pillow 6.2.2 -> 11.3.0" in answer["conclusion"]  # the rows differ in more than MXNet
    assert {p["version"]: p["outcome"] for p in answer["probes"]}["1.6.0"] == "good"
    # a second bisect reuses every stored cell: nothing runs again
    stored = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "b").glob("*.json")}
    again = io.StringIO()
    assert main(args, out=again) == 0 and "0 environments built" in again.getvalue()
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "b").glob("*.json")} == stored
