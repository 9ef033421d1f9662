"""The cell's own GPU check at start (runner/probe/gpu_compat.py), on each row's real framework and Python.

What the installed framework says of its build is read the same way on a host without a GPU; the verdict
there is "unknown" (NVML cannot start), and the decision itself is tested with known GPUs in
tests/test_gpu_compat.py.
"""

import importlib

import pytest

from runner.probe.gpu_compat import arch_number, cell_verdict, decide, framework_build, version_tuple

FRAMEWORK_MODULES = {"torchvision": "torch", "keras": "tensorflow", "gluoncv": "mxnet"}


def installed_framework():
    for framework, module in FRAMEWORK_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return framework
    pytest.skip("no framework installed in this environment")


def test_the_framework_describes_its_own_build():
    framework = installed_framework()
    found = framework_build(framework)
    assert set(found) <= {"cuda", "sass", "ptx"}
    if found.get("cuda") is not None:
        assert version_tuple(found["cuda"])[0] >= 8
    for key in ("sass", "ptx"):
        assert all(arch_number(arch) is not None for arch in found.get(key, ()))
    if framework == "torchvision":
        import torch
        assert found["cuda"] == torch.version.cuda  # None for a +cpu build: then "not a CUDA build"


def test_without_a_gpu_the_cell_check_says_it_cannot_tell(monkeypatch):
    framework = installed_framework()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    verdict = cell_verdict(framework, "cuda", {"label": "this row", "cuda": "10.0", "sass": ["sm_70"], "ptx": []})
    # Here NVML cannot start (no driver); on a GPU host the same call decides for real (benchmarks/gpu_host.sh).
    assert verdict["status"] in ("unknown", "ok", "jit", "incompatible")
    assert verdict["build"]["label"]
    if verdict["status"] == "unknown":
        assert "the cell checks again" in verdict["reason"] or "could not be read" in verdict["reason"]


def test_a_cpu_build_on_a_gpu_is_incompatible_with_a_reason():
    gpu = {"name": "NVIDIA H200", "capability": [9, 0], "driver_cuda": [13, 0]}
    verdict = decide(gpu, {"label": "mxnet 1.5.1.post0 (as installed here)", "cuda": None})
    assert verdict == {"status": "incompatible",
                       "reason": "mxnet 1.5.1.post0 (as installed here) is not a CUDA build: it cannot use the GPU"}


class SlowFirstBatch(object):
    """An adapter whose first forward pass takes 0.3 s longer, as a driver compiling PTX would make it."""

    def __init__(self):
        self.calls = 0

    def to_device(self, array):
        return array

    def forward(self, model, tensor):
        self.calls += 1
        import time
        time.sleep(0.32 if self.calls == 1 else 0.02)

    def synchronize(self):
        pass


def test_ptx_compilation_is_reported_apart_from_the_cold_start():
    import time
    from runner.probe.cell import _cold_start
    from runner.probe.preprocess import Recipe

    recipe = Recipe(resize=8, crop=4, interpolation="bilinear", mean=(0, 0, 0), std=(1, 1, 1))
    now = time.time()
    timeline = {"launched_at": now - 1.0, "probe_started_at": now - 0.9, "framework_imported_at": now - 0.5,
                "model_ready_at": now}
    adapter = SlowFirstBatch()
    jit = _cold_start(adapter, None, recipe, {"batch_sizes": [1]}, {}, dict(timeline), jit=True)
    assert adapter.calls == 2 and 0.2 < jit["ptx_jit_s"] < 0.4
    assert jit["cold_start_s"] > 1.3  # the compilation stays in the cold start as it was lived; ptx_jit_s says how much
    plain = _cold_start(SlowFirstBatch(), None, recipe, {"batch_sizes": [1]}, {}, dict(timeline))
    assert plain["ptx_jit_s"] is None
