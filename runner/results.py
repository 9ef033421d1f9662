"""Result files: results/<run>/<cell id>.json, logs/<cell id>.log, and side files
<cell id>.<name> (predictions.csv, a drift checkpoint and its outputs-N.npy).

Each result is written once, atomically; `put` refuses to replace an existing one unless
asked to (a --force or --retry-failed re-run).
"""

import json
import os
import shutil
from pathlib import Path

from .probe import RESULT_SCHEMA_VERSION
from .probe.jsonio import write_json_atomic


class ResultStore:
    def __init__(self, root):
        self.root = Path(root)

    def path(self, cell_id):
        return self.root / "{}.json".format(cell_id)

    def log_path(self, cell_id):
        return self.root / "logs" / "{}.log".format(cell_id)

    def work_dir(self, cell_id):
        """Scratch folder the probe writes into; its outputs are moved beside the result."""
        path = self.root / ".work" / cell_id
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def get(self, cell_id):
        path = self.path(cell_id)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # unreadable: treated as missing, so the cell runs again

    def side_file(self, cell_id, name):
        return self.root / "{}.{}".format(cell_id, name)

    def adopt_outputs(self, result, work_dir):
        """Move the probe's side files (result["files"]) beside the result as <cell id>.<name>; drop the scratch folder."""
        files = {}
        for role, name in (result.get("files") or {}).items():
            source = Path(work_dir) / name
            if source.is_file():
                os.replace(source, self.side_file(result["cell_id"], name))
                files[role] = self.side_file(result["cell_id"], name).name
        result["files"] = files
        if "predictions" in files:
            result["metrics"]["predictions_file"] = files["predictions"]
        shutil.rmtree(work_dir, ignore_errors=True)

    def put(self, result, replace=False):
        path = self.path(result["cell_id"])
        if path.exists() and not replace:
            raise FileExistsError("result {} exists; results are immutable".format(path))
        write_json_atomic(str(path), result)
        return path

    def load_all(self):
        """(results, problems): every readable result of this run, and the files that are not."""
        results, problems = [], []
        for path in sorted(p for p in self.root.glob("*.json") if not p.name.startswith(".")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                problems.append("{}: unreadable ({})".format(path, exc))
                continue
            if data.get("schema_version") != RESULT_SCHEMA_VERSION:
                problems.append("{}: result schema {!r}, this runner reads {}".format(
                    path, data.get("schema_version"), RESULT_SCHEMA_VERSION))
                continue
            results.append(data)
        return results, problems


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
