"""Every error is shown with what it was measured on: the probe's error suite runs on a real val folder
holding a 16-bit PNG, a decompression bomb, a truncated JPEG, an image without a label and a label
without an image; its result passes the stored-result schema, and the terminal line, report.md and
report.csv show evaluated / unreadable / unlabeled next to the error. The framework is replaced by a
fixed function of the pixels (tests/probe/test_error_suite.py); its own models run end to end elsewhere."""

import csv
import io
import types

from runner.probe import RESULT_SCHEMA_VERSION
from runner.matrix import load_matrix
from runner.probe.dataset import open_dataset
from runner.probe.error_suite import run_error_suite
from runner.progress import Progress
from runner.report import write_report
from runner.results import result_problem

from .faults import fault_case
from .matrices import REAL
from .probe.badimages import make_bad_set
from .probe.recipes import recipe
from .probe.test_error_suite import PixelModel


CELL = types.SimpleNamespace(id="0123456789abcdef", label="torch-current resnet50 error")


def error_result(tmp_path):
    """The result the probe's error suite gives for the bad set, shaped as runner/probe/cell.py stores it."""
    dataset = open_dataset(make_bad_set(tmp_path / "set"))
    out = tmp_path / "cell"
    out.mkdir()
    metrics = run_error_suite(PixelModel(), None, recipe("torchvision-224"), dataset, {"batch_size": 4}, str(out))
    result = {"schema_version": RESULT_SCHEMA_VERSION, "cell_id": CELL.id, "suite": "error",
              "environment": "torch-current", "framework": "torchvision", "model": "resnet50", "status": "ok",
              "reason": None, "metrics": metrics, "files": {"predictions": "predictions.csv"},
              "provenance": {"dataset": dataset.describe()}, "ended_at": "2026-11-22T00:00:00Z", "duration_s": 2.0}
    return load_matrix(REAL), CELL, result


def test_the_result_is_a_valid_stored_result(tmp_path):
    _matrix, cell, result = error_result(tmp_path)
    assert result_problem(result, cell.id) is None
    assert result["provenance"]["dataset"]["unlabeled_images"]["count"] == 1


def test_the_terminal_line_shows_the_counts_next_to_the_error(tmp_path):
    _matrix, cell, result = error_result(tmp_path)
    out = io.StringIO()
    Progress(1, out).done(cell, result, 1)
    line = out.getvalue()
    error = result["metrics"]["top1_error"]
    assert "torch-current resnet50 error: ok in 2.0 s - top-1 error {:.2f}%".format(error) in line
    assert line.rstrip().endswith("3 of 6 images evaluated, 3 unreadable (1 OSError, 1 more than 8 bits per channel, "
                                  "1 too large), 1 unlabeled, 1 labels without an image")
    reasons = {entry["kind"]: entry["error"] for entry in result["metrics"]["unreadable"]}
    for case, kind in (("a 16-bit image (Pillow mode `I;16`, or `I` on older Pillow)", "more than 8 bits per channel"),
                       ("an image over 89,478,485 pixels (a decompression bomb)", "too large"),
                       ("a truncated or undecodable image", "OSError")):
        fault_case(case, "one unreadable image with its reason; the cell goes on", reasons[kind], group="images")
    fault_case("images without a label, labels without an image", "counted, with example names, in the result, "
               "on the terminal and in the report", line.rstrip().split("] ", 1)[-1], group="images")


def test_the_report_shows_the_counts_next_to_the_error(tmp_path):
    matrix, _cell, result = error_result(tmp_path)
    report = write_report(matrix, [result], [], [], tmp_path / "report", "r")
    text = (report / "report.md").read_text()
    [line] = [l for l in text.splitlines() if l.startswith("| torch-current ") and "| 3 / 3 / 1 |" in l]
    assert "| 3 / 3 / 1 | {:.2f} (".format(result["metrics"]["top1_error"]) in line
    assert ("- every cell: 3 unreadable (1 OSError, 1 more than 8 bits per channel, 1 too large), 1 unlabeled, "
            "1 labels without an image\n") in text
    [row] = list(csv.DictReader(io.StringIO((report / "report.csv").read_text())))
    assert (row["images"], row["images_selected"], row["unreadable_images"], row["unlabeled_images"],
            row["labels_without_image"]) == ("3", "6", "3", "1", "1")
    assert row["unreadable_reasons"] == "1 OSError; 1 more than 8 bits per channel; 1 too large"


def test_a_result_from_before_the_counts_says_they_were_not_recorded():
    metrics = {"images_evaluated": 30, "top1_correct": 20, "top5_correct": 27, "top1_error": 33.3, "top5_error": 10.0,
               "unreadable_count": 0}
    out = io.StringIO()
    Progress(1, out).done(types.SimpleNamespace(label="torch-1.0 resnet50 error"),
                          {"suite": "error", "status": "ok", "duration_s": 1.0, "metrics": metrics}, 1)
    assert out.getvalue().rstrip().endswith("- top-1 error 33.30%, top-5 10.00%; 30 images evaluated, 0 unreadable, "
                                            "unlabeled not recorded")
