"""Small matrix files for tests, written from the project's real matrix.toml."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "matrix.toml"


def write_matrix(folder, replace=(), append="", suites=None):
    """Copy matrix.toml into `folder` with textual replacements (each must apply) and extra text."""
    text = REAL.read_text()
    for old, new in replace:
        assert old in text, "test setup: {!r} not in matrix.toml".format(old)
        text = text.replace(old, new, 1)
    if suites is not None:
        start, end = text.index("[suites.error]"), text.index("# ----")
        text = text[:start] + suites + "\n" + text[end:]
    path = Path(folder) / "matrix.toml"
    path.write_text(text + append)
    return path


# Small, quick suites for the end-to-end tests (real cells on CPU).
FAST_SUITES = """
[suites.error]
batch_size = 8
limit = 0
timeout_s = 900

[suites.throughput]
batch_sizes = [1, 2]
warmup = 1
trials = 2
iterations = 3
timeout_s = 900

[suites.drift]
images = 6
batch_size = 4
timeout_s = 900
"""
