"""fnn's batch norm against PyTorch's, in float64, over several training steps.

``BatchNorm`` over the last axis follows ``torch.nn.BatchNorm1d`` on (n, C) and
``torch.nn.BatchNorm2d`` on channels-last (n, h, w, C) input (transposed to NCHW for
PyTorch): outputs, input gradients, scale/shift gradients, running statistics after each
step, then eval-mode outputs. A whole ``fnn.mlp(..., norm="batch")`` trained with SGD
matches the equivalent ``nn.Sequential`` step by step.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (its CPU build is the 'bench' extra)"
)

import fnn  # noqa: E402
from fnn.layers import BatchNorm  # noqa: E402

RTOL = 1e-9
ATOL = 1e-12


def t64(a: Any) -> Any:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def close(got: Any, expected: Any, what: str) -> None:
    exp = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def to_torch_layout(a: Any) -> Any:
    """(n, C) as is; (n, h, w, C) channels-last to PyTorch's (n, C, h, w)."""
    return a if a.ndim == 2 else np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def from_torch_layout(a: Any) -> Any:
    return a if a.ndim == 2 else a.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("momentum", [0.1, 0.35])
@pytest.mark.parametrize("shape", [(8, 4), (3, 2, 5, 4)], ids=["2d", "4d_channels_last"])
def test_batch_norm_equals_pytorch_over_training_steps(
    shape: tuple[int, ...], momentum: float
) -> None:
    rng = np.random.default_rng(0)
    C = shape[-1]
    scale, shift = rng.uniform(0.5, 1.5, C), rng.normal(size=C)
    bn = BatchNorm(scale=scale, shift=shift, momentum=momentum)
    assert bn.eps == 1e-5
    cls = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    tbn = cls(C, momentum=momentum, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        tbn.weight.copy_(t64(scale))
        tbn.bias.copy_(t64(shift))
    tbn.train()
    for step in range(4):
        # batches with an offset and a spread per feature, as real activations have
        X = rng.normal(size=shape) * rng.uniform(0.5, 3.0, C) + rng.normal(size=C) * 2
        G = rng.normal(size=shape)
        out, cache = bn.forward(X, train=True)
        grads, d_in = bn.backward(cache, G)

        x = t64(to_torch_layout(X)).requires_grad_(True)
        tbn.zero_grad()
        y = tbn(x)
        y.backward(t64(to_torch_layout(G)))
        assert x.grad is not None and tbn.weight.grad is not None and tbn.bias.grad is not None
        close(out, from_torch_layout(y.detach().numpy()), f"output, step {step}")
        close(d_in, from_torch_layout(x.grad.numpy()), f"input gradient, step {step}")
        close(grads.scale, tbn.weight.grad, f"scale gradient, step {step}")
        close(grads.shift, tbn.bias.grad, f"shift gradient, step {step}")
        close(grads.running_mean, tbn.running_mean, f"running mean, step {step}")
        close(grads.running_var, tbn.running_var, f"running var, step {step}")
        # the new state is what the gradient tree carries; scale and shift stay
        bn = attrs.evolve(bn, running_mean=grads.running_mean, running_var=grads.running_var)

    tbn.eval()
    X = rng.normal(size=shape) * 2 + 1
    out, _ = bn.forward(X, train=False)
    with torch.no_grad():
        close(out, from_torch_layout(tbn(t64(to_torch_layout(X))).numpy()), "eval output")


def torch_twin(net: fnn.Network) -> Any:
    """``nn.Sequential(Linear, BatchNorm1d, ReLU, ..., Linear)`` with ``net``'s values."""
    mods: list[Any] = []
    for layer in net.layers:
        if isinstance(layer, fnn.Dense):
            lin = torch.nn.Linear(layer.n_in, layer.n_out, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(t64(layer.W.T))
                lin.bias.copy_(t64(layer.b))
            mods.append(lin)
        elif isinstance(layer, BatchNorm):
            tbn = torch.nn.BatchNorm1d(
                layer.n_features, momentum=layer.momentum, eps=layer.eps, dtype=torch.float64
            )
            with torch.no_grad():
                tbn.weight.copy_(t64(layer.scale))
                tbn.bias.copy_(t64(layer.shift))
                tbn.running_mean.copy_(t64(layer.running_mean))
                tbn.running_var.copy_(t64(layer.running_var))
            mods.append(tbn)
        else:
            assert isinstance(layer, fnn.layers.Activation)
            assert isinstance(layer.activation, fnn.activations.ReLU)
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def assert_same_as_torch(net: fnn.Network, model: Any, what: str) -> None:
    for layer, mod in zip(net.layers, model, strict=True):
        if isinstance(layer, fnn.Dense):
            close(layer.W, mod.weight.T, f"{what}: W")
            close(layer.b, mod.bias, f"{what}: b")
        elif isinstance(layer, BatchNorm):
            close(layer.scale, mod.weight, f"{what}: scale")
            close(layer.shift, mod.bias, f"{what}: shift")
            close(layer.running_mean, mod.running_mean, f"{what}: running_mean")
            close(layer.running_var, mod.running_var, f"{what}: running_var")


def test_an_mlp_with_batch_norm_trains_like_pytorch() -> None:
    net = fnn.init(fnn.mlp([4, 6, 5, 3], output="softmax", norm="batch"), rng=0)
    assert [type(layer).__name__ for layer in net.layers] == [
        "Dense",
        "BatchNorm",
        "Activation",
        "Dense",
        "BatchNorm",
        "Activation",
        "Dense",
    ]
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 4)) * 2 + 0.5
    y = rng.integers(0, 3, 24)
    model = torch_twin(net)
    model.train()
    topt = torch.optim.SGD(model.parameters(), lr=0.2)
    opt = fnn.sgd(0.2)
    state = opt.init(net)
    looped = net
    for step in range(3):
        idx = slice(8 * step, 8 * step + 8)
        looped, state, value = fnn.train_step(looped, state, X[idx], y[idx])
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(t64(X[idx])), torch.tensor(y[idx]))
        loss.backward()
        topt.step()
        assert value == pytest.approx(loss.item(), rel=RTOL)
        assert_same_as_torch(looped, model, f"step {step}")
    fitted, _ = fnn.fit(net, opt, X, y, epochs=1, batch_size=8, shuffle=False, rng=0, verbose=0)
    assert_same_as_torch(fitted, model, "fit")
    model.eval()
    with torch.no_grad():
        proba = torch.softmax(model(t64(X)), dim=1)
    close(fnn.predict(fitted, X), proba, "predict")
