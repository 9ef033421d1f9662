"""report.html: a self-contained page with the findings first and a plot of every comparison, checked
in a real browser (headless Chromium, tests/browser-up.sh). Without Chromium the browser tests skip,
unless DLMATRIX_REQUIRE_BROWSER=1 (CI sets it), where a missing browser is a failure.

The GPU part is tested on results shaped as the probe writes them on a GPU: the telemetry series in
the probe's own telemetry.csv format (write_series) and the summary its summarise() makes of it.
"""

import base64
import html
import re
import xml.etree.ElementTree as ElementTree

import pytest

from runner.matrix import load_matrix
from runner.probe.telemetry_summary import summarise, write_series
from runner.report import write_report
from runner.report.html import expected_sections

from .matrices import REAL
from .report_browser import open_report, small_real_run

GPU = "NVIDIA H100 80GB HBM3"
MODELS = ("resnet101", "densenet121", "inception_v3", "mobilenet_v2", "resnet101")
REASONS = {  # every status a cell can end with but ok, each with the kind of reason the runner records
    "failed": "pip install failed: No matching distribution found for pillow==0.0.1 <see the build log>",
    "skipped": "not available in this version: torchvision 0.2.2 has no model 'mobilenet_v2'",
    "timeout": "timed out after 900 s (suite timeout_s); the cell's process tree was killed",
    "out_of_memory": "killed for memory (memory_limit 8g)",
    "interrupted": "stopped by the user (Ctrl-C) before the cell finished",
}


def _series(peak_util, peak_power):
    """Polled rows as the probe's sampler makes them (t_s, util %, MiB, W, SM MHz, mem MHz, C); one poll
    found no power reading (NVML's None)."""
    rows = []
    for i in range(12):
        ramp = min(1.0, (i + 1) / 4.0)
        rows.append((round(0.2 * i, 3), round(peak_util * ramp), 20480.0 + 10 * i,
                     None if i == 5 else round(60 + (peak_power - 60) * ramp, 2), 1980, 2619, 50 + i))
    return rows


def _result(cell_id, env, versions, suite, status="ok", metrics=None, device="cuda", files=None, model="resnet50",
            framework="torchvision"):
    gpu = device.startswith("cuda")
    return {
        "schema_version": 1, "cell_id": cell_id, "environment": env, "framework": framework, "model": model,
        "suite": suite, "status": status, "reason": REASONS.get(status), "metrics": metrics,
        "ended_at": "2026-11-30T00:00:00+00:00", "files": files or {},
        "provenance": {
            "device_requested": device, "packages": versions, "python": {"version": "3.11.9"},
            "device": {"framework_device": "cuda:0" if gpu else "cpu", "gpu_name": GPU if gpu else None,
                       "driver": "550.54.15" if gpu else None},
            "host": {"hostname": "gpu-host", "cpu_model": "AMD EPYC 9654", "cpu_count": 16, "cpu_quota": 12.0},
            "runner": {"backend": "docker", "environment": {"image": "dlmatrix/{}:0123abcd".format(env)}},
            "weights": {"source": "pretrained"}}}


def _gpu_throughput(results_dir, cell_id, env, versions):
    series, batches = [], []
    for batch, util, power, fraction in ((1, 38, 140.0, 0.021), (16, 96, 610.0, 0.43)):
        rows = _series(util, power)
        series += [("batch {}".format(batch), row) for row in rows]
        batches.append({
            "batch_size": batch, "images_per_s": 150.0 * batch, "images_per_s_range": [140.0 * batch, 155.0 * batch],
            "latency_ms": {"p50": 6.0, "p90": 7.0, "p99": 8.0},
            "telemetry": summarise(rows, [], [], [], 1000, 1000 + 400000 * batch, 2.4, 360 * batch, [], 2100.0, {},
                                   0.2),
            "fraction_of_peak": {"status": "ok", "peak": "tf32", "peak_tflops": 494.7, "fraction": fraction,
                                 "why": "torch.backends.cudnn.allow_tf32 is True (PyTorch's default for convolutions: "
                                        "True)"}})
    write_series(str(results_dir / (cell_id + ".telemetry.csv")), series)
    return _result(cell_id, env, versions, "throughput", files={"telemetry": cell_id + ".telemetry.csv"},
                   metrics={"cold_start_s": 7.5, "batches": batches, "telemetry_source": {"status": "ok", "gpu": GPU}})


def _cpu_throughput(cell_id):
    unavailable = {"status": "unavailable", "reason": "device is cpu: there is no GPU to read"}
    return _result(cell_id, "mxnet-1.9", {"mxnet": "1.9.1", "gluoncv": "0.10.5.post0"}, "throughput", device="cpu",
                   framework="gluoncv", metrics={"cold_start_s": 4.4, "batches": [
                       {"batch_size": 1, "images_per_s": 14.2, "images_per_s_range": [14.0, 14.3],
                        "latency_ms": {"p50": 69.0, "p90": 75.0, "p99": 76.0}, "telemetry": unavailable}]})


@pytest.fixture
def gpu_report(tmp_path):
    """A GPU run's report: two torch versions with telemetry series, a CPU-only MXNet cell, and one cell of
    every status that gives no number."""
    results_dir = tmp_path / "results" / "gpu"
    results_dir.mkdir(parents=True)
    new, old = {"torch": "2.14.1", "torchvision": "0.29.1"}, {"torch": "1.0.1", "torchvision": "0.2.2"}
    results = [_gpu_throughput(results_dir, "c0ffee01", "torch-current", new),
               _gpu_throughput(results_dir, "c0ffee02", "torch-1.0", old), _cpu_throughput("c0ffee03")]
    for i, (status, model) in enumerate(zip(sorted(REASONS), MODELS)):
        env, versions = ("torch-1.0", old) if i < 4 else ("torch-current", new)
        results.append(_result("bad0000{}".format(i), env, versions, "throughput", status=status, model=model))
    report = write_report(load_matrix(REAL), results, [], [], tmp_path / "reports" / "gpu", "gpu",
                          results_dir=results_dir)
    return {"html": report / "report.html", "results": results, "results_dir": results_dir, "tmp": tmp_path}


def section(page, section_id):
    """The html of a section that holds no other section."""
    start = page.index('id="{}"'.format(section_id))
    return page[start:page.index("</section>", start)]


def svgs(html):
    """The SVG documents of the section's images, parsed (an image that is not well-formed XML fails here)."""
    uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    return [ElementTree.fromstring(base64.b64decode(uri)) for uri in uris]


def svg_text(tree):
    return " ".join(t.strip() for t in tree.itertext() if t.strip())


def test_gpu_utilisation_and_power_are_plotted_per_cell_from_the_telemetry_series(gpu_report):
    page = gpu_report["html"].read_text()
    gpu = section(page, "torchvision-gpu")
    plots = svgs(gpu)
    assert len(plots) == 2, "one figure per cell with telemetry"
    text = svg_text(plots[0])
    for label in ("GPU utilisation (%)", "board power (W)", "time in the timed window (s)",
                  "batch 16 (43% of TF32 peak)", "batch 1 (2% of TF32 peak)"):
        assert label in text, label
    # the table below the plots: NVML's mean over the window, as summarise() computed it from the same rows
    summary = gpu_report["results"][0]["metrics"]["batches"][1]["telemetry"]
    tables = section(page, "torchvision-tables")
    row = re.search(r'<tr><td>torch-current 2\.14\.1 / 0\.29\.1</td><td>resnet50</td><td>batch 16</td>(.*?)</tr>',
                    tables).group(1)
    assert ">{:.0f}</td>".format(summary["gpu_utilization_pct"]["mean"]) in row
    assert ">{:.1f}</td>".format(summary["power_w"]["mean"]) in row
    assert ">43.0%</td>" in row and 'href="../../results/gpu/c0ffee01.json"' in row
    assert "<td>ok</td>" in row  # 12 polls at 96%: enough samples for a verdict
    assert "<td>TF32: torch.backends.cudnn.allow_tf32 is True (PyTorch&#x27;s default" in row
    first = re.search(r'<td>resnet50</td><td>batch 1</td>(.*?)</tr>', tables).group(1)
    assert "<td>low (under 50% on average)</td>" in first
    assert "no GPU telemetry in this run" not in gpu
    assert "no GPU telemetry in this run (device is cpu: there is no GPU to read)" in section(page, "gluoncv-gpu")


def test_a_missing_series_file_is_said_not_fatal(gpu_report):
    (gpu_report["results_dir"] / "c0ffee01.telemetry.csv").unlink()
    report = write_report(load_matrix(REAL), gpu_report["results"], [], [], gpu_report["tmp"] / "again", "gpu",
                          results_dir=gpu_report["results_dir"])
    gpu = section((report / "report.html").read_text(), "torchvision-gpu")
    assert len(svgs(gpu)) == 1
    assert "telemetry series c0ffee01.telemetry.csv unreadable" in gpu


def test_every_cell_that_gave_no_number_has_its_row_with_the_reason_and_its_mark(gpu_report):
    page = gpu_report["html"].read_text()
    summary = section(page, "summary")
    for status in ("ok", "failed", "skipped", "timeout", "out of memory", "interrupted"):
        expected = 3 if status == "ok" else 1
        assert "<strong>{}</strong> {}</li>".format(expected, status) in summary, status
    not_ok = section(page, "not-ok")
    rows = re.findall(r"<tr>(.*?)</tr>", not_ok.split("<tbody>")[1])
    assert len(rows) == len(REASONS)
    for status, reason in REASONS.items():
        assert any(">{}</td>".format(status.replace("_", " ")) in row and
                   '<span class="reason">{}</span>'.format(html.escape(reason)) in row
                   for row in rows), status
    # each is marked at its version in its model's throughput panel, not left out
    marks = svg_text(svgs(section(page, "torchvision-throughput"))[0])
    for status in REASONS:
        assert status.replace("_", " ") in marks, status
    assert GPU in summary and "550.54.15" in summary and "dlmatrix/torch-current:0123abcd" in summary
    assert "gpu-host (AMD EPYC 9654, 16 CPUs, a CPU quota of 12)" in summary


def test_the_page_loads_nothing(gpu_report):
    page = gpu_report["html"].read_text()
    assert not re.search(r'<(link|iframe|object|embed)\b', page)
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    assert "default-src 'none'" in page  # the browser refuses any load the page might still try


def test_the_checker_fails_a_bad_page(tmp_path, chromium):
    """The browser check is able to fail: a broken image, a console error, a script error, a request off the
    page and a missing section are each found."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><section id="summary"><img alt="truncated" '
                   'src="data:image/svg+xml;base64,PHN2Zz48"></section><script>console.error("plot failed");'
                   'undefinedFunction();</script><img alt="remote" src="http://192.0.2.1/plot.png"></body></html>')
    check = open_report(bad, ["summary", "findings"], tmp_path)
    failures = "\n".join(check.failures())
    assert "missing section #findings" in failures
    assert "broken image 'truncated' in #summary" in failures
    assert "console.error: plot failed" in failures
    assert "undefinedFunction" in failures
    assert "request to http://192.0.2.1/plot.png" in failures


def test_a_gpu_run_report_opens_clean_in_chromium(gpu_report, chromium, tmp_path):
    shot = tmp_path / "report.png"
    check = open_report(gpu_report["html"], expected_sections(["torchvision", "gluoncv"]), tmp_path, screenshot=shot)
    assert check.failures() == []
    assert len(check.images_in("torchvision-gpu")) == 2 and all(i["width"] > 300 for i in check.images)
    assert shot.stat().st_size > 10000


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, sample):
    work = tmp_path_factory.mktemp("report-html")
    code, out, report_dir = small_real_run(work, sample)
    assert code == 0, out
    return {"work": work, "report": report_dir}


@pytest.mark.slow
def test_the_report_of_a_real_run_in_chromium(real_run, chromium, tmp_path):
    """mxnet-1.5 and mxnet-1.9 for real (error, throughput, drift on the 30 sample images): every section,
    every plot decoded, no console error, sortable tables; a screenshot of the page and the README's picture."""
    assert sorted(p.name for p in real_run["report"].iterdir()) == [
        "drift.csv", "report.csv", "report.html", "report.json", "report.md", "verdicts.csv"]
    shot, top = tmp_path / "report.png", tmp_path / "report-top.png"
    check = open_report(real_run["report"] / "report.html", expected_sections(["gluoncv"]), tmp_path,
                        screenshot=shot, readme_png=top)
    assert check.failures() == []
    for part in ("error", "throughput", "cold-start", "drift"):
        assert len(check.images_in("gluoncv-" + part)) == 1, part
    assert "no GPU telemetry in this run (device is cpu: there is no GPU to read)" in check.text
    assert "mxnet-1.5 -> mxnet-1.9" in check.text and "None: every cell ran and gave its numbers." in check.text
    assert shot.stat().st_size > 50000 and 10000 < top.stat().st_size < 200 * 1024


def test_the_committed_report_of_a_real_gpu_run_opens_clean_in_chromium(chromium, tmp_path):
    """reports/reference/gpu-h200-torch-current: the current PyTorch row on an H200 (benchmarks/gpu_host.sh), fp32
    and bf16: every section, every GPU plot decoded, no console error, and the windows judged, not flagged low."""
    from .matrices import ROOT

    page = ROOT / "reports" / "reference" / "gpu-h200-torch-current" / "report.html"
    check = open_report(page, expected_sections(["torchvision"]), tmp_path, screenshot=tmp_path / "gpu.png")
    assert check.failures() == []
    assert len(check.images_in("torchvision-gpu")) >= 5 and all(i["width"] > 300 for i in check.images)
    assert "NVIDIA H200" in check.text
    # the peak each row was measured against, and why: fp32 rows against TF32 (PyTorch lets cuDNN use it), bf16 ones
    assert "\tTF32: torch.backends.cudnn.allow_tf32 is True" in check.text and "\tBF16: precision bf16" in check.text
