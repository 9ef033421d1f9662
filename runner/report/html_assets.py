"""The style sheet and the one script of report.html, inlined: the page loads nothing from anywhere."""

# The page may load nothing: no fonts, scripts, styles or images from outside (it has to open on an
# air-gapped host and as an e-mail attachment); a browser refuses any such load and says so.
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                           "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")

CSS = """
:root { --ink: #1b1b1b; --muted: #5b5b5b; --rule: #d0d0d0; --band: #f4f4f4; --accent: #0b5394; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       background: #fff; }
header, main { max-width: 1240px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; border-bottom: 2px solid var(--ink); }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.35em; margin: 34px 0 8px; border-bottom: 1px solid var(--rule); padding-bottom: 3px; }
h3 { font-size: 1.1em; margin: 24px 0 6px; }
h4 { font-size: 1em; margin: 16px 0 4px; }
p, li { max-width: 62em; }
.muted, caption { color: var(--muted); }
nav ul { list-style: none; padding: 0; margin: 8px 0 12px; display: flex; flex-wrap: wrap; gap: 4px 16px; }
a { color: var(--accent); }
code { background: var(--band); padding: 0 3px; }
figure { margin: 10px 0 18px; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.9em; }
.gpu-cells { display: flex; flex-wrap: wrap; gap: 8px 18px; }
.gpu-cells figure { flex: 0 1 540px; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; padding: 0; list-style: none; }
.counts li { border: 1px solid var(--rule); border-radius: 4px; padding: 3px 10px; }
.counts li.zero { color: var(--muted); border-style: dashed; }
.badge { display: inline-block; border-radius: 3px; padding: 0 6px; font-weight: bold; font-size: 0.9em;
         border: 1px solid currentColor; white-space: nowrap; }
.regression { color: #a50026; }
.differs { color: #b35806; }
.change { color: #0b5394; }
.quiet { color: var(--muted); }
ul.findings li { margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0 18px; font-size: 0.86em; }
caption { text-align: left; padding: 2px 0 6px; font-size: 1.05em; }
th, td { border: 1px solid var(--rule); padding: 3px 7px; vertical-align: top; text-align: left; }
td[data-sort] { text-align: right; white-space: nowrap; }
thead th { background: var(--band); position: sticky; top: 0; }
th button { all: unset; cursor: pointer; font-weight: bold; }
th button:focus-visible { outline: 2px solid var(--accent); }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
.reason { max-width: 48em; }
section.framework { border-top: 3px solid var(--ink); margin-top: 40px; }
@media print {
  body { font-size: 10.5pt; }
  nav, th button::after { display: none; }
  header, main { max-width: none; padding: 0; }
  figure, tr { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  thead th { position: static; }
  a { color: inherit; text-decoration: none; }
}
"""

# Sorts a table.sortable on a click of its header: numbers by their data-sort key (a cell without one,
# '-', last), text alphabetically; a second click reverses.
SCRIPT = """
(function () {
  function key(cell, numeric) {
    if (!cell) { return numeric ? null : ""; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (!numeric) { return raw.toLowerCase(); }
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }
  function sortBy(table, th, index) {
    var numeric = th.getAttribute("data-type") === "number";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index], numeric), y = key(b.cells[index], numeric);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * (ascending ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.querySelector("button").addEventListener("click", function () { sortBy(table, th, index); });
    });
  });
}());
"""
