from __future__ import annotations

import io
from typing import Any

import attrs
import numpy as np
import pytest

import fnn
from fnn import _scratch, tree
from fnn.layers.base import LayerCache
from fnn.progress import Progress


def moons(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return fnn.datasets.make_moons(n, noise=0.2, rng=seed)


def net(seed: int = 0, dropout: float = 0.0, dtype: Any = np.float64) -> fnn.Network:
    arch = fnn.mlp([2, 8, 8, 1], output="sigmoid", dropout=dropout, dtype=dtype)
    return fnn.init(arch, rng=seed)


def test_fit_learns_and_returns_history() -> None:
    X, y = moons()
    trained, h = fnn.fit(
        net(),
        fnn.adam(1e-2),
        X,
        y,
        epochs=30,
        batch_size=16,
        rng=0,
        metrics=["accuracy"],
        verbose=0,
    )
    assert len(h.records) == 30 and h.epochs == list(range(1, 31))
    assert h.train_loss[-1] < h.train_loss[0] * 0.6
    assert h.metric("accuracy")[-1] > 0.85
    assert fnn.metrics.accuracy(y, fnn.predict(trained, X)) > 0.85
    assert all(r.seconds > 0 and r.learning_rate == 1e-2 for r in h.records)
    assert h.opt_state is not None and h.opt_state.step == 30 * 13
    assert all(not x.flags.writeable for x in tree.leaves(trained))
    d = h.as_dict()
    assert set(d) == {"loss", "accuracy", "learning_rate"}


def test_fit_is_reproducible_bit_for_bit() -> None:
    X, y = moons()
    a, ha = fnn.fit(net(dropout=0.2), fnn.adam(1e-2), X, y, epochs=3, rng=5, verbose=0)
    b, hb = fnn.fit(net(dropout=0.2), fnn.adam(1e-2), X, y, epochs=3, rng=5, verbose=0)
    assert tree.allclose(a, b, rtol=0, atol=0)
    assert ha.train_loss == hb.train_loss
    c, _ = fnn.fit(net(dropout=0.2), fnn.adam(1e-2), X, y, epochs=3, rng=6, verbose=0)
    assert not tree.allclose(a, c)


def test_fit_leaves_its_arguments_unchanged() -> None:
    X, y = moons()
    n0 = net()
    before = tree.map(np.copy, n0)
    X0, y0 = X.copy(), y.copy()
    fnn.fit(n0, fnn.sgd(0.1), X, y, epochs=2, rng=0, verbose=0)
    assert tree.allclose(n0, before, rtol=0, atol=0)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_fit_hands_over_a_read_only_state_that_a_resume_leaves_unchanged() -> None:
    X, y = moons()
    n1, h1 = fnn.fit(net(), fnn.adam(1e-2), X, y, epochs=2, rng=0, verbose=0)
    assert h1.opt_state is not None
    leaves = [x for s in h1.opt_state.states for x in tree.leaves(s)]
    assert leaves and all(not x.flags.writeable for x in leaves)
    with pytest.raises(ValueError, match="read-only"):
        leaves[0][...] = 0
    kept = [x.copy() for x in leaves]
    n2, h2 = fnn.fit(n1, fnn.adam(1e-2), X, y, epochs=1, rng=0, opt_state=h1.opt_state, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(leaves, kept, strict=True))
    assert h2.opt_state is not None and 2 * h2.opt_state.step == 3 * h1.opt_state.step
    assert not tree.allclose(n1, n2)


def test_a_fit_reusing_the_last_fits_scratch_gives_the_same_result_and_spares_its_output() -> None:
    X, y = moons()
    _scratch.clear()
    fresh, _ = fnn.fit(net(1), fnn.adam(1e-2), X, y, epochs=2, batch_size=48, rng=0, verbose=0)
    first, _ = fnn.fit(net(), fnn.adam(1e-2), X, y, epochs=2, batch_size=48, rng=0, verbose=0)
    before = [x.copy() for x in tree.leaves(first)]
    assert _scratch._kept  # the first fit's private buffers were kept
    again, _ = fnn.fit(net(1), fnn.adam(1e-2), X, y, epochs=2, batch_size=48, rng=0, verbose=0)
    # same result as on fresh memory, and the earlier fit's output is untouched
    assert tree.allclose(again, fresh, rtol=0, atol=0)
    assert all(np.array_equal(a, b) for a, b in zip(tree.leaves(first), before, strict=True))
    assert not any(np.shares_memory(a, b) for a in tree.leaves(first) for b in tree.leaves(again))


def test_a_fit_that_raises_keeps_no_scratch() -> None:
    X, y = moons()

    def boom(history: fnn.History) -> bool:
        raise RuntimeError("callback failed")

    _scratch.clear()
    with pytest.raises(RuntimeError, match="callback failed"):
        fnn.fit(net(), fnn.adam(1e-2), X, y, epochs=2, callbacks=[boom], rng=0, verbose=0)
    assert not _scratch._kept


def test_scratch_keeps_only_the_last_fits_arrays_up_to_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _scratch.clear()
    a, b = np.empty(10), np.empty(10)
    _scratch.keep([a])
    _scratch.keep([b])  # replaces what was kept
    assert _scratch.take((10,), np.dtype(np.float64)) is b
    assert _scratch.take((10,), np.dtype(np.float64)) is not a
    monkeypatch.setattr(_scratch, "LIMIT_BYTES", 100)
    c, d = np.empty(10), np.empty(10)  # 80 bytes each: only the first fits
    _scratch.keep([c, d])
    assert _scratch.take((10,), np.dtype(np.float64)) is c
    assert _scratch.take((10,), np.dtype(np.float64)) is not d
    _scratch.clear()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_one_full_batch_epoch_equals_train_step(dropout: float) -> None:
    X, y = moons(64)
    opt = fnn.adam(1e-2)
    n0 = net(dropout=dropout)
    fitted, _ = fnn.fit(n0, opt, X, y, epochs=1, batch_size=64, shuffle=False, rng=3, verbose=0)
    stepped, _, _ = fnn.train_step(n0, opt.init(n0), X, y, rng=3)
    assert tree.allclose(fitted, stepped, rtol=1e-12, atol=1e-14)


@attrs.frozen(eq=False)
class ScaleCache(LayerCache):
    x: np.ndarray


@attrs.frozen(eq=False)
class Scale:
    """A user-defined layer: elementwise ``x * s``, to exercise the generic path."""

    s: np.ndarray = attrs.field(converter=fnn.tree.readonly)

    @property
    def n_in(self) -> int:
        return int(self.s.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.s.shape[0])

    def forward(
        self, X: np.ndarray, *, train: bool = False, rng: Any = None
    ) -> tuple[np.ndarray, ScaleCache]:
        return X * self.s, ScaleCache(x=X)

    def backward(self, cache: LayerCache, d_out: np.ndarray) -> tuple[Scale, np.ndarray]:
        assert isinstance(cache, ScaleCache)
        return Scale(s=(cache.x * d_out).sum(axis=0)), d_out * self.s

    def config(self) -> dict[str, object]:
        return {"kind": "scale"}


def test_user_defined_layers_train_through_the_generic_path() -> None:
    X, y = moons(64)
    base = net()
    # random biases: zero biases can put a ReLU exactly on its kink, where central
    # differences and the one-sided derivative disagree
    flat = tree.ravel(base)
    base = tree.unravel(base, flat + np.random.default_rng(0).normal(0, 0.3, flat.shape))
    custom = fnn.Network(layers=(Scale(s=np.ones(2)), *base.layers), loss=base.loss)
    fnn.testing.check_grads(custom, X, y)
    fnn.testing.check_layer_grads(Scale(s=np.array([0.5, 2.0])), X, mode="elementwise")
    opt = fnn.adam(1e-2)
    fitted, _ = fnn.fit(custom, opt, X, y, epochs=1, batch_size=64, shuffle=False, rng=0, verbose=0)
    stepped, _, _ = fnn.train_step(custom, opt.init(custom), X, y)
    assert tree.allclose(fitted, stepped, rtol=1e-12, atol=1e-14)
    assert not np.array_equal(fitted.layers[0].s, np.ones(2))  # type: ignore[attr-defined]


def test_resume_continues_exactly_as_an_uninterrupted_run() -> None:
    X, y = moons()
    opt = fnn.adam(1e-2)
    full, hf = fnn.fit(net(), opt, X, y, epochs=4, rng=np.random.default_rng(1), verbose=0)
    gen = np.random.default_rng(1)
    half, h1 = fnn.fit(net(), opt, X, y, epochs=2, rng=gen, verbose=0)
    resumed, h2 = fnn.fit(
        half, opt, X, y, epochs=2, rng=gen, opt_state=h1.opt_state, initial_epoch=2, verbose=0
    )
    assert tree.allclose(resumed, full, rtol=0, atol=0)
    assert h2.epochs == [3, 4]
    assert h1.train_loss + h2.train_loss == hf.train_loss


def test_early_stopping_restores_the_best_params() -> None:
    X, y = moons(200)
    Xv, yv = moons(100, seed=9)
    # a large learning rate makes the validation loss bounce, so the best epoch is early
    trained, h = fnn.fit(
        net(),
        fnn.sgd(2.0),
        X,
        y,
        epochs=60,
        rng=0,
        validation_data=(Xv, yv),
        early_stopping=fnn.EarlyStopping(patience=3),
        verbose=0,
    )
    assert h.stopped_early and h.best_epoch is not None
    assert h.best_epoch == len(h.records) - 3
    best_val = h.val_loss[h.best_epoch - 1]
    assert best_val == min(v for v in h.val_loss if v is not None)
    assert fnn.loss(trained, Xv, yv) == pytest.approx(best_val, rel=1e-12)


def test_validation_split_is_stratified_and_metrics_reported() -> None:
    X, y = moons(200)
    _, h = fnn.fit(
        net(),
        fnn.adam(1e-2),
        X,
        y,
        epochs=2,
        rng=0,
        validation_split=0.25,
        metrics=["accuracy", "f1"],
        verbose=0,
    )
    rec = h.records[-1]
    assert rec.val_loss is not None and set(rec.val_metrics) == {"accuracy", "f1"}
    _train_idx, val_idx = fnn.datasets.split_indices(200, 0.25, rng=0, stratify=y)
    assert len(val_idx) == 50 and abs(y[val_idx].mean() - 0.5) < 0.03


def test_callbacks_may_stop_and_reduce_on_plateau_cuts_the_rate() -> None:
    X, y = moons()
    seen: list[int] = []

    def stop_at_3(h: fnn.History) -> bool:
        seen.append(len(h.records))
        return len(h.records) == 3

    _, h = fnn.fit(net(), fnn.sgd(0.1), X, y, epochs=10, rng=0, callbacks=[stop_at_3], verbose=0)
    assert seen == [1, 2, 3] and len(h.records) == 3 and h.stopped_early
    # with patience 0 and a tiny learning rate, progress is too slow for the threshold
    _, h = fnn.fit(
        net(),
        fnn.sgd(1e-6),
        X,
        y,
        epochs=4,
        rng=0,
        verbose=0,
        reduce_on_plateau=fnn.ReduceOnPlateau(factor=0.5, patience=0, threshold=0.5),
    )
    lrs = [r.learning_rate for r in h.records]
    assert lrs[0] == 1e-6 and lrs[-1] < lrs[0]


def test_sample_weights_weight_the_loss() -> None:
    X, y = moons(64)
    a, _ = fnn.fit(net(), fnn.sgd(0.1), X, y, epochs=2, rng=0, verbose=0)
    b, _ = fnn.fit(net(), fnn.sgd(0.1), X, y, epochs=2, rng=0, verbose=0, sample_weight=np.ones(64))
    assert tree.allclose(a, b, rtol=1e-10, atol=1e-12)
    c, _ = fnn.fit(
        net(),
        fnn.sgd(0.1),
        X,
        y,
        epochs=2,
        rng=0,
        verbose=0,
        sample_weight=np.where(y == 1, 3.0, 1.0),
    )
    assert not tree.allclose(a, c)


def test_divergence_raises_with_the_last_finite_params() -> None:
    X, y = fnn.datasets.make_regression(64, n_features=2, noise=0.1, rng=0)
    reg = fnn.init(fnn.mlp([2, 16, 1]), rng=0)
    with pytest.raises(
        FloatingPointError, match=r"non-finite .* at step \d+ \(epoch \d+\)"
    ) as info:
        fnn.fit(reg, fnn.sgd(1e6), X, y * 1e3, epochs=50, rng=0, verbose=0)
    err = info.value
    assert isinstance(err, fnn.TrainingDiverged)
    assert err.epoch >= 1 and err.step >= 1
    assert all(np.isfinite(x).all() for x in tree.leaves(err.params))
    assert isinstance(err.params, fnn.Network)


def test_evaluate_and_float32_training() -> None:
    X, y = moons()
    n32 = net(dtype=np.float32)
    trained, h = fnn.fit(n32, fnn.adam(1e-2), X, y, epochs=5, rng=0, verbose=0)
    assert {x.dtype for x in tree.leaves(trained)} == {np.dtype(np.float32)}
    res = fnn.evaluate(trained, X, y, metrics=["accuracy", "log_loss"])
    assert set(res) == {"loss", "accuracy", "log_loss"}
    assert res["loss"] == pytest.approx(res["log_loss"], rel=1e-4)  # BCE is the log loss
    assert res["loss"] == pytest.approx(h.train_loss[-1], rel=0.3)


def test_progress_output() -> None:
    _X, _y = moons(64)
    buf = io.StringIO()
    p = Progress(2, 4, verbose=2, stream=buf)
    p.epoch(1, "loss 0.5")
    assert buf.getvalue() == "epoch 1/2  loss 0.5\n"
    piped = io.StringIO()
    q = Progress(2, 4, verbose=1, stream=piped)  # not a terminal: a line per epoch
    q.step(1, 1, 0.5)
    q.epoch(1, "loss 0.5")
    assert piped.getvalue() == "epoch 1/2  loss 0.5\n"


def test_fit_prints_one_line_per_epoch_with_verbose_2(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = moons(64)
    fnn.fit(net(), fnn.sgd(0.1), X, y, epochs=3, rng=0, verbose=2, validation_split=0.25)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and err[0].startswith("epoch 1/3  loss ") and "val_loss" in err[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"X": np.full((4, 2), np.nan)}, ValueError, "Input X contains NaN"),
        ({"X": np.ones((4, 3))}, ValueError, "X has 3 features, but the network expects 2"),
        ({"y": np.zeros(3)}, ValueError, r"inconsistent numbers of samples: \[4, 3\]"),
        ({"y": np.array([0, 1, np.inf, 0])}, ValueError, "Input y contains infinity"),
        ({"epochs": 0}, ValueError, "epochs must be an int >= 1, got 0"),
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
        ({"validation_split": 1.0}, ValueError, r"validation_split must be in \[0, 1\)"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be an fnn optimizer"),
        ({"metrics": ["auc"]}, ValueError, "unknown metric 'auc'"),
        ({"verbose": 3}, ValueError, "verbose must be 0, 1 or 2"),
        ({"rng": None}, TypeError, "rng must be a numpy.random.Generator or an int seed"),
        (
            {"validation_data": (np.ones((2, 2)), np.zeros(3))},
            ValueError,
            r"inconsistent numbers of samples",
        ),
        ({"opt_state": "state"}, TypeError, "opt_state must be an fnn.optim.OptState"),
    ],
)
def test_fit_bad_inputs_fail_before_any_work(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args: dict[str, Any] = {
        "X": np.ones((4, 2)),
        "y": np.zeros(4),
        "epochs": 1,
        "rng": 0,
        "optimizer": fnn.sgd(0.1),
        "verbose": 0,
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        fnn.fit(net(), args.pop("optimizer"), args.pop("X"), args.pop("y"), **args)


def test_opt_state_of_another_optimizer_is_refused() -> None:
    n0 = net()
    with pytest.raises(ValueError, match="opt_state was made by a different optimizer"):
        fnn.fit(
            n0,
            fnn.sgd(0.1),
            np.ones((4, 2)),
            np.zeros(4),
            epochs=1,
            rng=0,
            opt_state=fnn.adam().init(n0),
        )


def test_evaluate_and_train_step_bad_inputs() -> None:
    n0 = net()
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fnn.evaluate(n0, np.full((2, 2), np.nan), np.zeros(2))
    with pytest.raises(ValueError, match=r"label 2 out of range \[0, 1\]"):
        fnn.evaluate(n0, np.ones((2, 2)), np.array([0, 2]))
    with pytest.raises(ValueError, match="rng is required when the network has dropout"):
        d = net(dropout=0.5)
        fnn.train_step(d, fnn.sgd(0.1).init(d), np.ones((2, 2)), np.zeros(2))


def test_the_validation_loss_of_a_weighted_fit_is_weighted() -> None:
    # the held-out rows keep their sample weights, so early stopping monitors the
    # objective that is trained, not an unweighted one
    gen = np.random.default_rng(3)
    X = gen.normal(size=(80, 2))
    y = (X[:, 0] + 0.3 * gen.normal(size=80) > 0).astype(float)
    w = gen.uniform(0.1, 5.0, size=80)
    net = fnn.init(fnn.mlp([2, 6, 1], output="sigmoid"), rng=gen)
    trained, history = fnn.fit(
        net,
        fnn.adam(1e-2),
        X,
        y,
        epochs=2,
        rng=0,
        verbose=0,
        validation_split=0.25,
        sample_weight=w,
    )
    assert history.split is not None
    va = history.split.validation
    weighted = fnn.evaluate(trained, X[va], y[va], sample_weight=w[va])["loss"]
    assert history.records[-1].val_loss == pytest.approx(weighted, rel=1e-12)
    assert abs(weighted - fnn.evaluate(trained, X[va], y[va])["loss"]) > 1e-6


def test_a_validation_split_whose_rows_all_weigh_zero_is_refused() -> None:
    X = np.arange(40.0).reshape(20, 2)
    y = (X[:, 0] > 19).astype(float)
    net = fnn.init(fnn.mlp([2, 3, 1], output="sigmoid"), rng=0)
    _, history = fnn.fit(net, fnn.sgd(0.1), X, y, epochs=1, rng=0, verbose=0, validation_split=0.25)
    assert history.split is not None
    w = np.ones(20)
    w[history.split.validation] = 0.0  # the same rows are drawn again with the same seed
    with pytest.raises(ValueError, match="sample_weight is zero for every validation row"):
        fnn.fit(
            net,
            fnn.sgd(0.1),
            X,
            y,
            epochs=1,
            rng=0,
            verbose=0,
            validation_split=0.25,
            sample_weight=w,
        )


def _cnn_steps(monkeypatch: pytest.MonkeyPatch, pool_bytes: int) -> list[bytes]:
    from fnn.train import step as step_module

    monkeypatch.setattr(step_module, "POOL_BYTES", pool_bytes)
    arch = fnn.sequential(
        (6, 6, 2),
        [
            fnn.specs.conv2d(4, 3),
            fnn.specs.batch_norm(),
            fnn.specs.activation("relu"),
            fnn.specs.dropout(0.2),
            fnn.specs.flatten(),
            fnn.specs.dense(3),
        ],
        output="softmax",
    )
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 6, 6, 2)), rng.integers(0, 3, 16)
    n = fnn.init(arch, rng=0)
    s = fnn.adam(1e-2).init(n)
    out = []
    for i in range(4):
        n, s, loss = fnn.train_step(n, s, X[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4], rng=i)
        out += [fnn.tree.ravel(n).tobytes(), fnn.tree.ravel(s.states).tobytes(), str(loss).encode()]
        kept = [a for stack in _scratch._kept.values() for a in stack]
        assert not any(np.shares_memory(a, leaf) for a in kept for leaf in fnn.tree.leaves(n))
    return out


def test_train_step_in_kept_buffers_gives_the_fresh_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step large enough to work in buffers kept from the step before computes what it
    computes in fresh arrays, keeps only arrays no caller holds, and keeps nothing when
    it fails."""
    _scratch.clear()
    fresh = _cnn_steps(monkeypatch, 1 << 60)
    assert not _scratch._kept
    assert _cnn_steps(monkeypatch, 0) == fresh
    assert _scratch._kept  # the last step's activations wait for the next one
    _scratch.clear()
    n = net()
    X, y = moons(8)
    with pytest.raises(FloatingPointError):
        fnn.train_step(n, fnn.sgd(1e-2).init(n), X * 1e300, y)  # the loss overflows
    assert not _scratch._kept


def test_output_bytes_counts_every_layer_output() -> None:
    mlp = fnn.init(fnn.mlp([2, 16, 16, 1], output="sigmoid"), rng=0)
    assert mlp.output_bytes(32) == 32 * (16 + 16 + 1) * 8
    seq = fnn.init(
        fnn.sequential(
            (None,),
            [fnn.specs.embedding(7, 4), fnn.specs.lstm(5), fnn.specs.dense(3)],
            output="softmax",
            dtype=np.float32,
        ),
        rng=0,
    )
    T = 9
    assert seq.output_bytes(2, T) == 2 * (4 * T + 5 + 3) * 4
