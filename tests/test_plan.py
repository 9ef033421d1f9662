import dataclasses
import shutil

import pytest

from runner.errors import UserError
from runner.matrix import load_matrix
from runner.plan import Options, plan_cells, resolve_auto_weights
from runner.progress import plan_table

from .matrices import REAL, write_matrix


def ids(cells):
    return {(c.environment.name, c.model.key, c.suite): c.id for c in cells}


def test_every_environment_model_suite_once_with_stable_ids():
    matrix = load_matrix(REAL)
    cells = plan_cells(matrix, Options(weights="random"))
    positions = sum(len(env.models) for env in matrix.environments)
    assert len(cells) == positions * 3  # error, throughput, drift
    assert len({c.id for c in cells}) == len(cells)
    assert ids(cells) == ids(plan_cells(load_matrix(REAL), Options(weights="random")))


def test_without_imagenet_the_error_suite_is_skipped_with_the_reason():
    cells = plan_cells(load_matrix(REAL), Options(weights="random"))
    for cell in cells:
        if cell.suite in ("error", "drift"):
            assert "no ImageNet val set given" in cell.skip_reason
        else:
            assert cell.skip_reason is None


def test_ids_follow_content_not_names(tmp_path):
    base = ids(plan_cells(load_matrix(REAL), Options(weights="random")))
    renamed = write_matrix(tmp_path, replace=(('[environments."torch-1.0"]', '[environments."torch-old"]'),
                                              ('[environments."torch-1.0".cuda]', '[environments."torch-old".cuda]')))
    shutil.copy(tmp_path / "locks" / "torch-1.0-cpu.txt", tmp_path / "locks" / "torch-old-cpu.txt")  # the lock moves along
    after = ids(plan_cells(load_matrix(renamed), Options(weights="random")))
    assert after[("torch-old", "resnet50", "throughput")] == base[("torch-1.0", "resnet50", "throughput")]
    # A changed pin needs its lock re-made first (tests/test_locks.py: the ids then change for that row only).
    repinned = write_matrix(tmp_path, replace=(('"scipy==1.2.3"', '"scipy==1.2.2"'),))
    with pytest.raises(UserError, match=r"environment torch-1.0: locks/torch-1.0-cpu.txt stale: pin scipy==1.2.3 "
                                        r"removed; pin scipy==1.2.2 added.*\.venv/bin/dlmatrix lock torch-1.0 --device cpu"):
        plan_cells(load_matrix(repinned), Options(weights="random"))


def test_options_that_change_results_change_ids():
    matrix = load_matrix(REAL)
    base = ids(plan_cells(matrix, Options(weights="random")))
    for options in (Options(weights="random", seed=1), Options(weights="random", device="cuda"),
                    Options(weights="pretrained"), Options(weights="random", threads=1),
                    Options(weights="random", engine=(("precision", "fp16"),)),
                    Options(weights="random", engine=(("cudnn_autotune", "false"),))):
        assert ids(plan_cells(matrix, options))[("torch-1.0", "resnet50", "throughput")] != \
            base[("torch-1.0", "resnet50", "throughput")]


def test_dataset_enters_the_error_cell_id(imagenet_sample):
    matrix = load_matrix(REAL)
    full = plan_cells(matrix, Options(weights="random", imagenet=str(imagenet_sample)))
    part = plan_cells(matrix, Options(weights="random", imagenet=str(imagenet_sample), limit=10))
    assert ids(full)[("torch-1.0", "resnet50", "error")] != ids(part)[("torch-1.0", "resnet50", "error")]
    assert ids(full)[("torch-1.0", "resnet50", "throughput")] == ids(part)[("torch-1.0", "resnet50", "throughput")]
    cell = next(c for c in part if c.suite == "error")
    assert cell.dataset.images == 10 and cell.skip_reason is None


@pytest.mark.parametrize("options, message", [
    (Options(environments=("torch-9",)), "unknown environment 'torch-9'; valid: torch-1.0, torch-current"),
    (Options(models=("vgg",)), "unknown model 'vgg'; valid: resnet50"),
    (Options(imagenet="/does/not/exist"), "not a directory"),
    (Options(weights="file"), r"models.resnet50.torchvision.weights_file is not set"),
])
def test_bad_options_are_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        plan_cells(load_matrix(REAL), options)


def test_drift_writer_cells_depend_on_their_own_version_only(tmp_path, imagenet_sample):
    matrix = load_matrix(REAL)
    options = Options(weights="random", imagenet=str(imagenet_sample))
    cells = plan_cells(matrix, options)
    drift = {(c.environment.name, c.model.key): c for c in cells if c.suite == "drift"}
    assert all(c.checkpoint is None for c in drift.values())
    spec = drift[("tf-current", "mobilenet")].spec("/out", 0.0)["drift"]
    assert spec["write"] is True and spec["checkpoints"] == []
    # the same fixed images for every version, whatever --limit the error suite uses
    assert drift[("tf-1.13", "mobilenet")].dataset.images == min(matrix.drift.images, 30)
    assert drift[("tf-1.13", "mobilenet")].weights == {"source": "seeded checkpoint", "seed": 0}
    # a changed older version, a new row and a removed row change no other version's drift id
    base = ids(cells)
    changed_matrix = write_matrix(tmp_path)
    lock = tmp_path / "locks" / "tf-2.1-cpu.txt"  # as re-made with another release of a package it pulls in
    assert "\nsix==1.17.0 " in lock.read_text()
    lock.write_text(lock.read_text().replace("\nsix==1.17.0 ", "\nsix==1.16.0 "))
    changed = ids(plan_cells(load_matrix(changed_matrix), options))
    assert changed[("tf-2.1", "mobilenet", "drift")] != base[("tf-2.1", "mobilenet", "drift")]
    assert changed[("tf-current", "mobilenet", "drift")] == base[("tf-current", "mobilenet", "drift")]
    only = plan_cells(matrix, Options(weights="random", imagenet=str(imagenet_sample), environments=("tf-current",),
                                      suites=("drift",)))
    assert next(c for c in only if c.model.key == "mobilenet").id == base[("tf-current", "mobilenet", "drift")]


def _writer_result(store, cell, sha):
    name = "{}.checkpoint.h5".format(cell.id)
    (store.root / name).write_bytes(b"x")
    result = {"schema_version": 1, "cell_id": cell.id, "suite": "drift", "environment": cell.environment.name,
              "framework": cell.environment.framework, "model": cell.model.key, "status": "ok",
              "metrics": {"checkpoint": {"file": "checkpoint.h5", "sha256": sha}}, "files": {"checkpoint": name},
              "provenance": {}}
    store.put(result)


def test_drift_loads_are_keyed_by_the_checkpoint_digest_not_by_names_or_order(tmp_path, imagenet_sample):
    from runner.drift_plan import plan_drift_loads
    from runner.results import ResultStore

    matrix = load_matrix(REAL)
    cells = plan_cells(matrix, Options(weights="random", imagenet=str(imagenet_sample), suites=("drift",),
                                       environments=("tf-1.13", "tf-2.1", "tf-current"), models=("mobilenet",)))
    writers = {c.environment.name: c for c in cells}
    store = ResultStore(tmp_path / "run")
    store.root.mkdir()
    assert plan_drift_loads(matrix, cells, store) == []  # no checkpoint written yet: nothing to load
    _writer_result(store, writers["tf-1.13"], "a" * 64)
    _writer_result(store, writers["tf-2.1"], "b" * 64)
    loads = {(c.environment.name, c.checkpoint["origin"]): c for c in plan_drift_loads(matrix, cells, store)}
    assert set(loads) == {("tf-2.1", "tf-1.13"), ("tf-current", "tf-1.13"), ("tf-current", "tf-2.1")}
    spec = loads[("tf-current", "tf-2.1")].spec("/out", 0.0)["drift"]
    assert spec["write"] is False and spec["checkpoints"][0]["sha256"] == "b" * 64
    assert spec["checkpoints"][0]["path"] == str(store.root / "{}.checkpoint.h5".format(writers["tf-2.1"].id))
    # the same file loaded in the same environment is the same cell, whatever else the run holds
    alone = plan_cells(matrix, Options(weights="random", imagenet=str(imagenet_sample), suites=("drift",),
                                       environments=("tf-current",), models=("mobilenet",)))
    again = {c.checkpoint["origin"]: c.id for c in plan_drift_loads(matrix, alone, store)}
    assert again == {"tf-1.13": loads[("tf-current", "tf-1.13")].id, "tf-2.1": loads[("tf-current", "tf-2.1")].id}
    # versions that wrote bit-identical files share one load of that file
    same = ResultStore(tmp_path / "same")
    same.root.mkdir()
    _writer_result(same, writers["tf-1.13"], "d" * 64)
    _writer_result(same, writers["tf-2.1"], "d" * 64)
    shared = [c for c in plan_drift_loads(matrix, cells, same) if c.environment.name == "tf-current"]
    assert len(shared) == 1 and shared[0].checkpoint["sha256"] == "d" * 64
    # a writer that produced another file is another load
    other = ResultStore(tmp_path / "other")
    other.root.mkdir()
    _writer_result(other, writers["tf-1.13"], "c" * 64)
    (changed,) = [c for c in plan_drift_loads(matrix, alone, other)]
    assert changed.id != loads[("tf-current", "tf-1.13")].id


def test_the_loads_to_come_are_anticipated_from_the_cells_that_run_now(imagenet_sample):
    from runner.drift_plan import anticipated_loads

    matrix = load_matrix(REAL)
    cells = plan_cells(matrix, Options(weights="random", imagenet=str(imagenet_sample), suites=("drift",),
                                       environments=("tf-1.13", "tf-2.1", "tf-current"), models=("mobilenet",)))
    writers = {c.environment.name: c for c in cells}
    every = anticipated_loads(matrix, cells, {c.id for c in cells})
    # each version loads every older one's checkpoint: 2.1 loads 1.13; current loads 1.13 and 2.1
    assert sorted(c.environment.name for c in every) == ["tf-2.1", "tf-current", "tf-current"]
    assert anticipated_loads(matrix, cells, set()) == []  # all there already: no new load
    # only tf-1.13 runs anew: both loads of its new checkpoint are new, tf-current's load of 2.1's is not
    assert sorted(c.environment.name for c in anticipated_loads(matrix, cells, {writers["tf-1.13"].id})) == [
        "tf-2.1", "tf-current"]
    full = plan_cells(matrix, Options(weights="random", imagenet=str(imagenet_sample)))
    # every (version, older version, model): torch 5, TF 18, MXNet 18. The sample run made 33: writers that
    # skip (ResNet101 in TF 1.13, MobileNetV2 in torchvision 0.2) and bit-identical files make fewer
    assert len(anticipated_loads(matrix, full, {c.id for c in full})) == 5 + 18 + 18


def test_engine_settings_reach_the_probe_spec_and_the_drift_ids():
    matrix = load_matrix(REAL)
    base = plan_cells(matrix, Options(weights="random"))
    fp16 = plan_cells(matrix, Options(weights="random", engine=(("precision", "fp16"), ("xla", "true"))))
    cell = next(c for c in fp16 if c.suite == "throughput")
    assert cell.spec("/out", 0.0)["engine"] == dict(matrix.engine.as_dict(), precision="fp16", xla=True)
    drift = {c.id for c in base if c.suite == "drift"}
    assert drift and drift.isdisjoint(c.id for c in fp16 if c.suite == "drift")


def test_gpu_cells_take_the_cuda_throughput_settings_and_their_ids_follow(tmp_path):
    matrix = load_matrix(REAL)
    cpu, gpu = (plan_cells(matrix, Options(weights="random", device=device, suites=("throughput",)))
                for device in ("cpu", "cuda:1"))
    assert cpu[0].params == {"batch_sizes": [1, 16], "warmup": 3, "iterations": 5, "trials": 5, "min_window_s": 0.5}
    assert gpu[0].params == {"batch_sizes": [1, 64, 256], "warmup": 3, "iterations": 20, "trials": 5,
                             "min_window_s": 2.0}  # warmup and trials: the suite's, the cuda table leaves them
    assert gpu[0].spec("/out", 0.0)["suite_params"] == gpu[0].params
    assert plan_table(gpu)[-2].endswith("throughput cuda:1  batches 1,64,256, >= 20 iterations and >= 2 s per trial")
    # Without the cuda table a GPU cell runs the suite's settings; the id is that of the settings, not of the table.
    text = REAL.read_text()
    table = text[text.index("[suites.throughput.cuda]"):text.index("[suites.drift]")]
    plain = write_matrix(tmp_path, replace=((table, ""),))
    same = plan_cells(load_matrix(plain), Options(weights="random", device="cuda:1", suites=("throughput",)))
    assert same[0].params == cpu[0].params and same[0].id != gpu[0].id
    lowered = write_matrix(tmp_path, replace=(("min_window_s = 2.0", "min_window_s = 1.0"),))
    changed = plan_cells(load_matrix(lowered), Options(weights="random", device="cuda:1", suites=("throughput",)))
    assert changed[0].params["min_window_s"] == 1.0 and changed[0].id != gpu[0].id
    assert ids(plan_cells(load_matrix(lowered), Options(weights="random", suites=("throughput",)))) == ids(cpu)


def test_gpu_error_cells_take_the_cuda_pipeline_settings_and_cpu_ids_stay(tmp_path):
    matrix = load_matrix(REAL)
    cpu, gpu = (plan_cells(matrix, Options(weights="random", device=device, suites=("error",)))
                for device in ("cpu", "cuda"))
    assert cpu[0].params == {"batch_size": 32, "workers": 4, "prefetch": 2}
    assert gpu[0].params == {"batch_size": 64, "workers": 0, "prefetch": 4}  # 0: the probe counts the cores
    assert gpu[0].timeout_s == cpu[0].timeout_s == 7200  # the suite's: the cuda table leaves it
    runnable = [dataclasses.replace(cells[-1], skip_reason=None, incompatible=None) for cells in (cpu, gpu)]
    assert plan_table(runnable[:1])[-2].endswith("error      cpu  batch 32, 4 decoder processes, 2 batches ahead")
    assert plan_table(runnable[1:])[-2].endswith(
        "error      cuda  batch 64, decoders: one per core, niced, 4 batches ahead")
    text = REAL.read_text()
    table = text[text.index("# Error cells on a GPU"):text.index("[suites.throughput]")]
    plain = load_matrix(write_matrix(tmp_path, replace=((table, ""),)))
    assert ids(plan_cells(plain, Options(weights="random", suites=("error",)))) == ids(cpu)
    same = plan_cells(plain, Options(weights="random", device="cuda", suites=("error",)))
    assert same[0].params == cpu[0].params and same[0].id != gpu[0].id


def test_weights_auto_asks_only_the_hosts_of_the_selected_rows(monkeypatch):
    """A torch-only run must not depend on (or mention) MXNet's or TensorFlow's download host."""
    import socket

    asked, said = [], []

    def refuse(address, timeout=None):
        asked.append(address[0])
        raise OSError("unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    matrix = load_matrix(REAL)
    torch_rows = tuple(e.name for e in matrix.environments if e.framework == "torchvision")
    options = resolve_auto_weights(matrix, Options(weights="auto", environments=torch_rows), said.append)
    assert options.weights == "random"
    assert asked == ["download.pytorch.org"]
    assert "download.pytorch.org" in said[0] and "amazonaws" not in said[0]

    asked.clear()
    resolve_auto_weights(matrix, Options(weights="auto"), said.append)
    assert len(asked) == 1  # the first unreachable host decides; all rows' hosts are candidates


def test_a_weights_file_that_is_not_there_is_refused_before_any_cell_by_its_key(tmp_path):
    entry = '[models.resnet50.torchvision]\nname = "resnet50"\n'
    path = write_matrix(tmp_path, replace=[(entry, entry + 'weights_file = { path = "weights/r50.pth", sha256 = "'
                                            + "0" * 64 + '" }\n')])
    options = Options(weights="file", environments=("torch-current",), models=("resnet50",))
    with pytest.raises(UserError, match=r"models\.resnet50\.torchvision\.weights_file\.path: .*/weights/r50\.pth is "
                                        r"not there \(--weights file, environment torch-current\)"):
        plan_cells(load_matrix(path), options)
    (tmp_path / "weights" / "r50.pth").mkdir(parents=True)
    with pytest.raises(UserError, match=r"r50\.pth is a folder, expected a file"):
        plan_cells(load_matrix(path), options)
    (tmp_path / "weights" / "r50.pth").rmdir()
    (tmp_path / "weights" / "r50.pth").write_bytes(b"not really weights")  # its sha256 is the cell's to check
    assert {cell.weights.get("path") for cell in plan_cells(load_matrix(path), options) if cell.suite != "drift"} == {
        str(tmp_path / "weights" / "r50.pth")}
