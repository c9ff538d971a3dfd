"""The recurrent layers (SimpleRNN, LSTM, GRU) in networks: gradient checks, training
on a small problem that needs memory, checkpoints, summaries, specs and bad input.
(Against PyTorch: tests/test_recurrent_torch.py; the shared properties of every
registered kind: tests/test_registry_properties.py.)"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn.layers import LAYERS

SPECS: dict[str, Any] = {
    "simple_rnn": fnn.specs.simple_rnn,
    "lstm": fnn.specs.lstm,
    "gru": fnn.specs.gru,
}
CLASSES: dict[str, type[fnn.layers.Recurrent]] = {
    "simple_rnn": fnn.SimpleRNN,
    "lstm": fnn.LSTM,
    "gru": fnn.GRU,
}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
KINDS = list(SPECS)


def network(
    kind: str,
    return_sequences: bool,
    *,
    steps: int = 5,
    features: int = 3,
    units: int = 4,
    classes: int = 3,
    seed: int = 0,
    dtype: Any = np.float64,
) -> fnn.Network:
    """kind(units) -> (flatten when every state is returned) -> dense(classes), softmax."""
    layers = [SPECS[kind](units, return_sequences=return_sequences)]
    if return_sequences:
        layers.append(fnn.specs.flatten())
    layers.append(fnn.specs.dense(classes))
    arch = fnn.sequential((steps, features), layers, output="softmax", dtype=dtype)
    return fnn.init(arch, rng=seed)


def test_the_registry_property_suite_takes_the_kinds_up() -> None:
    with_example = {name for name, k in LAYERS.items() if k.example is not None}
    assert set(KINDS) <= with_example
    for name in KINDS:
        kind = LAYERS[name]
        assert kind.cls is CLASSES[name] and kind.example is not None
        layer, shape = kind.example(np.random.default_rng(0), np.dtype(np.float64))
        assert isinstance(layer, CLASSES[name]) and len(shape) == 2
        assert layer.config()["kind"] == name


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("kind", KINDS)
def test_check_grads_on_a_network(kind: str, return_sequences: bool) -> None:
    net = network(kind, return_sequences)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 5, 3))
    y = rng.integers(0, 3, 6)
    assert fnn.testing.check_grads(net, X, y, n_directions=16) < 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_fit_learns_a_task_that_needs_memory(kind: str) -> None:
    """The label is the sign of the first step's first feature, seen 6 steps before
    the last state: the layer must carry it through the sequence."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(600, 6, 2))
    y = (X[:, 0, 0] > 0).astype(np.int64)
    arch = fnn.sequential((6, 2), [SPECS[kind](8), fnn.specs.dense(2)], output="softmax")
    net = fnn.init(arch, rng=3)
    before = fnn.metrics.accuracy(y[400:], fnn.predict(net, X[400:]))
    net, history = fnn.fit(
        net, fnn.adam(1e-2), X[:400], y[:400], epochs=25, batch_size=32, rng=4, verbose=0
    )
    after = fnn.metrics.accuracy(y[400:], fnn.predict(net, X[400:]))
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert after > 0.9 > before


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(
    kind: str, return_sequences: bool, dtype: Any, tmp_path: Path
) -> None:
    net = network(kind, return_sequences, dtype=dtype)
    X = np.random.default_rng(5).normal(size=(4, 5, 3)).astype(dtype)
    got = fnn.load(fnn.save(tmp_path / "net.npz", net)).params
    layer = got.layers[0]
    assert type(layer) is CLASSES[kind]
    assert isinstance(layer, fnn.layers.Recurrent)
    assert layer.return_sequences is return_sequences
    assert layer.config() == net.layers[0].config()
    assert got.dtype == dtype and np.array_equal(got.flat, net.flat)
    assert np.array_equal(fnn.predict(got, X), fnn.predict(net, X))


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("kind", KINDS)
def test_registered_shapes_and_build_agree_with_the_layer(
    kind: str, return_sequences: bool
) -> None:
    """What checkpoints use: ``shapes(config)`` gives each leaf's shape before any
    array is read, and ``build(config, arrays)`` gives the layer back."""
    entry = LAYERS[kind]
    assert entry.shapes is not None
    layer = CLASSES[kind].create(
        3, 4, rng=np.random.default_rng(0), return_sequences=return_sequences
    )
    cfg = layer.config()
    assert cfg == {
        "kind": kind,
        "features": 3,
        "units": 4,
        "return_sequences": return_sequences,
    }
    g = GATES[kind]
    want = {"W_ih": (3, g * 4), "W_hh": (4, g * 4), "b_ih": (g * 4,), "b_hh": (g * 4,)}
    shapes = entry.shapes(cfg)
    assert shapes is not None  # the config fixes every leaf's shape
    assert {k: tuple(v) for k, v in shapes.items()} == want
    assert {k: getattr(layer, k).shape for k in want} == want
    arrays = {k: getattr(layer, k) for k in want}
    built = entry.build(cfg, arrays)
    assert type(built) is type(layer) and built.config() == cfg
    with pytest.raises(ValueError, match="units"):
        entry.shapes({**cfg, "units": 0})
    with pytest.raises(ValueError, match="return_sequences"):
        entry.build({**cfg, "return_sequences": "yes"}, arrays)


@pytest.mark.parametrize("kind", KINDS)
def test_summary_shows_shapes_and_pytorch_parameter_counts(kind: str) -> None:
    steps, features, units = 28, 28, 16
    g = GATES[kind]
    per_layer = g * units * (features + units) + 2 * g * units  # PyTorch's count
    for seq, shape in ((False, f"(None, {units})"), (True, f"(None, {steps}, {units})")):
        layers = [SPECS[kind](units, return_sequences=seq)]
        if seq:
            layers.append(fnn.specs.flatten())
        layers.append(fnn.specs.dense(10))
        arch = fnn.sequential((steps, features), layers, output="softmax")
        text = fnn.summary(fnn.init(arch, rng=0))
        row = next(line for line in text.splitlines() if line.startswith("0 "))
        assert CLASSES[kind].__name__ in row and shape in row
        assert f"{per_layer:,}" in row
        head = units * (steps if seq else 1) * 10 + 10
        assert f"Total params: {per_layer + head:,}" in text


@pytest.mark.parametrize("kind", KINDS)
def test_initialisation_is_pytorchs_uniform(kind: str) -> None:
    units = 25
    layer = CLASSES[kind].create(30, units, rng=np.random.default_rng(6))
    k = 1 / math.sqrt(units)
    leaves = [getattr(layer, name) for name in ("W_ih", "W_hh", "b_ih", "b_hh")]
    for leaf in leaves:
        assert np.abs(leaf).max() <= k
    # uniform on [-k, k]: near the extremes, mean zero, mean square k^2 / 3
    every = np.concatenate([leaf.ravel() for leaf in leaves])
    assert every.min() < -0.98 * k and every.max() > 0.98 * k
    assert abs(float(every.mean())) < 0.1 * k
    assert abs(float((every**2).mean()) - k**2 / 3) < 0.1 * k**2 / 3
    again = CLASSES[kind].create(30, units, rng=np.random.default_rng(6))
    assert np.array_equal(again.W_hh, layer.W_hh)  # same seed, same bits


@pytest.mark.parametrize("kind", KINDS)
def test_float32_stays_float32(kind: str) -> None:
    net = network(kind, True, dtype=np.float32)
    X = np.random.default_rng(7).normal(size=(5, 5, 3))  # float64 in: converted
    y = np.array([0, 1, 2, 0, 1])
    out, cache = fnn.forward(net, X, train=True)
    assert out.dtype == np.float32
    grads = fnn.backward(net, cache, y)
    assert all(leaf.dtype == np.float32 for leaf in fnn.tree.leaves(grads))
    net64 = network(kind, True)
    np.testing.assert_allclose(out, fnn.predict(net64, X), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_specs_refuse_what_does_not_fit(kind: str) -> None:
    spec = SPECS[kind]
    with pytest.raises(ValueError, match="units"):
        spec(0)
    with pytest.raises(TypeError, match="return_sequences"):
        spec(4, return_sequences="yes")
    with pytest.raises(ValueError, match=r"sequences of shape \(steps, features\)"):
        fnn.sequential((28, 28, 1), [spec(4), fnn.specs.dense(2)])
    # a dense layer after every step acts on the last axis: per-position logits
    per_step = fnn.init(
        fnn.sequential((5, 3), [spec(4, return_sequences=True), fnn.specs.dense(2)]), rng=0
    )
    assert per_step.shapes[-1] == (5, 2)
    assert spec(4).output_shape((5, 3)) == (4,)
    assert spec(4, return_sequences=True).output_shape((5, 3)) == (5, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_layers_refuse_inconsistent_leaves(kind: str) -> None:
    cls = CLASSES[kind]
    g = GATES[kind]
    rng = np.random.default_rng(8)
    good = {
        "W_ih": rng.normal(size=(3, g * 4)),
        "W_hh": rng.normal(size=(4, g * 4)),
        "b_ih": rng.normal(size=g * 4),
        "b_hh": rng.normal(size=g * 4),
    }
    cls(**good)  # consistent: accepted
    bad: list[tuple[str, Any, str]] = [
        ("W_hh", rng.normal(size=(4, g * 4 + 1)), "W_hh must have shape"),
        ("W_ih", rng.normal(size=(3, g * 5)), "W_ih must have shape"),
        ("b_ih", rng.normal(size=g * 4 + 2), "b_ih must have shape"),
        ("b_hh", good["b_hh"].astype(np.float32), "b_hh has dtype float32"),
    ]
    for name, value, message in bad:
        with pytest.raises(ValueError, match=message):
            cls(**{**good, name: value})
    layer = cls(**good)
    with pytest.raises(ValueError, match="expects 3 features per step"):
        fnn.Network(layers=[layer], loss="mse", input_shape=(5, 2))


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_refused_at_the_boundary(kind: str) -> None:
    net = network(kind, False)
    X = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match=r"X has samples of shape \(5, 4\)"):
        fnn.predict(net, np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="Expected 3D array"):
        fnn.predict(net, np.zeros((2, 15)))
    X[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fnn.predict(net, X)


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_and_one_sample(kind: str) -> None:
    """T = 1 (no hidden product at all: h_0 = 0) and a batch of one."""
    layer = CLASSES[kind].create(3, 4, rng=np.random.default_rng(9), return_sequences=True)
    X = np.random.default_rng(10).normal(size=(1, 1, 3))
    out, cache = layer.forward(X)
    assert out.shape == (1, 1, 4)
    grads, d_in = layer.backward(cache, np.ones_like(out))
    assert d_in.shape == X.shape
    assert not grads.W_hh.any()  # h_0 = 0: the hidden weights have no effect
    assert grads.b_hh.any() and grads.W_ih.any()
    assert fnn.testing.check_layer_grads(layer, X, mode="elementwise") < 1e-6
