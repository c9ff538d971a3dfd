"""The optimizers users call (``fnn.adam(...)``, ...) as chains of transforms, the
registry of optimizers by name, and ``fnn.update``.

As optax writes ``adam``, an optimizer is its update rule chained with the transforms
around it: ``adam(lr, weight_decay=wd)`` is ``chain(add_decayed_weights(wd),
Adam(lr))`` (PyTorch's coupled L2), ``adamw(lr, weight_decay=wd)`` is ``chain(Adam(lr),
add_decayed_weights(wd, learning_rate=lr))`` (decoupled). Weight decay lives in one
transform, :class:`~fnn.optim.AddDecayedWeights`; a zero decay adds no transform.
"""

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
    AddDecayedWeights,
    ClipByGlobalNorm,
    Freeze,
    RMSprop,
)
from fnn.schedules import LearningRate

__all__ = [
    "OPTIMIZERS",
    "AdamW",
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


def _decayed(rule: Transform, weight_decay: float) -> Optimizer:
    """``rule`` after PyTorch's coupled L2 decay ``g += weight_decay * p``: the decay
    transform first, when the decay is not zero."""
    decay = AddDecayedWeights(weight_decay)  # validated even when zero
    return Optimizer(transforms=(decay, rule) if decay.weight_decay else (rule,))


def sgd(
    learning_rate: LearningRate,
    momentum: float = 0.0,
    nesterov: bool = False,
    *,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
) -> Optimizer:
    """SGD with optional momentum and Nesterov momentum (see :class:`SGD`), after
    coupled L2 ``weight_decay`` (see :class:`AddDecayedWeights`)."""
    return _decayed(SGD(learning_rate, momentum, dampening, nesterov), weight_decay)


def adam(
    learning_rate: LearningRate = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
) -> Optimizer:
    """Adam (see :class:`Adam`), after coupled L2 ``weight_decay`` (PyTorch's ``Adam``;
    see :class:`AddDecayedWeights`)."""
    return _decayed(Adam(learning_rate, b1, b2, eps), weight_decay)


def adamw(
    learning_rate: LearningRate = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 1e-2,
    decay_mask: Mask | None = None,
) -> Optimizer:
    """AdamW, PyTorch's ``torch.optim.AdamW``: the Adam step (see :class:`Adam`), then
    the decoupled decay ``p -= lr * weight_decay * p`` on the leaves ``decay_mask``
    selects (all by default; see :class:`AddDecayedWeights`).

    optax's ``adamw`` applies the decay after scaling by the learning rate likewise, but
    its default ``weight_decay`` is 1e-4 where PyTorch's is 1e-2.
    """
    rule = Adam(learning_rate, b1, b2, eps)
    decay = AddDecayedWeights(weight_decay, decay_mask, learning_rate=rule.learning_rate)
    return Optimizer(transforms=(rule, decay) if decay.weight_decay else (rule,))


AdamW = adamw
"""The former AdamW transform's name: now the chain :func:`adamw` builds."""


def rmsprop(
    learning_rate: LearningRate = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> Optimizer:
    """RMSprop (see :class:`RMSprop`), after coupled L2 ``weight_decay`` (see
    :class:`AddDecayedWeights`)."""
    return _decayed(RMSprop(learning_rate, alpha, eps, momentum, centered), weight_decay)


def adagrad(
    learning_rate: LearningRate = 1e-2,
    *,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
) -> Optimizer:
    """Adagrad (see :class:`Adagrad`), after coupled L2 ``weight_decay`` (see
    :class:`AddDecayedWeights`)."""
    return _decayed(Adagrad(learning_rate, lr_decay, initial_accumulator_value, eps), weight_decay)


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


def add_decayed_weights(
    weight_decay: float, mask: Mask | None = None, *, learning_rate: LearningRate | None = None
) -> AddDecayedWeights:
    """Weight decay on masked leaves: coupled L2 on the gradient, or decoupled (AdamW's)
    with ``learning_rate`` (see :class:`AddDecayedWeights`)."""
    return AddDecayedWeights(weight_decay, mask, learning_rate)


def freeze(mask: Mask) -> Freeze:
    """Keep the masked leaves fixed (see :class:`Freeze`)."""
    return Freeze(mask)
