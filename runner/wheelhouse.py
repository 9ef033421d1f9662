"""`python -m runner wheelhouse DIR`: every file the matrix's rows install, for air-gapped builds.

Run on a connected machine; carry DIR to the air-gapped host and build there with
`--wheelhouse DIR` (pip then reads only DIR). Each row's lock (runner/locks.py) is downloaded
exactly: `pip download --require-hashes --no-deps`, so DIR holds the locked releases and no
others, every file checked against the lock's sha256. The row's own Python downloads them, so
pip picks the files it will pick inside the image (same version, same platform).
"""

from dataclasses import replace

from .backends.base import EnvironmentBuildError
from .backends.process import run_logged, tail
from .backends.venv import find_python
from .errors import UserError
from .locks import lock_of, locked_matrix

# What pip may need to build an sdist with --no-index (build isolation fetches these).
BUILD_TOOLS = ("setuptools", "wheel")
DOWNLOAD_TIMEOUT_S = 3600


def fill_wheelhouse(matrix, out, only, log, device="cpu"):
    """Download into `out` the locks of `device`; returns the names of the environments that failed (reason logged)."""
    names = {env.name for env in matrix.environments}
    unknown = sorted(set(only) - names)
    if unknown:
        raise UserError("{}: no environment {!r}; valid: {}".format(matrix.path, unknown[0], ", ".join(sorted(names))))
    chosen = replace(matrix, environments=tuple(env for env in matrix.environments if not only or env.name in only))
    locks = {env.name: lock_of(env) for env in locked_matrix(chosen, device).environments}  # stale: stop before any download
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for env in matrix.environments:
        if only and env.name not in only:
            continue
        log_path = out / ".logs" / "{}.log".format(env.name)
        log_path.parent.mkdir(exist_ok=True)
        try:
            python = find_python(env.python)
        except EnvironmentBuildError as exc:
            log("{}: {}".format(env.name, exc.reason))
            failed.append(env.name)
            continue
        command = [python, "-m", "pip", "download", "--no-input", "--disable-pip-version-check", "-d", str(out)]
        if env.index_url:
            command += ["--index-url", env.index_url]
        for url in env.extra_index_urls:
            command += ["--extra-index-url", url]
        lock = locks[env.name]
        log("{}: pip download the {} packages of {} with Python {} (log: {})".format(
            env.name, len(lock.packages), lock.path.name, env.python, log_path))
        if log_path.exists():
            log_path.unlink()
        # Under the guard (runner/backends/process.py): a killed or interrupted runner takes pip down with it.
        runs = [run_logged(command + args, log_path, DOWNLOAD_TIMEOUT_S)
                for args in (["--require-hashes", "--no-deps", "-r", str(lock.path)], list(BUILD_TOOLS))]
        if any(run.returncode != 0 for run in runs):
            log("{}: failed: {}".format(env.name, tail(log_path, 2)))
            failed.append(env.name)
    return failed
