"""Atomic JSON files: written to a temporary file in the same folder, then renamed.

A reader (or a second run) never sees half a result; an interrupted write leaves the
previous file, if any, as it was. The probe's own (Python 3.7, stdlib only, in the cell): the
host writes through runner/storage.py, which also turns storage faults into messages.
"""

import json
import os
import tempfile


def write_json_atomic(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True, allow_nan=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path):
    with open(path) as handle:
        return json.load(handle)
