"""Every BAD_INPUTS.md row about forward, backward, losses and construction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn
from fnn import tree


@pytest.fixture
def net() -> fnn.Network:
    return fnn.init(fnn.mlp([3, 4, 1], output="sigmoid"), rng=0)


@pytest.fixture
def clf() -> fnn.Network:
    return fnn.init(fnn.mlp([3, 4, 10], output="softmax"), rng=0)


X3 = np.ones((5, 3))


@pytest.mark.parametrize(
    ("X", "error", "message"),
    [
        (np.array([[1.0, np.nan, 0.0]]), ValueError, "Input X contains NaN"),
        (np.array([[1.0, np.inf, 0.0]]), ValueError, "Input X contains infinity"),
        (np.array([[1.0, -np.inf, 0.0]]), ValueError, "Input X contains infinity"),
        (np.array([[1.0, 0.0, 0.0], [0, np.nan, 0]], np.float32), ValueError, "contains NaN"),
        (
            np.zeros((0, 3)),
            ValueError,
            r"Found array with 0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is required",
        ),
        (np.zeros((4, 0)), ValueError, r"0 feature\(s\) \(shape=\(4, 0\)\)"),
        (
            np.ones(3),
            ValueError,
            r"Expected 2D array, got 1D array.*X.reshape\(-1, 1\).*X.reshape\(1, -1\)",
        ),
        (
            np.ones((2, 3, 1)),
            ValueError,
            r"Expected 2D array \(n_samples, n_features\), got 3D array",
        ),
        (np.ones((5, 2)), ValueError, "X has 2 features, but the network expects 3"),
        (np.ones((2, 3)) + 1j, ValueError, "Complex data not supported"),
        (np.array([["a", "b", "c"]]), ValueError, "could not convert"),
        ("abc", ValueError, "could not convert string to float"),
        (np.array([[object(), 1, 2]], dtype=object), ValueError, "could not convert"),
    ],
)
def test_bad_X(net: fnn.Network, X: Any, error: type[Exception], message: str) -> None:
    for call in (
        lambda: fnn.forward(net, X),
        lambda: fnn.predict(net, X),
        lambda: fnn.loss(net, X, np.zeros(len(X) if np.ndim(X) else 1)),
    ):
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0, 1, np.nan, 0, 1]), "Input y contains NaN"),
        (np.array([0, 1, np.inf, 0, 1]), "Input y contains infinity"),
        (np.zeros(4), r"inconsistent numbers of samples: \[5, 4\]"),
        (
            np.zeros((5, 3)),
            r"y has shape \(5, 3\), but the network has 1 output\(s\): expected \(5,\) or \(5, 1\)",
        ),
        (np.zeros((5, 5)), r"y has shape \(5, 5\)"),  # never broadcast to (n, n)
        (np.array([0, 1, 2, 0, 1]), r"label 2 out of range \[0, 1\]"),
    ],
)
def test_bad_y_for_binary_network(net: fnn.Network, y: Any, message: str) -> None:
    _, cache = fnn.forward(net, X3)
    with pytest.raises(ValueError, match=message):
        fnn.backward(net, cache, y)
    with pytest.raises(ValueError, match=message):
        fnn.value_and_grad(net, X3, y)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0, 1, 10, 0, 1]), r"label 10 out of range \[0, 10\)"),
        (np.array([0, 1, -1, 0, 1]), r"label -1 out of range \[0, 10\)"),
        (np.array([0, 1, 2.5, 0, 1]), "label 2.5 is not an integer"),
        (np.zeros((5, 3)), r"y has shape \(5, 3\), but the network has 10 classes"),
        (np.zeros((5, 1)), r"y has shape \(5, 1\)"),
    ],
)
def test_bad_labels_for_classifier(clf: fnn.Network, y: Any, message: str) -> None:
    _, cache = fnn.forward(clf, X3)
    with pytest.raises(ValueError, match=message):
        fnn.backward(clf, cache, y)


def test_accepted_inputs_are_never_written(net: fnn.Network) -> None:
    base = np.random.default_rng(0).normal(size=(6, 3))
    ro = base.copy()
    ro.flags.writeable = False
    fortran = np.asfortranarray(base)
    strided = np.random.default_rng(0).normal(size=(6, 6))[:, ::2]
    for X in (ro, fortran, strided, base.astype(np.float32), base.astype(int), base > 0):
        X0 = np.array(X, copy=True)
        out, cache = fnn.forward(net, X)
        fnn.backward(net, cache, np.zeros(6))
        assert np.array_equal(X, X0)
        assert out.dtype == np.float64
    np.testing.assert_allclose(fnn.predict(net, fortran), fnn.predict(net, base))
    np.testing.assert_allclose(
        fnn.predict(net, strided), fnn.predict(net, np.ascontiguousarray(strided))
    )


def test_float32_network_keeps_float32() -> None:
    net32 = fnn.init(fnn.mlp([3, 4, 1], dtype=np.float32), rng=0)
    out, cache = fnn.forward(net32, X3.astype(np.float32))
    assert out.dtype == np.float32
    g = fnn.backward(net32, cache, np.zeros(5, dtype=np.float32))
    assert {x.dtype for x in tree.leaves(g)} == {np.dtype(np.float32)}


def test_params_of_wrong_shape_or_dtype_name_the_path() -> None:
    good = fnn.init(fnn.mlp([3, 4, 2]), rng=0)
    d0, d1 = good.layers
    assert isinstance(d0, fnn.Dense) and isinstance(d1, fnn.Dense)
    with pytest.raises(
        ValueError, match=r"layers.1 expects 5 inputs but the previous layer gives 4 \(layers.1.W"
    ):
        fnn.Network(layers=[d0, fnn.Dense(W=np.zeros((5, 2)))], loss="mse")
    with pytest.raises(
        ValueError, match="'layers.1.W' has dtype float32, but the network's dtype is float64"
    ):
        fnn.Network(layers=[d0, fnn.Dense(W=np.zeros((4, 2), np.float32))], loss="mse")
    with pytest.raises(ValueError, match=r"b must have shape \(2,\), got \(3,\)"):
        fnn.Dense(W=np.zeros((4, 2)), b=np.zeros(3))
    with pytest.raises(ValueError, match="tree structures differ"):
        tree.map(lambda a, b: a, good, fnn.init(fnn.mlp([3, 4, 4, 2]), rng=0))
    with pytest.raises(TypeError, match="params must be an fnn.Network"):
        fnn.forward({"W": np.zeros((3, 1))}, X3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: fnn.mlp([2, 0, 1]), ValueError, r"layer width must be >= 1, got sizes\[1\]=0"),
        (lambda: fnn.mlp([2]), ValueError, "at least 2 entries"),
        (lambda: fnn.mlp([2, 2.5, 1]), TypeError, r"sizes\[1\] must be an int"),  # type: ignore[list-item]
        (
            lambda: fnn.mlp([2, 3, 1], dropout=1.0),
            ValueError,
            r"dropout rate must be in \[0, 1\), got 1.0",
        ),
        (lambda: fnn.mlp([2, 3, 1], dropout=-0.1), ValueError, r"dropout rate must be in \[0, 1\)"),
        (lambda: fnn.mlp([2, 3, 1], hidden="swish"), ValueError, "unknown activation 'swish'"),
        (lambda: fnn.mlp([2, 3, 1], output="relu"), ValueError, "unknown output 'relu'"),  # type: ignore[arg-type]
        (lambda: fnn.mlp([2, 3, 1], loss="nll"), ValueError, "unknown loss 'nll'"),
        (
            lambda: fnn.mlp([2, 3, 1], output="sigmoid", loss="mse"),
            ValueError,
            "pairs with output 'identity'",
        ),
        (
            lambda: fnn.mlp([2, 3, 1], output="softmax"),
            ValueError,
            "softmax output needs at least 2 units",
        ),
        (
            lambda: fnn.mlp([2, 3, 1], initializer="orthogonal"),
            ValueError,
            "unknown initializer 'orthogonal'",
        ),
        (
            lambda: fnn.mlp([2, 3, 1], dtype=np.float16),
            ValueError,
            "dtype must be float32 or float64",
        ),
        (
            lambda: fnn.mlp([2, 3, 4, 1], hidden=["relu"]),
            ValueError,
            "hidden has 1 entries but the network has 2",
        ),
        (lambda: fnn.initializers.Normal(-1.0), ValueError, "std must be"),
        (
            lambda: fnn.init(fnn.mlp([2, 1]), rng="seed"),  # type: ignore[arg-type]
            TypeError,
            "rng must be a numpy.random.Generator or an int seed",
        ),
        (lambda: fnn.init([2, 1], rng=0), TypeError, "architecture must be an fnn.Architecture"),  # type: ignore[arg-type]
    ],
)
def test_construction_errors(build: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_dropout_training_needs_rng() -> None:
    net = fnn.init(fnn.mlp([3, 4, 1], dropout=0.5), rng=0)
    with pytest.raises(ValueError, match="rng is required when train=True"):
        fnn.forward(net, X3, train=True)


def test_cache_from_another_network() -> None:
    a = fnn.init(fnn.mlp([3, 4, 1]), rng=0)
    b = fnn.init(fnn.mlp([3, 4, 4, 1]), rng=0)
    _, cache = fnn.forward(a, X3)
    with pytest.raises(ValueError, match="cache does not come from a forward pass of this network"):
        fnn.backward(b, cache, np.zeros(5))
    with pytest.raises(TypeError, match="cache must be an fnn.NetworkCache"):
        fnn.backward(a, None, np.zeros(5))  # type: ignore[arg-type]


def test_sample_weight_errors(net: fnn.Network) -> None:
    _, cache = fnn.forward(net, X3)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(5,\), got \(4,\)"):
        fnn.backward(net, cache, np.zeros(5), sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        fnn.backward(net, cache, np.zeros(5), sample_weight=-np.ones(5))


def test_finite_X_whose_sums_overflow_is_accepted() -> None:
    # the fast finiteness check sums rows; an overflowing sum of finite values must
    # fall back to the exact check, not reject the input
    from fnn._validation import check_2d

    big = np.full((4, 3), 3e38, np.float32)
    assert check_2d(big, name="X", dtype=np.dtype(np.float32)) is big
