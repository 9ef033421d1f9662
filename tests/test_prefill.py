"""The crop cache prefill (runner/prefill.py): which later recipe is decoded beside which cell of a real
planned row, that the setting never touches a cell id, and a real run in which inception_v3 reads the crops
a prefill decoded beside resnet101, predicting exactly what it predicts from its own decoding."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.backends.base import ReadyEnvironment
from runner.backends.guard import group_members
from runner.cli import main
from runner.errors import UserError
from runner.matrix import load_matrix
from runner.plan import Options, plan_cells
from runner.prefill import Schedule, planned as planned_prefills, preview
from runner.progress import plan_table

from .conftest import sample_dir
from .matrices import FAST_SUITES, REAL, ROOT, write_matrix
from .probe.imagesets import make_flat_set

GPU_PREFILL = "prefetch = 4\nprefill = true"  # the line of [suites.error.cuda] in matrix.toml


def planned(matrix, images, device, **options):
    return plan_cells(load_matrix(matrix), Options(weights="random", device=device, imagenet=str(images), **options))


def simulate(cells):
    """preview() in words: (model, suite, action, the model a prefill starts for)."""
    return [(cell.model.key, cell.suite, action, target.model.key if target else None)
            for cell, action, target in preview(cells)]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("val")
    make_flat_set(folder, count=4)
    return folder


def test_on_a_gpu_row_inception_is_decoded_beside_resnet101_and_only_error_cells_run_beside_it(images, monkeypatch):
    monkeypatch.delenv("DLMATRIX_CACHE", raising=False)
    cells = planned(REAL, images, "cuda", environments=("torch-current",))
    events = simulate(cells)
    starts = [e for e in events if e[2] == "start"]
    # resnet50 decodes the 256 -> 224 crops; resnet101 reads them, so the cores decode inception's 342 -> 299
    assert starts == [("resnet101", "error", "start", "inception_v3")]
    assert {e[2] for e in events if e[1] != "error"} == {"wait"}
    assert [e[:3] for e in events if e[1] == "error"] == [
        ("resnet50", "error", "wait"), ("resnet101", "error", "start"), ("densenet121", "error", "beside"),
        ("inception_v3", "error", "beside"), ("mobilenet_v2", "error", "beside")]
    lines = plan_table(cells, planned_prefills(cells))
    line = next(line for line in lines if " resnet101 " in line and " error " in line)
    assert line.endswith("; beside it, inception_v3's crops are decoded ahead")


def test_plan_says_its_prefills_happen_only_where_cells_run_one_at_a_time(images, monkeypatch, capsys):
    """`plan` has no --gpus or --jobs: with several cells at once no prefill starts (runner/executors/local.py
    one_at_a_time), so the plan says where its prefill lines hold. The GPU check is left out: this host has no
    GPU, and it would mark every cell incompatible (tests/test_gpu_compat.py tests it)."""
    monkeypatch.delenv("DLMATRIX_CACHE", raising=False)
    monkeypatch.setattr("runner.cli.check_gpu", lambda cells, backend, say: cells)
    common = ["plan", "--matrix", str(REAL), "--imagenet", str(images), "--weights", "random", "--env", "torch-current"]
    assert main(common + ["--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "; beside it, inception_v3's crops are decoded ahead" in out
    assert "prefills above run where cells run one at a time (`run` without --gpus or --jobs" in out
    assert main(common + ["--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "decoded ahead" not in out and "prefills above" not in out


def test_no_prefill_on_a_cpu_run_or_without_a_cache_or_an_environment_built(images, monkeypatch):
    monkeypatch.delenv("DLMATRIX_CACHE", raising=False)
    cpu = planned(REAL, images, "cpu", environments=("torch-current",), suites=("error",))
    assert not any(cell.prefill for cell in cpu)  # the model needs the cores there
    gpu = planned(REAL, images, "cuda", environments=("torch-current",), suites=("error",))
    schedule = Schedule(gpu)
    # the row's environment is not built yet
    assert {schedule.ahead_of(cell, {}, running=False)[0] for cell in gpu} == {"wait", "beside"}
    monkeypatch.setenv("DLMATRIX_CACHE", "off")
    off = planned(REAL, images, "cuda", environments=("torch-current",), suites=("error",))
    assert not any(cell.prefill for cell in off)
    assert {e[2] for e in simulate(off)} == {"wait"}


def test_a_cell_the_host_skips_does_not_wait_for_a_prefill(images, monkeypatch):
    monkeypatch.delenv("DLMATRIX_CACHE", raising=False)
    ready = {"torch-current": ReadyEnvironment("torch-current", "python")}
    cells = plan_cells(load_matrix(REAL), Options(weights="random", device="cuda", environments=("torch-current",)))
    skipped = [cell for cell in cells if cell.suite == "error"]
    assert skipped and all(cell.skip_reason for cell in skipped)  # no --imagenet
    schedule = Schedule(cells)
    assert {schedule.ahead_of(cell, ready, running=True)[0] for cell in skipped} == {"beside"}
    assert Schedule(cells).ahead_of(next(c for c in cells if c.suite == "throughput"), ready, True)[0] == "wait"


def test_the_setting_leaves_cell_ids_alone_and_a_bad_value_is_refused_by_name(tmp_path, images, monkeypatch):
    monkeypatch.delenv("DLMATRIX_CACHE", raising=False)
    (tmp_path / "off").mkdir()
    off = write_matrix(tmp_path / "off", replace=((GPU_PREFILL, "prefetch = 4\nprefill = false"),))
    on = planned(REAL, images, "cuda")
    assert [c.id for c in planned(off, images, "cuda")] == [c.id for c in on]
    assert not any(c.prefill for c in planned(off, images, "cuda"))
    assert {c.prefill for c in on if c.suite == "error"} == {True}
    (tmp_path / "bad").mkdir()
    bad = write_matrix(tmp_path / "bad", replace=((GPU_PREFILL, "prefetch = 4\nprefill = \"yes\""),))
    with pytest.raises(UserError, match=r"suites\.error\.cuda\.prefill: expected true or false"):
        load_matrix(bad)


def run_cli(args):
    out = io.StringIO()
    code = main(args, out=out)
    return code, out.getvalue()


def error_results(folder):
    found = {}
    for path in Path(folder).glob("*.json"):
        data = json.loads(path.read_text())
        found[data["model"]] = data
    return found


def predictions(folder, result):
    with open(Path(folder) / result["files"]["predictions"]) as handle:  # beside the result
        return list(csv.reader(handle))


@pytest.mark.slow
def test_a_real_run_reads_the_crops_a_prefill_decoded_and_predicts_what_its_own_decoding_predicts(
        tmp_path, monkeypatch, capsys):
    sample = sample_dir()
    if sample is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    # On the CPU only for this test: the prefill is meant for GPU cells, whose model leaves the cores idle.
    suites = FAST_SUITES.replace("[suites.error]\n", "[suites.error]\nprefill = true\n")
    matrix = write_matrix(tmp_path, suites=suites)
    common = ["run", "--matrix", str(matrix), "--backend", "venv", "--weights", "random", "--imagenet", str(sample),
              "--env", "torch-current", "--suite", "error", "--reports-dir", str(tmp_path / "reports")]
    monkeypatch.setenv("DLMATRIX_CACHE", str(tmp_path / "crops"))
    code, out = run_cli(common + ["--model", "resnet50", "--model", "resnet101", "--model", "inception_v3",
                                  "--results-dir", str(tmp_path / "results"), "--run", "prefilled"])
    assert code == 0, out
    said = capsys.readouterr().err  # the progress lines
    assert "crop cache prefill for torch-current inception_v3 (beside resnet101): decoded with 4 decoders" in said
    folder = tmp_path / "results" / "prefilled"
    results = error_results(folder)
    statuses = {model: r["metrics"]["crop_cache"]["status"] for model, r in results.items()}
    assert statuses == {"resnet50": "built", "resnet101": "hit", "inception_v3": "hit"}, said
    assert [results[m]["metrics"]["crop_cache"]["entry_built"]["by"] for m in ("resnet101", "inception_v3")] == \
        ["cell", "prefill"]
    report = (tmp_path / "reports" / "prefilled" / "report.md").read_text()
    assert "| inception_v3 |" in report and "| hit (decoded ahead) |" in report
    assert (folder / "logs" / "prefill-{}.log".format(results["inception_v3"]["cell_id"])).is_file()
    assert not list((folder / ".work").iterdir()), "the prefill's scratch folder was left behind"

    # The same cell decoding its own crops, into a cache of its own: the same predictions.
    monkeypatch.setenv("DLMATRIX_CACHE", str(tmp_path / "other-crops"))
    code, out = run_cli(common + ["--model", "inception_v3", "--results-dir", str(tmp_path / "alone"), "--run", "a"])
    assert code == 0, out
    alone = error_results(tmp_path / "alone" / "a")["inception_v3"]
    assert alone["metrics"]["crop_cache"]["status"] == "built"
    assert alone["cell_id"] == results["inception_v3"]["cell_id"]
    assert predictions(tmp_path / "alone" / "a", alone) == predictions(folder, results["inception_v3"])


def prefill_probe():
    """(pid, process group) of a running prefill's probe, from /proc; None while there is none."""
    for name in os.listdir("/proc"):
        try:
            with open("/proc/{}/cmdline".format(name), "rb") as handle:
                words = handle.read().split(b"\0")
            with open("/proc/{}/stat".format(name), "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if words[1:3] == [b"-m", b"runner.probe"] and b"/prefill-" in words[3]:  # the probe, not its guard
            return int(name), int(fields[2])
    return None


def autogroup_nice(pid):
    """The niceness of the process's scheduling autogroup (a session's), or None without autogroups."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as handle:
            if handle.read().strip() != "1":
                return None
        with open("/proc/{}/autogroup".format(pid)) as handle:
            return int(handle.read().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.slow
def test_ctrl_c_while_a_prefill_runs_ends_all_its_processes_and_keeps_the_finished_results(tmp_path):
    sample = sample_dir()
    if sample is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    matrix = write_matrix(tmp_path, suites=FAST_SUITES.replace("[suites.error]\n", "[suites.error]\nprefill = true\n"))
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "--matrix", str(matrix), "--backend", "venv", "--weights", "random",
         "--imagenet", str(sample), "--env", "torch-current", "--suite", "error", "--model", "resnet50", "--model",
         "resnet101", "--model", "inception_v3", "--results-dir", str(tmp_path / "results"), "--reports-dir",
         str(tmp_path / "reports"), "--run", "c"], cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=dict(os.environ, DLMATRIX_CACHE=str(tmp_path / "crops")),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal would (see the docker test)
    deadline, found = time.time() + 300, None
    while time.time() < deadline and found is None and process.poll() is None:
        found = prefill_probe()
        time.sleep(0.05)
    if found is None:
        process.kill()
        pytest.fail("no prefill ran: {}".format(process.communicate()[0]))
    pid, group = found
    # Its decoding has begun once it lowered its priority: the session's too where the kernel weighs sessions.
    deadline = time.time() + 60
    while time.time() < deadline and os.getpriority(os.PRIO_PROCESS, pid) != 10:
        time.sleep(0.02)
    assert os.getpriority(os.PRIO_PROCESS, pid) == 10 and autogroup_nice(pid) in (None, 10)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    assert "crop cache prefill for torch-current inception_v3 (beside resnet101): stopped" in out
    deadline = time.time() + 10
    while time.time() < deadline and group_members(group):
        time.sleep(0.05)
    assert not group_members(group), "the prefill's processes outlived the run"
    assert error_results(tmp_path / "results" / "c")["resnet50"]["status"] == "ok"
