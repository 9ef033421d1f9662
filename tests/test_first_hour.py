"""A new user's first hour: the dlmatrix command and its version, the plan `make matrix` prints is the plan it
runs, a user's runs never touch tracked files, old environments can be pruned, and the README speaks to its
reader, not of the machine it was written on."""

import fcntl
import io
import re
import subprocess

import pytest

from runner.backends.venv import VenvBackend
from runner.cli import main
from runner.locks import locked
from runner.matrix import load_matrix

from .matrices import REAL, ROOT


def run_cli(args):
    out = io.StringIO()
    return main(args, out=out), out.getvalue()


def test_version_names_the_tool_and_the_schemas_it_reads(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    # tox's host env imports the checkout without installing it: then the version says how to install it.
    assert re.fullmatch(r"dlmatrix (\d\S*|\(not installed: `make setup` installs it\)): reads matrix.toml schema 1, "
                        r"writes results schema 1 \(probe \d+\)\n", capsys.readouterr().out)


def test_the_console_script_is_declared_and_runs_the_same_main():
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.scripts]\ndlmatrix = "runner.cli:entry"' in text
    script = ROOT / ".venv" / "bin" / "dlmatrix"
    if not script.exists():
        pytest.skip("no .venv here (make setup makes it)")
    done = subprocess.run([str(script), "plan", "--matrix", str(REAL), "--env", "mxnet-1.5", "--weights", "random"],
                          capture_output=True, text=True, cwd=str(ROOT))
    assert done.returncode == 0 and done.stdout.endswith("18 cells\n"), done.stderr


def test_run_shows_the_plan_of_exactly_the_cells_it_runs(tmp_path, capsys):
    selection = ["--matrix", str(REAL), "--env", "torch-1.0", "--model", "resnet50", "--suite", "error",
                 "--weights", "random"]
    code, planned = run_cli(["plan"] + selection)
    assert code == 0
    # No val set: the cell is skipped, so the run needs no environment and still shows its plan.
    code, _ = run_cli(["run", "--show-plan", "--backend", "local", "--results-dir", str(tmp_path / "results"),
                       "--reports-dir", str(tmp_path / "reports"), "--run", "r"] + selection)
    assert code == 0
    shown = [line for line in capsys.readouterr().err.splitlines() if line in planned.splitlines()]
    assert shown == planned.splitlines() and shown[-1] == "1 cell"


@pytest.mark.parametrize("run", ["venv-cpu", "docker-cpu", "local-cpu", "venv-cuda", "venv-cuda1", "my-sweep"])
def test_a_users_runs_are_ignored_by_git(run):
    for path in ("results/{}/0123456789abcdef.json".format(run), "reports/{}/report.md".format(run),
                 "reports/{}/report.html".format(run)):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=str(ROOT)).returncode == 0, path


def test_only_reference_reports_are_tracked():
    tracked = subprocess.run(["git", "ls-files", "reports", "results"], cwd=str(ROOT), capture_output=True,
                             text=True).stdout.split()
    assert tracked and all(path.startswith("reports/reference/") for path in tracked)
    assert subprocess.run(["git", "check-ignore", "-q", "reports/reference/venv-cpu/report.md"],
                          cwd=str(ROOT)).returncode == 1


def test_prune_removes_only_environments_no_row_uses(tmp_path):
    matrix = load_matrix(REAL)
    current = VenvBackend(tmp_path).location(locked(matrix, matrix.environment("mxnet-1.5"), "cpu"))
    stale, derived, building = (tmp_path / name for name in (
        "mxnet-1.5-000000000000", "bisect-mxnet-1.6.0-from-mxnet-1.5-000000000000", "tf-2.1-111111111111"))
    for folder in (current, stale, derived, building):
        (folder / "bin").mkdir(parents=True)
        (folder / "bin" / "python").write_bytes(b"x" * 1000)
    common = ["prune", "--matrix", str(REAL), "--env-dir", str(tmp_path)]
    code, out = run_cli(common + ["--dry-run"])
    assert code == 0 and "would remove {}".format(stale) in out and stale.exists()
    with open(tmp_path / ".{}.lock".format(building.name), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process is building it
        code, out = run_cli(common)
    assert code == 0
    assert not stale.exists() and current.exists() and derived.exists() and building.exists()
    # the folders there that a row's CPU or GPU build uses: only mxnet-1.5's here
    assert out.endswith("1 environments, 0.0 GB freed; kept 1 environment of the matrix's rows and bisect's "
                        "(--bisect removes those too)\n")
    code, out = run_cli(common + ["--bisect"])
    assert not derived.exists() and not building.exists() and current.exists()


# Words that speak of where the README was written rather than to the person reading it.
ABOUT_ITS_MAKING = [r"\bthis (machine|VM|sandbox|session)\b", r"\bwas lent\b", r"\bno GPU was\b",
                    r"\bin this session\b", r"\bwe measured here\b"]


def test_the_readme_speaks_to_its_reader():
    text = (ROOT / "README.md").read_text()
    found = [match.group(0) for pattern in ABOUT_ITS_MAKING for match in re.finditer(pattern, text, re.I)]
    assert found == []


def test_every_python_the_rows_need_is_listed_in_the_readme():
    text = (ROOT / "README.md").read_text()
    needs = {env.python for env in load_matrix(REAL).environments}
    assert all(re.search(r"\*\*(Python )?{}\*\*".format(re.escape(version)), text) for version in needs), needs
    assert all("`{}`".format(env.name) in text for env in load_matrix(REAL).environments)
