"""Stored results are checked when read: a damaged file is named, set aside in damaged/, and its cell runs again."""

import json

import pytest

from runner.cli import main
from runner.matrix import load_matrix
from runner.plan import Options, plan_cells
from runner.results import ResultStore, result_problem

from .faults import fault_case
from .matrices import REAL

SELECT = ["--matrix", str(REAL), "--suite", "error", "--env", "torch-1.0", "--model", "resnet50", "--weights", "random"]


def _cell_id():
    return plan_cells(load_matrix(REAL), Options(weights="random", environments=("torch-1.0",), models=("resnet50",),
                                                 suites=("error",)))[0].id


def _valid(cell_id, **changes):
    result = {"schema_version": 1, "cell_id": cell_id, "suite": "error", "environment": "torch-1.0",
              "framework": "torchvision", "model": "resnet50", "status": "skipped", "reason": "no val set",
              "metrics": None, "files": {}, "provenance": {}}
    result.update(changes)
    return result


DAMAGED = {
    "empty list": (b"[]", "is not of type 'object'"),
    "schema version only": (b'{"schema_version": 1}', "'cell_id' is a required property"),
    "truncated": (json.dumps(_valid("X")).encode()[:70], "not JSON"),
    "wrong schema version": (json.dumps(_valid("X", schema_version=2)).encode(), "result schema 2, this runner reads 1"),
    "unknown status": (json.dumps(_valid("X", status="done")).encode(), "status: 'done' is not one of"),
    "not UTF-8": (b'{"cell_id": "\xff\xfe"}', "not JSON"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_result_is_set_aside_named_and_its_cell_planned_again(tmp_path, case):
    content, why = DAMAGED[case]
    said = []
    store = ResultStore(tmp_path / "run", say=said.append)
    store.root.mkdir()
    cell_id = "abc123"
    store.path(cell_id).write_bytes(content.replace(b'"X"', b'"abc123"'))
    store.side_file(cell_id, "predictions.csv").write_text("file,label\n")
    assert store.get(cell_id) is None  # planned again
    moved = store.root / "damaged" / "abc123.json"
    assert moved.read_bytes() == content.replace(b'"X"', b'"abc123"') and not store.path(cell_id).exists()
    assert store.side_file(cell_id, "predictions.csv").is_file()  # side files stay where they were
    assert len(said) == 1 and str(store.path(cell_id)) in said[0] and why in said[0] and str(moved) in said[0]
    results, problems = store.load_all()
    assert results == [] and problems == said
    fault_case("a result file: {}".format(case), "moved to `damaged/`, named on the terminal and in the report; its cell "
           "runs again", said[0], group="results")


def test_a_result_under_another_cells_name_is_damaged_too():
    assert "holds cell other" in result_problem(_valid("other"), "abc123")
    assert result_problem(_valid("abc123"), "abc123") is None


def test_a_second_damaged_copy_does_not_overwrite_the_first_set_aside(tmp_path):
    store = ResultStore(tmp_path / "run", say=lambda line: None)
    store.root.mkdir()
    for content in (b"[]", b"{"):
        store.path("abc").write_bytes(content)
        assert store.get("abc") is None
    assert sorted(p.name for p in (store.root / "damaged").iterdir()) == ["abc.json", "abc.json.1"]


def test_report_on_a_folder_of_damaged_files_lists_them_and_a_rerun_computes_the_cell_again(tmp_path, capsys):
    run = tmp_path / "results" / "r"
    run.mkdir(parents=True)
    cell_id = _cell_id()
    (run / "{}.json".format(cell_id)).write_text('{"schema_version": 1, "cell_id": ')  # truncated mid-write
    for number, (content, _) in enumerate(sorted(DAMAGED.values())):
        (run / "other{}.json".format(number)).write_bytes(content)
    (run / "good.json").write_text(json.dumps(_valid("good")))
    folders = ["--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"), "--run", "r"]

    assert main(["report", "--matrix", str(REAL)] + folders) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("damaged (") == len(DAMAGED) + 1
    report = json.loads((tmp_path / "reports" / "r" / "report.json").read_text())
    assert len(report["problems"]) == len(DAMAGED) + 1 and [r["cell_id"] for r in report["rows"]] == ["good"]
    markdown = (tmp_path / "reports" / "r" / "report.md").read_text()
    assert "## Result files not read" in markdown and "{}.json: damaged (not JSON".format(run / cell_id) in markdown
    assert len(list((run / "damaged").iterdir())) == len(DAMAGED) + 1

    assert main(["run", "--backend", "local"] + SELECT + folders) == 0  # the damaged cell's result is made again
    assert "1 cell: 1 run now, 0 reused" in capsys.readouterr().out
    assert json.loads((run / "{}.json".format(cell_id)).read_text())["status"] == "skipped"
    again = json.loads((tmp_path / "reports" / "r" / "report.json").read_text())
    assert sum("set aside earlier as damaged" in p for p in again["problems"]) == len(DAMAGED) + 1
