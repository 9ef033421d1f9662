"""A planned cell: environment x model x suite with everything that determines its result, and the spec the
in-cell probe reads. runner/plan.py makes them; the executors run them."""

from dataclasses import dataclass
from typing import Optional

from .gpu_check import build_facts


@dataclass(frozen=True)
class DatasetRef:
    root: str
    labels_file: Optional[str]
    limit: int
    manifest_sha256: str
    images: int


@dataclass(frozen=True)
class Cell:
    id: str
    environment: object  # matrix.Environment
    model: object  # matrix.Model
    variant: object  # matrix.Variant
    suite: str
    params: dict
    timeout_s: int
    weights: dict
    device: str
    threads: int
    seed: int
    engine: dict  # matrix.Engine.as_dict(), the settings the adapter applies
    dataset: Optional[DatasetRef]
    skip_reason: Optional[str]  # set when the host already knows the cell cannot run
    # A drift cell either writes its own seeded checkpoint (None here) or loads the one an older
    # version wrote: {"origin": environment, "cell_id": the writer's id, "sha256", "path"}.
    checkpoint: Optional[dict] = None
    # Where an error cell reads and stores decoded crops ({"dir", "limit_bytes"}; None: no cache). Not part of
    # the id: the cache changes how fast a cell runs, never its result.
    crop_cache: Optional[dict] = None
    # [suites.error] prefill: its crops may be decoded into the cache ahead of it (runner/prefill.py). Not part of the id.
    prefill: bool = False
    # Set by runner/gpu_check.py before anything runs: why this row's build cannot run on the host's GPU,
    # or the check's verdict for one that can ("ok", "jit", "unknown"). Not part of the id: a property of the host.
    incompatible: Optional[str] = None
    gpu_check: Optional[dict] = None

    @property
    def label(self):
        loads = " (loads {}'s checkpoint)".format(self.checkpoint["origin"]) if self.checkpoint else ""
        return "{} {} {}{}".format(self.environment.name, self.model.key, self.suite, loads)

    def spec(self, output_dir, launched_at):
        """The JSON the probe reads (runner/probe/cell.py)."""
        return {
            "cell_id": self.id,
            "suite": self.suite,
            "environment": self.environment.name,
            "framework": self.environment.framework,
            "model": {"key": self.model.key, "name": self.variant.name, "kwargs": dict(self.variant.kwargs)},
            "preprocess": self.variant.preprocess.recipe(),
            "weights": self.weights,
            "device": self.device,
            "threads": self.threads,
            "seed": self.seed,
            "engine": self.engine,
            "suite_params": self.params,
            "dataset": None if self.dataset is None else {
                "root": self.dataset.root, "labels_file": self.dataset.labels_file,
                "limit": self.dataset.limit, "manifest_sha256": self.dataset.manifest_sha256},
            "drift": None if self.suite != "drift" else {
                "self": self.environment.name, "cell_id": self.id, "write": self.checkpoint is None,
                "checkpoints": [self.checkpoint] if self.checkpoint else []},
            "crop_cache": self.crop_cache,
            "build": self.environment.build_label(),
            "gpu_build": build_facts(self.environment) if self.device.startswith("cuda") else None,
            "gpu_check": self.gpu_check,
            "output_dir": output_dir,
            "launched_at": launched_at,
        }

    def as_dict(self):
        return {
            "id": self.id, "environment": self.environment.name, "model": self.model.key, "suite": self.suite,
            "framework": self.environment.framework, "framework_model": self.variant.name,
            "device": self.device, "weights": self.weights["source"], "params": self.params, "engine": self.engine,
            "dataset": None if self.dataset is None else {"root": self.dataset.root, "images": self.dataset.images,
                                                          "manifest_sha256": self.dataset.manifest_sha256},
            "skip_reason": self.skip_reason,
            "build": self.environment.build_label(),
            "incompatible": self.incompatible,
            "drift_loads": self.checkpoint and {k: self.checkpoint[k] for k in ("origin", "cell_id", "sha256")},
        }
