"""The README's failures table is made from what the fault tests record (tests/faults.py, failures_table.py)."""

import json

import pytest

from .failures_table import BEGIN, END, render, replace_table
from .faults import fault_case, normalise


def test_rows_are_grouped_deduplicated_and_escaped():
    rows = [{"case": "b", "outcome": "o", "message": "m|n", "group": "storage"},
            {"case": "a", "outcome": "o", "message": "first", "group": "flags"},
            {"case": "a", "outcome": "o", "message": "second", "group": "flags"}]
    lines = render(rows).splitlines()
    assert lines[2] == "| a | o | `` first `` |" and lines[3] == "| b | o | `` m\\|n `` |" and len(lines) == 4


def test_only_the_text_between_the_markers_changes():
    text = "intro\n{}\nold table\n{}\noutro\n".format(BEGIN, END)
    assert replace_table(text, "new") == "intro\n{}\nnew\n{}\noutro\n".format(BEGIN, END)
    with pytest.raises(SystemExit, match="no failures table markers"):
        replace_table("no markers here", "new")


def test_machine_details_become_placeholders(tmp_path):
    text = "error: {}/results/r/0123456789abcdef.json is in use by pid 4242 since 2026-11-30T07:30:00+0000".format(
        tmp_path)
    assert normalise(text) == "error: results/r/<id>.json is in use by pid <pid> since <time>"


def test_nothing_is_written_unless_a_table_is_being_made(tmp_path, monkeypatch):
    monkeypatch.delenv("DLMATRIX_FAULT_TABLE", raising=False)
    fault_case("case", "outcome", "message")
    target = tmp_path / "rows.jsonl"
    monkeypatch.setenv("DLMATRIX_FAULT_TABLE", str(target))
    fault_case("case", "outcome", "at {}/results/x".format(tmp_path), group="storage")
    assert json.loads(target.read_text()) == {"case": "case", "outcome": "outcome", "message": "at results/x",
                                              "group": "storage"}
