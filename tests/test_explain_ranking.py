"""The statistics, ranking and verdict of `runner explain`, against known values and simulated predictions."""

import pytest

from runner.explain.ranking import mcnemar_p, rank, read_predictions, variant_stats, verdict
from runner.matrix.schema import CompareSettings
from runner.probe.explain_pairs import OFFICIAL
from runner.verdicts.stats import mcnemar_exact


def test_exact_mcnemar_known_values():
    assert mcnemar_p(0, 5) == pytest.approx(2 * 0.5 ** 5)  # 0.0625
    assert mcnemar_p(1, 9) == pytest.approx(2 * (1 + 10) / 1024.0)  # 0.021484375
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(4, 4) == 1.0
    for a, b in ((3, 11), (7, 2), (20, 35)):  # statsmodels and the verdicts' scipy binomial test agree
        assert mcnemar_p(a, b) == pytest.approx(mcnemar_exact(a, b))


def simulate(n, wrong, label=7):
    """{file: (label, top5)} with the top-1 wrong on the images in `wrong` (top-5 right on every other one)."""
    rows = {}
    for i in range(n):
        top = [label + 1, label + 2, label + 3, label + 4, label + 5] if i in wrong else [label, 1, 2, 3, 4]
        rows["img{:03d}.JPEG".format(i)] = (label, top)
    return rows


META = {"interpolation=bicubic": {"axis": "interpolation", "description": "bicubic interpolation",
                                  "changes": {"interpolation": "bicubic"}},
        "channel_order=BGR": {"axis": "channel_order", "description": "BGR channel order",
                              "changes": {"channel_order": "BGR"}},
        "interpolation=bicubic + channel_order=BGR": {"axis": "interpolation + channel_order", "description": "both",
                                                      "parts": ["interpolation=bicubic", "channel_order=BGR"],
                                                      "changes": {}}}


def simulated_run():
    """200 images: official wrong on 0-59 (30 %); bicubic fixes 0-9 and breaks 60-61 (26 %); BGR wrong on
    0-119 (60 %); the pair wrong on 0-79 (40 %)."""
    return {OFFICIAL: simulate(200, set(range(60))),
            "interpolation=bicubic": simulate(200, set(range(10, 62))),
            "channel_order=BGR": simulate(200, set(range(120))),
            "interpolation=bicubic + channel_order=BGR": simulate(200, set(range(80)))}


def test_variant_numbers_against_the_official_recipe():
    runs = simulated_run()
    stats = variant_stats(runs[OFFICIAL], runs["interpolation=bicubic"], sorted(runs[OFFICIAL]))
    assert stats["images"] == 200 and stats["top1_errors"] == 52 and stats["top1_error"] == 26.0
    low, high = stats["top1_interval"]
    assert low == pytest.approx(20.41, abs=0.005) and high == pytest.approx(32.49, abs=0.005)  # Wilson, 52/200: hand-computed
    assert stats["top5_errors"] == 52 and stats["top5_interval"] == stats["top1_interval"]
    paired = stats["vs_official"]
    assert (paired["right_variant_only"], paired["right_official_only"]) == (10, 2)
    assert paired["p_value"] == pytest.approx(mcnemar_exact(2, 10))
    assert paired["top1_points"] == -4.0 and paired["top1_interval"][0] < -4.0 < paired["top1_interval"][1]
    assert paired["top1_agreement"] == pytest.approx(1 - 12 / 200.0)


def test_ranked_by_distance_to_the_published_number_and_the_variant_inside_is_named():
    ranked = rank(simulated_run(), META, {"top1_error": 23.85, "top5_error": 7.13})
    assert [e["name"] for e in ranked] == ["interpolation=bicubic", OFFICIAL,
                                           "interpolation=bicubic + channel_order=BGR", "channel_order=BGR"]
    best = ranked[0]
    assert best["top1_inside"] and best["top1_distance"] == pytest.approx(26.0 - 23.85)
    assert not ranked[1]["top1_inside"]  # official 30 %: 95% CI 24.1-36.6 misses 23.85
    assert all("q_value" in e["vs_official"] for e in ranked if e["name"] != OFFICIAL)
    status, text = verdict(ranked, {"top1_error": 23.85, "top5_error": 7.13}, "pretrained", "published")
    assert status == "explained"
    assert text.startswith("the variant interpolation=bicubic (bicubic interpolation) brings the reproduced top-1 "
                           "error to 26.00 % (95% CI 20.41-32.49), whose interval holds the published 23.85")
    assert "official recipe: 30.00 %" in text


def test_a_pair_can_be_the_answer_and_ties_go_to_the_simpler_variant():
    runs = simulated_run()
    runs["interpolation=bicubic + channel_order=BGR"] = simulate(200, set(range(20)))  # 10 %
    runs["interpolation=bicubic"] = simulate(200, set(range(40)))  # 20 %
    ranked = rank(runs, META, {"top1_error": 10.0, "top5_error": None})
    assert ranked[0]["name"] == "interpolation=bicubic + channel_order=BGR" and ranked[0]["axes"] == 2
    assert ranked[0]["top5_distance"] is None
    status, text = verdict(ranked, {"top1_error": 10.0, "top5_error": None}, "pretrained", "published")
    assert status == "explained" and text.startswith("the pair interpolation=bicubic + channel_order=BGR")
    # equal distance: the single-axis variant before the pair
    runs["interpolation=bicubic"] = simulate(200, set(range(20)))
    assert rank(runs, META, {"top1_error": 10.0})[0]["name"] == "interpolation=bicubic"


def test_no_gap_only_where_the_official_interval_resolves_one():
    """As `compare`: 200 images hold 30 % to +-6.3 points, which cannot resolve a 0.5-point gap."""
    runs = simulated_run()
    ranked = rank(runs, META, {"top1_error": 30.0})
    status, text = verdict(ranked, {"top1_error": 30.0}, "pretrained", "published")
    assert status == "inconclusive"
    assert text.startswith("the official recipe's top-1 error 30.00 % (95% CI 24.07-36.68) holds the published "
                           "30.00, but on 200 images its interval is +-6.3 points, too wide to resolve a 0.5-point "
                           "gap: about 32269 images would")
    status, text = verdict(ranked, {"top1_error": 30.0}, "pretrained", "published", CompareSettings(resolve_points=7))
    assert status == "no gap" and "already reproduces" in text and "1 variant(s) are inside it as well" in text
    # against reference labels an interval that holds 0 % is an official recipe that gets every image right
    labelled = {OFFICIAL: simulate(200, set()), "interpolation=bicubic": simulate(200, {1, 2})}
    assert verdict(rank(labelled, META, {"top1_error": 0.0}), {"top1_error": 0.0}, "random", "labels")[0] == "no gap"


def test_a_variant_inside_that_the_images_cannot_tell_from_the_official_recipe_is_inconclusive():
    """Official 30 % (CI 24.07-36.68) just misses 23.85; a variant fixing 2 images (29 %) is just inside, but
    McNemar on 2 discordant images cannot tell it from the official recipe."""
    runs = {OFFICIAL: simulate(200, set(range(60))), "interpolation=bicubic": simulate(200, set(range(2, 60)))}
    published = {"top1_error": 23.85}
    ranked = rank(runs, META, published)
    assert ranked[0]["top1_inside"] and not ranked[1]["top1_inside"]
    status, text = verdict(ranked, published, "pretrained", "published")
    assert status == "inconclusive"
    assert text.startswith("the variant interpolation=bicubic (bicubic interpolation) brings the reproduced top-1 "
                           "error to 29.00 % (95% CI 23.15-35.64), whose interval holds the published 23.85, but on "
                           "200 images it cannot be told from the official recipe")
    assert "exact McNemar p=0.5, q=0.5" in text and "images would decide" in text


def test_not_explained():
    runs = simulated_run()
    published = {"top1_error": 5.0, "top5_error": 1.0}
    status, text = verdict(rank(runs, META, published), published, "pretrained", "published")
    assert status == "not explained"
    assert text.startswith("no variant brings the reproduced top-1 error inside the published number's interval: "
                           "the closest, interpolation=bicubic, reaches 26.00 %")
    status, text = verdict(rank(runs, META, published), published, "random", "published")
    assert text.startswith("weights are random, not the published ones")
    # planted labels: random weights are the point, no caveat
    status, text = verdict(rank(runs, META, published), published, "random", "labels")
    assert not text.startswith("weights are")


def test_without_a_published_number_the_largest_moves_come_first():
    ranked = rank(simulated_run(), META, None)
    assert [e["name"] for e in ranked] == [OFFICIAL, "channel_order=BGR", "interpolation=bicubic + channel_order=BGR",
                                           "interpolation=bicubic"]
    assert "top1_distance" not in ranked[0]
    assert verdict(ranked, None, "pretrained", "published")[0] == "no published number"


def test_only_images_every_variant_saw_are_compared(tmp_path):
    runs = simulated_run()
    del runs["channel_order=BGR"]["img000.JPEG"]
    ranked = rank(runs, META, None)
    assert {e["images"] for e in ranked} == {199}
    path = tmp_path / "explain_predictions.csv"
    path.write_text("variant,file,label,top1,top2,top3,top4,top5\nofficial,a.JPEG,3,3,1,2,4,5\n"
                    "x,a.JPEG,3,1,3,2,4,5\n")
    assert read_predictions(str(path)) == {OFFICIAL: {"a.JPEG": (3, [3, 1, 2, 4, 5])},
                                           "x": {"a.JPEG": (3, [1, 3, 2, 4, 5])}}
