"""[compare] and [bisect.*]: defaults when absent, one message per bad value, and how a rule derives an environment."""

import pytest
from packaging.version import Version

from runner.errors import UserError
from runner.matrix import BisectRule, CompareSettings, load_matrix

from .matrices import REAL, write_matrix

TEXT = REAL.read_text()
COMPARE = TEXT[TEXT.index("[compare]"):TEXT.index("\n\n", TEXT.index("[compare]")) + 1]
BISECT = TEXT[TEXT.index("[bisect.gluoncv]"):]


def test_real_matrix_states_the_defaults_and_pairs_each_torch_with_its_torchvision():
    matrix = load_matrix(REAL)
    assert matrix.compare == CompareSettings()
    assert sorted(matrix.bisect) == ["gluoncv", "keras", "torchvision"]
    assert matrix.bisect["gluoncv"] == BisectRule(framework="gluoncv", package="mxnet")  # 1.5 -> 1.9 holds everything
    assert matrix.bisect["gluoncv"].derive("1.9.1") == (None, ())
    torch = matrix.bisect["torchvision"]
    assert torch.package == "torch"
    pairs = {"1.0.0": "0.2.2.post3", "1.0.1.post2": "0.2.2.post3", "1.1.0": "0.3.0", "1.2.0": "0.4.0",
             "1.3.0": "0.4.1", "1.3.1": "0.4.2", "1.4.0": "0.5.0"}
    for version, torchvision in pairs.items():
        assert torch.derive(version) == (None, ("torchvision==" + torchvision,)), version
    assert matrix.bisect["keras"].derive("2.0.4") == (None, ("keras-applications==1.0.8",))
    assert matrix.bisect["keras"].derive("1.14.0") == (None, ())


def test_absent_tables_mean_the_defaults(tmp_path):
    matrix = load_matrix(write_matrix(tmp_path, replace=((COMPARE, ""), (BISECT, ""))))
    assert matrix.compare == CompareSettings(alpha=0.05, fdr="bh", error_margin_points=0.5, resolve_points=0.5,
                                             throughput_factor_cpu=1.25, throughput_factor_gpu=1.10,
                                             cold_start_factor=1.5, drift_rtol=1e-4, busy_share=0.1)
    assert matrix.bisect == {}


def test_absent_keys_take_their_defaults(tmp_path):
    path = write_matrix(tmp_path, replace=((COMPARE, '[compare]\nfdr = "holm"\nalpha = 0.01\n'),
                                           ('[bisect.gluoncv]\npackage = "mxnet"\n', "[bisect.gluoncv]\n")))
    matrix = load_matrix(path)
    assert matrix.compare == CompareSettings(fdr="holm", alpha=0.01)
    assert matrix.bisect["gluoncv"] == BisectRule(framework="gluoncv", package="gluoncv")  # its version_package


def test_settings_are_frozen():
    matrix = load_matrix(REAL)
    with pytest.raises(Exception):
        matrix.compare.alpha = 0.5
    with pytest.raises(Exception):
        matrix.bisect["torchvision"].package = "torchvision"


@pytest.mark.parametrize("old, new, message", [
    ("alpha = 0.05 ", "alpha = 0 ", r"compare.alpha: expected a number between 0 and 1 \(both excluded\), got 0"),
    ("alpha = 0.05 ", "alpha = 1.0 ", r"compare.alpha: expected a number between 0 and 1"),
    ("alpha = 0.05 ", 'alpha = "0.05" ', r"compare.alpha: expected a number between 0 and 1"),
    ("alpha = 0.05 ", "alpha = nan ", r"compare.alpha: expected a number between 0 and 1"),
    ('fdr = "bh" ', 'fdr = "bonferroni" ', r"compare.fdr: expected \"bh\" \(Benjamini-Hochberg\) or \"holm\""),
    ("error_margin_points = 0.5 ", "error_margin_points = 0 ", r"compare.error_margin_points: expected a positive number"),
    ("resolve_points = 0.5 ", "resolve_points = -0.5 ", r"compare.resolve_points: expected a positive number"),
    ("throughput_factor_cpu = 1.25 ", "throughput_factor_cpu = 0.8 ", r"compare.throughput_factor_cpu: expected a factor of 1 or more"),
    ("throughput_factor_gpu = 1.10 ", "throughput_factor_gpu = inf ", r"compare.throughput_factor_gpu: expected a factor of 1 or more"),
    ("cold_start_factor = 1.5 ", "cold_start_factor = true ", r"compare.cold_start_factor: expected a factor of 1 or more"),
    ("drift_rtol = 1e-4 ", "drift_rtol = -1e-4 ", r"compare.drift_rtol: expected 0 or a positive number"),
    ("drift_rtol = 1e-4 ", "drift_rtol = 1e-4\nalhpa = 0.1 ", r"compare.alhpa: unknown key; expected one of: alpha, busy_share, cold_start_factor"),
    ("[bisect.gluoncv]", "[bisect.mxnet]", r"bisect.mxnet: unknown framework; expected one of: gluoncv, keras, torchvision"),
    ('package = "mxnet"', 'package = "mx net"', r"bisect.gluoncv.package: expected a distribution name"),
    ('package = "mxnet"', 'package = "tensorflow"', r"bisect.gluoncv.package: 'tensorflow' is pinned by no \[environments.\*\] row of gluoncv"),
    ('package = "mxnet"', 'package = "mxnet"\nwith = "numpy==1.16.6"', r"bisect.gluoncv.with: expected an array of tables"),
    ('package = "mxnet"', 'package = "mxnet"\nwith = ["numpy==1.16.6"]', r"bisect.gluoncv.with\[0\]: expected a table"),
    ('package = "mxnet"', 'package = "mxnet"\n[[bisect.gluoncv.python]]\nversions = ">=1.9"\npython = "3"',
     r"bisect.gluoncv.python\[0\].python: expected a Python version such as '3.7', got '3'"),
    ('package = "mxnet"', 'package = "mxnet"\n[[bisect.gluoncv.python]]\npython = "3.9"',
     r"bisect.gluoncv.python\[0\].versions: missing; expected a PEP 440 version range"),
    ('versions = "<1.1"', 'versions = ">=banana"', r"bisect.torchvision.with\[0\].versions: expected a PEP 440 version range"),
    ('versions = "<1.1"', 'versions = ""', r"bisect.torchvision.with\[0\].versions: expected a PEP 440 version range"),
    ('packages = ["torchvision==0.3.0"]', 'packages = ["torchvision>=0.3"]',
     r"bisect.torchvision.with\[1\].packages\[0\]: expected an exact pin 'name==version'"),
    ('packages = ["torchvision==0.3.0"]', 'packages = ["torchvision==0.3.0", "torch==1.1.0"]',
     r"bisect.torchvision.with\[1\].packages: pins the bisected package 'torch' itself"),
    ('packages = ["torchvision==0.3.0"]', 'packages = []', r"bisect.torchvision.with\[1\].packages: expected a non-empty array"),
    ('packages = ["torchvision==0.3.0"]', 'packages = ["torchvision==0.3.0"]\nnote = "x"',
     r"bisect.torchvision.with\[1\].note: unknown key; expected one of: packages, versions"),
])
def test_bad_value_names_file_key_and_expectation(tmp_path, old, new, message):
    path = write_matrix(tmp_path, replace=((old, new),))
    with pytest.raises(UserError, match=r"matrix.toml: " + message):
        load_matrix(path)


def test_python_and_with_rules_are_parsed_in_order(tmp_path):
    rules = ('package = "mxnet"\n'
             '[[bisect.gluoncv.python]]\nversions = ">=1.9"\npython = "3.9"\n'
             '[[bisect.gluoncv.python]]\nversions = ">=1.0"\npython = "3.7"\n'
             '[[bisect.gluoncv.with]]\nversions = ">=1.9"\npackages = ["numpy==1.23.5", "pillow==11.3.0"]\n')
    rule = load_matrix(write_matrix(tmp_path, replace=(('package = "mxnet"', rules),))).bisect["gluoncv"]
    assert rule.python == ((">=1.9", "3.9"), (">=1.0", "3.7"))
    assert rule.moves == ((">=1.9", ("numpy==1.23.5", "pillow==11.3.0")),)
    assert rule.derive("1.9.1") == ("3.9", ("numpy==1.23.5", "pillow==11.3.0"))
    assert rule.derive("1.6.0") == ("3.7", ())


def test_derive_takes_the_first_matching_range_of_each_list():
    rule = BisectRule(framework="torchvision", package="torch",
                      python=((">=1.9", "3.9"), (">=1.0", "3.7")),
                      moves=(("==1.0.*", ("torchvision==0.2.2.post3",)), (">=1.0", ("numpy==1.23.5",))))
    assert rule.derive("1.0.1") == ("3.7", ("torchvision==0.2.2.post3",))  # both moves match: the first wins
    assert rule.derive(Version("1.9.1")) == ("3.9", ("numpy==1.23.5",))  # both Pythons match: the first wins
    assert rule.derive("1.10.0rc1") == ("3.9", ("numpy==1.23.5",))  # a pre-release still gets its rules
    assert rule.derive("0.4.1") == (None, ())  # no range: the good row's Python and pins
