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

from fnn import threads
from fnn._types import FloatArray
from fnn._validation import as_float, check_positive, check_range
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
        if not ctx.train and not ctx.keep_cache:
            return self._predict(x, ws).reshape(X.shape), _NO_CACHE
        ones = ws.ones("rows", m_local, dt)
        xc = ws.empty("xc", x.shape, dt)
        # The elementwise passes run over row ranges on fnn's threads; the sums over rows
        # are BLAS products (their order does not depend on fnn's thread count).
        if ctx.train:
            m = int(ctx.sum_over_processes(np.array([m_local], dt))[0])
            if m <= 1:
                raise ValueError(
                    f"batch norm: expected more than 1 value per feature when training, got "
                    f"input of shape {X.shape} (use a larger batch, or drop_last=True in fit)"
                )
            # two passes (mean, then squared deviations): accurate for any offset
            mean: FloatArray = ctx.sum_over_processes(np.dot(ones, x)) / dt.type(m)
            sq = ws.empty("sq", x.shape, dt)

            def deviations(lo: int, hi: int) -> None:
                np.subtract(x[lo:hi], mean, out=xc[lo:hi])
                np.multiply(xc[lo:hi], xc[lo:hi], out=sq[lo:hi])

            threads.parallel_rows(m_local, x.nbytes, deviations)
            var: FloatArray = ctx.sum_over_processes(np.dot(ones, sq)) / dt.type(m)
            mom = dt.type(self.momentum)
            new_mean: FloatArray = (1 - mom) * self.running_mean + mom * mean
            new_var: FloatArray = (1 - mom) * self.running_var + mom * var * dt.type(m / (m - 1))
        else:
            m = m_local
            mean, var = self.running_mean, self.running_var
            threads.parallel_rows(
                m_local, x.nbytes, lambda lo, hi: _subtract(x[lo:hi], mean, xc[lo:hi])
            )
            new_mean, new_var = self.running_mean, self.running_var
        inv = 1 / np.sqrt(var + dt.type(self.eps))
        xhat = xc  # xc is not needed again: xhat is written over it
        out = ws.empty("out", x.shape, dt)

        def normalise(lo: int, hi: int) -> None:
            np.multiply(xc[lo:hi], inv, out=xhat[lo:hi])
            np.multiply(xhat[lo:hi], self.scale, out=out[lo:hi])
            out[lo:hi] += self.shift

        threads.parallel_rows(m_local, x.nbytes, normalise)
        return out.reshape(X.shape), BatchNormCache(
            xhat=xhat, inv=inv, count=m, train=ctx.train, new_mean=new_mean, new_var=new_var
        )

    def _predict(self, x: FloatArray, ws: Workspace) -> FloatArray:
        """Inference with no cache kept, for ``x`` (m, C): the output of
        :meth:`forward_into` at inference (the same operations in the same order), with
        ``xhat`` written over the output instead of an array of its own."""
        dt = self.scale.dtype
        out = ws.empty("out", x.shape, dt)
        inv = 1 / np.sqrt(self.running_var + dt.type(self.eps))

        def normalise(lo: int, hi: int) -> None:
            o = out[lo:hi]
            np.subtract(x[lo:hi], self.running_mean, out=o)
            o *= inv
            o *= self.scale
            o += self.shift

        threads.parallel_rows(x.shape[0], x.nbytes, normalise)
        return out

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
        xhat = cache.xhat
        ones = ws.ones("rows", g.shape[0], dt)
        gx = ws.empty("gx", g.shape, dt)
        threads.parallel_rows(
            g.shape[0], g.nbytes, lambda lo, hi: _multiply(g[lo:hi], xhat[lo:hi], gx[lo:hi])
        )
        np.dot(ones, g, out=grads.shift)  # this process's rows; summed like every gradient
        np.dot(ones, gx, out=grads.scale)
        self.state_into(cache, grads)
        if not need_d_in:
            return None
        d_in = ws.empty("d_in", g.shape, dt)
        k = self.scale * cache.inv
        if cache.train:
            sums = ctx.sum_over_processes(np.concatenate([grads.shift, grads.scale]))
            m = dt.type(cache.count)
            mean_gx, mean_g = sums[C:] / m, sums[:C] / m

            def d_rows(lo: int, hi: int) -> None:
                # dx = k (g - sum(g)/m - xhat sum(g xhat)/m)
                d = d_in[lo:hi]
                np.multiply(xhat[lo:hi], mean_gx, out=d)
                np.subtract(g[lo:hi], d, out=d)
                d -= mean_g
                d *= k

            threads.parallel_rows(g.shape[0], g.nbytes, d_rows)
        else:
            threads.parallel_rows(
                g.shape[0], g.nbytes, lambda lo, hi: _multiply(g[lo:hi], k, d_in[lo:hi])
            )
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


def _subtract(a: FloatArray, b: FloatArray, out: FloatArray) -> None:
    np.subtract(a, b, out=out)


def _multiply(a: FloatArray, b: FloatArray, out: FloatArray) -> None:
    np.multiply(a, b, out=out)


@attrs.frozen(eq=False)
class BatchNormCache(LayerCache):
    """``xhat`` (m, C), ``inv = 1 / sqrt(var + eps)`` (C,), the count ``m`` of values per
    feature (global in data-parallel runs), whether batch statistics were used, and the
    new running estimates (C,)."""

    xhat: FloatArray
    inv: FloatArray
    count: int
    train: bool
    new_mean: FloatArray
    new_var: FloatArray


_EMPTY = read_only(np.zeros(0))
_NO_CACHE = BatchNormCache(
    xhat=_EMPTY, inv=_EMPTY, count=0, train=False, new_mean=_EMPTY, new_var=_EMPTY
)
"""The cache of an inference pass whose caller drops it (``fnn.predict``)."""


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
