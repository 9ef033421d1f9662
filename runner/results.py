"""Result files: results/<run>/<cell id>.json, logs/<cell id>.log, and side files
<cell id>.<name> (predictions.csv, a drift checkpoint and its outputs-N.npy).

Each result is written once, atomically (runner/storage.py); `put` refuses to replace an
existing one unless asked to (a --force or --retry-failed re-run). Every result read is
checked against RESULT_SCHEMA: a damaged file is moved to results/<run>/damaged/, named, and
its cell is planned again. A result that could not be stored (full disk, read-only folder) is
kept in the unsaved folder (`put_unsaved`) and read from there until it can be moved in.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import jsonschema

from .probe import RESULT_SCHEMA_VERSION
from .storage import StorageError, cache_home, copy_file, lock_holder, make_folder, move, write_json, write_text

OWNER_FILE = ".owner"
# ok/failed/skipped/incompatible: what the probe writes (runner/probe/cell.py); the others only the host writes
# (runner/executors/local.py) when it ended the cell itself.
FAILED = ("failed", "timeout", "out_of_memory")  # a measurement that did not happen: --retry-failed runs it again
# interrupted: always run again (stopped by the user); incompatible: the build cannot run on this host's GPU,
# decided again by every run (runner/gpu_check.py), since the run folder may move to another GPU.
STATUSES = ("ok", "skipped", "interrupted", "incompatible") + FAILED

_TEXT = {"type": "string"}
RESULT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "cell_id", "suite", "environment", "framework", "model", "status", "metrics",
                 "provenance"],
    "properties": {
        "schema_version": {"const": RESULT_SCHEMA_VERSION},
        "cell_id": {"type": "string", "minLength": 1},
        "suite": {"enum": ["error", "throughput", "drift"]},
        "environment": _TEXT, "framework": _TEXT, "model": _TEXT,
        "status": {"enum": list(STATUSES)},
        "reason": {"type": ["string", "null"]},
        "metrics": {"type": ["object", "null"]},
        "provenance": {"type": "object"},
        "files": {"type": "object", "additionalProperties": _TEXT},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(RESULT_SCHEMA)


def result_problem(data, cell_id):
    """Why `data` is not a result of cell `cell_id` this runner can read, or None."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(data))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        if where == "schema_version" and isinstance(data, dict):
            return "result schema {!r}, this runner reads {}".format(data.get("schema_version"), RESULT_SCHEMA_VERSION)
        return "{}{}".format(where + ": " if where else "", error.message)
    if data["cell_id"] != cell_id:
        return "it holds cell {}, not the cell its name says".format(data["cell_id"])
    return None


def unsaved_home():
    return os.environ.get("DLMATRIX_UNSAVED") or os.path.join(cache_home(), "unsaved")


class ResultStore:
    def __init__(self, root, say=None, unsaved=None):
        self.root = Path(root)
        self.say = say or (lambda line: sys.stderr.write(line + "\n"))
        self.unsaved = Path(unsaved or unsaved_home()) / self.root.name
        self.set_aside = {}  # damaged file -> the line saying so, for load_all's problems

    def path(self, cell_id):
        return self.root / "{}.json".format(cell_id)

    def log_path(self, cell_id):
        return self.root / "logs" / "{}.log".format(cell_id)

    def new_attempt(self, cell_id):
        """A scratch folder of its own for one attempt at a cell: .work/<cell id>-<pid>-<n>/ holding OWNER_FILE,
        which the cell's processes keep locked while any of them lives (runner/backends/guard.py). The probe
        writes into it; its outputs are moved beside the result. No attempt ever reuses another's folder."""
        path = self.root / ".work" / "{}-{}-{}".format(cell_id, os.getpid(), time.monotonic_ns())
        make_folder(path, flag="--results-dir")
        write_text(path / OWNER_FILE, "", flag="--results-dir")
        return path

    def sweep_work(self, wait_s=5.0):
        """Remove the scratch folders of earlier attempts whose processes are provably gone (their owner lock is
        free); a folder still locked is left in place and named. Called with the run lock held."""
        work = self.root / ".work"
        if not work.is_dir():
            return
        for folder in sorted(p for p in work.iterdir() if p.is_dir()):
            holder = lock_holder(folder / OWNER_FILE, wait_s)
            if holder is None:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                self.say("{}: left in place, still in use by pid {} (a process of an earlier attempt); "
                         "this run uses folders of its own".format(folder, holder))

    def get(self, cell_id):
        """The cell's result, or None (never stored, or damaged and set aside): then the cell runs again."""
        kept = self._recover(cell_id)
        if kept is not None:
            return kept
        path = self.path(cell_id)
        return self._read(path, self.root / "damaged") if path.is_file() else None

    def side_file(self, cell_id, name):
        return self.root / "{}.{}".format(cell_id, name)

    def adopt_outputs(self, result, work_dir):
        """Move the probe's side files (result["files"]) beside the result as <cell id>.<name>; drop the scratch folder."""
        files = {}
        for role, name in (result.get("files") or {}).items():
            source = Path(work_dir) / name
            if source.is_file():
                move(source, self.side_file(result["cell_id"], name), flag="--results-dir")
                files[role] = self.side_file(result["cell_id"], name).name
        result["files"] = files
        if "predictions" in files:
            result["metrics"]["predictions_file"] = files["predictions"]
        shutil.rmtree(work_dir, ignore_errors=True)

    def put(self, result, replace=False):
        path = self.path(result["cell_id"])
        if path.exists() and not replace:
            raise FileExistsError("result {} exists; results are immutable".format(path))
        write_json(path, result, flag="--results-dir")
        return path

    def put_unsaved(self, result, work_dir=None):
        """Keep a computed result the run folder could not take: <unsaved>/<run>/<cell id>.json, with the side
        files still in `work_dir`. `get` and `load_all` read it from there and move it in once they can."""
        cell_id = result["cell_id"]
        files = {}
        for role, name in (result.get("files") or {}).items():
            stem = name if name.startswith(cell_id + ".") else "{}.{}".format(cell_id, name)
            if work_dir is not None and (Path(work_dir) / name).is_file():
                copy_file(Path(work_dir) / name, self.unsaved / stem)  # a copy: the source may be read-only
                files[role] = stem
            elif (self.root / stem).is_file():
                files[role] = stem  # adopted before the result write failed: already in place
        result["files"] = files
        if "predictions" in files and result.get("metrics") is not None:
            result["metrics"]["predictions_file"] = files["predictions"]
        target = self.unsaved / "{}.json".format(cell_id)
        write_json(target, result)
        return target

    def load_all(self):
        """(results, problems): every valid result of this run, and what could not be read or was set aside."""
        results, problems = {}, []
        for path in sorted(p for p in self.unsaved.glob("*.json") if not p.name.startswith(".")):
            data = self._recover(path.stem)
            if data is not None:
                results[path.stem] = data
                if (self.unsaved / path.name).exists():
                    problems.append("{}: kept in {} ({} cannot take it yet); read from there".format(
                        path.stem, path, self.root))
        for path in sorted(p for p in self.root.glob("*.json") if not p.name.startswith(".")):
            if path.stem not in results:
                data = self._read(path, self.root / "damaged", problems)
                if data is not None:
                    results[path.stem] = data
        earlier = sorted(p for p in (self.root / "damaged").glob("*") if str(p) not in self.set_aside)
        problems += ["{}: set aside earlier as damaged; delete it once inspected".format(p) for p in earlier]
        return list(results.values()), list(self.set_aside.values()) + problems

    def _read(self, path, damaged_dir, problems=None):
        """The result in `path`, or None: a damaged one is moved to `damaged_dir` and named."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            if problems is not None:
                problems.append("{}: unreadable ({})".format(path, exc))
            return None
        except ValueError as exc:  # truncated, not JSON, not UTF-8
            problem = "not JSON ({})".format(exc)
        else:
            problem = result_problem(data, path.stem)
            if problem is None:
                return data
        self._set_aside(path, problem, damaged_dir)
        return None

    def _set_aside(self, path, problem, damaged_dir):
        target = Path(damaged_dir) / path.name
        number = 1
        while target.exists():
            target, number = Path(damaged_dir) / "{}.{}".format(path.name, number), number + 1
        try:
            move(path, target)
            line = "{}: damaged ({}); moved to {}, its cell runs again".format(path, problem, target)
        except StorageError as exc:
            target = path
            line = "{}: damaged ({}); left in place ({}), its cell runs again".format(path, problem, exc)
        self.set_aside[str(target)] = line
        self.say(line)

    def _recover(self, cell_id):
        """A result kept in the unsaved folder, moved into the run folder when that can take it now."""
        kept = self.unsaved / "{}.json".format(cell_id)
        if not kept.is_file():
            return None
        data = self._read(kept, self.unsaved / "damaged")
        if data is None:
            return None
        try:
            for name in (data.get("files") or {}).values():
                if (self.unsaved / name).is_file():
                    move(self.unsaved / name, self.root / name, flag="--results-dir")
            write_json(self.path(cell_id), data, flag="--results-dir")
        except StorageError:
            return data  # still not writable: read from the unsaved folder, not computed again
        kept.unlink()  # its scratch folder goes with the next run's sweep_work
        self.say("{}: result moved from {} into {}".format(cell_id, kept, self.root))
        return data
def engine_label(result):
    """The [engine] settings a result ran with, defaults left out: 'fp16, channels_last, xla=true'."""
    engine = (result.get("provenance") or {}).get("engine_requested") or {}
    parts = []
    if engine.get("precision", "fp32") != "fp32":
        parts.append(engine["precision"])
    if engine.get("channels_last"):
        parts.append("channels_last")
    for key in ("cudnn_autotune", "deterministic", "xla"):
        if engine.get(key, "default") != "default":
            parts.append("{}={}".format(key, str(engine[key]).lower()))
    return ", ".join(parts)


def latest_results(results):
    """The newest result per (environment, model, suite, engine settings, checkpoint loaded): a run may sweep
    the settings, and a drift load of an older version's checkpoint file is a position of its own."""
    newest = {}
    for result in results:
        key = (result["environment"], result["model"], result["suite"], engine_label(result),
               result.get("drift_checkpoint") or "")
        if key not in newest or result.get("ended_at", "") > newest[key].get("ended_at", ""):
            newest[key] = result
    return newest
