"""Progress on the terminal while a matrix runs: cell n of N, elapsed time, what is being built."""

import sys
import threading
import time

from .report.tables import image_counts_text


def say(line):
    """Progress and notes go to stderr; stdout carries only each command's answer."""
    sys.stderr.write(line + "\n")


class Progress:
    """Thread-safe: with several GPUs (--gpus) or jobs, cells start and end out of order."""

    def __init__(self, total, out):
        self.total, self.out = total, out
        self.index = 0
        self.begin = time.monotonic()
        self.lock = threading.Lock()

    def _stamp(self):
        elapsed = int(time.monotonic() - self.begin)
        return "{:d}:{:02d}:{:02d}".format(elapsed // 3600, elapsed // 60 % 60, elapsed % 60)

    def add(self, cells):
        """More cells joined the run (drift loads, planned once their checkpoints exist)."""
        with self.lock:
            self.total += cells

    def say(self, message):
        with self.lock:
            self.out.write("[{}] {}\n".format(self._stamp(), message))
            self.out.flush()

    def start(self, cell, where=""):
        """Announce a cell; returns its number, for done()."""
        with self.lock:
            self.index += 1
            number = self.index
        self.say("cell {}/{} {} ({}){} ...".format(number, self.total, cell.label, cell.id, where))
        return number

    def done(self, cell, result, number):
        reason = " - {}".format(result["reason"]) if result.get("reason") else ""
        metrics = result.get("metrics") or {}
        if result.get("suite") == "error" and result["status"] == "ok" and "images_evaluated" in metrics:
            # The error next to what it was measured on, so a shrinking image count cannot pass unseen.
            reason += " - top-1 error {:.2f}%, top-5 {:.2f}%; {}".format(
                metrics["top1_error"], metrics["top5_error"], image_counts_text(metrics))
        self.say("cell {}/{} {}: {} in {:.1f} s{}".format(
            number, self.total, cell.label, result["status"], result.get("duration_s") or 0.0, reason))
