"""Masks: which leaves a transform acts on (weight decay, freezing), by path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fnn import tree
from fnn._types import BoolArray
from fnn.layers.base import weight_paths

__all__ = ["Mask", "WeightsOnly", "resolve_mask", "weights_only"]

Mask = Callable[[str], bool] | Mapping[str, bool] | Any
"""A predicate on leaf paths, a ``{path: bool}`` mapping (missing paths are False), or
a tree of bools with the parameters' structure (for plain dict/tuple trees)."""


class WeightsOnly:
    """The mask of the weights: each layer kind's declared weight fields
    (``register_layer(..., weights=...)``; the trainable leaves with two or more axes
    for kinds that declare none), at any depth, composites included. Biases, norms'
    scales and shifts, and state are not weights. Pass it as a mask
    (``fnn.add_decayed_weights(1e-4, fnn.weights_only)``); it reads the parameters'
    layers when the optimizer state is made."""

    def resolve(self, params: Any) -> BoolArray:
        """The flat mask (ravel order) of ``params``' weights."""
        paths = weight_paths(params)
        return tree.leaf_mask(params, paths.__contains__)

    def __call__(self, path: str) -> bool:
        """As a bare predicate on a path, without the tree: paths ending in ``.W``."""
        return path.endswith(".W")

    def __repr__(self) -> str:
        return "fnn.weights_only"


weights_only = WeightsOnly()
"""Mask selecting the weights (see :class:`WeightsOnly`), not biases or norms."""


def resolve_mask(params: Any, mask: Mask | None) -> BoolArray | None:
    """A flat boolean mask (ravel order) from a path predicate or a tree of bools."""
    if mask is None:
        return None
    if isinstance(mask, WeightsOnly):
        return mask.resolve(params)
    if callable(mask):
        return tree.leaf_mask(params, mask)
    if isinstance(mask, Mapping) and all(isinstance(k, str) for k in mask):
        unknown = sorted(set(mask) - {p for p, _ in tree.leaves_with_paths(params)})
        if unknown:
            raise ValueError(f"mask names unknown path(s) {unknown}")
        return tree.leaf_mask(params, lambda p: bool(mask.get(p, False)))
    leaves_p = tree.leaves_with_paths(params)
    flags = tree.leaves(mask)
    if len(flags) != len(leaves_p):
        raise ValueError(
            f"mask has {len(flags)} leaves but the parameters have {len(leaves_p)}; pass a "
            "tree of bools with the parameters' structure or a predicate on paths"
        )
    parts = [np.full(int(np.size(x)), bool(f)) for (_, x), f in zip(leaves_p, flags, strict=True)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
