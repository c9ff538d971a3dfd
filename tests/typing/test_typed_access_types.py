"""Typed access for research code: a layer's arrays, the optimizer state after a fit and
an optimizer's moments are typed values, not ``Layer`` or ``Any``. mypy --strict checks
the assert_type lines; pytest runs them, so each is also a working call."""

from __future__ import annotations

from typing import Any, assert_type

import numpy as np
from numpy.typing import NDArray

import fnn
from fnn.optim import AdamState, OptState, SGDState

FloatArray = NDArray[np.floating[Any]]


def test_a_layer_by_index_and_class_is_that_class() -> None:
    net = fnn.init(fnn.mlp([2, 4, 1], dropout=0.5), rng=0)
    first = net.layer(0, fnn.Dense)
    assert_type(first, fnn.Dense)
    assert_type(first.W, FloatArray)
    assert_type(net.layer(1, fnn.Dropout).rate, float)
    assert first is net.layers[0]


def test_a_fits_history_has_its_optimizer_state() -> None:
    rng = np.random.default_rng(0)
    X, y = fnn.datasets.make_moons(32, noise=0.2, rng=rng)
    net = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=rng)
    _, history = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=2, batch_size=16, rng=rng, verbose=0)
    assert_type(history, fnn.FitHistory)
    assert_type(history.opt_state, OptState)
    assert_type(history.opt_state.step, int)
    assert history.opt_state.step == 4  # 2 epochs of 2 batches
    assert_type(fnn.History().opt_state, OptState | None)  # a bare History may have none


def test_optimizer_moments_are_typed_arrays() -> None:
    net = fnn.init(fnn.mlp([2, 4, 1]), rng=0)
    adam = fnn.adam().init(net).transform_state(0, AdamState)
    assert_type(adam, AdamState)
    assert_type(adam.mu, FloatArray)
    assert_type(adam.nu, FloatArray)
    sgd = fnn.sgd(0.1, momentum=0.9).init(net).transform_state(0, SGDState)
    assert_type(sgd.momentum_buffer, FloatArray | None)
    assert adam.mu.shape == adam.nu.shape == net.flat.shape
