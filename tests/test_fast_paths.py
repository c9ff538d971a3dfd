"""The fast paths of the speed work keep behaviour: validation shortcuts, the one-pass
binary cross-entropy value, ReLU's small-array derivative, Dense's calls into user
activations, and train_step's flat gradient (against the pure loop and fit)."""

from __future__ import annotations

import warnings
from typing import Any

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray

import fnn
from fnn import specs as S
from fnn._validation import check_finite, check_X
from fnn.activations import Activation, ReLU
from fnn.losses import BinaryCrossEntropy

FloatArray = NDArray[np.floating[Any]]


# --- check_finite / check_X ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_finite_finds_every_nonfinite_position(dtype: Any) -> None:
    """The dot-with-zeros test of small arrays: NaN and +-inf anywhere among huge finite
    values (whose sums and products overflow) are found, with the old messages."""
    huge = 3e38 if dtype == np.float32 else 1e308
    for n in [*range(1, 70), 255, 256, 257, 2047, 2048, 4095, 4096, 4097]:
        base = np.full(n, huge, dtype)
        base[::2] *= -1
        check_finite(base, "X")  # finite: no error, no warning
        for p in sorted({0, 1, n // 2, n - 2, n - 1} & set(range(n))):
            for v, msg in ((np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")):
                a = base.copy()
                a[p] = v
                with pytest.raises(ValueError, match=f"^Input X contains {msg}.$"):
                    check_finite(a, "X")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_x_fast_path_matches_general_path(dtype: Any) -> None:
    d = np.dtype(dtype)
    X = np.arange(12, dtype=dtype).reshape(3, 4)
    assert check_X(X, input_shape=(4,), dtype=d) is X  # as before: no copy
    img = np.ones((2, 5, 5, 3), dtype)
    assert check_X(img, input_shape=(5, 5, 3), dtype=d) is img
    for bad, msg in [
        (np.ones((0, 4), dtype), "0 sample"),
        (np.full((3, 4), np.nan, dtype), "NaN"),
        (np.asfortranarray(np.full((3, 4), -np.inf, dtype)), "infinity"),
        (np.ma.masked_invalid(np.full((3, 4), np.nan, dtype)), "NaN"),
    ]:
        with pytest.raises(ValueError, match=msg):
            check_X(bad, input_shape=(4,), dtype=d)
    huge = np.full((3, 4), 3e38, dtype)  # finite; its sum overflows float32
    assert check_X(huge, input_shape=(4,), dtype=d) is huge


# --- BinaryCrossEntropy ---------------------------------------------------------------


def _old_bce_per_sample(z: FloatArray, y: FloatArray) -> FloatArray:
    terms = np.log1p(np.exp(-np.abs(z)))
    terms += np.maximum(z, 0)
    terms -= z * y
    out: FloatArray = terms[:, 0] if z.shape[1] == 1 else terms.mean(axis=1)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_value_matches_old_formula_to_rounding(dtype: Any) -> None:
    rng = np.random.default_rng(0)
    z = np.concatenate(
        [
            np.array([[1e4], [-1e4], [100], [-100], [0.0], [-0.0], [30], [-30]]),
            rng.normal(scale=10, size=(2000, 1)),
        ]
    ).astype(dtype)
    for y in (np.zeros_like(z), np.ones_like(z), rng.uniform(size=z.shape).astype(dtype)):
        new, _ = BinaryCrossEntropy().fused(z, y)
        assert new is not None
        old = _old_bce_per_sample(z, y)
        # within a few ulps of the log(1 + e^z) term both compute before subtracting z*y
        scale = np.spacing(np.maximum(np.abs(np.logaddexp(dtype(0), z[:, 0])), 1).astype(dtype))
        assert np.all(np.abs(new - old) <= 4 * scale)


@pytest.mark.parametrize(
    "dtype",
    ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"],
)
def test_bce_integer_labels_range_checked(dtype: str) -> None:
    L = BinaryCrossEntropy()
    f64 = np.dtype(np.float64)
    ok = np.array([0, 1, 1, 0]).astype(dtype)
    np.testing.assert_array_equal(L.targets(ok, 4, 1, f64).ravel(), [0, 1, 1, 0])
    if dtype == "bool":
        return
    with pytest.raises(ValueError, match="label 2 out of range"):
        L.targets(np.array([0, 2, 1, 0]).astype(dtype), 4, 1, f64)
    if dtype.startswith("int"):
        with pytest.raises(ValueError, match="label -1 out of range"):
            L.targets(np.array([0, 1, -1, 0]).astype(dtype), 4, 1, f64)
        lo = np.iinfo(dtype).min
        with pytest.raises(ValueError, match="out of range"):
            L.targets(np.array([0, 1, lo, 0]).astype(dtype), 4, 1, f64)


def _net_with_nan_logits() -> fnn.Network:
    net = fnn.init(fnn.mlp([2, 3, 1], output="sigmoid"), rng=0)
    last = net.layers[-1]
    b = np.array(last.b, copy=True)  # type: ignore[attr-defined]
    b[0] = np.nan
    new_last = attrs.evolve(last, b=b)  # type: ignore[misc]
    return attrs.evolve(net, layers=(*net.layers[:-1], new_last))


def test_bce_nan_logits_raise_no_floating_point_event() -> None:
    """regression: the loss of NaN logits is NaN, with no 'invalid value' event
    (c75a745: np.logaddexp(0, nan) raises FE_INVALID -> RuntimeWarning, or
    FloatingPointError under np.seterr(invalid='raise') as in this suite)."""
    net = _net_with_nan_logits()
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with np.errstate(invalid="raise"):
        assert np.isnan(fnn.loss(net, X, y))
        with pytest.raises(FloatingPointError, match="non-finite loss"):
            fnn.train_step(net, fnn.sgd(0.1).init(net), X, y)
    with np.errstate(all="warn"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(fnn.value_and_grad(net, X, y)[0])


# --- ReLU.vjp -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (32, 64), (2048,), (2049,), (4, 3, 5, 5)])
def test_relu_vjp_bits_equal_mask_formula(dtype: Any, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=shape).astype(dtype)
    z[rng.uniform(size=shape) < 0.2] = 0.0
    z[rng.uniform(size=shape) < 0.2] = -0.0
    da = rng.normal(size=shape).astype(dtype)
    da[rng.uniform(size=shape) < 0.1] = -0.0
    r = ReLU()
    a = r(z.copy())
    want = np.multiply(da, a > 0)
    for mode in ("none", "fresh", "da", "a", "view_of_a"):
        a2, da2 = a.copy(), da.copy()
        out = {
            "none": None,
            "fresh": np.empty_like(a2),
            "da": da2,
            "a": a2,
            "view_of_a": a2.view(),
        }[mode]
        got = r.vjp(z, a2, da2, out)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), mode


@pytest.mark.parametrize("shape", [(3, 5), (2048,)])
def test_relu_vjp_into_a_view_of_da(shape: tuple[int, ...]) -> None:
    """regression: ``out`` sharing memory with ``da`` without being the same object
    (c75a745 writes sign(a) over da first, and returns sign(a))."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=shape)
    a = ReLU()(z.copy())
    da = rng.normal(size=shape)
    want = np.multiply(da, a > 0)
    d2 = da.copy()
    got = ReLU().vjp(z, a, d2, d2.reshape(shape))  # a new view object of d2's memory
    np.testing.assert_array_equal(got, want)


def test_relu_subclass_with_its_own_call_keeps_the_mask_derivative() -> None:
    """A subclass whose outputs can be negative does not get the sign(a) shortcut."""

    @attrs.frozen
    class Shifted(ReLU):
        in_place = True

        def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
            r: FloatArray = np.subtract(np.maximum(z, 0), 0.5, out=out)
            return r

    z = np.array([[-1.0, 0.2, 2.0]])
    a = Shifted()(z)
    np.testing.assert_array_equal(Shifted().vjp(z, a, np.ones_like(z)), [[0.0, 0.0, 1.0]])


@attrs.frozen
class _PlusMinusOne(BinaryCrossEntropy):
    """Labels -1 / +1, mapped to 0 / 1 before the base class checks them."""

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype[Any]) -> FloatArray:
        return super().targets((np.asarray(y) + 1) // 2, n, k, dtype)


class _MapsPlusMinusOne(fnn.losses.Loss):
    """A cooperative mixin: maps -1 / +1 labels to 0 / 1, then the next class checks."""

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype[Any]) -> FloatArray:
        return super().targets((np.asarray(y) + 1) // 2, n, k, dtype)


@attrs.frozen
class _Cooperative(BinaryCrossEntropy, _MapsPlusMinusOne):
    pass


@pytest.mark.parametrize("L", [_PlusMinusOne(), _Cooperative()])
def test_bce_targets_reach_classes_mapping_labels(L: BinaryCrossEntropy) -> None:
    f64 = np.dtype(np.float64)
    np.testing.assert_array_equal(L.targets(np.array([-1, 1, 1]), 3, 1, f64).ravel(), [0, 1, 1])
    with pytest.raises(ValueError, match="label 2 out of range"):
        L.targets(np.array([-1, 3, 1]), 3, 1, f64)


# --- user activations in Dense ---------------------------------------------------------


@attrs.frozen
class _KeywordOut(Activation):
    """softsign with ``out`` keyword-only: ``_takes_out`` accepts it (no adapter)."""

    name = "probe_kw_softsign"

    def __call__(self, z: FloatArray, *, out: FloatArray | None = None) -> FloatArray:  # type: ignore[override]
        r: FloatArray = np.divide(z, 1 + np.abs(z), out=out)
        return r

    def vjp(  # type: ignore[override]
        self, z: FloatArray, a: FloatArray, da: FloatArray, *, out: FloatArray | None = None
    ) -> FloatArray:
        r: FloatArray = np.divide(da, (1 + np.abs(z)) ** 2, out=out)
        return r


@attrs.frozen
class _ExtraArg(Activation):
    """tanh * scale, with a parameter before ``out``."""

    name = "probe_scaled_tanh"

    def __call__(  # type: ignore[override]
        self, z: FloatArray, scale: float = 2.0, out: FloatArray | None = None
    ) -> FloatArray:
        r: FloatArray = np.multiply(np.tanh(z), scale, out=out)
        return r

    def vjp(  # type: ignore[override]
        self,
        z: FloatArray,
        a: FloatArray,
        da: FloatArray,
        scale: float = 2.0,
        out: FloatArray | None = None,
    ) -> FloatArray:
        r: FloatArray = np.multiply(da, scale * (1 - np.tanh(z) ** 2), out=out)
        return r


@pytest.mark.parametrize("act", [_KeywordOut(), _ExtraArg()])
def test_dense_passes_out_by_keyword(act: Activation) -> None:
    """regression: Dense gives ``out`` to its activation by keyword (c75a745 passes it by
    position: TypeError for keyword-only ``out``, silently wrong values otherwise)."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 4))
    net = fnn.Network(
        layers=[fnn.Dense(W=W, b=np.zeros(4), activation=act), fnn.Dense(W=np.ones((4, 1)))],
        loss="mse",
    )
    X = rng.normal(size=(5, 3))
    want = act(X @ W) @ np.ones((4, 1))
    np.testing.assert_allclose(fnn.forward(net, X)[0], want, rtol=1e-12)


# --- train_step against the pure functions ------------------------------------------


@pytest.mark.parametrize(
    "opt",
    [
        fnn.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        fnn.adamw(1e-2, weight_decay=0.1, decay_mask=fnn.weights_only),
        fnn.chain(
            fnn.clip_by_global_norm(0.1),
            fnn.adam(1e-2),
            fnn.freeze(lambda p: p.startswith("layers.1")),
        ),
    ],
)
def test_train_step_fit_and_pure_loop_agree_with_state_and_weights(opt: fnn.Optimizer) -> None:
    arch = fnn.sequential(
        4,
        [S.activation("tanh"), S.batch_norm(), S.dense(8, "relu"), S.dense(3)],
        output="softmax",
    )
    net = fnn.init(arch, rng=1)
    rng = np.random.default_rng(0)
    X, y, w = rng.normal(size=(24, 4)), rng.integers(0, 3, 24), rng.uniform(0.5, 2, 24)
    p1, s1 = net, opt.init(net)
    p2, s2 = net, opt.init(net)
    for i in range(3):
        sl = slice(8 * i, 8 * (i + 1))
        p1, s1, _ = fnn.train_step(p1, s1, X[sl], y[sl], sample_weight=w[sl])
        _, cache = fnn.forward(p2, X[sl], train=True)
        p2, s2 = fnn.update(p2, fnn.backward(p2, cache, y[sl], sample_weight=w[sl]), s2)
    fitted, _ = fnn.fit(
        net, opt, X, y, epochs=1, batch_size=8, shuffle=False, sample_weight=w, rng=0, verbose=0
    )
    assert np.array_equal(p1.flat, p2.flat)
    assert np.array_equal(p1.flat, fitted.flat)
    assert all(
        np.array_equal(a, b) for a, b in zip(fnn.tree.leaves(s1), fnn.tree.leaves(s2), strict=True)
    )


# --- optimizers chunk by chunk ------------------------------------------------------------

CHUNKED_OPTIMIZERS = [
    fnn.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    fnn.adam(1e-2, weight_decay=1e-3),
    fnn.adamw(1e-2, weight_decay=0.1, decay_mask=fnn.weights_only),
    fnn.rmsprop(1e-2, momentum=0.5, centered=True, weight_decay=1e-3),
    fnn.adagrad(1e-2, lr_decay=0.01, initial_accumulator_value=0.1),
    fnn.chain(
        fnn.add_decayed_weights(1e-2, fnn.weights_only),
        fnn.adam(1e-2),
        fnn.freeze(lambda p: p.startswith("layers.0")),
    ),
    fnn.chain(fnn.clip_by_global_norm(0.5), fnn.adam(1e-2)),  # not elementwise: whole
]


@pytest.mark.parametrize("opt", CHUNKED_OPTIMIZERS)
def test_optimizers_give_the_same_bits_chunk_by_chunk(
    opt: fnn.Optimizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fnn.update and fit run elementwise chains in cache-sized chunks on large vectors;
    with chunks of 40 bytes (so the 10-element ones are chunked too) fnn.update, a loop
    of train_step and fit give the bits of the whole-vector pass."""
    arch = fnn.sequential(5, [S.dense(7, "tanh"), S.batch_norm(), S.dense(3)], output="softmax")
    net = fnn.init(arch, rng=3)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 5)), rng.integers(0, 3, 30)

    def trained() -> tuple[fnn.Network, fnn.Network, fnn.Network, list[Any]]:
        p1, s1 = net, opt.init(net)
        p2, s2 = net, opt.init(net)
        for i in range(3):
            sl = slice(10 * i, 10 * (i + 1))
            p1, s1, _ = fnn.train_step(p1, s1, X[sl], y[sl])
            _, cache = fnn.forward(p2, X[sl], train=True)
            p2, s2 = fnn.update(p2, fnn.backward(p2, cache, y[sl]), s2)
        fitted, _ = fnn.fit(
            net, opt, X, y, epochs=1, batch_size=10, shuffle=False, rng=0, verbose=0
        )
        return p1, p2, fitted, fnn.tree.leaves(s1)

    whole = trained()
    from fnn.optim import _arrays  # where the chunk size is read

    monkeypatch.setattr(_arrays, "CHUNK_BYTES", 40)
    assert len(fnn.optim.chunks(net.layout.size, 8)) > 10
    chunked = trained()
    for a, b in zip(whole[:3], chunked[:3], strict=True):
        assert np.array_equal(a.flat, b.flat)
    assert np.array_equal(chunked[0].flat, chunked[1].flat)
    assert np.array_equal(chunked[0].flat, chunked[2].flat)
    for a, b in zip(whole[3], chunked[3], strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
