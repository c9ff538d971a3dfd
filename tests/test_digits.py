"""fnn.datasets.load_digits: the shipped UCI digits, as scikit-learn gives them."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

import fnn

CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_shapes_dtypes_values_and_class_counts() -> None:
    X, y = fnn.datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    assert np.array_equal(X, np.round(X))  # counts of "on" pixels: integers 0..16
    assert np.bincount(y).tolist() == CLASS_COUNTS
    # the first image is a zero: its centre columns are empty, its border is not
    assert y[0] == 0 and X[0].reshape(8, 8)[3:5, 3:5].sum() == 0 and X[0].sum() > 200


def test_returned_arrays_are_fresh_and_owned_by_the_caller() -> None:
    X, y = fnn.datasets.load_digits()
    X[0, 0] = 99.0  # writable, and writing does not leak into the next call
    y[:] = -1
    X2, y2 = fnn.datasets.load_digits()
    assert X2[0, 0] == 0.0 and y2[0] == 0
    assert X.flags.writeable and X.flags.c_contiguous and not np.shares_memory(X, X2)


def test_equals_scikit_learn() -> None:
    datasets = pytest.importorskip(
        "sklearn.datasets",
        reason="scikit-learn is not installed (extra 'sklearn'; 'test' installs it too)",
    )
    X_ref, y_ref = datasets.load_digits(return_X_y=True)
    X, y = fnn.datasets.load_digits()
    assert X.dtype == X_ref.dtype and y.dtype == y_ref.dtype
    assert np.array_equal(X, X_ref) and np.array_equal(y, y_ref)


def test_data_file_ships_with_licence_and_attribution() -> None:
    folder = resources.files("fnn.datasets").joinpath("data")
    data = folder.joinpath("digits.csv.gz").read_bytes()
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    assert hashlib.sha256(data).hexdigest() in readme  # the README names the exact file
    assert "CC BY 4.0" in readme and "Alpaydin" in readme and "Kaynak" in readme


def test_a_small_mlp_learns_the_digits() -> None:
    X, y = fnn.datasets.load_digits()
    X_train, X_test, y_train, y_test = fnn.datasets.train_test_split(
        X / 16, y, test_size=0.25, rng=0, stratify=True
    )
    net = fnn.init(fnn.mlp([64, 32, 10], output="softmax"), rng=0)
    net, _ = fnn.fit(net, fnn.adam(1e-2), X_train, y_train, epochs=10, rng=0, verbose=0)
    assert fnn.metrics.accuracy(y_test, fnn.predict(net, X_test)) > 0.9
