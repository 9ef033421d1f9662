"""Typed reading of one TOML table, shared by the loader and by the schema's --engine overrides.

It sits below both so that the frozen types never import the loader: every value, from the file or
from the command line, is checked by the same getters and fails with the same message.
"""

import difflib

from ..errors import UserError


class Table:
    """One TOML table being read: typed getters, and unknown keys reported with their path."""

    def __init__(self, data, path, file):
        self.data, self.path, self.file = data, path, file
        self.used = set()

    def fail(self, key, expected):
        where = "{}.{}".format(self.path, key) if self.path and key else (self.path or key)
        raise UserError("{}: {}: {}".format(self.file, where, expected))

    def get(self, key, kind, default=..., check=None, expected=None):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                near = difflib.get_close_matches(key, [k for k in self.data if isinstance(k, str)], n=1, cutoff=0.6)
                self.fail(key, "missing; expected {}{}".format(expected or kind_name(kind), "; found {!r}: misspelt?".format(
                    near[0]) if near else ""))
            return default
        value = self.data[key]
        if not is_kind(value, kind):
            self.fail(key, "expected {}, got {!r}".format(expected or kind_name(kind), value))
        if check is not None and not check(value):
            self.fail(key, "expected {}, got {!r}".format(expected, value))
        return value

    def table(self, key, default=...):
        value = self.get(key, dict, default, expected="a table")
        return None if value is None else Table(value, "{}.{}".format(self.path, key) if self.path else key, self.file)

    def keys(self):
        return list(self.data)

    def done(self):
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(unknown[0], "unknown key; expected one of: {}".format(", ".join(sorted(self.used)) or "(none)"))


def is_kind(value, kind):
    if isinstance(kind, tuple):
        return any(is_kind(value, k) for k in kind)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def kind_name(kind):
    if isinstance(kind, tuple):
        return " or ".join(kind_name(k) for k in kind)
    return {str: "a string", int: "an integer", float: "a number", list: "an array", dict: "a table", bool: "true or false"}[kind]


def string_list(table, key, default=..., check=None, expected="an array of strings"):
    values = table.get(key, list, default, expected=expected)
    if values is None:
        return None
    for i, value in enumerate(values):
        if not isinstance(value, str) or (check and not check(value)):
            table.fail("{}[{}]".format(key, i), "expected {}, got {!r}".format(expected, value))
    return tuple(values)


def positive(table, key, default=...):
    return table.get(key, int, default, check=lambda v: v > 0, expected="a positive integer")
