"""MXNet / GluonCV adapter: GluonCV 0.4 (MXNet 1.4) to 0.10 (MXNet 1.9).

MXNet runs asynchronously: a forward call returns before the work is done, so timing
ends with `synchronize` (waitall). Gluon initialises parameters lazily, so a seeded model
needs one forward pass before its weights can be written.
"""

import os

import numpy as np

from . import Unsupported
from ..weights import WeightsError, file_to_load, tensor_digest


class Adapter(object):
    name = "gluoncv"
    output_kind = "logits"

    def __init__(self, device, threads, engine):
        self.engine = engine
        self.dtype = {"fp32": "float32", "fp16": "float16"}.get(engine["precision"])
        if self.dtype is None:
            raise Unsupported("precision={}: MXNet/GluonCV is run in float32 or float16 (net.cast) here".format(
                engine["precision"]))
        if self.dtype == "float16" and not device.startswith("cuda"):
            # Measured on MXNet 1.4-1.9 CPU builds: "FP16 gemm on cpu not implemented!"
            raise Unsupported("precision=fp16 on the CPU: MXNet has no float16 GEMM on the CPU")
        if engine["channels_last"]:
            raise Unsupported("channels_last: GluonCV's model zoo builds NCHW networks only")
        # Read by MXNet's engine when it starts, so before the import.
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(int(threads))
            os.environ["MXNET_CPU_WORKER_NTHREADS"] = str(int(threads))
        if engine["cudnn_autotune"] != "default":
            os.environ["MXNET_CUDNN_AUTOTUNE_DEFAULT"] = "1" if engine["cudnn_autotune"] else "0"
        if engine["deterministic"] != "default":
            # Documented from MXNet 1.4 (docs/faq/env_var.md, apache/incubator-mxnet PR 13049): cuDNN algorithms.
            os.environ["MXNET_ENFORCE_DETERMINISM"] = "1" if engine["deterministic"] else "0"
        import mxnet as mx
        from gluoncv import model_zoo

        self.mx = mx
        self.model_zoo = model_zoo
        self.threads = int(threads or 0)
        if device.startswith("cuda"):
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            count = mx.context.num_gpus()
            if count <= index:
                raise RuntimeError("device {!r} asked for, but MXNet {} sees {} GPU(s)".format(
                    device, mx.__version__, count))
            self.ctx = mx.gpu(index)
        else:
            self.ctx = mx.cpu()

    # -- what this version offers -------------------------------------------------------
    def versions(self):
        import gluoncv

        return {"mxnet": self.mx.__version__, "gluoncv": gluoncv.__version__}

    def has_model(self, name):
        lister = getattr(self.model_zoo, "get_model_list", None)
        names = lister() if lister is not None else self.model_zoo.model_zoo._models
        return name.lower() in [n.lower() for n in names]

    def settings(self):
        """What took effect: MXNet reads these from the environment when it starts."""
        return {"threads": self.threads, "hybridized": True,
                "cudnn_autotune": os.environ.get("MXNET_CUDNN_AUTOTUNE_DEFAULT", "1 (MXNet default)"),
                "deterministic": os.environ.get("MXNET_ENFORCE_DETERMINISM", "0 (MXNet default)"),
                "precision": self.engine["precision"],
                "dtype": self.dtype + (" (net.cast: weights and activations)" if self.dtype == "float16" else ""),
                "memory_format": "NCHW"}

    def placement(self, model):
        """Where the built network's parameters are: the context its cells actually run on."""
        first = next(iter(model.collect_params().values()))
        return {"framework_device": str(first.list_ctx()[0]), "from": "the parameters' context"}

    def device_info(self):
        info = {"framework_device": str(self.ctx)}
        features = getattr(getattr(self.mx, "runtime", None), "Features", None)
        if features is not None:  # MXNet >= 1.5
            enabled = features()
            info["cuda_build"] = enabled.is_enabled("CUDA")
            info["cudnn_build"] = enabled.is_enabled("CUDNN")
        return info

    # -- model and weights ---------------------------------------------------------------
    def weights_suffix(self):
        return ".params"

    def _initialised(self, name, kwargs, input_shape, seed):
        mx = self.mx
        mx.random.seed(int(seed))
        np.random.seed(int(seed))
        net = self.model_zoo.get_model(name, pretrained=False, **dict(kwargs))
        net.initialize(ctx=mx.cpu())
        net(mx.nd.zeros((1,) + tuple(input_shape[1:]), ctx=mx.cpu()))  # settles the deferred shapes
        return net

    def save_seeded(self, name, kwargs, seed, path, input_shape):
        """Create the model with seeded random weights and write them in MXNet's own .params format."""
        self._initialised(name, kwargs, input_shape, seed).save_parameters(path)
        return path

    def build(self, name, kwargs, weights, workdir, input_shape=None):
        """Build the model with the requested weights; returns (model, weights record)."""
        source = weights["source"]
        record = {"source": source}
        if source == "pretrained":
            args = dict(kwargs, pretrained=True, ctx=self.ctx)
            if weights.get("cache_dir"):
                args["root"] = weights["cache_dir"]
            try:
                net = self.model_zoo.get_model(name, **args)
            except Exception as exc:  # noqa: BLE001 - offline hosts fail in several ways
                raise WeightsError("pretrained weights for {} could not be loaded ({}: {}); on an offline host use "
                                   "WEIGHTS=random or a weights file".format(name, type(exc).__name__, exc))
            record["tag"] = "pretrained=True"
        else:
            path, record = file_to_load(self, name, kwargs, weights, workdir, input_shape)
            net = self.model_zoo.get_model(name, pretrained=False, **dict(kwargs))
            net.load_parameters(path, ctx=self.ctx)
        # Parameter names carry a per-process counter (resnetv10_, resnetv11_...); order is what is stable.
        record["tensor_digest"] = tensor_digest(
            ("{:04d}".format(i), p.data(self.ctx).asnumpy()) for i, p in enumerate(net.collect_params().values()))
        if self.dtype != "float32":
            net.cast(self.dtype)  # GluonCV's own fp16 inference (--dtype float16); the digest is of the fp32 weights
        net.hybridize()
        return net, record

    # -- preprocessing ---------------------------------------------------------------------
    # MXNet's image codes (OpenCV's): GluonCV's transforms.Resize uses 1, bilinear.
    INTERPOLATION = {"nearest": 0, "bilinear": 1, "bicubic": 2}

    def resize(self, array, size, interpolation):
        """HWC uint8 -> HWC uint8 of `size` (width, height), with mx.image.imresize as GluonCV's eval does."""
        out = self.mx.image.imresize(self.mx.nd.array(array, dtype="uint8"), int(size[0]), int(size[1]),
                                     interp=self.INTERPOLATION[interpolation])
        return out.asnumpy()

    # -- running -------------------------------------------------------------------------
    def to_device(self, array):
        return self.mx.nd.array(array, ctx=self.ctx, dtype=self.dtype)

    def forward(self, model, tensor):
        return model(tensor)

    def predict(self, model, array):
        return model(self.to_device(array)).asnumpy().astype(np.float32)

    def synchronize(self):
        self.mx.nd.waitall()

    # -- device memory (the throughput sweep goes on past a batch size that does not fit) -----
    def is_out_of_memory(self, exc):
        # MXNet raises its one error type (at the next wait: it runs asynchronously); the text says what failed.
        return isinstance(exc, self.mx.base.MXNetError) and "out of memory" in str(exc).lower()

    def release_memory(self):
        empty = getattr(self.ctx, "empty_cache", None)  # MXNet >= 1.5: the GPU's memory pool
        if empty is not None and self.ctx.device_type == "gpu":
            empty()
