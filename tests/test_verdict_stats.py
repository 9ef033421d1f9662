"""The verdicts' statistics against known values and simulated data."""

import math
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import rankdata
from statsmodels.stats.contingency_tables import mcnemar

from runner.matrix.schema import CompareSettings
from runner.verdicts.changepoints import _error_series, change_points, sequence_verdicts
from runner.verdicts.decide import _images_to_decide, error_verdict
from runner.verdicts.stats import (adjust, equivalence_sample_size, hodges_lehmann_ratio, images_to_resolve,
                                   mann_whitney_p, mcnemar_exact, mcnemar_sample_size, paired_difference_interval)


def test_mcnemar_exact_known_values():
    # 1 vs 9 discordant: 2 * P(X <= 1 | n=10, p=1/2) = 2 * 11 / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)


@pytest.mark.parametrize("b,c", [(3, 17), (40, 61), (0, 12), (250, 200)])
def test_mcnemar_exact_agrees_with_statsmodels(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(mcnemar([[100, b], [c, 100]], exact=True).pvalue)


def test_paired_interval_is_symmetric_for_balanced_discordance_and_excludes_zero_for_a_clear_change():
    low, high = paired_difference_interval(50, 10, 10, 30)
    assert low == pytest.approx(-high)
    low, high = paired_difference_interval(400, 2, 60, 38)  # B right on 58 more images of 500
    assert 0 < low < 100 * 58 / 500 < high


def test_paired_interval_stays_inside_the_possible_range_at_the_extremes():
    low, high = paired_difference_interval(0, 0, 0, 30)  # both versions wrong on every image
    assert -100 <= low < 0 < high <= 100
    low, high = paired_difference_interval(30, 0, 0, 0)
    assert -100 <= low < 0 < high <= 100


def test_paired_interval_covers_the_true_difference_95_percent_of_the_time():
    rng = np.random.RandomState(7)
    # correlated outcomes: P(both)=.6, P(A only)=.08, P(B only)=.04, P(neither)=.28 -> true B-A = -4 points
    probabilities = [0.6, 0.08, 0.04, 0.28]
    truth = 100 * (probabilities[2] - probabilities[1])
    trials, covered = 2000, 0
    for _ in range(trials):
        both, only_a, only_b, neither = rng.multinomial(300, probabilities)
        low, high = paired_difference_interval(both, only_a, only_b, neither)
        covered += low <= truth <= high
    assert 0.93 <= covered / trials <= 0.975


def test_sample_size_connor_known_value():
    # Connor (1987): n = (z_a sqrt(pd) + z_b sqrt(pd - d^2))^2 / d^2 ; pd = 0.1, d = 0.05
    za, zb = 1.959963984540054, 0.8416212335729143
    expected = math.ceil((za * math.sqrt(0.1) + zb * math.sqrt(0.1 - 0.0025)) ** 2 / 0.0025)
    assert mcnemar_sample_size(0.05, 0.1) == expected
    assert mcnemar_sample_size(0.0, 0.1) is None


def test_images_to_resolve_half_a_point_at_a_quarter_error():
    assert images_to_resolve(0.5, 25) == math.ceil((1.959963984540054 / 0.005) ** 2 * 0.25 * 0.75)


def test_hodges_lehmann_exact_interval_and_p_value():
    before = [100, 102, 98, 101, 99]
    after = [80, 82, 79, 81, 78]
    ratio, (low, high), reached, p = hodges_lehmann_ratio(before, after)
    assert p == pytest.approx(2 / 252)  # complete separation of 5 and 5: 2 of the C(10,5) arrangements
    assert reached == pytest.approx(1 - 2 * 4 / 252)  # P(U <= 2) = 4/252 is the tail that fits 2.5%
    assert low <= ratio <= high < 1
    assert ratio == pytest.approx(np.exp(np.median([np.log(b) - np.log(a) for a in before for b in after])))


def test_hodges_lehmann_says_what_three_trials_can_hold():
    _, (low, high), reached, p = hodges_lehmann_ratio([10, 11, 12], [5, 6, 7])
    assert reached == pytest.approx(0.9) and p == pytest.approx(0.1)
    assert high == pytest.approx(7 / 10) and low == pytest.approx(5 / 12)


def test_hodges_lehmann_interval_covers_a_planted_ratio():
    rng = np.random.RandomState(3)
    covered, trials = 0, 400
    for _ in range(trials):
        before = 100 * np.exp(rng.normal(0, 0.05, 7))
        after = 80 * np.exp(rng.normal(0, 0.05, 7))
        _, (low, high), reached, _ = hodges_lehmann_ratio(before, after)
        covered += low <= 0.8 <= high
    assert covered / trials >= 0.93


def test_false_discovery_rate_adjustments_known_values():
    p = [0.01, 0.04, 0.03, 0.2]
    assert adjust(p, "bh") == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    assert adjust(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert adjust([], "bh") == []


def test_change_points_find_a_step_and_no_step_in_noise():
    step = np.array([0.0, 0.01, -0.01, 0.5, 0.51, 0.49])
    assert change_points(step, 0.0004, 0.1) == [(3, 3, pytest.approx(0.5))]
    rng = np.random.RandomState(11)
    false = sum(bool(change_points(rng.normal(0, 0.02, 8), 0.0004, 0.1)) for _ in range(200))
    assert false == 0


def test_a_slow_drift_over_several_releases_is_one_gradual_change():
    found = change_points(np.linspace(0, 1, 8), 0.0004, 0.1)
    assert found == [(1, 7, pytest.approx(1.0))]
    assert change_points(np.linspace(0, 1, 3), 0.0004, 0.1) == []  # fewer than four versions: not judged


def _versions_on_shared_images(tmp_path, correct_by_version):
    """Sides as the judge pairs them (a store and a result each), the same 2,000 images in every version."""
    sides = []
    for k, correct in enumerate(correct_by_version):
        name = "v{}.predictions.csv".format(k)
        with open(str(tmp_path / name), "w") as handle:
            handle.write("file,label,top1,top2,top3,top4,top5\n")
            for i, ok in enumerate(correct):
                handle.write("img{:05d}.JPEG,{},{},7,8,9,10\n".format(i, i % 5, i % 5 if ok else 6))
        metrics = {"top1_error": 100.0 * (1 - np.mean(correct)), "images_evaluated": len(correct)}
        sides.append(SimpleNamespace(store=SimpleNamespace(root=tmp_path), result={
            "status": "ok", "metrics": metrics, "files": {"predictions": name}, "environment": "mxnet-1.{}".format(k),
            "cell_id": "c{}".format(k), "framework": "gluoncv",
            "provenance": {"packages": {"mxnet": "1.{}.0".format(k)}}}))
    return sides


def _error_steps(sides):
    return [v for v in sequence_verdicts({("gluoncv", "resnet50", "error", None): sides}, CompareSettings())
            if v.kind == "sequence"]


def test_an_error_step_along_versions_on_the_same_images_is_found_with_their_paired_variance(tmp_path):
    """A 1-point step between the third and fourth of five versions, each of which also flips 10 images, 5 each
    way: the independent binomial variance (0.94 points^2 at 25% error on 2,000 images) would hide it; the
    variance of the neighbours' paired differences (the images that changed) finds it."""
    rng = np.random.RandomState(5)
    correct = rng.rand(2000) > 0.25
    versions = []
    for k in range(5):
        correct = correct.copy()
        right, wrong = np.flatnonzero(correct), np.flatnonzero(~correct)
        correct[rng.choice(right, 5, replace=False)] = False  # 10 flips, as many each way: the error holds
        correct[rng.choice(wrong, 5, replace=False)] = True
        if k == 3:
            correct[np.flatnonzero(correct)[:20]] = False
        versions.append(correct)
    sides = _versions_on_shared_images(tmp_path, versions)
    values, variance = _error_series(sides)
    changed = [np.sum(a != b) for a, b in zip(versions, versions[1:])]
    assert variance == pytest.approx(1e4 * np.mean(changed) / 2000 ** 2 / 2)
    (first, last, step), = change_points(values, variance, 0.5)
    assert (first, last) == (3, 3) and step == pytest.approx(1.0)
    p = values.mean() / 100
    assert change_points(values, 1e4 * p * (1 - p) / 2000, 0.5) == []  # what the binomial variance gave
    (found,) = _error_steps(sides)
    assert (found.before, found.after) == ("mxnet-1.2", "mxnet-1.3") and "McNemar p=" in found.summary
    sides[2].result["files"] = {}  # predictions missing: the binomial variance stands
    assert _error_series(sides)[1] == pytest.approx(np.mean([1e4 * (v / 100) * (1 - v / 100) / 2000 for v in values]))


def test_an_error_step_the_exact_test_cannot_tell_from_chance_is_no_change_point(tmp_path):
    """1,000 images, errors 25, 25, 25, 25, 25.6: only the last pair changed, 8 images lost against 2 gained.
    PELT with the paired variance calls it a step; McNemar across it says p = 0.109, so it is not reported."""
    rng = np.random.RandomState(2)
    correct = np.zeros(1000, bool)
    correct[rng.choice(1000, 750, replace=False)] = True
    last = correct.copy()
    last[np.flatnonzero(correct)[:8]] = False
    last[np.flatnonzero(~correct)[:2]] = True
    sides = _versions_on_shared_images(tmp_path, [correct] * 4 + [last])
    values, variance = _error_series(sides)
    assert values[-1] - values[0] == pytest.approx(0.6) and change_points(values, variance, 0.5)
    assert mcnemar_exact(8, 2) == pytest.approx(0.109375)
    assert _error_steps(sides) == []


def test_the_exact_mann_whitney_null_is_the_count_of_arrangements():
    """Against enumeration for small samples; at 100 trials a side it is symmetric and fits in memory."""
    import itertools

    from runner.verdicts.stats import _mann_whitney_null_cdf

    for n1, n2 in ((1, 1), (2, 3), (4, 4), (3, 6), (6, 5)):
        us = []
        for chosen in itertools.combinations(range(n1 + n2), n1):  # the ranks sample 1 takes
            us.append(sum(rank - i for i, rank in enumerate(chosen)))  # sample-2 values below each of them
        dist = np.bincount(us, minlength=n1 * n2 + 1)
        assert np.allclose(_mann_whitney_null_cdf(n1, n2), np.cumsum(dist) / dist.sum()), (n1, n2)
    cdf = _mann_whitney_null_cdf(100, 100)
    pmf = np.diff(np.concatenate([[0.0], cdf]))
    assert cdf[-1] == pytest.approx(1.0) and np.allclose(pmf, pmf[::-1])


def _permutation_p(before, after):
    """Every split of the pooled trials, ranked with ties sharing their mean rank: the exact null; two-sided as
    twice the smaller tail."""
    pooled = np.asarray(before + after, float)
    ranks, n1, n2 = rankdata(pooled), len(before), len(after)

    def u_after(indices):
        return ranks[list(indices)].sum() - n2 * (n2 + 1) / 2

    observed = u_after(range(n1, n1 + n2))
    splits = [u_after(chosen) for chosen in combinations(range(n1 + n2), n2)]
    upper = sum(1 for u in splits if u >= observed - 1e-9) / len(splits)
    lower = sum(1 for u in splits if u <= observed + 1e-9) / len(splits)
    return min(1.0, 2 * min(upper, lower))


def test_tied_trials_get_the_permutation_p_value_not_the_untied_one():
    """1,1,2,2 against 2,2,3,3: 6 of the 70 splits are as extreme in each tail (p = 6/35); the untied count says
    0.114. 100,100,101 against 101,102,102,103: 2 of 35 splits in the upper tail (p = 4/35)."""
    before, after = [1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 3.0, 3.0]
    assert mann_whitney_p(np.log(before), np.log(after)) == pytest.approx(6 / 35)
    assert _permutation_p(before, after) == pytest.approx(6 / 35)
    assert _permutation_p([100, 100, 101], [101, 102, 102, 103]) == pytest.approx(4 / 35)
    for before, after in (([5, 5, 5, 5, 6], [6, 6, 6, 6, 7]), ([100, 100, 101], [101, 102, 102, 103])):
        assert mann_whitney_p(np.asarray(before, float), np.asarray(after, float)) == \
            pytest.approx(_permutation_p(before, after))
    assert hodges_lehmann_ratio(before, after)[3] == pytest.approx(_permutation_p(before, after))
    # untied: the exact distribution of ranks, as before
    assert mann_whitney_p(np.log([1.0, 2, 3]), np.log([4.0, 5, 6])) == pytest.approx(0.1)


def test_tied_trials_on_two_levels_get_the_hypergeometric_p_value():
    """11 trials a side timed at two levels (a coarse clock): 0 of 11 high before, 4 of 11 after. The number of
    high trials after is hypergeometric: P(X >= 4) = C(18, 7) / C(22, 11); the normal approximation says 0.035."""
    before, after = np.ones(11), np.array([1.0] * 7 + [2.0] * 4)
    assert mann_whitney_p(before, after) == pytest.approx(2 * math.comb(18, 7) / math.comb(22, 11))


def test_one_trial_against_many_tied_ones():
    """The one trial is equally likely to be any of the 83: 3 of them are at least as high."""
    assert mann_whitney_p(np.array([3.0]), np.array([1.0] * 80 + [3.0] * 2)) == pytest.approx(2 * 3 / 83)
    assert mann_whitney_p(np.array([5.0]), np.array([5.0])) == 1.0 and mann_whitney_p(np.ones(30), np.ones(30)) == 1.0
    assert math.isnan(mann_whitney_p(np.array([1.0, np.nan, np.nan]), np.array([2.0, 3.0])))


def test_many_tied_trials_get_the_exact_p_value_that_random_splits_approach():
    """12 + 12 trials rounded to whole images/s: 2.7 million splits, counted through the tied groups; 20,000
    random splits come within 0.01."""
    rng = np.random.RandomState(3)
    before, after = np.round(rng.normal(100, 2, 12)), np.round(rng.normal(101, 2, 12))
    assert len(set(before) | set(after)) < 24
    ranks = rankdata(np.concatenate([before, after]))
    u_after = ranks[12:].sum() - 12 * 13 / 2
    shuffled = np.array([rng.permutation(ranks)[12:].sum() - 12 * 13 / 2 for _ in range(20000)])
    sampled = min(1.0, 2 * min(np.mean(shuffled >= u_after - 1e-9), np.mean(shuffled <= u_after + 1e-9)))
    assert mann_whitney_p(before, after) == pytest.approx(sampled, abs=0.01)


def test_equivalence_sample_size_known_value_and_none_beyond_the_margin():
    # at a true difference of 0 both tails count alike: (z.975 + z.9)^2 * 0.02 / 0.005^2
    # = (1.95996 + 1.28155)^2 * 800 = 8,405.9
    assert equivalence_sample_size(0.0, 0.02, 0.005) == 8406
    assert equivalence_sample_size(0.001, 0.02, 0.005) == equivalence_sample_size(-0.001, 0.02, 0.005)
    assert equivalence_sample_size(0.005, 0.02, 0.005) is None and equivalence_sample_size(0.01, 0.02, 0.005) is None


@pytest.mark.parametrize("difference", [0.0, 0.001, 0.0025])
def test_equivalence_sample_size_gives_an_interval_inside_the_margin_four_times_in_five(difference):
    """Simulated paired outcomes with a true difference of 0, 0.1 and 0.25 points and 2% discordant images: at
    the size it gives, Newcombe's interval falls inside +-0.5 points about 80% of the time."""
    discordant, margin = 0.02, 0.005
    n = equivalence_sample_size(difference, discordant, margin)
    rng = np.random.RandomState(11)
    p_after_only, p_before_only = (discordant + difference) / 2, (discordant - difference) / 2
    inside = 0
    trials = 400
    for _ in range(trials):
        both_right, only_before, only_after, neither = rng.multinomial(
            n, [0.75 - p_before_only, p_before_only, p_after_only, 0.25 - p_after_only])
        low, high = paired_difference_interval(both_right, only_before, only_after, neither)
        inside += -100 * margin <= low and high <= 100 * margin
    assert 0.72 <= inside / trials <= 0.88


def test_an_unclear_difference_inside_the_margin_says_how_many_images_would_show_same():
    only_before, only_after, n = 12, 10, 1000  # 0.2 points on 1,000 images: interval about +-0.9
    low, high = paired_difference_interval(n - 250 - only_before, only_before, only_after, 250 - only_after)
    evidence = {"images": n, "changed_top1_class": 22, "weights": {"same": True},
                "top1": {"error_before": 26.0, "error_after": 26.2, "difference_points": 0.2,
                         "interval_points": [-high, -low], "right_before_only": only_before,
                         "right_after_only": only_after, "p_value": mcnemar_exact(only_before, only_after)}}
    verdict, text = error_verdict(evidence, evidence["top1"]["p_value"], CompareSettings())
    assert verdict == "inconclusive"
    assert "about {} images would show whether it is within +-0.5 points (same)".format(
        equivalence_sample_size(0.002, 0.022, 0.005)) in text


def test_two_versions_that_agreed_on_a_small_subset_are_not_promised_same_with_fewer_images():
    """200 images, none changed, 25% error: the interval is about +-0.9 points, so inconclusive. The count that
    would decide takes at least three changed images, and is never fewer than the images already evaluated."""
    n = 200
    low, high = paired_difference_interval(150, 0, 0, 50)
    assert high > 0.5
    evidence = {"images": n, "changed_top1_class": 0, "weights": {"same": True},
                "top1": {"error_before": 25.0, "error_after": 25.0, "difference_points": 0.0,
                         "interval_points": [-high, -low], "right_before_only": 0, "right_after_only": 0,
                         "p_value": 1.0}}
    verdict, text = error_verdict(evidence, 1.0, CompareSettings())
    assert verdict == "inconclusive"
    needed = equivalence_sample_size(0.0, 3 / 200, 0.005)
    assert needed > 200 and "about {} images would show whether it is within +-0.5 points (same)".format(
        needed) in text
    # where the approximation asks for fewer than were evaluated, it does not promise them
    evidence.update(images=10000)
    evidence["top1"].update(right_before_only=2, right_after_only=1)
    assert equivalence_sample_size(0.0, 3 / 10000, 0.005) < 10000
    assert _images_to_decide(evidence, CompareSettings()) == \
        "more than the 10000 images evaluated would show whether it is within +-0.5 points (same)"
