"""Where cells run: one interface (run cells, store their results), one module per executor."""

from .local import LocalExecutor

EXECUTORS = {"local": LocalExecutor}
