"""Inverted dropout: in training, each unit is zeroed with probability ``rate`` and the
survivors are scaled by ``1 / (1 - rate)``, so the expected output equals the input and
inference is the identity.

The mask is drawn from the explicit ``rng`` and kept in the cache, so the backward pass
``d_in = d_out * mask`` uses exactly the units the forward pass kept.

Reference: Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
Overfitting".
"""

from __future__ import annotations

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn._validation import as_float, check_range
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, register_layer, same_shape
from fnn.tree import static_field

__all__ = ["Dropout", "DropoutCache", "backward", "forward", "init"]


@attrs.frozen(eq=False)
class Dropout(LayerBase):
    """A dropout layer; it has no trainable leaves.

    Attributes:
        rate: probability of dropping each unit, in [0, 1) (static).
    """

    rate: float = static_field(converter=as_float, validator=check_range("dropout rate", 0, 1))

    @property
    def needs_rng(self) -> bool:
        """Whether training draws random numbers (a positive rate)."""
        return self.rate > 0

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, DropoutCache]:
        """``X`` (batch, ...) times a random keep-mask scaled by ``1 / (1 - rate)`` in
        training (drawn for the whole global batch in data-parallel runs), else ``X``."""
        if not ctx.train or self.rate == 0.0:
            return X, DropoutCache(mask=None)
        keep = ctx.draw_uniform(X.shape, "dropout") >= self.rate
        mask = np.multiply(
            keep, X.dtype.type(1.0 / (1.0 - self.rate)), out=ws.empty("mask", X.shape, X.dtype)
        )
        return np.multiply(X, mask, out=ws.empty("out", X.shape, X.dtype)), DropoutCache(mask=mask)

    def backward_into(
        self,
        cache: DropoutCache,
        d_out: FloatArray,
        grads: Dropout,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """``d_in = d_out * mask`` (``d_out`` at inference)."""
        if not need_d_in:
            return None
        if cache.mask is None:
            return d_out
        return np.multiply(d_out, cache.mask, out=ws.empty("d_in", d_out.shape, d_out.dtype))

    def config(self) -> dict[str, object]:
        return {"kind": "dropout", "rate": self.rate}


@attrs.frozen(eq=False)
class DropoutCache(LayerCache):
    """The scaled keep-mask (batch, ...) used in training, or None at inference."""

    mask: FloatArray | None


def init(rate: float) -> Dropout:
    """A dropout layer dropping each unit with probability ``rate``."""
    return Dropout(rate=rate)


def forward(
    params: Dropout, X: FloatArray, *, train: bool = False, rng: np.random.Generator | None = None
) -> tuple[FloatArray, DropoutCache]:
    """``X`` (batch, n) times a random mask when ``train`` (needs ``rng``), else ``X``."""
    out, cache = params.forward(X, train=train, rng=rng)
    assert isinstance(cache, DropoutCache)
    return out, cache


def backward(params: Dropout, cache: DropoutCache, d_out: FloatArray) -> tuple[Dropout, FloatArray]:
    """``(Dropout, d_in)`` with ``d_in = d_out * mask`` (``d_out`` at inference)."""
    return params.backward(cache, d_out)


register_layer(
    "dropout",
    Dropout,
    build=lambda cfg, a: Dropout(rate=float(cfg["rate"])),
    example=lambda rng, dtype: (Dropout(rate=0.25), (5,)),
    shapes=lambda cfg: {},
    create=lambda s, *, rng, dtype, rate: Dropout(rate=rate),
    shape=same_shape,
)
