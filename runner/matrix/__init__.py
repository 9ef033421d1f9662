"""matrix.toml, validated once: frozen types in schema.py, the reader in load.py.

The names other modules import live here, so `from runner.matrix import load_matrix` does not
depend on which file of the package holds what.
"""

from .load import load_matrix
from .schema import (FDR_METHODS, NAME, PRECISIONS, PROBE_NEEDS, PYTHON, SCHEMA, SHA256, SUITES, WEIGHT_SOURCES,
                     BisectRule, CompareSettings, Defaults, DockerSettings, DriftSuite, Engine, Environment, ErrorSuite,
                     Matrix, Model, Preprocess, Published, SlurmSettings, ThroughputSuite, Variant, WeightsFile)

__all__ = [
    "load_matrix", "SCHEMA", "SUITES", "WEIGHT_SOURCES", "NAME", "PYTHON", "SHA256", "PROBE_NEEDS", "PRECISIONS",
    "Preprocess", "Published", "WeightsFile", "Variant", "Model", "Environment", "ErrorSuite", "ThroughputSuite",
    "DriftSuite", "Defaults", "Engine", "DockerSettings", "FDR_METHODS", "CompareSettings", "BisectRule", "SlurmSettings",
    "Matrix",
]
