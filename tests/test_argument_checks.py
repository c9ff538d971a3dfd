"""Smaller gaps at the boundary (issue 13, item 11; BAD_INPUTS.md): each is a clear
ValueError or TypeError naming the argument, raised before any work."""

from __future__ import annotations

import gzip
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import datasets as D
from fnn import metrics


def unchecked(value: object) -> Any:
    """``value`` as it is, hidden from mypy: a wrong kind on purpose, or a NumPy scalar
    where the signature says ``int``."""
    return value


SCORES = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])

ROWS: list[tuple[Callable[[], Any], type[Exception], str]] = [
    # top_k_accuracy: labels out of range (returned 0.5 before), k not an int
    (
        lambda: metrics.top_k_accuracy([1, 3], SCORES, k=2),
        ValueError,
        r"y_true has label 3 out of range \[0, 3\) \(scores has 3 columns\)",
    ),
    (
        lambda: metrics.top_k_accuracy([-1, 0], SCORES, k=2),
        ValueError,
        r"y_true has label -1 out of range \[0, 3\)",
    ),
    (
        lambda: metrics.top_k_accuracy([1, 0], SCORES, k=unchecked(2.5)),
        TypeError,
        "k must be an int, got float 2.5",
    ),
    (
        lambda: metrics.top_k_accuracy([1, 0], SCORES, k=unchecked("2")),
        TypeError,
        "k must be an int, got str '2'",
    ),
    (
        lambda: metrics.top_k_accuracy([1, 0], SCORES, k=True),
        TypeError,
        "k must be an int, got bool",
    ),
    (lambda: metrics.top_k_accuracy([1, 0], SCORES, k=0), ValueError, "k must be >= 1, got 0"),
    (
        lambda: metrics.top_k_accuracy([], np.zeros((0, 3))),
        ValueError,
        r"Found array with 0 sample\(s\) \(shape=\(0,\)\) .* \(y_true\)",
    ),
    # log_loss's eps
    (
        lambda: metrics.log_loss([0, 1], [0.2, 0.9], eps=math.nan),
        ValueError,
        r"eps must be in \(0, 0.5\), got nan",
    ),
    (
        lambda: metrics.log_loss([0, 1], [0.2, 0.9], eps=-1e-3),
        ValueError,
        r"eps must be in \(0, 0.5\), got -0.001",
    ),
    (
        lambda: metrics.log_loss([0, 1], [0.2, 0.9], eps=0.0),
        ValueError,
        r"eps must be in \(0, 0.5\), got 0.0",
    ),
    (
        lambda: metrics.log_loss([0, 1], [0.2, 0.9], eps=unchecked("1e-15")),
        TypeError,
        "eps must be a float, got str",
    ),
    (
        lambda: metrics.log_loss([0, 2], [0.2, 0.9]),
        ValueError,
        r"y_true has label 2 out of range \[0, 2\) \(proba has 2 classes\)",
    ),
    (lambda: metrics.log_loss([], []), ValueError, r"Found array with 0 sample\(s\)"),
    # regression metrics on nothing
    (
        lambda: metrics.r2_score([], []),
        ValueError,
        r"Found array with 0 sample\(s\) \(shape=\(0, 1\)\) .*\(y_true\)",
    ),
    (
        lambda: metrics.mean_squared_error([], []),
        ValueError,
        r"Found array with 0 sample\(s\).*\(y_true\)",
    ),
    (
        lambda: metrics.mean_absolute_error([], []),
        ValueError,
        r"Found array with 0 sample\(s\).*\(y_true\)",
    ),
    (lambda: metrics.accuracy([], []), ValueError, r"Found array with 0 sample\(s\).*\(y_true\)"),
    # one_hot
    (lambda: D.one_hot([]), ValueError, r"labels is empty \(shape \(0,\)\): pass n_classes"),
    (
        lambda: D.one_hot([0, 1], unchecked(2.5)),
        TypeError,
        "n_classes must be an int or None, got float 2.5",
    ),
    (lambda: D.one_hot([0, 1], -1), ValueError, "n_classes must be >= 1, got -1"),
    (lambda: D.one_hot([0, 1], 0), ValueError, "n_classes must be >= 1, got 0"),
    (lambda: D.one_hot([0, 1], True), TypeError, "n_classes must be an int or None, got bool"),
    # synthetic data sets
    (
        lambda: D.make_linear(10, weights=(1.0, math.nan)),
        ValueError,
        r"weights must be finite, got \[1.0, nan\]",
    ),
    (lambda: D.make_linear(10, weights=(1.0, math.inf)), ValueError, "weights must be finite"),
    (
        lambda: D.make_linear(10, weights=unchecked(("a", "b"))),
        TypeError,
        "weights must be a sequence of floats",
    ),
    (
        lambda: D.make_linear(10, threshold=math.nan),
        ValueError,
        "threshold must be finite, got nan",
    ),
    (
        lambda: D.make_spirals(30, n_classes=unchecked(2.5)),
        TypeError,
        "n_classes must be an int, got float 2.5",
    ),
    (lambda: D.make_spirals(30, n_classes=1), ValueError, "n_classes must be >= 2, got 1"),
    (
        lambda: D.make_regression(10, n_features=unchecked(2.5)),
        TypeError,
        "n_features must be an int, got float 2.5",
    ),
    (
        lambda: D.make_regression(10, n_targets=unchecked("2")),
        TypeError,
        "n_targets must be an int, got str '2'",
    ),
    (lambda: D.make_regression(10, n_features=0), ValueError, "n_features must be >= 1, got 0"),
    (
        lambda: D.make_moons(10, noise=unchecked("a")),
        TypeError,
        "noise must be a float, got str 'a'",
    ),
    (lambda: D.make_moons(10, noise=math.nan), ValueError, "noise must be finite, got nan"),
    (
        lambda: D.make_circles(10, noise=unchecked(None)),
        TypeError,
        "noise must be a float, got NoneType",
    ),
    (
        lambda: D.make_circles(10, factor=unchecked("x")),
        TypeError,
        "factor must be a float, got str 'x'",
    ),
    # controllers
    (
        lambda: fnn.schedules.ReduceOnPlateau(patience=unchecked(1.5)),
        TypeError,
        "patience must be an int, got float 1.5",
    ),
    (
        lambda: fnn.schedules.ReduceOnPlateau(cooldown=unchecked("x")),
        TypeError,
        "cooldown must be an int, got str 'x'",
    ),
    (
        lambda: fnn.schedules.ReduceOnPlateau(cooldown=-1),
        ValueError,
        "cooldown must be >= 0, got -1",
    ),
    (
        lambda: fnn.schedules.ReduceOnPlateau(patience=-2),
        ValueError,
        "patience must be >= 0, got -2",
    ),
    (
        lambda: fnn.schedules.ReduceOnPlateau(factor=unchecked("x")),
        TypeError,
        "factor must be a float, got str 'x'",
    ),
    (
        lambda: fnn.EarlyStopping(min_delta=unchecked("x")),
        TypeError,
        "min_delta must be a float, got str 'x'",
    ),
    (lambda: fnn.EarlyStopping(min_delta=math.nan), ValueError, "min_delta must be >= 0, got nan"),
    (
        lambda: fnn.EarlyStopping(patience=unchecked(1.5)),
        TypeError,
        "patience must be an int, got float 1.5",
    ),
    (
        lambda: fnn.EarlyStopping(restore_best=unchecked("yes")),
        TypeError,
        "restore_best must be a bool, got str",
    ),
    # minibatches: what fit refuses, it refuses the same way
    (
        lambda: list(D.minibatches(np.zeros(4), batch_size=unchecked(2.0))),
        ValueError,
        r"batch_size must be an int >= 1, got 2.0",
    ),
    (
        lambda: list(D.minibatches(np.zeros(4), batch_size=unchecked(np.int64(0)))),
        ValueError,
        r"batch_size must be an int >= 1",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), ROWS)
def test_bad_arguments_are_named(
    call: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()


def test_good_arguments_still_work() -> None:
    # top_k with in-range labels, NumPy int k
    assert metrics.top_k_accuracy([1, 0], SCORES, k=unchecked(np.int64(1))) == 1.0
    assert metrics.top_k_accuracy([2, 2], SCORES, k=2) == 0.5
    assert metrics.log_loss([0, 1], [0.2, 0.9], eps=1e-7) == pytest.approx(
        -(math.log(0.8) + math.log(0.9)) / 2
    )
    assert D.one_hot([], 3).shape == (0, 3)
    assert D.one_hot(np.array([1, 0]), unchecked(np.int64(2))).tolist() == [[0, 1], [1, 0]]
    X, y = D.make_spirals(30, n_classes=unchecked(np.int64(3)), rng=0)
    assert X.shape == (30, 2) and set(y.tolist()) == {0, 1, 2}
    assert D.make_regression(5, n_features=unchecked(np.int64(3)), rng=0)[0].shape == (5, 3)
    assert D.make_moons(10, noise=unchecked(np.float32(0.1)), rng=0)[0].shape == (10, 2)


def test_minibatches_accepts_numpy_int_batch_sizes_as_fit_does() -> None:
    a, b = np.arange(10), np.arange(10) * 2
    batches = list(D.minibatches(a, b, batch_size=unchecked(np.int64(4))))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert all(isinstance(x, np.ndarray) and np.array_equal(x * 2, z) for x, z in batches)
    X, y = D.make_moons(20, rng=0)
    net = fnn.init(fnn.mlp([2, 3, 1], output="sigmoid"), rng=0)
    _, h = fnn.fit(
        net, fnn.sgd(0.1), X, y, epochs=1, batch_size=unchecked(np.int64(4)), rng=0, verbose=0
    )
    assert h.opt_state is not None and h.opt_state.step == 5  # the same 5 batches


def idx_file(path: Path, dims: tuple[int, ...], payload: bytes = b"", *, gz: bool = False) -> Path:
    raw = bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_with_overflowing_dimensions_names_the_file(tmp_path: Path, gz: bool) -> None:
    # 2**31 * 2**31 * 4 = 2**64 wraps to 0 in int64: the empty payload "matched" before;
    # the exact size is refused as over max_bytes, before anything is allocated
    path = idx_file(tmp_path / "wrap-idx3-ubyte", (2**31, 2**31, 4), gz=gz)
    with pytest.raises(
        ValueError,
        match=r"wrap-idx3-ubyte: its header \(shape \(2147483648, 2147483648, 4\)\) declares "
        r"18,446,744,073,709,551,632 bytes, more than max_bytes",
    ):
        D.read_idx(path)
    big = idx_file(tmp_path / "big-idx2-ubyte", (2**32 - 1, 2**32 - 1), b"\x00" * 7)
    with pytest.raises(ValueError, match=r"big-idx2-ubyte: its header .* more than max_bytes"):
        D.read_idx(big)
    with pytest.raises(ValueError, match=r"big-idx2-ubyte: truncated: header says shape"):
        D.read_idx(big, max_bytes=2**65)  # past the bound, the size is compared
    ok = idx_file(tmp_path / "ok-idx2-ubyte", (2, 3), bytes(range(6)), gz=gz)
    assert D.read_idx(ok).tolist() == [[0, 1, 2], [3, 4, 5]]


STRINGS: list[Any] = [
    [["a", "b"], ["c", "d"]],
    [["1", "2"], ["3", "4"]],  # numbers as strings: check_array refuses them as well
    np.array([[b"a", b"b"]]),
    [["a", 1.0]],
]


@pytest.mark.parametrize("X", STRINGS)
def test_strings_as_X_are_refused_as_check_array_refuses_them(X: Any) -> None:
    net = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    message = (
        r"could not convert X to float: it holds strings \(dtype [<|][US]\d+\); "
        r"dtype='numeric' is not compatible with arrays of bytes/strings"
    )
    with pytest.raises(ValueError, match=message):
        fnn.predict(net, X)
    with pytest.raises(ValueError, match=message):
        fnn.fit(net, fnn.sgd(0.1), X, np.zeros(len(X)), epochs=1, rng=0, verbose=0)
    pytest.importorskip(
        "sklearn", reason="scikit-learn is not installed (extra 'sklearn'; 'test' installs it too)"
    )
    from sklearn.utils import check_array

    with pytest.raises(ValueError, match="dtype='numeric' is not compatible"):
        check_array(X)


def test_object_arrays_of_numbers_are_still_converted() -> None:
    net = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    X = np.array([[1, 2.5]], dtype=object)
    assert np.array_equal(fnn.predict(net, X), fnn.predict(net, np.array([[1.0, 2.5]])))
