"""2-D convolution kernels (channels-last cross-correlation, as every framework computes),
and the padding and pair helpers that pooling shares. The layer is
:class:`fnn.layers.conv2d.Conv2D`.

Shapes: input ``x`` (n, h, w, c_in), weights ``W`` (kh, kw, c_in, c_out), bias ``b``
(c_out,), output ``y`` (n, oh, ow, c_out), stride (sh, sw) and explicit padding
((top, bottom), (left, right)) of zeros. With ``xp`` the padded input,

    y[n, r, c, o] = b[o] + sum_{i, j, k} xp[n, r*sh + i, c*sw + j, k] * W[i, j, k, o].

**im2col.** The windows are copied into a matrix ``cols`` of shape (n*oh*ow, kh*kw*c_in + 1):
row ``(n, r, c)`` holds the window under output pixel ``(n, r, c)`` in (i, j, k) order,
the order of ``W``'s first three axes, followed by a column of ones. The convolution is
then one BLAS product with the bias folded in as the last row of the weight matrix,

    y = cols @ [W.reshape(kh*kw*c_in, c_out); b],

and the backward pass is two more products,

    [dW; db] = cols^T @ dy,        d_cols = dy @ W^T,

where ``d_cols`` (the gradient with respect to every window) is scattered back onto the
input by **col2im**: each kernel offset (i, j) adds its (n, oh, ow, c_in) slice to the
strided input positions it was read from; overlapping windows accumulate. The col2im
loops over the kh*kw offsets, not over pixels, and over batch chunks small enough that
``d_cols`` for the chunk stays in cache.

**Buffers.** Every kernel allocates fresh outputs unless it is given them (``out=``,
``work=``, ``dW_out=``, ...). A caller who passes every buffer listed by
:func:`conv2d_workspace_shapes` causes no batch-sized allocation inside (only arrays of
the size of ``W`` and NumPy's small temporaries). The kernels never write into ``x``,
``W``, ``b`` or ``d_out``. float32 in gives float32 out, float64 gives float64.
"""

from __future__ import annotations

import operator
from typing import Any, Literal, NamedTuple, TypeAlias, TypeGuard, overload

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fnn import threads
from fnn._types import FloatArray, FloatDType

__all__ = [
    "D_COLS_CHUNK_BYTES",
    "Conv2DShapes",
    "PaddingLike",
    "Pads2D",
    "Pair",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_input_gradient",
    "conv2d_workspace_shapes",
    "out_buffer",
    "padding_value",
    "positive_pair",
    "resolve_padding",
    "stride_pair",
    "to_pair",
]

Pair: TypeAlias = tuple[int, int]
"""(height, width) of a kernel, stride or image."""

Pads2D: TypeAlias = tuple[tuple[int, int], tuple[int, int]]
"""Explicit padding ((top, bottom), (left, right))."""

PaddingLike: TypeAlias = str | int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]
"""What a user may write: "valid", "same", p, (ph, pw) or ((top, bottom), (left, right))."""

D_COLS_CHUNK_BYTES = 2 << 20
"""Target size of the per-chunk ``d_cols`` buffer of the backward pass (2 MiB: it stays
in the L2/L3 cache between its product and its col2im)."""


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def to_pair(value: object, *, name: str) -> Pair:
    """``value`` (an int or a pair of ints) as a pair of Python ints.

    Raises:
        ValueError: naming ``name`` if ``value`` is not an int or a pair of ints.
    """
    if _is_int(value):
        v = operator.index(value)
        return (v, v)
    if isinstance(value, tuple | list) and len(value) == 2:
        first, second = value
        if _is_int(first) and _is_int(second):
            return (operator.index(first), operator.index(second))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def positive_pair(value: object, *, name: str, show_pair: bool = False) -> Pair:
    """``value`` (an int or a pair of ints) as a pair of positive Python ints.

    Raises:
        ValueError: from :func:`to_pair`, or "{name} must be positive, got ..." showing
            ``value`` as given (the pair it was read as, with ``show_pair``).
    """
    p = to_pair(value, name=name)
    if min(p) < 1:
        raise ValueError(f"{name} must be positive, got {p if show_pair else value!r}")
    return p


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    # Keras' "same": output ceil(size / stride); the total padding that needs, split with
    # any odd extra row (column) at the bottom (right).
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def resolve_padding(
    padding: PaddingLike,
    in_hw: Pair,
    kernel_hw: int | Pair,
    stride: int | Pair,
) -> tuple[Pads2D, Pair]:
    """Explicit padding and the output size of a convolution (or pooling) window.

    Args:
        padding: ``"valid"`` (none), ``"same"`` (Keras' rule: output ``ceil(in / stride)``,
            an odd extra row or column at the bottom or right), an int ``p`` (``p`` on
            every side), a pair ``(ph, pw)`` (``ph`` top and bottom, ``pw`` left and right)
            or ``((top, bottom), (left, right))``.
        in_hw: input (height, width).
        kernel_hw: kernel (height, width), or an int for a square kernel.
        stride: (sh, sw), or an int for both.

    Returns:
        ``(((top, bottom), (left, right)), (oh, ow))`` with
        ``oh = (h + top + bottom - kh) // sh + 1`` and likewise ``ow``.

    Raises:
        ValueError: naming the argument, for non-integer values, a non-positive stride,
            kernel or input size, negative padding, an unknown padding string, or a
            kernel larger than the padded input.
    """
    h, w = positive_pair(in_hw, name="in_hw", show_pair=True)
    kh, kw = positive_pair(kernel_hw, name="kernel_hw", show_pair=True)
    sh, sw = positive_pair(stride, name="stride", show_pair=True)
    pads: Pads2D
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            pads = (_same_pads(h, kh, sh), _same_pads(w, kw, sw))
        else:
            raise ValueError(
                f"padding must be 'valid', 'same', an int, a pair or a pair of pairs, "
                f"got {padding!r}"
            )
    elif (
        isinstance(padding, tuple | list)
        and len(padding) == 2
        and all(isinstance(p, tuple | list) for p in padding)
    ):
        pads = (
            to_pair(padding[0], name="padding[0]"),
            to_pair(padding[1], name="padding[1]"),
        )
    else:
        try:
            ph, pw = to_pair(padding, name="padding")
        except ValueError:
            raise ValueError(
                f"padding must be 'valid', 'same', an int, a pair or a pair of pairs, "
                f"got {padding!r}"
            ) from None
        pads = ((ph, ph), (pw, pw))
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"padding must be non-negative, got {pads}")
    ph_total, pw_total = h + sum(pads[0]), w + sum(pads[1])
    if kh > ph_total or kw > pw_total:
        raise ValueError(
            f"kernel_hw {(kh, kw)} is larger than the padded input {(ph_total, pw_total)} "
            f"(in_hw {(h, w)}, padding {pads})"
        )
    return pads, ((ph_total - kh) // sh + 1, (pw_total - kw) // sw + 1)


def padding_value(value: object) -> PaddingLike:
    """``padding`` as a hashable, JSON-friendly value: a string, or a pair of pairs."""
    if isinstance(value, str):
        if value not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or pairs, got {value!r}")
        return value
    pads, _ = resolve_padding(value, (1 << 20, 1 << 20), 1, 1)  # type: ignore[arg-type]
    return pads


def stride_pair(value: object) -> Pair:
    """A convolution's or pool's ``stride`` as a positive pair (see :func:`positive_pair`)."""
    return positive_pair(value, name="stride")


class Conv2DShapes(NamedTuple):
    """Shapes of the buffers of one convolution at one batch shape (all of the input's
    float dtype, C-contiguous). A caller who allocates these and passes them (``out`` and
    ``cols`` to :func:`conv2d_forward`, the rest to :func:`conv2d_backward`) causes no
    batch-sized allocation inside the kernels."""

    out: tuple[int, int, int, int]
    """(n, oh, ow, c_out): ``conv2d_forward(out=...)``."""
    cols: tuple[int, int]
    """(n*oh*ow, kh*kw*c_in + 1), or its transpose (kh*kw + 1, n*oh*ow) when c_in == 1:
    ``conv2d_forward(work=...)``. The forward pass returns the im2col matrix as an
    (n*oh*ow, kh*kw*c_in + 1) view of this buffer; the backward pass reads it."""
    d_cols: tuple[int, int, int]
    """(kh*kw, chunk*oh*ow, c_in): ``conv2d_backward(work=...)``, the window gradients of
    one batch chunk (about :data:`D_COLS_CHUNK_BYTES`); only needed for ``d_in``."""
    d_in: tuple[int, int, int, int]
    """(n, h, w, c_in): ``conv2d_backward(d_in_out=...)``."""
    dW: tuple[int, int, int, int]
    """(kh, kw, c_in, c_out): ``conv2d_backward(dW_out=...)``."""
    db: tuple[int]
    """(c_out,): ``conv2d_backward(db_out=...)``."""


def _out_hw(x_hw: Pair, kernel_hw: Pair, stride: Pair, pads: Pads2D) -> Pair:
    oh = (x_hw[0] + pads[0][0] + pads[0][1] - kernel_hw[0]) // stride[0] + 1
    ow = (x_hw[1] + pads[1][0] + pads[1][1] - kernel_hw[1]) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(
            f"kernel {kernel_hw} is larger than the padded input of shape {x_hw} (padding {pads})"
        )
    return oh, ow


def conv2d_workspace_shapes(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Pair,
    pads: Pads2D,
    *,
    dtype: FloatDType = np.float32,
) -> Conv2DShapes:
    """The buffers a caller allocates to run the kernels with no batch-sized allocation.

    Args:
        x_shape: (n, h, w, c_in).
        w_shape: (kh, kw, c_in, c_out).
        stride: (sh, sw).
        pads: ((top, bottom), (left, right)), as from :func:`resolve_padding`.
        dtype: the float dtype of the arrays; it sets the batch chunk of ``d_cols``
            (the same chunk the kernels choose for themselves when not given ``work``).
    """
    n, h, w, c_in = x_shape
    kh, kw, _, c_out = w_shape
    oh, ow = _out_hw((h, w), (kh, kw), stride, pads)
    chunk = _chunk(n, kh * kw * oh * ow * c_in * np.dtype(dtype).itemsize)
    return Conv2DShapes(
        out=(n, oh, ow, c_out),
        cols=(kh * kw + 1, n * oh * ow)
        if _window_major(c_in)
        else (n * oh * ow, kh * kw * c_in + 1),
        d_cols=(kh * kw, chunk * oh * ow, c_in),
        d_in=(n, h, w, c_in),
        dW=(kh, kw, c_in, c_out),
        db=(c_out,),
    )


def _window_major(c_in: int) -> bool:
    """Whether ``cols`` is stored transposed, (k + 1, n*oh*ow) in memory: for one input
    channel, where each kernel offset's column is then one contiguous row (filled by
    long copies), and BLAS reads the transpose at the same speed."""
    return c_in == 1


def _chunk(n: int, bytes_per_sample: int) -> int:
    """Samples per col2im chunk: as many as fit in D_COLS_CHUNK_BYTES, at least 1."""
    return max(1, min(n, D_COLS_CHUNK_BYTES // max(bytes_per_sample, 1)))


def out_buffer(
    given: np.ndarray[Any, Any] | None,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    name: str,
    *,
    contiguous: bool = True,
) -> np.ndarray[Any, Any]:
    """``given`` checked to be a writeable ``shape`` ``dtype`` array (C-contiguous too if
    ``contiguous``), or a fresh one: the ``out=`` and ``work=`` buffers of the kernels."""
    if given is None:
        return np.empty(shape, dtype)
    scattered = contiguous and not given.flags.c_contiguous
    if given.shape != shape or given.dtype != dtype or scattered:
        raise ValueError(
            f"{name} must be a {'C-contiguous ' if contiguous else ''}{dtype} array of shape "
            f"{shape}, got {given.dtype} {given.shape}"
            + (" (not C-contiguous)" if scattered else "")
        )
    if not given.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return given


def _check_float(name: str, a: FloatArray, dtype: np.dtype[Any] | None = None) -> None:
    if dtype is None:
        if a.dtype != np.float32 and a.dtype != np.float64:
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    elif a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} like x, got {a.dtype}")


def _valid(lo: int, hi: int, offset: int, pad: int, stride: int, size: int) -> tuple[int, int]:
    """The output indices ``o`` in [lo, hi) whose input index ``o*stride + offset - pad``
    lies inside [0, size), as a range [a, b) (empty when a == b)."""
    a = max(lo, -((offset - pad) // stride))  # ceil((pad - offset) / stride)
    b = min(hi, (size - 1 + pad - offset) // stride + 1)
    return a, max(a, b)


def _im2col_offsets(
    x: FloatArray,
    c6: FloatArray,
    rows: Pair,
    cols: Pair,
    stride: Pair,
    pads: Pads2D,
) -> None:
    """Fill ``c6[:, r0:r1, c0:c1]`` (c6: (n, oh, ow, kh, kw, c_in)) one kernel offset at a
    time: the strided input slice the offset reads, zeros where it reads padding."""
    _, h, w, _ = x.shape
    _, _, _, kh, kw, _ = c6.shape
    (sh, sw), ((pt, _), (pl, _)) = stride, pads
    r0, r1 = rows
    q0, q1 = cols
    if r0 >= r1 or q0 >= q1:
        return
    for i in range(kh):
        ra, rb = _valid(r0, r1, i, pt, sh, h)
        for j in range(kw):
            qa, qb = _valid(q0, q1, j, pl, sw, w)
            dst = c6[:, :, :, i, j, :]
            if ra > r0:
                dst[:, r0:ra, q0:q1] = 0
            if rb < r1:
                dst[:, rb:r1, q0:q1] = 0
            if qa > q0:
                dst[:, ra:rb, q0:qa] = 0
            if qb < q1:
                dst[:, ra:rb, qb:q1] = 0
            if ra < rb and qa < qb:
                xa, xb = ra * sh + i - pt, (rb - 1) * sh + i - pt + 1
                ya, yb = qa * sw + j - pl, (qb - 1) * sw + j - pl + 1
                dst[:, ra:rb, qa:qb] = x[:, xa:xb:sh, ya:yb:sw]


def _im2col(x: FloatArray, cols: FloatArray, kernel_hw: Pair, stride: Pair, pads: Pads2D) -> None:
    """Write the windows of ``x`` (n, h, w, c_in) into ``cols[:, :K]`` (n*oh*ow, K + 1)."""
    n, h, w, c_in = x.shape
    kh, kw = kernel_hw
    oh, ow = _out_hw((h, w), kernel_hw, stride, pads)
    c6 = cols[:, : kh * kw * c_in].reshape(n, oh, ow, kh, kw, c_in)  # a view
    # Samples are independent: ranges of them are filled on fnn's threads.
    threads.parallel_rows(
        n,
        c6.nbytes,
        lambda lo, hi: _im2col_part(x[lo:hi], c6[lo:hi], (kh, kw), stride, pads, (oh, ow)),
    )


def _im2col_part(
    x: FloatArray, c6: FloatArray, kernel_hw: Pair, stride: Pair, pads: Pads2D, out_hw: Pair
) -> None:
    """Fill ``c6`` (n, oh, ow, kh, kw, c_in) with the windows of ``x`` (n, h, w, c_in)."""
    n, h, w, c_in = x.shape
    kh, kw = kernel_hw
    (sh, sw), ((pt, _), (pl, _)) = stride, pads
    oh, ow = out_hw
    if _window_major(c_in):
        # One strided copy per kernel offset into a contiguous row of cols^T: inner loops
        # run along a row of ``ow`` pixels (a window's (kw, c_in) run would be only kw
        # elements long).
        _im2col_offsets(x, c6, (0, oh), (0, ow), stride, pads)
        return
    # The output pixels whose windows lie inside the input ("interior") are copied in one
    # go from a 6-D strided view of x, whose inner loop is a window row of kw*c_in
    # contiguous elements; the frame of pixels whose windows overlap padding is filled one
    # kernel offset at a time.
    r0 = min(-(-pt // sh), oh)  # first row whose window starts inside: r*sh >= pt
    r1 = max(min((h - kh + pt) // sh + 1, oh), r0)  # past the last: r*sh + kh <= h + pt
    q0 = min(-(-pl // sw), ow)
    q1 = max(min((w - kw + pl) // sw + 1, ow), q0)
    if r0 < r1 and q0 < q1:
        s0, s1, s2, s3 = x.strides
        x0 = x[:, r0 * sh - pt :, q0 * sw - pl :]
        windows = as_strided(
            x0,
            shape=(n, r1 - r0, q1 - q0, kh, kw, c_in),
            strides=(s0, s1 * sh, s2 * sw, s1, s2, s3),
            writeable=False,
        )
        np.copyto(c6[:, r0:r1, q0:q1], windows)
    _im2col_offsets(x, c6, (0, r0), (0, ow), stride, pads)  # top band
    _im2col_offsets(x, c6, (r1, oh), (0, ow), stride, pads)  # bottom band
    _im2col_offsets(x, c6, (r0, r1), (0, q0), stride, pads)  # left band
    _im2col_offsets(x, c6, (r0, r1), (q1, ow), stride, pads)  # right band


def conv2d_forward(
    x: FloatArray,
    W: FloatArray,
    b: FloatArray,
    stride: Pair,
    pads: Pads2D,
    *,
    out: FloatArray | None = None,
    work: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Cross-correlation of ``x`` with ``W`` plus ``b``, and the im2col matrix.

    Args:
        x: input, shape (n, h, w, c_in), float32 or float64; any strides.
        W: weights, shape (kh, kw, c_in, c_out), ``x``'s dtype.
        b: bias, shape (c_out,), ``x``'s dtype.
        stride: (sh, sw), positive.
        pads: ((top, bottom), (left, right)) zeros around the input, as from
            :func:`resolve_padding`.
        out: optional C-contiguous buffer of shape (n, oh, ow, c_out) for the output.
        work: optional C-contiguous buffer of shape (n*oh*ow, kh*kw*c_in + 1), or its
            transpose when c_in == 1, for the im2col matrix (the ``cols`` of
            :func:`conv2d_workspace_shapes`).

    Returns:
        ``(y, cols)``: ``y`` (n, oh, ow, c_out) (``out`` when given) and ``cols``
        (n*oh*ow, kh*kw*c_in + 1), the windows of the padded input in (i, j, k) order and
        a last column of ones (a view of ``work`` when given), which
        :func:`conv2d_backward` needs.
    """
    _check_float("x", x)
    _check_float("W", W, x.dtype)
    _check_float("b", b, x.dtype)
    if x.ndim != 4 or W.ndim != 4 or W.shape[2] != x.shape[3] or b.shape != (W.shape[3],):
        raise ValueError(
            f"expected x (n, h, w, c_in), W (kh, kw, c_in, c_out), b (c_out,); got x "
            f"{x.shape}, W {W.shape}, b {b.shape}"
        )
    n, h, w, c_in = x.shape
    kh, kw, _, c_out = W.shape
    oh, ow = _out_hw((h, w), (kh, kw), stride, pads)
    k = kh * kw * c_in
    y = out_buffer(out, (n, oh, ow, c_out), x.dtype, "out")
    m = n * oh * ow
    if _window_major(c_in):
        cols = out_buffer(work, (k + 1, m), x.dtype, "work").T  # (m, k + 1), a view
    else:
        cols = out_buffer(work, (m, k + 1), x.dtype, "work")
    _im2col(x, cols, (kh, kw), stride, pads)
    cols[:, k] = 1  # the bias column
    # [W; b] is (k + 1, c_out): the size of W, a temporary.
    wb = np.empty((k + 1, c_out), x.dtype)
    wb[:k] = W.reshape(k, c_out)
    wb[k] = b
    np.matmul(cols, wb, out=y.reshape(n * oh * ow, c_out))  # a view of y: BLAS writes y
    return y, cols


@overload
def conv2d_backward(
    cols: FloatArray,
    W: FloatArray,
    d_out: FloatArray,
    stride: Pair,
    pads: Pads2D,
    x_shape: tuple[int, ...],
    *,
    need_d_in: Literal[True] = ...,
    dW_out: FloatArray | None = ...,
    db_out: FloatArray | None = ...,
    d_in_out: FloatArray | None = ...,
    work: FloatArray | None = ...,
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def conv2d_backward(
    cols: FloatArray,
    W: FloatArray,
    d_out: FloatArray,
    stride: Pair,
    pads: Pads2D,
    x_shape: tuple[int, ...],
    *,
    need_d_in: Literal[False],
    dW_out: FloatArray | None = ...,
    db_out: FloatArray | None = ...,
    d_in_out: None = ...,
    work: None = ...,
) -> tuple[FloatArray, FloatArray, None]: ...
@overload
def conv2d_backward(
    cols: FloatArray,
    W: FloatArray,
    d_out: FloatArray,
    stride: Pair,
    pads: Pads2D,
    x_shape: tuple[int, ...],
    *,
    need_d_in: bool,
    dW_out: FloatArray | None = ...,
    db_out: FloatArray | None = ...,
    d_in_out: FloatArray | None = ...,
    work: FloatArray | None = ...,
) -> tuple[FloatArray, FloatArray, FloatArray | None]: ...
def conv2d_backward(
    cols: FloatArray,
    W: FloatArray,
    d_out: FloatArray,
    stride: Pair,
    pads: Pads2D,
    x_shape: tuple[int, ...],
    *,
    need_d_in: bool = True,
    dW_out: FloatArray | None = None,
    db_out: FloatArray | None = None,
    d_in_out: FloatArray | None = None,
    work: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Gradients of a convolution with respect to ``W``, ``b`` and (optionally) ``x``.

    Args:
        cols: the im2col matrix :func:`conv2d_forward` returned, (n*oh*ow, kh*kw*c_in + 1).
        W: weights, shape (kh, kw, c_in, c_out).
        d_out: gradient with respect to the output, shape (n, oh, ow, c_out); C-contiguous
            for no batch-sized copy.
        stride: as given to the forward pass.
        pads: as given to the forward pass.
        x_shape: the input's shape (n, h, w, c_in).
        need_d_in: compute the input gradient (not needed for a network's first layer).
        dW_out: optional buffer (kh, kw, c_in, c_out) for ``dW``.
        db_out: optional buffer (c_out,) for ``db``.
        d_in_out: optional C-contiguous buffer (n, h, w, c_in) for ``d_in``.
        work: optional C-contiguous buffer (kh*kw, chunk*oh*ow, c_in), any chunk >= 1, for
            the window gradients of a batch chunk (see :func:`conv2d_workspace_shapes`).

    Returns:
        ``(dW, db, d_in)``: dW (kh, kw, c_in, c_out), db (c_out,) and d_in (n, h, w, c_in),
        or None when ``need_d_in`` is false.
    """
    _check_float("cols", cols)
    dtype = cols.dtype
    _check_float("W", W, dtype)
    _check_float("d_out", d_out, dtype)
    n, h, w, c_in = x_shape
    kh, kw, _, c_out = W.shape
    oh, ow = _out_hw((h, w), (kh, kw), stride, pads)
    k = kh * kw * c_in
    m = n * oh * ow
    if W.shape[2] != c_in or cols.shape != (m, k + 1) or d_out.shape != (n, oh, ow, c_out):
        raise ValueError(
            f"expected cols {(m, k + 1)}, W (kh, kw, {c_in}, c_out), d_out "
            f"{(n, oh, ow, c_out)}; got cols {cols.shape}, W {W.shape}, d_out {d_out.shape}"
        )
    dW = out_buffer(dW_out, (kh, kw, c_in, c_out), dtype, "dW_out") if dW_out is not None else None
    db = out_buffer(db_out, (c_out,), dtype, "db_out") if db_out is not None else None
    d2 = d_out.reshape(m, c_out)
    # [dW; db] = cols^T dy in one product: the ones column sums dy over the batch and pixels.
    dwb = np.matmul(cols.T, d2)  # (k + 1, c_out): the size of W
    if dW is None:
        dW = dwb[:k].reshape(kh, kw, c_in, c_out)
    else:
        dW.reshape(k, c_out)[...] = dwb[:k]
    if db is None:
        db = dwb[k]
    else:
        db[...] = dwb[k]
    if not need_d_in:
        if d_in_out is not None or work is not None:
            raise ValueError("d_in_out and work are only used when need_d_in is true")
        return dW, db, None
    return dW, db, conv2d_input_gradient(W, d2, stride, pads, x_shape, d_in_out, work)


def conv2d_input_gradient(
    W: FloatArray,
    d2: FloatArray,
    stride: Pair,
    pads: Pads2D,
    x_shape: tuple[int, ...],
    d_in_out: FloatArray | None,
    work: FloatArray | None,
) -> FloatArray:
    """The input gradient alone: ``d_in`` (n, h, w, c_in) from the output gradient
    ``d2`` (n*oh*ow, c_out), checked by the caller, as col2im of ``d2 W^T`` (what a
    frozen convolution computes; see :func:`conv2d_backward` for the buffers ``d_in_out``
    (n, h, w, c_in) and ``work`` (the chunk's ``d_cols``))."""
    dtype = d2.dtype
    n, h, w, c_in = x_shape
    kh, kw, _, c_out = W.shape
    oh, ow = _out_hw((h, w), (kh, kw), stride, pads)
    d_in = out_buffer(d_in_out, (n, h, w, c_in), dtype, "d_in_out")
    p = oh * ow
    if work is None:
        chunk = _chunk(n, kh * kw * p * c_in * dtype.itemsize)
        buf = np.empty((kh * kw, chunk * p, c_in), dtype)
    else:
        if (
            work.dtype != dtype
            or work.ndim != 3
            or work.shape[0] != kh * kw
            or work.shape[2] != c_in
            or work.shape[1] % p
            or work.shape[1] == 0
            or not work.flags.c_contiguous
        ):
            raise ValueError(
                f"work must be a C-contiguous {dtype} array of shape ({kh * kw}, "
                f"chunk*{p}, {c_in}) for a chunk >= 1, got {work.dtype} {work.shape}"
            )
        buf, chunk = work, work.shape[1] // p
    # W as kh*kw matrices (c_out, c_in): d_cols for offset (i, j) is dy @ W[i, j]^T, so the
    # stacked product writes each offset's window gradients as one contiguous (rows, c_in)
    # block, which col2im adds with long inner loops.
    w_t = W.reshape(kh * kw, c_in, c_out).transpose(0, 2, 1)
    (sh, sw), ((pt, _), (pl, _)) = stride, pads
    for s in range(0, n, chunk):
        nc = min(chunk, n - s)
        dc = buf[:, : nc * p]
        np.matmul(d2[s * p : (s + nc) * p], w_t, out=dc)
        dc6 = dc.reshape(kh, kw, nc, oh, ow, c_in)
        dx = d_in[s : s + nc]

        def col2im(lo: int, hi: int, dx: FloatArray = dx, dc6: FloatArray = dc6) -> None:
            # Samples lo:hi of the chunk. Offset (i, j) read input pixel (r*sh + i - pt,
            # q*sw + j - pl) for output pixel (r, q); add its gradients there (clipped to
            # the unpadded input), offsets always in the same order.
            part = dx[lo:hi]
            part[...] = 0  # (here, not before the loop: the chunk is in cache for its adds)
            for i in range(kh):
                ra, rb = _valid(0, oh, i, pt, sh, h)
                if ra == rb:
                    continue
                xa, xb = ra * sh + i - pt, (rb - 1) * sh + i - pt + 1
                for j in range(kw):
                    qa, qb = _valid(0, ow, j, pl, sw, w)
                    if qa == qb:
                        continue
                    ya, yb = qa * sw + j - pl, (qb - 1) * sw + j - pl + 1
                    target = part[:, xa:xb:sh, ya:yb:sw]
                    np.add(target, dc6[i, j, lo:hi, ra:rb, qa:qb], out=target)

        threads.parallel_rows(nc, dc.nbytes, col2im)
    return d_in


# --- the layer ------------------------------------------------------------------------
