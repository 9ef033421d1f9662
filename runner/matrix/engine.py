"""[engine] values, checked the same way whether they come from matrix.toml or from --engine KEY=VALUE.

A module of its own (below schema.py) because Engine.replaced needs the check too, and the frozen
types must not import the loader.
"""

from ..errors import UserError
from ..probe.adapters import DEFAULT_ENGINE
from .table import Table

PRECISIONS = ("fp32", "fp16", "bf16")


def engine_values(table):
    """{field: value} for Engine(**...), every key optional: the defaults are the probe's own
    (DEFAULT_ENGINE), so a spec without settings and a matrix without the table mean the same."""
    def switch(key):
        return table.get(key, (bool, str), DEFAULT_ENGINE[key], check=lambda v: v in (True, False, "default"),
                         expected="true, false or \"default\" (the framework's own choice)")

    values = dict(
        precision=table.get("precision", str, DEFAULT_ENGINE["precision"], check=lambda v: v in PRECISIONS,
                            expected="one of " + ", ".join(PRECISIONS)),
        channels_last=table.get("channels_last", bool, DEFAULT_ENGINE["channels_last"]),
        cudnn_autotune=switch("cudnn_autotune"),
        deterministic=switch("deterministic"),
        xla=switch("xla"),
    )
    table.done()
    return values


def overridden_values(values, overrides, where):
    """`values` with `overrides` ({key: text}, from --engine KEY=VALUE) applied, then checked like the file's."""
    values = dict(values)
    for key, text in overrides.items():
        if key not in values:
            raise UserError("{}: unknown engine setting {!r}; valid: {}".format(where, key, ", ".join(values)))
        values[key] = {"true": True, "false": False}.get(text.lower(), text)
    return engine_values(Table(values, "", where))
