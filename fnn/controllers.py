"""Training controllers: values that watch the per-epoch losses of a fit and steer it.

- :class:`EarlyStopping` stops when the monitored loss stops improving (and can restore
  the best epoch's parameters);
- :class:`ReduceOnPlateau` scales the learning rate down when it stalls.

Both are frozen, validated configurations; their decisions are pure functions of the
epochs' losses (the History), so a resumed fit that continues the History decides
exactly as the uninterrupted one would. This module imports nothing from the rest of
fnn: schedules, training and checkpoints all depend on it, not the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

__all__ = ["EarlyStopping", "EpochLosses", "LossHistory", "ReduceOnPlateau"]


class EpochLosses(Protocol):
    """What a controller reads of one epoch."""

    @property
    def train_loss(self) -> float: ...

    @property
    def val_loss(self) -> float | None: ...


class LossHistory(Protocol):
    """What a controller reads of a fit's History: its epochs' records."""

    @property
    def records(self) -> Sequence[EpochLosses]: ...


def monitored(history: LossHistory) -> list[float]:
    """The monitored loss of each epoch: validation loss, or training loss without it."""
    return [r.val_loss if r.val_loss is not None else r.train_loss for r in history.records]


def _nonneg(name: str) -> Callable[[Any, Any, float], None]:
    def check(_inst: object, _attr: object, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be >= 0, got {value!r}")

    return check


@attrs.frozen
class EarlyStopping:
    """Stop when the monitored loss (validation loss, or training loss without validation
    data) has not improved by more than ``min_delta`` for ``patience`` epochs; with
    ``restore_best`` the best epoch's parameters are returned."""

    patience: int = attrs.field(default=5)
    min_delta: float = attrs.field(default=0.0, validator=_nonneg("min_delta"))
    restore_best: bool = True

    def __attrs_post_init__(self) -> None:
        p = self.patience
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"patience must be an int, got {type(p).__name__} {p!r}")
        if p < 0:
            raise ValueError(f"patience must be an int >= 0, got {p!r}")
        if not isinstance(self.restore_best, bool):
            raise TypeError(f"restore_best must be a bool, got {type(self.restore_best).__name__}")

    def replay(self, losses: Sequence[float]) -> tuple[int | None, bool]:
        """``(best, stop)`` after the given per-epoch monitored losses: the index of the
        best epoch (None before any) and whether the fit stops after the last one (it
        has not improved by more than ``min_delta`` for ``patience`` epochs)."""
        best: int | None = None
        best_loss = math.inf
        stop = False
        for i, v in enumerate(losses):
            if best is None or v < best_loss - self.min_delta:
                best, best_loss = i, v
                stop = False
            else:
                stop = i - best >= self.patience
        return best, stop

    def best_index(self, history: LossHistory) -> int | None:
        """The position in ``history.records`` of the best epoch so far (None if empty)."""
        return self.replay(monitored(history))[0]


@attrs.frozen
class ReduceOnPlateau:
    """Scale the learning rate by ``factor`` when the validation loss has not improved by
    more than ``threshold`` (relative) for ``patience`` epochs (PyTorch's
    ReduceLROnPlateau, mode "min", threshold_mode "rel"), waiting ``cooldown`` epochs
    after each cut, never below ``min_scale``.

    A pure function of the History: :meth:`scale` replays the epochs' validation losses.
    """

    factor: float = attrs.field(default=0.1)
    patience: int = attrs.field(default=10)
    threshold: float = attrs.field(default=1e-4, validator=_nonneg("threshold"))
    cooldown: int = attrs.field(default=0)
    min_scale: float = attrs.field(default=0.0, validator=_nonneg("min_scale"))

    def __attrs_post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float):
            raise TypeError(
                f"factor must be a float, got {type(self.factor).__name__} {self.factor!r}"
            )
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {self.factor!r}")
        for name in ("patience", "cooldown"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")

    def scale_from_losses(self, losses: Sequence[float]) -> float:
        """The learning-rate scale after the given per-epoch validation losses."""
        best = math.inf
        bad = 0
        cool = 0
        scale = 1.0
        for v in losses:
            if v < best * (1 - self.threshold):
                best = v
                bad = 0
            else:
                bad += 1
            if cool > 0:
                cool -= 1
                bad = 0
            if bad > self.patience:
                scale = max(scale * self.factor, self.min_scale)
                cool = self.cooldown
                bad = 0
        return scale

    def scale(self, history: LossHistory) -> float:
        """The learning-rate scale for the next epoch, from ``history``'s validation losses
        (its training losses when no validation data is used)."""
        return self.scale_from_losses(monitored(history))
