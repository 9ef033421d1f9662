"""The host's side of the crop cache: where error cells find it (DLMATRIX_CACHE, [suites.error] crop_cache,
the default), its limit, the docker mount, and cell ids that do not depend on any of it."""

import os

import pytest

from runner.errors import UserError
from runner.matrix import load_matrix
from runner.plan import Options, plan_cells
from runner.storage import cache_home

from .matrices import REAL, write_matrix

PREFETCH = "\nprefetch = "  # a line of [suites.error]: the settings under test go just before it


def planned(path, monkeypatch, env=None):
    if env is None:
        monkeypatch.delenv("DLMATRIX_CACHE", raising=False)
    else:
        monkeypatch.setenv("DLMATRIX_CACHE", env)
    cells = plan_cells(load_matrix(path), Options(weights="random"))
    return {(c.environment.name, c.model.key, c.suite): c for c in cells}


def specs(cells, suite):
    return [cell.spec("/out", None)["crop_cache"] for key, cell in cells.items() if key[2] == suite]


def test_the_cache_reaches_error_cells_and_leaves_their_ids_alone(tmp_path, monkeypatch):
    default = planned(REAL, monkeypatch)
    chosen = planned(REAL, monkeypatch, env=str(tmp_path / "crops"))
    off = planned(REAL, monkeypatch, env="off")
    assert {k: c.id for k, c in default.items()} == {k: c.id for k, c in chosen.items()} == \
        {k: c.id for k, c in off.items()}
    assert set(map(str, (s["dir"] for s in specs(default, "error")))) == {os.path.join(cache_home(), "crops")}
    assert specs(chosen, "error")[0] == {"dir": str(tmp_path / "crops"), "limit_bytes": 50 * 1024 ** 3}
    assert set(map(str, specs(chosen, "throughput") + specs(chosen, "drift") + specs(off, "error"))) == {"None"}


def test_the_matrix_sets_folder_and_limit_and_the_variable_wins(tmp_path, monkeypatch):
    path = write_matrix(tmp_path, replace=((PREFETCH, "\ncrop_cache = \"crops-here\"\ncrop_cache_limit = \"512M\""
                                                      + PREFETCH),))
    from_matrix = specs(planned(path, monkeypatch), "error")[0]
    assert from_matrix == {"dir": str(tmp_path / "crops-here"), "limit_bytes": 512 * 1024 ** 2}  # beside matrix.toml
    assert specs(planned(path, monkeypatch, env=str(tmp_path / "x")), "error")[0]["dir"] == str(tmp_path / "x")
    elsewhere = tmp_path / "shell"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a relative variable is the shell's path; the file's stays beside the file
    assert specs(planned(path, monkeypatch, env="mine"), "error")[0]["dir"] == str(elsewhere / "mine")
    assert specs(planned(path, monkeypatch), "error")[0]["dir"] == str(tmp_path / "crops-here")
    (tmp_path / "off").mkdir()
    off = write_matrix(tmp_path / "off", replace=((PREFETCH, "\ncrop_cache = \" off \"" + PREFETCH),))
    assert specs(planned(off, monkeypatch), "error")[0] is None
    (tmp_path / "spaced").mkdir()
    spaced = write_matrix(tmp_path / "spaced", replace=((PREFETCH, "\ncrop_cache = \" crops-here \"" + PREFETCH),))
    assert specs(planned(spaced, monkeypatch), "error")[0]["dir"] == str(tmp_path / "spaced" / "crops-here")


def test_a_cache_path_that_is_a_file_is_refused_naming_where_it_came_from(tmp_path, monkeypatch):
    """Before any cell: else every error cell of the run fails on it, and stays failed after the fix."""
    blocker = tmp_path / "hostname"
    blocker.write_text("a file")
    for value in (str(blocker), str(blocker / "crops")):
        with pytest.raises(UserError, match="DLMATRIX_CACHE={0}: {0} cannot be the crop cache's folder, {1} is a "
                                            "file".format(value, blocker)):
            planned(REAL, monkeypatch, env=value)
    path = write_matrix(tmp_path, replace=((PREFETCH, "\ncrop_cache = \"hostname/crops\"" + PREFETCH),))
    with pytest.raises(UserError, match=r"matrix.toml: \[suites.error\] crop_cache = 'hostname/crops': "):
        planned(path, monkeypatch)
    assert not (tmp_path / "crops").exists()  # planning makes no folder


def test_a_cache_path_through_a_link_to_nothing_is_refused(tmp_path, monkeypatch):
    """A link to an unmounted disk: every error cell would fail making its folder, the docker backend too."""
    os.symlink(str(tmp_path / "unmounted" / "crops"), str(tmp_path / "link"))
    for value in (str(tmp_path / "link"), str(tmp_path / "link" / "crops")):
        with pytest.raises(UserError, match="DLMATRIX_CACHE={0}: {0} cannot be the crop cache's folder, {1} is a link "
                                            "to nothing \\({2}\\)".format(value, tmp_path / "link",
                                                                            tmp_path / "unmounted" / "crops")):
            planned(REAL, monkeypatch, env=value)


@pytest.mark.parametrize("value", ["none", "0ff", "False", " no "])
def test_words_meant_as_off_are_refused_rather_made_into_a_folder(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="DLMATRIX_CACHE: {!r} is not a folder name the crop cache takes; \"off\" "
                                        "turns it off, and a folder of that name is written ./{}".format(
                                            value.strip(), value.strip())):
        planned(REAL, monkeypatch, env=value)
    path = write_matrix(tmp_path, replace=((PREFETCH, "\ncrop_cache = {!r}".format(value) + PREFETCH),))
    with pytest.raises(UserError, match=r"matrix.toml: \[suites.error\] crop_cache: "):
        planned(path, monkeypatch)
    chosen = specs(planned(REAL, monkeypatch, env="./" + value.strip()), "error")[0]["dir"]
    assert chosen == str(tmp_path / value.strip())
    assert value.strip() not in os.listdir(str(tmp_path))  # nothing made


@pytest.mark.parametrize("line, message", [
    ("crop_cache_limit = \"lots\"", "suites.error.crop_cache_limit: expected a size above 0, as a string in "
                                    "Docker's notation"),
    ("crop_cache_limit = 5", "suites.error.crop_cache_limit: expected a size above 0, as a string"),
    ("crop_cache_limit = \"0\"", "suites.error.crop_cache_limit: expected a size above 0"),
    ("crop_cache = \" \"", "suites.error.crop_cache: expected a folder for the decoded crops"),
])
def test_a_bad_setting_is_refused_by_name(tmp_path, line, message):
    path = write_matrix(tmp_path, replace=((PREFETCH, "\n" + line + PREFETCH),))
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        load_matrix(path)


def test_where_the_conversion_runs_reaches_error_cells_and_host_alone_changes_their_ids(tmp_path, monkeypatch):
    """The bits are the same either way, so the default ("device") leaves the ids earlier results have; "host"
    is a deliberate setting and is kept apart."""
    written = {}
    for name, line in (("device", "convert_on = \"device\""), ("host", "convert_on = \"host\""), ("absent", "")):
        (tmp_path / name).mkdir()
        path = write_matrix(tmp_path / name, replace=(('convert_on = "device"', line),))
        assert path.read_text().count("convert_on") == (0 if name == "absent" else 1)
        written[name] = planned(path, monkeypatch, env="off")
    ids = {name: {k: c.id for k, c in cells.items()} for name, cells in written.items()}
    assert ids["device"] == ids["absent"]
    changed = {k for k in ids["host"] if ids["host"][k] != ids["device"][k]}
    assert changed and changed == {k for k in ids["host"] if k[2] == "error"}
    assert {c.params.get("convert_on") for k, c in written["host"].items() if k[2] == "error"} == {"host"}
    assert "convert_on" not in next(c for k, c in written["device"].items() if k[2] == "error").params


def test_an_unknown_place_for_the_conversion_is_refused_by_name(tmp_path):
    path = write_matrix(tmp_path, replace=(('convert_on = "device"', 'convert_on = "gpu"'),))
    with pytest.raises(UserError, match='suites\\.error\\.convert_on: expected "device" or "host"'):
        load_matrix(path)


def test_a_docker_cell_gets_the_cache_mounted_writable(tmp_path):
    pytest.importorskip("docker")
    from runner.backends.docker_cell import CROPS_IN_CONTAINER, cell_mounts, container_spec

    out = tmp_path / "out"
    out.mkdir()
    spec = {"output_dir": str(out), "weights": {"source": "random"},
            "crop_cache": {"dir": str(tmp_path / "crops"), "limit_bytes": 1 << 30}}
    seen = container_spec(spec)  # makes the host folder
    assert (tmp_path / "crops").is_dir() and seen["crop_cache"]["dir"] == CROPS_IN_CONTAINER
    mounts = {m["Target"]: m for m in cell_mounts(spec, out / "spec.json", None)}
    # Inside the container the cache has a fixed path: its host folder may be where the cell's user cannot reach.
    crops = mounts[CROPS_IN_CONTAINER]
    assert crops["Source"] == str(tmp_path / "crops") and crops["ReadOnly"] is False
    del spec["crop_cache"]
    assert CROPS_IN_CONTAINER not in {m["Target"] for m in cell_mounts(spec, out / "spec.json", None)}


def test_a_docker_cell_whose_cache_folder_cannot_be_made_is_told_so_and_mounts_nothing(tmp_path):
    """Not mounted, and not left for the container to make in its own file system (thrown away with it): the cell
    gets the reason, decodes and records not stored (tests/probe/test_crop_cache.py)."""
    pytest.importorskip("docker")
    from runner.backends.docker_cell import CROPS_IN_CONTAINER, cell_mounts, container_spec

    out = tmp_path / "out"
    out.mkdir()
    spec = {"output_dir": str(out), "weights": {"source": "random"},
            "crop_cache": {"dir": "/proc/dlmatrix-test-crops", "limit_bytes": 1 << 30}}
    seen = container_spec(spec)
    assert seen["crop_cache"]["dir"] == "/proc/dlmatrix-test-crops" and "No such file" in seen["crop_cache"]["unusable"]
    assert CROPS_IN_CONTAINER not in {m["Target"] for m in cell_mounts(spec, out / "spec.json", None)}
