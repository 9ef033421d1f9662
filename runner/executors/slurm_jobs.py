"""Slurm's own commands, and nothing else: sbatch submits an array, sacct says how each element stands or
ended, scancel stops them. Each failure of a command is one UserError naming it and what it said.

sacct reads Slurm's accounting database (slurmdbd): a cluster without accounting cannot tell an
ended job's state and exit code, and the executor refuses to start there rather than guess.
"""

import getpass
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, replace

from ..errors import UserError

# An element in one of these states may still write its result; every other state is final.
LIVE = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING", "STAGE_OUT",
        "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "SIGNALING", "STOPPED")
FIELDS = ("JobID", "State", "ExitCode", "NodeList", "ElapsedRaw", "Timelimit", "End", "Reason")
COMMAND_TIMEOUT_S = 120


@dataclass(frozen=True)
class Element:
    """One array element as sacct sees it."""

    job_id: str  # the array's job id
    index: int
    state: str  # RUNNING, COMPLETED, TIMEOUT, CANCELLED (without sacct's "by <uid>"), ...
    exit_code: str = "0:0"  # return code:signal of the batch step
    node: str = ""
    elapsed_s: int = 0
    time_limit: str = ""
    ended_at: float = None  # seconds since the epoch, once it has ended
    reason: str = ""
    detail: str = ""  # sacct's full state text, "CANCELLED by 0"

    @property
    def name(self):
        return "{}_{}".format(self.job_id, self.index)

    @property
    def live(self):
        return self.state in LIVE


def check_slurm():
    """Slurm's client commands are here and sacct can read the accounting database; else a UserError."""
    for command in ("sbatch", "sacct", "squeue", "scancel"):
        if shutil.which(command) is None:
            raise UserError("--executor slurm: `{}` is not on PATH; run on a host of the Slurm cluster (a login node) "
                            "or install Slurm's client commands".format(command))
    _run(["sacct", "-n", "-X", "-S", "now", "-o", "JobID"], "sacct",
         "--executor slurm reads how each job ended from Slurm's accounting (sacct, through slurmdbd); ")


def sbatch_command(wrap, *, job_name, array, output, chdir, time_s, memory_mb, cpus, gpu, options):
    """The sbatch command line of one array. `options`: [slurm] and the command line's (SlurmSettings)."""
    command = ["sbatch", "--parsable", "--job-name", job_name, "--array", array, "--output", output,
               "--chdir", chdir, "--time", slurm_time(time_s), "--cpus-per-task", str(cpus), "--ntasks", "1"]
    if memory_mb:
        command += ["--mem", "{}M".format(memory_mb)]
    if gpu:
        command += ["--gres", "gpu:1"]
    for flag, value in (("--partition", options.partition), ("--account", options.account), ("--qos", options.qos)):
        if value:
            command += [flag, value]
    return command + list(options.sbatch_args) + ["--wrap", wrap]


def slurm_time(seconds):
    """Seconds in sbatch's hours:minutes:seconds."""
    seconds = int(seconds)
    return "{}:{:02d}:{:02d}".format(seconds // 3600, seconds // 60 % 60, seconds % 60)


def array_spec(count, max_running):
    return "0-{}{}".format(count - 1, "%{}".format(max_running) if max_running else "")


def submit(command):
    """Submit; the array's job id."""
    out = _run(command, "sbatch", "")
    job_id = out.strip().split(";")[0]  # --parsable: "id" or "id;cluster"
    if not job_id.isdigit():
        raise UserError("sbatch answered {!r}, not a job id; the command was: {}".format(
            out.strip(), shlex.join(command)))
    return job_id


def max_array_size():
    """Slurm's MaxArraySize: array indexes must stay below it (1001 unless the cluster sets it)."""
    out = _run(["scontrol", "show", "config"], "scontrol", "") if shutil.which("scontrol") else ""
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(found.group(1)) if found else 1001


def cancel(job_ids):
    if job_ids:
        _run(["scancel"] + sorted(job_ids), "scancel", "")


def elements(job_ids):
    """{(job id, index): Element} for every element of these arrays that sacct or squeue knows.

    squeue is the word on elements still queued: sacct learns of a job a moment after sbatch returns, and gives
    an element its final state (TIMEOUT, CANCELLED) as soon as Slurm decides it, while its processes may still be
    ending and writing; one that squeue still lists counts as COMPLETING (live) until it has left."""
    if not job_ids:
        return {}
    # SLURM_BITSTR_LEN=0: a pending array's index list ("12_[3-40%2]") printed whole, not cut at 64 characters;
    # SLURM_TIME_FORMAT=standard: End as 2024-05-01T12:00:00 whatever the user's own setting.
    out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(sorted(job_ids)), "-o", ",".join(FIELDS)], "sacct", "",
               env=dict(os.environ, SLURM_BITSTR_LEN="0", SLURM_TIME_FORMAT="standard"))
    found = {}
    for line in out.splitlines():
        row = dict(zip(FIELDS, line.split("|")))
        job, _, indexes = row.get("JobID", "").partition("_")
        if not indexes or job not in job_ids:
            continue  # not an array element (an array of one is still "id_0")
        state = row["State"].split()[0] if row.get("State") else "PENDING"
        for index in _indexes(indexes):
            found[(job, index)] = Element(
                job_id=job, index=index, state=state, exit_code=row.get("ExitCode") or "0:0",
                node=row.get("NodeList", "") if state not in ("PENDING",) else "",
                elapsed_s=int(row["ElapsedRaw"]) if row.get("ElapsedRaw", "").isdigit() else 0,
                time_limit=row.get("Timelimit", ""), ended_at=_epoch(row.get("End", "")),
                reason=row.get("Reason", "") if row.get("Reason") not in (None, "None") else "",
                detail=row.get("State", ""))
    for key, (state, node) in _queued(job_ids).items():
        state = state if state in LIVE else "COMPLETING"  # listed by squeue: not gone yet, whatever it says
        element = found.get(key)
        if element is None:
            found[key] = Element(job_id=key[0], index=key[1], state=state, node=node, detail=state)
        else:
            found[key] = replace(element, state=state if element.live else "COMPLETING", node=node or element.node)
    return found


def _queued(job_ids):
    """{(job id, index): (state, node)} of the elements squeue lists (-r: a pending array's one per line)."""
    out = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T|%N"], "squeue", "")
    queued = {}
    for line in out.splitlines():
        name, _, rest = line.partition("|")
        state, _, node = rest.partition("|")
        job, _, index = name.strip().partition("_")
        if job in job_ids and index.isdigit():
            queued[(job, int(index))] = (state.strip(), node.strip())
    return queued


def _indexes(text):
    """'7' -> [7]; '[3-5,9%2]' -> [3, 4, 5, 9]."""
    text = text.strip("[]").split("%")[0]
    indexes = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        indexes.extend(range(int(low), int(high or low) + 1))
    return indexes


def _epoch(text):
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None  # "Unknown": not ended


def _run(command, name, context, env=None):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError("{}{} did not answer in {} s (is slurmctld or slurmdbd down?): {}".format(
            context, name, COMMAND_TIMEOUT_S, shlex.join(command))) from None
    except OSError as exc:
        raise UserError("{}{} could not be run: {}".format(context, name, exc)) from None
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split()) or "nothing"
        raise UserError("{}{} failed (exit code {}): {}; the command was: {}".format(
            context, name, done.returncode, said, shlex.join(command)))
    return done.stdout
