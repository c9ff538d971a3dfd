"""Batch normalisation over the last axis, PyTorch's ``BatchNorm1d`` / ``BatchNorm2d``.

For ``X`` of shape (n, ..., C) each of the C features (channels, for images
(n, h, w, C)) is normalised over the other axes, ``m = n * ...`` values:

    mean = sum(x) / m,   var = sum((x - mean)^2) / m   (biased),
    xhat = (x - mean) / sqrt(var + eps),   out = scale * xhat + shift.

In training the batch statistics are used, and the running estimates move towards them
(PyTorch's momentum convention, unbiased variance in the running estimate):

    running_mean = (1 - momentum) running_mean + momentum mean,
    running_var  = (1 - momentum) running_var  + momentum var * m / (m - 1).

At inference (``train=False``) the running estimates replace the batch statistics.

The running estimates are non-trainable state leaves (:func:`fnn.tree.state_field`):
the backward pass writes the new estimates into the gradient tree's state leaves, and
``fnn.update`` takes them over; optimizers never change them.

With ``g = dL/dout``, the training-mode gradients are

    dshift = sum(g),   dscale = sum(g xhat),
    dx = scale / sqrt(var + eps) * (g - sum(g) / m - xhat sum(g xhat) / m).

In data-parallel training the sums (the statistics in the forward pass, ``sum(g)`` and
``sum(g xhat)`` in the backward pass) run over the global batch: each process sums its
rows and the sums are all-reduced, so N processes compute what one does.

Reference: Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network
Training by Reducing Internal Covariate Shift".
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn._validation import as_float, check_positive, check_range
from fnn.layers._channel_rows import ChannelRows
from fnn.layers.base import (
    Context,
    LayerBase,
    LayerCache,
    Workspace,
    config_size,
    last_axis_shape,
    register_layer,
)
from fnn.tree import STATIC_META, read_only, readonly, state_field

__all__ = ["BatchNorm", "BatchNormCache"]


@attrs.frozen(eq=False)
class BatchNorm(LayerBase):
    """A batch-norm layer (and, with the same type, its gradients).

    Attributes:
        scale: learnable scale (C,) (PyTorch's ``weight``), default ones.
        shift: learnable shift (C,) (PyTorch's ``bias``), default zeros.
        running_mean: running mean (C,), a non-trainable state leaf, default zeros.
        running_var: running (unbiased) variance (C,), a state leaf, default ones.
        momentum: weight of the batch statistics in the running estimates (static).
        eps: added to the variance before the square root (static).
    """

    scale: FloatArray = attrs.field(converter=readonly)
    shift: FloatArray = attrs.field(converter=readonly)
    running_mean: FloatArray = state_field(converter=readonly)
    running_var: FloatArray = state_field(converter=readonly)
    momentum: float = attrs.field(
        default=0.1,
        converter=as_float,
        validator=check_range("momentum", 0, 1, hi_open=False),
        metadata=STATIC_META,
    )
    eps: float = attrs.field(
        default=1e-5,
        converter=as_float,
        validator=check_positive("eps"),
        metadata=STATIC_META,
    )

    @shift.default
    def _zero_shift(self) -> FloatArray:
        return np.zeros_like(self.scale)

    @running_mean.default
    def _zero_mean(self) -> FloatArray:
        return np.zeros_like(self.scale)

    @running_var.default
    def _one_var(self) -> FloatArray:
        return np.ones_like(self.scale)

    def __attrs_post_init__(self) -> None:
        if self.scale.ndim != 1 or self.scale.size == 0:
            raise ValueError(f"scale must have shape (n_features,), got {self.scale.shape}")
        for name in ("shift", "running_mean", "running_var"):
            a = getattr(self, name)
            if a.shape != self.scale.shape:
                raise ValueError(f"{name} must have shape {self.scale.shape}, got {a.shape}")
            if a.dtype != self.scale.dtype:
                raise ValueError(f"{name} has dtype {a.dtype} but scale has {self.scale.dtype}")
        # running statistics that could never come from data would normalise every
        # inference silently wrong (a NaN spreads to every output, sqrt(var + eps) of a
        # variance below -eps is NaN)
        for name in ("running_mean", "running_var"):
            a = getattr(self, name)
            if not np.isfinite(a).all():
                raise ValueError(f"{name} must be finite, got {a}")
        if (self.running_var < 0).any():
            raise ValueError(f"running_var must be >= 0, got {self.running_var}")

    @classmethod
    def create(
        cls, n_features: int, *, momentum: float = 0.1, eps: float = 1e-5, dtype: Any = np.float64
    ) -> BatchNorm:
        """A fresh layer for ``n_features`` features: scale ones, shift zeros, running
        mean zeros, running variance ones (PyTorch's initial values)."""
        if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer):
            raise TypeError(f"n_features must be an int, got {type(n_features).__name__}")
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        one = np.ones(int(n_features), dtype)
        return cls(scale=one, momentum=momentum, eps=eps)

    @property
    def n_features(self) -> int:
        return int(self.scale.shape[0])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return last_axis_shape("batch norm", input_shape, self.n_features)

    def min_batch_rows(self, input_shape: tuple[int, ...]) -> int:
        """The fewest rows a training batch of samples of ``input_shape`` needs: 2 when a
        sample holds one value per feature (the unbiased variance divides by m - 1),
        else 1. ``fit`` reads this optional method of any layer before its first step."""
        return 2 if math.prod(input_shape[:-1]) == 1 else 1

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, BatchNormCache]:
        """``out = scale * xhat + shift`` with batch statistics in training, running
        estimates at inference. ``X`` (n, ..., C), ``out`` the same shape."""
        C = self.n_features
        dt = self.scale.dtype
        x = X.reshape(-1, C)
        m_local = x.shape[0]
        rows = ChannelRows.of(m_local, C, dt.itemsize)
        out = ws.empty("out", x.shape, dt)
        if not ctx.train:
            # inference is one affine pass per channel, out = x k + (shift - mean k) with
            # k = scale / sqrt(var + eps)
            inv = 1 / np.sqrt(self.running_var + dt.type(self.eps))
            k = inv * self.scale
            xs = rows.parts(x)
            _affine(rows, xs, rows.parts(out), k, self.shift - self.running_mean * k)
            if not ctx.keep_cache:
                return out.reshape(X.shape), _NO_CACHE
            # the gradient of scale reads xhat = (x - mean) inv: the centred input
            xc = ws.empty("xc", x.shape, dt)
            _centre(rows, xs, rows.parts(xc), self.running_mean)
            r, v = self.running_mean, self.running_var
            return out.reshape(X.shape), BatchNormCache(
                xc=xc, inv=inv, count=m_local, train=False, new_mean=r, new_var=v
            )
        m = int(ctx.sum_over_processes(np.array([m_local], dt))[0])
        if m <= 1:
            raise ValueError(
                f"batch norm: expected more than 1 value per feature when training, got "
                f"input of shape {X.shape} (use a larger batch, or drop_last=True in fit)"
            )
        xc = ws.empty("xc", x.shape, dt)
        xs, cs = rows.parts(x), rows.parts(xc)
        # Each pass runs tiled and in cache-sized blocks on fnn's threads (_channel_rows);
        # the mean is a BLAS product, the sum of squares is summed in a fixed order. Two
        # passes (mean, then squared deviations): accurate for any offset.
        ones = ws.ones("rows", m_local, dt)
        mean: FloatArray = ctx.sum_over_processes(np.dot(ones, x)) / dt.type(m)
        mt = rows.tile(mean)

        def deviations(p: int, lo: int, hi: int, tmp: FloatArray) -> tuple[FloatArray]:
            d, sq = cs[p][lo:hi], tmp[: hi - lo]
            np.subtract(xs[p][lo:hi], mt[p], out=d)
            np.multiply(d, d, out=sq)
            return (sq.sum(axis=0),)

        squares = rows.run(deviations, x.nbytes, dt, n_sums=1)[0]
        var: FloatArray = ctx.sum_over_processes(squares) / dt.type(m)
        mom = dt.type(self.momentum)
        new_mean: FloatArray = (1 - mom) * self.running_mean + mom * mean
        new_var: FloatArray = (1 - mom) * self.running_var + mom * var * dt.type(m / (m - 1))
        inv = 1 / np.sqrt(var + dt.type(self.eps))
        _affine(rows, cs, rows.parts(out), inv * self.scale, self.shift)
        return out.reshape(X.shape), BatchNormCache(
            xc=xc, inv=inv, count=m, train=True, new_mean=new_mean, new_var=new_var
        )

    def backward_into(
        self,
        cache: BatchNormCache,
        d_out: FloatArray,
        grads: BatchNorm,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Gradients of scale and shift, the new running estimates in the state leaves,
        and ``d_in`` (see the module docstring)."""
        C = self.n_features
        dt = self.scale.dtype
        g = d_out.reshape(-1, C)
        rows = ChannelRows.of(g.shape[0], C, dt.itemsize)
        gs, cs = rows.parts(g), rows.parts(cache.xc)

        def sums(p: int, lo: int, hi: int, tmp: FloatArray) -> tuple[FloatArray, FloatArray]:
            gb, gx = gs[p][lo:hi], tmp[: hi - lo]
            np.multiply(gb, cs[p][lo:hi], out=gx)
            return gb.sum(axis=0), gx.sum(axis=0)

        # this process's rows (summed like every gradient): sum(g), and sum(g xhat) as
        # inv * sum(g (x - mean))
        s = rows.run(sums, 2 * g.nbytes, dt, n_sums=2)
        np.copyto(grads.shift, s[0])
        np.multiply(s[1], cache.inv, out=grads.scale)
        self.state_into(cache, grads)
        if not need_d_in:
            return None
        d_in = ws.empty("d_in", g.shape, dt)
        ds = rows.parts(d_in)
        k = rows.tile(self.scale * cache.inv)
        if cache.train:
            total = ctx.sum_over_processes(np.concatenate([grads.shift, grads.scale]))
            m = dt.type(cache.count)
            # dx = k (g - sum(g)/m - xhat sum(g xhat)/m), xhat = (x - mean) inv
            mean_g = rows.tile(total[:C] / m)
            b = rows.tile(cache.inv * (total[C:] / m))

            def d_rows(p: int, lo: int, hi: int, tmp: FloatArray) -> tuple[()]:
                d = ds[p][lo:hi]
                np.multiply(cs[p][lo:hi], b[p], out=d)
                d += mean_g[p]
                np.subtract(gs[p][lo:hi], d, out=d)
                d *= k[p]
                return ()

        else:

            def d_rows(p: int, lo: int, hi: int, tmp: FloatArray) -> tuple[()]:
                np.multiply(gs[p][lo:hi], k[p], out=ds[p][lo:hi])
                return ()

        rows.run(d_rows, 2 * g.nbytes, dt)
        return d_in.reshape(d_out.shape)

    def state_into(self, cache: BatchNormCache, grads: BatchNorm) -> None:
        """The new running estimates (C,) into the state leaves of ``grads``: all that a
        training step whose update reads none of this layer's gradients needs of its
        backward pass (:func:`fnn.network.gradient_skip`)."""
        np.copyto(grads.running_mean, cache.new_mean)
        np.copyto(grads.running_var, cache.new_var)

    def config(self) -> dict[str, object]:
        return {
            "kind": "batch_norm",
            "n_features": self.n_features,
            "momentum": self.momentum,
            "eps": self.eps,
        }


def _affine(
    rows: ChannelRows,
    src: tuple[FloatArray, FloatArray],
    dst: tuple[FloatArray, FloatArray],
    k: FloatArray,
    shift: FloatArray,
) -> None:
    """``dst = src * k + shift`` over the parts (:meth:`ChannelRows.parts`) of (m, C)
    arrays, ``k`` and ``shift`` (C,)."""
    kt, st = rows.tile(k), rows.tile(shift)

    def block(p: int, lo: int, hi: int, tmp: FloatArray) -> tuple[()]:
        o = dst[p][lo:hi]
        np.multiply(src[p][lo:hi], kt[p], out=o)
        o += st[p]
        return ()

    rows.run(block, 2 * k.itemsize * rows.m * rows.C, k.dtype)


def _centre(
    rows: ChannelRows,
    src: tuple[FloatArray, FloatArray],
    dst: tuple[FloatArray, FloatArray],
    mean: FloatArray,
) -> None:
    """``dst = src - mean`` over the parts of (m, C) arrays, ``mean`` (C,)."""
    mt = rows.tile(mean)

    def block(p: int, lo: int, hi: int, tmp: FloatArray) -> tuple[()]:
        np.subtract(src[p][lo:hi], mt[p], out=dst[p][lo:hi])
        return ()

    rows.run(block, 2 * mean.itemsize * rows.m * rows.C, mean.dtype)


@attrs.frozen(eq=False)
class BatchNormCache(LayerCache):
    """The centred input ``xc = x - mean`` (m, C) (so ``xhat = xc * inv``),
    ``inv = 1 / sqrt(var + eps)`` (C,), the count ``m`` of values per feature (global
    in data-parallel runs), whether batch statistics were used, and the new running
    estimates (C,)."""

    xc: FloatArray
    inv: FloatArray
    count: int
    train: bool
    new_mean: FloatArray
    new_var: FloatArray


_EMPTY = read_only(np.zeros(0))
_NO_CACHE = BatchNormCache(
    xc=_EMPTY, inv=_EMPTY, count=0, train=False, new_mean=_EMPTY, new_var=_EMPTY
)
"""The cache of an inference pass whose caller drops it (``fnn.predict``): none is
made, and no centred input is computed."""


def _example(rng: np.random.Generator, dtype: np.dtype[Any]) -> tuple[BatchNorm, tuple[int, ...]]:
    c = 3
    layer = BatchNorm(
        scale=rng.uniform(0.5, 1.5, c).astype(dtype),
        shift=rng.normal(size=c).astype(dtype),
        running_mean=rng.normal(size=c).astype(dtype),
        running_var=rng.uniform(0.5, 2.0, c).astype(dtype),
        momentum=0.2,
    )
    return layer, (2, c)


register_layer(
    "batch_norm",
    BatchNorm,
    build=lambda cfg, a: BatchNorm(
        scale=a["scale"],
        shift=a["shift"],
        running_mean=a["running_mean"],
        running_var=a["running_var"],
        momentum=float(cfg["momentum"]),
        eps=float(cfg["eps"]),
    ),
    example=_example,
    shapes=lambda cfg: {
        k: (config_size(cfg, "n_features"),)
        for k in ("scale", "shift", "running_mean", "running_var")
    },
    weights=(),
    create=lambda s, *, rng, dtype, momentum=0.1, eps=1e-5: BatchNorm.create(
        last_axis_shape("batch norm", s, None)[-1], momentum=momentum, eps=eps, dtype=dtype
    ),
    shape=lambda s, **_: last_axis_shape("batch norm", s, None),
)
