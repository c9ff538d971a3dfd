"""What the training modules share: argument checks, input preparation, metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fnn import metrics as _metrics
from fnn._types import FloatArray
from fnn._validation import (
    check_consistent_length,
    check_sample_weight,
    check_targets,
)
from fnn.network import (
    Network,
    check_input,
    inference_rows,
    output_length,
    prepare_targets,
)
from fnn.optim import Optimizer

Metric = Callable[[Any, Any], float]


def check_optimizer(optimizer: object) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an fnn optimizer (fnn.adam(...), fnn.sgd(...), fnn.chain(...)), "
            f"got {type(optimizer).__name__}"
        )
    return optimizer


def prepare(
    params: Network, X: Any, y: Any, sample_weight: Any, *, xname: str = "X"
) -> tuple[FloatArray, FloatArray, FloatArray | None, np.ndarray[Any, Any]]:
    Xa = check_input(params, X)
    y_raw = check_targets(y)
    check_consistent_length(X=Xa, y=y_raw)
    ya = prepare_targets(params, y_raw, Xa.shape[0], output_length(params, Xa))
    w = check_sample_weight(sample_weight, Xa.shape[0], params.dtype)
    return Xa, ya, w, y_raw


def metric_fns(metrics: Sequence[str | Metric]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in _metrics.METRICS:
                raise ValueError(
                    f"unknown metric {m!r}; expected one of {sorted(_metrics.METRICS)}"
                )
            out[m] = _metrics.METRICS[m]
        elif callable(m):
            out[getattr(m, "__name__", "metric")] = m
        else:
            raise TypeError(f"metrics must be names or callables, got {type(m).__name__}")
    return out


def evaluate_arrays(
    params: Network,
    logits_fn: Callable[[FloatArray], FloatArray],
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    y_raw: np.ndarray[Any, Any],
    metric_fns: Mapping[str, Metric],
) -> tuple[float, dict[str, float]]:
    rows = inference_rows(params)  # bounded memory for image networks
    logits = np.concatenate([logits_fn(X[i : i + rows]) for i in range(0, len(X), rows)])
    loss = params.loss.value(logits, y, w)
    out = params.loss.link(logits)
    return loss, {name: float(fn(y_raw, out)) for name, fn in metric_fns.items()}


def is_classifier(params: Network) -> bool:
    return params.loss.output == "softmax" or (
        params.loss.output == "sigmoid" and params.n_outputs == 1
    )
