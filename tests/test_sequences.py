"""Sequence networks: token ids in, per-position logits out, the loss over counted
positions; fit against a loop of train_step, checkpoints, summary and every bad input of
BAD_INPUTS.md's sequence rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import specs

VOCAB, MAX_LEN, DIM = 11, 12, 6


def token_net(seed: int = 0, dropout: float = 0.0) -> fnn.Network:
    layers: list[Any] = [specs.embedding(VOCAB, DIM), specs.positional_embedding(MAX_LEN)]
    if dropout:
        layers.append(specs.dropout(dropout))
    layers += [specs.layer_norm(), specs.dense(VOCAB)]
    return fnn.init(fnn.sequential((None,), layers, output="softmax"), rng=seed)


def token_data(n: int = 10, T: int = 7, seed: int = 1) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, VOCAB, (n, T))
    y = rng.integers(0, VOCAB, (n, T))
    y[rng.random((n, T)) < 0.25] = -100
    y[:, 0] = rng.integers(0, VOCAB, n)  # every sample counts somewhere
    return X, y


def test_shapes_with_a_time_axis_of_any_length() -> None:
    net = token_net()
    assert net.input_shape == (None,)
    assert net.shapes[-1] == (None, VOCAB)
    assert net.per_position and net.n_outputs == VOCAB
    for T in (1, 5, MAX_LEN):
        out, _ = fnn.forward(net, np.zeros((3, T), np.int64))
        assert out.shape == (3, T, VOCAB)
        np.testing.assert_allclose(out.sum(axis=-1), 1.0)
    floats = fnn.init(fnn.sequential((None, 28), [specs.dense(16, "relu"), specs.dense(4)]), rng=0)
    assert floats.shapes == ((None, 16), (None, 4))
    assert fnn.predict(floats, np.ones((2, 9, 28))).shape == (2, 9, 4)


def test_dense_without_bias() -> None:
    net = fnn.init(fnn.sequential((None, 3), [specs.dense(2, bias=False)]), rng=0)
    layer = net.layers[0]
    assert isinstance(layer, fnn.Dense) and layer.b is None
    assert [p for p, _ in fnn.tree.leaves_with_paths(net)] == ["layers.0.W"]
    X = np.random.default_rng(0).normal(size=(4, 5, 3))
    np.testing.assert_allclose(fnn.predict(net, X), X @ layer.W)
    with_b = fnn.Dense(W=layer.W)  # the default stays a zero bias
    assert with_b.b is not None and not with_b.b.any()


def test_loss_is_the_mean_over_counted_positions_weighted_by_sample() -> None:
    net = token_net()
    X, y = token_data()
    z, _ = fnn.forward(net, X)
    logp = np.log(z)
    counted = y != -100
    per = -np.take_along_axis(logp, np.where(counted, y, 0)[..., None], axis=2)[..., 0]
    assert fnn.loss(net, X, y) == pytest.approx(per[counted].mean(), rel=1e-12)
    w = np.random.default_rng(5).uniform(0.1, 2.0, len(X))
    m = counted * w[:, None]
    expected = (per * m).sum() / m.sum()
    assert fnn.loss(net, X, y, sample_weight=w) == pytest.approx(expected, rel=1e-12)


def test_metrics_count_positions_and_skip_ignored_ones() -> None:
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(5, 6, 4))
    y = rng.integers(0, 4, (5, 6))
    y[:, ::2] = -100
    keep = y != -100
    right = scores.argmax(-1) == y
    assert fnn.metrics.accuracy(y, scores) == pytest.approx(right[keep].mean())
    top2 = np.argsort(-scores, axis=-1)[..., :2]
    in_top = (top2 == y[..., None]).any(-1)
    assert fnn.metrics.top_k_accuracy(y, scores, k=2) == pytest.approx(in_top[keep].mean())


def train_step_loop(net: fnn.Network, X: Any, y: Any, epochs: int, batch: int) -> Any:
    """What fit does without shuffling, from train_step, with the epoch loss weighted by
    each batch's counted positions."""
    opt = fnn.adam(learning_rate=1e-2)
    gen = np.random.default_rng(3)
    state = opt.init(net)
    losses = []
    for _ in range(epochs):
        total = weight = 0.0
        for s in range(0, len(X), batch):
            net, state, value = fnn.train_step(
                net, state, X[s : s + batch], y[s : s + batch], rng=gen
            )
            counted = float((y[s : s + batch] != -100).sum())
            total += value * counted
            weight += counted
        losses.append(total / weight)
    return net, losses


@pytest.mark.parametrize("dropout", [0.0, 0.2], ids=["plain", "dropout"])
def test_fit_equals_a_loop_of_train_step(dropout: float) -> None:
    net = token_net(dropout=dropout)
    X, y = token_data(n=10)
    fitted, h = fnn.fit(
        net, fnn.adam(learning_rate=1e-2), X, y, epochs=3, batch_size=4, rng=3,
        shuffle=False, verbose=0,
    )  # fmt: skip
    looped, losses = train_step_loop(net, X, y, epochs=3, batch=4)
    np.testing.assert_array_equal(fitted.flat, looped.flat)
    np.testing.assert_allclose([r.train_loss for r in h.records], losses, rtol=1e-12)
    assert h.records[-1].train_loss < h.records[0].train_loss


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = token_net()
    no_bias = fnn.init(fnn.sequential((None, 4), [specs.dense(3, bias=False)]), rng=1)
    X, _ = token_data()
    for model in (net, no_bias):
        back = fnn.load(fnn.save(tmp_path / "m", model)).params
        assert back.input_shape == model.input_shape
        assert [type(a) for a in back.layers] == [type(a) for a in model.layers]
        np.testing.assert_array_equal(back.flat, model.flat)
    back = fnn.load(fnn.save(tmp_path / "m", net)).params
    np.testing.assert_array_equal(fnn.predict(back, X), fnn.predict(net, X))


def test_summary_shows_the_time_axis() -> None:
    lines = fnn.summary(token_net()).splitlines()
    rows = {line.split()[1]: line for line in lines if line[:1].isdigit()}
    assert "(None, None, 6)" in rows["Embedding"] and str(VOCAB * DIM) in rows["Embedding"]
    assert str(MAX_LEN * DIM) in rows["PositionalEmbedding"]
    assert f"(None, None, {VOCAB})" in rows["Dense"]


# --- bad inputs -----------------------------------------------------------------------


def entry_points(net: fnn.Network, X: Any, y: Any) -> list[Any]:
    opt = fnn.sgd(learning_rate=0.1)
    return [
        lambda: fnn.forward(net, X),
        lambda: fnn.predict(net, X),
        lambda: fnn.loss(net, X, y),
        lambda: fnn.value_and_grad(net, X, y),
        lambda: fnn.evaluate(net, X, y),
        lambda: fnn.train_step(net, opt.init(net), X, y),
        lambda: fnn.fit(net, opt, X, y, epochs=1, rng=0, verbose=0),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X: X.__setitem__((3, 5), 81), r"token id 81 at X\[3, 5\] is outside \[0, 11\)"),
        (lambda X: X.__setitem__((2, 0), -1), r"token id -1 at X\[2, 0\] is outside \[0, 11\)"),
    ],
    ids=["too_large", "negative"],
)
def test_token_ids_out_of_range(change: Any, message: str) -> None:
    net = token_net()
    X, y = token_data()
    change(X)
    before = net.flat.copy()
    for call in entry_points(net, X, y):
        with pytest.raises(ValueError, match=message):
            call()
    np.testing.assert_array_equal(net.flat, before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, bool], ids=["f64", "f32", "bool"])
def test_token_ids_of_a_non_integer_dtype(dtype: Any) -> None:
    net = token_net()
    X, y = token_data()
    Xd = (X % 2).astype(dtype)  # whole values, still refused
    for call in entry_points(net, Xd, y):
        with pytest.raises(ValueError, match=f"integer token ids.*{np.dtype(dtype)}"):
            call()


def test_sequence_longer_than_max_len() -> None:
    net = token_net()
    X, y = token_data(T=MAX_LEN + 1)
    for call in entry_points(net, X, y):
        with pytest.raises(ValueError, match=f"max_len={MAX_LEN}"):
            call()
    with pytest.raises(ValueError, match="max_len=4"):
        fnn.sequential((9, 3), [specs.positional_embedding(4)])


def test_targets_not_matching_the_logits() -> None:
    net = token_net()
    X, y = token_data()
    for bad in (y[:, :5], y[:, 0], y[..., None]):
        with pytest.raises(
            ValueError, match=re.escape(f"{bad.shape}") + ".*" + re.escape(f"{(10, 7, VOCAB)}")
        ):
            fnn.loss(net, X, bad)
    with pytest.raises(ValueError, match=r"target 11 at y\[1, 2\]"):
        fnn.loss(net, X, np.where(np.arange(7) == 2, VOCAB, y) * (np.arange(10) == 1)[:, None])


def test_all_positions_ignored() -> None:
    net = token_net()
    X, y = token_data()
    for call in entry_points(net, X, np.full_like(y, -100))[2:]:
        with pytest.raises(ValueError, match="ignore_index=-100"):
            call()


def test_a_negative_label_in_vector_targets_stays_an_error() -> None:
    with pytest.raises(ValueError, match="label -100 out of range"):
        fnn.losses.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, -100]))


# --- layers on (n, T, d) and gradient checks ------------------------------------------


def test_layer_norm_and_dropout_on_sequences() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(2.0, 3.0, size=(4, 5, 8))
    out, _ = fnn.LayerNorm.create(8).forward(X)
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1.0, rtol=1e-3)  # eps = 1e-5
    drop = fnn.Dropout(rate=0.5)
    out, cache = drop.forward(X, train=True, rng=np.random.default_rng(0))
    kept = out != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(out[kept], 2 * X[kept])
    _, d_in = drop.backward(cache, np.ones_like(X))
    np.testing.assert_array_equal(d_in, np.where(kept, 2.0, 0.0))


def test_fnn_testing_checks_sequence_networks() -> None:
    X, y = token_data(n=4, T=5)
    assert fnn.testing.check_grads(token_net(), X, y, mode="elementwise") < 1e-5
    floats = fnn.init(
        fnn.sequential(
            (None, 3), [specs.dense(4, "tanh", bias=False), specs.dense(VOCAB)], output="softmax"
        ),
        rng=2,
    )
    Xf = np.random.default_rng(3).normal(size=(4, 5, 3))
    assert fnn.testing.check_grads(floats, Xf, y, mode="elementwise") < 1e-5
    layer = floats.layers[0]
    assert fnn.testing.check_layer_grads(layer, Xf, mode="elementwise") < 1e-5


def test_embedding_gradient_is_the_scatter_add_of_every_position() -> None:
    rng = np.random.default_rng(9)
    layer = fnn.Embedding(W=rng.normal(size=(50, 4)))
    ids = rng.integers(0, 20, (6, 30))  # repeats, and rows 20-49 never seen
    out, cache = layer.forward(ids)  # type: ignore[arg-type]  # ids: forward is typed for floats
    R = rng.normal(size=out.shape)
    grads, _ = layer.backward(cache, R)
    expected = np.zeros((50, 4))
    for (i, t), v in np.ndenumerate(ids):
        expected[v] += R[i, t]
    np.testing.assert_allclose(grads.W, expected, rtol=1e-12, atol=1e-12)
    assert not grads.W[20:].any()
