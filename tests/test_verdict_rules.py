"""The verdict rules (runner/verdicts/decide.py) at their boundaries, on evidence made from known counts and
trial rates: a real but negligible accuracy change is "same"; too few trials never give "no change"; one test
that could not be made does not blank the others' q-values; a near tie broken by rounding is no changed
prediction."""

import math

import numpy as np
import pytest

from runner.matrix.schema import CompareSettings
from runner.verdicts.decide import drift_verdict, error_verdict, smallest_p, throughput_verdict
from runner.verdicts.drift import compare_pair
from runner.verdicts.stats import adjust, hodges_lehmann_ratio, mcnemar_exact, paired_difference_interval

SETTINGS = CompareSettings()


def error_evidence(both, only_before, only_after, neither):
    """As runner/verdicts/evidence.py makes it: `only_before` images right before only, and so on."""
    n = both + only_before + only_after + neither
    low, high = paired_difference_interval(both, only_before, only_after, neither)
    top1 = {"error_before": 100.0 * (only_after + neither) / n, "error_after": 100.0 * (only_before + neither) / n,
            "difference_points": 100.0 * (only_before - only_after) / n, "interval_points": [-high, -low],
            "right_before_only": only_before, "right_after_only": only_after,
            "p_value": mcnemar_exact(only_before, only_after)}
    return {"images": n, "changed_top1_class": only_before + only_after, "top1": top1,
            "weights": {"same": True, "before": {"source": "file"}, "after": {"source": "file"}}}


def throughput_evidence(before, after):
    ratio, interval, reached, p = hodges_lehmann_ratio(before, after)
    return {"ratio": ratio, "interval": list(interval), "confidence": reached, "p_value": p,
            "trials": [len(before), len(after)], "images_per_s": [before[0], after[0]]}


def test_a_significant_change_inside_the_margin_is_same():
    """6 of 50,000 images lost, none gained: McNemar p = 0.031, but the whole interval is within 0.02 points."""
    evidence = error_evidence(40000, 6, 0, 9994)
    assert evidence["top1"]["p_value"] == pytest.approx(2 * 0.5 ** 6)
    low, high = evidence["top1"]["interval_points"]
    assert -SETTINGS.error_margin_points <= low < high <= SETTINGS.error_margin_points
    assert error_verdict(evidence, evidence["top1"]["p_value"], SETTINGS)[0] == "same"


def test_a_significant_change_beyond_the_margin_is_worse_and_an_unclear_one_inconclusive():
    worse = error_evidence(40000, 400, 100, 9500)  # +0.6 points
    assert error_verdict(worse, worse["top1"]["p_value"], SETTINGS)[0] == "worse"
    better = error_evidence(40000, 100, 400, 9500)
    assert error_verdict(better, better["top1"]["p_value"], SETTINGS)[0] == "better"
    unclear = error_evidence(200, 5, 2, 93)  # +1.5 points on 300 images: p = 0.45
    verdict, text = error_verdict(unclear, unclear["top1"]["p_value"], SETTINGS)
    assert verdict == "inconclusive" and "images would decide" in text


@pytest.mark.parametrize("per_side", [1, 2, 3])
def test_too_few_trials_are_inconclusive_even_with_equal_rates(per_side):
    """With 1 trial a side the interval is a point (0% confidence); 2 and 3 hold 67% and 90%."""
    evidence = throughput_evidence([100.0 + i for i in range(per_side)], [100.0 + i for i in range(per_side)])
    assert evidence["confidence"] < 0.95
    verdict, text = throughput_verdict(evidence, evidence["p_value"], 1.25, 0.05)
    assert verdict == "inconclusive"
    assert "{0}+{0} trials cannot reach p < 0.05 or a 95% interval".format(per_side) in text


def test_four_trials_a_side_can_decide_both_ways():
    slower = throughput_evidence([100.0, 101, 102, 103], [50.0, 51, 52, 53])
    assert slower["p_value"] == pytest.approx(2 / 70) and slower["confidence"] >= 0.95
    assert throughput_verdict(slower, slower["p_value"], 1.25, 0.05)[0] == "slower"
    same = throughput_evidence([100.0, 101, 102, 103], [100.5, 101.5, 102.5, 103.5])
    assert throughput_verdict(same, same["p_value"], 1.25, 0.05)[0] == "no change"


def test_the_smallest_p_value_trials_can_give():
    assert smallest_p(3, 3) == pytest.approx(0.1)
    assert smallest_p(4, 4) == pytest.approx(2 / 70)
    assert smallest_p(5, 5) == pytest.approx(2 / 252)
    assert smallest_p(1, 1) == 1.0 and smallest_p(0, 5) == 1.0
    for n1, n2 in ((3, 3), (4, 4), (3, 5), (2, 6)):  # what scipy's exact test gives on fully separated samples
        assert smallest_p(n1, n2) == pytest.approx(hodges_lehmann_ratio(range(1, n1 + 1),
                                                                       range(100, 100 + n2))[3])


def test_a_test_that_could_not_be_made_leaves_the_others_q_values_alone():
    q = adjust([1e-12, 0.3, float("nan")], "bh")
    assert q[0] == pytest.approx(2e-12) and q[1] == pytest.approx(0.3) and math.isnan(q[2])
    q = adjust([0.01, None, 0.04], "holm")
    assert q[0] == pytest.approx(0.02) and math.isnan(q[1]) and q[2] == pytest.approx(0.04)
    assert all(math.isnan(v) for v in adjust([float("nan")], "bh"))


def test_a_published_number_just_outside_the_interval_differs_alone_but_not_among_many_checks():
    """24.45 % reproduced on 50,000 images against a published 24.00: outside the 95% interval (binomial
    p = 0.02); among ten checks whose others reproduce, the false-discovery adjustment keeps it from `differs`."""
    from types import SimpleNamespace

    from runner.verdicts.decide import published_verdict
    from runner.verdicts.evidence import published_evidence

    n, errors = 50000, 12225
    result = {"metrics": {"images_evaluated": n, "top1_correct": n - errors, "top1_error": 100.0 * errors / n,
                          "top5_error": 7.0}}
    published = SimpleNamespace(top1_error=24.0, top5_error=7.0, source="s", revision="r")
    evidence = published_evidence(result, published, 0.5)
    low, high = evidence["interval"]
    assert not low <= 24.0 <= high and 0.01 < evidence["p_value"] < 0.05
    assert published_verdict(evidence, "pretrained", evidence["p_value"], 0.05, 1)[0] == "differs"
    q = adjust([evidence["p_value"]] + [1.0] * 9, "bh")[0]
    verdict, text = published_verdict(evidence, "pretrained", q, 0.05, 10)
    assert verdict == "inconclusive" and "over 10 published checks" in text and "not after the false-discovery" in text
    far = published_evidence(dict(result, metrics=dict(result["metrics"], top1_correct=n - 13500,
                                                       top1_error=27.0)), published, 0.5)
    assert published_verdict(far, "pretrained", adjust([far["p_value"]] + [1.0] * 39, "bh")[0], 0.05, 40)[0] == \
        "differs"


def _drift_record(reference, candidate):
    return dict(compare_pair(reference, candidate, "logits"), status="ok", inputs_identical=True,
                weights_identical=True)


def test_a_near_tie_broken_within_the_tolerance_is_numerically_close_and_a_real_flip_is_not():
    """Image 0's two best classes are 1e-5 apart; the candidate moves each by at most 2e-5 (inside 1e-4 x the
    scale of 10), which swaps them: numerically close, with the one changed image said. A swap of classes 2
    apart is a changed prediction."""
    reference = np.zeros((4, 6), np.float32)
    reference[:, 0] = 10.0
    reference[0, 1] = 10.0 - 1e-5
    near = reference.copy()
    near[0, 0] -= 1e-5
    near[0, 1] += 1e-5
    record = _drift_record(reference, near)
    assert record["top1_changed"] == 1 and record["max_abs_diff"] <= 1e-4 * record["reference_scale"]
    verdict, text = drift_verdict(record, 1e-4)
    assert verdict == "numerically close"
    assert "top-1 changed on 1 of 4 images" in text and "near ties, classes within twice the tolerance" in text
    far = reference.copy()
    far[2, 0], far[2, 3] = 8.0, 10.0
    verdict, text = drift_verdict(_drift_record(reference, far), 1e-4)
    assert verdict == "predictions changed" and "top-1 changed on 1 of 4 images" in text
    assert drift_verdict(_drift_record(reference, near), 0.0)[0] == "predictions changed"


def test_an_interval_that_disagrees_with_the_exact_test_is_said():
    """7 images right before only against 1 after only, of 30: the exact McNemar p = 2 x 9 / 256 = 0.070, while
    Newcombe's interval excludes 0. The verdict follows the test, and says so; 12 against 0 agree."""
    edge = error_evidence(10, 7, 1, 12)
    low, high = edge["top1"]["interval_points"]
    assert edge["top1"]["p_value"] == pytest.approx(2 * 9 / 256) and (low > 0 or high < 0)
    verdict, text = error_verdict(edge, edge["top1"]["p_value"], SETTINGS)
    assert verdict == "inconclusive" and "the 95% interval and the exact test at 5% disagree at this edge" in text
    clear = error_evidence(10, 12, 0, 8)
    verdict, text = error_verdict(clear, clear["top1"]["p_value"], SETTINGS)
    assert verdict == "worse" and "disagree" not in text
