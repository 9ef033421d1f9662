"""`dlmatrix explain`: bad flags are one clear message (exit 2); for real, in each row's environment
(venv backend), it names a variant planted on the 30 real val images.

The planted check: a seeded random network (recentred: its output bias set so the top-1 class varies across
the images) is explained once against the true labels; the labels it gives under one known non-official
variant are written as a labels file (val_labels.txt layout) and passed as --published-labels; explained
again, the command must name that variant.
"""

import io
import json
import os
import shlex

import pytest

from runner.cli import main
from runner.explain.ranking import read_predictions

from .conftest import ROOT, sample_dir


def run_cli(args):
    out = io.StringIO()
    code = main(args, out=out)
    return code, out.getvalue()


@pytest.mark.parametrize("args, message", [
    (["--env", "torch-9", "--model", "resnet50"], "--env torch-9: no such environment in"),
    (["--env", "torch-current", "--model", "vgg"], "--model vgg: no such model in"),
    (["--env", "torch-1.0", "--model", "mobilenet"], "--model mobilenet: environment torch-1.0 does not run it"),
    (["--env", "torch-current", "--model", "resnet50"], "explain needs the val set: --imagenet DIR"),
    (["--env", "torch-current", "--model", "resnet50", "--imagenet", "x", "--labels", "{labels}",
      "--published-labels", "{labels}"], "--published-labels replaces --labels"),
    (["--env", "torch-current", "--model", "resnet50", "--imagenet", "x", "--published-labels", "{missing}"],
     "--published-labels {missing}: file not found"),
    (["--env", "torch-current", "--model", "resnet50", "--imagenet", "x", "--pair-values", "0"],
     "--pair-values 0: expected 1 or more"),
    (["--env", "torch-current", "--model", "resnet50", "--imagenet", "{missing}", "--weights", "random"],
     "--imagenet {missing} (make IMAGENET=): ImageNet val set '{missing}': not a directory"),
    (["--env", "torch-current", "--model", "resnet50", "--limit", "0"], "--limit 0: expected a number of images"),
])
def test_bad_flags_are_one_message_and_exit_2(tmp_path, capsys, args, message):
    labels = tmp_path / "labels.txt"
    labels.write_text("a.JPEG n01440764\n")
    paths = {"labels": str(labels), "missing": str(tmp_path / "missing")}
    args = [a.format(**paths) for a in args]
    code, out = run_cli(["explain", "--matrix", str(ROOT / "matrix.toml"), "--reports-dir", str(tmp_path)] + args)
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert "error: " + message.format(**paths) in err and "Traceback" not in err
    assert not (tmp_path / "explain").exists()


# row: (model, the variant planted). Keras' random MobileNets answer 1/1000 everywhere (see
# tests/probe/test_explain_suite.py), so its row explains DenseNet121. One row per framework through the whole
# command (about 2 min each on 2 cores); the in-cell suite names a planted variant in every row's own
# environment (tests/probe/test_explain_suite.py, run by each tox probe env).
PLANTED = {
    "torch-current": ("mobilenet_v2", "interpolation=bicubic"),
    "tf-current": ("densenet121", "normalisation=caffe"),
    "mxnet-1.9": ("mobilenet_v2", "resize_with=pillow"),
}


@pytest.mark.slow
@pytest.mark.parametrize("row", list(PLANTED))
def test_explain_names_the_planted_variant(row, tmp_path, monkeypatch):
    sample = sample_dir()
    if sample is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    monkeypatch.setenv("DLMATRIX_CACHE", str(tmp_path / "crops"))  # the crop cache, in the test's own folder
    model, planted = PLANTED[row]
    common = ["explain", "--matrix", str(ROOT / "matrix.toml"), "--env", row, "--model", model, "--imagenet",
              str(sample), "--weights", "random"]
    first_dir = tmp_path / "first"
    code, out = run_cli(common + ["--pair-axes", "0", "--reports-dir", str(first_dir)])
    assert code == 0, out
    folder = first_dir / "explain" / "{}-{}".format(row, model)
    predictions = read_predictions(str(folder / "explain_predictions.csv"))
    with open(os.path.join(str(sample), "synsets.txt")) as handle:
        wnids = sorted(line.split()[0] for line in handle if line.strip())
    labels = tmp_path / "published_labels.txt"
    labels.write_text("".join("{} {}\n".format(os.path.basename(rel), wnids[top[0]])
                              for rel, (_, top) in sorted(predictions[planted].items())))

    code, out = run_cli(common + ["--published-labels", str(labels), "--reports-dir", str(tmp_path / "second")])
    assert code == 0, out
    answer = json.loads((tmp_path / "second" / "explain" / "{}-{}".format(row, model) / "explain.json").read_text())
    top = answer["ranked"][0]
    assert top["name"] == planted and top["top1_error"] == 0.0
    # explained where 30 images can tell the planted variant from the official recipe, else named as the one inside
    assert answer["status"] == ("explained" if top["vs_official"]["q_value"] < 0.05 else "inconclusive"), \
        answer["verdict"]
    assert answer["verdict"].startswith("the variant {} (".format(planted))
    assert answer["dataset"]["images"] == 30 and answer["recentred"] and answer["reference"] == "labels"
    official = next(e for e in answer["ranked"] if e["name"] == "official")
    assert not official["top1_inside"] and official["top1_error"] > 0
    e = answer["evaluations"]
    assert e["total"] == 1 + e["single_axis"] + e["pairs"] == len(answer["ranked"])
    assert "the variant {} (".format(planted) in out and "explain.md" in out
    markdown = (tmp_path / "second" / "explain" / "{}-{}".format(row, model) / "explain.md").read_text()
    assert "| 1 | {} |".format(planted) in markdown and "Made by `dlmatrix explain" in markdown


@pytest.fixture(scope="module")
def explained_run(tmp_path_factory):
    """A weights file (a seeded network saved by the row's own torch) is "the published weights" to the matrix, so
    its error cell is judged against the published number, differs, and `run --explain` sweeps it."""
    sample = sample_dir()
    if sample is None:
        pytest.skip("the ImageNet val sample (../shared/data/imagenet-val-sample) is not here")
    import hashlib
    import subprocess

    work = tmp_path_factory.mktemp("run-explain")
    common = ["--env", "torch-current", "--model", "mobilenet_v2", "--imagenet", str(sample), "--limit", "8",
              "--suite", "error", "--results-dir", str(work / "results"), "--reports-dir", str(work / "reports")]
    code, out = run_cli(["run", "--matrix", str(ROOT / "matrix.toml"), "--weights", "random", "--run", "build"] + common)
    assert code == 0, out
    (built,) = [json.loads(p.read_text()) for p in (work / "results" / "build").glob("*.json")]
    python = built["provenance"]["python"]["executable"]  # the row's environment
    weights = work / "mobilenet_v2.pth"
    subprocess.run([python, "-c", "import sys, torch, torchvision; torch.manual_seed(0); "
                    "torch.save(torchvision.models.mobilenet_v2().state_dict(), sys.argv[1])", str(weights)], check=True)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    entry = '[models.mobilenet_v2.torchvision]\nname = "mobilenet_v2"\n'
    text = (ROOT / "matrix.toml").read_text()
    assert entry in text
    matrix = work / "matrix.toml"
    matrix.write_text(text.replace(entry, entry + 'weights_file = {{ path = "{}", sha256 = "{}" }}\n'.format(
        weights, digest)))
    (work / "locks").symlink_to(ROOT / "locks")
    code, out = run_cli(["run", "--matrix", str(matrix), "--weights", "file", "--run", "file", "--explain"] + common)
    assert code == 0, out
    return {"work": work, "matrix": matrix, "report": work / "reports" / "file"}


@pytest.mark.slow
def test_run_explain_sweeps_a_cell_that_differs_and_the_report_shows_it(explained_run):
    """The answer is written where `explain` writes it, and report.md and report.html show it under the Findings;
    `report` alone shows it again."""
    work, matrix = explained_run["work"], explained_run["matrix"]
    folder = work / "reports" / "explain" / "torch-current-mobilenet_v2"
    answer = json.loads((folder / "explain.json").read_text())
    assert answer["weights"] == "file" and answer["dataset"]["images"] == 8 and not answer["recentred"]
    assert answer["reference"] == "published" and answer["published"]["top1_error"] > 20
    report = (explained_run["report"] / "report.md").read_text()
    why = report[report.index("### Why they differ"):report.index("## Verdicts")]
    assert "**torch-current mobilenet_v2**: {}: ".format(answer["status"]) in why
    assert "(../explain/torch-current-mobilenet_v2/explain.md)" in why and "| 1 | " in why
    assert "**differs** torchvision mobilenet_v2" in report[:report.index("### Why they differ")]
    html = (explained_run["report"] / "report.html").read_text()
    assert '<div id="explain">' in html and html.index('<div id="explain">') < html.index('<section id="verdicts">')

    (explained_run["report"] / "report.md").unlink()
    code, out = run_cli(["report", "--matrix", str(matrix), "--run", "file", "--results-dir", str(work / "results"),
                         "--reports-dir", str(work / "reports")])
    assert code == 0, out
    assert why in (explained_run["report"] / "report.md").read_text()


@pytest.mark.slow
def test_the_explain_section_opens_clean_in_chromium(explained_run, chromium, tmp_path):
    from runner.report.html import expected_sections

    from .report_browser import open_report

    check = open_report(explained_run["report"] / "report.html", expected_sections(["torchvision"]), tmp_path)
    assert check.failures() == []
    assert "Why they differ: the preprocessing sweep" in check.text and "torch-current mobilenet_v2" in check.text


def test_the_recorded_command_is_the_console_script_and_parses_back_to_the_same_request():
    """explain.md says `Made by ...`: a reader pastes it into a shell, so it must be the command a user has
    (the console script) and must ask for the same evaluation."""
    from runner.cli import build_parser
    from runner.explain.cli import _command

    parser = build_parser()
    asked = parser.parse_args(["explain", "--env", "torch-current", "--model", "resnet50", "--imagenet", "/val set",
                               "--limit", "500", "--weights", "random", "--seed", "3", "--pair-axes", "2",
                               "--backend", "local", "--matrix", "other.toml"])
    words = shlex.split(_command(asked))
    assert words[:2] == ["dlmatrix", "explain"]
    again = parser.parse_args(words[1:])
    for field in ("env", "model", "imagenet", "limit", "weights", "seed", "pair_axes", "pair_values", "backend",
                  "matrix", "labels_file", "published_labels", "device", "threads"):
        assert getattr(again, field) == getattr(asked, field), field
