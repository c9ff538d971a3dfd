"""The UCI optical-recognition handwritten digits, shipped with fnn (no download).

1797 images of 8x8 pixels, each pixel the count of "on" pixels in a 4x4 block of a
32x32 bitmap (0..16), with labels 0..9. This is the test part of the UCI data set by
E. Alpaydin and C. Kaynak (1998), the same file scikit-learn ships for its
``load_digits``; licence (CC BY 4.0) and attribution are in ``fnn/datasets/data/README.md``.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["load_digits"]

_FILE = "digits.csv.gz"
_N_SAMPLES, _N_FEATURES = 1797, 64


def load_digits() -> tuple[
    np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.int64]]
]:
    """Load the digits as ``(X, y)``, as ``sklearn.datasets.load_digits(return_X_y=True)``.

    Returns:
        ``X`` float64 (1797, 64), the 8x8 images flattened row by row, values 0..16
        (scale them, e.g. ``X / 16``, before training); ``y`` int64 (1797,), the
        digit 0..9 (about 180 of each). Both arrays are new: the caller owns them.

    Example:
        >>> X, y = load_digits()
        >>> X.shape, y.shape, int(X.max()), sorted(set(y.tolist())) == list(range(10))
        ((1797, 64), (1797,), 16, True)

    References:
        E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits [Dataset].
        UCI Machine Learning Repository, 1998. https://doi.org/10.24432/C50P49
    """
    raw = resources.files("fnn.datasets").joinpath("data", _FILE).read_bytes()
    text = gzip.decompress(raw).decode("ascii")
    table = np.loadtxt(text.splitlines(), delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape != (_N_SAMPLES, _N_FEATURES + 1):  # pragma: no cover - a damaged install
        raise ValueError(f"{_FILE}: expected shape (1797, 65), got {table.shape}")
    X = np.ascontiguousarray(table[:, :_N_FEATURES])
    y = table[:, _N_FEATURES].astype(np.int64)
    return X, y
