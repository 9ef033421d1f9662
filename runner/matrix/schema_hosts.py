"""Where and how cells run: the docker backend's and the Slurm executor's settings ([docker], [slurm]),
as frozen types with the checks their values need. Re-exported by schema.py and runner.matrix."""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DockerSettings:
    """How the docker backend builds and runs cells (runner/backends/docker.py)."""

    cpu_base: Optional[str]  # base image for CPU hosts, pinned by tag (the GPU flavour uses each row's cuda_image)
    memory_limit: str  # [defaults] memory_limit, given to each cell's container
    user: str  # uid:gid the cells run as (never root)


# sbatch options the runner sets itself and reads back (where each element's output is, which array element
# runs which cell): one in [slurm] sbatch_args or --sbatch-arg would break that, so it is refused.
SBATCH_OWN = {"--array": "-a", "--wrap": None, "--output": "-o", "--error": "-e", "--chdir": "-D", "--parsable": None}


def sbatch_arg_problem(arg):
    """Why `arg` cannot be one of the extra sbatch arguments, or None."""
    for long, short in SBATCH_OWN.items():
        if arg.split("=", 1)[0] == long or (short and arg.startswith(short) and not arg.startswith("--")):
            return "{} is set by the runner itself (each array element's cell and output file); leave it out".format(
                long)
    return None


@dataclass(frozen=True)
class SlurmSettings:
    """How `run --executor slurm` asks Slurm for each cell ([slurm]; every key optional, these are the defaults).
    The command line's --partition, --account, --qos replace these, its --sbatch-arg adds to sbatch_args."""

    partition: Optional[str] = None  # None: the cluster's default partition
    account: Optional[str] = None
    qos: Optional[str] = None
    sbatch_args: tuple = ()  # given to sbatch after the runner's own options, so they win (e.g. "--gres=gpu:a100:1")
    cpus_per_task: int = 1
    time_margin_s: int = 300  # a job's time limit is its suite's timeout_s plus this: starting, storing the result
    poll_s: int = 30  # seconds between two looks at the jobs (sacct) while the host waits
    max_running: int = 0  # array elements of one run at once (sbatch --array=...%N); 0: as many as Slurm gives
