"""Pieces of report.html shared by its sections: escaping, sortable tables, links to the result files,
and the release order of a framework's versions."""

from dataclasses import dataclass
from html import escape

from ..results import engine_label
from ..verdicts.pairs import package_versions, version_key


def esc(value):
    return escape("" if value is None else str(value), quote=True)


def number(value, digits=2, suffix=""):
    """(html, sort key) of a number; '-' (sorted last) where there is none."""
    if value is None or value == "":
        return ("-", "")
    return ("{:.{}f}{}".format(value, digits, suffix), "{!r}".format(float(value)))


def significant(value, digits=3):
    """(html, sort key) with `digits` significant digits, for values spanning decades (output differences)."""
    if value is None or value == "":
        return ("-", "")
    return ("{:.{}g}".format(value, digits), "{!r}".format(float(value)))


def percent(fraction, digits=0):
    if fraction is None or fraction == "":
        return ("-", "")
    return ("{:.{}f}%".format(100 * fraction, digits), "{!r}".format(float(fraction)))


def yes_no(value):
    return {True: "yes", False: "no"}.get(value, "-")


def table(table_id, columns, rows, caption=""):
    """A sortable table (the page's script sorts on a header click). columns: [(title, "text"|"number")];
    rows: [[cell]], a cell being html text or (html, sort key)."""
    out = ['<table class="sortable" id="{}">'.format(esc(table_id))]
    if caption:
        out.append("<caption>{}</caption>".format(caption))
    out.append("<thead><tr>")
    for title, kind in columns:
        out.append('<th data-type="{}" aria-sort="none"><button type="button">{}</button></th>'.format(kind, title))
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = []
        for cell in row:
            html, key = cell if isinstance(cell, tuple) else (cell, None)
            cells.append("<td>{}</td>".format(html) if key is None else
                         '<td data-sort="{}">{}</td>'.format(esc(key), html))
        out.append("<tr>{}</tr>".format("".join(cells)))
    out.append("</tbody></table>")
    return "\n".join(out)


def result_links(results_link, *cell_ids):
    """Links to each cell's result JSON and log (results/<run>/<id>.json, logs/<id>.log)."""
    parts = []
    for cell_id in cell_ids:
        parts.append('<a href="{0}/{1}.json" title="result {1}">{2}</a>&nbsp;<a href="{0}/logs/{1}.log" '
                     'title="log of {1}">log</a>'.format(esc(results_link), esc(cell_id), esc(cell_id[:8])))
    return "<br>".join(parts)


@dataclass(frozen=True)
class Version:
    """One environment (with its engine settings) of a framework: a point on the plots' version axis."""

    environment: str
    engine: str
    packages: str  # "1.5.1 / 0.5.0"
    key: tuple

    @property
    def label(self):
        engine = " [{}]".format(self.engine) if self.engine else ""
        return "{}{}\n{}".format(self.environment, engine, self.packages) if self.packages else \
            self.environment + engine

    @property
    def text(self):
        return self.label.replace("\n", " ")


def version_of(result):
    versions = package_versions(result)
    return Version(environment=result["environment"], engine=engine_label(result),
                   packages=" / ".join(v for v in versions.values() if v),
                   key=version_key(result) + (engine_label(result),))


def versions_in_order(results):
    """The distinct versions of `results` (one framework's), oldest release first."""
    found = {}
    for result in results:
        version = version_of(result)
        found.setdefault((version.environment, version.engine), version)
    return sorted(found.values(), key=lambda v: v.key)


def version_axis_label(framework_packages):
    return "environment ({}), oldest first".format(" / ".join(framework_packages))
