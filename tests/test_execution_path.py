"""Regressions of issue 11: one execution path, layers with state, purity of outputs.

Every way of training (``fnn.fit``, a loop of ``fnn.train_step``, and the design card's
loop ``forward(train=True) -> backward -> update``) must run the same math, including a
user's subclass, a user's layer written to the earlier protocol and a user's loss; the
batch-norm running statistics travel through all of them; optimizers never touch them.
"""

from __future__ import annotations

import copy
import inspect
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray

import fnn
from fnn import tree
from fnn.activations import log_softmax, softmax
from fnn.layers import BatchNorm, Context, LayerCache, Workspace
from tests.test_registry_properties import OPTIMIZERS

FloatArray = NDArray[np.floating[Any]]


def blobs(n: int = 12, d: int = 3, k: int = 3, seed: int = 0) -> tuple[FloatArray, Any]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, n)


def three_ways(
    net: fnn.Network, opt: fnn.Optimizer, X: Any, y: Any, *, seed: int = 4, steps: int = 1
) -> tuple[fnn.Network, fnn.Network, fnn.Network]:
    """The parameters after ``steps`` full-batch steps (no shuffling) taken by ``fit``, by
    a loop of ``train_step`` and by the design card's loop, each with one generator
    seeded ``seed`` (the layers draw from it in layer order, step by step)."""
    fitted, _ = fnn.fit(
        net, opt, X, y, epochs=steps, batch_size=len(X), rng=seed, shuffle=False, verbose=0
    )
    gen = np.random.default_rng(seed)
    stepped, state = net, opt.init(net)
    for _ in range(steps):
        stepped, state, _ = fnn.train_step(stepped, state, X, y, rng=gen)
    gen = np.random.default_rng(seed)
    looped, state = net, opt.init(net)
    for _ in range(steps):
        _, cache = fnn.forward(looped, X, train=True, rng=gen)
        grads = fnn.backward(looped, cache, y)
        looped, state = fnn.update(looped, grads, state)
    return fitted, stepped, looped


def assert_same_bits(*nets: fnn.Network) -> None:
    for other in nets[1:]:
        assert other.layout.key == nets[0].layout.key
        assert np.array_equal(other.flat, nets[0].flat)


# --- a subclass of Dense, old protocol and kernel protocol --------------------------------


@attrs.frozen(eq=False)
class DoubledDense(fnn.Dense):
    """Dense whose output is doubled, written to the earlier protocol."""

    def forward(
        self, X: FloatArray, *, train: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[FloatArray, LayerCache]:
        out, cache = super().forward(X, train=train, rng=rng)
        return 2 * out, cache

    def backward(self, cache: LayerCache, d_out: FloatArray) -> tuple[DoubledDense, FloatArray]:
        return super().backward(cache, 2 * d_out)


@attrs.frozen(eq=False)
class DoubledDenseKernels(fnn.Dense):
    """The same layer written to the kernel protocol."""

    def forward_into(self, X: FloatArray, ctx: Context, ws: Workspace) -> tuple[FloatArray, Any]:
        out, cache = super().forward_into(X, ctx, ws)
        return np.multiply(out, 2.0, out=ws.empty("doubled", out.shape, out.dtype)), cache

    def backward_into(
        self,
        cache: Any,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        d2 = np.multiply(d_out, 2.0, out=ws.empty("d2", d_out.shape, d_out.dtype))
        return super().backward_into(cache, d2, grads, ctx, ws, need_d_in)


def dense_network(first: type[fnn.Dense], seed: int = 0) -> fnn.Network:
    rng = np.random.default_rng(seed)
    return fnn.network.pack(
        fnn.Network(
            layers=[
                first(W=rng.normal(size=(3, 5)), b=rng.normal(size=5), activation="tanh"),
                fnn.Dropout(rate=0.2),
                fnn.Dense(W=rng.normal(size=(5, 3)), b=rng.normal(size=3)),
            ],
            loss="cross_entropy",
        )
    )


@pytest.mark.parametrize("cls", [DoubledDense, DoubledDenseKernels])
def test_a_dense_subclass_is_honoured_everywhere(cls: type[fnn.Dense]) -> None:
    X, y = blobs()
    net = dense_network(cls)
    assert fnn.testing.check_grads(net, X, y, train=True, mode="elementwise") < 1e-5
    fitted, stepped, looped = three_ways(net, fnn.adam(0.05), X, y, steps=2)
    assert_same_bits(fitted, stepped, looped)
    plain, _, _ = three_ways(dense_network(fnn.Dense), fnn.adam(0.05), X, y, steps=2)
    assert not np.allclose(plain.flat, fitted.flat, rtol=0, atol=1e-6)
    # the doubled first layer shows in the outputs, too
    out, _ = fnn.forward(net, X)
    first = net.layers[0]
    assert isinstance(first, cls)
    base = attrs.evolve(
        net, layers=[fnn.Dense(W=first.W, b=first.b, activation="tanh"), *net.layers[1:]]
    )
    assert not np.allclose(out, fnn.forward(base, X)[0])


# --- a subclass of ReLU written to the earlier activation protocol ------------------------


@attrs.frozen
class LeakyReLUOldProtocol(fnn.activations.ReLU):
    """A ReLU subclass with a slope of 0.1 below zero: ``__call__(z)`` and
    ``vjp(z, a, da)`` without ``out=`` (the earlier protocol)."""

    def __call__(self, z: FloatArray) -> FloatArray:  # type: ignore[override]
        return np.where(z > 0, z, 0.1 * z)

    def vjp(self, z: FloatArray, a: FloatArray, da: FloatArray) -> FloatArray:  # type: ignore[override]
        return da * np.where(z > 0, 1.0, 0.1)


def relu_network(act: fnn.activations.Activation, seed: int = 0) -> fnn.Network:
    rng = np.random.default_rng(seed)
    return fnn.network.pack(
        fnn.Network(
            layers=[
                fnn.Dense(W=rng.normal(size=(3, 6)), b=rng.normal(size=6), activation=act),
                fnn.Dense(W=rng.normal(size=(6, 3)), b=rng.normal(size=3)),
            ],
            loss="cross_entropy",
        )
    )


def test_a_relu_subclass_with_the_old_signature_is_honoured_by_fit() -> None:
    act = LeakyReLUOldProtocol()
    assert fnn.activations.ReLU.in_place
    assert not type(act).in_place  # its vjp reads z: the output may not overwrite z
    z = np.array([[-2.0, 3.0]])
    assert np.array_equal(act(z, out=np.empty_like(z)), [[-0.2, 3.0]])  # type: ignore[call-arg]
    X, y = blobs()
    net = relu_network(act)
    assert fnn.testing.check_grads(net, X, y, mode="elementwise") < 1e-5
    fitted, stepped, looped = three_ways(net, fnn.sgd(0.5), X, y, steps=2)
    assert_same_bits(fitted, stepped, looped)
    plain, _, _ = three_ways(relu_network(fnn.activations.ReLU()), fnn.sgd(0.5), X, y, steps=2)
    assert not np.allclose(plain.flat, fitted.flat, rtol=0, atol=1e-6)


# --- a user's layer written to the earlier protocol ----------------------------------------


@attrs.frozen(eq=False)
class ScaleCache:
    x: FloatArray


@attrs.frozen(eq=False)
class Scale:
    """A plain attrs layer (not an fnn class): ``out = X * s`` per feature."""

    s: FloatArray = attrs.field(converter=fnn.tree.readonly)

    @property
    def n_in(self) -> int:
        return int(self.s.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.s.shape[0])

    def forward(
        self, X: FloatArray, *, train: bool, rng: np.random.Generator | None
    ) -> tuple[FloatArray, ScaleCache]:
        return X * self.s, ScaleCache(x=X)

    def backward(self, cache: ScaleCache, d_out: FloatArray) -> tuple[Scale, FloatArray]:
        return Scale(s=(d_out * cache.x).sum(axis=0)), d_out * self.s

    def config(self) -> dict[str, object]:
        return {"kind": "test_scale", "n": self.n_in}


def scale_network(seed: int = 0) -> fnn.Network:
    rng = np.random.default_rng(seed)
    return fnn.network.pack(
        fnn.Network(
            layers=[
                fnn.Dense(W=rng.normal(size=(3, 4)), b=rng.normal(size=4), activation="tanh"),
                Scale(s=rng.uniform(0.5, 2.0, 4)),  # type: ignore[list-item]
                fnn.Dropout(rate=0.3),
                fnn.Dense(W=rng.normal(size=(4, 3)), b=rng.normal(size=3)),
            ],
            loss="cross_entropy",
        )
    )


def test_a_layer_of_the_old_protocol_trains_under_fit_like_train_step() -> None:
    X, y = blobs(13)
    net = scale_network()
    assert fnn.testing.check_grads(net, X, y, train=True, mode="elementwise") < 1e-5
    opt = fnn.adam(0.05)
    fitted, h = fnn.fit(net, opt, X, y, epochs=3, batch_size=5, rng=2, verbose=0)
    gen = np.random.default_rng(2)  # fit's draws: a permutation per epoch, then the masks
    stepped, state = net, opt.init(net)
    for _ in range(3):
        order = gen.permutation(len(X))
        for s in range(0, len(X), 5):
            idx = order[s : s + 5]
            stepped, state, _ = fnn.train_step(stepped, state, X[idx], y[idx], rng=gen)
    assert_same_bits(fitted, stepped)
    assert not np.array_equal(fitted.layers[1].s, net.layers[1].s)  # type: ignore[attr-defined]
    assert h.opt_state is not None and h.opt_state.step == 9


# --- a custom loss ------------------------------------------------------------------------


@attrs.frozen
class SmoothedCrossEntropy(fnn.losses.SoftmaxCrossEntropy):
    """Label smoothing, written as the docs say: ``per_sample`` and ``per_sample_grad``."""

    name: ClassVar[str] = "test_smoothed_cross_entropy"
    smoothing: float = 0.2

    def smooth(self, y: FloatArray) -> FloatArray:
        ys: FloatArray = y * (1 - self.smoothing) + self.smoothing / y.shape[1]
        return ys

    def per_sample(self, logits: FloatArray, y: FloatArray) -> FloatArray:
        per: FloatArray = -(self.smooth(y) * log_softmax(logits)).sum(axis=1)
        return per

    def per_sample_grad(self, logits: FloatArray, y: FloatArray) -> FloatArray:
        return softmax(logits) - self.smooth(y)


@pytest.fixture
def smoothed_registered() -> Iterator[None]:
    fnn.losses.register(SmoothedCrossEntropy)
    yield
    fnn.losses.LOSSES.unregister(SmoothedCrossEntropy.name)


def linear_softmax(loss: fnn.losses.Loss, seed: int = 0) -> fnn.Network:
    rng = np.random.default_rng(seed)
    return fnn.network.pack(
        fnn.Network(layers=[fnn.Dense(W=rng.normal(size=(3, 4)), b=rng.normal(size=4))], loss=loss)
    )


def test_a_custom_loss_trains_with_its_own_math() -> None:
    X, y = blobs(10, k=4)
    net = linear_softmax(SmoothedCrossEntropy())
    # by hand: z = X W + b, ys = smoothed one-hot, dL/dz = (softmax(z) - ys) / n
    W, b = net.layers[0].W, net.layers[0].b  # type: ignore[attr-defined]
    z = X @ W + b
    ys = np.eye(4)[y] * 0.8 + 0.05
    value = float(-(ys * log_softmax(z)).sum(axis=1).mean())
    dz = (softmax(z) - ys) / len(X)
    W1, b1 = W - 0.5 * (X.T @ dz), b - 0.5 * dz.sum(axis=0)

    opt = fnn.sgd(0.5)
    stepped, _, got_value = fnn.train_step(net, opt.init(net), X, y)
    fitted, h = fnn.fit(net, opt, X, y, epochs=1, batch_size=10, shuffle=False, rng=0, verbose=0)
    assert got_value == pytest.approx(value, rel=1e-12)
    assert h.train_loss[0] == pytest.approx(value, rel=1e-12)
    assert fnn.loss(net, X, y) == pytest.approx(value, rel=1e-12)
    for got in (stepped, fitted):
        np.testing.assert_allclose(got.layers[0].W, W1, rtol=1e-12)  # type: ignore[attr-defined]
        np.testing.assert_allclose(got.layers[0].b, b1, rtol=1e-12)  # type: ignore[attr-defined]
    plain_net = linear_softmax(fnn.losses.SoftmaxCrossEntropy())
    plain, _, _ = fnn.train_step(plain_net, opt.init(plain_net), X, y)
    assert not np.allclose(plain.flat, stepped.flat)


@pytest.mark.usefixtures("smoothed_registered")
def test_a_registered_custom_loss_loads_from_a_checkpoint(tmp_path: Path) -> None:
    net = linear_softmax(SmoothedCrossEntropy(smoothing=0.3))
    X, y = blobs(10, k=4)
    ck = fnn.load(fnn.save(tmp_path / "smoothed.npz", net))
    assert type(ck.params.loss) is SmoothedCrossEntropy
    assert ck.params.loss.smoothing == 0.3
    assert fnn.loss(ck.params, X, y) == fnn.loss(net, X, y)


# --- batch norm: the design card's loop carries the state -------------------------------


def bn_network(seed: int = 0, dropout: float = 0.0, dtype: Any = np.float64) -> fnn.Network:
    return fnn.init(
        fnn.mlp([3, 6, 5, 3], output="softmax", norm="batch", dropout=dropout, dtype=dtype),
        rng=seed,
    )


def test_the_design_card_loop_updates_running_statistics_like_fit() -> None:
    X, y = blobs(16)
    net = bn_network(dropout=0.25)
    fitted, stepped, looped = three_ways(net, fnn.adam(1e-2), X, y, steps=3)
    assert_same_bits(fitted, stepped, looped)
    bn = looped.layers[1]
    assert isinstance(bn, BatchNorm)
    assert not np.array_equal(bn.running_mean, np.zeros(6))
    assert not np.array_equal(bn.running_var, np.ones(6))


def test_one_step_of_the_design_card_loop_gives_pytorch_running_statistics() -> None:
    X, y = blobs(16)
    net = bn_network()
    _, cache = fnn.forward(net, X, train=True)
    grads = fnn.backward(net, cache, y)
    new, _ = fnn.update(net, grads, fnn.sgd(0.1).init(net))
    dense = net.layers[0]
    z = X @ dense.W + dense.b  # type: ignore[attr-defined]
    bn = new.layers[1]
    assert isinstance(bn, BatchNorm)
    np.testing.assert_allclose(bn.running_mean, 0.1 * z.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * z.var(axis=0, ddof=1), rtol=1e-12)
    # the gradient tree carries the new statistics in its state leaves
    assert np.array_equal(grads.layers[1].running_mean, bn.running_mean)  # type: ignore[attr-defined]
    # and the old value is unchanged
    assert np.array_equal(net.layers[1].running_mean, np.zeros(6))  # type: ignore[attr-defined]


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=lambda e: e[0])
def test_optimizers_never_change_state_leaves(entry: tuple[str, Any]) -> None:
    """Whatever the optimizer does (weight decay, momentum, a huge step), the running
    statistics after ``update`` are exactly the ones ``backward`` computed."""
    X, y = blobs(16)
    net = bn_network()
    kwargs = (
        {"weight_decay": 0.5} if "weight_decay" in inspect.signature(entry[1]).parameters else {}
    )
    opt = entry[1](learning_rate=10.0, **kwargs)
    state = opt.init(net)
    mask = tree.trainable_mask(net)
    for _ in range(2):
        _, cache = fnn.forward(net, X, train=True)
        grads = fnn.backward(net, cache, y)
        new, state = fnn.update(net, grads, state)
        for (p, x), (_, g) in zip(
            tree.leaves_with_paths(new), tree.leaves_with_paths(grads), strict=True
        ):
            if not mask[p]:
                assert np.array_equal(x, g), p
        net = new
    fitted, _ = fnn.fit(
        bn_network(), opt, X, y, epochs=2, batch_size=16, shuffle=False, rng=0, verbose=0
    )
    assert_same_bits(fitted, net)


def test_frozen_parameters_stay_while_running_statistics_move() -> None:
    """fnn refuses a zero learning rate; freezing every leaf is the same: parameters
    stay, running statistics move as batch norm says, in every way of training."""
    X, y = blobs(16)
    net = bn_network()
    opt = fnn.chain(fnn.sgd(0.5, momentum=0.9), fnn.freeze(lambda p: True))
    mask = tree.trainable_mask(net)
    for got in three_ways(net, opt, X, y, steps=2):
        for (p, x), (_, x0) in zip(
            tree.leaves_with_paths(got), tree.leaves_with_paths(net), strict=True
        ):
            if mask[p]:
                assert np.array_equal(x, x0), p
            else:
                assert not np.array_equal(x, x0), p


def test_trainable_mask_marks_running_statistics() -> None:
    mask = tree.trainable_mask(bn_network())
    assert [p for p, t in mask.items() if not t] == [
        "layers.1.running_mean",
        "layers.1.running_var",
        "layers.4.running_mean",
        "layers.4.running_var",
    ]
    assert mask["layers.1.scale"] and mask["layers.1.shift"] and mask["layers.0.W"]


def test_optimizer_state_leaves_are_read_only_with_state_leaves() -> None:
    net = bn_network()
    state = fnn.adam().init(net)
    assert state.trainable is not None
    assert not state.trainable.flags.writeable


# --- trees of another network -------------------------------------------------------------


def twins() -> tuple[fnn.Network, fnn.Network]:
    """Two networks with 13 parameters each and different structures."""
    a = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    b = fnn.init(fnn.mlp([1, 4, 1]), rng=0)
    assert a.layout.size == b.layout.size == 13
    return a, b


def test_gradients_of_another_network_are_refused_naming_the_path() -> None:
    a, b = twins()
    X = np.random.default_rng(0).normal(size=(4, 2))
    y = np.ones(4)
    _, cb = fnn.forward(b, X[:, :1])
    gb = fnn.backward(b, cb, y)
    state = fnn.adam().init(a)
    with pytest.raises(ValueError, match=r"'layers\.0\.W'"):
        fnn.update(a, gb, state)
    with pytest.raises(ValueError, match="dict"):
        fnn.update(a, {"layers.0.W": np.zeros((2, 3))}, state)
    # a BN network's gradients against a plain network of another structure
    with pytest.raises(ValueError, match="layers"):
        fnn.update(
            a,
            fnn.backward(
                bn_network(),
                fnn.forward(bn_network(), np.ones((4, 3)), train=True)[1],
                np.zeros(4, int),
            ),
            state,
        )


def test_an_opt_state_of_another_network_is_refused() -> None:
    a, b = twins()
    big = fnn.init(fnn.mlp([2, 5, 1]), rng=0)
    X = np.random.default_rng(0).normal(size=(4, 2))
    y = np.ones(4)
    _, ca = fnn.forward(a, X)
    ga = fnn.backward(a, ca, y)
    for other in (b, big):
        state = fnn.adam().init(other)
        with pytest.raises(ValueError, match="opt_state"):
            fnn.update(a, ga, state)
        with pytest.raises(ValueError, match="opt_state"):
            fnn.train_step(a, state, X, y)
        with pytest.raises(ValueError, match="opt_state"):
            fnn.fit(a, fnn.adam(), X, y, epochs=1, rng=0, opt_state=state, verbose=0)


def test_an_opt_state_of_another_network_is_refused_naming_the_path() -> None:
    a, _ = twins()
    big = fnn.init(fnn.mlp([2, 5, 1]), rng=0)
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match=r"layers\.0\.W"):
        fnn.train_step(a, fnn.adam().init(big), X, np.ones(4))


def test_a_cache_of_another_network_is_refused() -> None:
    a, b = twins()
    _, cb = fnn.forward(b, np.ones((4, 1)))
    with pytest.raises(ValueError, match="cache"):
        fnn.backward(a, cb, np.ones(4))


def test_a_cache_of_another_network_is_refused_naming_the_layer() -> None:
    a, b = twins()
    _, cb = fnn.forward(b, np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"layers\.0"):
        fnn.backward(a, cb, np.ones(4))


# --- outputs are fresh, leaves read-only -----------------------------------------------------


def test_forward_out_of_an_identity_output_is_not_the_cache() -> None:
    net = fnn.init(fnn.mlp([3, 4, 2]), rng=0)  # identity output, MSE
    X = np.random.default_rng(0).normal(size=(5, 3))
    y = np.zeros((5, 2))
    out, cache = fnn.forward(net, X)
    g1 = fnn.backward(net, cache, y)
    assert out.flags.writeable and not np.shares_memory(out, cache.logits)
    out -= 1
    g2 = fnn.backward(net, cache, y)
    assert np.array_equal(g1.flat, g2.flat)


def test_predict_output_is_writable_and_fresh() -> None:
    for net in (fnn.init(fnn.mlp([3, 4, 2]), rng=0), bn_network()):
        X = np.random.default_rng(0).normal(size=(5, 3))
        p1 = fnn.predict(net, X)
        p2 = fnn.predict(net, X)
        assert p1.flags.writeable
        assert not np.shares_memory(p1, p2) and not np.shares_memory(p1, X)
        assert not np.shares_memory(p1, net.flat)
        p1[...] = 7.0
        assert np.array_equal(fnn.predict(net, X), p2)


def test_network_leaves_cannot_be_made_writable() -> None:
    for net in (
        bn_network(),
        copy.deepcopy(bn_network()),
        pickle.loads(pickle.dumps(bn_network())),
    ):
        assert tree.allclose(net, bn_network(), rtol=0, atol=0)
        for p, leaf in tree.leaves_with_paths(net):
            assert not leaf.flags.writeable, p
            with pytest.raises(ValueError):
                leaf.flags.writeable = True


@pytest.mark.parametrize("which", ["init", "grads", "fit"])
def test_the_flat_buffer_cannot_be_made_writable(which: str) -> None:
    net = bn_network()
    X, y = blobs(8)
    if which == "grads":
        net = fnn.backward(net, fnn.forward(net, X, train=True)[1], y)
    elif which == "fit":
        net, _ = fnn.fit(net, fnn.sgd(0.1), X, y, epochs=1, batch_size=4, rng=0, verbose=0)
    W00 = float(net.layers[0].W[0, 0])  # type: ignore[attr-defined]
    try:
        net.flat.flags.writeable = True
        net.flat[0] += 1.0
    except ValueError:
        pass
    assert net.layers[0].W[0, 0] == W00  # type: ignore[attr-defined]


def test_a_callers_array_written_after_building_a_layer_changes_nothing() -> None:
    W = np.ones((2, 3))
    b = np.zeros(3)
    layer = fnn.Dense(W=W, b=b)
    scale = np.ones(3)
    bn = BatchNorm(scale=scale)
    W[0, 0] = 99.0
    b[:] = 5.0
    scale[:] = -1.0
    assert layer.b is not None
    assert layer.W[0, 0] == 1.0 and np.array_equal(layer.b, np.zeros(3))
    assert np.array_equal(bn.scale, np.ones(3))
    net = fnn.Network(layers=[layer, bn, fnn.Dense(W=np.ones((3, 1)))], loss="mse")
    W[:] = -3.0
    assert np.array_equal(net.layers[0].W, np.ones((2, 3)))  # type: ignore[attr-defined]


def test_forward_cache_does_not_alias_the_callers_input() -> None:
    net = fnn.init(fnn.mlp([3, 4, 1]), rng=0)
    X = np.random.default_rng(0).normal(size=(5, 3))
    y = np.zeros(5)
    _, cache = fnn.forward(net, X)
    g1 = fnn.backward(net, cache, y)
    X += 1.0
    g2 = fnn.backward(net, cache, y)
    assert np.array_equal(g1.flat, g2.flat)


def test_forward_cache_leaves_of_batch_norm_are_read_only() -> None:
    net = bn_network()
    X = np.random.default_rng(0).normal(size=(5, 3))
    _, cache = fnn.forward(net, X, train=True)
    writable = [
        p
        for p, x in tree.leaves_with_paths(cache)
        if isinstance(x, np.ndarray) and x.flags.writeable and p != "layers.0.x"
    ]
    assert writable == []


def test_a_layers_own_forward_returns_a_read_only_cache() -> None:
    layer = fnn.dense.init(3, 2, rng=np.random.default_rng(0), activation="tanh")
    _, cache = fnn.dense.forward(layer, np.ones((4, 3)))
    assert not cache.z.flags.writeable and not cache.a.flags.writeable


# --- batch norm: errors and drop_last ---------------------------------------------------------


def test_batch_norm_refuses_a_training_batch_of_one() -> None:
    net = bn_network()
    X = np.ones((1, 3))
    with pytest.raises(ValueError, match="batch norm"):
        fnn.forward(net, X, train=True)
    with pytest.raises(ValueError, match="batch norm"):
        fnn.train_step(net, fnn.sgd(0.1).init(net), X, [0])
    # the last batch of an epoch holds one sample: refused before the first step
    Xs, ys = blobs(5)
    with pytest.raises(
        ValueError, match=r"layers\.1 \(BatchNorm\) needs at least 2 rows.*drop_last"
    ):
        fnn.fit(net, fnn.sgd(0.1), Xs, ys, epochs=1, batch_size=4, rng=0, verbose=0)
    # inference with one sample is fine (running statistics)
    assert fnn.predict(net, X).shape == (1, 3)


def test_batch_norm_error_names_the_layer() -> None:
    with pytest.raises(ValueError, match=r"layers\.1"):
        fnn.forward(bn_network(), np.ones((1, 3)), train=True)


def test_batch_norm_and_activation_are_public() -> None:
    assert fnn.BatchNorm is BatchNorm
    assert fnn.Activation is fnn.layers.Activation


def test_fit_drop_last_skips_an_incomplete_batch() -> None:
    X, y = blobs(9)
    net = bn_network()
    fitted, h = fnn.fit(
        net, fnn.sgd(0.1), X, y, epochs=2, batch_size=4, rng=0, verbose=0, drop_last=True
    )
    assert h.opt_state is not None and h.opt_state.step == 4  # 2 full batches per epoch
    assert not np.array_equal(fitted.flat, net.flat)
