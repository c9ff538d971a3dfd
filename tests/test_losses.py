from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import losses as L


def naive_sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1 / (1 + np.exp(-z))
    return out


def case(seed: int, n: int = 7, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.normal(size=(n, k)) * 2, g.normal(size=(n, k))


# --- values equal PyTorch's documented definitions (reduction="mean") ---------------


@given(st.integers(0, 10**6))
def test_mse_mae_huber_definitions(seed: int) -> None:
    x, y = case(seed)
    d = x - y
    assert L.mean_squared_error(x, y) == pytest.approx(np.mean(d**2))
    assert L.mean_absolute_error(x, y) == pytest.approx(np.mean(np.abs(d)))
    delta = 0.7
    hub = np.where(np.abs(d) < delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
    assert L.huber(x, y, delta=delta) == pytest.approx(np.mean(hub))


@given(st.integers(0, 10**6))
def test_bce_and_ce_definitions(seed: int) -> None:
    g = np.random.default_rng(seed)
    z = g.normal(size=(6, 2)) * 3
    t = g.integers(0, 2, size=(6, 2)).astype(float)
    p = naive_sigmoid(z)
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert L.binary_cross_entropy(z, t) == pytest.approx(expected)
    labels = g.integers(0, 2, size=6)
    e = np.exp(z)
    ce = -np.mean(np.log(e[np.arange(6), labels] / e.sum(axis=1)))
    assert L.softmax_cross_entropy(z, labels) == pytest.approx(ce)
    onehot = np.eye(2)[labels]
    assert L.softmax_cross_entropy(z, onehot) == pytest.approx(ce)


def test_hand_worked_values() -> None:
    # MSE of [1, 2] vs [0, 0]: (1 + 4) / 2 = 2.5
    assert L.mean_squared_error([1.0, 2.0], [0.0, 0.0]) == 2.5
    # BCE at logit 0 is log 2 whatever the label
    assert L.binary_cross_entropy([0.0], [1.0]) == pytest.approx(np.log(2))
    # CE of uniform logits over 4 classes is log 4
    assert L.softmax_cross_entropy([[0.0, 0.0, 0.0, 0.0]], [2]) == pytest.approx(np.log(4))
    # Huber, delta 1: |d| = 3 -> 1 * (3 - 0.5) = 2.5
    assert L.huber([3.0], [0.0]) == 2.5


def test_reductions_and_sample_weights() -> None:
    x, y = case(1, n=4, k=1)
    per = L.mean_squared_error(x, y, reduction="none")
    assert per.shape == (4,)
    assert L.mean_squared_error(x, y, reduction="sum") == pytest.approx(per.sum())
    w = np.array([1.0, 0.0, 2.0, 1.0])
    assert L.mean_squared_error(x, y, sample_weight=w) == pytest.approx((per @ w) / w.sum())
    # integer weights duplicate samples
    dup = np.repeat(np.arange(4), [1, 0, 2, 1])
    assert L.mean_squared_error(x, y, sample_weight=w) == pytest.approx(
        L.mean_squared_error(x[dup], y[dup])
    )


LOSS_OBJECTS: list[L.Loss] = [
    L.MeanSquaredError(),
    L.MeanAbsoluteError(),
    L.Huber(0.5),
    L.BinaryCrossEntropy(),
    L.SoftmaxCrossEntropy(),
]


def prepared(loss: L.Loss, seed: int, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    z = (g.normal(size=(5, 3)) * 2).astype(dtype)
    if isinstance(loss, L.SoftmaxCrossEntropy):
        y = loss.targets(g.integers(0, 3, 5), 5, 3, np.dtype(dtype))
    elif isinstance(loss, L.BinaryCrossEntropy):
        y = loss.targets(g.integers(0, 2, (5, 3)), 5, 3, np.dtype(dtype))
    else:
        y = loss.targets(g.normal(size=(5, 3)), 5, 3, np.dtype(dtype))
    return z, y


@pytest.mark.parametrize("loss", LOSS_OBJECTS, ids=lambda l: l.name)
@given(seed=st.integers(0, 10**6), weighted=st.booleans())
def test_grad_is_central_difference_of_value(loss: L.Loss, seed: int, weighted: bool) -> None:
    z, y = prepared(loss, seed)
    w = np.random.default_rng(seed).uniform(0.1, 2, 5) if weighted else None
    g = loss.grad(z, y, w)
    h = 1e-6
    num = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[idx] = h
        num[idx] = (loss.value(z + e, y, w) - loss.value(z - e, y, w)) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("loss", LOSS_OBJECTS, ids=lambda l: l.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_in_is_dtype_out(loss: L.Loss, dtype: Any) -> None:
    z, y = prepared(loss, 0, dtype)
    assert y.dtype == dtype
    assert loss.grad(z, y).dtype == dtype
    assert loss.per_sample(z, y).dtype == dtype


@given(st.integers(0, 10**6))
def test_cross_entropy_nonnegative_and_grad_rows_sum_to_zero(seed: int) -> None:
    loss = L.SoftmaxCrossEntropy()
    z, y = prepared(loss, seed)
    assert (loss.per_sample(z, y) >= 0).all()
    np.testing.assert_allclose(loss.grad(z, y).sum(axis=1), 0.0, atol=1e-12)


@pytest.mark.parametrize("loss", LOSS_OBJECTS, ids=lambda l: l.name)
def test_extreme_logits_stay_finite(loss: L.Loss) -> None:
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]])
    _, y = prepared(loss, 0)
    y = y[:2]
    val, g = loss.value_and_grad(z, y)
    assert np.isfinite(val) and np.isfinite(g).all()


def test_target_shapes_never_broadcast() -> None:
    with pytest.raises(ValueError, match=r"y has shape \(4, 3\), but the network has 1 output"):
        L.mean_squared_error(np.zeros((4, 1)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[4, 3\]"):
        L.mean_squared_error(np.zeros(4), np.zeros(3))
    # (n,) and (n, 1) are the same thing for one output
    assert L.mean_squared_error(np.zeros((4, 1)), np.ones(4)) == 1.0


def test_label_errors() -> None:
    with pytest.raises(ValueError, match=r"label 10 out of range \[0, 10\)"):
        L.softmax_cross_entropy(np.zeros((2, 10)), [1, 10])
    with pytest.raises(ValueError, match=r"label -1 out of range \[0, 3\)"):
        L.softmax_cross_entropy(np.zeros((2, 3)), [-1, 0])
    with pytest.raises(ValueError, match="label 1.5 is not an integer"):
        L.softmax_cross_entropy(np.zeros((2, 3)), [1.5, 0])
    with pytest.raises(ValueError, match=r"label 2 out of range \[0, 1\]"):
        L.binary_cross_entropy(np.zeros(2), [0, 2])
    with pytest.raises(ValueError, match="Input y contains NaN"):
        L.mean_squared_error(np.zeros(2), [0, np.nan])
    with pytest.raises(ValueError, match="Input y contains infinity"):
        L.mean_squared_error(np.zeros(2), [0, np.inf])
    with pytest.raises(ValueError, match="reduction must be"):
        L.mean_squared_error(np.zeros(2), np.zeros(2), reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta must be"):
        L.Huber(0.0)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        L.get("hinge")


torch_missing = importlib.util.find_spec("torch") is None


@pytest.mark.skipif(torch_missing, reason="PyTorch is not installed (extra 'bench' installs it)")
def test_equal_to_pytorch() -> None:  # pragma: no cover - runs where torch is installed
    import torch

    x, y = case(3)
    tx, ty = torch.tensor(x), torch.tensor(y)
    assert L.mean_squared_error(x, y) == pytest.approx(torch.nn.MSELoss()(tx, ty).item())
    assert L.mean_absolute_error(x, y) == pytest.approx(torch.nn.L1Loss()(tx, ty).item())
    assert L.huber(x, y, delta=0.5) == pytest.approx(torch.nn.HuberLoss(delta=0.5)(tx, ty).item())
    t = (y > 0).astype(float)
    assert L.binary_cross_entropy(x, t) == pytest.approx(
        torch.nn.BCEWithLogitsLoss()(tx, torch.tensor(t)).item()
    )
    labels = np.array([0, 2, 1, 1, 0, 2, 2])
    assert L.softmax_cross_entropy(x, labels) == pytest.approx(
        torch.nn.CrossEntropyLoss()(tx, torch.tensor(labels)).item()
    )
