"""Crop cache prefill: while a GPU cell reads its crops from the cache, the cores it leaves idle decode the
crops of a later cell whose recipe differs, so that cell reads them too instead of decoding in front of the GPU.

A row's error cells share a val set and mostly a recipe (torchvision: 256 -> 224 for four of the five models),
but not all (inception_v3: 342 -> 299). Without a prefill each new recipe is a first pass, with the GPU waiting
on the decoders: on an H200 with 16 cores a first pass took 3.4x the pure model time and a hit 1.8x
(benchmarks/results/eval_speed-cuda.txt), so a row of five with two recipes cannot come near 1.3x.

The local executor asks `before(cell)` ahead of each cell, when cells run one at a time ([suites.error.cuda]
prefill = true; `Schedule` decides). A prefill starts beside an error cell whose recipe an earlier cell of this run
already decoded (it reads from the cache, leaving the cores idle) for the next cell of the run with a recipe
not yet decoded, in an environment already built; any other cell waits for it to end. One runs at a time, as a
probe of its own (suite "prefill": no model, no GPU, niced) through the backend, so Ctrl-C, timeouts and a
dead runner end it as they end a cell. The cache's entry lock keeps it correct whatever the timing: a cell
that reaches its entry while the prefill builds it waits, then reads it.
"""

import shutil
import threading
import time

from .probe.crop_key import PIXEL_FIELDS
from .probe.jsonio import read_json
from .results import OWNER_FILE
from .storage import write_json


def recipe_group(cell):
    """What decides whether two error cells read the same cache entry, as far as the host can tell: the
    environment (its libraries), the val set, the cache folder and the recipe's pixel fields."""
    recipe = cell.variant.preprocess.recipe()
    return (cell.environment.name, cell.dataset.root, cell.dataset.limit, cell.dataset.manifest_sha256,
            cell.crop_cache["dir"], tuple(str(recipe.get(field)) for field in PIXEL_FIELDS))


def eligible(cell):
    return bool(cell.prefill and cell.crop_cache and cell.dataset and not (cell.skip_reason or cell.incompatible))


class Schedule:
    """Which prefill starts beside which cell, over the cells of a run in the order they run; no I/O."""

    def __init__(self, cells):
        self.upcoming = [cell for cell in cells if eligible(cell)]
        self.started = set()  # recipe groups a cell of this run has started on, or a prefill was started for

    def ahead_of(self, cell, ready_envs, running):
        """("start", target): start a prefill for `target` beside `cell`; ("beside", None): a running one goes on
        beside it; ("wait", None): a running one is waited for first. `running`: a prefill runs now."""
        self.upcoming = [c for c in self.upcoming if c.id != cell.id]
        if cell.skip_reason or cell.incompatible:
            return "beside", None  # nothing runs: the host writes its result
        if not eligible(cell):
            return "wait", None  # throughput and drift cells are timed on quiet cores (the busy_share check)
        if recipe_group(cell) not in self.started:
            self.started.add(recipe_group(cell))
            # it decodes its own crops: it would share the cores with the prefill's decoders for no gain
            return "wait", None
        if not running:
            for later in self.upcoming:
                ready = ready_envs.get(later.environment.name)
                if recipe_group(later) not in self.started and ready is not None and not isinstance(ready, Exception):
                    self.started.add(recipe_group(later))
                    return "start", later
        return "beside", None


def preview(cells):
    """[(cell, action, target)] as a run of `cells` one at a time would go, a started prefill taken to run until
    a cell waits for it (one that ends sooner may let the next start earlier); each environment is built as
    its first cell comes. For the plan and the tests."""
    schedule, ready, running, events = Schedule(cells), {}, False, []
    for cell in cells:
        action, target = schedule.ahead_of(cell, ready, running)
        ready[cell.environment.name] = cell.environment
        running = (running and action == "beside") or action == "start"
        events.append((cell, action, target))
    return events


def planned(cells):
    """{id of a cell: the cell whose crops are decoded beside it}, as preview() expects them."""
    return {cell.id: target for cell, action, target in preview(cells) if action == "start"}


class Prefiller:
    """The prefills of one executor run over `cells` (in the order they run); one at a time."""

    def __init__(self, cells, backend, store, ready_envs, say):
        self.backend, self.store, self.ready_envs, self.say = backend, store, ready_envs, say
        self.schedule = Schedule(cells)
        self.thread = None
        self.stopping = threading.Event()  # set by close(stopping=True): a prefill not started yet never starts

    def before(self, cell):
        """Called ahead of each cell; may start a prefill beside it, or wait for the running one to end."""
        running = self.thread is not None and self.thread.is_alive()
        action, target = self.schedule.ahead_of(cell, self.ready_envs, running)
        if running and action == "wait":
            self.say("waiting for the crop cache prefill to end before {}".format(cell.label))
            self.thread.join()
        elif action == "start":
            thread = threading.Thread(target=self._run, args=(target, cell), daemon=True,
                                      name="prefill {}".format(target.id))
            thread.start()
            self.thread = thread

    def close(self, stopping=False):
        """Wait for a running prefill; `stopping` (Ctrl-C, an error): kill it first."""
        if self.thread is None:
            return
        if stopping:
            self.stopping.set()
            # Again until it ends: its process may not have been running yet when asked the first time.
            while self.thread.is_alive():
                self.backend.stop_all()
                self.thread.join(0.2)
        self.thread.join()

    def _run(self, target, beside):
        ready = self.ready_envs[target.environment.name]
        tick, work = time.perf_counter(), None
        try:
            work = self.store.new_attempt("prefill-" + target.id)
            write_json(work / "spec.json", prefill_spec(target, work), flag="--results-dir")
            log_path = self.store.log_path("prefill-" + target.id)
            if log_path.exists():
                log_path.unlink()
            if self.stopping.is_set():  # Ctrl-C came while this was being set up
                outcome = "stopped"
            else:
                run = self.backend.run_probe(ready, work / "spec.json", log_path, target.timeout_s,
                                             owner_lock=work / OWNER_FILE)
                outcome = _outcome(run, work / "result.json", log_path)
        except Exception as exc:  # noqa: BLE001 - a prefill only saves time: its failure is said, never raised
            outcome = "failed: {}: {}".format(type(exc).__name__, exc)
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        line = "crop cache prefill for {} {} (beside {}): {} after {:.1f} s".format(
            target.environment.name, target.model.key, beside.model.key, outcome, time.perf_counter() - tick)
        self.say(line)


def prefill_spec(target, work):
    """The probe's spec: the target cell's, as suite "prefill". No model runs: no weights (nothing is fetched),
    the framework's default settings (a precision the CPU lacks would skip it), and no GPU, though a CUDA build
    may need the driver to import (the docker backend then lends the target's GPU: `for_device`)."""
    return dict(target.spec(str(work), time.time()), suite="prefill", device="cpu", engine=None,
                weights={"source": "random", "seed": target.seed}, for_device=target.device)


def _outcome(run, result_path, log_path):
    if run.interrupted:
        return "stopped"
    if run.timed_out or not result_path.is_file():
        return "failed (exit code {}; log: {})".format(run.returncode, log_path)
    result = read_json(str(result_path))
    if result["status"] != "ok":
        return "{}: {} (log: {})".format(result["status"], result["reason"], log_path)
    record = result["metrics"]["crop_cache"]
    if record["status"] == "not stored":
        return "not stored: {}".format(record["reason"])
    return "{} with {} decoders (key {})".format(
        "decoded" if record["status"] == "built" else "already there", result["metrics"]["input_workers"],
        record["key"])
