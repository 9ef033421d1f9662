"""The preprocessing recipes exactly as matrix.toml states them, for the probe tests.

Read with tomllib (3.11+) or tomli (the probe's Python 3.7 environments), so a wrong number
in matrix.toml fails the comparison with each framework's helper.
"""

import os

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from runner.probe.preprocess import Recipe

MATRIX = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "matrix.toml")


def recipe(name):
    with open(MATRIX, "rb") as handle:
        table = dict(tomllib.load(handle)["preprocess"][name])
    table.pop("source")
    return Recipe.from_dict(table)


def sample_images(sample):
    return sorted(str(p) for p in (sample / "images").iterdir())
