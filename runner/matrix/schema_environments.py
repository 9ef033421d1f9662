"""The matrix's rows as frozen types: an environment and the GPU build it installs on a GPU host."""

from dataclasses import dataclass, replace
from typing import Optional

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class GpuBuild:
    """What a row installs on a GPU host ([environments.NAME.cuda]) and what that build can run on.

    `swap` replaces CPU pins by their CUDA builds (tensorflow -> tensorflow-gpu); `cuda` is the CUDA runtime
    the build was compiled against; `sass` the architectures it carries machine code for and `ptx` those it
    carries PTX for (the driver can compile PTX for a newer GPU at start); `system_libs` the shared libraries
    it loads from the system (a venv host must have them; the row's cuda_image provides them)."""

    swap: tuple  # (CPU package name, CUDA build pin) pairs
    cuda: str
    cudnn: Optional[str]
    sass: tuple  # e.g. ("sm_35", "sm_70"); () where the framework reports its own list at cell start
    ptx: tuple  # e.g. ("compute_70",)
    system_libs: tuple  # e.g. ("libcudart.so.10.0", "libcudnn.so.7")
    source: str

    def applied(self, packages):
        swaps = {canonicalize_name(name): pin for name, pin in self.swap}
        return tuple(swaps.get(canonicalize_name(Requirement(line).name), line) for line in packages)

    def as_dict(self):
        return {"cuda": self.cuda, "cudnn": self.cudnn, "sass": list(self.sass), "ptx": list(self.ptx),
                "system_libs": list(self.system_libs), "swap": dict(self.swap), "source": self.source}


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
    gpu: Optional[GpuBuild] = None  # its GPU build, where matrix.toml names one
    build: str = "cpu"  # which build `packages` holds: "cpu", or "cuda" once for_device("cuda") applied `gpu`

    def for_device(self, kind):
        """This row as a host of `kind` ("cpu" or "cuda") installs it: on a GPU host, its GPU build's packages."""
        if kind == self.build or kind == "cpu" or self.gpu is None:
            return self
        return replace(self, packages=self.gpu.applied(self.packages), build="cuda")

    def build_label(self):
        """The build in words, for the plan and the results: 'cpu', or 'cuda 10.0 (tensorflow-gpu==1.13.1)'."""
        if self.build != "cuda" or self.gpu is None:
            return self.build
        swapped = ", ".join(pin for _, pin in self.gpu.swap)
        return "cuda {}{}{}".format(self.gpu.cuda, ", cuDNN " + self.gpu.cudnn if self.gpu.cudnn else "",
                                    " ({})".format(swapped) if swapped else "")

    def pinned_version(self, package):
        """The pinned version of `package`; on a GPU build, of the package that replaced it (tensorflow-gpu)."""
        wanted = {canonicalize_name(package)}
        if self.build == "cuda" and self.gpu is not None:
            wanted |= {canonicalize_name(Requirement(pin).name) for name, pin in self.gpu.swap
                       if canonicalize_name(name) == canonicalize_name(package)}
        for line in self.packages:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) in wanted:
                return next(iter(requirement.specifier)).version
        return None
