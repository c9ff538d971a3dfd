"""Array and randomness aliases shared by every module.

fnn supports float32 and float64 end to end, so array types name the dtype family
(`np.floating`) rather than one width; shapes are given in docstrings.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray: TypeAlias = NDArray[np.floating[Any]]
"""A float32 or float64 array."""

IntArray: TypeAlias = NDArray[np.integer[Any]]
"""An array of integers (class labels, indices)."""

BoolArray: TypeAlias = NDArray[np.bool_]

RNGLike: TypeAlias = np.random.Generator | int
"""A `np.random.Generator`, or an int seed for a fresh one."""

FloatDType: TypeAlias = type[np.float32] | type[np.float64] | np.dtype[Any] | str
"""A float dtype spelled as numpy accepts it: np.float32, "float64", np.dtype(...)."""

Shape: TypeAlias = tuple[int | None, ...]
"""A per-sample shape whose time axis may be None (a sequence of any length), e.g.
``(None,)`` for token ids or ``(None, 64)``; other axes are positive ints."""

__all__ = ["ArrayLike", "BoolArray", "FloatArray", "FloatDType", "IntArray", "RNGLike", "Shape"]
