"""Toy data sets drawn from an explicit random generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fnn._types import FloatArray, IntArray, RNGLike
from fnn._validation import as_generator, check_int

__all__ = ["make_circles", "make_linear", "make_moons", "make_regression", "make_spirals"]


def _check_n(n_samples: int, minimum: int = 1) -> int:
    return check_int(n_samples, "n_samples", minimum)


def _check_float(value: float, name: str) -> float:
    """``value`` as a finite float: TypeError for other kinds, ValueError for NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_noise(noise: float) -> float:
    v = _check_float(noise, "noise")
    if v < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    return v


def _shuffle(X: FloatArray, y: IntArray, gen: np.random.Generator) -> tuple[FloatArray, IntArray]:
    perm = gen.permutation(len(X))
    return X[perm], y[perm]


def make_moons(
    n_samples: int = 100, *, noise: float = 0.0, rng: RNGLike = 0
) -> tuple[FloatArray, IntArray]:
    """Two interleaving half circles (scikit-learn's construction), shuffled.

    Returns ``X`` (n_samples, 2) float64 and labels ``y`` (n_samples,) in {0, 1}.
    """
    n = _check_n(n_samples, 2)
    noise = _check_noise(noise)
    gen = as_generator(rng)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], axis=1),
        ]
    )
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if noise:
        X = X + gen.normal(scale=noise, size=X.shape)
    return _shuffle(X, y, gen)


def make_circles(
    n_samples: int = 100, *, noise: float = 0.0, factor: float = 0.8, rng: RNGLike = 0
) -> tuple[FloatArray, IntArray]:
    """A circle of radius 1 (label 0) around one of radius ``factor`` (label 1), shuffled.

    Returns ``X`` (n_samples, 2) and ``y`` (n_samples,).
    """
    n = _check_n(n_samples, 2)
    noise = _check_noise(noise)
    if not 0 < _check_float(factor, "factor") < 1:
        raise ValueError(f"factor must be in (0, 1), got {factor!r}")
    gen = as_generator(rng)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            factor * np.stack([np.cos(t_in), np.sin(t_in)], axis=1),
        ]
    )
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if noise:
        X = X + gen.normal(scale=noise, size=X.shape)
    return _shuffle(X, y, gen)


def make_spirals(
    n_samples: int = 300, *, n_classes: int = 3, noise: float = 0.2, rng: RNGLike = 0
) -> tuple[FloatArray, IntArray]:
    """Interleaved spiral arms, one per class (the CS231n data set), shuffled.

    Arm ``j`` has radius ``r = linspace(0, 1)`` and angle ``4j .. 4(j+1)`` plus noise.
    Returns ``X`` (n_samples, 2) and ``y`` (n_samples,) in [0, n_classes).
    """
    n_classes = check_int(n_classes, "n_classes", 2)
    n = _check_n(n_samples, n_classes)
    noise = _check_noise(noise)
    gen = as_generator(rng)
    sizes = [n // n_classes + (1 if j < n % n_classes else 0) for j in range(n_classes)]
    Xs, ys = [], []
    for j, m in enumerate(sizes):
        r = np.linspace(0.0, 1, m)
        t = np.linspace(j * 4, (j + 1) * 4, m) + gen.normal(scale=noise, size=m)
        Xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(m, j, np.int64))
    return _shuffle(np.concatenate(Xs), np.concatenate(ys), gen)


def make_linear(
    n_samples: int = 100,
    *,
    weights: Sequence[float] = (1.0, -1.5),
    threshold: float = 0.4,
    rng: RNGLike = 0,
) -> tuple[FloatArray, IntArray]:
    """The linearly separable set ``x = 2 * rand(n, d) - 1``, ``y = x @ weights > threshold``.

    Returns ``X`` (n_samples, len(weights)) and ``y`` (n_samples,) in {0, 1}.
    """
    n = _check_n(n_samples)
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"weights must be a sequence of floats, got {weights!r}") from e
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D sequence, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"weights must be finite, got {w.tolist()}")
    threshold = _check_float(threshold, "threshold")
    gen = as_generator(rng)
    X = 2 * gen.random((n, w.size)) - 1
    return X, (X @ w > threshold).astype(np.int64)


def make_regression(
    n_samples: int = 100,
    *,
    n_features: int = 4,
    n_targets: int = 1,
    noise: float = 0.1,
    rng: RNGLike = 0,
) -> tuple[FloatArray, FloatArray]:
    """A linear regression problem ``y = X @ w + b + noise`` with standard-normal ``X``.

    Returns ``X`` (n_samples, n_features) and ``y`` (n_samples,) for one target or
    (n_samples, n_targets).
    """
    n = _check_n(n_samples)
    noise = _check_noise(noise)
    n_features = check_int(n_features, "n_features")
    n_targets = check_int(n_targets, "n_targets")
    gen = as_generator(rng)
    X = gen.standard_normal((n, n_features))
    w = gen.uniform(-2, 2, (n_features, n_targets))
    b = gen.uniform(-1, 1, n_targets)
    y = X @ w + b + gen.normal(scale=noise, size=(n, n_targets)) if noise else X @ w + b
    return X, (y[:, 0] if n_targets == 1 else y)
