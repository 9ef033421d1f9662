"""What the docker backend's test modules share beside the `engine` fixture (conftest.py): the CLI, the
results of a run, and the cell containers a run left."""

import io
import json
from pathlib import Path

from runner.backends.docker_cell import OWNER_LABEL, owner
from runner.cli import main

HISTORICAL, CURRENT = "mxnet-1.4", "tf-current"  # the rows the docker tests build: a Python 3.7 one and today's


def run_cli(args):
    out = io.StringIO()
    return main(args, out=out), out.getvalue()


def results_of(folder):
    return {(r["environment"], r["model"], r["suite"]): r
            for r in (json.loads(p.read_text()) for p in Path(folder).glob("*.json"))}


def leftover_containers(client, pid=None):
    """Cell containers of this test process (or of runner `pid`); other runs may share the engine."""
    # A finished cell's container may be removed between the listing and its inspection.
    return client.containers.list(all=True, filters={"label": "{}={}".format(OWNER_LABEL, owner(pid))},
                                  ignore_removed=True)
