"""Make README's table of failures and bad input from the tests that check each case.

    make failures-table        (= .venv/bin/python -m tests.failures_table; runs the fault tests, slow and
                                docker ones included, which needs what `make test` needs)

Each fault test records the case, what the runner does and the message it actually got
(tests/faults.py). This runs those tests with DLMATRIX_FAULT_TABLE set and, only when every one
of them passed, rewrites the table between the markers in README.md, so the table says what
the code does, not what someone remembered it to say.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from runner.storage import write_text

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN = "<!-- failures table: made by `make failures-table` from the tests that check each case; do not edit -->"
END = "<!-- end of failures table -->"
FAULT_TESTS = ["tests/test_cli_checks.py", "tests/test_run_lock.py", "tests/test_storage.py",
               "tests/test_damaged_results.py", "tests/test_image_accounting.py", "tests/test_faults.py",
               "tests/test_locks.py", "tests/test_backend_docker_faults.py",
               "tests/test_backend_docker_security.py", "tests/probe/test_telemetry.py",
               "tests/test_executor_slurm.py",
               "tests/test_end_to_end.py::test_failures_are_recorded_and_the_rest_goes_on"]
GROUPS = ["flags", "runs", "processes", "storage", "results", "images", "environments", "containers", None]


def render(rows):
    """A markdown table, grouped in GROUPS order, one row per case (the first test to record it wins)."""
    seen, ordered = set(), []
    for row in sorted(rows, key=lambda r: GROUPS.index(r.get("group") if r.get("group") in GROUPS else None)):
        if row["case"] not in seen:
            seen.add(row["case"])
            ordered.append(row)
    lines = ["| case | what happens | message (as the tests got it) |", "|---|---|---|"]
    for row in ordered:
        message = row["message"].replace("|", "\\|").replace("\n", " ")
        lines.append("| {} | {} | `` {} `` |".format(row["case"], row["outcome"], message))
    return "\n".join(lines)


def replace_table(text, table):
    if BEGIN not in text or END not in text:
        raise SystemExit("README.md has no failures table markers ({} ... {})".format(BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + table + "\n" + END + tail


def main(argv=None):
    extra = list(sys.argv[1:] if argv is None else argv)
    tests = [path for path in FAULT_TESTS if (ROOT / path.split("::")[0]).is_file()]
    with tempfile.TemporaryDirectory() as folder:
        collected = Path(folder) / "faults.jsonl"
        env = dict(os.environ, DLMATRIX_FAULT_TABLE=str(collected))
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow or not slow"]
                             + tests + extra, cwd=ROOT, env=env)
        if run.returncode != 0:
            sys.stderr.write("fault tests failed (exit {}); README.md left as it was\n".format(run.returncode))
            return run.returncode
        rows = [json.loads(line) for line in collected.read_text().splitlines()] if collected.is_file() else []
    write_text(README, replace_table(README.read_text(), render(rows)))
    print("README.md: failures table of {} cases from {} test files".format(
        len({row["case"] for row in rows}), len(tests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
