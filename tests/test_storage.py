"""runner/storage.py and the results' fallback: a storage fault is a message, and a computed result is kept."""

import dataclasses
import errno
import io
import json
import os

import pytest

from runner.errors import UserError
from runner.executors.local import LocalExecutor
from runner.matrix import load_matrix
from runner.plan import Options, plan_cells
from runner.progress import Progress
from runner.results import ResultStore
from runner.storage import StorageError, write_json, write_text

from .faults import fault_case
from .filesystems import full_fs, switchable  # noqa: F401,F811 - fixtures, used by name
from .matrices import REAL


def _temp_files(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_writes_replace_whole_files_and_leave_no_temporary_files(tmp_path):
    target = tmp_path / "deep" / "result.json"
    write_json(target, {"b": 1, "a": [1.5, None]})
    assert json.loads(target.read_text()) == {"a": [1.5, None], "b": 1}
    write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600
    with pytest.raises(ValueError):
        write_json(target, {"x": float("nan")})  # NaN is not JSON: refused before anything is written
    assert target.read_text() == "second\n" and _temp_files(tmp_path) == []


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_rename_keeps_the_old_file_and_says_what_to_do(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    write_text(target, "old")

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StorageError) as caught:
        write_json(target, {"new": True})
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 2
    assert "ENOSPC" in str(caught.value) and str(target) in str(caught.value) and "free space on" in str(caught.value)
    assert target.read_text() == "old" and _temp_files(tmp_path) == []


def test_a_read_only_folder_is_one_message_naming_the_path_and_the_remedy(tmp_path, switchable):
    folder = switchable(tmp_path / "results")
    folder.freeze()
    with pytest.raises(StorageError) as caught:
        write_json(folder.folder / "run" / "abc.json", {"x": 1}, flag="--results-dir")
    message = str(caught.value)
    assert str(folder.folder / "run" / "abc.json") in message
    assert ("EROFS" in message or "EACCES" in message) and "writable or pass --results-dir" in message
    fault_case("a read-only folder for any write", "exit 2, one line naming the path, the error and the remedy",
           "error: " + message, group="storage")


def test_a_full_filesystem_is_one_message_and_leaves_no_temporary_file(tmp_path, full_fs):
    full_fs(tmp_path / "disk")
    with pytest.raises(StorageError) as caught:
        write_json(tmp_path / "disk" / "abc.json", {"numbers": list(range(5000))})
    message = str(caught.value)
    assert "ENOSPC" in message and "free space on {}".format(tmp_path / "disk") in message
    assert _temp_files(tmp_path / "disk") == []
    fault_case("a full disk for any write", "exit 2, one line naming the path, the error and the remedy; the old file "
           "stays whole, no temporary file is left", "error: " + message, group="storage")


class _NoBackend:
    name = "none"

    def start(self, say):
        pass

    def stop_all(self):
        pass


def _skipped_cell(reason="measured elsewhere"):
    cell = plan_cells(load_matrix(REAL), Options(weights="random", environments=("torch-1.0",),
                                                 models=("resnet50",), suites=("throughput",)))[0]
    return dataclasses.replace(cell, skip_reason=reason)


def _executor(store):
    out = io.StringIO()
    return LocalExecutor(_NoBackend(), store, Progress(1, out)), out


def test_a_result_the_read_only_run_folder_cannot_take_is_kept_found_and_moved_in_later(tmp_path, switchable):
    results = switchable(tmp_path / "results")
    store = ResultStore(results.folder / "run", say=lambda line: None)
    store.root.mkdir()
    cell = _skipped_cell()
    results.freeze()
    executor, out = _executor(store)
    executor.run([cell])
    kept = store.unsaved / "{}.json".format(cell.id)
    said = out.getvalue()
    assert str(store.path(cell.id)) in said and "the result is kept in {}".format(kept) in said
    assert kept.is_file() and not store.path(cell.id).exists()
    # still read-only: read from the unsaved folder, so the cell is not computed again
    assert store.get(cell.id)["reason"] == "measured elsewhere"
    loaded, problems = store.load_all()
    assert [r["cell_id"] for r in loaded] == [cell.id] and "kept in {}".format(kept) in problems[0]
    results.thaw()
    assert store.get(cell.id)["reason"] == "measured elsewhere"
    assert store.path(cell.id).is_file() and not kept.exists()
    assert store.load_all() == ([json.loads(store.path(cell.id).read_text())], [])


def test_a_result_that_meets_a_full_disk_is_kept_with_its_side_files(tmp_path, full_fs):
    ballast = full_fs(tmp_path / "results")
    store = ResultStore(tmp_path / "results" / "run", say=lambda line: None)
    cell = _skipped_cell()
    work = store.new_attempt(cell.id)
    (work / "predictions.csv").write_text("")  # an empty file: no block needed on the full disk
    result = {"schema_version": 1, "cell_id": cell.id, "suite": "error", "environment": "torch-1.0",
              "framework": "torchvision", "model": "resnet50", "status": "ok", "metrics": {"top1_error": 0.5},
              "files": {"predictions": "predictions.csv"}, "provenance": {"note": "x" * 20000}}
    executor, out = _executor(store)
    executor._store(result, work)
    assert "ENOSPC" in out.getvalue() and "free space on {}".format(tmp_path / "results") in out.getvalue()
    fault_case("a full disk when a cell's result is stored", "the result and its side files are kept in the unsaved "
           "folder, read from there (not computed again) and moved in later; the run goes on",
           " ".join(line.split("] ", 1)[-1] for line in out.getvalue().splitlines()[-2:]), group="storage")
    ballast.unlink()
    back = store.get(cell.id)
    assert back["provenance"]["note"] == "x" * 20000
    assert back["files"] == {"predictions": "{}.predictions.csv".format(cell.id)}
    assert back["metrics"]["predictions_file"] == back["files"]["predictions"]
    assert store.side_file(cell.id, "predictions.csv").is_file()
    assert not any(store.unsaved.iterdir()) and not work.exists()


def test_when_the_fallback_fails_too_the_run_stops_naming_both_places(tmp_path, switchable, monkeypatch):
    disk = switchable(tmp_path / "disk")
    monkeypatch.setenv("DLMATRIX_UNSAVED", str(disk.folder / "unsaved"))
    store = ResultStore(disk.folder / "run", say=lambda line: None)
    store.root.mkdir()
    disk.freeze()
    executor, _ = _executor(store)
    with pytest.raises(StorageError, match="keeping it elsewhere failed too: .*unsaved.*is lost"):
        executor.run([_skipped_cell()])


def _run(tmp_path, results, reports):
    from runner.cli import main

    return main(["run", "--matrix", str(REAL), "--backend", "local", "--suite", "error", "--env", "torch-1.0",
                 "--model", "resnet50", "--weights", "random", "--run", "r", "--results-dir", str(results),
                 "--reports-dir", str(reports)])


def test_a_run_into_a_read_only_results_folder_stops_before_any_cell_with_one_message(tmp_path, switchable, capsys):
    results = switchable(tmp_path / "results")
    results.freeze()
    assert _run(tmp_path, results.folder, tmp_path / "reports") == 2
    err = capsys.readouterr().err
    assert "error: cannot create the folder {}".format(results.folder / "r") in err and "Traceback" not in err
    assert "make {} writable or pass --results-dir".format(results.folder) in err
    assert "cell 1/1" not in err and not (tmp_path / "reports").exists()
    fault_case("a read-only results folder", "exit 2 before any cell", err.splitlines()[0], group="storage")


def test_a_read_only_reports_folder_keeps_the_results_and_says_how_to_get_the_report(tmp_path, switchable, capsys):
    reports = switchable(tmp_path / "reports")
    reports.freeze()
    assert _run(tmp_path, tmp_path / "results", reports.folder) == 2
    err = capsys.readouterr().err
    assert "make {} writable or pass --reports-dir".format(reports.folder) in err and "Traceback" not in err
    assert len(list((tmp_path / "results" / "r").glob("*.json"))) == 1  # the cell's result is stored
    fault_case("a read-only reports folder", "the results are stored; exit 2",
           next(line for line in err.splitlines() if line.startswith("error:")), group="storage")
