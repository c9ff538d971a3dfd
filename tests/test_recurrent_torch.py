"""The recurrent layers against PyTorch autograd (``nn.RNN`` with tanh, ``nn.LSTM``,
``nn.GRU``; one layer, ``batch_first=True``, zero initial state), in float64: outputs,
input gradients and the gradients of all four leaves to 1e-9 relative, for the last
hidden state and for every hidden state (``return_sequences``). PyTorch's weights map
to fnn's leaves by a transpose (``weight_ih_l0 = W_ih.T``); the biases are the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (extra 'bench' installs it)")

RTOL = 1e-9

KINDS = [
    pytest.param(fnn.SimpleRNN, lambda f, u: torch.nn.RNN(f, u, nonlinearity="tanh"), id="rnn"),
    pytest.param(fnn.LSTM, lambda f, u: torch.nn.LSTM(f, u), id="lstm"),
    pytest.param(fnn.GRU, lambda f, u: torch.nn.GRU(f, u), id="gru"),
]

SPECS: dict[type[Any], Any] = {
    fnn.SimpleRNN: fnn.specs.simple_rnn,
    fnn.LSTM: fnn.specs.lstm,
    fnn.GRU: fnn.specs.gru,
}


def close(a: Any, b: Any) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=1e-12)


def torch_twin(layer: fnn.layers.Recurrent, make: Any) -> Any:
    """The PyTorch module of ``layer``'s kind holding ``layer``'s weights, in float64."""
    module = make(layer.features, layer.units)
    module = module.double()
    module.batch_first = True
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(layer.W_ih.T))
        module.weight_hh_l0.copy_(torch.tensor(layer.W_hh.T))
        module.bias_ih_l0.copy_(torch.tensor(layer.b_ih))
        module.bias_hh_l0.copy_(torch.tensor(layer.b_hh))
    return module


@pytest.mark.parametrize("steps", [1, 7])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize(("cls", "make"), KINDS)
def test_layer_equals_torch(cls: Any, make: Any, return_sequences: bool, steps: int) -> None:
    rng = np.random.default_rng(steps + 10 * return_sequences)
    features, units, n = 3, 5, 4
    layer = cls.create(features, units, rng=rng, return_sequences=return_sequences)
    X = rng.normal(size=(n, steps, features))
    out, cache = layer.forward(X)
    g = rng.normal(size=out.shape)
    grads, d_in = layer.backward(cache, g)

    module = torch_twin(layer, make)
    xt = torch.tensor(X, requires_grad=True)
    every, _ = module(xt)
    yt = every if return_sequences else every[:, -1]
    yt.backward(torch.tensor(g))

    assert out.shape == ((n, steps, units) if return_sequences else (n, units))
    close(out, yt.detach().numpy())
    close(d_in, xt.grad.numpy())
    close(grads.W_ih, module.weight_ih_l0.grad.numpy().T)
    close(grads.W_hh, module.weight_hh_l0.grad.numpy().T)
    close(grads.b_ih, module.bias_ih_l0.grad.numpy())
    close(grads.b_hh, module.bias_hh_l0.grad.numpy())


@pytest.mark.parametrize(("cls", "make"), KINDS)
def test_network_with_the_layer_equals_torch(cls: Any, make: Any) -> None:
    """A network of the recurrent layer (last state) and a dense head, softmax
    cross-entropy: the loss and every gradient through ``fnn.value_and_grad``, the
    path ``fit`` takes, against the same model in PyTorch."""
    n, steps, features, units, classes = 6, 5, 3, 4, 3
    arch = fnn.sequential(
        (steps, features),
        [SPECS[cls](units), fnn.specs.dense(classes)],
        output="softmax",
    )
    net = fnn.init(arch, rng=3)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(n, steps, features))
    y = rng.integers(0, classes, n)
    value, grads = fnn.value_and_grad(net, X, y)

    rec, head = net.layers
    assert isinstance(rec, cls) and isinstance(head, fnn.Dense)
    module = torch_twin(rec, make)
    W = torch.tensor(head.W, requires_grad=True)
    b = torch.tensor(head.b, requires_grad=True)
    every, _ = module(torch.tensor(X))
    logits = every[:, -1] @ W + b
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss.backward()

    close(value, loss.item())
    g_rec, g_head = grads.layers
    assert isinstance(g_rec, cls) and isinstance(g_head, fnn.Dense)
    close(g_rec.W_ih, module.weight_ih_l0.grad.numpy().T)
    close(g_rec.W_hh, module.weight_hh_l0.grad.numpy().T)
    close(g_rec.b_ih, module.bias_ih_l0.grad.numpy())
    close(g_rec.b_hh, module.bias_hh_l0.grad.numpy())
    close(g_head.W, W.grad.numpy())
    close(g_head.b, b.grad.numpy())


@pytest.mark.parametrize(("cls", "make"), KINDS)
def test_float32_follows_torch_in_float32(cls: Any, make: Any) -> None:
    rng = np.random.default_rng(5)
    layer = cls.create(4, 6, rng=rng, return_sequences=True, dtype=np.float32)
    X = rng.normal(size=(3, 9, 4)).astype(np.float32)
    out, _ = layer.forward(X)
    assert out.dtype == np.float32
    module = make(4, 6)
    module.batch_first = True
    with torch.no_grad():
        for name, leaf in (("weight_ih_l0", layer.W_ih.T), ("weight_hh_l0", layer.W_hh.T)):
            getattr(module, name).copy_(torch.tensor(leaf))
        module.bias_ih_l0.copy_(torch.tensor(layer.b_ih))
        module.bias_hh_l0.copy_(torch.tensor(layer.b_hh))
        want, _ = module(torch.tensor(X))
    assert want.dtype == torch.float32
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("cls", "make"), KINDS)
def test_parameter_shapes_and_counts_equal_torch(cls: Any, make: Any) -> None:
    layer = cls.create(7, 5, rng=np.random.default_rng(0))
    module = make(7, 5)
    assert layer.W_ih.shape == tuple(reversed(module.weight_ih_l0.shape))
    assert layer.W_hh.shape == tuple(reversed(module.weight_hh_l0.shape))
    assert layer.b_ih.shape == tuple(module.bias_ih_l0.shape)
    assert layer.b_hh.shape == tuple(module.bias_hh_l0.shape)
    assert sum(x.size for x in fnn.tree.leaves(layer)) == sum(
        p.numel() for p in module.parameters()
    )
