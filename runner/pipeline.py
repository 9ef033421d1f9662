"""The whole pipeline, in one place:

    load matrix -> plan cells -> ensure environment -> run cell -> store result -> judge -> report

Every failure after planning becomes a stored result (status "failed" with a reason and a
duration); the other cells go on. Only bad input stops the run, and it stops it before
anything is built.
"""

import concurrent.futures
import os
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .backends import get_backend
from .backends.base import EnvironmentBuildError, default_cache_home
from .backends.process import tail
from .verdicts.drift import compare_versions
from .verdicts.judge import judge
from .errors import UserError
from .gpus import annotate_throughput
from .matrix import load_matrix
from .plan import plan_cells, resolve_auto_weights
from .probe import PROBE_VERSION, RESULT_SCHEMA_VERSION
from .probe.timestamps import now_iso
from .probe.jsonio import read_json, write_json_atomic
from .progress import Progress
from .report import write_report
from .results import ResultStore


@dataclass(frozen=True)
class RunSettings:
    matrix_path: Path
    backend: str
    run_name: str  # None: "<backend>-<device>"
    results_dir: Path
    reports_dir: Path
    force: bool = False
    retry_failed: bool = False
    env_dir: str = None
    ignore_pins: bool = False
    docker: dict = None  # DockerOptions fields from the command line (ca_bundle, wheelhouse, ...)
    gpus: tuple = ()  # host GPU indices given to the matrix (--gpus): one cell at a time on each
    jobs: int = 1  # CPU cells at once (--jobs)


@dataclass(frozen=True)
class RunSummary:
    total: int
    ran: int
    reused: int
    counts: dict
    report_dir: Path

    @property
    def failed(self):
        return self.counts.get("failed", 0)


def run_matrix(settings, options, out):
    say = lambda line: out.write(line + "\n")  # noqa: E731
    matrix = load_matrix(settings.matrix_path)
    options = resolve_auto_weights(matrix, options, say)
    if settings.backend == "docker" and not (options.weights_cache or matrix.defaults.weights_cache):
        # A container's own cache would vanish with it: downloads happen once per host instead.
        options = replace(options, weights_cache=os.path.join(default_cache_home(), "weights"))
    cells = plan_cells(matrix, options)
    slots = make_slots(settings, cells[0].device if cells else "cpu")
    backend = get_backend(settings.backend, matrix=matrix, env_dir=settings.env_dir, ignore_pins=settings.ignore_pins,
                          docker=_docker_options(settings, cells))
    run_name = settings.run_name or "{}-{}".format(backend.name, cells[0].device.replace(":", ""))
    store = ResultStore(Path(settings.results_dir) / run_name)
    progress = Progress(len(cells), out)

    # Drift cells last, oldest version first: each loads the checkpoints of the versions before it.
    todo = sorted((cell for cell in cells if _needs_run(store.get(cell.id), settings)),
                  key=lambda cell: (cell.suite == "drift", cell.version_rank))
    progress.say("{} cells planned; {} already have results in {}; backend {}".format(
        len(cells), len(cells) - len(todo), store.root, backend.name))
    if todo:
        backend.start(progress.say)
    ready_envs = {}
    interrupted = threading.Event()  # Ctrl-C with cells side by side: the killed ones store nothing

    def stop_all():
        interrupted.set()
        backend.stop_all()

    def run_one(cell, slot):
        number = progress.start(cell, "" if slot is None else " on {}".format(slot.label))
        tick = time.perf_counter()
        if cell.skip_reason:
            result = _host_result(cell, "skipped", cell.skip_reason, tick)
        else:
            ready = ensure_environment(backend, cell.environment, ready_envs, progress)
            if isinstance(ready, EnvironmentBuildError):
                result = _host_result(cell, "failed", ready.reason, tick)
            else:
                result = run_cell(backend, ready, cell, store, slot)
        if interrupted.is_set():
            return
        store.put(result, replace=store.path(cell.id).exists())
        progress.done(cell, result, number)

    ran = len(todo)
    if len(slots) > 1:
        # Several GPUs (or CPU jobs): every environment first, one at a time, then as many cells at
        # once as there are slots, each on its own. Drift cells stay in order, after them.
        for cell in todo:
            if not cell.skip_reason:
                ensure_environment(backend, cell.environment, ready_envs, progress)
        run_in_slots([cell for cell in todo if cell.suite != "drift"], slots, run_one, stop_all)
        todo = [cell for cell in todo if cell.suite == "drift"]
    for cell in todo:
        run_one(cell, slots[0] if slots else None)

    results, problems = store.load_all()
    drift = compare_versions(store, results)
    judgement = judge(matrix, store, results, drift=drift)
    report_dir = write_report(matrix, results, problems, drift, Path(settings.reports_dir) / run_name, run_name,
                              judgement, store.root)
    statuses = {result["cell_id"]: result["status"] for result in results}
    counts = {}
    for cell in cells:
        status = statuses.get(cell.id, "missing")
        counts[status] = counts.get(status, 0) + 1
    progress.say("report: {}".format(report_dir / "report.md"))
    return RunSummary(total=len(cells), ran=ran, reused=len(cells) - ran, counts=counts,
                      report_dir=report_dir)


def _docker_options(settings, cells):
    from .backends.docker import DockerOptions

    return DockerOptions(device=cells[0].device if cells else "cpu", **(settings.docker or {}))


def _needs_run(existing, settings):
    if existing is None or settings.force:
        return True
    return settings.retry_failed and existing.get("status") == "failed"


@dataclass(frozen=True)
class Slot:
    """Where one cell runs while others run beside it: a GPU of its own, or one of N CPU jobs."""

    label: str  # "GPU 2", "job 1"
    gpu: str = None  # the host's GPU index, made the cell's only visible GPU

    def as_dict(self):
        return {"label": self.label, "gpu": self.gpu}


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
            ready_envs[env.name] = backend.prepare(env, progress.say)
        except EnvironmentBuildError as exc:
            progress.say("environment {} failed: {}".format(env.name, exc.reason))
            ready_envs[env.name] = exc
    return ready_envs[env.name]


def run_cell(backend, ready, cell, store, slot=None):
    tick = time.perf_counter()
    work = store.work_dir(cell.id)
    spec_path = work / "spec.json"
    drift = drift_checkpoints(cell, store) if cell.suite == "drift" else None
    write_json_atomic(str(spec_path), cell.spec(str(work), time.time(), drift))
    log_path = store.log_path(cell.id)
    if log_path.exists():
        log_path.unlink()
    run = backend.run_probe(ready, spec_path, log_path, cell.timeout_s, gpu=slot.gpu if slot else None)
    result_path = work / "result.json"
    if run.timed_out:
        result = _host_result(cell, "failed", "timed out after {} s (suites.{}.timeout_s)".format(
            cell.timeout_s, cell.suite), tick)
    elif run.error and not result_path.is_file():
        result = _host_result(cell, "failed", "{} (exit code {}; log: {})".format(run.error, run.returncode, log_path),
                              tick)
    elif not result_path.is_file():
        result = _host_result(cell, "failed", "probe exited with code {} without a result: {}".format(
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
    store.adopt_outputs(result, work)
    return result


def drift_checkpoints(cell, store):
    """The checkpoints a drift cell loads: those the older versions' drift cells wrote, or why one is missing."""
    found = []
    for origin, origin_id in cell.origins:
        entry = {"origin": origin, "cell_id": origin_id}
        result = store.get(origin_id)
        if result is None:
            entry["unavailable"] = "no drift result for {} yet (cell {}); run it in this run too".format(origin, origin_id)
        elif result["status"] != "ok":
            entry["unavailable"] = "{}'s drift cell is {}: {}".format(origin, result["status"], result.get("reason"))
        else:
            entry.update(path=str(store.root / result["files"]["checkpoint"]),
                         sha256=result["metrics"]["checkpoint"]["sha256"])
        found.append(entry)
    return found


def _host_result(cell, status, reason, tick):
    """A result the host writes itself: the cell never ran (skipped, environment failed, probe died)."""
    return {
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
