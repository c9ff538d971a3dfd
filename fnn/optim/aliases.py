"""The optimizers users call (``fnn.adam(...)``, ...) as chains of transforms, the
registry of optimizers by name, and ``fnn.update``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fnn._registry import Registry
from fnn.optim.base import Transform
from fnn.optim.masks import Mask
from fnn.optim.state import Optimizer, OptState
from fnn.optim.transforms import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    AddDecayedWeights,
    ClipByGlobalNorm,
    Freeze,
    RMSprop,
)
from fnn.schedules import LearningRate

__all__ = [
    "OPTIMIZERS",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "chain",
    "clip_by_global_norm",
    "freeze",
    "register_optimizer",
    "rmsprop",
    "sgd",
    "update",
]

P = TypeVar("P")


def chain(*parts: Transform | Optimizer) -> Optimizer:
    """Compose transforms and optimizers in order, e.g.
    ``chain(clip_by_global_norm(1.0), adam(1e-3), freeze(lambda p: p.startswith("layers.0")))``."""
    return Optimizer(transforms=parts)


def update(params: P, grads: P, state: OptState) -> tuple[P, OptState]:
    """``update(params, grads, state) -> (params, state)`` for any optimizer: the state
    carries its optimizer."""
    if not isinstance(state, OptState):
        raise TypeError(f"state must be an fnn.optim.OptState, got {type(state).__name__}")
    return state.optimizer.update(params, grads, state)


def sgd(
    learning_rate: LearningRate,
    momentum: float = 0.0,
    nesterov: bool = False,
    *,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
) -> Optimizer:
    """SGD with optional momentum and Nesterov momentum (see :class:`SGD`)."""
    return Optimizer(transforms=(SGD(learning_rate, momentum, dampening, nesterov, weight_decay),))


def adam(
    learning_rate: LearningRate = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
) -> Optimizer:
    """Adam (see :class:`Adam`)."""
    return Optimizer(transforms=(Adam(learning_rate, b1, b2, eps, weight_decay),))


def adamw(
    learning_rate: LearningRate = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 1e-2,
    decay_mask: Mask | None = None,
) -> Optimizer:
    """AdamW with decoupled weight decay, optionally masked (see :class:`AdamW`)."""
    return Optimizer(transforms=(AdamW(learning_rate, b1, b2, eps, weight_decay, decay_mask),))


def rmsprop(
    learning_rate: LearningRate = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> Optimizer:
    """RMSprop (see :class:`RMSprop`)."""
    return Optimizer(
        transforms=(RMSprop(learning_rate, alpha, eps, weight_decay, momentum, centered),)
    )


def adagrad(
    learning_rate: LearningRate = 1e-2,
    *,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
) -> Optimizer:
    """Adagrad (see :class:`Adagrad`)."""
    return Optimizer(
        transforms=(Adagrad(learning_rate, lr_decay, weight_decay, initial_accumulator_value, eps),)
    )


OPTIMIZERS: Registry[Callable[..., Optimizer]] = Registry("optimizer")
"""Optimizer factories by name (``OPTIMIZERS["adam"](learning_rate)``): what the
scikit-learn estimators' ``optimizer=`` names. Each takes the learning rate first."""


def register_optimizer(name: str, factory: Callable[..., Optimizer]) -> Callable[..., Optimizer]:
    """Register an optimizer factory (learning rate first) under ``name``."""
    return OPTIMIZERS.register(name, factory)


for _name, _factory in (
    ("sgd", sgd),
    ("adam", adam),
    ("adamw", adamw),
    ("rmsprop", rmsprop),
    ("adagrad", adagrad),
):
    register_optimizer(_name, _factory)


def clip_by_global_norm(max_norm: float) -> ClipByGlobalNorm:
    """Clip the gradient's global norm (see :class:`ClipByGlobalNorm`)."""
    return ClipByGlobalNorm(max_norm)


def add_decayed_weights(weight_decay: float, mask: Mask | None = None) -> AddDecayedWeights:
    """L2 weight decay on masked leaves (see :class:`AddDecayedWeights`)."""
    return AddDecayedWeights(weight_decay, mask)


def freeze(mask: Mask) -> Freeze:
    """Keep the masked leaves fixed (see :class:`Freeze`)."""
    return Freeze(mask)
