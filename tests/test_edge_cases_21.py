"""Nothing silently wrong, round two (issue 21): each case was silently wrong or failed
late before; now it works or is refused at the boundary with a message naming the
argument (BAD_INPUTS.md)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any, Self

import attrs
import numpy as np
import pytest

import fnn
from fnn.layers import LAYERS, LayerCache
from fnn.layers.batch_norm import BatchNorm
from fnn.layers.dense import Dense, DenseCache

FloatArray = np.ndarray[Any, np.dtype[np.floating[Any]]]


def unchecked(value: object) -> Any:
    """``value`` as it is, hidden from mypy: a wrong kind on purpose."""
    return value


# --- point 4: fnn.update on any tree takes over the new state --------------------


def _bn_and_grads(rng: np.random.Generator) -> tuple[BatchNorm, BatchNorm]:
    """A batch-norm layer and the gradients of a training pass (state leaves: the new
    running statistics), with scale and shift gradients large enough to be clipped."""
    bn = BatchNorm(scale=rng.normal(size=3), shift=rng.normal(size=3))
    X = rng.normal(size=(8, 3)) * 3 + 5
    out, cache = bn.forward(X, train=True)
    grads, _ = bn.backward(cache, 10 * rng.normal(size=out.shape))
    return bn, grads


@pytest.mark.parametrize("wrap", ["layer", "dict", "tuple"])
@pytest.mark.parametrize(
    "make",
    [lambda: fnn.chain(fnn.clip_by_global_norm(0.5), fnn.sgd(0.1)), lambda: fnn.adam(0.1)],
    ids=["clip+sgd", "adam"],
)
def test_update_takes_over_state_on_any_tree(
    rng: np.random.Generator, wrap: str, make: Any
) -> None:
    bn, grads = _bn_and_grads(rng)
    assert not np.allclose(grads.running_mean, bn.running_mean)
    params: Any = {"layer": bn, "dict": {"bn": bn}, "tuple": (bn,)}[wrap]
    g: Any = {"layer": grads, "dict": {"bn": grads}, "tuple": (grads,)}[wrap]
    opt = make()
    new, _ = fnn.update(params, g, opt.init(params))
    got = new if wrap == "layer" else new["bn"] if wrap == "dict" else new[0]
    # the new running statistics are taken over
    np.testing.assert_array_equal(got.running_mean, grads.running_mean)
    np.testing.assert_array_equal(got.running_var, grads.running_var)
    # the trainable leaves move as if the state leaves were not there (the clipping
    # norm and Adam's moments see only the gradients)
    alone = {"scale": bn.scale, "shift": bn.shift}
    want, _ = fnn.update(alone, {"scale": grads.scale, "shift": grads.shift}, opt.init(alone))
    np.testing.assert_allclose(got.scale, want["scale"], rtol=1e-12)
    np.testing.assert_allclose(got.shift, want["shift"], rtol=1e-12)


# --- point 18: fnn.dense.forward / backward from a Dense subclass -----------------


@attrs.frozen(eq=False)
class _DoubledDense(Dense):
    """A Dense subclass written to the earlier protocol, on top of fnn.dense: its
    output is twice the dense layer's."""

    def forward(
        self, X: FloatArray, *, train: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[FloatArray, LayerCache]:
        out, cache = fnn.dense.forward(self, X)
        return 2 * out, cache

    def backward(self, cache: LayerCache, d_out: FloatArray) -> tuple[Self, FloatArray]:
        assert isinstance(cache, DenseCache)
        return fnn.dense.backward(self, cache, 2 * d_out)  # type: ignore[return-value]


def test_dense_functions_from_a_subclass_reach_the_dense_math(rng: np.random.Generator) -> None:
    base = fnn.dense.init(3, 2, rng=rng, activation="tanh")
    sub = _DoubledDense(W=base.W, b=base.b, activation="tanh")
    X = rng.normal(size=(5, 3))
    want, want_cache = fnn.dense.forward(base, X)
    out, cache = sub.forward(X)
    np.testing.assert_allclose(out, 2 * want)
    d_out = rng.normal(size=(5, 2))
    want_g, want_d = fnn.dense.backward(base, want_cache, 2 * d_out)
    g, d_in = sub.backward(cache, d_out)
    np.testing.assert_allclose(g.W, want_g.W)
    np.testing.assert_allclose(d_in, want_d)
    # the layer's gradients are right, alone and in a network (which runs its methods)
    fnn.testing.check_layer_grads(sub, X)
    net = fnn.Network(layers=[sub], loss="mse")
    np.testing.assert_allclose(fnn.predict(net, X), 2 * want)
    fnn.testing.check_grads(net, X, rng.normal(size=(5, 2)))


# --- point 19: a layer's pure backward returns the caller's own d_in ---------------


KINDS = [k for _, k in LAYERS.items() if k.example is not None]


@pytest.mark.parametrize(
    "layer_and_shape",
    [
        pytest.param(lambda r: (fnn.Flatten(), (2, 3, 2)), id="Flatten()"),
        pytest.param(lambda r: (fnn.Activation("identity"), (4,)), id="Activation(identity)"),
        *[
            pytest.param(lambda r, k=k: k.example(r, np.dtype(np.float64)), id=k.name)
            for k in KINDS
        ],
    ],
)
def test_layer_backward_returns_a_fresh_d_in(
    rng: np.random.Generator, layer_and_shape: Callable[[np.random.Generator], Any]
) -> None:
    layer, shape = layer_and_shape(rng)
    X = rng.normal(size=(4, *shape))
    out, cache = layer.forward(X, train=True, rng=rng)
    d_out = rng.normal(size=out.shape)
    d_out.flags.writeable = False
    _, d_in = layer.backward(cache, d_out)
    assert not np.shares_memory(d_in, d_out)
    assert d_in.flags.writeable


# --- point 16: hyper-parameters of the wrong kind are named ------------------------


KIND_ERRORS: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "BatchNorm momentum",
        lambda: BatchNorm.create(3, momentum=unchecked("abc")),
        TypeError,
        "momentum must be a real number, got str 'abc'",
    ),
    (
        "BatchNorm momentum bool",
        lambda: BatchNorm.create(3, momentum=unchecked(True)),
        TypeError,
        "momentum must be a real number, got bool True",
    ),
    (
        "batch_norm spec eps",
        lambda: fnn.specs.batch_norm(eps=unchecked(None)),
        TypeError,
        "eps must be a real number, got NoneType None",
    ),
    (
        "layer_norm spec eps",
        lambda: fnn.specs.layer_norm(eps=unchecked("x")),
        TypeError,
        "eps must be a real number, got str",
    ),
    (
        "dropout rate",
        lambda: fnn.specs.dropout(unchecked("0.5")),
        TypeError,
        "dropout rate must be a real number, got str",
    ),
    (
        "LeakyReLU",
        lambda: fnn.activations.LeakyReLU(unchecked("x")),
        TypeError,
        "negative_slope must be a real number",
    ),
    ("Huber", lambda: fnn.losses.Huber(unchecked("x")), TypeError, "delta must be a real number"),
    (
        "Normal",
        lambda: fnn.initializers.Normal(unchecked("x")),
        TypeError,
        "std must be a real number",
    ),
    (
        "sgd momentum",
        lambda: fnn.sgd(0.1, momentum=unchecked("x")),
        TypeError,
        "momentum must be a real number, got str 'x'",
    ),
    (
        "adam b1",
        lambda: fnn.adam(b1=unchecked(None)),
        TypeError,
        "b1 must be a real number, got NoneType",
    ),
    (
        "clip max_norm",
        lambda: fnn.clip_by_global_norm(unchecked("1")),
        TypeError,
        "max_norm must be a real number, got str '1'",
    ),
    (
        "CosineDecay initial",
        lambda: fnn.schedules.CosineDecay(unchecked("x"), decay_steps=3),
        TypeError,
        "initial must be a real number",
    ),
    (
        "sequential input_shape",
        lambda: fnn.sequential(unchecked(None), [fnn.specs.dense(1)]),
        TypeError,
        "input_shape must be a sequence of positive ints, got NoneType None",
    ),
    (
        "sequential layers",
        lambda: fnn.sequential(3, unchecked(None)),
        TypeError,
        "layers must be a sequence of layer specs, got NoneType None",
    ),
    (
        "mlp sizes",
        lambda: fnn.mlp(unchecked(None)),
        TypeError,
        "sizes must be a sequence of layer widths, got NoneType None",
    ),
    (
        "sgd str.upper",
        lambda: fnn.sgd(learning_rate=unchecked(str.upper)),
        TypeError,
        "learning_rate must be a float or a schedule .*got the builtin <method 'upper'",
    ),
    (
        "adam abs",
        lambda: fnn.adam(learning_rate=unchecked(abs)),
        TypeError,
        "learning_rate must be a float or a schedule .*got the builtin <built-in function abs>",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"), [pytest.param(*row[1:], id=row[0]) for row in KIND_ERRORS]
)
def test_hyper_parameters_of_the_wrong_kind_are_named(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()


def test_numpy_hyper_parameters_are_python_floats() -> None:
    # a NumPy scalar is a number: accepted, stored (and saved) as a float
    opt = fnn.chain(
        fnn.clip_by_global_norm(unchecked(np.float32(1.0))),
        fnn.sgd(unchecked(np.float32(0.1)), momentum=unchecked(np.float32(0.5))),
    )
    config = opt.config()
    assert json.loads(json.dumps(config)) == config
    assert type(config[1]["learning_rate"]) is float and config[1]["momentum"] == 0.5
    assert BatchNorm.create(2, momentum=unchecked(np.float32(0.25))).momentum == 0.25


# --- point 19: what cannot be right is refused when it is built ---------------------


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("running_var", [1.0, -0.5, 1.0], "running_var must be >= 0, got"),
        ("running_mean", [0.0, np.nan, 0.0], "running_mean must be finite"),
        ("running_var", [1.0, np.inf, 1.0], "running_var must be finite"),
    ],
)
def test_batch_norm_refuses_running_statistics_no_data_gives(
    field: str, bad: list[float], message: str
) -> None:
    stats: dict[str, Any] = {field: np.array(bad)}
    with pytest.raises(ValueError, match=message):
        BatchNorm(scale=np.ones(3), **stats)
    # a variance of exactly 0 (a constant feature) is what data can give
    assert BatchNorm(scale=np.ones(3), running_var=np.zeros(3)).running_var.sum() == 0


def test_sequential_refuses_samples_without_an_axis() -> None:
    with pytest.raises(ValueError, match=r"input_shape must have at least one axis, got \(\)"):
        fnn.sequential((), [fnn.specs.flatten(), fnn.specs.dense(1)])
    with pytest.raises(ValueError, match=r"input_shape must have at least one axis"):
        fnn.Network(layers=[fnn.Flatten(), Dense(W=np.ones((1, 1)))], input_shape=(), loss="mse")


@pytest.mark.parametrize(
    "specs",
    [
        [fnn.specs.flatten()],
        [fnn.specs.activation("relu"), fnn.specs.dropout(0.5)],
    ],
    ids=["flatten", "activation+dropout"],
)
def test_sequential_refuses_a_network_without_parameters(specs: list[Any]) -> None:
    with pytest.raises(
        ValueError, match="a network needs at least one layer with parameters, but none of"
    ):
        fnn.sequential(4, specs)
    # with a layer that has parameters the same stack is fine, and init agrees
    arch = fnn.sequential(4, [*specs, fnn.specs.dense(2)])
    assert fnn.init(arch, rng=0).n_outputs == 2


def test_image_stacks_without_parameters_are_refused_too() -> None:
    with pytest.raises(ValueError, match="MaxPool2DSpec, GlobalAvgPool2DSpec has any"):
        fnn.sequential((4, 4, 2), [fnn.specs.max_pool2d(2), fnn.specs.global_avg_pool2d()])


# --- point 13: only the first layer fixes a network's input shape -------------------


def test_input_shape_comes_from_the_first_layer_only(rng: np.random.Generator) -> None:
    conv = fnn.Conv2D(W=rng.normal(size=(3, 3, 2, 4)))
    head: list[Any] = [fnn.GlobalAvgPool2D(), Dense(W=rng.normal(size=(4, 1)))]
    with pytest.raises(
        ValueError,
        match=r"input shape is not fixed by its first layer \(layers.0, Conv2D\): pass "
        "input_shape=",
    ):
        fnn.Network(layers=[conv, *head], loss="mse")
    # a later dense layer no longer passes its (4,) off as the network's input
    with pytest.raises(ValueError, match=r"layers.0, Dropout"):
        fnn.Network(layers=[fnn.Dropout(0.5), Dense(W=np.ones((3, 1)))], loss="mse")
    net = fnn.Network(layers=[conv, *head], loss="mse", input_shape=(6, 6, 2))
    assert net.input_shape == (6, 6, 2)
    assert fnn.predict(net, rng.normal(size=(5, 6, 6, 2))).shape == (5, 1)
    # a first dense layer still fixes it
    assert fnn.Network(layers=[Dense(W=np.ones((3, 1)))], loss="mse").input_shape == (3,)


# --- point 7: resuming with validation or controllers needs the History ------------


def _moons() -> tuple[FloatArray, Any]:
    return fnn.datasets.make_moons(60, noise=0.2, rng=0)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"validation_split": 0.2}, "validation_split"),
        ({"reduce_on_plateau": fnn.ReduceOnPlateau(patience=1)}, "reduce_on_plateau"),
        ({"early_stopping": fnn.EarlyStopping(patience=1)}, "early_stopping"),
    ],
    ids=["validation_split", "reduce_on_plateau", "early_stopping"],
)
def test_initial_epoch_without_history_is_refused_where_it_would_differ(
    options: dict[str, Any], named: str
) -> None:
    X, y = _moons()
    net = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=0)
    opt = fnn.adam(1e-2)
    first, h = fnn.fit(net, opt, X, y, epochs=2, rng=1, verbose=0, **options)
    with pytest.raises(ValueError, match=rf"initial_epoch=2 resumes a run, but with {named}.*"):
        fnn.fit(first, opt, X, y, epochs=1, rng=1, verbose=0, initial_epoch=2, **options)
    with pytest.raises(ValueError, match="pass history="):
        fnn.fit(first, opt, X, y, epochs=1, rng=1, verbose=0, initial_epoch=2, **options)
    # with the History it resumes; without those options initial_epoch alone still numbers
    _, h2 = fnn.fit(first, opt, X, y, epochs=1, rng=1, verbose=0, history=h, **options)
    assert h2.epochs[-1] == 3
    _, h3 = fnn.fit(first, opt, X, y, epochs=1, rng=1, verbose=0, initial_epoch=2)
    assert h3.epochs == [3]


# --- point 15: a training batch too small for batch norm is refused up front ---------


def _bn_net() -> fnn.Network:
    return fnn.init(fnn.mlp([2, 4, 1], output="sigmoid", norm="batch"), rng=0)


@pytest.mark.parametrize(
    ("n", "options", "message"),
    [
        (33, {"batch_size": 8}, r"the last batch of each epoch has 1 \(33 training rows"),
        # 44 rows, a quarter (11) held out: 33 train, the last batch of 8 has 1 row
        (44, {"batch_size": 8, "validation_split": 0.25}, r"has 1 \(33 training rows"),
        (10, {"batch_size": 1}, "every batch has 1 .*use a batch_size of at least 2"),
        (1, {"batch_size": 8}, "every batch has 1"),
    ],
    ids=["last-batch", "after-validation-split", "batch_size-1", "one-row"],
)
def test_fit_refuses_one_row_batches_for_batch_norm(
    n: int, options: dict[str, Any], message: str
) -> None:
    X, y = fnn.datasets.make_moons(n, noise=0.2, rng=0) if n > 1 else _moons()
    X, y = X[:n], y[:n]
    net = _bn_net()
    calls: list[int] = []
    with pytest.raises(ValueError, match=r"layers.1 \(BatchNorm\) needs at least 2 rows"):
        fnn.fit(net, fnn.sgd(0.1), X, y, epochs=2, rng=0, verbose=0, **options)
    with pytest.raises(ValueError, match=message):
        fnn.fit(
            net,
            fnn.sgd(0.1),
            X,
            y,
            epochs=2,
            rng=0,
            verbose=0,
            callbacks=[lambda h: calls.append(1)],
            **options,
        )
    assert not calls  # refused before the first epoch
    if "last batch" in message:
        # as the message says: drop_last=True trains
        _, h = fnn.fit(
            net, fnn.sgd(0.1), X, y, epochs=1, rng=0, verbose=0, drop_last=True, **options
        )
        assert np.isfinite(h.train_loss[-1])


def test_images_with_batch_norm_train_on_one_row_batches(rng: np.random.Generator) -> None:
    # over (h, w, c) samples batch norm averages h * w values per row: one row is enough
    arch = fnn.sequential(
        (3, 3, 2),
        [fnn.specs.conv2d(2, 2), fnn.specs.batch_norm(), fnn.specs.flatten(), fnn.specs.dense(1)],
    )
    net = fnn.init(arch, rng=0)
    _, h = fnn.fit(
        net,
        fnn.sgd(0.01),
        rng.normal(size=(5, 3, 3, 2)),
        rng.normal(size=(5, 1)),
        epochs=1,
        batch_size=2,
        rng=0,
        verbose=0,
    )
    assert np.isfinite(h.train_loss[-1])


# --- point 11: predict's chunks count every large temporary ------------------------


def test_predict_peak_memory_counts_the_im2col_matrix(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 4 << 20
    monkeypatch.setattr(fnn.network.inference, "INFERENCE_BYTES", budget)
    arch = fnn.sequential(
        (8, 8, 4),
        [fnn.specs.conv2d(4, 5, padding="same"), fnn.specs.flatten(), fnn.specs.dense(1)],
    )
    net = fnn.init(arch, rng=0)
    X = rng.normal(size=(1000, 8, 8, 4))  # 2 MB; its im2col matrix alone is 52 MB
    want = fnn.predict(net, X[:10])
    tracemalloc.start()
    try:
        out = fnn.predict(net, X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(out[:10], want)
    # one chunk's temporaries are about the budget; the old 4x-the-outputs estimate let
    # a chunk's im2col matrix alone take three times it
    assert peak < 2 * budget, f"predict peaked at {peak / 2**20:.1f} MiB"
