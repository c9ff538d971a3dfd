"""Pictures of training (extra ``plot``): training curves and decision boundaries.

matplotlib is imported only when a function here is called, and figures are drawn on a
``matplotlib.figure.Figure`` without pyplot, so no display or interactive backend is
involved. Each function returns the figure and, given ``path``, saves it as a PNG.
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fnn._types import ArrayLike
from fnn.network import Network, predict
from fnn.training import History

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["decision_boundary", "training_curves"]


def _figure(ncols: int = 1, size: tuple[float, float] = (6.0, 4.0)) -> tuple[Figure, Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fnn.plot needs matplotlib: pip install 'fnn[plot]'") from e
    fig = Figure(figsize=(size[0] * ncols, size[1]), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        fig.savefig(path, format="png", dpi=100)


def training_curves(
    history: History,
    *,
    metrics: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Train and validation loss per epoch, and one panel per metric.

    Args:
        history: from ``fnn.fit``.
        metrics: metric names to plot; default all recorded.
        path: save the figure here as PNG.
    """
    if not isinstance(history, History) or not history.records:
        raise ValueError("history must be a non-empty fnn.History")
    names = list(history.records[0].metrics) if metrics is None else list(metrics)
    fig, axes = _figure(1 + len(names))
    epochs = history.epochs
    ax = axes[0]
    ax.plot(epochs, history.train_loss, label="train")
    val = history.val_loss
    if any(v is not None for v in val):
        ax.plot(epochs, [np.nan if v is None else v for v in val], label="validation")
    ax.set(title="loss", xlabel="epoch")
    ax.legend()
    for ax, name in zip(axes[1:], names, strict=True):
        ax.plot(epochs, history.metric(name), label="train")
        if history.records[0].val_metrics:
            ax.plot(epochs, history.metric(name, validation=True), label="validation")
        ax.set(title=name, xlabel="epoch")
        ax.legend()
    _save(fig, path)
    return fig


def decision_boundary(
    params: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    resolution: int = 200,
    margin: float = 0.5,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """The predicted class over the plane of a 2-feature classifier, with the data.

    Args:
        params: a network with 2 inputs and a sigmoid (1 unit) or softmax output.
        X: points (n, 2).
        y: their labels (n,).
        resolution: grid points per axis.
        margin: how far the grid extends beyond the data.
        path: save the figure here as PNG.
    """
    Xa = np.asarray(X, dtype=np.float64)
    ya = np.asarray(y)
    if Xa.ndim != 2 or Xa.shape[1] != 2 or params.n_features != 2:
        raise ValueError(
            f"decision_boundary needs 2-D inputs and a 2-input network, got X {Xa.shape}"
        )
    lo, hi = Xa.min(axis=0) - margin, Xa.max(axis=0) + margin
    gx, gy = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    out = predict(params, np.c_[gx.ravel(), gy.ravel()])
    cls = (out[:, 0] >= 0.5).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
    fig, axes = _figure()
    ax = axes[0]
    ax.contourf(gx, gy, cls.reshape(gx.shape), alpha=0.3, cmap="coolwarm")
    ax.scatter(
        Xa[:, 0], Xa[:, 1], c=ya.ravel(), cmap="coolwarm", s=12, edgecolors="k", linewidths=0.3
    )
    ax.set(title="decision boundary", xlabel="x1", ylabel="x2")
    _save(fig, path)
    return fig
