"""Name lookup at the public boundary: strings and config dicts become typed values once.

Activations, initialisers and losses are frozen attrs classes; users may name them
(``"relu"``) or give the ``config()`` dict a checkpoint stores (``{"name": "elu",
"alpha": 0.5}``). Inside the math only the typed values are used.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

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


class Registry(Generic[T]):
    """Kinds of one family (layers, activations, losses, optimizer transforms) by name.

    Each kind registers itself where it is defined; checkpoints, the estimators and the
    property tests read the registry, so a new kind is its module and nothing else.
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``; a name already taken by another item is an error."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.family} name must be a non-empty str, got {name!r}")
        old = self._items.get(name)
        if old is not None and old is not item:
            raise ValueError(f"{self.family} {name!r} is already registered ({old!r})")
        self._items[name] = item
        return item

    def replace(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``, replacing what was registered there."""
        self._items.pop(name, None)
        return self.register(name, item)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error if absent)."""
        self._items.pop(name, None)

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.family} {name!r}; expected one of {sorted(self._items)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def items(self) -> list[tuple[str, T]]:
        """``(name, item)`` pairs, sorted by name."""
        return sorted(self._items.items())

    def as_table(self) -> Mapping[str, T]:
        """A read-only view of the names and items."""
        return MappingProxyType(self._items)
