"""Name lookup at the public boundary: strings and config dicts become typed values once.

Activations, initialisers and losses are frozen attrs classes; users may name them
(``"relu"``) or give the ``config()`` dict a checkpoint stores (``{"name": "elu",
"alpha": 0.5}``). Inside the math only the typed values are used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def lookup(value: Any, *, kind: str, base: type[T], table: Mapping[str, type[T]]) -> T:
    """``value`` as an instance of ``base``: returned unchanged if it is one, built from
    ``table`` by name or from a config dict otherwise.

    Raises ValueError for an unknown name or config, TypeError for other kinds.
    """
    if isinstance(value, base):
        return value
    if isinstance(value, dict):
        cfg = dict(value)
        name = cfg.pop("name", None)
        if not isinstance(name, str) or name not in table:
            raise ValueError(f"unknown {kind} config {value!r}")
        return table[name](**cfg)
    if isinstance(value, str):
        if value not in table:
            raise ValueError(f"unknown {kind} {value!r}; expected one of {sorted(table)}")
        return table[value]()
    raise TypeError(f"{kind} must be a name or an fnn {base.__name__}, got {type(value).__name__}")
