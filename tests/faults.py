"""The README's table of failures and bad input is made from the tests that check them.

A fault test calls `fault_case(case, outcome, message)` with the message it actually got. Nothing is
written unless DLMATRIX_FAULT_TABLE names a file (tests/failures_table.py sets it, runs the fault
tests and rewrites the table in README.md). Paths, pids, hosts, times and cell ids are replaced by
placeholders so the table reads the same on every machine.
"""

import json
import os
import re
import socket
import tempfile

_PLACEHOLDERS = [
    (re.compile(r"\b[0-9a-f]{16}\b"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"), "<time>"),
    (re.compile(r"\bpid \d+"), "pid <pid>"),
    (re.compile(r"\d+\.\d+ GB"), "<n> GB"),
]


def normalise(text):
    text = str(text)
    for folder in sorted({tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir())}, key=len, reverse=True):
        # pytest's folders: /tmp/pytest-of-USER/pytest-N/<test's folder>/ (and a module fixture's, one deeper)
        text = re.sub(re.escape(folder) + r"/pytest-of-[^/]+/pytest-\d+/[^/\s`]+/", "", text)
        text = re.sub(re.escape(folder) + r"/[^ ]*?/(?=(results|reports|disk|run|matrix|labels|val|a-folder|latin1"
                      r"|missing|images)\b)", "", text)
    text = text.replace(os.path.expanduser("~"), "~").replace(socket.gethostname(), "host1")
    for pattern, replacement in _PLACEHOLDERS:
        text = pattern.sub(replacement, text)
    return text


def fault_case(case, outcome, message, group=None):
    """Add one row to the table (when one is being made): the case, what the runner does, its message."""
    path = os.environ.get("DLMATRIX_FAULT_TABLE")
    if not path:
        return
    row = {"case": normalise(case), "outcome": outcome, "message": normalise(message), "group": group}
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")
