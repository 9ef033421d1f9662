"""Progress on the terminal while a matrix runs.

Every event is a line: a cell starting (with its estimate and what is left), a cell ending (its
status and numbers), an environment being built. On a terminal a live footer (rich) adds what
a person waits on: cells done / failed / left, each running cell with its elapsed time against
its estimate, the last line of a running environment build's log (pip's current step), and the
time left for the whole run. Where the output is not a terminal (CI logs, a file) only the lines
are written, as they were.

Estimates come from earlier results of the same cell id (in any run folder beside this one),
else from the cells of the same suite that ended in this run.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

from .report.tables import image_counts_text


def say(line):
    """Progress and notes go to stderr; stdout carries only each command's answer."""
    sys.stderr.write(line + "\n")


def clock(seconds):
    seconds = int(round(max(0, seconds)))
    return "{:d}:{:02d}:{:02d}".format(seconds // 3600, seconds // 60 % 60, seconds % 60)


def plan_table(cells, prefills=None):
    """The plan as lines: on a GPU, the build each row installs; then each cell's id, row, model, suite, device,
    and why it will be skipped or cannot run. `prefills`: {cell id: the cell whose crops are decoded beside it}
    (runner/prefill.py preview)."""
    lines, builds, prefills = [], {}, prefills or {}
    for cell in cells:
        if cell.device.startswith("cuda"):
            check = cell.gpu_check or {}
            builds.setdefault(cell.environment.name, "{}{}".format(
                cell.environment.build_label(), "  [{}: {}]".format(check["status"], check["reason"])
                if check.get("status") in ("jit", "unknown") else ""))
    if builds:
        lines.append("GPU builds:")
        lines += ["  {:<16} {}".format(name, label) for name, label in builds.items()]
    for cell in cells:
        note = "  (skipped: {})".format(cell.skip_reason) if cell.skip_reason else \
            "  (incompatible: {})".format(cell.incompatible) if cell.incompatible else ""
        if cell.suite == "throughput" and not note:  # the device's settings ([suites.throughput.cuda] on a GPU)
            note = "  batches {}, >= {} iterations and >= {:g} s per trial".format(
                ",".join(str(b) for b in cell.params["batch_sizes"]), cell.params["iterations"],
                cell.params.get("min_window_s", 0))
        if cell.suite == "error" and not note:  # the device's settings ([suites.error.cuda] on a GPU)
            note = "  batch {}, {}".format(cell.params["batch_size"], _decoders(cell))
            if cell.id in prefills:
                note += "; beside it, {}'s crops are decoded ahead".format(prefills[cell.id].model.key)
        lines.append("{}  {:<16} {:<14} {:<10} {}{}".format(cell.id, cell.environment.name, cell.model.key,
                                                            cell.suite, cell.device, note))
    return lines + [counted(len(cells), "cell")]


def _decoders(cell):
    """The error cell's decoders in words (runner/probe/error_suite.py input_workers counts them for 0)."""
    workers = cell.params["workers"]
    if workers == 1:
        return "decoded in the probe"
    if workers == 0:
        count = "decoders: one per core, niced" if cell.device.startswith("cuda") else "decoders: one per core, up to 8"
    else:
        count = "{} decoder processes".format(workers)
    return "{}, {} batches ahead".format(count, cell.params["prefetch"])


def past_durations(results_dir, cell_ids):
    """{cell id: seconds} from earlier results of the same cells in any run folder under `results_dir`
    (the same id is the same work: environment, model, suite, settings, data)."""
    found = {}
    root = Path(results_dir)
    if not root.is_dir():
        return found
    for run in (p for p in root.iterdir() if p.is_dir()):
        for cell_id in cell_ids:
            path = run / "{}.json".format(cell_id)
            if cell_id in found or not path.is_file():
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a damaged file is the result store's business, not an estimate's
            if isinstance(data, dict) and data.get("status") == "ok" and data.get("duration_s"):
                found[cell_id] = float(data["duration_s"])
    return found


class Progress:
    """Thread-safe: with several GPUs (--gpus) or jobs, cells start and end out of order."""

    def __init__(self, total, out, estimates=None, live=None, slots=1):
        self.total, self.out = total, out
        self.estimates = dict(estimates or {})  # cell id -> expected seconds
        self.slots = max(1, slots)
        self.index = 0
        self.begin = time.monotonic()
        self.lock = threading.RLock()
        self.statuses = {}  # status -> count of ended cells
        self.running = {}  # number -> (cell, started at)
        self.suite_seconds = {}  # suite -> durations of cells that ended ok in this run
        self.pending = []  # cells planned but not started (for the time left)
        self.expected = []  # stand-ins for drift loads not planned yet (drift_plan.anticipated_loads)
        self.following = None  # (label, log path) of an environment being built
        if live is None:
            live = hasattr(out, "isatty") and out.isatty() and os.environ.get("TERM") != "dumb"
        self.console = self.live = None
        if live:
            from rich.console import Console
            from rich.live import Live

            self.console = Console(file=out, highlight=False, soft_wrap=True)
            self.live = Live(console=self.console, get_renderable=self._footer, refresh_per_second=2,
                             transient=True, redirect_stdout=False, redirect_stderr=False)

    # -- the run's shape ---------------------------------------------------------------------------

    def __enter__(self):
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.live is not None:
            self.live.stop()
            self.live = None

    def plan(self, cells):
        """The cells that will run, in order: their estimates count toward the time left."""
        with self.lock:
            self.pending.extend(cells)

    def expect(self, stand_ins):
        """Cells that will join later (drift loads, once their checkpoints exist), counted in the time left
        until `add` replaces them with the real ones."""
        with self.lock:
            self.expected = list(stand_ins)

    def add(self, cells, estimates=None):
        """More cells joined the run (drift loads, planned once their checkpoints exist)."""
        with self.lock:
            self.total += cells
            self.expected = []
            self.estimates.update(estimates or {})

    # -- events --------------------------------------------------------------------------------------

    def __call__(self, message):
        """Backends get the Progress as their `log`: a message is a line (and `follow` is there for builds)."""
        self.say(message)

    def say(self, message):
        with self.lock:
            self.following = None  # a new message ends the previous build's live line
            line = "[{}] {}".format(clock(time.monotonic() - self.begin), message)
            if self.console is not None:
                self.console.print(line, markup=False)
            else:
                self.out.write(line + "\n")
                self.out.flush()

    def follow(self, label, log_path):
        """Show the last line of `log_path` live (an environment build) until the next message."""
        with self.lock:
            self.following = (label, Path(log_path))

    def start(self, cell, where=""):
        """Announce a cell; returns its number, for done()."""
        with self.lock:
            self.index += 1
            number = self.index
            self.running[number] = (cell, time.monotonic())
            self.pending = [waiting for waiting in self.pending if waiting.id != cell.id]
            expected = self._estimate(cell)
            left = self._time_left()
            after = _after(self.total - number, len(self.expected))
        hint = []
        if expected is not None:
            hint.append("about {}".format(clock(expected)))
        if left is not None and after:
            hint.append("{}, about {} in all".format(after, clock(left)))
        self.say("cell {}/{} {} ({}){} ...{}".format(number, self.total, cell.label, cell.id, where,
                                                     " ({})".format("; ".join(hint)) if hint else ""))
        return number

    def done(self, cell, result, number):
        reason = " - {}".format(result["reason"]) if result.get("reason") else ""
        metrics = result.get("metrics") or {}
        if result.get("suite") == "error" and result["status"] == "ok" and "images_evaluated" in metrics:
            # The error next to what it was measured on, so a shrinking image count cannot pass unseen.
            reason += " - top-1 error {:.2f}%, top-5 {:.2f}%; {}".format(
                metrics["top1_error"], metrics["top5_error"], image_counts_text(metrics))
        with self.lock:
            self.running.pop(number, None)
            self.statuses[result["status"]] = self.statuses.get(result["status"], 0) + 1
            if result["status"] == "ok" and result.get("duration_s"):
                self.suite_seconds.setdefault(result.get("suite"), []).append(float(result["duration_s"]))
        self.say("cell {}/{} {}: {} in {:.1f} s{}".format(
            number, self.total, cell.label, result["status"], result.get("duration_s") or 0.0, reason))

    # -- estimates -----------------------------------------------------------------------------------

    def _estimate(self, cell):
        if cell.id in self.estimates:
            return self.estimates[cell.id]
        same_suite = self.suite_seconds.get(cell.suite)
        return sum(same_suite) / len(same_suite) if same_suite else None

    def _time_left(self):
        """Seconds until the run ends, from the estimates; None while any cell to come or running has none (a sum
        without it would promise too little)."""
        parts = []
        for cell, started in self.running.values():
            expected = self._estimate(cell)
            if expected is None:
                return None
            parts.append(max(0.0, expected - (time.monotonic() - started)))
        for cell in self.pending + self.expected:
            expected = self._estimate(cell)
            if expected is None:
                return None
            parts.append(expected)
        # cells share the slots, but none ends sooner than its own time left
        return max(sum(parts) / self.slots, max(parts)) if parts else None

    # -- the live footer -------------------------------------------------------------------------

    def _footer(self):
        from rich.text import Text

        with self.lock:
            ended = sum(self.statuses.values())
            bad = sum(n for status, n in self.statuses.items() if status not in ("ok", "skipped"))
            left = self._time_left()
            lines = ["{}/{} cells ended{}, {} left{}{}; {} elapsed".format(
                ended, self.total, " ({} not ok)".format(bad) if bad else "", self.total - ended,
                " and {} to come".format(_loads(len(self.expected))) if self.expected else "",
                ", about {} to go".format(clock(left)) if left is not None else "",
                clock(time.monotonic() - self.begin))]
            for number, (cell, started) in sorted(self.running.items()):
                expected = self._estimate(cell)
                lines.append("  cell {}/{} {}: {}{}".format(number, self.total, cell.label,
                                                           clock(time.monotonic() - started),
                                                           " of about {}".format(clock(expected)) if expected else ""))
            if self.following is not None:
                label, path = self.following
                lines.append("  {}: {}".format(label, _last_line(path)))
        return Text("\n".join(lines), no_wrap=True, overflow="ellipsis")


def counted(number, noun):
    """'1 cell', '2 cells'."""
    return "{} {}{}".format(number, noun, "" if number == 1 else "s")


def _after(cells, loads):
    """'3 more after it', '3 more and about 2 drift loads after it', 'about 1 drift load after it' or ''."""
    parts = ["{} more".format(cells)] if cells else []
    if loads:
        parts.append(_loads(loads))
    return " and ".join(parts) + " after it" if parts else ""


def _loads(count):
    return "about " + counted(count, "drift load")


def _last_line(path):
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 4096))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no output yet)"
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no output yet)"
