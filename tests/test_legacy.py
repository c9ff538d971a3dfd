"""The earlier protocols are adapted in one place, ``fnn._legacy`` (issue 19, point 3):
what fits them works (tests/test_execution_path.py runs such classes everywhere); what
fits neither protocol is refused when the class is defined, naming the method."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest

import fnn
from fnn import _legacy
from fnn.layers import LayerBase


def test_the_three_bases_share_the_one_adapter() -> None:
    @attrs.frozen
    class Cube(fnn.activations.Activation):
        def __call__(self, z: Any) -> Any:  # type: ignore[override]  # earlier: no out=
            return z**3

        def vjp(self, z: Any, a: Any, da: Any) -> Any:  # type: ignore[override]
            return 3 * z**2 * da

    @attrs.frozen
    class Half(fnn.losses.MeanSquaredError):
        def per_sample(self, logits: Any, y: Any) -> Any:
            return 0.5 * np.sum((logits - y) ** 2, axis=1)

    assert _legacy.is_adapter(Cube.__call__) and _legacy.is_adapter(Cube.vjp)
    assert _legacy.is_adapter(Half.fused)
    z = np.linspace(-1, 1, 5)
    out = np.empty_like(z)
    got = Cube()(z, out=out)  # type: ignore[call-arg]
    assert got is out and np.allclose(out, z**3)
    logits, y = np.ones((2, 1)), np.zeros((2, 1))
    assert Half().value(logits, y) == pytest.approx(
        0.5 * fnn.losses.MeanSquaredError().value(logits, y)
    )


def test_an_activation_fitting_neither_protocol_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"activation Bad\.__call__\(self\) cannot be adapted"):

        @attrs.frozen
        class Bad(fnn.activations.Activation):
            def __call__(self) -> Any:  # type: ignore[override]
                return None


def test_a_loss_fitting_neither_protocol_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"loss Bad\.per_sample\(self, logits\) cannot be"):

        @attrs.frozen
        class Bad(fnn.losses.MeanSquaredError):
            def per_sample(self, logits: Any) -> Any:  # type: ignore[override]
                return logits


def test_a_layer_forward_without_train_and_rng_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"layer Bad\.forward\(self, X\) cannot be adapted"):

        @attrs.frozen(eq=False)
        class Bad(fnn.Dense):
            def forward(self, X: Any) -> Any:  # type: ignore[override]
                return super().forward(X)


def test_a_legacy_backward_returning_other_leaves_is_a_clear_error() -> None:
    @attrs.frozen(eq=False)
    class Odd(fnn.Dense):
        def backward(self, cache: Any, d_out: Any) -> Any:
            g, d_in = super().backward(cache, d_out)
            return (g.W,), d_in  # one leaf, not a Dense

    layer = Odd(W=np.ones((2, 3)))
    assert isinstance(layer, LayerBase)
    net = fnn.Network(layers=[layer], loss="mse")
    X, y = np.ones((4, 2)), np.zeros((4, 3))
    _, cache = fnn.forward(net, X)
    with pytest.raises(ValueError, match="Odd.backward returned gradients with 1 leaves"):
        fnn.backward(net, cache, y)
