"""Huge inputs and logits stay finite: stable sigmoid, softmax and log-sum-exp."""

from __future__ import annotations

import numpy as np
import pytest

import fnn
from fnn import tree


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid", "gelu", "elu", "softplus"])
def test_inputs_of_1e300_give_finite_outputs_losses_and_grads(output: str, hidden: str) -> None:
    net = fnn.init(fnn.mlp([3, 4, 2], hidden=hidden, output=output), rng=0)  # type: ignore[arg-type]
    X = np.array([[1e300, -1e300, 5.0], [1e-300, 0.0, -1e300]])
    y = np.array([0, 1]) if output == "softmax" else np.array([[0, 1], [1, 0]])
    out, _ = fnn.forward(net, X)
    assert np.isfinite(out).all()
    val, g = fnn.value_and_grad(net, X, y)
    # the loss may be huge (logits near 1e300) but is a number, never NaN
    assert not np.isnan(val)
    assert not any(np.isnan(x).any() for x in tree.leaves(g))


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_logits_of_1e4_give_finite_losses(output: str) -> None:
    net = fnn.Network(
        layers=[fnn.Dense(W=np.array([[1e4, -1e4]]))],
        loss="binary_cross_entropy" if output == "sigmoid" else "cross_entropy",
    )
    X = np.array([[1.0], [-1.0]])
    y = np.array([[0, 1], [1, 0]]) if output == "sigmoid" else np.array([1, 0])
    val, g = fnn.value_and_grad(net, X, y)
    assert np.isfinite(val) and val > 1e3  # confidently wrong: a large, finite loss
    assert all(np.isfinite(x).all() for x in tree.leaves(g))
    out = fnn.predict(net, X)
    assert np.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()


def test_mse_on_huge_outputs_overflows_loudly_not_to_nan() -> None:
    net = fnn.Network(layers=[fnn.Dense(W=[[1.0]])], loss="mse")
    # (1e200)^2 overflows: with np.seterr(all="raise") that is a FloatingPointError,
    # the documented error; never a silent NaN.
    with pytest.raises(FloatingPointError):
        fnn.loss(net, [[1e200]], [0.0])
