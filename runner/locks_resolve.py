"""Resolving a row's lock with uv (`uv pip compile --generate-hashes`) for its Python and device platform.

uv resolves for a target Python and platform without running that Python (the 3.7 rows included),
from the row's own index URLs with pip's semantics over several indexes (unsafe-best-match: the best
version from any of them), and writes every file's sha256 of each chosen release, so pip in
--require-hashes mode finds the hash of whichever file it picks. Nothing of the user's uv
configuration takes part: the lock says everything it was resolved from.
"""

import os
import subprocess
import tempfile
from pathlib import Path

from .errors import UserError
from .locks import (LockError, device_kind, inputs_sha256, lock_command, lock_inputs, lock_path, parse_lock,
                    stale_reasons)
from .storage import write_text

RESOLVE_TIMEOUT_S = 1800
# uv settings that are about the connection, not about what is resolved; every other UV_* is dropped.
UV_KEPT = ("UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS", "UV_OFFLINE")


class ResolveFailed(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def uv_binary():
    try:
        from uv import find_uv_bin
    except ImportError:
        raise UserError("uv is not installed in {}; it resolves the locks: `make setup`, or pip install "
                        "'uv>=0.13'".format(os.path.dirname(os.path.dirname(os.__file__)))) from None
    return find_uv_bin()


def resolve(env, device, previous=None, made_by=None):
    """The full text of `env`'s lock for `device`. `previous` (an older lock's text): versions it holds are
    kept where the pins allow, so re-locking after one pin changed moves only what must move."""
    inputs = lock_inputs(env, device)
    uv = uv_binary()
    command = [uv, "pip", "compile", "pins.txt", "--output-file", "lock.txt", "--generate-hashes", "--no-header",
               "--python-version", inputs["python"], "--python-platform", inputs["platform"],
               "--index-url", inputs["index_url"], "--index-strategy", "unsafe-best-match", "--no-config",
               "--no-python-downloads", "--quiet"]
    for url in inputs["extra_index_urls"]:
        command += ["--extra-index-url", url]
    with tempfile.TemporaryDirectory(prefix="dlmatrix-lock-") as work:
        write_text(Path(work) / "pins.txt", "\n".join(env.packages) + "\n")
        if previous:
            write_text(Path(work) / "lock.txt", previous)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in UV_KEPT}
        environ["NO_COLOR"] = "1"
        try:
            done = subprocess.run(command, cwd=work, env=environ, capture_output=True, text=True,
                                  timeout=RESOLVE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ResolveFailed("uv did not finish in {} s".format(RESOLVE_TIMEOUT_S)) from None
        if done.returncode != 0:
            raise ResolveFailed(_uv_error(done.stderr))
        body = (Path(work) / "lock.txt").read_text(encoding="utf-8")
    version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
    return format_lock(env, device, body, "{} pip compile --generate-hashes --index-strategy unsafe-best-match".format(
        version), made_by or "`{}`".format(lock_command([env.name], device)))


def format_lock(env, device, body, resolved_with, made_by):
    """A lock's text: the header (what it was resolved from, its inputs-sha256) and `body`, the requirement lines."""
    inputs = lock_inputs(env, device)
    kind = device_kind(device)
    lines = [
        "# The lock of environment {} for {}: every package it installs, at an exact version, with the sha256 "
        "of each file.".format(env.name, kind),
        "# Installed with `pip install --require-hashes --no-deps -r`; made by {}. Do not edit: change the row "
        "in matrix.toml and re-make it.".format(made_by),
        "# resolved-with: {}".format(resolved_with),
        "# device: {}".format(inputs["device"]),
        "# python: {}".format(inputs["python"]),
        "# platform: {}".format(inputs["platform"]),
        "# index-url: {}".format(inputs["index_url"]),
    ]
    lines += ["# extra-index-url: {}".format(url) for url in inputs["extra_index_urls"] or ["(none)"]]
    lines += ["# pin: {}".format(pin) for pin in inputs["packages"]]
    lines.append("# inputs-sha256: {}".format(inputs_sha256(inputs)))
    return "\n".join(lines) + "\n" + body


def _uv_error(stderr):
    """uv's message on one line (its 'x No solution found ... because ...' block, box drawing dropped)."""
    lines = [line.strip(" ×╰─▶│").strip() for line in stderr.splitlines()]
    lines = [line[len("error: "):] if line.startswith("error: ") else line for line in lines
             if line and not line.startswith(("warning:", "Resolved"))]
    return " ".join(lines)[:1500] or "uv failed without a message"


def make_lock(matrix_path, env, device, upgrade=False):
    """Write locks/<row>-<device>.txt if missing, stale or `upgrade`; returns (path, what happened)."""
    env = env.for_device(device_kind(device))  # a GPU host's lock holds the row's GPU build
    path = lock_path(matrix_path, env.name, device)
    try:
        old = parse_lock(path)
    except FileNotFoundError:
        old = None
    if old is not None and not upgrade and not stale_reasons(old, env, device):
        return path, "up to date ({} packages)".format(len(old.packages))
    text = resolve(env, device, previous=None if (old is None or upgrade) else old.text)
    write_text(path, text, flag="--matrix")
    new = parse_lock(path)
    if old is None:
        return path, "made ({} packages)".format(len(new.packages))
    return path, "re-made ({} packages): {}".format(len(new.packages), _changes(old, new) or "the same packages")


def _changes(old, new):
    before, after = old.versions(), new.versions()
    changed = ["{} {} -> {}".format(name, before[name], after[name]) for name in sorted(set(before) & set(after))
               if before[name] != after[name]]
    changed += ["+{} {}".format(name, after[name]) for name in sorted(set(after) - set(before))]
    changed += ["-{} {}".format(name, before[name]) for name in sorted(set(before) - set(after))]
    return ", ".join(changed)


def write_derived_lock(env, device, path):
    """A bisect step's lock, into the cache; LockError (the step is unusable, with uv's reason) if it cannot be had."""
    try:
        text = resolve(env, device, made_by="`python -m runner bisect` (a derived environment, kept in the cache)")
    except ResolveFailed as exc:
        raise LockError("resolving the lock of {} failed: {}".format(env.name, exc.reason)) from None
    write_text(path, text)
