"""The Slurm executor against a real Slurm: a one-node cluster (slurm/cluster-up.sh: munged, mariadbd,
slurmdbd, slurmctld, slurmd) running two MXNet rows (venv backend, the cached environments, random weights)
on the 30 sample images: error, throughput, drift and a drift load, as job array elements.

Checked: the same cell ids, predictions and drift outputs as the local executor; --no-wait, `runner status`
and a second run refused while the jobs run; `scancel` of the array mid-run, then a re-run that submits only
what has no result; a cell killed at Slurm's time limit recorded as `timeout` with Slurm's reason, and
--retry-failed submitting only it. Without Slurm these tests skip, unless DLMATRIX_REQUIRE_SLURM=1 (CI sets it).
The checks of flags, [slurm] and sbatch's command line need no cluster.
"""

import contextlib
import io
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from runner.cli import main
from runner.errors import UserError
from runner.executors.slurm_jobs import _indexes, check_slurm, sbatch_command
from runner.matrix import SlurmSettings, load_matrix

from .faults import fault_case
from .matrices import FAST_SUITES, REAL, write_matrix

ROWS = ["--env", "mxnet-1.5", "--env", "mxnet-1.9", "--model", "resnet50"]
# Two cells fit beside each other on the test cluster's node (2 CPUs); the host polls every 2 s.
SMALL = [('memory_limit = "16g"', 'memory_limit = "4g"')]
SLURM = "\n[slurm]\npoll_s = 2\n"
# A throughput cell that runs for minutes: Slurm's time limit (1 minute, its shortest) ends it first.
LONG_THROUGHPUT = FAST_SUITES.replace("batch_sizes = [1, 2]\nwarmup = 1\ntrials = 2\niterations = 3",
                                      "batch_sizes = [1]\nwarmup = 1\ntrials = 1\niterations = 100000")


def run_cli(args):
    """exit code, and what the command wrote to stdout and stderr together."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        code = main(args, out=out)
    return code, out.getvalue()


def neutral(text):
    """Job ids, Slurm's timestamps and run times as placeholders, so the README's table reads the same every time."""
    text = re.sub(r"\b\d+_\d+\b", "<job>_<i>", text)
    text = re.sub(r"JOB \d+ ON (\S+) CANCELLED AT \S+", r"JOB <job> ON \1 CANCELLED AT <time>", text)
    text = re.sub(r"\bran \d+:\d\d:\d\d", "ran <h:mm:ss>", text)
    return re.sub(r"\bscancel \d+", "scancel <job>", text)


def queued(job_id):
    out = subprocess.run(["squeue", "-h", "-r", "-j", job_id, "-o", "%i"], capture_output=True, text=True).stdout
    return out.split()


def wait_until(condition, what, seconds=600):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited {} s for {}".format(seconds, what)
        time.sleep(1)


def results_in(folder):
    return {path.stem: json.loads(path.read_text()) for path in Path(folder).glob("*.json")}


def jobs_of(root):
    return json.loads((Path(root) / "slurm" / "jobs.json").read_text())


# -- against the cluster ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    try:
        check_slurm()
    except UserError as exc:
        if os.environ.get("DLMATRIX_REQUIRE_SLURM") == "1":
            pytest.fail("DLMATRIX_REQUIRE_SLURM=1 but Slurm does not answer (slurm/cluster-up.sh starts it): {}".format(
                exc))
        pytest.skip("no Slurm cluster here ({}); slurm/cluster-up.sh starts one".format(exc))


@pytest.fixture(scope="module")
def runs(cluster, sample, tmp_path_factory):
    """Every run of the module, in the order a user would type them; the tests then read what each gave."""
    work = tmp_path_factory.mktemp("slurm")
    matrix = write_matrix(work, suites=FAST_SUITES, replace=SMALL, append=SLURM)
    (work / "long").mkdir()
    long_matrix = write_matrix(work / "long", suites=LONG_THROUGHPUT, replace=SMALL, append=SLURM)
    where = ["--backend", "venv", "--weights", "random", "--results-dir", str(work / "results"),
             "--reports-dir", str(work / "reports")]
    seen = {"work": work}
    # Submitted first and left to Slurm, which ends it at its time limit while the local run goes on.
    timeout = ["run", "--matrix", str(long_matrix)] + where + [
        "--env", "mxnet-1.5", "--model", "resnet50", "--suite", "throughput", "--executor", "slurm",
        "--run", "timeout", "--sbatch-arg=--time=0:05"]
    seen["timeout_submitted"] = run_cli(timeout + ["--no-wait"])
    cells = ["run", "--matrix", str(matrix), "--imagenet", str(sample)] + where + ROWS
    seen["local"] = run_cli(cells + ["--run", "local"])

    slurm = cells + ["--executor", "slurm", "--run", "slurm"]
    root = work / "results" / "slurm"
    seen["submitted"] = run_cli(slurm + ["--no-wait"])
    seen["status_running"] = run_cli(["status", "--run", "slurm", "--results-dir", str(work / "results")])
    seen["refused"] = run_cli(slurm)
    wait_until(lambda: any(root.glob("*.json")), "a first result")
    job_id = jobs_of(root)[0]["job_id"]
    subprocess.run(["scancel", job_id], check=True)
    wait_until(lambda: not queued(job_id), "the cancelled array to leave the queue")
    seen["before_rerun"] = {name: (root / "{}.json".format(name)).read_text() for name in results_in(root)}
    seen["status_cancelled"] = run_cli(["status", "--run", "slurm", "--results-dir", str(work / "results")])
    seen["rerun"] = run_cli(slurm)
    seen["status_done"] = run_cli(["status", "--run", "slurm", "--results-dir", str(work / "results")])

    timeout_root = work / "results" / "timeout"
    wait_until(lambda: not queued(jobs_of(timeout_root)[0]["job_id"]), "the time-limited job to end")
    seen["timeout_collected"] = run_cli(timeout)
    seen["timeout_result"] = dict(results_in(timeout_root))
    seen["timeout_retry"] = run_cli(timeout + ["--retry-failed", "--no-wait"])
    retry_job = jobs_of(timeout_root)[-1]
    subprocess.run(["scancel", retry_job["job_id"]], check=True)
    seen["retry_cells"] = json.loads(Path(retry_job["cells_file"]).read_text())["cells"]
    wait_until(lambda: not queued(retry_job["job_id"]), "the retried job to leave the queue")
    return seen


@pytest.mark.slow
def test_slurm_gives_the_local_executors_cells_predictions_and_drift_outputs(runs):
    code, out = runs["local"]
    assert code == 0, out
    code, out = runs["rerun"]
    assert code == 0, out
    local, slurm = runs["work"] / "results" / "local", runs["work"] / "results" / "slurm"
    local_results, slurm_results = results_in(local), results_in(slurm)
    assert len(local_results) == 7  # 2 rows x (error, throughput, drift) + the newer row loading the older's checkpoint
    assert sorted(slurm_results) == sorted(local_results)
    assert all(result["status"] == "ok" for result in slurm_results.values()), out
    for result in slurm_results.values():  # each written by its own array element
        assert result["provenance"]["runner"]["slot"]["label"].startswith("Slurm job ")
    compared = sorted(p.name for p in local.iterdir() if p.suffix in (".csv", ".npy", ".params"))
    assert len([name for name in compared if name.endswith(".predictions.csv")]) == 2
    assert len([name for name in compared if ".outputs-" in name]) == 3
    for name in compared:
        assert (slurm / name).read_bytes() == (local / name).read_bytes(), name
    assert (runs["work"] / "reports" / "slurm" / "report.md").is_file()


@pytest.mark.slow
def test_no_wait_returns_at_once_and_status_shows_the_jobs(runs):
    code, out = runs["submitted"]
    assert code == 0 and "6 left running in Slurm" in out and "status --run slurm" in out, out
    code, out = runs["status_running"]
    assert code == 0, out
    assert re.search(r"job \d+ \(6 cells, submitted [^)]*\): .*(PENDING|RUNNING)", out), out
    assert "still pending or running" in out
    code, out = runs["status_done"]
    assert code == 0 and "results: 7 ok (of 7 cells submitted)" in out and "every job is collected" in out, out


@pytest.mark.slow
def test_a_second_run_is_refused_while_the_jobs_run(runs):
    code, out = runs["refused"]
    assert code == 2, out
    message = out.splitlines()[-1]
    assert message.startswith("error: ") and "Slurm jobs of this run are still pending or running" in message
    assert "scancel" in message and "Traceback" not in out
    fault_case("a second `run` while the run's Slurm jobs are pending or running (after --no-wait)",
               "exit 2; the jobs go on, nothing of theirs is swept or submitted again", neutral(message), group="runs")


@pytest.mark.slow
def test_scancel_mid_run_then_a_rerun_completes_only_the_rest(runs):
    before, (code, out) = runs["before_rerun"], runs["rerun"]
    assert code == 0, out
    cancelled = runs["status_cancelled"][1]
    assert "CANCELLED" in cancelled and "every job has ended" in cancelled, cancelled
    finished = {name for name, text in before.items() if json.loads(text)["status"] == "ok"}
    assert finished, "the array was cancelled before any cell ended"
    assert len(finished) < 6, "every cell had ended before the cancel"
    root = runs["work"] / "results" / "slurm"
    for name in finished:  # not run again: the very file of the first array
        assert (root / "{}.json".format(name)).read_text() == before[name]
    jobs = jobs_of(root)
    assert len(jobs) == 3 and all(job["collected"] for job in jobs)
    assert jobs[1]["cells"] == 6 - len(finished) and jobs[2]["cells"] == 1  # the rest, then the drift load
    collected = [line for line in out.splitlines() if "ended CANCELLED; result interrupted" in line]
    assert len(collected) == 6 - len(finished), out
    fault_case("`scancel` of a run's Slurm array mid-run", "the cells not ended are `interrupted`; the next run "
               "submits only them", neutral(collected[-1].split("] ", 1)[-1]), group="runs")


@pytest.mark.slow
def test_a_cell_past_slurms_time_limit_is_a_timeout_with_slurms_reason(runs):
    code, out = runs["timeout_submitted"]
    assert code == 0 and "then --time=0:05" in out, out
    code, out = runs["timeout_collected"]
    assert code == 1 and "1 timeout" in out, out  # collected by the next run, not submitted again
    (result,) = runs["timeout_result"].values()
    assert result["status"] == "timeout", result["reason"]
    reason = result["reason"]
    assert re.match(r"Slurm ended job \d+_0 at its time limit of 00:01:00 \(TIMEOUT, exit code \d+:\d+, ran ", reason)
    assert "DUE TO TIME LIMIT ***" in reason  # slurmstepd's own line from the job's output
    assert result["provenance"]["slurm"]["state"] == "TIMEOUT"
    fault_case("a cell past its Slurm time limit", "status `timeout` with Slurm's state, exit code and message; "
               "`--retry-failed` submits it again", neutral(reason), group="runs")
    code, out = runs["timeout_retry"]
    assert code == 0 and "1 left running in Slurm" in out, out
    assert [entry["cell_id"] for entry in runs["retry_cells"]] == [result["cell_id"]]


# -- without a cluster ------------------------------------------------------------------------------

def test_sbatch_asks_for_a_gpu_memory_and_the_suites_time_and_the_users_options_last():
    options = SlurmSettings(partition="gpu", account="lab", qos="short", sbatch_args=("--constraint=a100",))
    command = sbatch_command("exec x", job_name="dlmatrix-r", array="0-4%2", output="/r/slurm/%A_%a.out", chdir="/w",
                             time_s=7200 + 300, memory_mb=17408, cpus=4, gpu=True, options=options)
    assert command[:2] == ["sbatch", "--parsable"] and command[-2:] == ["--wrap", "exec x"]
    pairs = dict(zip(command[2:-2:2], command[3:-2:2]))
    assert pairs["--time"] == "2:05:00" and pairs["--mem"] == "17408M" and pairs["--gres"] == "gpu:1"
    assert pairs["--array"] == "0-4%2" and pairs["--cpus-per-task"] == "4" and pairs["--partition"] == "gpu"
    assert pairs["--account"] == "lab" and pairs["--qos"] == "short"
    assert command[-3] == "--constraint=a100"  # after the runner's own: sbatch takes the last of a repeated option
    cpu = sbatch_command("x", job_name="j", array="0-0", output="o", chdir="/", time_s=60, memory_mb=0, cpus=1,
                         gpu=False, options=SlurmSettings())
    assert "--gres" not in cpu and "--mem" not in cpu and "--partition" not in cpu


def test_sacct_array_index_lists():
    assert _indexes("7") == [7] and _indexes("[3-5,9%2]") == [3, 4, 5, 9] and _indexes("[0-1]") == [0, 1]


def test_the_slurm_table_is_optional_and_checked(tmp_path):
    assert load_matrix(REAL).slurm == SlurmSettings()
    for append, message in (("[slurm]\npartiton = \"gpu\"\n", r"slurm.partiton: unknown key"),
                            ("[slurm]\nsbatch_args = [\"--output=x.out\"]\n",
                             r"slurm.sbatch_args\[0\]: '--output=x.out': --output is set by the runner itself"),
                            ("[slurm]\ncpus_per_task = 0\n", r"slurm.cpus_per_task: expected a positive integer"),
                            ("[slurm]\npartition = \"a b\"\n", r"slurm.partition: expected a name without spaces")):
        path = write_matrix(tmp_path, append="\n" + append)
        with pytest.raises(UserError, match=message):
            load_matrix(path)
    path = write_matrix(tmp_path, append="\n[slurm]\npartition = \"gpu\"\nsbatch_args = [\"--constraint=a100\"]\n")
    assert load_matrix(path).slurm == SlurmSettings(partition="gpu", sbatch_args=("--constraint=a100",))


FLAG_CASES = [
    (["--no-wait"], "--no-wait is for --executor slurm"),
    (["--partition", "gpu"], "--partition is for --executor slurm"),
    (["--executor", "slurm", "--gpus", "0,1"], "--gpus is for the local executor"),
    (["--executor", "slurm", "--jobs", "2"], "--jobs is for the local executor"),
    (["--executor", "slurm", "--sbatch-arg=--array=0-3"], "--sbatch-arg --array=0-3: --array is set by the runner"),
]


@pytest.mark.parametrize("flags, message", FLAG_CASES, ids=[" ".join(flags) for flags, _ in FLAG_CASES])
def test_executor_flags_that_do_not_fit_are_one_message_and_exit_2(tmp_path, flags, message):
    code, out = run_cli(["run", "--matrix", str(REAL), "--backend", "venv", "--results-dir", str(tmp_path / "results"),
                         "--reports-dir", str(tmp_path / "reports")] + flags)
    assert code == 2 and out.startswith("error: " + message) and "Traceback" not in out, out
    assert not (tmp_path / "results").exists()
    fault_case("`{}`".format(" ".join(flags)), "exit 2 before anything is read, built or written",
               out.splitlines()[0], group="flags")


def test_without_slurms_commands_the_slurm_executor_stops_before_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    code, out = run_cli(["run", "--matrix", str(REAL), "--backend", "venv", "--executor", "slurm",
                         "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")])
    assert code == 2 and out.startswith("error: --executor slurm: `sbatch` is not on PATH"), out
    assert not (tmp_path / "results").exists()
    fault_case("`--executor slurm` on a host without Slurm's commands", "exit 2 before anything is read, built or "
               "written", out.splitlines()[0], group="flags")

