"""One property suite over the registries (issue 11, point 6).

Every registered layer kind (``fnn.layers.LAYERS``, the kinds with an ``example``),
activation (``fnn.activations.ACTIVATIONS``), loss (``fnn.losses.LOSSES``) and optimizer
is enrolled here automatically: there is no hand-kept list of kinds in this file.

fnn has no optimizer registry (``fnn.serialization`` keeps a private table of transform
classes, which tests must not import), so the optimizers are discovered from the public
factory functions of :mod:`fnn.optim` whose first parameter is ``learning_rate``
(``sgd``, ``adam``, ``adamw``, ``rmsprop``, ``adagrad`` today): a new factory of that
shape is enrolled without editing this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import tree
from fnn.layers import LAYERS, Context, LayerBase, LayerCache, LayerKind, Workspace
from fnn.layers.base import input_ids_of, output_shape_of

# --- the registries, read once at collection ------------------------------------------

KINDS: list[LayerKind] = [k for _, k in LAYERS.items() if k.example is not None]
ACTIVATION_KINDS: list[tuple[str, type[fnn.activations.Activation]]] = list(
    fnn.activations.ACTIVATIONS.items()
)
LOSS_KINDS: list[tuple[str, type[fnn.losses.Loss]]] = list(fnn.losses.LOSSES.items())


def _optimizer_factories() -> list[tuple[str, Callable[..., fnn.Optimizer]]]:
    return list(fnn.optim.OPTIMIZERS.items())


OPTIMIZERS = _optimizer_factories()


def _kind_id(k: LayerKind) -> str:
    return k.name


def _pair_id(p: tuple[str, Any]) -> str:
    return p[0]


def test_the_registries_are_not_empty() -> None:
    # the suite must not pass vacuously
    assert {"dense", "dropout", "batch_norm", "activation"} <= {k.name for k in KINDS}
    assert len(ACTIVATION_KINDS) >= 8 and len(LOSS_KINDS) >= 5
    assert {"sgd", "adam"} <= {n for n, _ in OPTIMIZERS}


# --- helpers ------------------------------------------------------------------------------

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


def example(
    kind: LayerKind, dtype: np.dtype[Any] = F64, seed: int = 0
) -> tuple[Any, tuple[int, ...]]:
    assert kind.example is not None
    return kind.example(np.random.default_rng(seed), dtype)


def has_state(layer: object) -> bool:
    return not all(tree.trainable_mask(layer).values())


# the kinds whose example carries state leaves (batch norm's running statistics)
STATEFUL_KINDS: list[LayerKind] = [k for k in KINDS if has_state(example(k)[0])]


def test_some_kinds_have_state() -> None:
    # the tests parametrized over STATEFUL_KINDS must not pass vacuously
    assert "batch_norm" in {k.name for k in STATEFUL_KINDS}


def arrays_of(value: object) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """The array leaves of a tree (caches also hold ints and bools)."""
    return [(p, x) for p, x in tree.leaves_with_paths(value) if isinstance(x, np.ndarray)]


def copies(value: object) -> list[tuple[str, np.ndarray[Any, Any]]]:
    return [(p, x.copy()) for p, x in arrays_of(value)]


def assert_unchanged(
    value: object, before: list[tuple[str, np.ndarray[Any, Any]]], what: str
) -> None:
    now = arrays_of(value)
    assert [p for p, _ in now] == [p for p, _ in before], what
    for (p, x), (_, x0) in zip(now, before, strict=True):
        assert np.array_equal(x, x0, equal_nan=True), f"{what}: {p} was written"


def assert_read_only(value: object, what: str) -> None:
    for p, x in arrays_of(value):
        assert not x.flags.writeable, f"{what}: leaf {p} is writable"


@attrs.frozen(eq=False)
class FlattenCache(LayerCache):
    shape: tuple[int, ...]


@attrs.frozen(eq=False)
class Flatten(LayerBase):
    """A user's layer written to the kernel protocol: (n, *shape) -> (n, prod(shape)).
    Used to put layers whose output is not a vector in front of a dense head."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward_into(self, X: Any, ctx: Context, ws: Workspace) -> tuple[Any, FlattenCache]:
        return X.reshape(X.shape[0], -1), FlattenCache(shape=X.shape)

    def backward_into(
        self,
        cache: FlattenCache,
        d_out: Any,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> Any:
        return d_out.reshape(cache.shape) if need_d_in else None

    def config(self) -> dict[str, object]:
        return {"kind": "test_registry_flatten"}


@pytest.fixture(scope="module", autouse=True)
def _flatten_kind() -> Iterator[None]:
    # registered for checkpoints only (no example: not enrolled itself), and undone
    fnn.layers.register_layer(
        "test_registry_flatten", Flatten, build=lambda cfg, a: Flatten(), shapes=lambda cfg: {}
    )
    yield
    LAYERS.unregister("test_registry_flatten")


N_CLASSES = 3


def network_with(
    layer: Any, shape: tuple[int, ...], dtype: np.dtype[Any], seed: int = 1
) -> fnn.Network:
    """``layer`` (first, so it sees the raw input), a flatten layer when its output is
    not a vector, then a dense head to 3 logits with softmax cross-entropy."""
    out = output_shape_of(layer, shape, "layers.0")
    layers: list[Any] = [layer]
    if len(out) != 1:
        layers.append(Flatten())
    rng = np.random.default_rng(seed)
    head = fnn.dense.init(math.prod(out), N_CLASSES, rng=rng, dtype=dtype)
    head = attrs.evolve(head, b=rng.normal(size=N_CLASSES).astype(dtype))
    net = fnn.Network(layers=[*layers, head], loss="cross_entropy", input_shape=shape)
    return fnn.network.pack(net)


def data(
    shape: tuple[int, ...], n: int, dtype: np.dtype[Any], seed: int = 2, ids: int | None = None
) -> tuple[Any, Any]:
    """Inputs (n, *shape) and labels; random token ids in [0, ids) for a kind taking ids."""
    rng = np.random.default_rng(seed)
    if ids is not None:
        return rng.integers(0, ids, (n, *shape)), rng.integers(0, N_CLASSES, n)
    X = rng.normal(size=(n, *shape)).astype(dtype)
    y = rng.integers(0, N_CLASSES, n)
    return X, y


def central_differences(
    f: Callable[[np.ndarray[Any, Any]], float],
    x: np.ndarray[Any, Any],
    which: Any,
    eps: float = 1e-6,
) -> np.ndarray[Any, Any]:
    """Central differences of ``f`` at ``x`` (1-D) for the indices ``which``."""
    g = np.zeros(len(which))
    for i, j in enumerate(which):
        e = np.zeros_like(x)
        e[j] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


# --- layers: gradients ----------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kind", [pytest.param(k, id=k.name) for k in KINDS])
def test_fnn_testing_checks_layer_gradients(kind: LayerKind, train: bool) -> None:
    layer, shape = example(kind)
    X, _ = data(shape, 5, F64, ids=input_ids_of(layer))
    assert fnn.testing.check_layer_grads(layer, X, train=train, mode="elementwise") < 1e-5


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kind", [pytest.param(k, id=k.name) for k in KINDS])
def test_fnn_testing_checks_network_gradients(kind: LayerKind, train: bool) -> None:
    layer, shape = example(kind)
    net = network_with(layer, shape, F64)
    X, y = data(shape, 6, F64, ids=input_ids_of(layer))
    assert fnn.testing.check_grads(net, X, y, train=train, mode="elementwise") < 1e-5


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_layer_gradients_of_trainable_leaves_and_input(kind: LayerKind, train: bool) -> None:
    """Central differences of ``sum(R * out)`` over every trainable entry and every input
    entry (state leaves skipped here: they are not derivatives), in float64."""
    layer, shape = example(kind)
    X, _ = data(shape, 5, F64, ids=input_ids_of(layer))

    def run(lay: Any, x: Any) -> tuple[Any, Any]:
        out: tuple[Any, Any] = lay.forward(x, train=train, rng=np.random.default_rng(7))
        return out

    out, cache = run(layer, X)
    R = np.random.default_rng(8).standard_normal(out.shape)
    grads, d_in = layer.backward(cache, R)
    assert d_in.shape == X.shape
    flat = np.array(tree.ravel(layer), dtype=np.float64) if tree.leaves(layer) else np.zeros(0)
    mask = tree.trainable_mask(layer)
    trainable: Any = np.flatnonzero(tree.leaf_mask(layer, lambda p: mask[p])) if flat.size else []
    if len(trainable):
        num = central_differences(
            lambda v: float((R * run(tree.unravel(layer, v.copy()), X)[0]).sum()), flat, trainable
        )
        np.testing.assert_allclose(
            np.asarray(tree.ravel(grads))[trainable], num, rtol=1e-6, atol=1e-8
        )
    if input_ids_of(layer) is not None:
        return  # token ids: no input gradient
    num_x = central_differences(
        lambda v: float((R * run(layer, v.reshape(X.shape))[0]).sum()),
        X.ravel().copy(),
        range(X.size),
    )
    np.testing.assert_allclose(d_in.ravel(), num_x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_network_gradients_of_trainable_leaves(kind: LayerKind) -> None:
    """The whole network's gradient (``value_and_grad`` in training mode, dropout masks
    fixed by the seed) against central differences of the loss, trainable leaves only."""
    layer, shape = example(kind)
    net = network_with(layer, shape, F64)
    X, y = data(shape, 6, F64, ids=input_ids_of(layer))
    _, g = fnn.value_and_grad(net, X, y, train=True, rng=3)
    mask = tree.trainable_mask(net)
    idx = np.flatnonzero(tree.leaf_mask(net, lambda p: mask[p]))

    def f(v: Any) -> float:
        value, _ = fnn.value_and_grad(tree.unravel(net, v.copy()), X, y, train=True, rng=3)
        return value

    num = central_differences(f, np.array(net.flat), idx)
    np.testing.assert_allclose(np.asarray(g.flat)[idx], num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", STATEFUL_KINDS, ids=_kind_id)
def test_eval_mode_keeps_the_state(kind: LayerKind) -> None:
    """At inference the state leaves of the gradient tree hold the current state."""
    layer, shape = example(kind)
    X, _ = data(shape, 4, F64, ids=input_ids_of(layer))
    out, cache = layer.forward(X, train=False, rng=None)
    grads, _ = layer.backward(cache, np.ones_like(out))
    mask = tree.trainable_mask(layer)
    for (p, g), (_, s) in zip(
        tree.leaves_with_paths(grads), tree.leaves_with_paths(layer), strict=True
    ):
        if not mask[p]:
            assert np.array_equal(g, s), p


# --- layers: purity, read-only leaves, dtypes -------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_layer_writes_no_argument(kind: LayerKind, train: bool) -> None:
    layer, shape = example(kind)
    X, _ = data(shape, 5, F64, ids=input_ids_of(layer))
    X0, layer0 = X.copy(), copies(layer)
    assert_read_only(layer, "layer")
    out, cache = layer.forward(X, train=train, rng=np.random.default_rng(0))
    cache0 = copies(cache)
    d_out = np.random.default_rng(1).standard_normal(out.shape)
    d0 = d_out.copy()
    grads, d_in = layer.backward(cache, d_out)
    assert d_in.shape == X.shape
    assert np.array_equal(X, X0), "forward wrote into X"
    assert np.array_equal(d_out, d0), "backward wrote into d_out"
    assert_unchanged(layer, layer0, "layer")
    assert_unchanged(cache, cache0, "cache")
    assert_read_only(layer, "layer")
    assert_read_only(grads, "grads")
    assert type(grads) is type(layer)
    for leaf in tree.leaves(layer):
        with pytest.raises(ValueError):
            leaf.flags.writeable = True


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_network_with_the_layer_writes_no_argument(kind: LayerKind, train: bool) -> None:
    layer, shape = example(kind)
    net = network_with(layer, shape, F64)
    X, y = data(shape, 6, F64, ids=input_ids_of(layer))
    X0, y0, net0 = X.copy(), y.copy(), copies(net)
    out, cache = fnn.forward(net, X, train=train, rng=0)
    cache0 = copies(cache)
    out[...] = 123.0  # the caller owns `out`: writing it changes nothing fnn keeps
    grads = fnn.backward(net, cache, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)
    assert_unchanged(net, net0, "params")
    assert_unchanged(cache, cache0, "cache")
    assert_read_only(net, "params")
    assert_read_only(grads, "grads")
    opt = fnn.adam(1e-2)
    state = opt.init(net)
    state0 = copies(state)
    grads0 = copies(grads)
    new, new_state = fnn.update(net, grads, state)
    assert_unchanged(net, net0, "params after update")
    assert_unchanged(grads, grads0, "grads after update")
    assert_unchanged(state, state0, "opt state after update")
    assert_read_only(new, "new params")
    # (the state's `trainable` mask: see test_execution_path.py)
    assert_read_only(new_state.states, "new opt state")
    p = fnn.predict(net, X)
    assert p.flags.writeable and not np.shares_memory(p, X)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_dtype_is_preserved(kind: LayerKind, dtype: np.dtype[Any]) -> None:
    layer, shape = example(kind, dtype)
    assert all(x.dtype == dtype for x in tree.leaves(layer))
    X, y = data(shape, 6, dtype, ids=input_ids_of(layer))
    out, cache = layer.forward(X, train=True, rng=np.random.default_rng(0))
    assert out.dtype == dtype
    grads, d_in = layer.backward(cache, np.ones_like(out))
    assert d_in.dtype == dtype
    assert all(x.dtype == dtype for x in tree.leaves(grads))
    net = network_with(layer, shape, dtype)
    assert net.dtype == dtype
    o, c = fnn.forward(net, X, train=True, rng=0)
    assert o.dtype == dtype and c.logits.dtype == dtype
    g = fnn.backward(net, c, y)
    assert g.dtype == dtype and all(x.dtype == dtype for x in tree.leaves(g))
    assert fnn.predict(net, X).dtype == dtype
    trained, _ = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=1, batch_size=3, rng=0, verbose=0)
    assert all(x.dtype == dtype for x in tree.leaves(trained))


# --- layers: fit equals a loop of train_step ---------------------------------------------


def train_step_loop(
    net: fnn.Network,
    opt: fnn.Optimizer,
    X: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    shuffle: bool,
) -> tuple[fnn.Network, list[float]]:
    """What ``fnn.fit`` does, written with ``train_step``. The order of random draws,
    from ONE generator seeded with ``seed`` (fnn/training.py ``_run``): at the start of
    each epoch the permutation ``gen.permutation(n)`` (only when shuffling), then, per
    step, the layers' draws in layer order (dropout masks, ``gen.random(shape)``)."""
    gen = np.random.default_rng(seed)
    state = opt.init(net)
    n = len(X)
    losses = []
    for _ in range(epochs):
        order = gen.permutation(n) if shuffle else np.arange(n)
        total = 0.0
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            net, state, value = fnn.train_step(net, state, X[idx], y[idx], rng=gen)
            total += value * len(idx)
        losses.append(total / n)
    return net, losses


@pytest.mark.parametrize("shuffle", [False, True], ids=["in_order", "shuffled"])
@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_fit_equals_a_loop_of_train_step_bit_for_bit(kind: LayerKind, shuffle: bool) -> None:
    layer, shape = example(kind)
    net = network_with(layer, shape, F64)
    X, y = data(shape, 11, F64, ids=input_ids_of(layer))  # batches of 4, 4, 3
    opt = fnn.adam(1e-2)
    fitted, h = fnn.fit(net, opt, X, y, epochs=2, batch_size=4, rng=5, shuffle=shuffle, verbose=0)
    looped, losses = train_step_loop(
        net, opt, X, y, epochs=2, batch_size=4, seed=5, shuffle=shuffle
    )
    assert np.array_equal(fitted.flat, looped.flat), "fit and the train_step loop differ"
    assert not np.array_equal(fitted.flat, net.flat)
    np.testing.assert_allclose(h.train_loss, losses, rtol=1e-14)


# --- layers: checkpoints -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_save_load_round_trip(kind: LayerKind, dtype: np.dtype[Any], tmp_path: Path) -> None:
    layer, shape = example(kind, dtype)
    assert layer.config()["kind"] == kind.name
    net = network_with(layer, shape, dtype)
    X, y = data(shape, 8, dtype, ids=input_ids_of(layer))
    net, h = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=1, batch_size=4, rng=0, verbose=0)
    path = fnn.save(tmp_path / "net.npz", net, opt_state=h.opt_state)
    ck = fnn.load(path)
    got = ck.params
    assert got.layout.key == net.layout.key
    assert got.dtype == dtype
    assert np.array_equal(got.flat, net.flat)
    assert [type(lay) for lay in got.layers] == [type(lay) for lay in net.layers]
    assert [lay.config() for lay in got.layers] == [lay.config() for lay in net.layers]
    assert tree.trainable_mask(got) == tree.trainable_mask(net)
    assert np.array_equal(fnn.predict(got, X), fnn.predict(net, X))
    assert_read_only(got, "loaded params")
    assert ck.opt_state is not None and ck.opt_state.step == h.opt_state.step


# --- activations ---------------------------------------------------------------------------

ACT_INPUTS = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from([0.5, 2.0, 6.0]))


def act_input(seed: int, scale: float, dtype: Any = np.float64) -> Any:
    z = np.random.default_rng(seed).standard_normal((4, 5)) * scale
    z = np.where(np.abs(z) < 1e-3, 0.5, z)  # away from kinks (ReLU at 0)
    return z.astype(dtype)


@pytest.mark.parametrize("entry", ACTIVATION_KINDS, ids=_pair_id)
@given(case=ACT_INPUTS)
def test_activation_vjp_matches_central_differences(
    entry: tuple[str, type[fnn.activations.Activation]], case: tuple[int, float]
) -> None:
    act = entry[1]()
    z = act_input(*case)
    da = np.random.default_rng(case[0] + 1).standard_normal(z.shape)
    h = 1e-6
    num = (act(z + h) - act(z - h)) / (2 * h)
    z0, da0 = z.copy(), da.copy()
    a = act(z)
    a0 = a.copy()
    got = act.vjp(z, a, da)
    np.testing.assert_allclose(got, da * num, rtol=1e-6, atol=1e-8)
    assert np.array_equal(z, z0) and np.array_equal(da, da0) and np.array_equal(a, a0)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("entry", ACTIVATION_KINDS, ids=_pair_id)
@given(case=ACT_INPUTS)
def test_activation_out_path_equals_fresh_path(
    entry: tuple[str, type[fnn.activations.Activation]],
    dtype: np.dtype[Any],
    case: tuple[int, float],
) -> None:
    act = entry[1]()
    z = act_input(*case, dtype=dtype)
    da = np.random.default_rng(case[0] + 1).standard_normal(z.shape).astype(dtype)
    a = act(z)
    assert a.dtype == dtype and a.shape == z.shape
    buf = np.full_like(z, np.nan)
    a_out = act(z, out=buf)
    assert a_out is buf
    assert np.array_equal(a_out, a)
    d = act.vjp(z, a, da)
    assert d.dtype == dtype
    dbuf = np.full_like(z, np.nan)
    d_out = act.vjp(z, a, da, out=dbuf)
    assert d_out is dbuf or d_out is da  # vjp may hand back da when f' = 1
    assert np.array_equal(d_out, d)
    if act.in_place:
        # the output written over the pre-activation: vjp reads f' off the output
        w = z.copy()
        act(w, out=w)
        assert np.array_equal(act.vjp(w, w, da), d)


# --- losses -------------------------------------------------------------------------------

LOSS_INPUTS = st.tuples(
    st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(2, 4), st.booleans()
)


def loss_case(
    cls: type[fnn.losses.Loss], case: tuple[int, int, int, bool], dtype: Any = np.float64
) -> tuple[fnn.losses.Loss, Any, Any]:
    """A loss, logits (n, k) and prepared targets for its output: integer labels or
    probability rows (softmax), probabilities (sigmoid), real values (identity)."""
    seed, n, k, soft = case
    rng = np.random.default_rng(seed)
    loss = cls()
    logits = (rng.standard_normal((n, k)) * 2).astype(dtype)
    if loss.output == "softmax":
        y: Any = rng.dirichlet(np.ones(k), n) if soft else rng.integers(0, k, n)
    elif loss.output == "sigmoid":
        y = rng.uniform(size=(n, k)) if soft else rng.integers(0, 2, (n, k)).astype(float)
    else:
        y = rng.standard_normal((n, k))
        # keep targets off the logits: the mean absolute error has a kink at y = z, where
        # central differences straddling it measure neither one-sided slope
        y = np.where(np.abs(y - logits) < 1e-3, y + 0.5, y)
    return loss, logits, loss.targets(y, n, k, np.dtype(dtype))


@pytest.mark.parametrize("entry", LOSS_KINDS, ids=_pair_id)
@given(case=LOSS_INPUTS)
def test_loss_gradient_matches_central_differences(
    entry: tuple[str, type[fnn.losses.Loss]], case: tuple[int, int, int, bool]
) -> None:
    loss, z, y = loss_case(entry[1], case)
    z0, y0 = z.copy(), y.copy()
    g = loss.grad(z, y)
    num = central_differences(
        lambda v: loss.value(v.reshape(z.shape), y), z.ravel().copy(), range(z.size)
    )
    np.testing.assert_allclose(g.ravel(), num, rtol=1e-6, atol=1e-9)
    assert np.array_equal(z, z0) and np.array_equal(y, y0)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("entry", LOSS_KINDS, ids=_pair_id)
@given(case=LOSS_INPUTS)
def test_loss_has_one_gradient(
    entry: tuple[str, type[fnn.losses.Loss]],
    dtype: np.dtype[Any],
    case: tuple[int, int, int, bool],
) -> None:
    """``fused(value=False)`` gives ``fused()``'s gradient bit for bit, and ``grad``
    and ``value_and_grad`` agree: one place of the math."""
    loss, z, y = loss_case(entry[1], case, dtype)
    per, g = loss.fused(z, y)
    _, g_only = loss.fused(z, y, value=False)
    assert per is not None and per.shape == (z.shape[0],)
    assert g.dtype == dtype and g_only.dtype == dtype and per.dtype == dtype
    assert np.array_equal(g, g_only)
    value, grad = loss.value_and_grad(z, y)
    assert np.array_equal(grad, loss.grad(z, y))
    assert grad.dtype == dtype
    assert math.isclose(value, loss.value(z, y), rel_tol=1e-5 if dtype == F32 else 1e-12)


SOFTMAX_LOSSES = [e for e in LOSS_KINDS if e[1].output == "softmax"]


@pytest.mark.parametrize("entry", SOFTMAX_LOSSES, ids=_pair_id)
@given(case=LOSS_INPUTS)
def test_cross_entropy_gradient_rows_sum_to_zero(
    entry: tuple[str, type[fnn.losses.Loss]], case: tuple[int, int, int, bool]
) -> None:
    loss, z, y = loss_case(entry[1], case)
    _, g = loss.fused(z, y)
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-12)
    assert loss.value(z, y) >= 0


# --- optimizers -------------------------------------------------------------------------


def parabola_tree(dtype: Any = np.float64) -> dict[str, Any]:
    return {
        "a": np.array([1.5, -2.0, 0.5], dtype),
        "b": np.array([[3.0, -1.0], [0.25, 2.0]], dtype),
    }


CENTRE = {"a": np.array([0.5, 1.0, -1.0]), "b": np.array([[-1.0, 0.5], [2.0, 0.0]])}
CURVATURE = {"a": np.array([1.0, 2.0, 0.5]), "b": np.array([[1.5, 1.0], [0.75, 2.0]])}


def parabola(params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """``0.5 sum(c (x - x*)^2)`` and its gradient."""
    value = sum(0.5 * float((CURVATURE[k] * (params[k] - CENTRE[k]) ** 2).sum()) for k in params)
    grads = {k: (CURVATURE[k] * (params[k] - CENTRE[k])).astype(params[k].dtype) for k in params}
    return value, grads


def structure_of(state: fnn.OptState) -> Any:
    return (
        tree.structure(state),
        [(p, np.shape(x), getattr(x, "dtype", None)) for p, x in tree.leaves_with_paths(state)],
    )


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=_pair_id)
def test_optimizer_state_structure_is_unchanged_by_update(
    entry: tuple[str, Callable[..., fnn.Optimizer]],
) -> None:
    opt = entry[1](learning_rate=0.05)
    for params in (parabola_tree(), fnn.init(fnn.mlp([2, 3, 1], norm="batch"), rng=0)):
        state = opt.init(params)
        before = structure_of(state)
        for _ in range(3):
            if isinstance(params, fnn.Network):
                X = np.random.default_rng(0).normal(size=(4, 2))
                _, c = fnn.forward(params, X, train=True)
                grads: Any = fnn.backward(params, c, np.ones(4))
            else:
                _, grads = parabola(params)
            params, state = fnn.update(params, grads, state)
            assert structure_of(state) == before
        assert state.step == 3


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=_pair_id)
def test_optimizer_converges_on_a_parabola(entry: tuple[str, Callable[..., fnn.Optimizer]]) -> None:
    """jax's ``_CheckRun``: the loss ends below 1e-2. No step size suits every optimizer
    (Adagrad's shrinks like 1/sqrt(t), RMSprop's does not), so the best of two is taken."""
    start, _ = parabola(parabola_tree())
    ends = []
    for lr in (0.1, 0.5):
        opt = entry[1](learning_rate=lr)
        params = parabola_tree()
        state = opt.init(params)
        for _ in range(500):
            _, grads = parabola(params)
            params, state = fnn.update(params, grads, state)
        ends.append(parabola(params)[0])
    assert min(ends) < 1e-2 < start


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("entry", OPTIMIZERS, ids=_pair_id)
def test_optimizer_writes_no_argument(
    entry: tuple[str, Callable[..., fnn.Optimizer]], dtype: np.dtype[Any]
) -> None:
    opt = entry[1](learning_rate=0.1)
    params = tree.map(fnn.tree.readonly, parabola_tree(dtype))
    state = opt.init(params)
    for _ in range(2):  # the second update starts from a state with momenta
        _, grads = parabola(params)
        p0, g0, s0 = copies(params), copies(grads), copies(state)
        new, new_state = fnn.update(params, grads, state)
        assert_unchanged(params, p0, "params")
        assert_unchanged(grads, g0, "grads")
        assert_unchanged(state, s0, "state")
        assert_read_only(new, "new params")
        assert_read_only(new_state, "new state")
        assert all(x.dtype == dtype for x in tree.leaves(new))
        assert all(x.dtype == dtype for _, x in arrays_of(new_state) if x.dtype.kind == "f")
        assert not tree.allclose(new, params, rtol=0, atol=0)
        params, state = new, new_state
