"""Learned positional embedding, added to its input: ``out = X + P[:T]``.

``X`` is a sequence (n, T, d), ``P`` (max_len, d) one learned vector per position; the
gradients are ``dP[:T] = sum over the batch of d_out`` (zero beyond ``T``) and
``dX = d_out``. ``P`` is initialised N(0, 0.02²), the convention of GPT-2's learned
position table (PyTorch has no positional embedding layer of its own). A sequence
longer than ``max_len`` is a ValueError naming ``max_len``.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn._validation import check_int, float_dtype
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, config_size, register_layer
from fnn.tree import readonly

__all__ = ["PositionalEmbedding", "PositionalEmbeddingCache", "init", "output_shape"]

INIT_STD = 0.02
"""The standard deviation of the initial ``P`` (as GPT-2's position embedding)."""


@attrs.frozen(eq=False)
class PositionalEmbedding(LayerBase):
    """Parameters of a learned positional embedding (and their gradients).

    Attributes:
        P: one vector per position, shape (max_len, d), read-only.
    """

    P: FloatArray = attrs.field(converter=readonly)

    def __attrs_post_init__(self) -> None:
        if self.P.ndim != 2 or self.P.shape[0] < 1 or self.P.shape[1] < 1:
            raise ValueError(f"P must have shape (max_len, d), got shape {self.P.shape}")

    @property
    def max_len(self) -> int:
        return int(self.P.shape[0])

    @property
    def dim(self) -> int:
        return int(self.P.shape[1])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return output_shape(input_shape, self.max_len, self.dim)

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, PositionalEmbeddingCache]:
        """``out = X + P[:T]`` for ``X`` (batch, T, d); ``out`` (batch, T, d)."""
        T = X.shape[1]
        if self.max_len < T:
            raise ValueError(
                f"a sequence of length {T} is longer than the positional embedding's "
                f"max_len={self.max_len}"
            )
        out = np.add(X, self.P[:T], out=ws.empty("out", X.shape, X.dtype))
        return out, PositionalEmbeddingCache(T=T)

    def backward_into(
        self,
        cache: PositionalEmbeddingCache,
        d_out: FloatArray,
        grads: PositionalEmbedding,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """``dP[:T] = sum_i d_out[i]``, ``dP[T:] = 0``; ``d_in = d_out``."""
        T = cache.T
        dP = grads.P
        dP[T:] = 0
        n = d_out.shape[0]
        np.dot(ws.ones("rows", n, d_out.dtype), d_out.reshape(n, -1), out=dP[:T].reshape(-1))
        if not need_d_in:
            return None
        d_in = ws.empty("d_in", d_out.shape, d_out.dtype)
        np.copyto(d_in, d_out)
        return d_in

    def config(self) -> dict[str, object]:
        return {"kind": "positional_embedding", "max_len": self.max_len, "dim": self.dim}


@attrs.frozen(eq=False)
class PositionalEmbeddingCache(LayerCache):
    """The sequence length ``T`` of the forward pass."""

    T: int


def output_shape(input_shape: tuple[int, ...], max_len: int, dim: int | None) -> tuple[int, ...]:
    """The per-sample input shape (T, dim) itself (``dim`` None: any); ValueError
    (naming the layer as ``{layer}``) for another shape or T > ``max_len``."""
    if len(input_shape) != 2 or (dim is not None and input_shape[1] != dim):
        raise ValueError(
            f"{{layer}} (PositionalEmbedding) expects sequences of shape "
            f"(T, {'d' if dim is None else dim}), got {tuple(input_shape)}"
        )
    T = input_shape[0]
    if T is not None and max_len < T:
        raise ValueError(f"{{layer}}: sequences of length {T} exceed max_len={max_len}")
    return tuple(input_shape)


def init(
    max_len: int, dim: int, *, rng: np.random.Generator, dtype: Any = np.float64
) -> PositionalEmbedding:
    """A new positional embedding: ``P`` (max_len, dim) drawn from N(0, 0.02²)."""
    m = check_int(max_len, "max_len")
    d = check_int(dim, "dim")
    P = (INIT_STD * rng.standard_normal((m, d))).astype(float_dtype(dtype))
    return PositionalEmbedding(P=P)


def _example(
    rng: np.random.Generator, dtype: np.dtype[Any]
) -> tuple[PositionalEmbedding, tuple[int, ...]]:
    layer = init(6, 3, rng=rng, dtype=dtype)
    return attrs.evolve(layer, P=rng.normal(size=(6, 3)).astype(dtype)), (4, 3)


register_layer(
    "positional_embedding",
    PositionalEmbedding,
    build=lambda cfg, a: PositionalEmbedding(P=a["P"]),
    example=_example,
    shapes=lambda cfg: {"P": (config_size(cfg, "max_len"), config_size(cfg, "dim"))},
    create=lambda s, *, rng, dtype, max_len: init(
        max_len, output_shape(s, max_len, None)[-1], rng=rng, dtype=dtype
    ),
    shape=lambda s, *, max_len: output_shape(s, max_len, None),
)
