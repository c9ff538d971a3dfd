"""The 2-D convolution layer, :class:`Conv2D`: channels-last input (n, h, w, c_in),
weights (kh, kw, c_in, c_out), bias (c_out,), an activation applied to the output.
Its math is the kernels of :mod:`fnn.layers.conv2d_kernels`, whose names are
importable from here too.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import numpy as np

from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn._types import FloatArray
from fnn._validation import float_dtype
from fnn.layers.base import (
    Context,
    LayerBase,
    LayerCache,
    Workspace,
    config_size,
    register_layer,
)
from fnn.layers.conv2d_kernels import D_COLS_CHUNK_BYTES as D_COLS_CHUNK_BYTES
from fnn.layers.conv2d_kernels import Conv2DShapes as Conv2DShapes
from fnn.layers.conv2d_kernels import PaddingLike as PaddingLike
from fnn.layers.conv2d_kernels import Pads2D as Pads2D
from fnn.layers.conv2d_kernels import Pair as Pair
from fnn.layers.conv2d_kernels import conv2d_backward as conv2d_backward
from fnn.layers.conv2d_kernels import conv2d_forward as conv2d_forward
from fnn.layers.conv2d_kernels import conv2d_input_gradient
from fnn.layers.conv2d_kernels import conv2d_workspace_shapes as conv2d_workspace_shapes
from fnn.layers.conv2d_kernels import out_buffer as out_buffer
from fnn.layers.conv2d_kernels import padding_value as padding_value
from fnn.layers.conv2d_kernels import positive_pair as positive_pair
from fnn.layers.conv2d_kernels import resolve_padding as resolve_padding
from fnn.layers.conv2d_kernels import stride_pair as stride_pair
from fnn.layers.conv2d_kernels import to_pair as to_pair
from fnn.tree import STATIC_META, readonly

__all__ = [
    "D_COLS_CHUNK_BYTES",
    "Conv2D",
    "Conv2DCache",
    "Conv2DShapes",
    "PaddingLike",
    "Pads2D",
    "Pair",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_workspace_shapes",
    "create",
    "init",
    "out_buffer",
    "output_shape",
    "padding_value",
    "positive_pair",
    "resolve_padding",
    "stride_pair",
    "to_pair",
]


def output_shape(
    input_shape: tuple[int, ...],
    in_channels: int | None,
    out_channels: int,
    kernel_size: Pair,
    stride: Pair,
    padding: PaddingLike,
) -> tuple[int, ...]:
    """The per-sample output shape (oh, ow, out_channels) of a convolution on images
    ``input_shape`` (h, w, in_channels) (``in_channels`` None: any). ValueError (naming
    the layer as ``{layer}``) when the input does not fit."""
    if len(input_shape) != 3:
        c_in = "channels" if in_channels is None else in_channels
        raise ValueError(
            f"{{layer}} (Conv2D) expects images of shape (height, width, {c_in}), got "
            f"samples of shape {tuple(input_shape)}"
        )
    h, w, c = input_shape
    if in_channels is not None and c != in_channels:
        raise ValueError(
            f"{{layer}} (Conv2D) expects {in_channels} input channels, got {c} "
            f"(samples of shape {tuple(input_shape)})"
        )
    _, (oh, ow) = _geometry(padding, (h, w), kernel_size, stride)
    return (oh, ow, out_channels)


def create(
    input_shape: tuple[int, ...],
    *,
    rng: np.random.Generator,
    dtype: Any,
    out_channels: int,
    kernel_size: Pair,
    stride: Pair = (1, 1),
    padding: PaddingLike = "valid",
    activation: _activations.Activation | str = "identity",
    initializer: _initializers.Initializer | str | None = None,
) -> Conv2D:
    """A convolution on per-sample images ``input_shape`` (h, w, in_channels) (what
    ``fnn.specs.conv2d`` describes); ``initializer`` None: He normal before a ReLU-like
    activation, Glorot uniform otherwise."""
    output_shape(input_shape, None, out_channels, kernel_size, stride, padding)
    act = _activations.get(activation)
    return init(
        input_shape[2],
        out_channels,
        kernel_size,
        rng=rng,
        stride=stride,
        padding=padding,
        activation=act,
        initializer=_initializers.for_activation(initializer, act),
        dtype=dtype,
    )


@functools.lru_cache(maxsize=1024)
def _geometry(
    padding: PaddingLike, in_hw: Pair, kernel_hw: Pair, stride: Pair
) -> tuple[Pads2D, Pair]:
    return resolve_padding(padding, in_hw, kernel_hw, stride)


@attrs.frozen(eq=False)
class Conv2D(LayerBase):
    """A 2-D convolution (cross-correlation) on channels-last input, and its gradients.

    ``fnn.Conv2D(W=..., b=..., stride=1, padding="valid", activation="identity")``.

    Attributes:
        W: weights (kernel_h, kernel_w, in_channels, out_channels), read-only.
        b: biases (out_channels,), default zeros.
        stride: (sh, sw) (static); an int means both.
        padding: ``"valid"``, ``"same"`` (Keras' rule: output ceil(input / stride), an
            odd extra row or column of zeros at the bottom or right) or explicit
            ((top, bottom), (left, right)) (an int or a pair are expanded) (static).
        activation: applied to the output (static).
    """

    W: FloatArray = attrs.field(converter=readonly)
    b: FloatArray = attrs.field(converter=readonly)
    stride: Pair = attrs.field(
        default=(1, 1),
        converter=stride_pair,
        metadata=STATIC_META,
    )
    padding: PaddingLike = attrs.field(
        default="valid", converter=padding_value, metadata=STATIC_META
    )
    activation: _activations.Activation = attrs.field(
        default=_activations.Identity(), converter=_activations.get, metadata=STATIC_META
    )

    @b.default
    def _zero_bias(self) -> FloatArray:
        return np.zeros(self.W.shape[-1] if self.W.ndim == 4 else 0, dtype=self.W.dtype)

    def __attrs_post_init__(self) -> None:
        if self.W.ndim != 4:
            raise ValueError(
                "W must have shape (kernel_h, kernel_w, in_channels, out_channels), got "
                f"shape {self.W.shape}"
            )
        if min(self.W.shape) < 1:
            raise ValueError(f"W has an empty axis: shape {self.W.shape}")
        if self.b.shape != (self.W.shape[3],):
            raise ValueError(f"b must have shape ({self.W.shape[3]},), got {self.b.shape}")
        if self.b.dtype != self.W.dtype:
            raise ValueError(f"b has dtype {self.b.dtype} but W has dtype {self.W.dtype}")

    @property
    def kernel_size(self) -> Pair:
        return (int(self.W.shape[0]), int(self.W.shape[1]))

    @property
    def in_channels(self) -> int:
        return int(self.W.shape[2])

    @property
    def out_channels(self) -> int:
        return int(self.W.shape[3])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return output_shape(
            input_shape,
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
        )

    def working_size(self, input_shape: tuple[int, ...]) -> int:
        """Elements a forward pass holds per sample of ``input_shape``: the im2col
        matrix (oh*ow rows of kh*kw*in_channels + 1), the pre-activation and the output
        (the arrays the cache keeps); what ``fnn.predict`` sizes its chunks by."""
        oh, ow, c_out = self.output_shape(input_shape)
        kh, kw = self.kernel_size
        return oh * ow * (kh * kw * self.in_channels + 1) + 2 * oh * ow * c_out

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, Conv2DCache]:
        """``a = f(conv(X, W) + b)`` for ``X`` (n, h, w, in_channels); ``a`` (n, oh, ow,
        out_channels). The im2col matrix is kept for the backward pass."""
        h, w = X.shape[1], X.shape[2]
        dt = self.W.dtype
        pads, _ = _geometry(self.padding, (h, w), self.kernel_size, self.stride)
        shapes = conv2d_workspace_shapes(X.shape, self.W.shape, self.stride, pads, dtype=dt)
        z, cols = conv2d_forward(
            X,
            self.W,
            self.b,
            self.stride,
            pads,
            out=ws.empty("z", shapes.out, dt),
            work=ws.empty("cols", shapes.cols, dt),
        )
        act = self.activation
        a = act(z, out=z if act.in_place else ws.empty("a", z.shape, dt))
        return a, Conv2DCache(cols=cols, z=z, a=a, x_shape=tuple(X.shape), pads=pads)

    def backward_into(
        self,
        cache: Conv2DCache,
        d_out: FloatArray,
        grads: Conv2D,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """``dz = d_out * f'(z)``; ``[dW; db] = cols^T dz``; ``d_in`` by col2im of ``dz W^T``."""
        dt = self.W.dtype
        dz = self.activation.vjp(cache.z, cache.a, d_out, out=ws.empty("dz", d_out.shape, dt))
        shapes = conv2d_workspace_shapes(
            cache.x_shape, self.W.shape, self.stride, cache.pads, dtype=dt
        )
        _, _, d_in = conv2d_backward(
            cache.cols,
            self.W,
            dz,
            self.stride,
            cache.pads,
            cache.x_shape,
            need_d_in=need_d_in,
            dW_out=grads.W,
            db_out=grads.b,
            d_in_out=ws.empty("d_in", shapes.d_in, dt) if need_d_in else None,
            work=ws.empty("d_cols", shapes.d_cols, dt) if need_d_in else None,
        )
        return d_in

    def input_gradient_into(
        self, cache: Conv2DCache, d_out: FloatArray, ctx: Context, ws: Workspace
    ) -> FloatArray:
        """``d_in`` (n, h, w, in_channels) alone, for ``d_out`` (n, oh, ow,
        out_channels): :meth:`backward_into`'s input gradient, the same bits, without
        the parameter gradients (a training step that reads none of them:
        :func:`fnn.network.gradient_skip`)."""
        dt = self.W.dtype
        dz = self.activation.vjp(cache.z, cache.a, d_out, out=ws.empty("dz", d_out.shape, dt))
        shapes = conv2d_workspace_shapes(
            cache.x_shape, self.W.shape, self.stride, cache.pads, dtype=dt
        )
        return conv2d_input_gradient(
            self.W,
            dz.reshape(-1, self.out_channels),
            self.stride,
            cache.pads,
            cache.x_shape,
            ws.empty("d_in", shapes.d_in, dt),
            ws.empty("d_cols", shapes.d_cols, dt),
        )

    def config(self) -> dict[str, object]:
        pad = self.padding
        return {
            "kind": "conv2d",
            "kernel_size": list(self.kernel_size),
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "stride": list(self.stride),
            "padding": pad if isinstance(pad, str) else [list(p) for p in pad],  # type: ignore[union-attr, arg-type]
            "activation": self.activation.config(),
        }


@attrs.frozen(eq=False)
class Conv2DCache(LayerCache):
    """The im2col matrix ``cols`` (n*oh*ow, kh*kw*c_in + 1), the pre-activation ``z`` and
    output ``a`` (n, oh, ow, c_out; one array when the activation runs in place), the
    input's shape and the explicit padding."""

    cols: FloatArray
    z: FloatArray
    a: FloatArray
    x_shape: tuple[int, ...]
    pads: Pads2D


def init(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Pair,
    *,
    rng: np.random.Generator,
    stride: int | Pair = 1,
    padding: PaddingLike = "valid",
    activation: _activations.Activation | str = "identity",
    initializer: _initializers.Initializer | str = "he_normal",
    dtype: Any = np.float64,
) -> Conv2D:
    """A new convolution: ``W`` (kh, kw, in_channels, out_channels) drawn by
    ``initializer`` with fan-in ``kh*kw*in_channels`` and fan-out ``out_channels``
    (PyTorch's and Keras' fan-in), ``b`` zeros."""
    kh, kw = positive_pair(kernel_size, name="kernel_size")
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    d = float_dtype(dtype)
    fan = (kh * kw * int(in_channels), int(out_channels))
    W = _initializers.get(initializer)(fan, rng=rng, dtype=d)
    return Conv2D(
        W=W.reshape(kh, kw, int(in_channels), int(out_channels)),
        b=np.zeros(int(out_channels), d),
        stride=stride,
        padding=padding,
        activation=activation,
    )


def _example(rng: np.random.Generator, dtype: np.dtype[Any]) -> tuple[Conv2D, tuple[int, ...]]:
    layer = init(
        2, 3, (3, 2), rng=rng, stride=(2, 1), padding="same", activation="tanh", dtype=dtype
    )
    return attrs.evolve(layer, b=rng.normal(size=3).astype(dtype)), (5, 4, 2)


def _conv_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    ks = cfg.get("kernel_size")
    if not isinstance(ks, list) or len(ks) != 2:
        raise ValueError(f"kernel_size must be a pair, got {ks!r}")
    kh, kw = (config_size({"k": k}, "k") for k in ks)
    cin, cout = config_size(cfg, "in_channels"), config_size(cfg, "out_channels")
    return {"W": (kh, kw, cin, cout), "b": (cout,)}


def _padding_from_config(p: Any) -> PaddingLike:
    """A manifest's ``padding``: a string or [[top, bottom], [left, right]], else
    ValueError (a malformed checkpoint, not an IndexError)."""
    if isinstance(p, str):
        return p
    if not (
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(q, list) and len(q) == 2 and all(type(v) is int for v in q) for q in p)
    ):
        raise ValueError(f"padding must be a string or a pair of pairs of ints, got {p!r}")
    return (tuple(p[0]), tuple(p[1]))


register_layer(
    "conv2d",
    Conv2D,
    build=lambda cfg, a: Conv2D(
        W=a["W"],
        b=a["b"],
        stride=tuple(cfg["stride"]),
        padding=_padding_from_config(cfg["padding"]),
        activation=cfg["activation"],
    ),
    example=_example,
    shapes=_conv_shapes,
    weights=("W",),
    create=create,
    shape=lambda s, *, out_channels, kernel_size, stride=(1, 1), padding="valid", **_: output_shape(
        s, None, out_channels, kernel_size, stride, padding
    ),
)
