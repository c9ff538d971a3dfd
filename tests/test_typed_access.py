"""What the typed accessors check at run time: ``Network.layer``, ``FitHistory`` and
``OptState.transform_state`` return the very value asked for or refuse a wrong class,
naming the index, the class expected and the class found."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

import fnn
from fnn.optim import AdagradState, AdamState, OptState, SGDState


def _net() -> fnn.Network:
    return fnn.init(fnn.mlp([2, 4, 1], dropout=0.5), rng=0)  # Dense, Dropout, Dense


def test_layer_returns_the_layer_at_that_index() -> None:
    net = _net()
    assert net.layer(0, fnn.Dense) is net.layers[0]
    assert net.layer(-1, fnn.Dense) is net.layers[2]
    assert net.layer(1, fnn.Dropout) is net.layers[1]
    assert net.layer(1, fnn.Dropout).rate == 0.5


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (1, "layers.1 is a Dropout, expected a Dense"),
        (-2, "layers.1 is a Dropout, expected a Dense"),
    ],
)
def test_layer_of_another_class_is_a_type_error(index: int, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        _net().layer(index, fnn.Dense)


@pytest.mark.parametrize("index", [3, -4])
def test_layer_out_of_range_is_an_index_error(index: int) -> None:
    with pytest.raises(IndexError, match=rf"layer index {index} is out of range .* 3 layers"):
        _net().layer(index, fnn.Dense)


def test_fit_returns_a_fit_history_with_the_final_state() -> None:
    rng = np.random.default_rng(0)
    X, y = fnn.datasets.make_moons(40, noise=0.2, rng=rng)
    net = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=rng)
    seen: list[fnn.History] = []
    _, history = fnn.fit(
        net,
        fnn.adam(1e-2),
        X,
        y,
        epochs=3,
        batch_size=16,
        rng=rng,
        verbose=0,
        callbacks=[seen.append],
    )
    assert type(history) is fnn.FitHistory and isinstance(history, fnn.History)
    assert history.opt_state.step == 3 * 3  # 40 rows in batches of 16: 3 a epoch
    assert all(isinstance(h, fnn.FitHistory) for h in seen) and len(seen) == 3
    # continuing a plain History (as a checkpoint's) for one more epoch: a FitHistory
    plain = fnn.History(records=history.records, opt_state=history.opt_state)
    _, more = fnn.fit(
        net, fnn.adam(1e-2), X, y, epochs=1, batch_size=16, rng=rng, verbose=0, history=plain
    )
    assert type(more) is fnn.FitHistory
    assert more.epochs == [1, 2, 3, 4] and more.opt_state.step == 4 * 3


def test_history_keeps_its_constructor_and_a_fit_history_needs_a_state() -> None:
    assert fnn.History().opt_state is None
    assert fnn.History().records == ()
    with pytest.raises(TypeError, match="opt_state"):
        fnn.FitHistory(opt_state=None)  # type: ignore[arg-type]
    state = fnn.adam().init(_net())
    h = fnn.FitHistory.of(fnn.History(stopped_early=True), state)
    assert h.opt_state is state and h.stopped_early
    with pytest.raises(TypeError, match="opt_state"):
        attrs.evolve(h, opt_state=None)  # type: ignore[arg-type]


def test_transform_state_returns_the_record_of_that_transform() -> None:
    net = _net()
    state = fnn.adam().init(net)
    assert state.transform_state(0, AdamState) is state.states[0]
    chained = fnn.chain(fnn.clip_by_global_norm(1.0), fnn.sgd(0.1, momentum=0.9)).init(net)
    assert chained.transform_state(-1, SGDState) is chained.states[1]
    # AdamW is Adam, then the decoupled decay (whose state is its mask)
    adamw = fnn.optim.adamw(decay_mask=fnn.weights_only).init(net)
    assert adamw.transform_state(0, AdamState) is adamw.states[0]
    assert isinstance(adamw.states[1], np.ndarray) and adamw.states[1].dtype == bool


def test_transform_state_after_an_update_holds_the_new_moments() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(8, 2)), rng.normal(size=8)
    net = fnn.init(fnn.mlp([2, 3, 1]), rng=rng)
    _, grads = fnn.value_and_grad(net, X, y)
    _, state = fnn.update(net, grads, fnn.adam(b1=0.9).init(net))
    mu = state.transform_state(0, AdamState).mu
    np.testing.assert_allclose(mu, 0.1 * fnn.tree.ravel(grads))  # (1 - b1) g, from zeros


@pytest.mark.parametrize(
    ("state", "index", "message"),
    [
        (
            fnn.adam().init(_net()),
            0,
            r"states.0 \(of the optimizer's Adam\) is a AdamState, expected a SGDState",
        ),
        (
            fnn.chain(fnn.clip_by_global_norm(1.0), fnn.adagrad()).init(_net()),
            0,
            r"states.0 \(of the optimizer's ClipByGlobalNorm\) is a NoneType, expected a SGDState",
        ),
        (
            fnn.optim.adamw(decay_mask=fnn.weights_only).init(_net()),
            -1,
            r"states.1 \(of the optimizer's AddDecayedWeights\) is a ndarray, expected a "
            r"SGDState",
        ),
    ],
)
def test_transform_state_of_another_class_is_a_type_error(
    state: OptState, index: int, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        state.transform_state(index, SGDState)


def test_transform_state_out_of_range_is_an_index_error() -> None:
    state = fnn.chain(fnn.clip_by_global_norm(1.0), fnn.adagrad()).init(_net())
    assert isinstance(state.transform_state(1, AdagradState), AdagradState)
    with pytest.raises(IndexError, match="transform index 2 is out of range for 2 transform"):
        state.transform_state(2, AdagradState)
