from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import tree
from fnn.testing import strategies as fst


def hand_set() -> fnn.Network:
    # node_0_0=[2,4], node_0_1=[4,-5]: column j of W holds the weights into node j
    return fnn.Network(
        layers=[
            fnn.Dense(W=np.array([[2, 4], [4, -5]]).T, activation="relu"),
            fnn.Dense(W=np.array([[-1, 1], [2, 2]]).T, activation="relu"),
            fnn.Dense(W=np.array([[2, 7]]).T),
        ],
        loss="mse",
    )


def test_hand_set_weights_give_364() -> None:
    # hidden 1: relu([3*2+5*4, 3*4-5*5]) = [26, 0]; hidden 2: relu([-26, 52]) = [0, 52];
    # output: 0*2 + 52*7 = 364
    out = fnn.predict(hand_set(), np.array([[3, 5]]))
    assert out.shape == (1, 1)
    assert out[0, 0] == 364.0


def test_one_sgd_step_worked_by_hand() -> None:
    # A single linear unit w=2, b=0, input x=3, target 4, MSE: pred 6, loss (6-4)^2 = 4,
    # dL/dpred = 2*(6-4) = 4, dL/dw = 4*3 = 12, dL/db = 4.
    net = fnn.Network(layers=[fnn.Dense(W=[[2.0]], b=[0.0])], loss="mse")
    val, g = fnn.value_and_grad(net, [[3.0]], [4.0])
    assert val == 4.0
    assert g.layers[0].W[0, 0] == 12.0  # type: ignore[attr-defined]
    assert g.layers[0].b[0] == 4.0  # type: ignore[attr-defined]


def test_shapes_and_structure() -> None:
    arch = fnn.mlp([2, 16, 16, 1], hidden="relu", output="sigmoid", dropout=0.1)
    net = fnn.init(arch, rng=0)
    X = np.random.default_rng(0).normal(size=(10, 2))
    out, cache = fnn.forward(net, X)
    assert out.shape == (10, 1) and ((out > 0) & (out < 1)).all()
    assert cache.logits.shape == (10, 1)
    grads = fnn.backward(net, cache, np.zeros(10))
    assert type(grads) is fnn.Network and tree.same_structure(grads, net)
    for p, g in zip(tree.leaves(net), tree.leaves(grads), strict=True):
        assert p.shape == g.shape
    assert [type(layer).__name__ for layer in net.layers] == [
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]


def test_softmax_outputs_are_probabilities() -> None:
    net = fnn.init(fnn.mlp([4, 8, 3], output="softmax"), rng=1)
    out = fnn.predict(net, np.random.default_rng(0).normal(size=(6, 4)))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_per_layer_activations_and_initialisers() -> None:
    arch = fnn.mlp(
        [3, 4, 5, 2],
        hidden=["tanh", fnn.activations.LeakyReLU(0.2)],
        initializer=["glorot_normal", fnn.initializers.Normal(0.01)],
        output_initializer="zeros",
    )
    net = fnn.init(arch, rng=0)
    d0, d1, d2 = net.layers
    assert isinstance(d0, fnn.Dense) and isinstance(d1, fnn.Dense) and isinstance(d2, fnn.Dense)
    assert d0.activation == fnn.activations.Tanh()
    assert d1.activation == fnn.activations.LeakyReLU(0.2)
    assert 0.001 < d1.W.std() < 0.02  # randn * 0.01
    assert not d2.W.any()


def test_initialiser_variances() -> None:
    gen = np.random.default_rng(0)
    n_in, n_out = 400, 300
    d = np.dtype(np.float64)
    for ini, var in [
        (fnn.initializers.HeNormal(), 2 / n_in),
        (fnn.initializers.HeUniform(), 2 / n_in),
        (fnn.initializers.GlorotNormal(), 2 / (n_in + n_out)),
        (fnn.initializers.GlorotUniform(), 2 / (n_in + n_out)),
        (fnn.initializers.LecunNormal(), 1 / n_in),
    ]:
        W = ini((n_in, n_out), rng=gen, dtype=d)
        assert W.var() == pytest.approx(var, rel=0.03), ini.name
        assert abs(W.mean()) < 0.01


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_end_to_end(dtype: Any) -> None:
    net = fnn.init(fnn.mlp([3, 5, 2], output="softmax", dtype=dtype), rng=0)
    assert net.dtype == dtype
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(dtype)
    out, cache = fnn.forward(net, X)
    assert out.dtype == dtype and cache.logits.dtype == dtype
    grads = fnn.backward(net, cache, [0, 1, 1, 0])
    assert all(g.dtype == dtype for g in tree.leaves(grads))
    # ints, bools and float16 are converted to the network's dtype
    for Xo in (X.astype(np.int64), X > 0, X.astype(np.float16)):
        assert fnn.predict(net, Xo).dtype == dtype


def test_purity_inputs_and_params_unchanged() -> None:
    net = fnn.init(fnn.mlp([3, 5, 1], output="sigmoid", dropout=0.5), rng=0)
    before = tree.map(np.copy, net)
    X = np.random.default_rng(0).normal(size=(6, 3))
    y = np.array([0, 1, 1, 0, 1, 0])
    X0, y0 = X.copy(), y.copy()
    _, cache = fnn.forward(net, X, train=True, rng=1)
    fnn.backward(net, cache, y)
    fnn.value_and_grad(net, X, y, train=True, rng=2)
    fnn.predict(net, X)
    fnn.loss(net, X, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)
    assert tree.allclose(net, before, rtol=0, atol=0)


def test_writing_into_a_param_raises() -> None:
    net = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    layer = net.layers[0]
    assert isinstance(layer, fnn.Dense) and layer.b is not None
    with pytest.raises(ValueError, match="read-only"):
        layer.W[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        layer.b += 1.0  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        layer.W = np.zeros((2, 3))  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        net.layers = ()  # type: ignore[misc]


def test_same_seed_same_bits() -> None:
    arch = fnn.mlp([4, 8, 8, 3], output="softmax", dropout=0.3)
    a, b = fnn.init(arch, rng=7), fnn.init(arch, rng=np.random.default_rng(7))
    assert tree.allclose(a, b, rtol=0, atol=0)
    X = np.random.default_rng(0).normal(size=(5, 4))
    oa, _ = fnn.forward(a, X, train=True, rng=3)
    ob, _ = fnn.forward(b, X, train=True, rng=3)
    assert np.array_equal(oa, ob)
    assert not tree.allclose(a, fnn.init(arch, rng=8))


def test_dropout_train_flag_and_mask() -> None:
    net = fnn.init(fnn.mlp([50, 200, 1], dropout=0.5), rng=0)
    X = np.ones((4, 50))
    assert np.array_equal(fnn.forward(net, X)[0], fnn.predict(net, X))
    _, cache = fnn.forward(net, X, train=True, rng=0)
    mask = cache.layers[1].mask  # type: ignore[attr-defined]
    assert set(np.unique(mask)) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-0.5)
    assert 0.4 < (mask == 0).mean() < 0.6


@given(fst.networks_and_batches(max_samples=10), st.integers(0, 10**6))
def test_forward_on_a_subset_is_the_subset_of_forward(case: Any, seed: int) -> None:
    net, X, _ = case
    idx = np.random.default_rng(seed).permutation(len(X))[: max(1, len(X) // 2)]
    np.testing.assert_allclose(
        fnn.predict(net, X[idx]), fnn.predict(net, X)[idx], rtol=1e-12, atol=1e-14
    )


@given(fst.networks_and_batches(max_samples=10), st.integers(0, 10**6))
def test_permuting_samples_permutes_outputs(case: Any, seed: int) -> None:
    net, X, _ = case
    perm = np.random.default_rng(seed).permutation(len(X))
    np.testing.assert_allclose(
        fnn.predict(net, X[perm]), fnn.predict(net, X)[perm], rtol=1e-12, atol=1e-14
    )


@given(fst.networks_and_batches(max_samples=6), st.floats(-3, 3), st.integers(0, 10**6))
def test_layer_backward_is_linear_in_the_upstream_gradient(case: Any, c: float, seed: int) -> None:
    net, X, _ = case
    gen = np.random.default_rng(seed)
    h = X
    for layer in net.layers:
        out, cache = layer.forward(h, train=True, rng=np.random.default_rng(seed))
        d1, d2 = gen.normal(size=out.shape), gen.normal(size=out.shape)
        g1, x1 = layer.backward(cache, d1)
        g2, x2 = layer.backward(cache, d2)
        g12, x12 = layer.backward(cache, d1 + c * d2)
        expected = tree.map(lambda a, b: a + c * b, g1, g2)
        assert tree.allclose(g12, expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(x12, x1 + c * x2, rtol=1e-9, atol=1e-9)
        h = out


def test_loss_function_and_one_sample() -> None:
    net = fnn.init(fnn.mlp([3, 4, 3], output="softmax"), rng=0)
    X = np.ones((1, 3))
    out, cache = fnn.forward(net, X)
    g = fnn.backward(net, cache, [2])
    assert out.shape == (1, 3) and np.isfinite(tree.global_norm(g))
    assert fnn.loss(net, X, [2]) == pytest.approx(-np.log(out[0, 2]))


def test_layer_modules_expose_init_forward_backward() -> None:
    gen = np.random.default_rng(0)
    layer = fnn.dense.init(3, 2, rng=gen, activation="tanh")
    X = gen.normal(size=(4, 3))
    a, cache = fnn.dense.forward(layer, X)
    assert isinstance(cache, fnn.DenseCache)
    grads, d_in = fnn.dense.backward(layer, cache, np.ones_like(a))
    assert isinstance(grads, fnn.Dense) and d_in.shape == X.shape
    drop = fnn.dropout.init(0.25)
    out, dc = fnn.dropout.forward(drop, X, train=True, rng=gen)
    _, d_in = fnn.dropout.backward(drop, dc, np.ones_like(out))
    assert dc.mask is not None and np.array_equal(d_in, dc.mask)
