"""`run --explain` and the report: which cells are explained (a published number that differs), with what request,
and how each answer, or why there is none, shows under the report's Findings."""

import json

from runner.explain.gaps import explain_gaps, explanations, gaps, request_for
from runner.explain.run import answer_folder
from runner.explain.ranking import rank, verdict as explain_verdict
from runner.report.explanations import SHOWN, render_html, render_markdown
from runner.report.findings import render_findings
from runner.report.html import _findings
from runner.verdicts.judge import Judgement
from runner.verdicts.verdict import Verdict

from .test_explain_ranking import META, simulated_run

PUBLISHED = {"top1_error": 23.85, "top5_error": 7.13}


def result(cell_id, env, model, weights="pretrained", images=200, root="/data/val"):
    return {"cell_id": cell_id, "environment": env, "model": model, "framework": "torchvision", "suite": "error",
            "status": "ok", "metrics": {"images_evaluated": images},
            "provenance": {"dataset": {"root": root, "labels_file": None, "limit": 0}, "weights": {"source": weights},
                           "seed": 3, "device_requested": "cpu", "threads_requested": 2}}


def published(cell_id, env, model, verdict, points):
    return Verdict(kind="published", framework="torchvision", model=model, engine="", before=None, after=env,
                   before_version="published", after_version="x", relation="published", verdict=verdict,
                   summary="reproduced vs published", evidence={"difference_points": points}, cells=(cell_id,))


def judged():
    results = [result("a" * 64, "torch-current", "resnet50"), result("b" * 64, "torch-1.0", "resnet50"),
               result("c" * 64, "torch-current", "mobilenet_v2")]
    verdicts = [published("a" * 64, "torch-current", "resnet50", "differs", 1.2),
                published("b" * 64, "torch-1.0", "resnet50", "reproduces", 0.1),
                published("c" * 64, "torch-current", "mobilenet_v2", "differs", 4.0)]
    return Judgement(verdicts=verdicts, fdr="bh", alpha=0.05), results


def answer(weights="pretrained", images=200, root="/data/val"):
    ranked = rank(simulated_run(), META, PUBLISHED)
    status, text = explain_verdict(ranked, PUBLISHED, weights, "published")
    return {"ranked": ranked, "recipe": "torchvision-224", "status": status, "verdict": text, "weights": weights,
            "dataset": {"root": root, "images": images}}


def write_answer(reports, env, model, content):
    folder = answer_folder(reports, env, model)
    folder.mkdir(parents=True)
    (folder / "explain.json").write_text(json.dumps(content))


def test_only_published_numbers_that_differ_are_explained_the_larger_gap_first():
    judgement, results = judged()
    assert [(r["environment"], r["model"]) for _, r in gaps(judgement, results)] == [
        ("torch-current", "mobilenet_v2"), ("torch-current", "resnet50")]
    assert gaps(None, results) == []


def test_the_request_sweeps_the_cells_own_images_weights_and_device():
    request = request_for(result("a" * 64, "torch-current", "resnet50", weights="file", root="/v"))
    assert (request.env, request.model, request.imagenet, request.weights, request.seed, request.device,
            request.threads, request.limit) == ("torch-current", "resnet50", "/v", "file", 3, "cpu", 2, None)


def test_each_gap_shows_its_answer_or_says_why_there_is_none(tmp_path):
    judgement, results = judged()
    write_answer(tmp_path, "torch-current", "resnet50", answer())
    entries = explanations(judgement, results, tmp_path)
    by_model = {e["result"]["model"]: e for e in entries}
    assert by_model["resnet50"]["answer"]["status"] == "explained" and by_model["resnet50"]["note"] is None
    assert by_model["mobilenet_v2"]["answer"] is None
    assert "not explained yet" in by_model["mobilenet_v2"]["note"] and "--explain" in by_model["mobilenet_v2"]["note"]
    failed = explanations(judgement, results, tmp_path, {("torch-current", "mobilenet_v2"): "no such thing"})
    assert [e["note"] for e in failed if e["result"]["model"] == "mobilenet_v2"] == [
        "explain could not run: no such thing"]


def test_an_answer_of_other_images_or_weights_is_not_shown_as_this_cells(tmp_path):
    judgement, results = judged()
    for model, content, said in (("resnet50", answer(weights="random"), "weights random"),
                                 ("mobilenet_v2", answer(images=30), "30 images")):
        write_answer(tmp_path, "torch-current", model, content)
        (entry,) = [e for e in explanations(judgement, results, tmp_path) if e["result"]["model"] == model]
        assert entry["answer"] is None and said in entry["note"] and "run it again" in entry["note"]


def test_the_report_shows_the_answers_under_the_findings(tmp_path):
    judgement, results = judged()
    write_answer(tmp_path / "reports", "torch-current", "resnet50", answer())
    entries = explanations(judgement, results, tmp_path / "reports")
    report_dir = tmp_path / "reports" / "run"
    markdown = render_findings(judgement, "../results/run", render_markdown(entries, report_dir))
    findings, why, verdicts = (markdown.index(h) for h in ("## Findings", "### Why they differ", "## Verdicts"))
    assert findings < why < verdicts
    part = markdown[why:verdicts]
    assert "**torch-current resnet50**: explained: the variant interpolation=bicubic" in part
    assert "(../explain/torch-current-resnet50/explain.md)" in part
    assert part.count("| interpolation=bicubic |") == 1
    table = [line for line in part.splitlines() if line.startswith("| ") and "---" not in line]
    assert table[0].startswith("| # | Variant |") and len(table) == 1 + min(SHOWN, len(META) + 1)
    assert "**torch-current mobilenet_v2**: not explained yet" in part
    html = _findings(judgement, "../results/run", render_html(entries, report_dir))
    assert html.index('<div id="explain">') < html.index("</section>")
    assert 'href="../explain/torch-current-resnet50/explain.md"' in html and "<td>interpolation=bicubic</td>" in html
    assert render_markdown([], report_dir) == "" and render_html([], report_dir) == ""


def test_a_backend_explain_cannot_use_is_said_not_run(tmp_path):
    judgement, results = judged()
    said = []
    failed = explain_gaps(None, judgement, results, "docker", None, tmp_path, said.append)
    assert set(failed) == {("torch-current", "resnet50"), ("torch-current", "mobilenet_v2")}
    assert all("venv or local backend, not docker" in reason for reason in failed.values())
    assert said and "2 error cell(s) differ" in said[0]
    assert not (tmp_path / "explain").exists()
