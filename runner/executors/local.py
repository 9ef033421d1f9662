"""The local executor: cells run on this host, one at a time or side by side in slots
(a GPU each with --gpus, or --jobs N on the CPU); each cell's outcome is a stored result.

    ensure environment (once per run) -> write the spec -> run the probe -> read or make the result
"""

import concurrent.futures
import queue
import time
from dataclasses import dataclass

from ..backends.base import EnvironmentBuildError
from ..backends.process import tail
from ..errors import UserError
from ..gpus import annotate_throughput
from ..prefill import Prefiller
from ..probe import PROBE_VERSION, RESULT_SCHEMA_VERSION
from ..probe.jsonio import read_json
from ..probe.timestamps import now_iso
from ..results import OWNER_FILE
from ..storage import StorageError, write_json


INTERRUPTED = "stopped by Ctrl-C or SIGTERM before it ended; it runs again in the next run"


class LocalExecutor:
    """Runs cells through one backend into one result store; environments are built once per executor."""

    def __init__(self, backend, store, progress, slots=()):
        self.backend, self.store, self.progress, self.slots = backend, store, progress, slots
        self.ready_envs = {}
        self.started = False

    def stop_all(self):
        self.backend.stop_all()  # the running cells' threads then store them as interrupted

    def run(self, cells):
        """Run `cells` (those that need it: the caller decides); returns their results by cell id."""
        if cells and not self.started:
            self.backend.start(self.progress.say)
            self.started = True
        results = {}
        if not one_at_a_time(self.slots):
            # Every environment first, one at a time, then as many cells at once as there are slots.
            for cell in cells:
                if not (cell.skip_reason or cell.incompatible):
                    ensure_environment(self.backend, cell.environment, self.ready_envs, self.progress)
            run_in_slots(cells, self.slots, lambda cell, slot: self._one(cell, slot, results), self.stop_all)
        else:
            # One cell at a time: the cores a cell reading the crop cache leaves idle may decode a later recipe's.
            prefills = Prefiller(cells, self.backend, self.store, self.ready_envs, self.progress.say)
            stopping = True
            try:
                for cell in cells:
                    prefills.before(cell)
                    self._one(cell, self.slots[0] if self.slots else None, results)
                stopping = False
            finally:
                prefills.close(stopping)
        return results

    def _one(self, cell, slot, results):
        number = self.progress.start(cell, "" if slot is None else " on {}".format(slot.label))
        ready, result = prepared(self.backend, cell, self.ready_envs, self.progress)
        if result is not None:
            store_result(self.store, result, None, self.progress.say)
        else:
            result = attempt(self.backend, self.store, ready, cell, slot, self.progress.say,
                             on_interrupt=lambda stored: self.progress.done(cell, stored, number))
        results[cell.id] = result
        self.progress.done(cell, result, number)

    def _store(self, result, work):
        store_result(self.store, result, work, self.progress.say)


def prepared(backend, cell, ready_envs, progress):
    """(its ready environment, None) for a cell that can run; (None, the host's result) for one that cannot:
    skipped by the plan, or its environment failed to build."""
    tick = time.perf_counter()
    if cell.skip_reason:
        return None, host_result(cell, "skipped", cell.skip_reason, tick)
    if cell.incompatible:  # runner/gpu_check.py: its build cannot run on this GPU; nothing is built for it
        return None, host_result(cell, "incompatible", cell.incompatible, tick)
    ready = ensure_environment(backend, cell.environment, ready_envs, progress)
    if isinstance(ready, EnvironmentBuildError):
        return None, host_result(cell, "failed", ready.reason, tick)
    return ready, None


def attempt(backend, store, ready, cell, slot, say, on_interrupt=None):
    """One attempt at `cell` in a scratch folder of its own, its result stored; returns the result.

    Ctrl-C or SIGTERM (its processes are gone: run_logged killed them) stores it as interrupted, tells
    `on_interrupt`, and goes on up. Used by the local executor and by each Slurm job (slurm_cells.py)."""
    tick = time.perf_counter()
    work = store.new_attempt(cell.id)
    try:
        result = run_cell(backend, ready, cell, store, work, slot)
    except KeyboardInterrupt:
        result = host_result(cell, "interrupted", INTERRUPTED, tick)
        store_result(store, result, work, say)
        if on_interrupt is not None:
            on_interrupt(result)
        raise
    store_result(store, result, work, say)
    return result


def store_result(store, result, work, say):
    """Store a computed result; where the run folder cannot take it, keep it in the unsaved folder instead of
    losing it (hours of evaluation), say where, and go on: the next `get` reads it from there."""
    try:
        if work is not None:
            store.adopt_outputs(result, work)
        store.put(result, replace=store.path(result["cell_id"]).exists())
    except StorageError as exc:
        try:
            kept = store.put_unsaved(result, work)
        except StorageError as second:
            raise StorageError("{}; keeping it elsewhere failed too: {}; the result of {} is lost".format(
                exc, second, result["cell_id"])) from second
        say("{}\n  the result is kept in {}; it is read from there (not computed again) and moved "
            "into {} once that can be written".format(exc, kept, store.root))


@dataclass(frozen=True)
class Slot:
    """Where one cell runs while others run beside it: a GPU of its own, or one of N CPU jobs."""

    label: str  # "GPU 2", "job 1"
    gpu: str = None  # the host's GPU index, made the cell's only visible GPU

    def as_dict(self):
        return {"label": self.label, "gpu": self.gpu}


def one_at_a_time(slots):
    """Whether the local executor runs its cells one after another (and a crop cache prefill beside them)."""
    return len(slots) <= 1


def make_slots(settings, device):
    if settings.gpus:
        if device != "cuda":
            raise UserError("--gpus {} needs --device cuda (each cell then gets one of these GPUs), not {}".format(
                ",".join(settings.gpus), device))
        return tuple(Slot("GPU {}".format(gpu), gpu) for gpu in settings.gpus)
    if settings.jobs > 1:
        if device != "cpu":
            raise UserError("--jobs is for CPU runs; with --device {} give the GPUs with --gpus".format(device))
        return tuple(Slot("job {}".format(n + 1)) for n in range(settings.jobs))
    return ()


def run_in_slots(cells, slots, run_one, stop_all):
    """Each cell runs holding one slot; a slot is handed to the next cell when its cell ends.

    On Ctrl-C the cells not started are dropped and `stop_all` kills the running ones (whose
    threads then clean up after them as usual), so the interrupt does not wait for them."""
    free = queue.Queue()
    for slot in slots:
        free.put(slot)

    def hold(cell):
        slot = free.get()
        try:
            run_one(cell, slot)
        finally:
            free.put(slot)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(slots))
    try:
        for future in [pool.submit(hold, cell) for cell in cells]:
            future.result()  # a bug in a cell's thread surfaces here, not silently
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_all()
        raise
    finally:
        pool.shutdown(wait=True)


def ensure_environment(backend, env, ready_envs, progress):
    """Build (or reuse) each environment once per run; a failed build is remembered, not retried per cell."""
    if env.name not in ready_envs:
        try:
            ready_envs[env.name] = backend.prepare(env, progress)
        except EnvironmentBuildError as exc:
            progress.say("environment {} failed: {}".format(env.name, exc.reason))
            ready_envs[env.name] = exc
    return ready_envs[env.name]


def run_cell(backend, ready, cell, store, work, slot=None):
    """Run one attempt at `cell` in scratch folder `work`; the result (its side files still in `work`)."""
    tick = time.perf_counter()
    spec_path = work / "spec.json"
    write_json(spec_path, cell.spec(str(work), time.time()), flag="--results-dir")
    log_path = store.log_path(cell.id)
    if log_path.exists():
        log_path.unlink()
    run = backend.run_probe(ready, spec_path, log_path, cell.timeout_s, gpu=slot.gpu if slot else None,
                            owner_lock=work / OWNER_FILE)
    result_path = work / "result.json"
    if run.timed_out:
        result = host_result(cell, "timeout", "timed out after {} s (suites.{}.timeout_s); all its processes were "
                             "ended".format(cell.timeout_s, cell.suite), tick)
    elif run.interrupted:
        result = host_result(cell, "interrupted", INTERRUPTED, tick)
    elif run.out_of_memory:
        result = host_result(cell, "out_of_memory", "{} ([defaults] memory_limit in the matrix; log: {})".format(
            run.error, log_path), tick)
    elif run.error and not result_path.is_file():
        result = host_result(cell, "failed", "{} (exit code {}; log: {})".format(run.error, run.returncode, log_path),
                             tick)
    elif not result_path.is_file():
        result = host_result(cell, "failed", "probe exited with code {} without a result: {}".format(
            run.returncode, tail(log_path, 3) or "(no output)"), tick)
    else:
        result = read_json(str(result_path))
        annotate_throughput(result, cell.model)
    result["provenance"] = dict(result.get("provenance") or {})
    result["provenance"]["runner"] = {
        "backend": backend.name,
        "environment": ready.provenance,
        "environment_reused": ready.reused,
        "pins": list(cell.environment.packages),
        "slot": slot.as_dict() if slot else None,
        "probe_exit_code": run.returncode,
        "probe_wall_s": run.duration_s,
        "log": str(log_path),
        "weights_requested": cell.weights,
    }
    _mark_drift_load(result, cell)
    return result


def host_result(cell, status, reason, tick):
    """A result the host writes itself: the cell never ran (skipped, incompatible, environment failed, probe died)."""
    result = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "probe_version": PROBE_VERSION,
        "cell_id": cell.id,
        "suite": cell.suite,
        "environment": cell.environment.name,
        "framework": cell.environment.framework,
        "model": cell.model.key,
        "status": status,
        "reason": reason,
        "metrics": None,
        "started_at": now_iso(time.time() - (time.perf_counter() - tick)),
        "ended_at": now_iso(),
        "duration_s": time.perf_counter() - tick,
        "provenance": {"pins": list(cell.environment.packages), "cell": cell.as_dict()},
    }
    _mark_drift_load(result, cell)
    return result


def _mark_drift_load(result, cell):
    """A load of another version's checkpoint is its own position in the run: (environment, model, origin)."""
    if cell.checkpoint:
        result["drift_origin"] = cell.checkpoint["origin"]
        result["drift_checkpoint"] = cell.checkpoint["sha256"]
