"""Small statistics for the report."""

import math

Z95 = 1.959963984540054


def wilson_interval(errors, total, z=Z95):
    """95% Wilson score interval for an error rate, in percent. Sound at 0% and 100% and for small n."""
    if total <= 0:
        return None
    p = errors / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # At 0 and at every error the bound is exactly 0 % / 100 %, which rounding (1.7e-16 on 200 images) would
    # otherwise move just past a published number of 0 % / 100 %.
    low = 0.0 if errors == 0 else 100 * max(0.0, centre - half)
    high = 100.0 if errors == total else 100 * min(1.0, centre + half)
    return low, high
