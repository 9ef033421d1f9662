import pytest

from runner.stats import wilson_interval


def test_wilson_interval_contains_the_estimate_and_narrows_with_n():
    low, high = wilson_interval(24, 100)
    assert low < 24 < high
    wide = wilson_interval(6, 25)
    assert wide[1] - wide[0] > high - low


def test_wilson_interval_at_the_edges():
    low, high = wilson_interval(30, 30)
    assert high == pytest.approx(100.0) and 85 < low < 100
    assert wilson_interval(0, 30)[0] == pytest.approx(0.0)
    assert wilson_interval(0, 0) is None


def test_wilson_interval_known_value():
    # 50 errors in 100: centre 50%, half-width 1.96 * sqrt(.25/100) / (1 + 1.96^2/100) ~ 9.4 points.
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(40.38, abs=0.02) and high == pytest.approx(59.62, abs=0.02)


@pytest.mark.parametrize("total", [1, 7, 30, 200, 1000, 50000])
def test_wilson_interval_holds_exactly_0_and_100_at_the_edges(total):
    """Compared with `low <= published`: rounding left 1.7e-16 above 0 % on 200 images, so an official recipe
    with no error against reference labels (published 0 %) was not inside its own interval."""
    assert wilson_interval(0, total)[0] == 0.0 and wilson_interval(total, total)[1] == 100.0
    assert wilson_interval(0, total)[1] > 0.0 and wilson_interval(total, total)[0] < 100.0
