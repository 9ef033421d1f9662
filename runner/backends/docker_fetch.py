"""Pretrained weights are downloaded before a cell, not by it: every cell runs with no network.

For a pretrained cell whose image has not fetched that model's weights yet, the docker backend
first runs one container that is hardened like a cell but has the network (and writes only
the weights cache): it builds the model with pretrained weights through the probe's own
adapter, so the files land where the framework looks for them (TORCH_HOME, KERAS_HOME or
~/.keras under the cache's home/, GluonCV's root). A marker in the cache
(.dlmatrix-fetched/<key>.json, key: image, framework, model and its arguments) records it; the
cell then loads the weights from the cache with network "none". A fetch that fails (an offline
host) is the cell's recorded failure, with the adapter's own reason.
"""

import hashlib
import json
import os
import threading
import time

from ..storage import write_json
from .docker_cell import hardened, probe_mounts, run_container

FETCH_NETWORK = "bridge"  # the engine's default network: what cells had before they had none
MARKER_FOLDER = ".dlmatrix-fetched"
FETCHED = "dlmatrix-fetched: "  # the line of the fetch's stdout that carries its weights record
WEIGHTS_FAILED = 3  # the fetch's exit code when the adapter could not get the weights

# Runs inside the image on the row's Python (3.7 and up): the probe's adapter, on the CPU, which
# is enough to download and check the weights (a CUDA build still gets the cell's GPU, to import).
FETCH_CODE = """
import json, sys
from runner.probe.adapters import load_adapter
from runner.probe.weights import WeightsError
job = json.loads(sys.argv[1])
adapter = load_adapter(job["framework"], "cpu", 0)
if not adapter.has_model(job["name"]):
    sys.stderr.write("fetch: this version has no model {}; nothing to fetch\\n".format(job["name"]))
    sys.exit(0)
try:
    record = adapter.build(job["name"], job["kwargs"], job["weights"], "/tmp")[1]
except WeightsError as exc:
    sys.stderr.write("fetch: {}\\n".format(exc))
    sys.exit(%d)
print("%s" + json.dumps(record, sort_keys=True))
""" % (WEIGHTS_FAILED, FETCHED)


class WeightsFetcher:
    """The docker backend's fetch step; one per run, so two cells of a model never fetch at once."""

    def __init__(self, client, settings, ca_bundle, running):
        self._client, self._settings, self._ca_bundle, self._running = client, settings, ca_bundle, running
        self._locks = {}
        self._locks_lock = threading.Lock()

    def ensure(self, image, python, spec, settings, log, timeout_s):
        """Make sure the cache holds the cell's pretrained weights: None, or (why it could not, exit code).

        `settings` are the cell's container settings (user, environment, GPU, labels); `log` its log.
        """
        weights, model = spec["weights"], spec["model"]
        if not weights.get("cache_dir"):
            return "pretrained weights in docker cells need a weights cache to fetch them into (--weights-cache)", None
        job = {"framework": spec["framework"], "name": model["name"], "kwargs": model.get("kwargs") or {},
               "weights": weights}
        marker = marker_path(weights["cache_dir"], image, job)
        with self._lock(marker):
            if os.path.isfile(marker):
                log.write("weights: fetched before ({}); the cell reads them from the cache\n".format(marker).encode())
                return None
            tick = time.perf_counter()
            fetch = dict(settings, **hardened(self._settings.memory_limit, network=FETCH_NETWORK))
            fetch["mounts"] = [m for m in settings["mounts"] if m["Target"] == weights["cache_dir"]] + probe_mounts(
                self._ca_bundle)
            run = run_container(self._client, image, [python, "-c", FETCH_CODE, json.dumps(job)], fetch, log,
                                timeout_s, self._running)
            records = [line[len(FETCHED):] for line in run.stdout.splitlines() if line.startswith(FETCHED)]
            if run.returncode == 0 and not run.error and not run.timed_out:
                if records:
                    write_json(marker, {"image": image, "job": job, "weights": json.loads(records[-1]),
                                        "fetch_s": round(time.perf_counter() - tick, 1)}, flag="--weights-cache")
                return None
        return fetch_failure(run, timeout_s), run.returncode

    def _lock(self, key):
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())


def marker_path(cache_dir, image, job):
    key = hashlib.sha256(json.dumps({"image": image, "framework": job["framework"], "name": job["name"],
                                     "kwargs": job["kwargs"]}, sort_keys=True).encode()).hexdigest()
    return os.path.join(cache_dir, MARKER_FOLDER, key[:24] + ".json")


def fetch_failure(run, timeout_s):
    """One sentence on why the fetch before the cell failed (the cell is then recorded as failed)."""
    where = "fetching the pretrained weights before the cell (a container with the network; the cell has none)"
    if run.timed_out:
        return "{} timed out after {} s (the suite's timeout_s)".format(where, timeout_s)
    if run.error:
        return "{} failed: {}".format(where, run.error)
    lines = run.output.strip().splitlines()
    said = [line for line in lines if line.startswith("fetch: ")]
    if run.returncode == WEIGHTS_FAILED and said:
        return "{} failed: {}".format(where, said[-1][len("fetch: "):])
    return "{} failed with exit code {}: {}".format(where, run.returncode, (lines or ["(no output)"])[-1])
