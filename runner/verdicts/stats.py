"""The statistics behind the verdicts, each a pure function tested against known values.

Error suite (paired: the same images through two versions): the exact McNemar test on the
discordant images, and Newcombe's hybrid-score interval for the difference of two paired
proportions (Newcombe 1998, Statistics in Medicine 17:2635, method 10), which stays sound at
0% and 100% where a Wald interval collapses. Throughput (a few timed trials per version): the
Hodges-Lehmann shift of the log rates with its exact Mann-Whitney interval, so no
distribution is assumed and the confidence actually reached is reported when too few trials
cannot reach the one asked for.
"""

import math
from itertools import product

import numpy as np
from scipy import stats as sps

from ..stats import Z95, wilson_interval


def mcnemar_exact(only_a, only_b):
    """Two-sided exact McNemar p-value from the discordant counts (A right / B wrong, and the reverse)."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    return float(sps.binomtest(min(only_a, only_b), discordant, 0.5).pvalue)


def binomial_p(errors, n, rate):
    """Two-sided exact binomial p-value of `errors` in `n` against the error rate `rate` (0 to 1)."""
    rate = min(max(rate, 0.0), 1.0)
    return float(sps.binomtest(errors, n, rate).pvalue)


def paired_difference_interval(both, only_a, only_b, neither, z=Z95):
    """95% interval (percentage points) of rate_B - rate_A for paired binary outcomes.

    `both`/`neither`: images where A and B agree (both 1 / both 0); `only_a`: 1 for A only.
    """
    n = both + only_a + only_b + neither
    if n == 0:
        return None
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = (v / 100 for v in wilson_interval(both + only_a, n, z))
    l2, u2 = (v / 100 for v in wilson_interval(both + only_b, n, z))
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    theta = p2 - p1
    lower = math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    upper = math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return 100 * max(-1.0, theta - lower), 100 * min(1.0, theta + upper)


def mcnemar_sample_size(difference, discordant_rate, alpha=0.05, power=0.8):
    """Images needed for a two-sided McNemar test at `alpha` to detect `difference` (a proportion)
    with `power`, when a share `discordant_rate` of images changes its outcome (Connor 1987)."""
    difference = abs(difference)
    discordant_rate = max(discordant_rate, difference)
    if difference == 0:
        return None
    za, zb = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    root = za * math.sqrt(discordant_rate) + zb * math.sqrt(max(0.0, discordant_rate - difference ** 2))
    return int(math.ceil(root ** 2 / difference ** 2))


def equivalence_sample_size(difference, discordant_rate, margin, alpha=0.05, power=0.8):
    """Images needed for the 1 - alpha interval of a paired difference to fall inside +-`margin` with `power`,
    when the true difference is `difference` and a share `discordant_rate` of images changes its outcome (all
    proportions; normal approximation, Chow, Shao & Wang 2003, section 3.2): the smallest n where
    P(|estimate| < margin - z se) = power, both tails counted, so at a true difference of 0 it takes
    z(1 - (1 - power) / 2). None where |difference| >= margin: no number of images shows that."""
    room = margin - abs(difference)
    if room <= 0:
        return None
    variance, z = max(discordant_rate - difference ** 2, 1e-12), sps.norm.ppf(1 - alpha / 2)

    def reached(n):
        se = math.sqrt(variance / n)
        return sps.norm.cdf(room / se - z) + sps.norm.cdf((margin + abs(difference)) / se - z) - 1

    low, high = 1, 2
    while reached(high) < power:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if reached(middle) < power else (low, middle)
    return high


def images_to_resolve(gap_points, error_pct, z=Z95):
    """Images for which a 95% interval around `error_pct` is +-`gap_points` wide (normal approximation)."""
    p = min(max(error_pct / 100, 0.01), 0.99)
    return int(math.ceil((z / (gap_points / 100)) ** 2 * p * (1 - p)))


def _mann_whitney_null_cdf(n1, n2):
    """P(U <= u) for u = 0 .. n1*n2 under the null, by counting arrangements (exact, small samples)."""
    size = n1 * n2 + 1
    # counts[j, u]: arrangements of i values of sample 1 and j of sample 2 with U = u; one i at a time, so memory
    # is (n2 + 1) x (n1 n2 + 1), not n1 times that (100 trials a side: 8 MB, not 0.8 GB)
    counts = np.zeros((n2 + 1, size))
    counts[:, 0] = 1
    for _ in range(1, n1 + 1):
        previous, counts = counts, np.zeros((n2 + 1, size))
        counts[0, 0] = 1
        for j in range(1, n2 + 1):
            # the largest value belongs to sample 1 (adds j to U) or to sample 2 (adds nothing)
            counts[j, j:] += previous[j, :size - j]
            counts[j] += counts[j - 1]
    dist = counts[n2]
    return np.cumsum(dist) / dist.sum()


def hodges_lehmann_ratio(before, after, confidence=0.95):
    """after/before as a ratio of rates: the Hodges-Lehmann estimate on log rates, its exact
    Mann-Whitney interval and the exact two-sided p-value.

    Returns (ratio, (low, high), confidence reached, p-value). With few trials the interval is
    the widest one (all pairwise differences) and `confidence reached` says what it holds.
    """
    a, b = np.log(np.asarray(before, float)), np.log(np.asarray(after, float))
    n1, n2 = len(a), len(b)
    diffs = np.sort([y - x for x, y in product(a, b)])
    cdf = _mann_whitney_null_cdf(n1, n2)
    tail = (1 - confidence) / 2
    # k: the number of pairwise differences cut from each end; P(U <= k - 1) <= tail
    k = int(np.searchsorted(cdf, tail, side="right"))
    k = max(k, 1)
    reached = 1 - 2 * cdf[k - 1]
    low, high = diffs[k - 1], diffs[len(diffs) - k]
    return float(math.exp(np.median(diffs))), (float(math.exp(low)), float(math.exp(high))), float(reached), \
        mann_whitney_p(a, b)


def mann_whitney_p(before, after):
    """The two-sided Mann-Whitney p-value, twice the smaller tail (as scipy's exact method says it). scipy's
    "exact" method counts the null distribution of untied ranks: with ties (trials that timed alike, a coarse
    clock) its p-value is too small (0.114 where 6/35 = 0.171 is right for 1,1,2,2 against 2,2,3,3), and the
    tie-corrected normal approximation is too small with few distinct values, so tied samples get the exact
    distribution of their mid-rank sum (_tied_rank_sum_p)."""
    pooled = np.concatenate([before, after])
    if not np.all(np.isfinite(pooled)):
        return float("nan")  # a rate that is no number: no test (adjust() leaves it out of the family)
    if len(np.unique(pooled)) == len(pooled):
        return float(sps.mannwhitneyu(after, before, alternative="two-sided", method="exact").pvalue)
    return _tied_rank_sum_p(pooled, len(after))


def _tied_rank_sum_p(pooled, n_after):
    """The exact two-sided p-value of the sum of the last `n_after` trials' mid-ranks, over every way to choose
    which trials are "after": counted one group of tied values at a time (taking k of a group of t adds k times
    its mid-rank, in C(t, k) ways), with ranks doubled so they are whole numbers."""
    doubled = np.rint(2 * sps.rankdata(pooled)).astype(int)
    observed = int(doubled[len(pooled) - n_after:].sum())
    values, sizes = np.unique(pooled, return_counts=True)
    ranks = [int(doubled[pooled == value][0]) for value in values]
    top = int(doubled.sum())
    ways = np.zeros((n_after + 1, top + 1))  # ways[k, s]: choices of k trials whose doubled ranks sum to s
    ways[0, 0] = 1.0
    for size, rank in zip(sizes, ranks):
        grown = np.zeros_like(ways)
        for k in range(min(size, n_after) + 1):
            grown[k:, k * rank:] += math.comb(size, k) * ways[:n_after + 1 - k, :top + 1 - k * rank]
        ways = grown
    sums = ways[n_after]
    total = sums.sum()
    upper, lower = sums[observed:].sum() / total, sums[:observed + 1].sum() / total
    return float(min(1.0, 2 * min(upper, lower)))


def adjust(p_values, method="bh"):
    """p-values adjusted for multiple comparisons: Benjamini-Hochberg (false-discovery rate) or Holm. A p-value
    that is not a number (a test that could not be made) stays NaN and is left out of the family: statsmodels'
    BH would carry it into every q-value and hide each real finding."""
    if not p_values:
        return []
    from statsmodels.stats.multitest import multipletests

    finite = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    adjusted = [float("nan")] * len(p_values)
    if finite:
        method = {"bh": "fdr_bh", "holm": "holm"}[method]
        for i, q in zip(finite, multipletests([p_values[i] for i in finite], method=method)[1]):
            adjusted[i] = float(q)
    return adjusted
