"""The command line's values checked once, at the edge, before anything is read, built or written.

Each bad value is one UserError (exit 2) naming the flag, the value and what is expected; the
checks go by attribute, so every subcommand that has a flag gets the same check.
"""

import re
from pathlib import Path

from .cli_slurm import check_slurm_args
from .errors import UserError

DEVICE = re.compile(r"cpu|cuda(:\d+)?")
# A folder name inside results/ and reports/: no separators, nothing hidden, no way up.
RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def check_args(args):
    _at_least(args, "limit", "--limit", 1, "a number of images, 1 or more (leave it out to evaluate all)")
    _at_least(args, "threads", "--threads", 0, "0 (the framework's default) or more")
    _at_least(args, "jobs", "--jobs", 1, "1 or more")
    device = getattr(args, "device", None)
    if device is not None and not DEVICE.fullmatch(device):
        raise UserError("--device {}: expected cpu, cuda or cuda:N (e.g. cuda:1)".format(device))
    for attr, flag in (("run_name", "--run"), ("baseline", "--baseline")):
        name = getattr(args, attr, None)
        if name == "reference" and attr == "run_name" and getattr(args, "command", None) != "report":
            raise UserError("--run reference: reports/reference/ holds the project's own reference reports, which a "
                            "run must not overwrite; choose another name")
        if name is not None and (not RUN_NAME.fullmatch(name) or ".." in name):
            raise UserError("{} {}: expected a plain name (letters, digits, '.', '_', '-', not starting with '.'), "
                            "the folder in results/ and reports/".format(flag, name))
    _at_least(args, "index", "--index", 0, "an array index, 0 or more")
    check_slurm_args(args)
    if getattr(args, "check", False) and getattr(args, "upgrade", False):
        raise UserError("--check and --upgrade: --check resolves nothing, --upgrade re-resolves every lock; give one")
    reads_matrix = not (getattr(args, "command", None) == "crops" and args.dir)  # --dir: the folder is given
    if getattr(args, "matrix", None) is not None and reads_matrix:
        check_text_file(args.matrix, "--matrix", "; pass --matrix PATH or run from the project root")
    if getattr(args, "labels_file", None) is not None:
        check_text_file(args.labels_file, "--labels")


def _at_least(args, attr, flag, low, expected):
    value = getattr(args, attr, None)
    if value is not None and value < low:
        raise UserError("{} {}: expected {}".format(flag, value, expected))


def check_text_file(path, flag, missing_hint=""):
    """`path` is a file this user can read, in UTF-8; else a UserError saying which of these it is not."""
    path = Path(path)
    if not path.exists():
        raise UserError("{} {}: file not found{}".format(flag, path, missing_hint))
    if path.is_dir():
        raise UserError("{} {}: is a folder, expected a file".format(flag, path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError("{} {}: cannot be read ({})".format(flag, path, exc.strerror or exc)) from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError("{} {}: not UTF-8 text (byte 0x{:02x} on line {}); save it as UTF-8".format(
            flag, path, data[exc.start], line)) from None
