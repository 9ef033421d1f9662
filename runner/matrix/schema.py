"""The matrix as frozen types and the constants they are checked against.

Nothing here reads a file: runner/matrix/load.py builds these objects from matrix.toml, so every
other module can hold a Matrix without importing the parser.
"""

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .engine import PRECISIONS, overridden_values

__all__ = [
    "SCHEMA", "SUITES", "WEIGHT_SOURCES", "NAME", "PYTHON", "SHA256", "PROBE_NEEDS", "PRECISIONS",
    "Preprocess", "Published", "WeightsFile", "Variant", "Model", "Environment", "ErrorSuite", "ThroughputSuite",
    "DriftSuite", "Defaults", "Engine", "DockerSettings", "Matrix",
]

SCHEMA = 1
SUITES = ("error", "throughput", "drift")
WEIGHT_SOURCES = ("pretrained", "random", "file", "auto")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PYTHON = re.compile(r"^3\.\d+(\.\d+)?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
PROBE_NEEDS = ("numpy", "pillow", "nvidia-ml-py")  # nvidia-ml-py: GPU telemetry (probe/telemetry.py)


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
class Environment:
    name: str
    framework: str
    python: str
    packages: tuple
    index_url: Optional[str]
    extra_index_urls: tuple
    cuda_image: Optional[str]
    models: tuple  # model keys to run here

    def pinned_version(self, package):
        for line in self.packages:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == canonicalize_name(package):
                return next(iter(requirement.specifier)).version
        return None


@dataclass(frozen=True)
class ErrorSuite:
    batch_size: int
    limit: int
    timeout_s: int
    workers: int  # JPEG decoder threads (0 = one per core, up to 8)
    prefetch: int  # batches decoded ahead of the model


@dataclass(frozen=True)
class ThroughputSuite:
    batch_sizes: tuple
    warmup: int
    iterations: int
    trials: int  # repeated timed windows per batch size: the result carries their median and range
    timeout_s: int


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
class DockerSettings:
    """How the docker backend builds and runs cells (runner/backends/docker.py)."""

    cpu_base: Optional[str]  # base image for CPU hosts, pinned by tag (the GPU flavour uses each row's cuda_image)
    memory_limit: str  # per cell container, Docker's notation: "16g"
    user: str  # uid:gid the cells run as (never root)


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

    def environment(self, name):
        return next((env for env in self.environments if env.name == name), None)

    def model(self, key):
        return next((model for model in self.models if model.key == key), None)
