"""Layer normalisation over the last axis, PyTorch's ``LayerNorm(C)``.

For ``X`` of shape (n, ..., C) each row of C values (each sample for 2-D input, each
pixel for channels-last images) is normalised on its own, with the biased variance:

    mean = sum(x) / C,   var = sum((x - mean)^2) / C,
    xhat = (x - mean) / sqrt(var + eps),   out = scale * xhat + shift.

No batch statistics and no state: training and inference compute the same. With
``g = dL/dout`` and ``gh = g * scale``, per row,

    dx = (gh - sum(gh) / C - xhat sum(gh xhat) / C) / sqrt(var + eps),

and over all rows ``dscale = sum(g xhat)``, ``dshift = sum(g)``.

Reference: Ba, Kiros & Hinton 2016, "Layer Normalization".
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn._validation import as_float, check_positive
from fnn.layers.base import (
    Context,
    LayerBase,
    LayerCache,
    Workspace,
    config_size,
    last_axis_shape,
    register_layer,
)
from fnn.tree import STATIC_META, readonly

__all__ = ["LayerNorm", "LayerNormCache"]


@attrs.frozen(eq=False)
class LayerNorm(LayerBase):
    """A layer-norm layer (and, with the same type, its gradients).

    Attributes:
        scale: learnable scale (C,) (PyTorch's ``weight``), default ones.
        shift: learnable shift (C,) (PyTorch's ``bias``), default zeros.
        eps: added to the variance before the square root (static).
    """

    scale: FloatArray = attrs.field(converter=readonly)
    shift: FloatArray = attrs.field(converter=readonly)
    eps: float = attrs.field(
        default=1e-5,
        converter=as_float,
        validator=check_positive("eps"),
        metadata=STATIC_META,
    )

    @shift.default
    def _zero_shift(self) -> FloatArray:
        return np.zeros_like(self.scale)

    def __attrs_post_init__(self) -> None:
        if self.scale.ndim != 1 or self.scale.size == 0:
            raise ValueError(f"scale must have shape (n_features,), got {self.scale.shape}")
        if self.shift.shape != self.scale.shape:
            raise ValueError(f"shift must have shape {self.scale.shape}, got {self.shift.shape}")
        if self.shift.dtype != self.scale.dtype:
            raise ValueError(f"shift has dtype {self.shift.dtype} but scale has {self.scale.dtype}")

    @classmethod
    def create(cls, n_features: int, *, eps: float = 1e-5, dtype: Any = np.float64) -> LayerNorm:
        """A fresh layer for ``n_features`` features: scale ones, shift zeros."""
        if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer):
            raise TypeError(f"n_features must be an int, got {type(n_features).__name__}")
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        return cls(scale=np.ones(int(n_features), dtype), eps=eps)

    @property
    def n_features(self) -> int:
        return int(self.scale.shape[0])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return last_axis_shape("layer norm", input_shape, self.n_features)

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, LayerNormCache]:
        """``out = scale * xhat + shift``, each row normalised; ``X`` (n, ..., C)."""
        C = self.n_features
        dt = self.scale.dtype
        x = X.reshape(-1, C)
        ones = ws.ones("features", C, dt)
        mean = np.dot(x, ones) / dt.type(C)  # (m,)
        xc = ws.empty("xc", x.shape, dt)
        np.subtract(x, mean[:, None], out=xc)
        sq = ws.empty("sq", x.shape, dt)
        np.multiply(xc, xc, out=sq)
        var = np.dot(sq, ones) / dt.type(C)
        inv = 1 / np.sqrt(var + dt.type(self.eps))  # (m,)
        xhat = np.multiply(xc, inv[:, None], out=xc)
        out = ws.empty("out", x.shape, dt)
        np.multiply(xhat, self.scale, out=out)
        out += self.shift
        return out.reshape(X.shape), LayerNormCache(xhat=xhat, inv=inv)

    def backward_into(
        self,
        cache: LayerNormCache,
        d_out: FloatArray,
        grads: LayerNorm,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Gradients of scale and shift and ``d_in`` (see the module docstring)."""
        C = self.n_features
        dt = self.scale.dtype
        g = d_out.reshape(-1, C)
        xhat = cache.xhat
        rows = ws.ones("rows", g.shape[0], dt)
        gx = ws.empty("gx", g.shape, dt)
        np.multiply(g, xhat, out=gx)
        np.dot(rows, g, out=grads.shift)
        np.dot(rows, gx, out=grads.scale)
        if not need_d_in:
            return None
        ones = ws.ones("features", C, dt)
        gh = ws.empty("d_in", g.shape, dt)
        np.multiply(g, self.scale, out=gh)  # gh = g * scale
        s1 = np.dot(gh, ones) / dt.type(C)  # (m,): mean of gh over the row
        np.multiply(gh, xhat, out=gx)
        s2 = np.dot(gx, ones) / dt.type(C)  # (m,): mean of gh * xhat
        # dx = (gh - s1 - xhat s2) * inv
        np.multiply(xhat, s2[:, None], out=gx)
        gh -= gx
        gh -= s1[:, None]
        gh *= cache.inv[:, None]
        return gh.reshape(d_out.shape)

    def config(self) -> dict[str, object]:
        return {"kind": "layer_norm", "n_features": self.n_features, "eps": self.eps}


@attrs.frozen(eq=False)
class LayerNormCache(LayerCache):
    """``xhat`` (m, C) and ``inv = 1 / sqrt(var + eps)`` per row (m,)."""

    xhat: FloatArray
    inv: FloatArray


def _example(rng: np.random.Generator, dtype: np.dtype[Any]) -> tuple[LayerNorm, tuple[int, ...]]:
    c = 4
    layer = LayerNorm(
        scale=rng.uniform(0.5, 1.5, c).astype(dtype), shift=rng.normal(size=c).astype(dtype)
    )
    return layer, (3, c)


register_layer(
    "layer_norm",
    LayerNorm,
    build=lambda cfg, a: LayerNorm(scale=a["scale"], shift=a["shift"], eps=float(cfg["eps"])),
    example=_example,
    shapes=lambda cfg: {k: (config_size(cfg, "n_features"),) for k in ("scale", "shift")},
    weights=(),
    create=lambda s, *, rng, dtype, eps=1e-5: LayerNorm.create(
        last_axis_shape("layer norm", s, None)[-1], eps=eps, dtype=dtype
    ),
    shape=lambda s, **_: last_axis_shape("layer norm", s, None),
)
