"""The plots of report.html: matplotlib figures drawn to SVG, each returned as a data: URI to inline.

Figures are made with matplotlib's object API (Figure, never pyplot), so no GUI backend is chosen
and no figure is kept between calls; matplotlib is imported only when a plot is drawn. Text stays
text in the SVG (svg.fonttype none): sharp in print and searchable. The SVG ids are salted with a
fixed value and no date is written, so the same results give the same page.

Every panel names its axes with units; series differ by marker as well as colour (Okabe-Ito
palette), so a greyscale print still tells them apart.
"""

import base64
import io
import math

STYLE = {
    "svg.fonttype": "none", "svg.hashsalt": "dlmatrix-report", "font.family": "DejaVu Sans", "font.size": 9,
    "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "axes.grid": True, "grid.color": "#d9d9d9", "grid.linewidth": 0.6, "axes.spines.top": False,
    "axes.spines.right": False, "axes.axisbelow": True, "legend.frameon": False,
}
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
# Drift verdicts from the kindest to the worst; the grid's legend follows this order.
DRIFT_COLOURS = {
    "bit-identical": "#1a9850", "numerically close": "#a6d96a", "outputs differ": "#fee08b",
    "predictions changed": "#f46d43", "cannot load": "#a50026", "not compared": "#d9d9d9",
}
STATUS_GREY = "#777777"


def _render(panels, columns, size, draw, rows_of=None, sharex=False):
    """Lay out `panels` axes (`columns` wide, each `size` inches) and let draw(axes_list) fill them; SVG URI."""
    import matplotlib
    from matplotlib.figure import Figure

    columns = max(1, min(columns, panels))
    rows = rows_of or math.ceil(panels / columns)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
        grid = figure.subplots(rows, columns, squeeze=False, sharex=sharex)
        axes = [ax for row in grid for ax in row]
        for spare in axes[panels:]:
            spare.set_visible(False)
        draw(figure, axes[:panels])
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _version_axis(ax, versions, label):
    ax.set_xticks(range(len(versions)))
    ax.set_xticklabels(versions, rotation=30 if len(versions) > 4 else 0, ha="right" if len(versions) > 4 else "center")
    ax.set_xlim(-0.5, len(versions) - 0.5)
    ax.set_xlabel(label)
    ax.grid(False, axis="x")


def _status_marks(ax, versions, statuses):
    """A version whose cell did not give a number says why in place of the point (never a silent gap)."""
    for version, status in statuses.items():
        if status != "ok" and version in versions:
            ax.annotate(status.replace("_", " "), (versions.index(version), 0.03), xycoords=("data", "axes fraction"),
                        rotation=90, ha="center", va="bottom", fontsize=7, color=STATUS_GREY)


def _panel_size(versions):
    return (max(4.0, 0.7 * len(versions) + 1.8), 3.2)


def error_plot(versions, panels, version_label):
    """Reproduced top-1 / top-5 error with 95% intervals and the published values, one panel per model.

    panels: [(model, {version: point})], point: {"status", "top1", "top1_ci", "top5", "top5_ci",
    "published_top1", "published_top5"} (numbers in %, absent where there is none)."""
    series = (("top1", "top-1", -0.12), ("top5", "top-5", 0.12))

    def draw(figure, axes):
        for ax, (model, points) in zip(axes, panels):
            for i, (key, name, shift) in enumerate(series):
                xs, ys, low, high, pub_x, pub_y = [], [], [], [], [], []
                for x, version in enumerate(versions):
                    point = points.get(version)
                    if point and point["status"] == "ok":
                        value, (ci_low, ci_high) = point[key], point[key + "_ci"]
                        xs.append(x + shift), ys.append(value)
                        low.append(max(0.0, value - ci_low)), high.append(max(0.0, ci_high - value))
                    if point and point.get("published_" + key) is not None:
                        pub_x.append(x + shift), pub_y.append(point["published_" + key])
                ax.errorbar(xs, ys, yerr=[low, high], fmt=MARKERS[i], color=COLOURS[i], capsize=3, markersize=5,
                            linewidth=1.2, label="{} reproduced (95% CI)".format(name))
                if pub_x:
                    ax.plot(pub_x, pub_y, linestyle="none", marker="_", markersize=16, markeredgewidth=2.2,
                            color=COLOURS[i], label="{} published".format(name))
            _status_marks(ax, versions, {v: p["status"] for v, p in points.items()})
            _version_axis(ax, versions, version_label)
            ax.set_ylabel("ImageNet val error (%)")
            ax.set_title(model)
            bottom, top = ax.get_ylim()
            ax.set_ylim(max(0.0, bottom), min(100.0, top) if top > 0 else 100.0)
        _figure_legend(figure, axes)

    size = _panel_size(versions)
    return _render(len(panels), 3 if size[0] <= 4.0 else 2, size, draw)


def throughput_plot(versions, panels, version_label):
    """Images/s per batch size across versions (median, bar = the trials' range), one panel per model.

    panels: [(model, {batch: {version: (median, low, high)}}, {version: status})]."""

    def draw(figure, axes):
        for ax, (model, batches, statuses) in zip(axes, panels):
            values = []
            for i, (batch, by_version) in enumerate(sorted(batches.items())):
                xs = [x for x, version in enumerate(versions) if version in by_version]
                median = [by_version[versions[x]][0] for x in xs]
                low = [max(0.0, m - by_version[versions[x]][1]) for m, x in zip(median, xs)]
                high = [max(0.0, by_version[versions[x]][2] - m) for m, x in zip(median, xs)]
                values += [by_version[versions[x]][1] for x in xs] + [by_version[versions[x]][2] for x in xs]
                ax.errorbar(xs, median, yerr=[low, high], marker=MARKERS[i % len(MARKERS)],
                            color=COLOURS[i % len(COLOURS)], capsize=3, markersize=5, linewidth=1.2,
                            label="batch {}".format(batch))
            positive = [v for v in values if v > 0]
            if positive and max(positive) / min(positive) > 30:
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
            _status_marks(ax, versions, statuses)
            _version_axis(ax, versions, version_label)
            ax.set_ylabel("throughput (images/s)")
            ax.set_title(model)
            if batches:
                ax.legend(loc="best", title="median; bar: trial range", title_fontsize=7)

    size = _panel_size(versions)
    return _render(len(panels), 3 if size[0] <= 4.0 else 2, size, draw)


def cold_start_plot(versions, series, version_label):
    """Seconds from process start to the first prediction, per model across versions.

    series: [(model, {version: seconds})]."""

    def draw(figure, axes):
        ax = axes[0]
        for i, (model, by_version) in enumerate(series):
            xs = [x for x, version in enumerate(versions) if version in by_version]
            ax.plot(xs, [by_version[versions[x]] for x in xs], marker=MARKERS[i % len(MARKERS)],
                    color=COLOURS[i % len(COLOURS)], markersize=5, linewidth=1.2, label=model)
        ax.set_ylim(bottom=0)
        _version_axis(ax, versions, version_label)
        ax.set_ylabel("cold start (s)")
        ax.set_title("process start to first prediction (one sample per cell)")
        ax.legend(loc="best", ncols=2 if len(series) > 3 else 1)

    width, height = _panel_size(versions)
    return _render(1, 1, (max(width, 5.0), height), draw)


def drift_grid(pairs, models, cells):
    """Version pair x model, each square coloured by its verdict and showing max |diff| and agreement.

    pairs: ["from -> to"], models: [model], cells: {(pair, model): (verdict, [text lines])}."""

    def draw(figure, axes):
        from matplotlib.patches import Patch, Rectangle

        ax = axes[0]
        for row, pair in enumerate(pairs):
            for column, model in enumerate(models):
                verdict, lines = cells.get((pair, model), ("not compared", ["no pair"]))
                colour = DRIFT_COLOURS.get(verdict, DRIFT_COLOURS["not compared"])
                ax.add_patch(Rectangle((column, row), 1, 1, facecolor=colour, edgecolor="white", linewidth=2))
                dark = verdict in ("cannot load", "bit-identical")
                ax.text(column + 0.5, row + 0.5, "\n".join([verdict] + lines), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        ax.set_xlim(0, len(models))
        ax.set_ylim(len(pairs), 0)
        ax.set_xticks([c + 0.5 for c in range(len(models))])
        ax.set_xticklabels(models)
        ax.xaxis.tick_top()
        ax.set_yticks([r + 0.5 for r in range(len(pairs))])
        ax.set_yticklabels(pairs)
        ax.set_xlabel("model")
        ax.set_ylabel("checkpoint written by -> loaded by")
        ax.grid(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.tick_params(length=0)
        used = [v for v in DRIFT_COLOURS if any(cell[0] == v for cell in cells.values())]
        figure.legend(handles=[Patch(facecolor=DRIFT_COLOURS[v], label=v) for v in used], loc="outside lower center",
                      ncols=len(used) or 1)

    return _render(1, 1, (1.8 * len(models) + 2.8, 0.8 * len(pairs) + 1.5), draw)


def gpu_plot(title, windows):
    """GPU utilisation (top) and board power (bottom) over each timed window of one cell.

    windows: [(label, t_s, util_pct, power_w)] with None where NVML gave no value."""

    def draw(figure, axes):
        util_ax, power_ax = axes
        for i, (label, times, util, power) in enumerate(windows):
            style = dict(color=COLOURS[i % len(COLOURS)], marker=MARKERS[i % len(MARKERS)], markersize=3,
                         linewidth=1.1, label=label)
            util_ax.plot(*_present(times, util), **style)
            power_ax.plot(*_present(times, power), **style)
        util_ax.set_ylim(0, 105)
        util_ax.set_ylabel("GPU utilisation (%)")
        util_ax.set_title(title)
        power_ax.set_ylim(bottom=0)
        power_ax.set_ylabel("board power (W)")
        power_ax.set_xlabel("time in the timed window (s)")
        util_ax.legend(loc="lower right")

    return _render(2, 1, (5.2, 1.9), draw, rows_of=2, sharex=True)


def _figure_legend(figure, axes):
    """One legend above all panels, of every series any panel drew."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    labels = sorted(seen)
    if labels:
        width = figure.get_figwidth()
        figure.legend([seen[label] for label in labels], labels, loc="outside upper center",
                      ncols=max(1, min(4, len(labels), int(width / 2.0))))


def _present(times, values):
    pairs = [(t, v) for t, v in zip(times, values) if t is not None and v is not None]
    return [t for t, _ in pairs], [v for _, v in pairs]
