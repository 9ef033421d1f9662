"""Framework adapters, one module each, chosen by the framework name in matrix.toml.

An adapter is imported only inside its environment (it imports the framework); the host
knows the names alone.
"""

import importlib

ADAPTERS = {
    "gluoncv": "runner.probe.adapters.gluoncv",
    "keras": "runner.probe.adapters.keras",
    "torchvision": "runner.probe.adapters.torchvision",
}


# What a spec without "engine" means, and the defaults of matrix.toml's [engine] (runner/matrix/engine.py reads them here).
DEFAULT_ENGINE = {"precision": "fp32", "channels_last": False, "cudnn_autotune": "default",
                  "deterministic": "default", "xla": "default"}


class Unsupported(Exception):
    """This framework version cannot honour an [engine] setting; the cell is skipped with this reason."""


def load_adapter(framework, device, threads, engine=None):
    if framework not in ADAPTERS:
        raise KeyError("unknown framework {!r}; known: {}".format(framework, ", ".join(sorted(ADAPTERS))))
    return importlib.import_module(ADAPTERS[framework]).Adapter(device, threads, dict(DEFAULT_ENGINE, **(engine or {})))
