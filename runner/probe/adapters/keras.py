"""TensorFlow / Keras adapter: Keras applications through tf.keras, from TF 1.13 to current.

Three API generations meet here and nowhere else:
- TF 1.x: graph mode; the session is configured once; seeds through tf.set_random_seed.
- TF 2.0-2.15: eager tf.keras (Keras 2); tf.random.set_seed.
- TF >= 2.16: tf.keras is Keras 3; weights it writes itself must be named *.weights.h5,
  and it still reads the legacy HDF5 files older versions write (which the drift suite needs).
Keras applications end in a softmax, so the outputs compared are probabilities, not logits.
"""

import os

import numpy as np

from . import Unsupported
from ..weights import WeightsError, file_to_load, tensor_digest

PRETRAINED_TAG = "imagenet"


class Adapter(object):
    name = "keras"
    output_kind = "probabilities"

    def __init__(self, device, threads, engine):
        self.requested_device = device
        self.engine = engine
        if device == "cpu":
            # TF 1.x has no API to hide a GPU once imported; the cell is its own process.
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        elif device.startswith("cuda:"):
            os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        # Read when TensorFlow starts, so set before the import. TF autotunes cuDNN unless told not to.
        if engine["cudnn_autotune"] != "default":
            os.environ["TF_CUDNN_USE_AUTOTUNE"] = "1" if engine["cudnn_autotune"] else "0"
        if engine["deterministic"] is True:
            os.environ["TF_DETERMINISTIC_OPS"] = "1"  # TF 2.1-2.8; later ones have enable_op_determinism
        if engine["xla"] is True and device == "cpu":
            os.environ["TF_XLA_FLAGS"] = "--tf_xla_cpu_global_jit"  # auto-clustering skips the CPU without it
        import tensorflow as tf

        self.tf = tf
        self.keras = tf.keras
        self.jit_compile = None  # Keras 3: the model's, once built
        self.graph_mode = not tf.executing_eagerly()
        self.threads = int(threads or 0)
        if self.graph_mode:
            self._new_graph()
        elif self.threads:
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
        self._configure(engine)  # after the threads: a dtype policy starts TF's runtime, which fixes them
        if device.startswith("cuda") and not self._gpus():
            raise RuntimeError("device {!r} asked for, but TensorFlow {} sees no GPU (built with CUDA: {})".format(
                device, tf.__version__, tf.test.is_built_with_cuda()))
        self.device_name = "/GPU:0" if device.startswith("cuda") else "/CPU:0"

    def _configure(self, engine):
        """Apply the matrix's [engine] settings, or say which this TensorFlow cannot honour."""
        tf = self.tf
        version = tf.__version__
        if engine["deterministic"] is True and self.graph_mode:
            raise Unsupported("deterministic=true needs TF >= 2.1 (TF_DETERMINISTIC_OPS); this row has TF {}".format(
                version))
        if engine["deterministic"] is True and hasattr(tf.config.experimental, "enable_op_determinism"):
            tf.config.experimental.enable_op_determinism()
        # Keras 3 decides XLA per model (model.jit_compile, set in build); Keras 2 by TF's auto-clustering.
        if engine["xla"] != "default" and not self.graph_mode and not self.keras3():
            tf.config.optimizer.set_jit(bool(engine["xla"]))
        if engine["precision"] != "fp32":
            policy = {"fp16": "mixed_float16", "bf16": "mixed_bfloat16"}[engine["precision"]]
            mixed = getattr(self.keras, "mixed_precision", None)
            if mixed is not None and hasattr(mixed, "set_global_policy"):  # TF >= 2.4, Keras 3
                mixed.set_global_policy(policy)
            elif engine["precision"] == "bf16":
                # Measured: TF 2.1.4's experimental API fails to build Keras applications under mixed_bfloat16.
                raise Unsupported("precision=bf16 needs Keras' mixed_precision.set_global_policy (TF >= 2.4); this "
                                  "row has TF {}".format(version))
            elif mixed is not None and hasattr(getattr(mixed, "experimental", None), "set_policy"):  # TF 2.1-2.3
                mixed.experimental.set_policy(policy)
            else:
                raise Unsupported("precision={} needs Keras mixed precision (TF >= 2.1); this row has TF {}".format(
                    engine["precision"], version))

    def _new_graph(self):
        """TF 1.x: a fresh graph and session. Op seeds derive from the graph's op count, so a seeded
        model is reproducible only when built first in its graph."""
        tf = self.tf
        tf.keras.backend.clear_session()
        config = tf.ConfigProto()
        if self.threads:
            config.intra_op_parallelism_threads = self.threads
        if self.engine["xla"] != "default":
            levels = tf.OptimizerOptions
            config.graph_options.optimizer_options.global_jit_level = levels.ON_1 if self.engine["xla"] else levels.OFF
        self.session_config = config
        tf.keras.backend.set_session(tf.Session(config=config))

    def _gpus(self):
        tf = self.tf
        lister = getattr(getattr(tf, "config", None), "list_physical_devices", None) or \
            getattr(getattr(getattr(tf, "config", None), "experimental", None), "list_physical_devices", None)
        if lister is not None:
            return lister("GPU")
        return [1] if tf.test.is_gpu_available() else []

    # -- what this version offers -------------------------------------------------------
    def versions(self):
        found = {"tensorflow": self.tf.__version__, "keras": getattr(self.keras, "__version__", None)}
        try:
            import keras_applications  # TF 1.x / early 2.x take their models from here

            found["keras_applications"] = keras_applications.__version__
        except ImportError:
            pass
        return found

    def keras3(self):
        return int(str(self.versions()["keras"] or "2").split(".")[0]) >= 3

    def has_model(self, name):
        return callable(getattr(self.keras.applications, name, None))

    def settings(self):
        """What took effect (the framework's values, not the matrix's wishes)."""
        tf = self.tf
        threads = self.threads
        found = {"graph_mode": self.graph_mode, "image_data_format": self.keras.backend.image_data_format(),
                 "cudnn_autotune": os.environ.get("TF_CUDNN_USE_AUTOTUNE", "1 (TensorFlow default)"),
                 "precision": self.engine["precision"], "dtype_policy": self._policy_name(),
                 "tf_xla_flags": os.environ.get("TF_XLA_FLAGS"),
                 "memory_format": "NHWC (Keras' native layout; channels_last changes nothing)"}
        if self.graph_mode:
            level = self.session_config.graph_options.optimizer_options.global_jit_level
            found["xla"] = "global_jit_level={}".format(tf.OptimizerOptions.GlobalJitLevel.Name(level))
            found["deterministic"] = False
        else:
            threads = tf.config.threading.get_intra_op_parallelism_threads()
            found["xla"] = "model.jit_compile={}".format(self.jit_compile) if self.keras3() else \
                "auto-clustering={}".format(tf.config.optimizer.get_jit() or False)
            enabled = getattr(tf.config.experimental, "is_op_determinism_enabled", None)
            found["deterministic"] = enabled() if enabled else os.environ.get("TF_DETERMINISTIC_OPS") == "1"
        found["threads"] = threads
        # Whether FP32 ops may run as TF32 on tensor cores (TF >= 2.4, on by default; None before): what the
        # fraction of peak is measured against (runner/gpus.py).
        tf32 = getattr(self._experimental(), "tensor_float_32_execution_enabled", None)
        found["tf32_execution_enabled"] = bool(tf32()) if tf32 is not None else None
        return found

    def _policy_name(self):
        mixed = getattr(self.keras, "mixed_precision", None)
        getter = getattr(mixed, "global_policy", None) or getattr(getattr(mixed, "experimental", None), "global_policy", None)
        return getattr(getter(), "name", None) if getter else "float32"

    def placement(self, model):
        """Where the built model's first variable lives. A TF 1.x graph variable may not say (placement happens
        when the session runs): then the device the model was built under, and the record says so."""
        variable = model.weights[0]
        device = getattr(getattr(variable, "value", variable), "device", "") or ""  # Keras 3 wraps a tf.Variable
        if device:
            return {"framework_device": device, "from": "the first variable's device"}
        return {"framework_device": self.device_name, "from": "tf.device the model was built under"}

    def device_info(self):
        tf = self.tf
        info = {"framework_device": self.device_name, "cuda_build": bool(tf.test.is_built_with_cuda())}
        build_info = getattr(getattr(tf, "sysconfig", None), "get_build_info", None)
        if build_info is not None:
            details = build_info()
            info["cuda_build_version"] = details.get("cuda_version")
            info["cudnn_build_version"] = details.get("cudnn_version")
        if self.device_name.startswith("/GPU"):
            details = getattr(tf.config.experimental, "get_device_details", None)
            gpus = self._gpus()
            if details is not None and gpus:
                info["gpu_name"] = details(gpus[0]).get("device_name")
        return info

    # -- model and weights ---------------------------------------------------------------
    def weights_suffix(self):
        return ".weights.h5" if self.keras3() else ".h5"

    def _construct(self, name, kwargs, weights):
        with self.tf.device(self.device_name):
            return getattr(self.keras.applications, name)(weights=weights, **dict(kwargs))

    def _seed(self, seed):
        tf = self.tf
        np.random.seed(seed)
        set_all = getattr(getattr(self.keras, "utils", None), "set_random_seed", None)
        if set_all is not None:
            set_all(seed)
        elif self.graph_mode:
            self._new_graph()
            tf.set_random_seed(seed)
        else:
            tf.random.set_seed(seed)

    def save_seeded(self, name, kwargs, seed, path, input_shape=None):
        """Create the model with seeded random weights and write them in Keras' own weight-file format."""
        self._seed(int(seed))
        self._construct(name, kwargs, None).save_weights(path)
        return path

    def build(self, name, kwargs, weights, workdir, input_shape=None):
        """Build the model with the requested weights; returns (model, weights record)."""
        source = weights["source"]
        record = {"source": source}
        if source == "pretrained":
            if weights.get("cache_dir"):
                os.environ["KERAS_HOME"] = weights["cache_dir"]  # honoured by Keras 3; older ones use ~/.keras
            try:
                model = self._construct(name, kwargs, PRETRAINED_TAG)
            except Exception as exc:  # noqa: BLE001 - offline hosts fail in several ways
                raise WeightsError("pretrained weights for {} could not be loaded ({}: {}); on an offline host use "
                                   "WEIGHTS=random or a weights file".format(name, type(exc).__name__, exc))
            record["tag"] = PRETRAINED_TAG
        else:
            path, record = file_to_load(self, name, kwargs, weights, workdir, input_shape)
            model = self._construct(name, kwargs, None)
            model.load_weights(path)
        record["tensor_digest"] = tensor_digest(
            ("{:04d}".format(i), value) for i, value in enumerate(model.get_weights()))
        if self.keras3():
            # "auto" turns XLA on wherever a GPU is visible; the matrix may pin it either way.
            if self.engine["xla"] != "default":
                model.jit_compile = bool(self.engine["xla"])
            self.jit_compile = model.jit_compile
        return model, record

    # -- running -------------------------------------------------------------------------
    def to_device(self, array):
        if self.graph_mode:
            return array  # fed through the session on each call
        with self.tf.device(self.device_name):
            return self.tf.constant(array)

    def forward(self, model, tensor):
        # predict_on_batch returns numpy, so every call ends with the result on the host.
        return model.predict_on_batch(tensor)

    def predict(self, model, array):
        # Mixed precision answers in float16/bfloat16; TF's own bfloat16 numpy type converts only by astype.
        return np.asarray(self.forward(model, self.to_device(array))).astype(np.float32)

    def synchronize(self):
        pass

    def _experimental(self):
        """tf.config.experimental, or None (TF 1.13 has no tf.config)."""
        return getattr(getattr(self.tf, "config", None), "experimental", None)

    # -- device memory (the throughput sweep goes on past a batch size that does not fit) -----
    def is_out_of_memory(self, exc):
        exhausted = getattr(getattr(self.tf, "errors", None), "ResourceExhaustedError", None)
        return exhausted is not None and isinstance(exc, exhausted)

    def reset_memory_peak(self):
        reset = getattr(self._experimental(), "reset_memory_stats", None)  # TF >= 2.5
        if reset is not None and self.device_name.startswith("/GPU"):
            try:
                reset("GPU:0")
            except (ValueError, RuntimeError):
                pass

    def memory_peak_mib(self):
        """TensorFlow's peak allocation on the GPU (TF >= 2.5), else None (telemetry's NVML peak is used)."""
        info = getattr(self._experimental(), "get_memory_info", None)
        if info is None or not self.device_name.startswith("/GPU"):
            return None
        try:
            return round(info("GPU:0")["peak"] / 2.0 ** 20, 1)
        except (ValueError, RuntimeError, KeyError):
            return None
