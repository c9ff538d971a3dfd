"""Training (the names of :mod:`fnn.train`, where they live, importable from here as
before): ``train_step``, ``fit``, ``evaluate``, ``History`` and what goes with them."""

from __future__ import annotations

from fnn.train import (
    Callback,
    EarlyStopping,
    EpochRecord,
    FitHistory,
    FitState,
    History,
    Split,
    TrainingDiverged,
    evaluate,
    fit,
    train_step,
)
from fnn.train._shared import Metric as Metric
from fnn.train.fit import FIT_DEFAULTS as FIT_DEFAULTS
from fnn.train.fit import Distributor as Distributor
from fnn.train.fit import FitOptions as FitOptions
from fnn.train.fit import check_best_params as check_best_params
from fnn.train.fit import run_fit as run_fit

__all__ = [
    "Callback",
    "EarlyStopping",
    "EpochRecord",
    "FitHistory",
    "FitState",
    "History",
    "Split",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "train_step",
]
