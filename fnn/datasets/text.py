"""Character-level text: eight Shakespeare tragedies shipped with fnn (no download), a
character vocabulary, the conventional train/validation split and random training
windows for next-character prediction.

Licence (public-domain plays, CC BY 2.5 packaging by the Open Knowledge Foundation)
and attribution are in ``fnn/datasets/data/README.md``.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import Any, TypeVar

import attrs
import numpy as np

from fnn._types import IntArray, RNGLike
from fnn._validation import as_generator
from fnn.tree import read_only

__all__ = ["CharVocab", "char_vocab", "load_shakespeare", "split_text", "text_windows"]

_FILE = "tragedies.txt.gz"
_N_CHARS = 1_157_406

S = TypeVar("S", str, np.ndarray[Any, Any])


def load_shakespeare() -> str:
    """The text of eight Shakespeare tragedies (Hamlet, Macbeth, King Lear, Othello,
    Romeo and Juliet, Julius Caesar, Antony and Cleopatra, Coriolanus), as one string:
    1,157,406 characters, 73 distinct, pure ASCII.

    Example:
        >>> text = load_shakespeare()
        >>> len(text), len(set(text))
        (1157406, 73)
    """
    raw = resources.files("fnn.datasets").joinpath("data", _FILE).read_bytes()
    text = gzip.decompress(raw).decode("ascii")
    if len(text) != _N_CHARS:  # pragma: no cover - a damaged install
        raise ValueError(f"{_FILE}: expected {_N_CHARS} characters, got {len(text)}")
    return text


def _code_points(s: str) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """The Unicode code points of ``s`` as a (len(s),) uint32 array."""
    return np.frombuffer(s.encode("utf-32-le"), dtype="<u4")


def _check_chars(chars: Any) -> str:
    if not isinstance(chars, str):
        raise TypeError(f"chars must be a str, got {type(chars).__name__}")
    if not chars:
        raise ValueError("chars must not be empty")
    if list(chars) != sorted(set(chars)):
        raise ValueError("chars must hold distinct characters in sorted order")
    return chars


@attrs.frozen(eq=True)
class CharVocab:
    """A character vocabulary: character ``chars[i]`` has id ``i``.

    Attributes:
        chars: the distinct characters, sorted (``"".join(sorted(set(text)))``).
    """

    chars: str = attrs.field(converter=_check_chars)
    _table: np.ndarray[Any, np.dtype[np.int64]] = attrs.field(init=False, repr=False, eq=False)
    _points: np.ndarray[Any, np.dtype[np.uint32]] = attrs.field(init=False, repr=False, eq=False)

    @_table.default
    def _make_table(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        # code point -> id, -1 for characters outside the vocabulary
        points = _code_points(self.chars)
        table = np.full(int(points.max()) + 1, -1, dtype=np.int64)
        table[points] = np.arange(len(points))
        return read_only(table)

    @_points.default
    def _make_points(self) -> np.ndarray[Any, np.dtype[np.uint32]]:
        return _code_points(self.chars)

    @property
    def size(self) -> int:
        """The number of characters (ids run over ``[0, size)``)."""
        return len(self.chars)

    def encode(self, text: str) -> IntArray:
        """The ids of ``text``'s characters, int64 (len(text),). ValueError naming the
        first character outside the vocabulary and its position."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        points = _code_points(text).astype(np.int64)
        inside = points < len(self._table)
        ids = np.full(len(points), -1, dtype=np.int64)
        ids[inside] = self._table[points[inside]]
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"character {text[i]!r} at position {i} is not in the vocabulary "
                f"of {self.size} characters"
            )
        return ids

    def decode(self, ids: Any) -> str:
        """The text of ``ids``, integers (len,) in ``[0, size)``. ValueError naming the
        first id out of range and its position."""
        a = np.asarray(ids)
        if a.ndim != 1:
            raise ValueError(f"ids must have shape (len,), got {a.shape}")
        if a.size == 0:
            return ""
        if a.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers, got dtype {a.dtype}")
        bad = np.flatnonzero((a < 0) | (a >= self.size))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"id {int(a[i])} at position {i} is outside [0, {self.size})")
        return str(self._points[a].astype("<u4").tobytes().decode("utf-32-le"))

    def config(self) -> dict[str, object]:
        """JSON-friendly description: ``CharVocab.from_config(v.config()) == v``."""
        return {"kind": "char_vocab", "chars": self.chars}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CharVocab:
        """The vocabulary a :meth:`config` dict describes (ValueError if malformed)."""
        if not isinstance(config, dict) or config.get("kind") != "char_vocab":
            raise ValueError(f"not a char_vocab config: {config!r:.80}")
        return cls(config.get("chars"))


def char_vocab(text: str) -> CharVocab:
    """The vocabulary of ``text``'s distinct characters, sorted."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return CharVocab("".join(sorted(set(text))))


def split_text(text: S, train_fraction: float = 0.9) -> tuple[S, S]:
    """``(train, validation)``: the first ``int(train_fraction * len(text))`` items
    (characters of a str, or ids of an array (len,)) and the rest, in order: the
    conventional split of a character corpus (0.9 by default)."""
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, float | int):
        raise TypeError(f"train_fraction must be a float, got {type(train_fraction).__name__}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    k = int(train_fraction * len(text))
    return text[:k], text[k:]


def text_windows(
    ids: Any, context: int, batch_size: int, *, rng: RNGLike
) -> tuple[IntArray, IntArray]:
    """Random training windows for next-token prediction.

    Args:
        ids: token ids, integers (len,).
        context: window length, ``1 <= context <= len - 1``.
        batch_size: number of windows.
        rng: a generator or seed; the window starts are uniform over
            ``[0, len - context)``.

    Returns:
        ``X`` int64 (batch_size, context), ``ids[s : s + context]`` per start ``s``,
        and ``y`` int64 (batch_size, context), ``ids[s + 1 : s + context + 1]``: the
        next token at each position.
    """
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"ids must have shape (len,), got {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {a.dtype}")
    for name, v in (("context", context), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if len(a) < context + 1:
        raise ValueError(
            f"ids has {len(a)} tokens, fewer than context + 1 = {context + 1} needed "
            f"for one window and its targets"
        )
    starts = as_generator(rng).integers(0, len(a) - context, size=batch_size)
    idx = starts[:, None] + np.arange(context)  # (batch, context)
    X = a[idx].astype(np.int64)
    y = a[idx + 1].astype(np.int64)
    return X, y
