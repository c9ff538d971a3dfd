"""Splitting, encoding, standardising and batching data: pure functions and values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import attrs
import numpy as np

from fnn._types import ArrayLike, FloatArray, IntArray, RNGLike
from fnn._validation import as_generator, check_2d, check_consistent_length, float_dtype
from fnn.tree import readonly

__all__ = [
    "Standardizer",
    "minibatches",
    "one_hot",
    "random_shifts",
    "split_indices",
    "standardizer",
    "train_test_split",
]

A = TypeVar("A", bound=np.ndarray[Any, Any])


def split_indices(
    n: int, test_size: float, *, rng: RNGLike, stratify: ArrayLike | None = None
) -> tuple[IntArray, IntArray]:
    """Shuffled ``(train_idx, test_idx)`` for ``n`` samples; ``test_size`` is a fraction in
    (0, 1) or a count. With ``stratify`` (labels (n,)), each class is split in the same
    proportion."""
    if isinstance(test_size, float):
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be in (0, 1) as a fraction, got {test_size}")
        n_test = int(np.ceil(test_size * n))
    elif isinstance(test_size, int) and not isinstance(test_size, bool):
        n_test = test_size
    else:
        raise TypeError(f"test_size must be a float or an int, got {type(test_size).__name__}")
    if not 1 <= n_test < n:
        raise ValueError(f"test_size={test_size} leaves {n - n_test} of {n} samples for training")
    gen = as_generator(rng)
    if stratify is None:
        perm = gen.permutation(n)
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    labels = np.asarray(stratify)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0]
    if labels.shape != (n,):
        raise ValueError(f"stratify must have {n} labels, got shape {labels.shape}")
    classes, inverse = np.unique(labels, return_inverse=True)
    test_parts = []
    # Per class, round the test share; then fix the total to n_test by largest remainder.
    counts = np.bincount(inverse, minlength=len(classes))
    exact = counts * (n_test / n)
    take = np.floor(exact).astype(int)
    short = n_test - take.sum()
    if short > 0:
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:short]] += 1
    for c in range(len(classes)):
        idx = np.flatnonzero(inverse == c)
        test_parts.append(gen.permutation(idx)[: take[c]])
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(n), test)
    return train, test


def train_test_split(
    X: A,
    y: ArrayLike,
    *,
    test_size: float = 0.25,
    rng: RNGLike = 0,
    stratify: bool = False,
) -> tuple[A, A, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(X_train, X_test, y_train, y_test)``, shuffled with ``rng``; stratified by ``y``
    when ``stratify`` is True."""
    ya = np.asarray(y)
    check_consistent_length(X=X, y=ya)
    tr, te = split_indices(len(X), test_size, rng=rng, stratify=ya if stratify else None)
    return X[tr], X[te], ya[tr], ya[te]  # type: ignore[return-value]


def one_hot(
    labels: ArrayLike, n_classes: int | None = None, *, dtype: Any = np.float64
) -> FloatArray:
    """One-hot rows (n, n_classes) from integer labels (n,).

    ``n_classes`` defaults to ``max(labels) + 1``; it is required when ``labels`` is
    empty (the result is then (0, n_classes)).
    """
    if n_classes is not None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
            raise TypeError(
                f"n_classes must be an int or None, got {type(n_classes).__name__} {n_classes!r}"
            )
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    a = np.asarray(labels)
    if a.ndim != 1:
        raise ValueError(f"labels must have shape (n,), got {a.shape}")
    if a.dtype.kind == "f":
        if not (np.floor(a) == a).all():
            raise ValueError("labels must be integers")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iub":
        raise TypeError(f"labels must be integers, got dtype {a.dtype}")
    if a.size == 0 and n_classes is None:
        raise ValueError(
            "labels is empty (shape (0,)): pass n_classes to say how many columns to make"
        )
    k = int(a.max()) + 1 if n_classes is None else int(n_classes)
    if a.size and (a.min() < 0 or a.max() >= k):
        bad = a[(a < 0) | (a >= k)][0]
        raise ValueError(f"label {bad} out of range [0, {k})")
    out = np.zeros((a.size, k), dtype=float_dtype(dtype))
    out[np.arange(a.size), a] = 1
    return out


@attrs.frozen(eq=False)
class Standardizer:
    """Fitted standardisation statistics: ``transform(X) = (X - mean) / scale``.

    Attributes:
        mean: per-feature mean (n_features,).
        scale: per-feature standard deviation (n_features,), 1 where it is 0.
    """

    mean: FloatArray = attrs.field(converter=readonly)
    scale: FloatArray = attrs.field(converter=readonly)

    def transform(self, X: ArrayLike) -> FloatArray:
        """Standardised copy of ``X`` (n, n_features)."""
        Xa = check_2d(X, dtype=self.mean.dtype)
        if Xa.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"X has {Xa.shape[1]} features, but the standardizer was fitted on "
                f"{self.mean.shape[0]}"
            )
        out: FloatArray = (Xa - self.mean) / self.scale
        return out

    def inverse_transform(self, Z: ArrayLike) -> FloatArray:
        """Undo :meth:`transform`."""
        Za = check_2d(Z, name="Z", dtype=self.mean.dtype)
        out: FloatArray = Za * self.scale + self.mean
        return out


def standardizer(X: ArrayLike, *, dtype: Any = None) -> Standardizer:
    """Fit standardisation statistics on ``X`` (n, n_features); nothing is modified."""
    Xa = check_2d(X, dtype=None if dtype is None else float_dtype(dtype))
    mean = Xa.mean(axis=0)
    std = Xa.std(axis=0)
    return Standardizer(mean=mean, scale=np.where(std > 0, std, 1).astype(Xa.dtype))


def minibatches(
    *arrays: A,
    batch_size: int,
    rng: RNGLike | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[A, ...]]:
    """Yield aligned minibatches of ``arrays`` (all with the same first dimension),
    shuffled with ``rng`` when given, in order otherwise."""
    if not arrays:
        raise ValueError("minibatches needs at least one array")
    check_consistent_length(**{f"arrays[{i}]": a for i, a in enumerate(arrays)})
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):  # as fnn.fit: NumPy ints are ints
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    batch_size = int(batch_size)
    n = len(arrays[0])
    order = as_generator(rng).permutation(n) if rng is not None else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield tuple(a[start : start + batch_size] for a in arrays)  # type: ignore[misc]
        else:
            idx = order[start : start + batch_size]
            yield tuple(a[idx] for a in arrays)  # type: ignore[misc]


def random_shifts(X: ArrayLike, max_shift: int = 2, *, rng: RNGLike) -> np.ndarray[Any, Any]:
    """Data augmentation for images: each image of ``X`` (n, height, width, channels)
    moved by a random whole number of pixels in ``[-max_shift, max_shift]`` along each
    axis, zeros shifted in; a fresh array of ``X``'s shape and dtype (``X`` unchanged)."""
    Xa = np.asarray(X)
    if Xa.ndim != 4:
        raise ValueError(
            f"X must be images of shape (n, height, width, channels), got shape {Xa.shape}"
        )
    if isinstance(max_shift, bool) or not isinstance(max_shift, int | np.integer) or max_shift < 0:
        raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
    gen = as_generator(rng)
    out = np.zeros_like(Xa)
    n, h, w = Xa.shape[:3]
    m = int(max_shift)
    dy = gen.integers(-m, m + 1, n)
    dx = gen.integers(-m, m + 1, n)
    # one copy per shift: the images moved by (sy, sx) together
    for sy in range(-m, m + 1):
        for sx in range(-m, m + 1):
            idx = np.flatnonzero((dy == sy) & (dx == sx))
            if idx.size == 0:
                continue
            src = Xa[idx, max(0, -sy) : h - max(0, sy), max(0, -sx) : w - max(0, sx)]
            out[idx, max(0, sy) : h - max(0, -sy), max(0, sx) : w - max(0, -sx)] = src
    return out
