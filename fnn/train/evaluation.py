"""The loss and metrics of a network on data at inference: :func:`evaluate`."""

from __future__ import annotations

from collections.abc import Sequence

from fnn._types import ArrayLike
from fnn.network import (
    Network,
    check_network,
    logits_of,
)
from fnn.train._shared import Metric, evaluate_arrays, metric_fns, prepare

__all__ = ["evaluate"]


def evaluate(
    params: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    metrics: Sequence[str | Metric] = (),
    sample_weight: ArrayLike | None = None,
) -> dict[str, float]:
    """``{"loss": ..., <metric>: ...}`` of the network on ``(X, y)`` at inference.

    Metrics are names from :mod:`fnn.metrics` ("accuracy", "top_k_accuracy", "f1",
    "log_loss", "mse", "mae", "r2") or callables ``f(y_true, y_pred) -> float``.
    """
    params = check_network(params)
    fns = metric_fns(metrics)
    Xa, ya, w, y_raw = prepare(params, X, y, sample_weight)
    loss, vals = evaluate_arrays(params, lambda x: logits_of(params, x), Xa, ya, w, y_raw, fns)
    return {"loss": loss, **vals}
