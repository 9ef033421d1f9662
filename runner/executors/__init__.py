"""Where cells run: one interface (`run(cells)` -> their results by cell id, `stop_all()`), one module per
executor, chosen by name (run --executor): local.py on this host, slurm.py through a Slurm cluster."""

from ..errors import UserError
from .local import LocalExecutor


def _local(context):
    return lambda progress: LocalExecutor(context["backend"], context["store"], progress, context["slots"])


def _slurm(context):
    from .slurm import open_slurm
    return open_slurm(**context)


EXECUTORS = {
    "local": _local,
    "slurm": _slurm,
}


def open_executor(name, **context):
    """A function progress -> executor. Opening one may check and collect what an earlier run left (Slurm: how
    the jobs a --no-wait run left ended), so it is called with the run lock held, before anything is swept.

    `context`: settings, matrix, backend, store, slots, device, say."""
    if name not in EXECUTORS:
        raise UserError("--executor {}: expected one of {}".format(name, ", ".join(sorted(EXECUTORS))))
    return EXECUTORS[name](context)
