"""Small matrix files for tests, written from the project's real matrix.toml."""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "matrix.toml"


def write_matrix(folder, replace=(), append="", suites=None):
    """Copy matrix.toml (and locks/) into `folder` with textual replacements (each must apply) and extra text."""
    text = REAL.read_text()
    for old, new in replace:
        assert old in text, "test setup: {!r} not in matrix.toml".format(old)
        text = text.replace(old, new, 1)
    if suites is not None:
        start, end = text.index("[suites.error]"), text.index("# ----")
        text = text[:start] + suites + "\n" + text[end:]
    path = Path(folder) / "matrix.toml"
    path.write_text(text + append)
    shutil.copytree(ROOT / "locks", Path(folder) / "locks", dirs_exist_ok=True)  # the rows' locks lie beside the matrix
    if "[environments." in append:
        _lock_appended_rows(path)
    return path


def _lock_appended_rows(path):
    """A row a test appends (a broken one: a pin that does not exist) gets a lock of its pins alone, each with
    a hash no file has, so that its build fails in pip as the test means it to, not at planning for want of a
    lock. A row meant to build needs a lock made by runner.locks_resolve.make_lock instead."""
    from runner.errors import UserError
    from runner.locks import DEVICES, lock_path
    from runner.locks_resolve import format_lock
    from runner.matrix import load_matrix

    try:
        matrix = load_matrix(path)
    except UserError:
        return  # the test is about the matrix being refused
    for env in matrix.environments:
        for device in DEVICES:
            target = lock_path(path, env.name, device)
            if not target.exists():
                body = "".join("{} --hash=sha256:{}\n".format(pin, "0" * 64) for pin in env.packages)
                target.write_text(format_lock(env, device, body, "nothing (pins only, written by the test)",
                                              "tests/matrices.py"))


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
