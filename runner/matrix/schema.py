"""The matrix as frozen types and the constants they are checked against.

Nothing here reads a file: runner/matrix/load.py builds these objects from matrix.toml, so every
other module can hold a Matrix without importing the parser.
"""

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .engine import PRECISIONS, overridden_values
from .schema_environments import Environment, GpuBuild
from .schema_hosts import DockerSettings, SlurmSettings

__all__ = [
    "SCHEMA", "SUITES", "WEIGHT_SOURCES", "NAME", "PYTHON", "SHA256", "PROBE_NEEDS", "PRECISIONS",
    "Preprocess", "Published", "WeightsFile", "Variant", "Model", "GpuBuild", "Environment", "ErrorSuite", "ThroughputSuite",
    "DriftSuite", "Defaults", "Engine", "DockerSettings", "FDR_METHODS", "CompareSettings", "BisectRule",
    "SlurmSettings", "Matrix",
]

SCHEMA = 1
SUITES = ("error", "throughput", "drift")
WEIGHT_SOURCES = ("pretrained", "random", "file", "auto")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*\Z")
PYTHON = re.compile(r"^3\.\d+(\.\d+)?\Z")
SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
PROBE_NEEDS = ("numpy", "pillow", "nvidia-ml-py")  # nvidia-ml-py: GPU telemetry (probe/telemetry.py)
FDR_METHODS = ("bh", "holm")  # Benjamini-Hochberg (false-discovery rate) or Holm (family-wise error)


@dataclass(frozen=True)
class Preprocess:
    name: str
    resize: int
    crop: int
    interpolation: str
    resize_mode: str
    scale: float
    mean: tuple
    std: tuple
    channel_order: str
    layout: str
    crop_offset: str
    resize_with: str
    source: str

    def recipe(self):
        """The dict the probe's preprocess.Recipe takes (and the part that enters cell ids)."""
        return {
            "resize": self.resize, "crop": self.crop, "interpolation": self.interpolation,
            "resize_mode": self.resize_mode, "scale": self.scale, "mean": list(self.mean),
            "std": list(self.std), "channel_order": self.channel_order, "layout": self.layout,
            "crop_offset": self.crop_offset, "resize_with": self.resize_with,
        }


@dataclass(frozen=True)
class Published:
    top1_error: float
    top5_error: float
    applies_to: str  # a requirement on the framework's version package, e.g. "torchvision<0.13"
    source: str
    revision: str
    weights: str

    def matches(self, version):
        requirement = Requirement(self.applies_to)
        return requirement.specifier.contains(version, prereleases=True)


@dataclass(frozen=True)
class WeightsFile:
    path: str
    sha256: str


@dataclass(frozen=True)
class Variant:
    """A model as one framework names, builds, preprocesses and publishes it."""

    framework: str
    name: str
    preprocess: Preprocess
    kwargs: tuple  # sorted (key, value) pairs
    published: tuple
    weights_file: Optional[WeightsFile]

    def published_for(self, version):
        for entry in self.published:
            if entry.matches(version):
                return entry
        return None


@dataclass(frozen=True)
class Model:
    key: str
    title: str
    variants: tuple  # Variant, one per framework
    gmacs: Optional[float] = None  # multiply-accumulates per image (10^9), for the fraction of GPU peak
    gmacs_source: Optional[str] = None

    def variant(self, framework):
        for variant in self.variants:
            if variant.framework == framework:
                return variant
        return None


@dataclass(frozen=True)
class ErrorSuite:
    batch_size: int
    limit: int
    timeout_s: int
    workers: int  # JPEG decoder processes (0 = from the cell's cores: runner/probe/error_suite.py; 1 = in the probe)
    prefetch: int  # batches decoded ahead of the model
    # Where the float conversion runs: "device" (the GPU, where the adapter can: torch) or "host" (threads).
    # The bits are the same either way.
    convert_on: str = "device"
    # The decode-once crop cache (runner/probe/crop_cache.py): its folder ("off": none; None: the default,
    # ~/.cache/dlmatrix/crops; DLMATRIX_CACHE overrides both) and its size limit in Docker's notation.
    crop_cache: Optional[str] = None
    crop_cache_limit: str = "50g"
    # Decode a later cell's recipe into the crop cache while a cell that reads its own crops from it runs
    # (runner/prefill.py). Not part of the id: it changes when crops are decoded, never which.
    prefill: bool = False
    cuda: Optional["ErrorSuite"] = None  # [suites.error.cuda] merged over these keys: GPU cells' settings

    def for_device(self, device):
        """The settings a cell on `device` ('cpu', 'cuda', 'cuda:N') runs with."""
        return self.cuda if self.cuda is not None and device.startswith("cuda") else self

    @property
    def crop_cache_limit_bytes(self):
        return size_bytes(self.crop_cache_limit)


@dataclass(frozen=True)
class ThroughputSuite:
    batch_sizes: tuple
    warmup: int
    iterations: int
    trials: int  # repeated timed windows per batch size: the result carries their median and range
    timeout_s: int
    min_window_s: float = 0.0  # each trial: at least `iterations` iterations and at least this many seconds
    cuda: Optional["ThroughputSuite"] = None  # [suites.throughput.cuda] merged over these keys: GPU cells' settings

    def for_device(self, device):
        """The settings a cell on `device` ('cpu', 'cuda', 'cuda:N') runs with."""
        return self.cuda if self.cuda is not None and device.startswith("cuda") else self


@dataclass(frozen=True)
class DriftSuite:
    images: int  # the first N images of the val set (deterministic order), the same for every version
    batch_size: int
    timeout_s: int


@dataclass(frozen=True)
class Defaults:
    weights: str
    seed: int
    device: str
    threads: int
    weights_cache: Optional[str]
    memory_limit: str  # resident memory of one cell's processes together, Docker's notation: "16g"

    @property
    def memory_limit_bytes(self):
        return size_bytes(self.memory_limit)


SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def size_bytes(text):
    """Docker's size notation ('16g', '512m', '1024') in bytes."""
    unit = text[-1].lower() if text[-1].isalpha() else "b"
    return int(text.rstrip("bkmgBKMG")) * SIZE_UNITS[unit]


@dataclass(frozen=True)
class Engine:
    """Settings that change speed or results. Part of every cell's id; each adapter applies them before it
    builds the model, records what took effect, and skips the cell when its version cannot honour one.

    "default" leaves the framework's own choice (which differs: PyTorch does not autotune cuDNN, MXNet
    does; Keras 3 compiles with XLA on a GPU, Keras 2 does not), and the result records what that was.
    """

    precision: str  # fp32 | fp16 | bf16 (mixed precision where the framework has it)
    channels_last: bool
    cudnn_autotune: object  # True | False | "default"
    deterministic: object
    xla: object  # TensorFlow only

    def as_dict(self):
        return asdict(self)

    def replaced(self, overrides, where):
        """A copy with `overrides` ({key: text}, from --engine KEY=VALUE) parsed and checked like the matrix's."""
        return Engine(**overridden_values(self.as_dict(), overrides, where))


@dataclass(frozen=True)
class CompareSettings:
    """Thresholds of the verdicts ([compare]). One place, so `runner compare` and the report's Findings
    cannot judge the same results by different numbers. The defaults are the matrix's when the table is absent."""

    alpha: float = 0.05  # false-discovery rate over all tests of one comparison
    fdr: str = "bh"  # one of FDR_METHODS
    error_margin_points: float = 0.5  # |top-1 difference| (points) whose CI inside +-margin means "same"
    resolve_points: float = 0.5  # gap a published-vs-reproduced check must resolve, else "not testable"
    throughput_factor_cpu: float = 1.25  # run-to-run noise floor on a CPU: a ratio inside [1/f, f] is no change
    throughput_factor_gpu: float = 1.10  # the same on a GPU (asv's default factor)
    cold_start_factor: float = 1.5  # cold start has one sample per cell, so only a change beyond this counts
    drift_rtol: float = 1e-4  # numerically close: max |diff| <= drift_rtol * max |reference output|
    busy_share: float = 0.1  # other processes' share of the cores above which a timing is not judged


@dataclass(frozen=True)
class BisectRule:
    """How `runner bisect` derives an environment for one release of `package` ([bisect.FRAMEWORK]).

    Every pin of the good row is held, so a changed result points at the bisected package; the rules move
    only what a release cannot install or run without (its Python, companion packages such as the
    torchvision built for one torch). In each list the first range that contains the release wins.
    """

    framework: str
    package: str  # bisected unless --package names another
    python: tuple = ()  # (PEP 440 specifier set, Python version) pairs
    moves: tuple = ()  # (PEP 440 specifier set, ("name==version", ...)) pairs: [[bisect.FRAMEWORK.with]]

    def derive(self, version):
        """(python, pins) for `version` of the package: python is None to keep the good row's, and each pin
        replaces the good row's pin of that name or is added to its packages."""
        version = Version(str(version))
        python = next((py for spec, py in self.python if _contains(spec, version)), None)
        pins = next((pins for spec, pins in self.moves if _contains(spec, version)), ())
        return python, pins


def _contains(specifier, version):
    # Pre-releases count: a bisection over the index may well land on one, and a rule should still apply.
    return SpecifierSet(specifier).contains(version, prereleases=True)


@dataclass(frozen=True)
class Matrix:
    path: Path
    defaults: Defaults
    docker: DockerSettings
    error: ErrorSuite
    throughput: ThroughputSuite
    drift: DriftSuite
    engine: Engine
    environments: tuple
    models: tuple
    compare: CompareSettings = CompareSettings()
    slurm: SlurmSettings = SlurmSettings()
    bisect: dict = field(default_factory=dict, hash=False)  # framework -> BisectRule; frameworks without one are absent

    def environment(self, name):
        return next((env for env in self.environments if env.name == name), None)

    def model(self, key):
        return next((model for model in self.models if model.key == key), None)
