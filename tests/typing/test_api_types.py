"""What users' type checkers see. mypy --strict checks the assert_type lines (CI runs
it on tests/); pytest runs the same code, so each line is also a working call."""

from __future__ import annotations

from typing import Any, assert_type

import numpy as np
from numpy.typing import NDArray

import fnn
from fnn.testing import check_grads

FloatArray = NDArray[np.floating[Any]]


def test_public_api_types() -> None:
    rng = np.random.default_rng(0)
    arch = fnn.mlp([2, 8, 1], hidden="relu", output="sigmoid")
    assert_type(arch, fnn.Architecture)
    net = fnn.init(arch, rng=rng)
    assert_type(net, fnn.Network)
    X = rng.normal(size=(4, 2))
    out, cache = fnn.forward(net, X)
    assert_type(out, FloatArray)
    assert_type(cache, fnn.NetworkCache)
    assert_type(cache.logits, FloatArray)
    grads = fnn.backward(net, cache, np.zeros(4))
    assert_type(grads, fnn.Network)
    assert_type(fnn.predict(net, X), FloatArray)
    assert_type(fnn.loss(net, X, np.zeros(4)), float)
    value, g = fnn.value_and_grad(net, X, np.zeros(4))
    assert_type(value, float)
    assert_type(g, fnn.Network)
    assert_type(fnn.tree.flatten(net), dict[str, FloatArray])
    assert_type(fnn.tree.map(lambda a: a * 2, net), fnn.Network)
    assert_type(fnn.tree.unravel(net, fnn.tree.ravel(net)), fnn.Network)
    assert_type(fnn.tree.global_norm(grads), float)
    assert_type(check_grads(net, X, np.zeros(4)), float)


def test_layer_api_types() -> None:
    rng = np.random.default_rng(0)
    layer = fnn.dense.init(2, 3, rng=rng, activation="tanh")
    assert_type(layer, fnn.Dense)
    assert_type(layer.W, FloatArray)
    a, c = fnn.dense.forward(layer, rng.normal(size=(4, 2)))
    assert_type(c, fnn.DenseCache)
    grads, d_in = fnn.dense.backward(layer, c, a)
    assert_type(grads, fnn.Dense)
    assert_type(d_in, FloatArray)
    assert_type(fnn.activations.get("relu"), fnn.activations.Activation)
    assert_type(fnn.losses.get("mse"), fnn.losses.Loss)


def test_training_api_types(tmp_path: Any) -> None:
    rng = np.random.default_rng(0)
    X, y = fnn.datasets.make_moons(64, noise=0.2, rng=rng)
    net = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=rng)
    opt = fnn.adam(learning_rate=1e-2)
    assert_type(opt, fnn.Optimizer)
    state = opt.init(net)
    assert_type(state, fnn.OptState)
    _, cache = fnn.forward(net, X)
    net2, state2 = fnn.update(net, fnn.backward(net, cache, y), state)
    assert_type(net2, fnn.Network)
    assert_type(state2, fnn.OptState)
    assert_type(state2.learning_rate, float)
    net3, state3, loss = fnn.train_step(net2, state2, X, y)
    assert_type(state3, fnn.OptState)
    assert_type(loss, float)
    trained, history = fnn.fit(net3, opt, X, y, epochs=2, rng=rng, verbose=0)
    assert_type(trained, fnn.Network)
    assert_type(history, fnn.FitHistory)
    assert_type(history.train_loss, list[float])
    assert_type(fnn.evaluate(trained, X, y, metrics=["accuracy"]), dict[str, float])
    ck = fnn.load(fnn.save(tmp_path / "m", trained, opt_state=history.opt_state))
    assert_type(ck, fnn.Checkpoint)
    assert_type(ck.params, fnn.Network)
    assert_type(fnn.metrics.accuracy(y, fnn.predict(trained, X)), float)
