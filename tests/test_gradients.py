"""Gradient checks through whole random networks: every activation x every loss x
dense/dropout (fixed masks), in float64."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn.testing import check_grads, check_layer_grads
from fnn.testing import strategies as fst


@pytest.mark.parametrize("hidden", fst.HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize(("output", "loss"), fst.LOSSES, ids=[l for _, l in fst.LOSSES])
@given(data=st.data())
def test_every_activation_and_loss(
    hidden: str, output: Any, loss: str, data: st.DataObject
) -> None:
    depth = data.draw(st.integers(1, 3), label="depth")
    widths = [data.draw(st.integers(1, 6), label="width") for _ in range(depth + 1)]
    n_out = data.draw(st.integers(2 if output == "softmax" else 1, 4), label="n_out")
    rate = data.draw(st.sampled_from([0.0, 0.4]), label="dropout")
    arch = fnn.mlp([*widths, n_out], hidden=hidden, output=output, loss=loss, dropout=rate)
    net = fnn.init(arch, rng=data.draw(st.integers(0, 2**31), label="seed"))
    # random biases too: with zero biases a dead unit feeds an exact 0 to the next ReLU,
    # a kink where central differences and the one-sided derivative disagree
    flat = fnn.tree.ravel(net)
    net = fnn.tree.unravel(net, flat + np.random.default_rng(len(flat)).normal(0, 0.3, flat.shape))
    n = data.draw(st.integers(1, 7), label="n")
    seed = data.draw(st.integers(0, 2**31), label="data seed")
    X = np.random.default_rng(seed).normal(size=(n, widths[0]))
    y = fst.targets(net, n, seed)
    weighted = data.draw(st.booleans(), label="weighted")
    w = np.random.default_rng(seed).uniform(0.1, 2, n) if weighted else None
    check_grads(net, X, y, train=rate > 0, seed=seed % 1000, sample_weight=w)


@given(fst.networks_and_batches())
def test_elementwise_mode_on_random_networks(case: Any) -> None:
    net, X, y = case
    check_grads(net, X, y, mode="elementwise")


def test_check_grads_reports_the_worst_path_and_index() -> None:
    net = fnn.init(fnn.mlp([2, 3, 1], hidden="tanh"), rng=0)
    X = np.random.default_rng(0).normal(size=(4, 2))
    y = np.zeros(4)

    real_backward = fnn.Dense.backward_into

    def wrong(self: fnn.Dense, cache: Any, d_out: np.ndarray, grads: fnn.Dense, *rest: Any) -> Any:
        d_in = real_backward(self, cache, d_out, grads, *rest)
        if self.n_in == 3:  # corrupt the output layer's W[1, 0]
            grads.W[1, 0] += 1.0
        return d_in

    mp = pytest.MonkeyPatch()
    mp.setattr(fnn.Dense, "backward_into", wrong)
    try:
        with pytest.raises(AssertionError, match=r"gradient of layers.1.W\[1, 0\] differs"):
            check_grads(net, X, y, mode="elementwise")
        with pytest.raises(AssertionError, match="directional derivative 0 differs"):
            check_grads(net, X, y)
    finally:
        mp.undo()
    assert check_grads(net, X, y) < 1e-5


@given(st.integers(0, 10**6), st.sampled_from(fst.HIDDEN_ACTIVATIONS))
def test_single_layer_checks(seed: int, act: str) -> None:
    gen = np.random.default_rng(seed)
    layer = fnn.dense.init(3, 4, rng=gen, activation=act)
    check_layer_grads(layer, gen.normal(size=(5, 3)), mode="elementwise")
    check_layer_grads(fnn.Dropout(0.3), gen.normal(size=(5, 3)), train=True, seed=seed)
