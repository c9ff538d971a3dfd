"""Metrics: plain functions on arrays.

Predictions may be given as a network's output: probabilities (n,) or (n, 1) for a
binary classifier (thresholded at 0.5), class probabilities or scores (n, k) (argmax),
or integer labels. True labels are integers (n,), a column (n, 1), or one-hot rows
(n, k).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from fnn._types import ArrayLike, FloatArray, IntArray
from fnn._validation import check_consistent_length, check_targets

__all__ = [
    "accuracy",
    "confusion_matrix",
    "f1_score",
    "log_loss",
    "mean_absolute_error",
    "mean_squared_error",
    "precision",
    "precision_recall_f1",
    "r2_score",
    "to_labels",
    "top_k_accuracy",
]


def to_labels(y: ArrayLike, *, threshold: float = 0.5, name: str = "y") -> IntArray:
    """Integer labels (n,) from labels, a column, one-hot rows or predicted probabilities."""
    a = check_targets(y, name=name)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        labels: IntArray = np.argmax(a, axis=1)
        return labels
    if a.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), (n, 1) or (n, k), got {a.shape}")
    if a.dtype.kind in "iub":
        return a.astype(np.int64)
    whole = np.floor(a) == a
    if whole.all():
        return a.astype(np.int64)
    if ((a >= 0) & (a <= 1)).all():
        return (a >= threshold).astype(np.int64)
    raise ValueError(f"{name} holds non-integer values outside [0, 1]; cannot read labels")


def _nonempty(a: np.ndarray[Any, Any], name: str) -> None:
    if len(a) == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={a.shape}) while a minimum of 1 is "
            f"required ({name})."
        )


def _check_labels(t: IntArray, n_classes: int, name: str, what: str) -> None:
    """Labels ``t`` must lie in [0, n_classes): a ValueError names the first bad one."""
    bad = (t < 0) | (t >= n_classes)
    if bad.any():
        raise ValueError(
            f"{name} has label {int(t[bad][0])} out of range [0, {n_classes}) ({what})"
        )


def _pair(
    y_true: ArrayLike, y_pred: ArrayLike, threshold: float = 0.5
) -> tuple[IntArray, IntArray]:
    t = to_labels(y_true, name="y_true")
    p = to_labels(y_pred, threshold=threshold, name="y_pred")
    check_consistent_length(y_true=t, y_pred=p)
    _nonempty(t, "y_true")
    return t, p


def _counted_positions(
    y_true: ArrayLike, scores: ArrayLike, ignore_index: int
) -> tuple[ArrayLike, ArrayLike]:
    """For per-position scores (n, T, k) and targets (n, T): the counted positions'
    targets (m,) and scores (m, k), skipping targets equal to ``ignore_index``; other
    inputs unchanged."""
    if np.ndim(scores) != 3:
        return y_true, scores
    s = check_targets(scores, name="y_pred")
    t = check_targets(y_true, name="y_true")
    if t.shape != s.shape[:2]:
        raise ValueError(
            f"y_true has shape {t.shape}, but the per-position scores have shape {s.shape}: "
            f"expected targets of shape {s.shape[:2]}"
        )
    counted = t != ignore_index
    if not counted.any():
        raise ValueError(f"every target in y_true equals ignore_index={ignore_index}")
    return t[counted], s[counted]


def accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, *, threshold: float = 0.5, ignore_index: int = -100
) -> float:
    """Fraction of samples whose predicted label equals the true one (binary or
    multi-class). For per-position scores ``y_pred`` (n, T, k) and targets (n, T): the
    fraction of counted positions (targets other than ``ignore_index``) predicted right."""
    y_true, y_pred = _counted_positions(y_true, y_pred, ignore_index)
    t, p = _pair(y_true, y_pred, threshold)
    return float(np.mean(t == p))


def top_k_accuracy(
    y_true: ArrayLike, scores: ArrayLike, *, k: int = 5, ignore_index: int = -100
) -> float:
    """Fraction of samples whose true label is among the ``k`` highest ``scores`` (n, c);
    per position for ``scores`` (n, T, c) and targets (n, T), skipping targets equal to
    ``ignore_index``.

    Raises:
        TypeError: ``k`` is not an int.
        ValueError: ``k < 1``, no samples, or a label outside [0, c).
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int, got {type(k).__name__} {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y_true, scores = _counted_positions(y_true, scores, ignore_index)
    t = to_labels(y_true, name="y_true")
    s = check_targets(scores, name="scores")
    if s.ndim != 2:
        raise ValueError(f"scores must have shape (n, n_classes), got {s.shape}")
    check_consistent_length(y_true=t, scores=s)
    _nonempty(t, "y_true")
    _check_labels(t, s.shape[1], "y_true", f"scores has {s.shape[1]} columns")
    k = int(k)
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return float(np.mean((top == t[:, None]).any(axis=1)))


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int | None = None
) -> IntArray:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (c, c)."""
    t, p = _pair(y_true, y_pred)
    c = int(max(t.max(), p.max()) + 1) if n_classes is None else n_classes
    if t.min() < 0 or p.min() < 0 or max(t.max(), p.max()) >= c:
        raise ValueError(f"labels must lie in [0, {c})")
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


def precision_recall_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: Literal["macro", "binary"] = "macro",
    n_classes: int | None = None,
) -> tuple[float, float, float]:
    """Precision, recall and F1: averaged over classes ("macro"), or for class 1
    ("binary"). A class with no predicted (or no true) samples counts as 0."""
    C = confusion_matrix(y_true, y_pred, n_classes=n_classes).astype(np.float64)
    tp = np.diag(C)
    pred = C.sum(axis=0)
    true = C.sum(axis=1)
    prec = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    rec = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(tp), where=denom > 0)
    if average == "binary":
        if len(tp) > 2:
            raise ValueError("average='binary' needs two classes")
        i = min(1, len(tp) - 1)
        return float(prec[i]), float(rec[i]), float(f1[i])
    if average != "macro":
        raise ValueError(f"average must be 'macro' or 'binary', got {average!r}")
    return float(prec.mean()), float(rec.mean()), float(f1.mean())


def precision(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Macro-averaged precision."""
    return precision_recall_f1(y_true, y_pred)[0]


def f1_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Macro-averaged F1."""
    return precision_recall_f1(y_true, y_pred)[2]


def log_loss(y_true: ArrayLike, proba: ArrayLike, *, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the true labels under predicted probabilities:
    (n,) or (n, 1) for P(class 1), or (n, k). Probabilities are clipped to
    ``[eps, 1 - eps]`` like scikit-learn's; ``eps`` must be in (0, 0.5)."""
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating):
        raise TypeError(f"eps must be a float, got {type(eps).__name__} {eps!r}")
    if not 0 < eps < 0.5:  # False for NaN too
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
    t = to_labels(y_true, name="y_true")
    p = check_targets(proba, name="proba").astype(np.float64)
    if p.ndim == 1 or p.shape[1] == 1:
        p1 = p.reshape(-1)
        p = np.stack([1 - p1, p1], axis=1)
    check_consistent_length(y_true=t, proba=p)
    _nonempty(t, "y_true")
    _check_labels(t, p.shape[1], "y_true", f"proba has {p.shape[1]} classes")
    p = np.clip(p, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(t)), t])))


def _regression_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, FloatArray]:
    t = check_targets(y_true, name="y_true").astype(np.float64)
    p = check_targets(y_pred, name="y_pred").astype(np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    _nonempty(t, "y_true")
    return t, p


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean of squared differences over all elements."""
    t, p = _regression_pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean of absolute differences over all elements."""
    t, p = _regression_pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def r2_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``, averaged over outputs
    (scikit-learn's "uniform_average"); 1 is perfect, 0 is predicting the mean."""
    t, p = _regression_pair(y_true, y_pred)
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
    return float(r2.mean())


METRICS: dict[str, Any] = {
    "accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy,
    "f1": f1_score,
    "log_loss": log_loss,
    "mse": mean_squared_error,
    "mae": mean_absolute_error,
    "r2": r2_score,
}
