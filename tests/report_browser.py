"""report.html opened in headless Chromium and checked as a reader would meet it: every section there, in
order; every image decoded; no console error, exception, refused load or request off the page; tables
that sort. The browser test (tests/test_report_html.py) and the README's screenshot both come from here:

    .venv/bin/python -m tests.report_browser docs/report.png     # a small real MXNet run, its report, its picture

(needs the ImageNet val sample, the mxnet-1.5 and mxnet-1.9 environments, built or cached, and Chromium:
tests/browser-up.sh.)
"""

import argparse
import base64
import io
import json
import sys
import tempfile
from pathlib import Path

from .browser import Browser, BrowserError, find_chromium

# Runs in the page once it has loaded; its findings come back as JSON.
PAGE_CHECK = """
(function (expected) {
  var ids = Array.prototype.map.call(document.querySelectorAll("section[id]"), function (s) { return s.id; });
  var images = Array.prototype.map.call(document.images, function (img) {
    var section = img.closest("section[id]");
    return {alt: img.alt, section: section ? section.id : null, ok: img.complete && img.naturalWidth > 0,
            width: img.naturalWidth};
  });
  var unsorted = [];
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var headers = table.tHead.rows[0].cells, index = -1;
    for (var i = 0; i < headers.length; i++) {
      if (headers[i].getAttribute("data-type") === "number") { index = i; break; }
    }
    if (index < 0) { return; }
    [1, -1].forEach(function (direction) {
      headers[index].querySelector("button").click();
      var keys = Array.prototype.map.call(table.tBodies[0].rows, function (row) {
        return parseFloat(row.cells[index].getAttribute("data-sort"));
      }).filter(function (x) { return !isNaN(x); });
      for (var k = 1; k < keys.length; k++) {
        if ((keys[k] - keys[k - 1]) * direction < 0) { unsorted.push(table.id + " column " + index); break; }
      }
    });
  });
  return JSON.stringify({
    sections: ids,
    missing: expected.filter(function (id) { return ids.indexOf(id) < 0; }),
    images: images,
    unsorted: unsorted,
    text: document.body.innerText
  });
})
"""


class PageCheck:
    """What the browser found on a report page."""

    def __init__(self, found, problems, expected):
        self.sections, self.missing, self.images = found["sections"], found["missing"], found["images"]
        self.unsorted, self.text, self.problems, self.expected = found["unsorted"], found["text"], problems, expected

    @property
    def broken(self):
        return [image for image in self.images if not image["ok"]]

    def out_of_order(self):
        present = [i for i in self.sections if i in self.expected]
        return present != [i for i in self.expected if i in present]

    def images_in(self, section):
        return [image for image in self.images if image["section"] == section]

    def failures(self):
        """Everything wrong with the page, one line each (empty when it is right)."""
        lines = ["console/network: {}".format(p) for p in self.problems]
        lines += ["missing section #{}".format(i) for i in self.missing]
        lines += ["broken image {!r} in #{}".format(i["alt"], i["section"]) for i in self.broken]
        lines += ["table does not sort: {}".format(t) for t in self.unsorted]
        if self.out_of_order():
            lines.append("sections out of order: {}".format(self.sections))
        return lines


def open_report(html_path, expected_sections, work_dir, screenshot=None, readme_png=None):
    """Load `html_path` in Chromium, check it, and save a full-page screenshot and/or the README's picture."""
    executable = find_chromium()
    if executable is None:
        raise BrowserError("no chromium here (tests/browser-up.sh installs it)")
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=str(work_dir)))
    with Browser(executable, profile) as browser:
        session = browser.open_page(Path(html_path).resolve().as_uri())
        if readme_png is not None:  # taken before the check clicks the tables
            Path(readme_png).write_bytes(readme_picture(browser, session))
        found = json.loads(browser.evaluate(session, "{}({})".format(PAGE_CHECK, json.dumps(list(expected_sections)))))
        if screenshot is not None:
            Path(screenshot).write_bytes(browser.screenshot(session, full_page=True))
        return PageCheck(found, browser.problems(session), list(expected_sections))


def readme_picture(browser, session, width=1280, scale=0.6, colours=128):
    """The top of the page (summary, findings and the first framework's first plots), scaled down and
    reduced to a palette so that it stays small in the repository."""
    from PIL import Image

    bottom = browser.evaluate(session, """(function () {
        var next = document.querySelector("section.framework [id$='-cold-start']");
        return next ? next.getBoundingClientRect().top + window.scrollY : Math.min(document.body.scrollHeight, 1600);
    })()""")
    data = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": width, "height": bottom, "scale": scale}}, session=session)["data"]
    image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=colours, method=Image.Quantize.FASTOCTREE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def small_real_run(work, sample, run="small"):
    """The real mxnet-1.5 and mxnet-1.9 rows, resnet50, random weights, on the 30-image sample (venv backend,
    cached environments): error, throughput and drift results and their report. (exit code, output, report dir)"""
    from runner.cli import main

    from .matrices import FAST_SUITES, write_matrix

    matrix = write_matrix(work, suites=FAST_SUITES)
    out = io.StringIO()
    code = main(["run", "--matrix", str(matrix), "--backend", "venv", "--weights", "random", "--imagenet", str(sample),
                 "--results-dir", str(Path(work) / "results"), "--reports-dir", str(Path(work) / "reports"),
                 "--run", run, "--env", "mxnet-1.5", "--env", "mxnet-1.9", "--model", "resnet50"], out=out)
    return code, out.getvalue(), Path(work) / "reports" / run


def main(argv=None):
    from runner.report.html import expected_sections

    from .conftest import sample_dir

    parser = argparse.ArgumentParser(description="the README's picture of report.html, from a small real run")
    parser.add_argument("out", help="the PNG to write, e.g. docs/report.png")
    args = parser.parse_args(argv)
    sample = sample_dir()
    if sample is None:
        raise SystemExit("the ImageNet val sample is not here (DLMATRIX_SAMPLE=DIR)")
    with tempfile.TemporaryDirectory(prefix="report-browser-") as work:
        code, out, report_dir = small_real_run(work, sample)
        if code != 0:
            raise SystemExit("the run failed:\n" + out)
        check = open_report(report_dir / "report.html", expected_sections(["gluoncv"]), work, readme_png=args.out)
    if check.failures():
        raise SystemExit("the page is not right:\n" + "\n".join(check.failures()))
    print("{}: {} bytes".format(args.out, Path(args.out).stat().st_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
