"""The drift suite's second half: each version loads the checkpoints its older versions wrote.

A load cell's id is its own environment's content plus the sha256 of the checkpoint file it
reads, and nothing else: no names, no order, no list of other versions. So a new row, a
bisect step or a reordering re-runs no comparison already measured, and a writer that produced
a different file (a changed older environment) is a different load. Loads are planned after the
writers have run, since the file's digest is only known then.
"""

from dataclasses import replace

from .plan import drift_writer_cells, cell_id, drift_content, version_order


def load_cell(loader, origin_env, origin_result, store):
    """The cell in which `loader` (a writer drift cell) reads the checkpoint of `origin_result`."""
    sha256 = origin_result["metrics"]["checkpoint"]["sha256"]
    weights = {"source": "checkpoint", "sha256": sha256}
    common = {"device": loader.device, "threads": loader.threads, "seed": loader.seed, "engine": loader.engine}
    content = dict(drift_content(loader.environment, loader.variant, loader.params, loader.dataset, common),
                   weights=weights)
    checkpoint = {"origin": origin_env, "cell_id": origin_result["cell_id"], "sha256": sha256,
                  "path": str(store.root / origin_result["files"]["checkpoint"])}
    return replace(loader, id=cell_id(content), weights=weights, checkpoint=checkpoint)


def plan_drift_loads(matrix, cells, store):
    """For every writer drift cell in `cells`, a load of each older version's checkpoint that `store` holds.

    The older versions are the matrix's rows of the same framework (filtered out of this run or
    not); one whose writer has no ok result yet has nothing to load, and its own result says why.
    """
    loads, planned = [], set()
    for loader, env, writer in _pairs(matrix, cells):
        result = store.get(writer.id)
        if result is not None and result["status"] == "ok":
            load = load_cell(loader, env.name, result, store)
            if load.id not in planned:  # versions that wrote bit-identical files share one load
                planned.add(load.id)
                loads.append(load)
    return loads


def anticipated_loads(matrix, cells, todo_ids):
    """Before the writers run: one stand-in per load this run will likely add, for the progress's
    time left. A load is new when its loader or the writer it reads runs now; the stand-in is
    the loader's own cell (a load evaluates what its writer evaluates). An upper bound: a writer
    that fails, or two that write the same file, make fewer."""
    return [loader for loader, env, writer in _pairs(matrix, cells)
            if loader.id in todo_ids or writer.id in todo_ids]


def _pairs(matrix, cells):
    """(loader, older environment, that environment's writer cell) for every writer drift cell in `cells`."""
    for loader in cells:
        if loader.suite != "drift" or loader.checkpoint is not None or loader.skip_reason:
            continue
        common = {"device": loader.device, "threads": loader.threads, "seed": loader.seed, "engine": loader.engine}
        writers = drift_writer_cells(matrix, loader.dataset, None, common)
        for env in version_order(matrix, loader.environment.framework):
            if env.name == loader.environment.name:
                break
            writer = writers.get((env.name, loader.model.key))
            if writer is not None:
                yield loader, env, writer
