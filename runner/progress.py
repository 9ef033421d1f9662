"""Progress on the terminal while a matrix runs: cell n of N, elapsed time, what is being built."""

import time


class Progress:
    def __init__(self, total, out):
        self.total, self.out = total, out
        self.index = 0
        self.begin = time.monotonic()

    def _stamp(self):
        elapsed = int(time.monotonic() - self.begin)
        return "{:d}:{:02d}:{:02d}".format(elapsed // 3600, elapsed // 60 % 60, elapsed % 60)

    def say(self, message):
        self.out.write("[{}] {}\n".format(self._stamp(), message))
        self.out.flush()

    def start(self, cell):
        self.index += 1
        self.say("cell {}/{} {} ({}) ...".format(self.index, self.total, cell.label, cell.id))

    def done(self, cell, result):
        reason = " - {}".format(result["reason"]) if result.get("reason") else ""
        self.say("cell {}/{} {}: {} in {:.1f} s{}".format(
            self.index, self.total, cell.label, result["status"], result.get("duration_s") or 0.0, reason))
