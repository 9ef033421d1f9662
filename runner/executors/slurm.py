"""The Slurm executor (`run --executor slurm`): each cell one element of a Slurm job array.

    build environments here -> write the cells file -> sbatch --array -> poll sacct -> each element's result

Environments are built (or reused) on this host, once per row, before anything is submitted: the
venv backend's environments lie on the shared filesystem and every node runs the very files built
here (a build job per row would only add a queue wait before the cells' own). Cells that share a
time limit (a suite's) share one array; each element runs `python -m runner cell` on its node
(slurm_cells.py), which writes the result into results/<run>/ itself, exactly as a local run does.
This host holds the run lock meanwhile, polls sacct, shows progress, and turns an element that
ended without a result (time limit, memory, cancelled, node failure) into a result with Slurm's
reason. With --no-wait it returns once the arrays are submitted; the next run collects them.
"""

import math
import os
import time
from dataclasses import replace

from ..errors import UserError
from .local import prepared, store_result
from .slurm_cells import (ended_result, folder, job_command, job_label, pack_backend, read_cells, read_jobs,
                          cell_of, write_cells, write_jobs)
from .slurm_jobs import (array_spec, cancel, check_slurm, elements, max_array_size, sbatch_command, slurm_time,
                         submit)

ACCOUNTING_LAG_S = 300  # an element unknown to sacct and squeue this soon after sbatch may still be on its way
SLURM_RETRIES = 10  # looks at the jobs in a row that may fail before the host stops following them
RUNNER_MEMORY_MB = 1024  # the job's own runner and the guard, beside the cell's processes ([defaults] memory_limit)


def open_slurm(settings, matrix, backend, store, slots, device, say):
    """Check that Slurm answers, collect what jobs of an earlier --no-wait run left (refusing while any still
    runs), and return progress -> SlurmExecutor. Called with the run lock held, before anything is swept."""
    if device.startswith("cuda:"):
        raise UserError("--device {}: on Slurm each cell gets one GPU of its node (--gres=gpu:1), its only "
                        "visible one; use --device cuda".format(device))
    check_slurm()
    overrides = dict(settings.slurm or {})
    extra = tuple(overrides.pop("sbatch_args", ()))
    options = replace(matrix.slurm, sbatch_args=matrix.slurm.sbatch_args + extra,
                      **{key: value for key, value in overrides.items() if value})
    collect_earlier(store, say)
    return lambda progress: SlurmExecutor(backend, store, progress, options, device, settings.no_wait)


def collect_earlier(store, say):
    """Record how the elements of arrays not yet collected ended (a --no-wait run, a host that died waiting)."""
    records = read_jobs(store)
    waiting = [record for record in records if not record["collected"]]
    if not waiting:
        return
    seen = elements({record["job_id"] for record in waiting})
    live = sorted(element.name for element in seen.values() if element.live)
    for record in waiting:  # known to neither sacct nor squeue yet: only just submitted
        if time.time() - record["submitted_epoch"] < ACCOUNTING_LAG_S and len(
                [key for key in seen if key[0] == record["job_id"]]) < record["cells"]:
            live.append("{}_*".format(record["job_id"]))
    if live:
        raise UserError("{}: Slurm jobs of this run are still pending or running ({}{}); wait for them (`.venv/bin/"
                        "dlmatrix status --run {}` shows them) or cancel them (scancel {}), then run again".format(
                            store.root, ", ".join(live[:5]), " and {} more".format(len(live) - 5) if len(live) > 5
                            else "", store.root.name, " ".join(sorted({r["job_id"] for r in waiting}))))
    for record in waiting:
        for entry in read_cells(record["cells_file"])["cells"]:
            element = seen.get((record["job_id"], entry["index"]))
            if element is None:
                say("Slurm job {}_{} is unknown to sacct and squeue; {} runs again if it has no result".format(
                    record["job_id"], entry["index"], entry["label"]))
                continue
            cell = cell_of(entry)[0]
            result = ended_result(store, cell, element, say)
            while result is None:  # COMPLETED a moment ago: its result may still be on its way here
                time.sleep(5)
                result = ended_result(store, cell, element, say)
            say("{} ({}): Slurm job {} ended {}; result {}".format(entry["label"], cell.id, element.name,
                                                                   element.state, result["status"]))
        record["collected"] = True
    write_jobs(store, records)


class SlurmExecutor:
    """Runs cells as Slurm array elements into one result store; environments are built here, once per executor."""

    def __init__(self, backend, store, progress, options, device, no_wait=False):
        self.backend, self.store, self.progress, self.options = backend, store, progress, options
        self.device, self.no_wait = device, no_wait
        self.ready_envs = {}
        self.packed_backend = None
        self.live = set()  # job ids submitted here and not yet collected: Ctrl-C cancels them

    def stop_all(self):
        if self.live:
            cancel(self.live)
            self.progress.say("cancelled Slurm job{} {} (their cells run again in the next run; --no-wait leaves "
                              "jobs running instead)".format("s" if len(self.live) > 1 else "", " ".join(self.live)))

    def run(self, cells):
        """Run `cells` (those that need it: the caller decides); returns their results by cell id (with --no-wait,
        only those settled here: skipped, environment failed)."""
        if not cells:
            return {}
        if self.packed_backend is None:
            self.packed_backend = pack_backend(self.backend)  # before start: a started one holds connections
            self.backend.start(self.progress.say)
        results, runnable = {}, []
        for cell in cells:
            ready, result = prepared(self.backend, cell, self.ready_envs, self.progress)
            if result is None:
                runnable.append((cell, ready))
                continue
            number = self.progress.start(cell)
            store_result(self.store, result, None, self.progress.say)
            results[cell.id] = result
            self.progress.done(cell, result, number)
        try:
            tracked = self._submit(runnable)
        except BaseException:
            self.stop_all()  # an sbatch that failed half-way, Ctrl-C: no array of this run is left queued
            raise
        if self.no_wait:
            if tracked:
                self.progress.say("{} cells left running in Slurm (job {}); `.venv/bin/dlmatrix status --run {}` "
                                  "shows them".format(len(tracked), " ".join(sorted(self.live)), self.store.root.name))
            self.live.clear()
            return results
        try:
            results.update(self._wait(tracked))
        except KeyboardInterrupt:
            self.stop_all()
            raise
        except UserError as exc:  # sacct or squeue kept failing: this host cannot follow them, the jobs go on
            raise UserError("{}; the run's jobs go on in Slurm: `.venv/bin/dlmatrix status --run {}` shows them, the "
                            "same command again collects them".format(exc, self.store.root.name)) from None
        return results

    def _submit(self, runnable):
        """One array per time limit (a suite's), each at most MaxArraySize long; {(job id, index): cell}."""
        groups = {}
        for cell, ready in runnable:
            groups.setdefault(cell.timeout_s, []).append((cell, ready))
        tracked = {}
        limit = max_array_size() if runnable else 0
        for timeout_s, members in groups.items():
            for start in range(0, len(members), limit):
                chunk = members[start:start + limit]
                tracked.update({key: cell for key, cell in zip(self._submit_array(chunk, timeout_s),
                                                               (cell for cell, _ in chunk))})
        return tracked

    def _submit_array(self, chunk, timeout_s):
        records = read_jobs(self.store)
        cells_file = write_cells(self.store, len(records) + 1, chunk, self.packed_backend)
        limit = self.backend.memory_limit
        memory_mb = math.ceil(limit / 2 ** 20) + RUNNER_MEMORY_MB if limit else 0
        command = sbatch_command(
            job_command(cells_file), job_name="dlmatrix-{}".format(self.store.root.name),
            array=array_spec(len(chunk), self.options.max_running),
            output=str(folder(self.store).resolve() / "%A_%a.out"), chdir=os.getcwd(),
            time_s=timeout_s + self.options.time_margin_s, memory_mb=memory_mb, cpus=self.options.cpus_per_task,
            gpu=self.device.startswith("cuda"), options=self.options)
        job_id = submit(command)
        self.live.add(job_id)
        records.append({"job_id": job_id, "cells_file": str(cells_file.resolve()), "cells": len(chunk),
                        "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "submitted_epoch": time.time(),
                        "command": command, "collected": False})
        write_jobs(self.store, records)
        asked = ["time limit {}".format(slurm_time(timeout_s + self.options.time_margin_s)),
                 "{} CPU{}".format(self.options.cpus_per_task, "s" if self.options.cpus_per_task > 1 else "")]
        asked += ["{} MB".format(memory_mb)] if memory_mb else []
        asked += ["a GPU"] if self.device.startswith("cuda") else []
        asked += ["then {}".format(" ".join(self.options.sbatch_args))] if self.options.sbatch_args else []
        self.progress.say("submitted {} cell{} as Slurm job array {} ({}); output in {}".format(
            len(chunk), "s" if len(chunk) > 1 else "", job_id, ", ".join(asked), folder(self.store)))
        return [(job_id, index) for index in range(len(chunk))]

    def _wait(self, tracked):
        """Poll sacct until every element has ended and has a result; their results by cell id."""
        results, numbers, pending, failures = {}, {}, dict(tracked), 0
        while pending:
            try:
                seen = elements({job_id for job_id, _ in pending})
                failures = 0
            except UserError as exc:  # slurmctld or slurmdbd busy or restarting: ask again, a few times
                failures += 1
                if failures >= SLURM_RETRIES:
                    raise
                self.progress.say("{}; asking again in {} s".format(exc, self.options.poll_s))
                time.sleep(self.options.poll_s)
                continue
            for key, cell in list(pending.items()):
                element = seen.get(key)
                if element is None or element.live:
                    if element is not None and element.state == "RUNNING" and key not in numbers:
                        numbers[key] = self.progress.start(cell, " as {}".format(job_label(element.name, element.node)))
                    continue
                result = ended_result(self.store, cell, element, self.progress.say)
                if result is None:
                    continue
                if key not in numbers:  # it started and ended between two looks
                    numbers[key] = self.progress.start(cell, " as {}".format(job_label(element.name, element.node)))
                self.progress.done(cell, result, numbers.pop(key))
                results[cell.id] = result
                del pending[key]
            if pending:
                time.sleep(self.options.poll_s)
        self._collected({job_id for job_id, _ in tracked})
        return results

    def _collected(self, job_ids):
        records = read_jobs(self.store)
        for record in records:
            if record["job_id"] in job_ids:
                record["collected"] = True
        write_jobs(self.store, records)
        self.live -= job_ids
