"""Inverted dropout: in training, each unit is zeroed with probability ``rate`` and the
survivors are scaled by ``1 / (1 - rate)``, so the expected output equals the input and
inference is the identity.

The mask is drawn from the explicit ``rng`` and kept in the cache, so the backward pass
``d_in = d_out * mask`` uses exactly the units the forward pass kept.

Reference: Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
Overfitting".
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn.layers.base import LayerCache
from fnn.tree import static_field

__all__ = ["Dropout", "DropoutCache", "backward", "forward", "init"]


def _check_rate(_inst: object, _attr: object, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"dropout rate must be in [0, 1), got {value!r}")


@attrs.frozen(eq=False)
class Dropout:
    """A dropout layer; it has no trainable leaves.

    Attributes:
        rate: probability of dropping each unit, in [0, 1) (static).
    """

    rate: float = static_field(converter=float, validator=_check_rate)

    @property
    def n_in(self) -> None:
        return None

    @property
    def n_out(self) -> None:
        return None

    def forward(
        self, X: FloatArray, *, train: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[FloatArray, DropoutCache]:
        return forward(self, X, train=train, rng=rng)

    def backward(self, cache: LayerCache, d_out: FloatArray) -> tuple[Dropout, FloatArray]:
        if not isinstance(cache, DropoutCache):
            raise TypeError(f"expected a DropoutCache, got {type(cache).__name__}")
        return backward(self, cache, d_out)

    def config(self) -> dict[str, object]:
        return {"kind": "dropout", "rate": self.rate}


@attrs.frozen(eq=False)
class DropoutCache(LayerCache):
    """The scaled keep-mask (batch, n) used in training, or None at inference."""

    mask: FloatArray | None


def init(rate: float) -> Dropout:
    """A dropout layer dropping each unit with probability ``rate``."""
    return Dropout(rate=rate)


def forward(
    params: Dropout, X: FloatArray, *, train: bool = False, rng: np.random.Generator | None = None
) -> tuple[FloatArray, DropoutCache]:
    """``X`` (batch, n) times a random mask when ``train`` (needs ``rng``), else ``X``."""
    if not train or params.rate == 0.0:
        return X, DropoutCache(mask=None)
    if rng is None:
        raise ValueError("rng is required for dropout when train=True")
    keep = rng.random(X.shape) >= params.rate
    mask = keep.astype(X.dtype) * X.dtype.type(1.0 / (1.0 - params.rate))
    return X * mask, DropoutCache(mask=mask)


def backward(params: Dropout, cache: DropoutCache, d_out: FloatArray) -> tuple[Dropout, FloatArray]:
    """``(Dropout, d_in)`` with ``d_in = d_out * mask`` (``d_out`` at inference)."""
    d_in = d_out if cache.mask is None else d_out * cache.mask
    return params, d_in
