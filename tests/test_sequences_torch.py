"""The sequence layers and the per-position loss against PyTorch autograd, in float64:
nn.Embedding, nn.Linear on (n, T, d) with and without bias, nn.LayerNorm on (n, T, d)
and nn.CrossEntropyLoss with ignore_index (value and gradient wrt the logits), to 1e-9
relative."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (extra 'bench' installs it)")

RTOL = 1e-9


def close(a: Any, b: Any) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=1e-12)


def t64(x: np.ndarray[Any, Any], grad: bool = True) -> Any:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def test_embedding_equals_torch() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, (4, 9))  # small vocab: every token repeats
    W = rng.normal(size=(7, 5))
    layer = fnn.Embedding(W=W)
    out, cache = layer.forward(ids)  # type: ignore[arg-type]  # ids: forward is typed for floats
    R = rng.normal(size=out.shape)
    grads, _ = layer.backward(cache, R)
    emb = torch.nn.Embedding(7, 5).double()
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(W))
    out_t = emb(torch.tensor(ids))
    (out_t * torch.tensor(R)).sum().backward()
    close(out, out_t.detach().numpy())
    close(grads.W, emb.weight.grad.numpy())


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_dense_on_sequences_equals_torch_linear(bias: bool) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 4))
    W = rng.normal(size=(4, 5))
    b = rng.normal(size=5) if bias else None
    layer = fnn.Dense(W=W, b=b, activation="tanh")
    out, cache = layer.forward(x)
    assert out.shape == (3, 6, 5)
    R = rng.normal(size=out.shape)
    grads, d_in = layer.backward(cache, R)
    lin = torch.nn.Linear(4, 5, bias=bias).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W.T))
        if b is not None:
            lin.bias.copy_(torch.tensor(b))
    xt = t64(x)
    out_t = torch.tanh(lin(xt))
    (out_t * torch.tensor(R)).sum().backward()
    close(out, out_t.detach().numpy())
    close(d_in, xt.grad.numpy())
    close(grads.W, lin.weight.grad.numpy().T)
    if b is None:
        assert grads.b is None
    else:
        close(grads.b, lin.bias.grad.numpy())


def test_layer_norm_on_sequences_equals_torch() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 6))
    scale, shift = rng.normal(size=6), rng.normal(size=6)
    layer = fnn.LayerNorm(scale=scale, shift=shift)
    out, cache = layer.forward(x)
    R = rng.normal(size=out.shape)
    grads, d_in = layer.backward(cache, R)
    ln = torch.nn.LayerNorm(6).double()
    with torch.no_grad():
        ln.weight.copy_(torch.tensor(scale))
        ln.bias.copy_(torch.tensor(shift))
    xt = t64(x)
    out_t = ln(xt)
    (out_t * torch.tensor(R)).sum().backward()
    close(out, out_t.detach().numpy())
    close(d_in, xt.grad.numpy())
    close(grads.scale, ln.weight.grad.numpy())
    close(grads.shift, ln.bias.grad.numpy())


@pytest.mark.parametrize("ignore_index", [-100, 0], ids=["default", "zero"])
def test_sequence_cross_entropy_equals_torch(ignore_index: int) -> None:
    rng = np.random.default_rng(3)
    n, T, k = 4, 6, 5
    z = rng.normal(size=(n, T, k)) * 3
    y = rng.integers(0, k, (n, T))
    y[rng.random((n, T)) < 0.3] = ignore_index
    y[0, 0] = 1  # at least one counted position
    loss = fnn.losses.SoftmaxCrossEntropy(ignore_index=ignore_index)
    ya = loss.sequence_targets(y, (n, T, k), np.dtype(np.float64))
    value, g = loss.value_and_grad(z, ya)
    zt = t64(z)
    lt = torch.nn.CrossEntropyLoss(ignore_index=ignore_index)(
        zt.reshape(-1, k), torch.tensor(y.reshape(-1))
    )
    lt.backward()
    close(value, lt.item())
    close(g, zt.grad.numpy())
    close(loss.grad(z, ya), zt.grad.numpy())
    close(loss.value(z, ya), lt.item())
