"""The image and normalisation layers against PyTorch autograd, in float64, through the
layer API (the kernels are proved in tests/test_conv_kernels.py): outputs, input
gradients and parameter gradients to 1e-9 relative."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (extra 'bench' installs it)")

RTOL = 1e-9


def close(a: Any, b: Any) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=1e-12)


def nchw(x: np.ndarray) -> Any:
    return torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)


def to_nhwc(t: Any) -> np.ndarray:
    return np.asarray(t.detach().numpy().transpose(0, 2, 3, 1))


@pytest.mark.parametrize(
    ("stride", "padding", "torch_pad"),
    [
        (1, "valid", 0),
        (2, 1, 1),
        (1, "same", "same"),  # odd kernel, stride 1: symmetric, as PyTorch's "same"
    ],
)
def test_conv2d_layer_equals_torch(stride: int, padding: Any, torch_pad: Any) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 6, 2))
    W = rng.normal(size=(3, 3, 2, 4))
    b = rng.normal(size=4)
    layer = fnn.Conv2D(W=W, b=b, stride=stride, padding=padding, activation="tanh")
    out, cache = layer.forward(x)
    g = rng.normal(size=out.shape)
    grads, d_in = layer.backward(cache, g)

    xt = nchw(x)
    wt = torch.tensor(W.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yt = torch.tanh(torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=torch_pad))
    yt.backward(torch.tensor(g.transpose(0, 3, 1, 2).copy()))
    close(out, to_nhwc(yt))
    close(d_in, to_nhwc(xt.grad))
    close(grads.W, wt.grad.numpy().transpose(2, 3, 1, 0))
    close(grads.b, bt.grad.numpy())


@pytest.mark.parametrize(
    ("layer", "tfun"),
    [
        (fnn.MaxPool2D(2), lambda t: torch.nn.functional.max_pool2d(t, 2)),
        (fnn.MaxPool2D(3, stride=2), lambda t: torch.nn.functional.max_pool2d(t, 3, 2)),
        (fnn.AvgPool2D((2, 3)), lambda t: torch.nn.functional.avg_pool2d(t, (2, 3))),
        (fnn.GlobalAvgPool2D(), lambda t: t.mean(dim=(2, 3))),
    ],
)
def test_pool_layers_equal_torch(layer: Any, tfun: Any) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 8, 3))
    out, cache = layer.forward(x)
    g = rng.normal(size=out.shape)
    _, d_in = layer.backward(cache, g)
    xt = nchw(x)
    yt = tfun(xt)
    gt = torch.tensor(g.transpose(0, 3, 1, 2).copy() if g.ndim == 4 else g)
    yt.backward(gt)
    close(out, to_nhwc(yt) if out.ndim == 4 else yt.detach().numpy())
    close(d_in, to_nhwc(xt.grad))


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 3, 4)])
def test_layer_norm_equals_torch(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape) * 3 + 1
    scale, shift = rng.normal(size=4), rng.normal(size=4)
    layer = fnn.LayerNorm(scale=scale, shift=shift, eps=1e-5)
    out, cache = layer.forward(x)
    g = rng.normal(size=out.shape)
    grads, d_in = layer.backward(cache, g)

    tl = torch.nn.LayerNorm(4, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(scale))
        tl.bias.copy_(torch.tensor(shift))
    xt = torch.tensor(x, requires_grad=True)
    yt = tl(xt)
    yt.backward(torch.tensor(g))
    close(out, yt.detach().numpy())
    close(d_in, xt.grad.numpy())
    close(grads.scale, tl.weight.grad.numpy())
    close(grads.shift, tl.bias.grad.numpy())


def test_flatten_matches_keras_order() -> None:
    x = np.arange(2 * 2 * 3 * 4, dtype=np.float64).reshape(2, 2, 3, 4)
    out, _ = fnn.Flatten().forward(x)
    # (height, width, channel) order: row-major over the per-sample shape
    assert out.shape == (2, 24)
    np.testing.assert_array_equal(out[1], x[1].ravel())
