"""The command line's part for running on a cluster: run's --executor, --no-wait and Slurm flags, `status`
(where a run's Slurm jobs are) and `cell` (what each array element runs)."""

import json
import time
from pathlib import Path

from .errors import UserError
from .executors import EXECUTORS
from .executors.slurm import ACCOUNTING_LAG_S
from .executors.slurm_cells import read_cells, read_jobs, run_job_cell
from .executors.slurm_jobs import check_slurm, elements
from .progress import clock, say as _say
from .results import ResultStore

SLURM_FLAGS = (("no_wait", "--no-wait"), ("partition", "--partition"), ("account", "--account"), ("qos", "--qos"),
               ("sbatch_args", "--sbatch-arg"))


def add_run_flags(run):
    run.add_argument("--executor", default="local", choices=sorted(EXECUTORS),
                     help="where cells run: local (this host, default) or slurm (one Slurm job array element per "
                          "cell; see README, Running on a cluster)")
    slurm = run.add_argument_group("--executor slurm (each overrides matrix.toml [slurm])")
    slurm.add_argument("--no-wait", action="store_true", help="return once the cells are submitted; `python -m "
                       "runner status --run NAME` shows them, the same run command again collects them")
    slurm.add_argument("--partition", help="sbatch --partition (default: [slurm] partition, else the cluster's)")
    slurm.add_argument("--account", help="sbatch --account")
    slurm.add_argument("--qos", help="sbatch --qos")
    slurm.add_argument("--sbatch-arg", action="append", default=[], dest="sbatch_args", metavar="ARG",
                       help="one more sbatch argument, given after the runner's own (so it wins), e.g. "
                            "--sbatch-arg=--constraint=a100 (write it with '='; repeatable)")


def slurm_overrides(args):
    return {"partition": args.partition, "account": args.account, "qos": args.qos,
            "sbatch_args": tuple(args.sbatch_args)}


def add_slurm_parsers(sub):
    status = sub.add_parser("status", help="where a run's Slurm jobs are: pending, running, ended, results stored")
    status.add_argument("--run", dest="run_name", required=True, help="the run (a folder in results/)")
    status.add_argument("--results-dir", default="results")
    cell = sub.add_parser("cell", help="run one cell of a Slurm array and store its result (what each array "
                                       "element runs; written by run --executor slurm)")
    cell.add_argument("--cells", required=True, help="the array's cells file (results/<run>/slurm/cells-N.json)")
    cell.add_argument("--index", type=int, required=True, help="the element's index ($SLURM_ARRAY_TASK_ID)")


def cmd_cell(args, out):
    return run_job_cell(args.cells, args.index, _say)


def cmd_status(args, out):
    root = Path(args.results_dir) / args.run_name
    if not root.is_dir():
        raise UserError("--run {}: no folder {}".format(args.run_name, root))
    store = ResultStore(root, say=_say)
    records = read_jobs(store)
    if not records:
        out.write("{}: no Slurm jobs recorded (a run of the local executor, or none submitted yet)\n".format(root))
        return 0
    open_jobs = {record["job_id"] for record in records if not record["collected"]}
    if open_jobs:
        check_slurm()
    seen = elements(open_jobs)
    stored, live = {}, 0  # cell id -> its result's status (a cell submitted again is counted once)
    for record in records:
        cells = read_cells(record["cells_file"])["cells"]
        states, lines = {}, []
        for entry in cells:
            status = stored[entry["cell_id"]] = _stored_status(store, entry["cell_id"])
            element = seen.get((record["job_id"], entry["index"]))
            state = "collected" if record["collected"] else (element.state if element else "unknown to Slurm")
            states[state] = states.get(state, 0) + 1
            if element is None and not record["collected"] and time.time() - record["submitted_epoch"] < \
                    ACCOUNTING_LAG_S:
                live += 1  # only just submitted: not listed yet
            elif element is not None and element.live:
                live += 1
                if element.state == "RUNNING":
                    lines.append("  running: {} ({}) on {} for {}".format(
                        entry["label"], entry["cell_id"], element.node, clock(element.elapsed_s)))
            elif element is not None and status in ("no result", "interrupted") and not record["collected"]:
                lines.append("  ended {} (exit code {}) without a result: {} ({}); recorded with Slurm's reason "
                             "when the run is collected".format(element.detail or element.state, element.exit_code,
                                                                entry["label"], entry["cell_id"]))
        out.write("job {} ({} cells, submitted {}): {}\n".format(
            record["job_id"], len(cells), record["submitted_at"],
            ", ".join("{} {}".format(n, state) for state, n in sorted(states.items()))))
        out.write("".join(line + "\n" for line in lines))
    statuses = {}
    for status in stored.values():
        statuses[status] = statuses.get(status, 0) + 1
    out.write("results: {} (of {} cells submitted)\n".format(
        ", ".join("{} {}".format(n, s) for s, n in sorted(statuses.items())), len(stored)))
    if live:
        out.write("{} cells still pending or running; once they have ended, the same `run` command collects them "
                  "and writes the report\n".format(live))
    elif open_jobs:
        out.write("every job has ended: the same `.venv/bin/dlmatrix run ... --executor slurm` collects them, submits "
                  "what is left (drift loads) and writes the report\n")
    else:
        out.write("every job is collected\n")
    return 0


def _stored_status(store, cell_id):
    """The status in the cell's result file as it is (read only: damaged files are the run's to set aside)."""
    for path in (store.path(cell_id), store.unsaved / "{}.json".format(cell_id)):
        try:
            return json.loads(path.read_text(encoding="utf-8"))["status"]
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            return "unreadable result"
    return "no result"


def check_slurm_args(args):
    """run's executor flags agree with each other (called from cli_checks.check_args)."""
    executor = getattr(args, "executor", None)
    if executor is None:
        return
    if executor != "slurm":
        for attr, flag in SLURM_FLAGS:
            if getattr(args, attr, None):
                raise UserError("{} is for --executor slurm (each cell a Slurm job); this run's executor is {}".format(
                    flag, executor))
        return
    if getattr(args, "gpus", None):
        raise UserError("--gpus is for the local executor; with --executor slurm each cuda cell is a job with a GPU "
                        "of its own (--gres=gpu:1)")
    if (getattr(args, "jobs", None) or 1) > 1:
        raise UserError("--jobs is for the local executor; with --executor slurm Slurm runs as many cells at once as "
                        "it has room for ([slurm] max_running limits it)")
    from .matrix.schema_hosts import sbatch_arg_problem

    for arg in args.sbatch_args:
        if sbatch_arg_problem(arg):
            raise UserError("--sbatch-arg {}: {}".format(arg, sbatch_arg_problem(arg)))
    for attr, flag in SLURM_FLAGS[1:4]:
        value = getattr(args, attr, None)
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise UserError("{} {!r}: expected a name without spaces".format(flag, value))
    check_slurm()  # before anything is read or written: a host without Slurm says so at once
