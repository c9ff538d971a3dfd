"""The convolution and pooling kernels (fnn.layers.conv2d, fnn.layers.pool2d).

In float64 their outputs and gradients equal PyTorch autograd's (NCHW transposes of the
same arrays) to 1e-9 relative, over random shapes, strides and paddings; without PyTorch
those tests skip and the rest still run: central-difference gradient checks, first-max
ties, purity (read-only arguments), dtypes, buffers (``out=``/``work=`` give the fresh
path's bits and allocate nothing batch-sized) and resolve_padding's errors.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fnn
from fnn._types import FloatArray
from fnn.layers import pool2d
from fnn.layers.conv2d import (
    PaddingLike,
    Pads2D,
    conv2d_backward,
    conv2d_forward,
    conv2d_workspace_shapes,
    resolve_padding,
)
from fnn.layers.pool2d import (
    argmax_dtype,
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_workspace_shapes,
    pool2d_output_hw,
)

TORCH_REASON = (
    "PyTorch is not installed (extra 'bench'): the comparison with its autograd is skipped"
)


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch", reason=TORCH_REASON)


def assert_close(actual: FloatArray, expected: Any, rtol: float = 1e-9) -> None:
    """Same shape, and every element within ``rtol`` of the largest magnitude of
    ``expected`` (a relative error that cancellation to ~0 cannot inflate)."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


# ---------------------------------------------------------------------------- PyTorch


def nchw(torch: Any, a: FloatArray, grad: bool = True) -> Any:
    return torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), requires_grad=grad)


def nhwc(t: Any) -> FloatArray:
    a: FloatArray = t.detach().numpy().transpose(0, 2, 3, 1)
    return a


def torch_conv(
    torch: Any, x: FloatArray, W: FloatArray, b: FloatArray, stride: Any, pads: Pads2D, d: Any
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """y, dW, db, d_in from torch.nn.functional.conv2d (NCHW, weights (c_out, c_in, kh, kw))."""
    xt = nchw(torch, x)
    wt = torch.tensor(np.ascontiguousarray(W.transpose(3, 2, 0, 1)), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    (top, bottom), (left, right) = pads
    xp = torch.nn.functional.pad(xt, (left, right, top, bottom))  # asymmetric zeros
    y = torch.nn.functional.conv2d(xp, wt, bt, stride=stride)
    y.backward(nchw(torch, d, grad=False))
    return nhwc(y), wt.grad.numpy().transpose(2, 3, 1, 0), bt.grad.numpy(), nhwc(xt.grad)


def check_conv_against_torch(
    torch: Any,
    n: int,
    hw: tuple[int, int],
    c_in: int,
    c_out: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: PaddingLike,
    seed: int,
) -> None:
    pads, (oh, ow) = resolve_padding(padding, hw, kernel, stride)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *hw, c_in))
    W = rng.normal(size=(*kernel, c_in, c_out))
    b = rng.normal(size=c_out)
    d = rng.normal(size=(n, oh, ow, c_out))
    y, cols = conv2d_forward(x, W, b, stride, pads)
    dW, db, d_in = conv2d_backward(cols, W, d, stride, pads, x.shape)
    ty, tdW, tdb, td_in = torch_conv(torch, x, W, b, stride, pads, d)
    for ours, theirs in ((y, ty), (dW, tdW), (db, tdb), (d_in, td_in)):
        assert ours.dtype == np.float64
        assert_close(ours, theirs)


paddings = st.one_of(
    st.sampled_from(["valid", "same"]),
    st.integers(0, 2),
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
    st.tuples(
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
)


@given(
    n=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 4),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=paddings,
    seed=st.integers(0, 2**31),
)
def test_conv2d_equals_torch(
    torch: Any,
    n: int,
    hw: tuple[int, int],
    c_in: int,
    c_out: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: PaddingLike,
    seed: int,
) -> None:
    try:
        resolve_padding(padding, hw, kernel, stride)
    except ValueError:
        assume(False)  # kernel larger than the padded input
    check_conv_against_torch(torch, n, hw, c_in, c_out, kernel, stride, padding, seed)


@pytest.mark.parametrize(
    ("n", "hw", "c_in", "c_out", "kernel", "stride", "padding"),
    [
        (2, (28, 28), 1, 4, (3, 3), (1, 1), "valid"),  # the MNIST network's first layer
        (2, (13, 13), 5, 6, (3, 3), (1, 1), "valid"),  # ... and its second (channels > 1)
        (1, (8, 6), 3, 2, (3, 3), (2, 2), "same"),  # even sizes: extra row/column at the end
        (1, (7, 10), 2, 3, (4, 2), (2, 3), "same"),  # asymmetric kernel, stride, padding
        (3, (5, 9), 2, 2, (1, 1), (1, 1), "valid"),  # 1x1
        (1, (6, 7), 3, 2, (5, 5), (1, 1), "same"),
        (1, (6, 7), 3, 2, (5, 5), (1, 2), ((0, 3), (2, 1))),  # explicit, asymmetric
        (1, (3, 3), 2, 2, (5, 5), (1, 1), 1),  # every window crosses the padding
        (2, (9, 4), 4, 3, (2, 3), (3, 1), (1, 2)),  # stride 3: rows skipped
        (1, (1, 1), 1, 1, (1, 1), (1, 1), "valid"),
    ],
)
def test_conv2d_equals_torch_on_chosen_cases(
    torch: Any,
    n: int,
    hw: tuple[int, int],
    c_in: int,
    c_out: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: PaddingLike,
) -> None:
    check_conv_against_torch(torch, n, hw, c_in, c_out, kernel, stride, padding, seed=7)


@given(
    n=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    c=st.integers(1, 3),
    window=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))),
    ties=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_pooling_equals_torch(
    torch: Any,
    n: int,
    hw: tuple[int, int],
    c: int,
    window: tuple[int, int],
    stride: tuple[int, int] | None,
    ties: bool,
    seed: int,
) -> None:
    assume(window[0] <= hw[0] and window[1] <= hw[1])
    stride = window if stride is None else stride
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *hw, c))
    if ties:
        x = np.round(x)  # many equal maxima: the first in row-major order gets the gradient
    oh, ow = pool2d_output_hw(hw, window, stride)
    d = rng.normal(size=(n, oh, ow, c))
    F = torch.nn.functional

    y, argmax = max_pool2d_forward(x, window, stride)
    d_in = max_pool2d_backward(argmax, d, window, stride, x.shape)
    xt = nchw(torch, x)
    yt = F.max_pool2d(xt, window, stride)
    yt.backward(nchw(torch, d, grad=False))
    assert_close(y, nhwc(yt))
    assert_close(d_in, nhwc(xt.grad))

    y = avg_pool2d_forward(x, window, stride)
    d_in = avg_pool2d_backward(d, window, stride, x.shape)
    xt = nchw(torch, x)
    yt = F.avg_pool2d(xt, window, stride)
    yt.backward(nchw(torch, d, grad=False))
    assert_close(y, nhwc(yt))
    assert_close(d_in, nhwc(xt.grad))

    g = rng.normal(size=(n, c))
    y = global_avg_pool2d_forward(x)
    d_in = global_avg_pool2d_backward(g, x.shape)
    xt = nchw(torch, x)
    yt = F.adaptive_avg_pool2d(xt, 1)[:, :, 0, 0]
    yt.backward(torch.tensor(g))
    assert_close(y, yt.detach().numpy())
    assert_close(d_in, nhwc(xt.grad))


# ------------------------------------------------------------- central differences


def numeric_grad(f: Callable[[FloatArray], float], a: FloatArray, eps: float = 1e-6) -> FloatArray:
    """Central differences of the scalar ``f`` at ``a`` (float64), element by element."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        p, m = a.copy(), a.copy()
        p[i] += eps
        m[i] -= eps
        g[i] = (f(p) - f(m)) / (2 * eps)
    return g


@pytest.mark.parametrize(
    ("hw", "kernel", "stride", "padding"),
    [
        ((5, 4), (3, 2), (1, 1), "valid"),
        ((5, 6), (3, 3), (2, 2), "same"),
        ((4, 4), (2, 3), (1, 2), ((1, 0), (2, 1))),
    ],
)
def test_conv2d_central_differences(
    hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: PaddingLike
) -> None:
    rng = np.random.default_rng(3)
    pads, (oh, ow) = resolve_padding(padding, hw, kernel, stride)
    x = rng.normal(size=(2, *hw, 2))
    W = rng.normal(size=(*kernel, 2, 3))
    b = rng.normal(size=3)
    r = rng.normal(size=(2, oh, ow, 3))  # loss = sum(y * r), so d_out = r

    def loss(x: FloatArray, W: FloatArray, b: FloatArray) -> float:
        return float(np.sum(conv2d_forward(x, W, b, stride, pads)[0] * r))

    _, cols = conv2d_forward(x, W, b, stride, pads)
    dW, db, d_in = conv2d_backward(cols, W, r, stride, pads, x.shape)
    np.testing.assert_allclose(d_in, numeric_grad(lambda a: loss(a, W, b), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dW, numeric_grad(lambda a: loss(x, a, b), W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numeric_grad(lambda a: loss(x, W, a), b), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("window", "stride"), [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((2, 2), (3, 3)), ((2, 3), (2, 1))]
)
def test_pooling_central_differences(window: tuple[int, int], stride: tuple[int, int]) -> None:
    rng = np.random.default_rng(4)
    # distinct values far apart: no maximum changes within +-eps
    x = rng.permutation(5 * 6 * 2).reshape(1, 5, 6, 2) * 0.1 + 0.0
    oh, ow = pool2d_output_hw((5, 6), window, stride)
    r = rng.normal(size=(1, oh, ow, 2))

    _, argmax = max_pool2d_forward(x, window, stride)
    d_max = max_pool2d_backward(argmax, r, window, stride, x.shape)
    num = numeric_grad(lambda a: float(np.sum(max_pool2d_forward(a, window, stride)[0] * r)), x)
    np.testing.assert_allclose(d_max, num, rtol=1e-6, atol=1e-8)

    d_avg = avg_pool2d_backward(r, window, stride, x.shape)
    num = numeric_grad(lambda a: float(np.sum(avg_pool2d_forward(a, window, stride) * r)), x)
    np.testing.assert_allclose(d_avg, num, rtol=1e-6, atol=1e-8)

    g = rng.normal(size=(1, 2))
    d_gap = global_avg_pool2d_backward(g, x.shape)
    num = numeric_grad(lambda a: float(np.sum(global_avg_pool2d_forward(a) * g)), x)
    np.testing.assert_allclose(d_gap, num, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ max-pool ties


def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order() -> None:
    # one 2x2 window [[1, 3], [3, 3]]: the maximum 3 first appears at (0, 1)
    x = np.array([[1.0, 3.0], [3.0, 3.0]]).reshape(1, 2, 2, 1)
    y, argmax = max_pool2d_forward(x, 2, 2)
    assert y.item() == 3.0 and argmax.item() == 1
    d_in = max_pool2d_backward(argmax, np.ones((1, 1, 1, 1)), 2, 2, x.shape)
    np.testing.assert_array_equal(d_in[0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])
    # a constant image, overlapping 2x2 windows with stride 1: each window's gradient
    # goes to its own top-left pixel
    x = np.zeros((1, 3, 3, 1))
    y, argmax = max_pool2d_forward(x, 2, 1)
    assert not argmax.any()
    d_in = max_pool2d_backward(argmax, np.ones((1, 2, 2, 1)), 2, 1, x.shape)
    np.testing.assert_array_equal(d_in[0, :, :, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_max_pool_batch_chunks_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.round(np.random.default_rng(10).normal(size=(5, 6, 7, 3)), 1)
    whole = max_pool2d_forward(x, (2, 3), (2, 2))
    monkeypatch.setattr(pool2d, "CHUNK_BYTES", 2 * x[0].nbytes)  # chunks of 2, 2 and 1
    chunked = max_pool2d_forward(x, (2, 3), (2, 2))
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_argmax_dtype_grows_with_the_window() -> None:
    assert argmax_dtype(2) == np.uint8
    assert argmax_dtype(16) == np.uint8  # 256 positions, indices 0..255
    assert argmax_dtype(17) == np.uint16
    x = np.zeros((1, 17, 17, 1))
    x[0, 16, 16, 0] = 1.0  # the last of 289 positions
    _, argmax = max_pool2d_forward(x, 17, 17)
    assert argmax.item() == 288


# --------------------------------------------------- purity, dtypes and buffers


def conv_case(
    dtype: Any,
    padding: PaddingLike = "same",
    stride: tuple[int, int] = (2, 1),
    n: int = 3,
    c_in: int = 3,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, tuple[int, int], Pads2D]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 7, 6, c_in)).astype(dtype)
    W = rng.normal(size=(3, 2, c_in, 4)).astype(dtype)
    b = rng.normal(size=4).astype(dtype)
    pads, (oh, ow) = resolve_padding(padding, (7, 6), (3, 2), stride)
    d = rng.normal(size=(n, oh, ow, 4)).astype(dtype)
    return x, W, b, d, stride, pads


def readonly(*arrays: np.ndarray[Any, Any]) -> None:
    for a in arrays:
        a.flags.writeable = False


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_in", [1, 3])
def test_conv2d_writes_no_argument_and_keeps_the_dtype(dtype: Any, c_in: int) -> None:
    x, W, b, d, stride, pads = conv_case(dtype, c_in=c_in)
    copies = [a.copy() for a in (x, W, b, d)]
    readonly(x, W, b, d)  # a write into any of them raises
    y, cols = conv2d_forward(x, W, b, stride, pads)
    readonly(cols)  # the backward pass only reads the cache
    dW, db, d_in = conv2d_backward(cols, W, d, stride, pads, x.shape)
    for a, c in zip((x, W, b, d), copies, strict=True):
        np.testing.assert_array_equal(a, c)
    for out in (y, cols, dW, db, d_in):
        assert out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_writes_no_argument_and_keeps_the_dtype(dtype: Any) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 5, 4, 3)).astype(dtype)
    d = rng.normal(size=(2, 2, 2, 3)).astype(dtype)
    g = rng.normal(size=(2, 3)).astype(dtype)
    copies = [a.copy() for a in (x, d, g)]
    readonly(x, d, g)
    y, argmax = max_pool2d_forward(x, 2, 2)
    readonly(argmax)
    outs = [y, max_pool2d_backward(argmax, d, 2, 2, x.shape)]
    outs += [avg_pool2d_forward(x, 2, 2), avg_pool2d_backward(d, 2, 2, x.shape)]
    outs += [global_avg_pool2d_forward(x), global_avg_pool2d_backward(g, x.shape)]
    y3, argmax3 = max_pool2d_forward(x, 3, 1)  # overlapping windows
    d3 = np.ones(y3.shape, dtype)
    readonly(argmax3, d3)
    outs += [y3, max_pool2d_backward(argmax3, d3, 3, 1, x.shape)]
    outs += [avg_pool2d_forward(x, 3, 1), avg_pool2d_backward(d3, 3, 1, x.shape)]
    for a, c in zip((x, d, g), copies, strict=True):
        np.testing.assert_array_equal(a, c)
    for out in outs:
        assert out.dtype == dtype


def test_conv2d_accepts_a_non_contiguous_input() -> None:
    x, W, b, _, stride, pads = conv_case(np.float64)
    xt = np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)  # same values
    assert not xt.flags.c_contiguous
    np.testing.assert_array_equal(
        conv2d_forward(xt, W, b, stride, pads)[0], conv2d_forward(x, W, b, stride, pads)[0]
    )


def garbage(shape: tuple[int, ...], dtype: Any) -> Any:
    """A buffer full of NaN (or 255s): any element a kernel forgets to write shows."""
    if np.dtype(dtype).kind == "f":
        return np.full(shape, np.nan, dtype)
    return np.full(shape, np.iinfo(dtype).max, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("padding", "stride"), [("same", (2, 1)), ("valid", (1, 1)), (((2, 0), (1, 3)), (1, 2))]
)
@pytest.mark.parametrize("c_in", [1, 3])  # one channel: cols stored transposed
def test_conv2d_buffers_give_the_fresh_bits(
    dtype: Any, padding: PaddingLike, stride: tuple[int, int], c_in: int
) -> None:
    x, W, b, d, stride, pads = conv_case(dtype, padding, stride, c_in=c_in)
    shapes = conv2d_workspace_shapes(x.shape, W.shape, stride, pads, dtype=dtype)
    y, cols = conv2d_forward(x, W, b, stride, pads)
    dW, db, d_in = conv2d_backward(cols, W, d, stride, pads, x.shape)

    out, work = garbage(shapes.out, dtype), garbage(shapes.cols, dtype)
    y2, cols2 = conv2d_forward(x, W, b, stride, pads, out=out, work=work)
    assert y2 is out and np.shares_memory(cols2, work)
    bufs = {k: garbage(getattr(shapes, k), dtype) for k in ("dW", "db", "d_in", "d_cols")}
    dW2, db2, d_in2 = conv2d_backward(
        cols2, W, d, stride, pads, x.shape,
        dW_out=bufs["dW"], db_out=bufs["db"], d_in_out=bufs["d_in"], work=bufs["d_cols"],
    )  # fmt: skip
    assert dW2 is bufs["dW"] and db2 is bufs["db"] and d_in2 is bufs["d_in"]
    for fresh, buffered in ((y, y2), (cols, cols2), (dW, dW2), (db, db2), (d_in, d_in2)):
        np.testing.assert_array_equal(fresh, buffered)

    # a one-sample chunk gives the same gradient up to rounding; no d_in when not asked
    k = W.shape[0] * W.shape[1]
    one = garbage((k, shapes.out[1] * shapes.out[2], x.shape[3]), dtype)
    _, _, d_in3 = conv2d_backward(cols, W, d, stride, pads, x.shape, work=one)
    np.testing.assert_allclose(d_in3, d_in, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert conv2d_backward(cols, W, d, stride, pads, x.shape, need_d_in=False)[2] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("window", "stride"), [((2, 2), (2, 2)), ((3, 2), (1, 1)), ((2, 2), (3, 2))]
)
def test_pooling_buffers_give_the_fresh_bits(
    dtype: Any, window: tuple[int, int], stride: tuple[int, int]
) -> None:
    rng = np.random.default_rng(8)
    x = np.round(rng.normal(size=(2, 7, 5, 3)), 1).astype(dtype)  # some ties
    s = max_pool2d_workspace_shapes(x.shape, window, stride)
    d = rng.normal(size=s.out).astype(dtype)
    idt = argmax_dtype(window)

    y, argmax = max_pool2d_forward(x, window, stride)
    d_in = max_pool2d_backward(argmax, d, window, stride, x.shape)
    out, am = garbage(s.out, dtype), garbage(s.argmax, idt)
    y2, am2 = max_pool2d_forward(
        x, window, stride, out=out, argmax_out=am, work=garbage(s.argmax, idt)
    )
    d_in2 = max_pool2d_backward(
        am2,
        d,
        window,
        stride,
        x.shape,
        d_in_out=garbage(s.d_in, dtype),
        work=garbage(s.d_work, dtype),
    )
    assert y2 is out and am2 is am
    for fresh, buffered in ((y, y2), (argmax, am2), (d_in, d_in2)):
        np.testing.assert_array_equal(fresh, buffered)

    y = avg_pool2d_forward(x, window, stride)
    d_in = avg_pool2d_backward(d, window, stride, x.shape)
    np.testing.assert_array_equal(
        avg_pool2d_forward(x, window, stride, out=garbage(s.out, dtype)), y
    )
    np.testing.assert_array_equal(
        avg_pool2d_backward(d, window, stride, x.shape, d_in_out=garbage(s.d_in, dtype)), d_in
    )

    g = rng.normal(size=(2, 3)).astype(dtype)
    np.testing.assert_array_equal(
        global_avg_pool2d_forward(x, out=garbage((2, 3), dtype)), global_avg_pool2d_forward(x)
    )
    np.testing.assert_array_equal(
        global_avg_pool2d_backward(g, x.shape, d_in_out=garbage(x.shape, dtype)),
        global_avg_pool2d_backward(g, x.shape),
    )


def peak_bytes(f: Callable[[], object]) -> int:
    """The most memory traced (NumPy reports its array data) while ``f`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        f()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_given_buffers_no_batch_sized_allocation_happens() -> None:
    # Batch 512 of 12x12x8 float32: the smallest batch-sized buffer (a max-pool argmax,
    # uint8) is 144 KiB. What remains are NumPy's ufunc iteration buffers on strided views
    # (at most 8192 elements per operand, whatever the batch) and arrays the size of W.
    # Each of fnn's threads has NumPy's iteration buffers of its own: the bound holds per
    # thread, so it is checked on one (and the convolutions on two, with twice the bound).
    limit = 128 * 1024
    rng = np.random.default_rng(9)
    x = rng.normal(size=(512, 12, 12, 8)).astype(np.float32)
    before = fnn.get_num_threads()
    fnn.set_num_threads(1)
    try:
        _check_no_batch_sized_allocation(x, rng, limit)
    finally:
        fnn.set_num_threads(before)


def _check_no_batch_sized_allocation(x: FloatArray, rng: np.random.Generator, limit: int) -> None:
    b = np.zeros(8, np.float32)
    stride, (pads, _) = (1, 1), resolve_padding("same", (12, 12), 3, 1)
    for c_in in (1, 8):
        xc = x[..., :c_in]
        W = rng.normal(size=(3, 3, c_in, 8)).astype(np.float32)
        s = conv2d_workspace_shapes(xc.shape, W.shape, stride, pads)
        buf = {k: np.empty(getattr(s, k), np.float32) for k in s._fields}
        d = rng.normal(size=s.out).astype(np.float32)

        def conv() -> None:
            _, cols = conv2d_forward(xc, W, b, stride, pads, out=buf["out"], work=buf["cols"])  # noqa: B023
            conv2d_backward(
                cols, W, d, stride, pads, xc.shape,  # noqa: B023
                dW_out=buf["dW"], db_out=buf["db"], d_in_out=buf["d_in"], work=buf["d_cols"],  # noqa: B023
            )  # fmt: skip

        assert peak_bytes(conv) < limit
        fnn.set_num_threads(2)
        assert peak_bytes(conv) < 2 * limit
        fnn.set_num_threads(1)
        fresh = peak_bytes(lambda: conv2d_forward(xc, W, b, stride, pads))  # noqa: B023
        assert fresh > 10 * limit  # the measurement sees arrays

    for window, pstride in (((2, 2), (2, 2)), ((3, 3), (1, 1))):
        p = max_pool2d_workspace_shapes(x.shape, window, pstride)
        idt = argmax_dtype(window)
        out, am, wk = np.empty(p.out, np.float32), np.empty(p.argmax, idt), np.empty(p.argmax, idt)
        d_in, dw = np.empty(p.d_in, np.float32), np.empty(p.d_work, np.float32)
        dp = rng.normal(size=p.out).astype(np.float32)

        def pools() -> None:
            max_pool2d_forward(x, window, pstride, out=out, argmax_out=am, work=wk)  # noqa: B023
            max_pool2d_backward(am, dp, window, pstride, x.shape, d_in_out=d_in, work=dw)  # noqa: B023
            avg_pool2d_forward(x, window, pstride, out=out)  # noqa: B023
            avg_pool2d_backward(dp, window, pstride, x.shape, d_in_out=d_in)  # noqa: B023

        assert peak_bytes(pools) < limit
    g = np.empty((512, 8), np.float32)
    assert peak_bytes(lambda: global_avg_pool2d_forward(x, out=g)) < limit
    assert peak_bytes(lambda: global_avg_pool2d_backward(g, x.shape, d_in_out=buf["d_in"])) < limit


def test_a_wrong_buffer_is_refused() -> None:
    x, W, b, _, stride, pads = conv_case(np.float32)
    s = conv2d_workspace_shapes(x.shape, W.shape, stride, pads)
    with pytest.raises(ValueError, match="out must be a C-contiguous float32 array"):
        conv2d_forward(x, W, b, stride, pads, out=np.empty(s.out, np.float64))
    with pytest.raises(ValueError, match="work must be a C-contiguous"):
        conv2d_forward(x, W, b, stride, pads, work=np.empty(s.cols[::-1], np.float32).T)
    with pytest.raises(TypeError, match="W must have dtype float32 like x"):
        conv2d_forward(x, W.astype(np.float64), b, stride, pads)


# ------------------------------------------------------------------- resolve_padding


@pytest.mark.parametrize(
    ("padding", "in_hw", "kernel", "stride", "pads", "out_hw"),
    [
        ("valid", (28, 28), 3, 1, ((0, 0), (0, 0)), (26, 26)),
        ("same", (28, 28), 3, 1, ((1, 1), (1, 1)), (28, 28)),
        ("same", (5, 6), 3, 2, ((1, 1), (0, 1)), (3, 3)),  # 6: total 1, at the right
        ("same", (4, 4), (2, 4), 1, ((0, 1), (1, 2)), (4, 4)),  # even kernel: extra at the end
        ("same", (8, 8), 5, 3, ((1, 2), (1, 2)), (3, 3)),  # total 3
        ("same", (2, 2), 1, 3, ((0, 0), (0, 0)), (1, 1)),  # never negative
        (2, (5, 5), 3, 1, ((2, 2), (2, 2)), (7, 7)),
        ((1, 0), (5, 5), 3, 2, ((1, 1), (0, 0)), (3, 2)),
        (((0, 3), (2, 1)), (5, 5), (3, 3), (1, 2), ((0, 3), (2, 1)), (6, 3)),
        ([[1, 1], [0, 0]], (3, 3), 3, 1, ((1, 1), (0, 0)), (3, 1)),  # lists
        ((np.int64(1), np.int32(0)), (3, 3), 3, 1, ((1, 1), (0, 0)), (3, 1)),  # NumPy ints
    ],
)
def test_resolve_padding(
    padding: Any, in_hw: Any, kernel: Any, stride: Any, pads: Pads2D, out_hw: tuple[int, int]
) -> None:
    assert resolve_padding(padding, in_hw, kernel, stride) == (pads, out_hw)


@pytest.mark.parametrize(
    ("padding", "in_hw", "kernel", "stride", "message"),
    [
        ("valid", (2, 5), 3, 1, r"kernel_hw \(3, 3\) is larger than the padded input \(2, 5\)"),
        (
            ((0, 0), (1, 0)),
            (5, 2),
            (1, 4),
            1,
            r"kernel_hw \(1, 4\) is larger than the padded input \(5, 3\)",
        ),
        (
            "full",
            (5, 5),
            3,
            1,
            "padding must be 'valid', 'same', an int, a pair or a pair of pairs, got 'full'",
        ),
        (
            1.5,
            (5, 5),
            3,
            1,
            "padding must be 'valid', 'same', an int, a pair or a pair of pairs, got 1.5",
        ),
        (True, (5, 5), 3, 1, "padding must be 'valid', 'same'"),
        ((1, 2, 3), (5, 5), 3, 1, "padding must be 'valid', 'same'"),
        (
            ((0, 1.0), (0, 0)),
            (5, 5),
            3,
            1,
            r"padding\[0\] must be an int or a pair of ints, got \(0, 1.0\)",
        ),
        (-1, (5, 5), 3, 1, r"padding must be non-negative, got \(\(-1, -1\), \(-1, -1\)\)"),
        (((0, 0), (0, -2)), (5, 5), 3, 1, "padding must be non-negative"),
        ("valid", (5, 5), 3, 0, r"stride must be positive, got \(0, 0\)"),
        ("same", (5, 5), 3, (1, -1), r"stride must be positive, got \(1, -1\)"),
        ("valid", (5, 5), 3, 1.0, "stride must be an int or a pair of ints, got 1.0"),
        ("valid", (5, 5), 3, "1", "stride must be an int or a pair of ints, got '1'"),
        ("valid", (5, 5), 0, 1, r"kernel_hw must be positive, got \(0, 0\)"),
        (
            "valid",
            (5, 5),
            (3, 2.5),
            1,
            r"kernel_hw must be an int or a pair of ints, got \(3, 2.5\)",
        ),
        ("valid", (0, 5), 1, 1, r"in_hw must be positive, got \(0, 5\)"),
    ],
)
def test_resolve_padding_errors(
    padding: Any, in_hw: Any, kernel: Any, stride: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_padding(padding, in_hw, kernel, stride)


@pytest.mark.parametrize(
    ("in_hw", "window", "stride", "message"),
    [
        ((3, 3), 4, 4, r"window \(4, 4\) is larger than the input \(3, 3\)"),
        ((3, 3), 2, 0, r"stride must be positive, got \(0, 0\)"),
        ((3, 3), (2, 0), 1, r"window must be positive, got \(2, 0\)"),
        ((3, 3), 2.0, 1, "window must be an int or a pair of ints, got 2.0"),
    ],
)
def test_pool_shape_errors(in_hw: Any, window: Any, stride: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pool2d_output_hw(in_hw, window, stride)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [(2, 2), (3, 3), (2, 3), (1, 2)])
def test_inference_max_pool_gives_the_training_kernels_bits(dtype: Any, window: Any) -> None:
    """predict's max pooling (no argmax) gives the bytes of the training kernel's output,
    ties, signed zeros and NaNs included."""
    from fnn.layers.pool2d import _max_only

    rng = np.random.default_rng(0)
    for shape in [(3, 26, 26, 32), (5, 11, 11, 6), (2, 7, 9, 3), (4, 6, 6, 1)]:
        x = rng.integers(-3, 3, size=shape).astype(dtype)  # many ties
        zeros = x == 0
        x[zeros] = np.where(rng.random(int(zeros.sum())) < 0.5, -0.0, 0.0)
        x.flat[::17] = np.nan
        want, _ = max_pool2d_forward(x, window, window)
        got = np.empty_like(want)
        _max_only(x, window, window, got)
        assert got.tobytes() == want.tobytes()
