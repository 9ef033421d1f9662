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


def load_adapter(framework, device, threads):
    if framework not in ADAPTERS:
        raise KeyError("unknown framework {!r}; known: {}".format(framework, ", ".join(sorted(ADAPTERS))))
    return importlib.import_module(ADAPTERS[framework]).Adapter(device, threads)
