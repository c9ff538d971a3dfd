"""Learning-rate schedules: frozen values mapping the number of updates already made
(``step = 0, 1, 2, ...``) to a learning rate. Any optimizer's ``learning_rate`` accepts
a float or a schedule.

:class:`ReduceOnPlateau`, driven by the validation loss rather than the step, is a
training controller: it lives in :mod:`fnn.controllers` and is importable from here too.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from fnn._registry import Registry
from fnn._validation import (
    as_float,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

__all__ = [
    "SCHEDULES",
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "LearningRate",
    "PiecewiseConstant",
    "ReduceOnPlateau",
    "Schedule",
    "StepDecay",
    "WarmupCosine",
    "as_learning_rate",
    "check_learning_rate",
    "register_schedule",
    "value_at",
]


@runtime_checkable
class Schedule(Protocol):
    """A learning rate as a function of the number of updates already made."""

    def __call__(self, step: int) -> float: ...


LearningRate = float | Schedule


def _takes_one_step(fn: Callable[..., Any]) -> bool | None:
    """Whether ``fn(step)`` is a valid call; None when Python cannot tell (some builtins)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(0)
    except TypeError:
        return False
    return True


def as_learning_rate(value: LearningRate) -> LearningRate:
    """An attrs converter for learning rates: a NumPy real (``np.float32(0.01)``) as a
    Python float, so it is checked, stored and saved as one; anything else as it is
    (checked by :func:`check_learning_rate`)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | float | int):
        return float(value)
    return value


_BUILTINS = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)


def check_learning_rate(value: object) -> None:
    """Check a learning rate when an optimizer is made.

    A number must be finite and > 0 (ValueError otherwise). A schedule is any callable
    of one int step returning a float: a class, or a callable that cannot be called with
    one positional argument (``lambda a, b: ...``, ``lambda: ...``), or a builtin
    (``str.upper``, ``abs``), is a TypeError, as is anything that is neither a number
    nor callable. A schedule's values are checked
    when they are used, by :func:`value_at`.
    """
    if isinstance(value, bool):
        raise TypeError("learning_rate must be a float or a schedule, got bool")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"learning_rate must be > 0, got {value!r}")
        return
    if not callable(value):
        raise TypeError(
            f"learning_rate must be a float or a schedule (a callable of one int step), "
            f"got {type(value).__name__}"
        )
    if isinstance(value, type):
        raise TypeError(
            f"learning_rate must be a float or a schedule, got the class {value.__name__}; "
            f"pass an instance such as {value.__name__}(...)"
        )
    if isinstance(value, _BUILTINS):
        # str.upper, abs, math.exp: Python's own functions are not schedules, and their
        # signatures (str.upper's is "(self, /)") cannot tell
        raise TypeError(
            f"learning_rate must be a float or a schedule (a function of the int step, "
            f"such as fnn.schedules.CosineDecay(...) or lambda step: ...), got the builtin "
            f"{value!r}"
        )
    takes_step = _takes_one_step(value)
    if takes_step is False:
        raise TypeError(
            f"learning_rate must be a float or a schedule called as learning_rate(step) "
            f"with one int step, but {value!r} has the signature {inspect.signature(value)}"
        )
    if takes_step is None:  # no signature to read: call it once (its value is checked
        try:  # when used, by value_at)
            value(0)
        except TypeError as e:
            raise TypeError(
                f"learning_rate must be a float or a schedule called as learning_rate(step) "
                f"with one int step, but learning_rate(0) raised TypeError: {e}"
            ) from e


def value_at(learning_rate: LearningRate, step: int) -> float:
    """The learning rate for update number ``step`` (0-based).

    A schedule's value must be a finite number >= 0 (a schedule may decay to 0): a
    negative, NaN or infinite value is a ValueError naming the step, and a value that is
    not a number a TypeError, so a bad schedule never steps uphill. The check costs two
    comparisons per step.
    """
    if not callable(learning_rate):
        return float(learning_rate)
    raw = learning_rate(step)
    if type(raw) is float:
        v = raw
    else:
        try:
            if isinstance(raw, str | bytes):
                raise TypeError(type(raw).__name__)
            v = float(raw)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"the learning_rate schedule returned {raw!r} ({type(raw).__name__}) at "
                f"step {step}; it must return a float"
            ) from e
    if not 0.0 <= v < math.inf:  # False for NaN too
        raise ValueError(
            f"the learning_rate schedule returned {v!r} at step {step} "
            f"(learning_rate({step})); a learning rate must be finite and >= 0"
        )
    return v


@attrs.frozen
class Constant:
    """``lr`` at every step."""

    value: float = attrs.field(converter=as_float, validator=check_positive("value"))

    def __call__(self, step: int) -> float:
        return self.value


def _int_tuple(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _float_tuple(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@attrs.frozen
class PiecewiseConstant:
    """``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]``.

    ``boundaries`` are increasing step counts; ``values`` has one more entry.
    """

    boundaries: tuple[int, ...] = attrs.field(converter=_int_tuple)
    values: tuple[float, ...] = attrs.field(converter=_float_tuple)

    def __attrs_post_init__(self) -> None:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError("values must have one more entry than boundaries")
        if list(self.boundaries) != sorted(self.boundaries):
            raise ValueError("boundaries must be increasing")
        for v in self.values:
            check_positive("values")(None, None, v)

    def __call__(self, step: int) -> float:
        i = sum(1 for b in self.boundaries if step >= b)
        return float(self.values[i])


@attrs.frozen
class StepDecay:
    """``initial * gamma ** (step // step_size)`` (PyTorch's StepLR, per update)."""

    initial: float = attrs.field(converter=as_float, validator=check_positive("initial"))
    step_size: int = attrs.field(validator=check_positive_int("step_size"))
    gamma: float = attrs.field(default=0.1, converter=as_float, validator=check_positive("gamma"))

    def __call__(self, step: int) -> float:
        return float(self.initial * self.gamma ** (step // self.step_size))


@attrs.frozen
class ExponentialDecay:
    """``initial * decay_rate ** (step / transition_steps)``."""

    initial: float = attrs.field(converter=as_float, validator=check_positive("initial"))
    decay_rate: float = attrs.field(converter=as_float, validator=check_positive("decay_rate"))
    transition_steps: int = attrs.field(default=1, validator=check_positive_int("transition_steps"))

    def __call__(self, step: int) -> float:
        return float(self.initial * self.decay_rate ** (step / self.transition_steps))


@attrs.frozen
class CosineDecay:
    """Cosine from ``initial`` down to ``initial * alpha`` over ``decay_steps``, then flat:
    ``initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, T) / T)) + alpha)``."""

    initial: float = attrs.field(converter=as_float, validator=check_positive("initial"))
    decay_steps: int = attrs.field(validator=check_positive_int("decay_steps"))
    alpha: float = attrs.field(
        default=0.0, converter=as_float, validator=check_nonnegative("alpha")
    )

    def __call__(self, step: int) -> float:
        t = min(step, self.decay_steps) / self.decay_steps
        return self.initial * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * t)) + self.alpha)


@attrs.frozen
class WarmupCosine:
    """Linear warm-up from ``initial`` to ``peak`` over ``warmup_steps``, then cosine
    decay to ``end`` at ``decay_steps`` (counted from the start), then flat."""

    peak: float = attrs.field(converter=as_float, validator=check_positive("peak"))
    warmup_steps: int = attrs.field(validator=check_positive_int("warmup_steps"))
    decay_steps: int = attrs.field(validator=check_positive_int("decay_steps"))
    initial: float = attrs.field(
        default=0.0, converter=as_float, validator=check_nonnegative("initial")
    )
    end: float = attrs.field(default=0.0, converter=as_float, validator=check_nonnegative("end"))

    def __attrs_post_init__(self) -> None:
        if self.decay_steps <= self.warmup_steps:
            raise ValueError("decay_steps must be greater than warmup_steps")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial + (self.peak - self.initial) * step / self.warmup_steps
        span = self.decay_steps - self.warmup_steps
        t = min(step - self.warmup_steps, span) / span
        return self.end + (self.peak - self.end) * 0.5 * (1 + math.cos(math.pi * t))


SCHEDULES: Registry[type[Any]] = Registry("schedule")
"""Schedule classes by class name: what checkpoints rebuild learning rates from."""


def register_schedule(cls: type[Any]) -> type[Any]:
    """Register a schedule class (an attrs class; its fields are its configuration) so
    checkpoints whose learning rate follows it load. Usable as a class decorator."""
    SCHEDULES.register(cls.__name__, cls)
    return cls


for _s in (Constant, PiecewiseConstant, StepDecay, ExponentialDecay, CosineDecay, WarmupCosine):
    register_schedule(_s)

# ReduceOnPlateau is a training controller; it lives in fnn.controllers (kept here by name)
from fnn.controllers import ReduceOnPlateau  # noqa: E402
