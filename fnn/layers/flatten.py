"""Flatten: each sample's (height, width, channels) array as one row, in that order
(row-major over the per-sample shape, as Keras' ``Flatten`` on channels-last input).

``out = X.reshape(n, prod(shape))`` and ``d_in = d_out.reshape(X.shape)``: views when
the arrays are contiguous, so the layer costs nothing; no leaves.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from fnn._types import FloatArray
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, register_layer

__all__ = ["Flatten", "FlattenCache"]


@attrs.frozen(eq=False)
class Flatten(LayerBase):
    """A layer that flattens each sample; no leaves."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, FlattenCache]:
        """``X`` (n, *shape) as (n, prod(shape))."""
        # the size, not -1: an empty shard of a data-parallel batch has 0 rows
        return X.reshape(X.shape[0], math.prod(X.shape[1:])), FlattenCache(shape=tuple(X.shape))

    def backward_into(
        self,
        cache: FlattenCache,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """``d_out`` (n, prod(shape)) back in the input's shape."""
        return d_out.reshape(cache.shape) if need_d_in else None

    def config(self) -> dict[str, object]:
        return {"kind": "flatten"}


@attrs.frozen(eq=False)
class FlattenCache(LayerCache):
    """The input's shape (n, *shape)."""

    shape: tuple[int, ...]


register_layer(
    "flatten",
    Flatten,
    build=lambda cfg, a: Flatten(),
    example=lambda rng, dtype: (Flatten(), (2, 3, 2)),
    shapes=lambda cfg: {},
    create=lambda s, *, rng, dtype: Flatten(),
    shape=lambda s: Flatten().output_shape(s),
)
