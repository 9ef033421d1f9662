"""Can a build run on a GPU: the decision from known GPUs, drivers and builds; the matrix's GPU builds; the
pipeline's check before a cell runs. No GPU is needed: the GPU and the libraries are inputs."""

from dataclasses import replace

import pytest

from runner.errors import UserError
from runner.gpu_check import check_gpu, missing_libraries
from runner.matrix import load_matrix
from runner.plan import Options, plan_cells
from runner.probe.gpu_compat import decide, newest_arch, version_tuple

from .matrices import REAL, write_matrix

H200 = {"name": "NVIDIA H200", "capability": [9, 0], "driver_cuda": [13, 0]}
A100_OLD_DRIVER = {"name": "NVIDIA A100-SXM4-40GB", "capability": [8, 0], "driver_cuda": [11, 4]}
A10 = {"name": "NVIDIA A10", "capability": [8, 6], "driver_cuda": [12, 2]}
T4_CUDA10 = {"name": "Tesla T4", "capability": [7, 5], "driver_cuda": [10, 0]}
V100 = {"name": "Tesla V100-SXM2-16GB", "capability": [7, 0], "driver_cuda": [12, 2]}


def build(label, cuda, sass=(), ptx=()):
    return {"label": label, "cuda": cuda, "sass": list(sass), "ptx": list(ptx)}


TF113 = build("tensorflow-gpu 1.13.1", "10.0", ["sm_35", "sm_37", "sm_52", "sm_60", "sm_61"], ["compute_70"])
TF_CURRENT = build("tensorflow 2.21.0", "12.5", ["sm_60", "sm_70", "sm_80", "sm_89"], ["compute_90"])
MX_CU112 = build("mxnet-cu112 1.9.1", "11.2", ["sm_50", "sm_60", "sm_70", "sm_80", "sm_86"])
TORCH10 = build("torch 1.0.1", "9.0", ["sm_35", "sm_50", "sm_60", "sm_70"], ["compute_50"])


@pytest.mark.parametrize("gpu, the_build, status, words", [
    # CUDA 10.0's libraries know nothing newer than sm_75: the issue's own example.
    (H200, TF113, "incompatible", "tensorflow-gpu 1.13.1 (CUDA 10.0) has kernels up to sm_75"),
    (H200, TORCH10, "incompatible", "has kernels up to sm_70"),
    (H200, MX_CU112, "incompatible", "up to sm_86"),
    # No sm_90 code, but compute_90 PTX: runs after the driver compiles it (tensorflow/tensorflow#62320).
    (H200, TF_CURRENT, "jit", "compiles its compute_90 PTX"),
    # A driver for CUDA 11.4 cannot run a CUDA 12 build, however new the GPU.
    (A100_OLD_DRIVER, TF_CURRENT, "incompatible", "needs CUDA 12.5; the driver supports CUDA up to 11.4"),
    # CUDA 11's minor version compatibility: a CUDA 11.4 driver runs an 11.2 build.
    (A100_OLD_DRIVER, MX_CU112, "ok", "machine code for sm_80"),
    # sm_86 machine code on an sm_86 GPU; before CUDA 11 the driver must be at least the exact release.
    (A10, MX_CU112, "ok", "sm_86"),
    (T4_CUDA10, build("tensorflow 2.1.4", "10.1", ["sm_70"]), "incompatible", "driver supports CUDA up to 10.0"),
    # sm_70 machine code runs on sm_75 (same major architecture, higher minor).
    (T4_CUDA10, TORCH10, "ok", "machine code for sm_75"),
    (V100, TORCH10, "ok", "sm_70"),
    # A build whose architectures are not listed: the runtime rule alone, and the cell checks the rest.
    (V100, build("torch 2.5.1", "12.1"), "ok", "lists no architectures"),
    (V100, build("torch 2.14.1+cpu", None), "incompatible", "not a CUDA build"),
    ({"unavailable": "NVML cannot start"}, TF113, "unknown", "the cell checks again"),
    # Only PTX newer than the GPU: no kernel at all.
    (V100, build("x", "11.8", ["sm_80", "sm_90"], ["compute_80"]), "incompatible", "kernels for compute_80, sm_80, sm_90 only"),
])
def test_the_decision_for_known_gpus_and_builds(gpu, the_build, status, words):
    verdict = decide(gpu, the_build)
    assert verdict["status"] == status, verdict
    assert words in verdict["reason"]


def test_cuda_releases_and_their_newest_architecture():
    assert version_tuple("12.5.1") == (12, 5) and version_tuple("10") == (10, 0) and version_tuple(None) is None
    assert [newest_arch(v) for v in ((9, 0), (10, 1), (11, 0), (11, 2), (11, 8), (12, 4), (13, 0))] == \
        [70, 75, 80, 86, 90, 90, 120]


def test_every_seed_row_has_a_gpu_build_with_its_source():
    matrix = load_matrix(REAL)
    for env in matrix.environments:
        assert env.gpu is not None, env.name
        assert env.gpu.source.strip() and env.gpu.cuda
        gpu_env = env.for_device("cuda")
        assert gpu_env.build == "cuda" and gpu_env.for_device("cuda") is gpu_env
        assert env.for_device("cpu") is env
    tf113 = matrix.environment("tf-1.13").for_device("cuda")
    assert "tensorflow-gpu==1.13.1" in tf113.packages and "tensorflow==1.13.1" not in tf113.packages
    assert tf113.pinned_version("tensorflow") == "1.13.1"  # the version axis is the same for both builds
    assert tf113.build_label() == "cuda 10.0, cuDNN 7.4 (tensorflow-gpu==1.13.1)"


def test_gpu_cells_plan_the_gpu_build_and_record_it(tmp_path):
    matrix = load_matrix(REAL)
    cpu = plan_cells(matrix, Options(weights="random", environments=("mxnet-1.9",), models=("resnet50",), suites=("throughput",)))
    gpu = plan_cells(matrix, Options(weights="random", device="cuda", environments=("mxnet-1.9",), models=("resnet50",),
                                     suites=("throughput",)))
    assert cpu[0].id != gpu[0].id
    assert "mxnet-cu112==1.9.1" in gpu[0].environment.packages and "mxnet==1.9.1" in cpu[0].environment.packages
    spec = gpu[0].spec("/tmp/x", None)
    assert spec["build"].startswith("cuda 11.2") and spec["gpu_build"]["sass"][-1] == "sm_86"
    assert cpu[0].spec("/tmp/x", None)["gpu_build"] is None


@pytest.mark.parametrize("text, message", [
    ('swap = { numpyy = "x==1" }', "environments.mxnet-1.9.cuda.swap.numpyy: the row pins no 'numpyy'"),
    ('swap = { mxnet = "mxnet-cu112>=1.9" }', "environments.mxnet-1.9.cuda.swap.mxnet: expected an exact pin"),
    ('sass = ["86"]', "environments.mxnet-1.9.cuda.sass[0]: expected an array of architectures such as 'sm_70'"),
    ('cuda = "eleven"', "environments.mxnet-1.9.cuda.cuda: expected the CUDA runtime version"),
    ('sourse = "typo"', "environments.mxnet-1.9.cuda.sourse: unknown key"),
])
def test_a_bad_gpu_build_is_refused_by_name(tmp_path, text, message):
    anchor = '[environments."mxnet-1.9".cuda]\n'
    key = text.split(" ", 1)[0]
    original = REAL.read_text()
    block = original[original.index(anchor):].split("\n\n", 1)[0]
    lines = [line for line in block.splitlines()[1:] if not line.startswith(key + " ")]
    new_block = anchor + text + "\n" + "\n".join(lines)
    path = write_matrix(tmp_path, replace=((block, new_block),))
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        load_matrix(path)


def gpu_cells(names, device="cuda"):
    return plan_cells(load_matrix(REAL), Options(weights="random", device=device, environments=names, models=("resnet50",),
                                                 suites=("throughput",)))


def test_the_check_marks_incompatible_rows_before_anything_runs():
    said = []
    cells = check_gpu(gpu_cells(("tf-1.13", "tf-current", "torch-current")), "docker", said.append, gpu=H200)
    by_env = {cell.environment.name: cell for cell in cells}
    assert "has kernels up to sm_75" in by_env["tf-1.13"].incompatible
    assert by_env["tf-current"].incompatible is None and by_env["tf-current"].gpu_check["status"] == "jit"
    assert by_env["torch-current"].incompatible is None
    assert any(line.startswith("GPU check, tf-1.13 on NVIDIA H200 (sm_90): incompatible") for line in said)


def test_a_venv_host_without_the_builds_system_libraries_is_told_which_and_where_to_go():
    a100 = {"name": "NVIDIA A100", "capability": [8, 0], "driver_cuda": [12, 2]}
    mx = gpu_cells(("mxnet-1.9",))
    missing = lambda names: [n for n in names if n != "libcublas.so.11"]  # noqa: E731 - this host has only cuBLAS
    (cell,) = check_gpu(mx, "venv", lambda line: None, gpu=a100, libraries=missing)
    assert "this host has no libcudart.so.11.0" in cell.incompatible
    assert "--backend docker, whose image nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04" in cell.incompatible
    # The docker backend's image brings them: the same host runs the cell there.
    (cell,) = check_gpu(mx, "docker", lambda line: None, gpu=a100, libraries=missing)
    assert cell.incompatible is None


def test_cpu_cells_and_an_unreadable_gpu_pass_unchanged(tmp_path):
    cpu = gpu_cells(("tf-1.13",), device="cpu")
    assert check_gpu(cpu, "venv", lambda line: None, gpu=H200) == cpu
    said = []
    cuda = gpu_cells(("tf-1.13",))
    driver = tmp_path / "nvidiactl"  # the driver is loaded, NVML still cannot tell: the cells find out
    driver.touch()
    assert check_gpu(cuda, "venv", said.append, gpu={"unavailable": "NVML cannot start"}, driver_node=str(driver)) \
        == cuda
    assert "each cell checks its build when it starts" in said[0]


def test_a_host_without_an_nvidia_driver_marks_every_gpu_cell_incompatible_before_building(tmp_path):
    cells = gpu_cells(("tf-1.13", "mxnet-1.5")) + gpu_cells(("torch-1.0",), device="cpu")
    unavailable = {"unavailable": "NVML cannot start: NVML Shared Library Not Found"}
    said = []
    marked = check_gpu(cells, "venv", said.append, gpu=unavailable, driver_node=str(tmp_path / "nvidiactl"))
    assert [cell.incompatible is not None for cell in marked] == [True, True, False]
    assert marked[0].incompatible.startswith("this host has no NVIDIA GPU driver (NVML cannot start: NVML Shared "
                                             "Library Not Found; no {}/nvidiactl)".format(tmp_path))
    assert said == ["GPU check: {}; its 2 GPU cells are incompatible, no GPU build is made".format(
        marked[0].incompatible)]
    # A Slurm login node has no GPU; its compute nodes do: the cells check there.
    assert check_gpu(cells, "venv", said.append, gpu=unavailable, executor="slurm",
                     driver_node=str(tmp_path / "nvidiactl")) == cells


def test_missing_libraries_looks_in_ldconfig_and_the_library_path(tmp_path):
    (tmp_path / "libcudnn.so.7").write_text("")
    assert missing_libraries(["libcudart.so.10.0", "libcudnn.so.7", "libc.so.6"], search_dirs=[str(tmp_path)],
                             known={"libc.so.6"}) == ["libcudart.so.10.0"]
    assert "libc.so.6" not in missing_libraries(["libc.so.6"])  # this machine's real loader cache


def test_an_incompatible_cell_is_a_stored_result_with_its_reason(tmp_path):
    from runner.executors.local import prepared

    (cell,) = check_gpu(gpu_cells(("tf-1.13",)), "docker", lambda line: None, gpu=H200)
    ready, result = prepared(backend=None, cell=cell, ready_envs={}, progress=None)
    assert ready is None and result["status"] == "incompatible" and "sm_90" in result["reason"]
    from runner.results import result_problem
    assert result_problem(result, cell.id) is None
    assert replace(cell, incompatible=None).incompatible is None


def test_plan_names_the_builds_on_a_gpu_and_refuses_an_unknown_backend(capsys):
    import io

    from runner.cli import main

    out = io.StringIO()
    assert main(["plan", "--device", "cuda", "--weights", "random", "--env", "tf-1.13", "--suite", "throughput",
                 "--model", "resnet50"], out=out) == 0
    text = out.getvalue()
    assert "GPU builds:\n  tf-1.13          cuda 10.0, cuDNN 7.4 (tensorflow-gpu==1.13.1)\n" in text
    assert main(["plan", "--backend", "nope", "--device", "cuda", "--weights", "random"], out=io.StringIO()) == 2
    assert "--backend 'nope': expected one of docker, local, venv" in capsys.readouterr().err
