"""The whole pipeline, in one place:

    load matrix -> plan cells -> check the GPU -> ensure environment -> run cell -> store result -> judge
    -> explain the published numbers that differ (--explain) -> report

Every failure after planning becomes a stored result (status "failed" with a reason and a
duration); the other cells go on. Only bad input stops the run, and it stops it before
anything is built.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .backends import get_backend
from .backends.base import default_cache_home
from .drift_plan import anticipated_loads, plan_drift_loads
from .executors import open_executor
from .explain.gaps import explain_gaps, explanations
from .executors.local import make_slots, one_at_a_time
from .gpu_check import check_gpu
from .matrix import load_matrix
from .plan import plan_cells, resolve_auto_weights
from .prefill import planned as planned_prefills
from .progress import Progress, counted, past_durations, plan_table
from .report import write_report
from .results import FAILED, ResultStore
from .storage import run_lock
from .verdicts.drift import compare_versions
from .verdicts.judge import judge


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
    executor: str = "local"  # where cells run: runner/executors/__init__.py EXECUTORS (--executor)
    no_wait: bool = False  # slurm: return once the cells are submitted (--no-wait)
    slurm: dict = None  # [slurm] settings from the command line (partition, account, qos, sbatch_args)
    show_plan: bool = False  # print the plan before running it (make matrix: the plan shown is the plan run)
    explain: bool = False  # explain each error cell that differs from its published number (--explain)


@dataclass(frozen=True)
class RunSummary:
    total: int
    ran: int
    reused: int
    counts: dict
    report_dir: Path  # with --no-wait and cells left running: where the report will be, not yet written
    submitted: int = 0  # --no-wait: cells left running in Slurm

    @property
    def failed(self):
        return sum(self.counts.get(status, 0) for status in FAILED)


def run_matrix(settings, options, out):
    say = lambda line: out.write(line + "\n")  # noqa: E731
    matrix = load_matrix(settings.matrix_path)
    options = resolve_auto_weights(matrix, options, say)
    if settings.backend == "docker" and not (options.weights_cache or matrix.defaults.weights_cache):
        # A container's own cache would vanish with it: downloads happen once per host instead.
        options = replace(options, weights_cache=os.path.join(default_cache_home(), "weights"))
    cells = plan_cells(matrix, options)
    # A build that cannot run on this GPU (or a host with no GPU driver): incompatible, now.
    cells = check_gpu(cells, settings.backend, say, executor=settings.executor)
    device = cells[0].device if cells else "cpu"
    slots = make_slots(settings, device)
    if settings.show_plan:
        prefills = settings.executor == "local" and one_at_a_time(slots)  # where they run (runner/prefill.py)
        for line in plan_table(cells, planned_prefills(cells) if prefills else {}):
            say(line)
    backend = get_backend(settings.backend, matrix=matrix, env_dir=settings.env_dir, ignore_pins=settings.ignore_pins,
                          docker=_docker_options(settings, cells))
    run_name = settings.run_name or "{}-{}".format(backend.name, cells[0].device.replace(":", ""))
    store = ResultStore(Path(settings.results_dir) / run_name, say)
    # One runner per results folder: a second one would delete this one's work folders and replace its results.
    with run_lock(store.root, "run", say):
        # Slurm: how the jobs of an earlier --no-wait run ended is recorded first, and none may still be running.
        make_executor = open_executor(settings.executor, settings=settings, matrix=matrix, backend=backend,
                                      store=store, slots=slots, device=device, say=say)
        store.sweep_work()  # scratch folders of earlier attempts whose processes are provably gone
        todo = [cell for cell in cells if _needs_run(store.get(cell.id), settings)]
        estimates = past_durations(settings.results_dir, [cell.id for cell in cells])
        with Progress(len(todo), out, estimates, slots=len(slots) or 1) as progress:
            executor = make_executor(progress)
            progress.say("{} planned; {}; backend {}".format(counted(len(cells), "cell"),
                                                              _stored_text(cells, todo, store, settings), backend.name))
            progress.plan(todo)
            progress.expect(anticipated_loads(matrix, cells, {cell.id for cell in todo}))
            left = len(todo) - len(executor.run(todo))  # cells without a result yet: --no-wait leaves them in Slurm
            if settings.no_wait and left:
                return _left_running(cells, left, Path(settings.reports_dir) / run_name)
            # Then each version loads the checkpoints its older versions wrote (known only now).
            loads = plan_drift_loads(matrix, cells, store)
            load_todo = [cell for cell in loads if _needs_run(store.get(cell.id), settings)]
            progress.add(len(load_todo), past_durations(settings.results_dir, [cell.id for cell in load_todo]))
            progress.plan(load_todo)
            if loads:
                progress.say("{} drift loads planned; {} already have results".format(
                    len(loads), len(loads) - len(load_todo)))
            left = len(load_todo) - len(executor.run(load_todo))
            if settings.no_wait and left:
                return _left_running(cells + loads, left, Path(settings.reports_dir) / run_name)
        cells += loads
        ran = len(todo) + len(load_todo)

        results, problems = store.load_all()
        drift = compare_versions(store, results)
        judgement = judge(matrix, store, results, drift=drift)
        unexplained = explain_gaps(matrix, judgement, results, settings.backend, settings.env_dir,
                                   settings.reports_dir, say) if settings.explain else {}
        report_dir = write_report(matrix, results, problems, drift, Path(settings.reports_dir) / run_name, run_name,
                                  judgement, store.root,
                                  explanations(judgement, results, settings.reports_dir, unexplained))
    statuses = {result["cell_id"]: result["status"] for result in results}
    counts = {}
    for cell in cells:
        status = statuses.get(cell.id, "missing")
        counts[status] = counts.get(status, 0) + 1
    return RunSummary(total=len(cells), ran=ran, reused=len(cells) - ran, counts=counts,
                      report_dir=report_dir)


def _left_running(cells, left, report_dir):
    """--no-wait: `left` cells run on in Slurm; every other cell has a result (earlier, or made here)."""
    return RunSummary(total=len(cells), ran=0, reused=len(cells) - left, counts={}, report_dir=report_dir,
                      submitted=left)


def _docker_options(settings, cells):
    from .backends.docker import DockerOptions

    return DockerOptions(device=cells[0].device if cells else "cpu", **(settings.docker or {}))


def _stored_text(cells, todo, store, settings):
    """'3 already have results in DIR', or under --force '3 have results in DIR and run again (--force)'."""
    if settings.force:
        stored = sum(1 for cell in cells if store.get(cell.id) is not None)
        return "{} {} results in {}{}".format(stored, "has" if stored == 1 else "have", store.root, "" if not stored
                                              else " and {} again (--force)".format("runs" if stored == 1 else "run"))
    reused = len(cells) - len(todo)
    return "{} already {} results in {}".format(reused, "has" if reused == 1 else "have", store.root)


def _needs_run(existing, settings):
    if existing is None or settings.force or existing["status"] in ("interrupted", "incompatible"):
        return True
    return settings.retry_failed and existing["status"] in FAILED
