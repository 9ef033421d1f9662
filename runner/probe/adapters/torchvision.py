"""PyTorch / torchvision adapter: from torch 1.0 + torchvision 0.2 to current releases.

Old and new torchvision differ in how pretrained weights are asked for (`pretrained=True`
before 0.13, `weights=` after) and where they are cached (TORCH_HOME/models in torch 1.0,
TORCH_HOME/hub/checkpoints later); both are handled here, nowhere else.
"""

import contextlib
import inspect
import os
import warnings

import numpy as np

from . import Unsupported
from ..weights import WeightsError, file_to_load, sha256_file, tensor_digest
from .torchvision_io import cached_weights_file

# The published tables are for these weights; "DEFAULT" may move to a newer recipe.
PRETRAINED_TAG = "IMAGENET1K_V1"


class Adapter(object):
    name = "torchvision"
    output_kind = "logits"

    def __init__(self, device, threads, engine):
        if engine["deterministic"] is True:
            # cuBLAS is deterministic only with a fixed workspace (read when CUDA starts, so now).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        import torch
        import torchvision

        self.torch = torch
        self.torchvision = torchvision
        if threads:
            torch.set_num_threads(int(threads))
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("device {!r} asked for, but torch {} sees no CUDA device (torch.version.cuda={})".format(
                device, torch.__version__, torch.version.cuda))
        self.device = torch.device(device)
        self.engine = engine
        self._configure(engine)

    def _configure(self, engine):
        """Apply the matrix's [engine] settings, or say which this torch cannot honour."""
        torch = self.torch
        if engine["cudnn_autotune"] != "default":
            torch.backends.cudnn.benchmark = bool(engine["cudnn_autotune"])
        if engine["deterministic"] != "default":
            torch.backends.cudnn.deterministic = bool(engine["deterministic"])
            if hasattr(torch, "use_deterministic_algorithms"):  # torch >= 1.8
                torch.use_deterministic_algorithms(bool(engine["deterministic"]))
        self.memory_format = None
        if engine["channels_last"]:
            self.memory_format = getattr(torch, "channels_last", None)
            if self.memory_format is None:
                raise Unsupported("channels_last needs torch >= 1.5 (torch.channels_last); this row has torch {}".format(
                    torch.__version__))
        self.autocast_dtype = None
        if engine["precision"] != "fp32":
            self._check_autocast()

    def _check_autocast(self):
        """An autocast this build cannot do warns and then runs in fp32: refuse it instead."""
        torch = self.torch
        if not hasattr(torch, "autocast"):  # checked first: torch 1.0 has no torch.bfloat16 either
            raise Unsupported("precision={} needs torch.autocast (torch >= 1.10); this row has torch {}".format(
                self.engine["precision"], torch.__version__))
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[self.engine["precision"]]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.autocast():
                pass
        refused = [str(w.message) for w in caught if "autocast" in str(w.message).lower()]
        if refused:
            raise Unsupported("precision={} on {}: torch {} says: {}".format(
                self.engine["precision"], self.device.type, torch.__version__, refused[0]))

    def autocast(self):
        """Mixed precision for the forward pass, or nothing for fp32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # -- what this version offers -------------------------------------------------------
    def versions(self):
        return {"torch": self.torch.__version__, "torchvision": self.torchvision.__version__}

    def has_model(self, name):
        return callable(getattr(self.torchvision.models, name, None))

    def settings(self):
        """What took effect (the framework's values, not the matrix's wishes)."""
        torch = self.torch
        deterministic = getattr(torch, "are_deterministic_algorithms_enabled", None)
        return {
            "threads": torch.get_num_threads(),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "deterministic_algorithms": deterministic() if deterministic else None,
            "precision": self.engine["precision"],
            "autocast": None if self.autocast_dtype is None else "torch.autocast({}, {})".format(
                self.device.type, str(self.autocast_dtype).replace("torch.", "")),
            "memory_format": "channels_last" if self.memory_format is not None else "contiguous (NCHW)",
            # Whether FP32 convolutions / matmuls may run as TF32 on tensor cores (torch >= 1.7; None before):
            # what the fraction of peak is measured against (runner/gpus.py).
            "cudnn_allow_tf32": _flag(torch.backends.cudnn, "allow_tf32"),
            "matmul_allow_tf32": _flag(getattr(torch.backends, "cuda", None), "matmul", "allow_tf32"),
        }

    def placement(self, model):
        """Where the built model's parameters are: the device its cells actually run on."""
        return {"framework_device": str(next(iter(model.parameters())).device), "from": "the parameters' device"}

    def device_info(self):
        torch = self.torch
        info = {"framework_device": str(self.device), "cuda_build": torch.version.cuda}
        if self.device.type == "cuda":
            index = self.device.index or 0
            info["gpu_name"] = torch.cuda.get_device_name(index)
            info["cudnn"] = torch.backends.cudnn.version()
        return info

    # -- model and weights ---------------------------------------------------------------
    def _constructor_kwargs(self, name, kwargs, pretrained):
        factory = getattr(self.torchvision.models, name)
        accepts = _parameters(factory)
        kwargs = dict(kwargs)
        if pretrained:
            if "weights" in accepts:
                kwargs["weights"] = PRETRAINED_TAG
            else:
                kwargs["pretrained"] = True
        elif "weights" in accepts:
            kwargs["weights"] = None
        # Releases with the weights API warn unless Inception's init is asked for by name;
        # older ones have no such argument.
        if name == "inception_v3" and not pretrained and "weights" in accepts:
            kwargs.setdefault("init_weights", True)
        return factory, kwargs

    def weights_suffix(self):
        return ".pth"

    def save_seeded(self, name, kwargs, seed, path, input_shape=None):
        """Create the model with seeded random weights and write them in torch's own format (torch.save)."""
        factory, args = self._constructor_kwargs(name, kwargs, pretrained=False)
        self.torch.manual_seed(int(seed))
        # torchvision 0.2's Inception draws its init from scipy.stats.truncnorm, i.e. numpy's global
        # generator: without this its "seeded" weights differed from run to run (seen between two runs).
        np.random.seed(int(seed))
        self.torch.save(factory(**args).state_dict(), path)
        return path

    def build(self, name, kwargs, weights, workdir, input_shape=None):
        """Build the model with the requested weights; returns (model, weights record)."""
        torch = self.torch
        source = weights["source"]
        record = {"source": source}
        if source == "pretrained":
            if weights.get("cache_dir"):
                os.environ["TORCH_HOME"] = weights["cache_dir"]
            factory, args = self._constructor_kwargs(name, kwargs, pretrained=True)
            try:
                model = factory(**args)
            except Exception as exc:  # noqa: BLE001 - offline hosts fail in several ways
                raise WeightsError("pretrained weights for {} could not be loaded ({}: {}); on an offline host use "
                                   "WEIGHTS=random or a weights file".format(name, type(exc).__name__, exc))
            record["tag"] = PRETRAINED_TAG if "weights" in args else "pretrained=True"
            path = cached_weights_file(self.torchvision, name, PRETRAINED_TAG)
            if path:
                record.update(path=path, sha256=sha256_file(path))
        else:
            factory, args = self._constructor_kwargs(name, kwargs, pretrained=False)
            path, record = file_to_load(self, name, kwargs, weights, workdir, input_shape)
            model = factory(**args)
            state = torch.load(path, map_location="cpu")
            model.load_state_dict(state)
        model.eval()
        model.to(self.device)
        if self.memory_format is not None:
            model.to(memory_format=self.memory_format)
        record["tensor_digest"] = tensor_digest(
            (key, value.detach().cpu().numpy()) for key, value in model.state_dict().items())
        return model, record

    # -- preprocessing ---------------------------------------------------------------------
    def resize(self, array, size, interpolation):
        """HWC uint8 -> HWC uint8 of `size` (width, height): torchvision's tensor resize without antialiasing
        (adapters/torchvision_io.py), the path pytorch/vision#6506 found apart from Pillow's."""
        from .torchvision_io import tensor_resize
        return tensor_resize(self.torch, self.torchvision, array, size, interpolation)

    # -- running -------------------------------------------------------------------------
    def staging(self, shape):
        """A float32 host array in page-locked memory on a GPU (None on the CPU): its copy needs no staging."""
        if self.device.type != "cuda":
            return None
        return self.torch.empty(shape, dtype=self.torch.float32).pin_memory().numpy()  # torch 1.0: no pin_memory=

    def device_conversion(self, recipe):
        """The float conversion of each batch on the GPU, from uint8 crops (adapters/torch_device.py); None on
        the CPU, where the host's threads convert without a copy."""
        if self.device.type != "cuda":
            return None
        from .torch_device import DeviceConversion
        return DeviceConversion(self.torch, self.device, recipe)

    def predict_later(self, model, array):
        """predict with the logits' copy queued: () -> logits (adapters/torch_device.py)."""
        from .torch_device import predict_later
        return predict_later(self, model, array)

    def warm_up_later(self, model, recipe, batch_sizes):
        """The first forward pass of each batch size, started now in a thread (adapters/torch_device.py): () ->
        its seconds. None on the CPU, where it would take cores from the decoders and has no kernels to load."""
        if self.device.type != "cuda":
            return None
        from .torch_device import warm_up_later
        return warm_up_later(self, model, recipe, batch_sizes)

    def to_device(self, array):
        if isinstance(array, self.torch.Tensor):  # converted on the device already (device_conversion)
            tensor = array
        else:  # non_blocking: queued from page-locked memory; from plain memory the same blocking copy
            tensor = self.torch.from_numpy(array).to(self.device, non_blocking=True)
        if self.memory_format is not None and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=self.memory_format)
        return tensor

    def forward(self, model, tensor):
        with self.torch.no_grad(), self.autocast():
            out = model(tensor)
        # Inception in training mode returns (logits, aux); eval mode returns logits.
        return out[0] if isinstance(out, tuple) else out

    def predict(self, model, array):
        return self.forward(model, self.to_device(array)).float().cpu().numpy()

    def synchronize(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    # -- device memory (the throughput sweep goes on past a batch size that does not fit) -----
    def is_out_of_memory(self, exc):
        error = getattr(self.torch.cuda, "OutOfMemoryError", None)  # torch >= 1.13; a RuntimeError before
        return (error is not None and isinstance(exc, error)) or \
            (isinstance(exc, RuntimeError) and "out of memory" in str(exc))

    def reset_memory_peak(self):
        if self.device.type == "cuda":
            reset = getattr(self.torch.cuda, "reset_peak_memory_stats", None) or \
                getattr(self.torch.cuda, "reset_max_memory_allocated", None)
            if reset is not None:
                reset(self.device)

    def memory_peak_mib(self):
        """The most memory the caching allocator handed out since the last reset (None on the CPU)."""
        if self.device.type != "cuda":
            return None
        return round(self.torch.cuda.max_memory_allocated(self.device) / 2.0 ** 20, 1)

    def release_memory(self):
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


def _flag(obj, *path):
    """bool(obj.a.b...) where every attribute exists, else None (an older torch without the setting)."""
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return bool(obj)


def _parameters(factory):
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return set()
    names = set(params)
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        names.add("**")
    return names
