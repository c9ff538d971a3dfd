"""The immutable record of a fit (:class:`History`, one :class:`EpochRecord` per
epoch, the validation :class:`Split`) and :class:`TrainingDiverged`, which carries it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from fnn.network import (
    Network,
)
from fnn.optim import OptState
from fnn.tree import read_only

__all__ = ["EpochRecord", "FitHistory", "History", "Split", "TrainingDiverged"]


@attrs.frozen
class EpochRecord:
    """What one epoch reached.

    Attributes:
        epoch: 1-based epoch number (continuing across resumed runs).
        train_loss: mean training loss over the epoch's batches (weighted by size).
        val_loss: validation loss at the end of the epoch, or None.
        metrics: training metrics over the epoch's batch predictions.
        val_metrics: validation metrics at the end of the epoch.
        learning_rate: the learning rate at the end of the epoch.
        seconds: wall time of the epoch.
    """

    epoch: int
    train_loss: float
    val_loss: float | None
    metrics: Mapping[str, float]
    val_metrics: Mapping[str, float]
    learning_rate: float
    seconds: float


def _index_array(x: Any) -> np.ndarray[Any, Any]:
    return read_only(np.array(x, dtype=np.int64, copy=True))


@attrs.frozen(eq=False)
class Split:
    """The rows of ``X`` that ``fit(..., validation_split=fraction)`` drew once for
    training and for validation (sorted, disjoint, together ``range(n)``)."""

    fraction: float
    train: np.ndarray[Any, Any] = attrs.field(converter=_index_array)
    validation: np.ndarray[Any, Any] = attrs.field(converter=_index_array)

    @property
    def n(self) -> int:
        """The number of rows of the ``X`` the split was drawn for."""
        return len(self.train) + len(self.validation)


@attrs.frozen(eq=False)
class History:
    """An immutable record of a fit, which ``fit(..., history=h)`` continues.

    Attributes:
        records: one :class:`EpochRecord` per epoch.
        opt_state: the optimizer state at the end, to resume from.
        best_epoch: the epoch with the lowest monitored loss, if early stopping ran.
        stopped_early: whether early stopping or a callback ended the fit.
        best_params: the parameters of ``best_epoch``, if early stopping ran with
            ``restore_best`` (so that a resumed fit can still restore them).
        split: the rows drawn for training and validation, if ``validation_split``
            was used (a fit continuing this History uses them again).
    """

    records: tuple[EpochRecord, ...] = ()
    opt_state: OptState | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    best_params: Network | None = None
    split: Split | None = None

    @property
    def train_loss(self) -> list[float]:
        return [r.train_loss for r in self.records]

    @property
    def val_loss(self) -> list[float | None]:
        return [r.val_loss for r in self.records]

    @property
    def epochs(self) -> list[int]:
        return [r.epoch for r in self.records]

    def metric(self, name: str, *, validation: bool = False) -> list[float]:
        """The per-epoch values of one metric."""
        return [(r.val_metrics if validation else r.metrics)[name] for r in self.records]

    def as_dict(self) -> dict[str, list[float | None]]:
        """Keras-style ``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}``."""
        out: dict[str, list[float | None]] = {"loss": list(self.train_loss)}
        if any(v is not None for v in self.val_loss):
            out["val_loss"] = list(self.val_loss)
        names = self.records[0].metrics.keys() if self.records else []
        for name in names:
            out[name] = list(self.metric(name))
            if self.records[0].val_metrics:
                out[f"val_{name}"] = list(self.metric(name, validation=True))
        out["learning_rate"] = [r.learning_rate for r in self.records]
        return out


@attrs.frozen(eq=False, kw_only=True)
class FitHistory(History):
    """The :class:`History` that :func:`fit` returns (and its callbacks see): the same
    record, with ``opt_state`` always the optimizer state after the last epoch, so
    ``history.opt_state.step`` type-checks with no ``None`` test.

    A :class:`History` (``History()``, ``fnn.load(path).history``) may lack the state; a
    FitHistory is a History, so anything taking a History (``fit(..., history=h)``,
    ``fnn.save``) takes it too.
    """

    opt_state: OptState = attrs.field(validator=attrs.validators.instance_of(OptState))

    @classmethod
    def of(cls, history: History, opt_state: OptState) -> FitHistory:
        """``history`` (any History) with ``opt_state``, as a FitHistory."""
        return cls(**{**attrs.asdict(history, recurse=False), "opt_state": opt_state})


class TrainingDiverged(FloatingPointError):
    """A non-finite loss, gradient norm or update stopped training.

    Attributes:
        params: the parameters of the last finite step.
        opt_state: the optimizer state that goes with them.
        step: the 1-based step (within the epoch) that failed.
        epoch: the 1-based epoch that failed.
        history: the epochs completed before.
    """

    def __init__(
        self,
        message: str,
        *,
        params: Any,
        opt_state: OptState | None,
        step: int,
        epoch: int,
        history: History,
    ) -> None:
        super().__init__(message)
        self.params = params
        self.opt_state = opt_state
        self.step = step
        self.epoch = epoch
        self.history = history
