"""2-D pooling kernels on channels-last input (n, h, w, c): max, average, global average.

Windows of (wh, ww) pixels move by (sh, sw) without padding; the output has the floor
size ``oh = (h - wh) // sh + 1``, ``ow = (w - ww) // sw + 1``, and input rows or columns
past the last window get no gradient. Every kernel works one window offset (i, j) at a
time on the strided view ``x[:, i::sh, j::sw]`` cut to (n, oh, ow, c), so a 2x2 pool is
four whole-array operations, not a loop over windows.

**Max pooling** keeps, for each output, the index ``k = i*ww + j`` of the first maximum of
its window in row-major order (PyTorch's rule for ties); the backward pass sends each
output's gradient to that one input. **Average pooling** divides each window's sum by
wh*ww; its gradient spreads each output's gradient evenly over its window. Where windows
overlap (stride < window) gradients accumulate.

**Buffers.** Every kernel allocates fresh outputs unless given them (``out=``,
``argmax_out=``, ``d_in_out=``, ``work=``); a caller who passes the buffers named in the
docstrings causes no batch-sized allocation inside. Nothing is written into the inputs.
float32 in gives float32 out, float64 gives float64.

NaN inputs propagate to the max-pool output, but which window position then receives the
gradient is unspecified; a non-finite ``d_out`` spreads NaN through its window.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs
import numpy as np

from fnn import threads
from fnn._types import FloatArray, IntArray
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, register_layer
from fnn.layers.conv2d_kernels import Pair, out_buffer, positive_pair, stride_pair, to_pair
from fnn.tree import STATIC_META

__all__ = [
    "CHUNK_BYTES",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "MaxPool2D",
    "MaxPool2DCache",
    "MaxPool2DShapes",
    "ShapeCache",
    "argmax_dtype",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_workspace_shapes",
    "pool2d_output_hw",
    "pool_output_shape",
    "stride_or_none",
    "window_pair",
]


CHUNK_BYTES = 1 << 20
"""Max pooling works through the batch in chunks of about this much input (1 MiB)."""


def pool2d_output_hw(in_hw: Pair, window: int | Pair, stride: int | Pair) -> Pair:
    """(oh, ow) of a pooling window over an input of (h, w) pixels (floor, no padding).

    Raises:
        ValueError: naming the argument, for non-integer or non-positive values or a
            window larger than the input.
    """
    h, w = to_pair(in_hw, name="in_hw")
    wh, ww = positive_pair(window, name="window", show_pair=True)
    sh, sw = positive_pair(stride, name="stride", show_pair=True)
    if wh > h or ww > w:
        raise ValueError(f"window {(wh, ww)} is larger than the input {(h, w)}")
    return (h - wh) // sh + 1, (w - ww) // sw + 1


def argmax_dtype(window: int | Pair) -> np.dtype[Any]:
    """The unsigned integer dtype of max pooling's window indices (uint8 up to 256 window
    positions)."""
    wh, ww = to_pair(window, name="window")
    return np.dtype(np.min_scalar_type(max(wh * ww - 1, 0)))


class MaxPool2DShapes(NamedTuple):
    """Buffers of one max pooling at one batch shape: a caller who allocates them and
    passes them causes no batch-sized allocation inside the kernels."""

    out: tuple[int, int, int, int]
    """(n, oh, ow, c) of x's dtype: ``max_pool2d_forward(out=...)``."""
    argmax: tuple[int, int, int, int]
    """(n, oh, ow, c) of :func:`argmax_dtype`: ``max_pool2d_forward(argmax_out=...)`` and
    ``max_pool2d_forward(work=...)`` (two buffers of this shape)."""
    d_in: tuple[int, int, int, int]
    """(n, h, w, c) of x's dtype: ``max_pool2d_backward(d_in_out=...)``."""
    d_work: tuple[int, int, int, int]
    """(n, oh, ow, c) of x's dtype: ``max_pool2d_backward(work=...)``."""


def max_pool2d_workspace_shapes(
    x_shape: tuple[int, ...], window: int | Pair, stride: int | Pair
) -> MaxPool2DShapes:
    """Shapes of the buffers of :func:`max_pool2d_forward` and :func:`max_pool2d_backward`
    for input of shape ``x_shape`` (n, h, w, c)."""
    n, h, w, c = x_shape
    oh, ow = pool2d_output_hw((h, w), window, stride)
    o = (n, oh, ow, c)
    return MaxPool2DShapes(out=o, argmax=o, d_in=(n, h, w, c), d_work=o)


def _check_x(x: FloatArray, name: str = "x") -> None:
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (n, h, w, c), got {x.shape}")


def _views(a: np.ndarray[Any, Any], window: Pair, stride: Pair, out_hw: Pair) -> list[Any]:
    """The (n, oh, ow, c) strided views of ``a`` (n, h, w, c) at each window offset, in
    row-major offset order ``k = i*ww + j``."""
    (wh, ww), (sh, sw), (oh, ow) = window, stride, out_hw
    return [
        a[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
        for i in range(wh)
        for j in range(ww)
    ]


def _clear_uncovered(d_in: FloatArray, window: Pair, stride: Pair, out_hw: Pair) -> None:
    """Zero the rows and columns of ``d_in`` no window reads (floor output size), when the
    windows tile the rest exactly (stride == window)."""
    rows, cols = stride[0] * out_hw[0], stride[1] * out_hw[1]
    d_in[:, rows:] = 0
    d_in[:, :rows, cols:] = 0


def max_pool2d_forward(
    x: FloatArray,
    window: int | Pair,
    stride: int | Pair,
    *,
    out: FloatArray | None = None,
    argmax_out: IntArray | None = None,
    work: IntArray | None = None,
) -> tuple[FloatArray, IntArray]:
    """Maximum of each window, and where it is.

    Args:
        x: input, shape (n, h, w, c), float32 or float64.
        window: (wh, ww) or an int.
        stride: (sh, sw) or an int (the layer defaults it to the window).
        out: optional buffer (n, oh, ow, c) of x's dtype for the output.
        argmax_out: optional buffer (n, oh, ow, c) of :func:`argmax_dtype` for the indices.
        work: optional scratch buffer (n, oh, ow, c) of :func:`argmax_dtype`.

    Returns:
        ``(y, argmax)``: y (n, oh, ow, c), and argmax (n, oh, ow, c), the row-major index
        ``i*ww + j`` within its window of the first maximum, which the backward pass needs.
    """
    _check_x(x)
    win, st = to_pair(window, name="window"), to_pair(stride, name="stride")
    n, h, w, c = x.shape
    oh, ow = pool2d_output_hw((h, w), win, st)
    idt = argmax_dtype(win)
    y: FloatArray = out_buffer(out, (n, oh, ow, c), x.dtype, "out", contiguous=False)
    idx: IntArray = out_buffer(argmax_out, (n, oh, ow, c), idt, "argmax_out", contiguous=False)
    greater: IntArray = out_buffer(work, (n, oh, ow, c), idt, "work", contiguous=False)
    # Batch chunks of about CHUNK_BYTES of input: the output, indices and mask of a chunk
    # stay in cache across its window offsets.
    # The chunks (a number set by the sizes alone) run on fnn's threads.
    chunk = max(1, CHUNK_BYTES // max(1, h * w * c * x.itemsize))

    def part(t: int) -> None:
        s = t * chunk
        e = min(n, s + chunk)
        views = _views(x[s:e], win, st, (oh, ow))
        yc, ic, gc = y[s:e], idx[s:e], greater[s:e]
        np.copyto(yc, views[0])
        ic[...] = 0
        for k in range(1, len(views)):
            # Offsets come in increasing k, so "idx = k where x_k > y" is the running
            # maximum of idx and k * (x_k > y); strict ">" keeps the first of equal maxima.
            np.greater(views[k], yc, out=gc)
            np.multiply(gc, k, out=gc)
            np.maximum(ic, gc, out=ic)
            np.maximum(yc, views[k], out=yc)

    threads.parallel_for(-(-n // chunk), part)
    return y, idx


def _max_only(x: FloatArray, window: Pair, stride: Pair, y: FloatArray) -> FloatArray:
    """Each window's maximum of ``x`` (n, h, w, c) into ``y`` (n, oh, ow, c): the ``y``
    of :func:`max_pool2d_forward` (a maximum is exact), without the argmax passes."""
    n, h, w, c = x.shape
    oh, ow = y.shape[1:3]
    chunk = max(1, CHUNK_BYTES // max(1, h * w * c * x.itemsize))

    def part(t: int) -> None:
        s, e = t * chunk, min(n, (t + 1) * chunk)
        views = _views(x[s:e], window, stride, (oh, ow))
        yc = y[s:e]
        np.copyto(yc, views[0])
        for k in range(1, len(views)):
            np.maximum(yc, views[k], out=yc)

    threads.parallel_for(-(-n // chunk), part)
    return y


def max_pool2d_backward(
    argmax: IntArray,
    d_out: FloatArray,
    window: int | Pair,
    stride: int | Pair,
    x_shape: tuple[int, ...],
    *,
    d_in_out: FloatArray | None = None,
    work: FloatArray | None = None,
) -> FloatArray:
    """Gradient of max pooling: each output's gradient goes to its window's first maximum.

    Args:
        argmax: the indices :func:`max_pool2d_forward` returned, (n, oh, ow, c).
        d_out: gradient with respect to the output, (n, oh, ow, c).
        window: as given to the forward pass.
        stride: as given to the forward pass.
        x_shape: the input's shape (n, h, w, c).
        d_in_out: optional buffer (n, h, w, c) of d_out's dtype for the result.
        work: optional scratch buffer (n, oh, ow, c) of d_out's dtype.

    Returns:
        d_in, shape (n, h, w, c).
    """
    _check_x(d_out, "d_out")
    win, st = to_pair(window, name="window"), to_pair(stride, name="stride")
    n, h, w, c = x_shape
    oh, ow = pool2d_output_hw((h, w), win, st)
    if d_out.shape != (n, oh, ow, c) or argmax.shape != (n, oh, ow, c):
        raise ValueError(
            f"expected d_out and argmax of shape {(n, oh, ow, c)}, got {d_out.shape} and "
            f"{argmax.shape}"
        )
    d_in: FloatArray = out_buffer(d_in_out, (n, h, w, c), d_out.dtype, "d_in_out", contiguous=False)
    mask: FloatArray = out_buffer(work, (n, oh, ow, c), d_out.dtype, "work", contiguous=False)
    tiled = st == win
    if tiled and not mask.flags.c_contiguous:
        mask = np.empty(mask.shape, mask.dtype)
    # The mask is boolean when windows tile (a quarter or an eighth of ``work``'s bytes):
    # float times bool runs faster than float times float here.
    is_k = mask.reshape(-1).view(np.bool_)[: mask.size].reshape(mask.shape) if tiled else mask

    def rows(lo: int, hi: int) -> None:
        views = _views(d_in[lo:hi], win, st, (oh, ow))
        am, g, mk = argmax[lo:hi], d_out[lo:hi], is_k[lo:hi]
        if tiled:
            # Windows tile the input: every covered input is in exactly one window, so
            # each offset's view is written once, with d_out where it held the maximum,
            # else 0.
            for k, view in enumerate(views):
                np.equal(am, k, out=mk)
                np.multiply(g, mk, out=view)
            _clear_uncovered(d_in[lo:hi], win, st, (oh, ow))
        else:
            d_in[lo:hi] = 0
            for k, view in enumerate(views):
                np.equal(am, k, out=mk)
                np.multiply(g, mk, out=mk)
                np.add(view, mk, out=view)  # overlapping windows accumulate

    threads.parallel_rows(n, d_in.nbytes, rows)
    return d_in


def avg_pool2d_forward(
    x: FloatArray,
    window: int | Pair,
    stride: int | Pair,
    *,
    out: FloatArray | None = None,
) -> FloatArray:
    """Mean of each window.

    Args:
        x: input, shape (n, h, w, c), float32 or float64.
        window: (wh, ww) or an int.
        stride: (sh, sw) or an int.
        out: optional buffer (n, oh, ow, c) of x's dtype for the output.

    Returns:
        y, shape (n, oh, ow, c): the sum of each window divided by wh*ww.
    """
    _check_x(x)
    win, st = to_pair(window, name="window"), to_pair(stride, name="stride")
    n, h, w, c = x.shape
    oh, ow = pool2d_output_hw((h, w), win, st)
    y: FloatArray = out_buffer(out, (n, oh, ow, c), x.dtype, "out", contiguous=False)
    views = _views(x, win, st, (oh, ow))
    if len(views) == 1:
        np.copyto(y, views[0])
        return y
    np.add(views[0], views[1], out=y)
    for view in views[2:]:
        np.add(y, view, out=y)
    np.divide(y, len(views), out=y)
    return y


def avg_pool2d_backward(
    d_out: FloatArray,
    window: int | Pair,
    stride: int | Pair,
    x_shape: tuple[int, ...],
    *,
    d_in_out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of average pooling: each input gets the sum over the windows holding it of
    their gradient divided by wh*ww.

    Args:
        d_out: gradient with respect to the output, (n, oh, ow, c).
        window: as given to the forward pass.
        stride: as given to the forward pass.
        x_shape: the input's shape (n, h, w, c).
        d_in_out: optional buffer (n, h, w, c) of d_out's dtype for the result (no other
            buffer is needed).

    Returns:
        d_in, shape (n, h, w, c).
    """
    _check_x(d_out, "d_out")
    win, st = to_pair(window, name="window"), to_pair(stride, name="stride")
    n, h, w, c = x_shape
    oh, ow = pool2d_output_hw((h, w), win, st)
    if d_out.shape != (n, oh, ow, c):
        raise ValueError(f"expected d_out of shape {(n, oh, ow, c)}, got {d_out.shape}")
    d_in: FloatArray = out_buffer(d_in_out, (n, h, w, c), d_out.dtype, "d_in_out", contiguous=False)
    views = _views(d_in, win, st, (oh, ow))
    count = len(views)
    if st == win:
        for view in views:
            # (not a copy of the first view: views of one array may overlap for NumPy,
            # which would then copy through a temporary)
            np.divide(d_out, count, out=view)
        _clear_uncovered(d_in, win, st, (oh, ow))
    else:
        d_in[...] = 0
        for view in views:
            np.add(view, d_out, out=view)  # overlapping windows accumulate
        np.divide(d_in, count, out=d_in)
    return d_in


def global_avg_pool2d_forward(x: FloatArray, *, out: FloatArray | None = None) -> FloatArray:
    """Mean over all pixels of each channel.

    Args:
        x: input, shape (n, h, w, c), float32 or float64.
        out: optional buffer (n, c) of x's dtype.

    Returns:
        y, shape (n, c).
    """
    _check_x(x)
    n, h, w, c = x.shape
    y: FloatArray = out_buffer(out, (n, c), x.dtype, "out", contiguous=False)
    np.sum(x, axis=(1, 2), out=y)
    np.divide(y, h * w, out=y)
    return y


def global_avg_pool2d_backward(
    d_out: FloatArray, x_shape: tuple[int, ...], *, d_in_out: FloatArray | None = None
) -> FloatArray:
    """Gradient of the global mean: ``d_out / (h*w)`` at every pixel.

    Args:
        d_out: gradient with respect to the output, (n, c).
        x_shape: the input's shape (n, h, w, c).
        d_in_out: optional buffer (n, h, w, c) of d_out's dtype.

    Returns:
        d_in, shape (n, h, w, c).
    """
    if d_out.dtype != np.float32 and d_out.dtype != np.float64:
        raise TypeError(f"d_out must be float32 or float64, got {d_out.dtype}")
    n, h, w, c = x_shape
    if d_out.shape != (n, c):
        raise ValueError(f"expected d_out of shape {(n, c)}, got {d_out.shape}")
    d_in: FloatArray = out_buffer(d_in_out, (n, h, w, c), d_out.dtype, "d_in_out", contiguous=False)
    np.divide(d_out[:, None, None, :], h * w, out=d_in)
    return d_in


# --- the layers -----------------------------------------------------------------------


def window_pair(value: object) -> Pair:
    """A pool's ``window`` as a positive pair (see :func:`~fnn.layers.conv2d.positive_pair`)."""
    return positive_pair(value, name="window")


def stride_or_none(value: object) -> Pair | None:
    """A pool's ``stride``: None (the window), or a positive pair."""
    return None if value is None else stride_pair(value)


def _image_shape(layer: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(
            f"{{layer}} ({layer}) expects images of shape (height, width, channels), got "
            f"samples of shape {tuple(input_shape)}"
        )
    h, w, c = input_shape
    return h, w, c


def pool_output_shape(
    name: str, input_shape: tuple[int, ...], window: Pair, strides: Pair
) -> tuple[int, ...]:
    """The per-sample output shape (oh, ow, c) of pool ``name`` (``"MaxPool2D"``) with
    ``window`` and ``strides`` on images ``input_shape`` (h, w, c); ValueError (naming
    the layer as ``{layer}``) when they do not fit."""
    h, w, c = _image_shape(name, input_shape)
    try:
        oh, ow = pool2d_output_hw((h, w), window, strides)
    except ValueError as e:
        raise ValueError(f"{{layer}} ({name}): {e}") from None
    return (oh, ow, c)


@attrs.frozen(eq=False)
class _Pool2D(LayerBase):
    """Shared shape logic of the windowed pools: no padding, floor of the output size,
    stride defaulting to the window."""

    window: Pair = attrs.field(converter=window_pair, metadata=STATIC_META)
    stride: Pair | None = attrs.field(default=None, converter=stride_or_none, metadata=STATIC_META)

    @property
    def strides(self) -> Pair:
        return self.window if self.stride is None else self.stride

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return pool_output_shape(type(self).__name__, input_shape, self.window, self.strides)

    def _config(self, kind: str) -> dict[str, object]:
        return {
            "kind": kind,
            "window": list(self.window),
            "stride": None if self.stride is None else list(self.stride),
        }


@attrs.frozen(eq=False)
class MaxPool2D(_Pool2D):
    """Max pooling over ``window`` (wh, ww) windows, ``stride`` defaulting to the window;
    the gradient goes to the first maximum of each window in row-major order (as
    PyTorch's). No leaves."""

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, MaxPool2DCache]:
        """``X`` (n, h, w, c) -> (n, oh, ow, c): each window's maximum."""
        shapes = max_pool2d_workspace_shapes(X.shape, self.window, self.strides)
        idt = argmax_dtype(self.window)
        if not ctx.keep_cache:  # no backward pass: the maxima alone, no argmax
            y = _max_only(X, self.window, self.strides, ws.empty("out", shapes.out, X.dtype))
            return y, MaxPool2DCache(argmax=np.empty((0,), idt), x_shape=tuple(X.shape))
        y, idx = max_pool2d_forward(
            X,
            self.window,
            self.strides,
            out=ws.empty("out", shapes.out, X.dtype),
            argmax_out=ws.empty("argmax", shapes.argmax, idt),  # type: ignore[arg-type]
            work=ws.empty("greater", shapes.argmax, idt),  # type: ignore[arg-type]
        )
        return y, MaxPool2DCache(argmax=idx, x_shape=tuple(X.shape))

    def backward_into(
        self,
        cache: MaxPool2DCache,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Each output's gradient to its window's first maximum."""
        if not need_d_in:
            return None
        shapes = max_pool2d_workspace_shapes(cache.x_shape, self.window, self.strides)
        return max_pool2d_backward(
            cache.argmax,
            d_out,
            self.window,
            self.strides,
            cache.x_shape,
            d_in_out=ws.empty("d_in", shapes.d_in, d_out.dtype),
            work=ws.empty("d_work", shapes.d_work, d_out.dtype),
        )

    def config(self) -> dict[str, object]:
        return self._config("max_pool2d")


@attrs.frozen(eq=False)
class MaxPool2DCache(LayerCache):
    """Where each window's maximum is (n, oh, ow, c), and the input's shape."""

    argmax: IntArray
    x_shape: tuple[int, ...]


@attrs.frozen(eq=False)
class AvgPool2D(_Pool2D):
    """Average pooling over ``window`` windows, ``stride`` defaulting to the window. No
    leaves."""

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, ShapeCache]:
        """``X`` (n, h, w, c) -> (n, oh, ow, c): each window's mean."""
        n, h, w, c = X.shape
        oh, ow = pool2d_output_hw((h, w), self.window, self.strides)
        y = avg_pool2d_forward(
            X, self.window, self.strides, out=ws.empty("out", (n, oh, ow, c), X.dtype)
        )
        return y, ShapeCache(x_shape=tuple(X.shape))

    def backward_into(
        self,
        cache: ShapeCache,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Each window's gradient shared equally by its inputs."""
        if not need_d_in:
            return None
        return avg_pool2d_backward(
            d_out,
            self.window,
            self.strides,
            cache.x_shape,
            d_in_out=ws.empty("d_in", cache.x_shape, d_out.dtype),
        )

    def config(self) -> dict[str, object]:
        return self._config("avg_pool2d")


@attrs.frozen(eq=False)
class GlobalAvgPool2D(LayerBase):
    """The mean over all pixels of each channel: (n, h, w, c) -> (n, c). No leaves."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return _global_shape(input_shape)

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, ShapeCache]:
        """``X`` (n, h, w, c) -> (n, c)."""
        y = global_avg_pool2d_forward(X, out=ws.empty("out", (X.shape[0], X.shape[3]), X.dtype))
        return y, ShapeCache(x_shape=tuple(X.shape))

    def backward_into(
        self,
        cache: ShapeCache,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """``d_out / (h*w)`` at every pixel."""
        if not need_d_in:
            return None
        return global_avg_pool2d_backward(
            d_out, cache.x_shape, d_in_out=ws.empty("d_in", cache.x_shape, d_out.dtype)
        )

    def config(self) -> dict[str, object]:
        return {"kind": "global_avg_pool2d"}


@attrs.frozen(eq=False)
class ShapeCache(LayerCache):
    """The input's shape (n, h, w, c): all an average pool's backward pass needs."""

    x_shape: tuple[int, ...]


def _pool_build(cls: type[_Pool2D]) -> Any:
    def build(cfg: dict[str, Any], arrays: dict[str, Any]) -> _Pool2D:
        s = cfg.get("stride")
        return cls(window=tuple(cfg["window"]), stride=None if s is None else tuple(s))

    return build


def _pool_kind(name: str, cls: type[_Pool2D], example: Any) -> None:
    """Register the windowed pool ``cls``; its spec's hyper-parameters are ``window``
    and ``stride`` (None: the window), as the layer's fields."""

    def shape(s: tuple[int, ...], *, window: Pair, stride: Pair | None = None) -> tuple[int, ...]:
        return pool_output_shape(cls.__name__, s, window, window if stride is None else stride)

    def create(
        s: tuple[int, ...], *, rng: Any, dtype: Any, window: Pair, stride: Any = None
    ) -> Any:
        shape(s, window=window, stride=stride)
        return cls(window, stride)

    register_layer(
        name,
        cls,
        build=_pool_build(cls),
        example=example,
        shapes=lambda cfg: {},
        create=create,
        shape=shape,
    )


_pool_kind("max_pool2d", MaxPool2D, lambda rng, dtype: (MaxPool2D((2, 2), stride=1), (4, 5, 2)))
_pool_kind("avg_pool2d", AvgPool2D, lambda rng, dtype: (AvgPool2D((2, 3)), (4, 7, 2)))


def _global_shape(s: tuple[int, ...]) -> tuple[int, ...]:
    return (_image_shape("GlobalAvgPool2D", s)[2],)


def _global_create(s: tuple[int, ...], *, rng: Any, dtype: Any) -> GlobalAvgPool2D:
    _global_shape(s)
    return GlobalAvgPool2D()


register_layer(
    "global_avg_pool2d",
    GlobalAvgPool2D,
    build=lambda cfg, a: GlobalAvgPool2D(),
    example=lambda rng, dtype: (GlobalAvgPool2D(), (3, 2, 4)),
    shapes=lambda cfg: {},
    create=_global_create,
    shape=_global_shape,
)
