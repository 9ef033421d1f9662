"""What the host and the Slurm jobs of a run share, in results/<run>/slurm/ on the shared filesystem.

    cells-<n>.json   one per array: each element's cell and ready environment, the backend, the run folder
    <job>_<i>.out    what array element i printed (sbatch --output)
    jobs.json        each array submitted: its job id, its cells file, whether its outcomes are collected

Each element runs `python -m runner cell --cells cells-<n>.json --index $SLURM_ARRAY_TASK_ID`
(`run_job_cell`), which runs the cell exactly as the local executor does (runner/executors/local.py
`attempt`: a scratch folder of its own, the probe under the guard, the result stored atomically)
and does not take the run lock: the host holds it. The cell and environment travel pickled: the
job runs the host's own interpreter and runner, which read them back as they were planned.
"""

import base64
import json
import os
import pickle
import shlex
import sys
import time
from pathlib import Path

from ..backends.base import PROJECT_ROOT
from ..backends.process import tail
from ..errors import UserError
from ..progress import clock
from ..results import ResultStore
from ..storage import write_json
from .local import Slot, attempt, host_result, store_result

FOLDER = "slurm"
JOBS = "jobs.json"
RESULT_GRACE_S = 60  # a COMPLETED job's result not yet visible here (a network filesystem's attribute cache)
# Slurm's final states that are the cell's own outcome; every other one (FAILED, NODE_FAIL, PREEMPTED,
# BOOT_FAIL, DEADLINE, ...) is "failed". A cancelled job is "interrupted": the next run runs it again.
STATUS_OF = {"TIMEOUT": "timeout", "OUT_OF_MEMORY": "out_of_memory", "CANCELLED": "interrupted"}


def folder(store):
    return store.root / FOLDER


def output_path(store, element):
    return folder(store) / "{}.out".format(element.name)


def pack_backend(backend):
    """The backend as it is before start(): each job starts its own (a docker engine on its node)."""
    return _pack(backend)


def write_cells(store, number, runnable, backend):
    """results/<run>/slurm/cells-<number>.json for `runnable` [(cell, ready environment)]; its path.
    `backend`: pack_backend's text."""
    path = folder(store) / "cells-{}.json".format(number)
    write_json(path, {
        "run": str(store.root), "unsaved": str(store.unsaved.parent), "backend": backend,
        "cells": [{"index": i, "cell_id": cell.id, "label": cell.label, "suite": cell.suite,
                   "payload": _pack((cell, ready))} for i, (cell, ready) in enumerate(runnable)],
    }, flag="--results-dir")
    return path


def read_cells(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError("{}: cannot read this run's cells file ({}); the array's cells are unknown".format(
            path, exc)) from None


def cell_of(entry):
    """(cell, ready environment) of one entry of a cells file."""
    return _unpack(entry["payload"])


def job_command(cells_path):
    """What each array element runs (sbatch --wrap): this interpreter and this runner, whatever the job's PATH."""
    return "exec env PYTHONPATH={} {} -m runner cell --cells {} --index \"$SLURM_ARRAY_TASK_ID\"".format(
        shlex.quote(str(PROJECT_ROOT)), shlex.quote(sys.executable), shlex.quote(os.path.abspath(cells_path)))


def job_label(name, node):
    return "Slurm job {} on {}".format(name, node)


def run_job_cell(cells_path, index, say):
    """The in-job entry point: run entry `index` of the cells file and store its result; exit code 0 once a
    result is stored (whatever its status), so Slurm's state says whether the job itself got that far."""
    data = read_cells(cells_path)
    if not 0 <= index < len(data["cells"]):
        raise UserError("--index {}: {} holds cells 0 to {}".format(index, cells_path, len(data["cells"]) - 1))
    entry = data["cells"][index]
    backend = _unpack(data["backend"])
    cell, ready = cell_of(entry)
    store = ResultStore(data["run"], say, unsaved=data["unsaved"])
    name = "{}_{}".format(os.environ.get("SLURM_ARRAY_JOB_ID", "?"), os.environ.get("SLURM_ARRAY_TASK_ID", index))
    say("{} ({}) as {}".format(cell.label, cell.id, job_label(name, os.environ.get("SLURMD_NODENAME", "?"))))
    backend.start(say)
    # A venv or local cell gets no GPU index: Slurm has made the job's GPU (--gres) its only visible one already.
    # A container is started by the node's engine, outside the job, which knows GPUs by their node-wide index.
    gpu = os.environ.get("SLURM_JOB_GPUS") if backend.name == "docker" and cell.device.startswith("cuda") else None
    slot = Slot(job_label(name, os.environ.get("SLURMD_NODENAME", "?")), gpu)
    result = attempt(backend, store, ready, cell, slot, say)
    say("{}: {}{}".format(cell.id, result["status"], " - {}".format(result["reason"]) if result.get("reason") else ""))
    return 0


def ended_result(store, cell, element, say, now=None):
    """The result of `cell` once its array element has ended: the one the job stored, or, where the job
    ended without one (killed, cancelled, crashed), one made here with Slurm's state, exit code and message.
    None while a COMPLETED job's result may still be on its way (RESULT_GRACE_S)."""
    existing = store.get(cell.id)
    if existing is not None and _stored_by(existing, element):
        if element.state == "COMPLETED" or existing["status"] in ("ok", "skipped"):
            return existing
    now = time.time() if now is None else now
    if element.state == "COMPLETED" and element.ended_at is not None and now - element.ended_at < RESULT_GRACE_S:
        return None
    status = STATUS_OF.get(element.state, "failed")
    result = host_result(cell, status, slurm_reason(store, element), time.perf_counter() - element.elapsed_s)
    result["provenance"]["slurm"] = {"job": element.name, "state": element.detail, "exit_code": element.exit_code,
                                     "node": element.node, "elapsed_s": element.elapsed_s,
                                     "time_limit": element.time_limit, "reason": element.reason or None}
    store_result(store, result, None, say)
    return result


def slurm_reason(store, element):
    """Why Slurm ended `element`, in Slurm's own words: its state, exit code, and slurmstepd's line if any."""
    out = output_path(store, element)
    ran = "ran {} on {}".format(clock(element.elapsed_s), element.node or "no node")
    facts = "{}, exit code {}, {}{}".format(element.detail or element.state, element.exit_code, ran,
                                            "; Slurm's reason: {}".format(element.reason) if element.reason else "")
    said = _slurm_said(out)
    if element.state == "TIMEOUT":
        text = "Slurm ended job {} at its time limit of {} ({})".format(element.name, element.time_limit, facts)
    elif element.state == "OUT_OF_MEMORY":
        text = "Slurm ended job {} for memory: over its --mem ([defaults] memory_limit + 1 GB) ({})".format(
            element.name, facts)
    elif element.state == "CANCELLED":
        text = "Slurm job {} was cancelled before it ended ({}); it runs again in the next run".format(
            element.name, facts)
    elif element.state == "COMPLETED":
        text = "Slurm job {} completed but no result of it appeared in {} within {} s ({})".format(
            element.name, store.root, RESULT_GRACE_S, facts)
    else:
        text = "Slurm job {} ended {}".format(element.name, facts)
    return "{}; output: {}{}".format(text, out, ": {}".format(said) if said else "")


def read_jobs(store):
    path = folder(store) / JOBS
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError("{}: cannot read this run's record of Slurm jobs ({}); move it aside to start the run "
                        "afresh (its jobs' results already stored are kept)".format(path, exc)) from None


def write_jobs(store, records):
    write_json(folder(store) / JOBS, records, flag="--results-dir")


def _stored_by(result, element):
    """Whether `result` is the one the job of `element` stored (not an earlier run's, nor its interruption)."""
    slot = ((result.get("provenance") or {}).get("runner") or {}).get("slot") or {}
    return (slot.get("label") or "").startswith("Slurm job {} ".format(element.name))


def _slurm_said(out):
    """slurmstepd's own line ("*** JOB 12 ON n1 CANCELLED AT ... DUE TO TIME LIMIT ***"), else the output's last."""
    lines = tail(out, 20).splitlines()
    stepd = [line.strip() for line in lines if "***" in line]
    return (stepd or [line.strip() for line in lines if line.strip()][-1:] or [""])[-1][:300]


def _pack(value):
    return base64.b64encode(pickle.dumps(value)).decode("ascii")


def _unpack(text):
    return pickle.loads(base64.b64decode(text))
