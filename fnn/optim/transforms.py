"""The transforms: the PyTorch optimizers' update rules (SGD, Adam, RMSprop, Adagrad)
and the gradient transformations for chains (clipping, weight decay, freezing), each an
in-place kernel.

Weight decay is one transform, :class:`AddDecayedWeights`: the optimizers of
:mod:`fnn.optim.aliases` put it before an update rule (PyTorch's coupled L2
``weight_decay``) or after Adam's (AdamW's decoupled decay)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import numpy as np

from fnn._types import BoolArray, FloatArray
from fnn._validation import as_float, check_nonnegative, check_positive, check_range
from fnn.optim._arrays import frozen_array
from fnn.optim.base import InPlace, UpdateContext
from fnn.optim.masks import Mask, resolve_mask
from fnn.optim.state import OptState, register_transform
from fnn.schedules import LearningRate, as_learning_rate, check_learning_rate, value_at

__all__ = [
    "SGD",
    "Adagrad",
    "AdagradState",
    "Adam",
    "AdamState",
    "AddDecayedWeights",
    "ClipByGlobalNorm",
    "Freeze",
    "RMSprop",
    "RMSpropState",
    "SGDState",
    "unused_gradient",
]


def _lr(learning_rate: LearningRate, ctx: UpdateContext) -> float:
    if type(learning_rate) is float:  # a constant: what value_at returns, one call fewer
        return learning_rate * ctx.lr_scale
    return value_at(learning_rate, ctx.step - 1) * ctx.lr_scale


def _check_lr(_inst: object, _attr: object, value: LearningRate) -> None:
    check_learning_rate(value)


# --- SGD ---------------------------------------------------------------------------


@attrs.frozen(eq=False)
class SGDState:
    """The momentum buffer (flat; zeros before the first step), or None without momentum."""

    momentum_buffer: FloatArray | None


@attrs.frozen
class SGD(InPlace):
    """Stochastic gradient descent, PyTorch's ``torch.optim.SGD`` (its ``weight_decay`` is
    :class:`AddDecayedWeights` before this rule, as :func:`fnn.sgd` chains them):

    with momentum ``b = momentum * b + (1 - dampening) * g``
    (``b = g`` at the first step), then ``g = g + momentum * b`` (Nesterov) or ``g = b``;
    finally ``p -= lr * g``.

    optax's ``sgd`` differs: its momentum trace has no first-step special case.
    """

    learning_rate: LearningRate = attrs.field(converter=as_learning_rate, validator=_check_lr)
    momentum: float = attrs.field(
        default=0.0, converter=as_float, validator=check_range("momentum", 0, 1)
    )
    dampening: float = attrs.field(
        default=0.0,
        converter=as_float,
        validator=check_range("dampening", 0, 1, hi_open=False),
    )
    nesterov: bool = False

    def __attrs_post_init__(self) -> None:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def init(self, params: Any, flat: FloatArray) -> SGDState:
        return SGDState(
            momentum_buffer=frozen_array(np.zeros_like(flat)) if self.momentum else None
        )

    def apply(self, u: FloatArray, state: SGDState, p: FloatArray, ctx: UpdateContext) -> None:
        tmp = ctx.scratch
        buf = state.momentum_buffer
        if buf is not None:
            if ctx.step == 1:  # PyTorch starts the buffer at the first gradient
                buf[...] = u
            else:
                buf *= self.momentum
                np.multiply(u, 1 - self.dampening, out=tmp)
                buf += tmp
            if self.nesterov:
                np.multiply(buf, self.momentum, out=tmp)
                u += tmp
            else:
                u[...] = buf
        u *= -_lr(self.learning_rate, ctx)


# --- Adam ------------------------------------------------------------------------


@attrs.frozen(eq=False)
class AdamState:
    """First and second moment estimates (flat)."""

    mu: FloatArray
    nu: FloatArray


@attrs.frozen
class Adam(InPlace):
    """Adam, PyTorch's ``torch.optim.Adam`` (its ``weight_decay`` is
    :class:`AddDecayedWeights` before this rule, as :func:`fnn.adam` chains them).

    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    optax's ``adam`` puts ``eps`` outside the bias correction of ``v`` the same way; it
    is written ``chain(scale_by_adam(...), scale_by_learning_rate(lr))``; here the
    learning rate is folded into the bias correction (one pass fewer, PyTorch's bits).

    Reference: Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization".
    """

    learning_rate: LearningRate = attrs.field(
        default=1e-3, converter=as_learning_rate, validator=_check_lr
    )
    b1: float = attrs.field(default=0.9, converter=as_float, validator=check_range("b1", 0, 1))
    b2: float = attrs.field(default=0.999, converter=as_float, validator=check_range("b2", 0, 1))
    eps: float = attrs.field(default=1e-8, converter=as_float, validator=check_positive("eps"))

    def init(self, params: Any, flat: FloatArray) -> AdamState:
        return AdamState(mu=frozen_array(np.zeros_like(flat)), nu=frozen_array(np.zeros_like(flat)))

    def apply(self, u: FloatArray, state: AdamState, p: FloatArray, ctx: UpdateContext) -> None:
        """In place: update the moments from the gradient in ``u``, then leave the Adam
        step in ``u``.

        Eleven passes over the arrays: the constant ``1 / sqrt(1 - b2^t)`` is moved out
        of the denominator, ``m / (sqrt(v) c + eps) = (m / (sqrt(v) + eps / c)) / c``,
        and ``u`` is scaled in place before it feeds ``m``. Equal to PyTorch's to
        rounding."""
        lr = _lr(self.learning_rate, ctx)  # first: a bad schedule value changes nothing
        b1, b2, t, tmp = self.b1, self.b2, ctx.step, ctx.scratch
        m, v = state.mu, state.nu
        # v = b2 v + (1 - b2) g^2
        np.multiply(u, u, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp
        # m = b1 m + (1 - b1) g
        u *= 1 - b1
        m *= b1
        m += u
        c = 1 / math.sqrt(1 - b2**t)
        np.sqrt(v, out=tmp)
        tmp += self.eps / c
        np.divide(m, tmp, out=u)
        u *= -lr / ((1 - b1**t) * c)


# --- RMSprop / Adagrad -------------------------------------------------------------


@attrs.frozen(eq=False)
class RMSpropState:
    """Running mean of squared gradients, and the optional momentum and mean-gradient
    buffers (flat)."""

    square_avg: FloatArray
    momentum_buffer: FloatArray | None
    grad_avg: FloatArray | None


@attrs.frozen
class RMSprop(InPlace):
    """RMSprop, PyTorch's ``torch.optim.RMSprop`` (its ``weight_decay`` is
    :class:`AddDecayedWeights` before this rule, as :func:`fnn.rmsprop` chains them):

    ``v = alpha v + (1 - alpha) g^2``; centered: ``v~ = v - gbar^2`` with
    ``gbar = alpha gbar + (1 - alpha) g``; with momentum ``b = momentum b + g /
    (sqrt(v~) + eps)`` and ``p -= lr b``, else ``p -= lr g / (sqrt(v~) + eps)``.

    optax's ``rmsprop`` defaults to ``decay=0.9``; PyTorch's ``alpha=0.99`` is kept here.
    """

    learning_rate: LearningRate = attrs.field(
        default=1e-2, converter=as_learning_rate, validator=_check_lr
    )
    alpha: float = attrs.field(
        default=0.99, converter=as_float, validator=check_range("alpha", 0, 1)
    )
    eps: float = attrs.field(default=1e-8, converter=as_float, validator=check_positive("eps"))
    momentum: float = attrs.field(
        default=0.0, converter=as_float, validator=check_range("momentum", 0, 1)
    )
    centered: bool = False

    def init(self, params: Any, flat: FloatArray) -> RMSpropState:
        def z() -> FloatArray:
            return frozen_array(np.zeros_like(flat))  # type: ignore[no-any-return]

        return RMSpropState(
            square_avg=z(),
            momentum_buffer=z() if self.momentum else None,
            grad_avg=z() if self.centered else None,
        )

    def apply(self, u: FloatArray, state: RMSpropState, p: FloatArray, ctx: UpdateContext) -> None:
        tmp = ctx.scratch
        v = state.square_avg
        v *= self.alpha
        np.multiply(u, u, out=tmp)
        tmp *= 1 - self.alpha
        v += tmp
        gbar = state.grad_avg
        if gbar is not None:
            gbar *= self.alpha
            np.multiply(u, 1 - self.alpha, out=tmp)
            gbar += tmp
            np.multiply(gbar, gbar, out=tmp)
            np.subtract(v, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(v, out=tmp)
        tmp += self.eps
        lr = _lr(self.learning_rate, ctx)
        buf = state.momentum_buffer
        if buf is not None:
            buf *= self.momentum
            np.divide(u, tmp, out=tmp)
            buf += tmp
            np.multiply(buf, -lr, out=u)
        else:
            np.divide(u, tmp, out=u)
            u *= -lr


@attrs.frozen(eq=False)
class AdagradState:
    """Sum of squared gradients (flat)."""

    sum: FloatArray


@attrs.frozen
class Adagrad(InPlace):
    """Adagrad, PyTorch's ``torch.optim.Adagrad`` (its ``weight_decay`` is
    :class:`AddDecayedWeights` before this rule, as :func:`fnn.adagrad` chains them):

    ``s += g^2``; ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)``.

    optax's ``adagrad`` puts ``eps`` inside the square root and starts the accumulator
    at 0.1; PyTorch's ``initial_accumulator_value=0`` and ``eps=1e-10`` are kept here.
    """

    learning_rate: LearningRate = attrs.field(
        default=1e-2, converter=as_learning_rate, validator=_check_lr
    )
    lr_decay: float = attrs.field(
        default=0.0, converter=as_float, validator=check_nonnegative("lr_decay")
    )
    initial_accumulator_value: float = attrs.field(
        default=0.0,
        converter=as_float,
        validator=check_nonnegative("initial_accumulator_value"),
    )
    eps: float = attrs.field(default=1e-10, converter=as_float, validator=check_positive("eps"))

    def init(self, params: Any, flat: FloatArray) -> AdagradState:
        return AdagradState(sum=frozen_array(np.full_like(flat, self.initial_accumulator_value)))

    def apply(self, u: FloatArray, state: AdagradState, p: FloatArray, ctx: UpdateContext) -> None:
        tmp = ctx.scratch
        s = state.sum
        np.multiply(u, u, out=tmp)
        s += tmp
        clr = _lr(self.learning_rate, ctx) / (1 + (ctx.step - 1) * self.lr_decay)
        np.sqrt(s, out=tmp)
        tmp += self.eps
        np.divide(u, tmp, out=u)
        u *= -clr


# --- gradient transformations for chains -------------------------------------------


@attrs.frozen
class ClipByGlobalNorm(InPlace):
    """Scale the direction so its global L2 norm is at most ``max_norm`` (like
    ``torch.nn.utils.clip_grad_norm_``, applied before the optimizer)."""

    max_norm: float = attrs.field(converter=as_float, validator=check_positive("max_norm"))
    elementwise: ClassVar[bool] = False  # needs the norm of the whole vector

    def init(self, params: Any, flat: FloatArray) -> None:
        return None

    def apply(self, u: FloatArray, state: None, p: FloatArray, ctx: UpdateContext) -> None:
        norm = float(np.sqrt(u @ u))
        if norm > self.max_norm:
            u *= self.max_norm / (norm + 1e-6)


@attrs.frozen
class AddDecayedWeights(InPlace):
    """Weight decay, on the leaves selected by ``mask`` (all by default): the one place
    of it, in two placements.

    - Coupled (``learning_rate`` None): L2 regularisation on the gradient,
      ``u += weight_decay * p``, placed before an update rule in a :func:`chain`. This
      is PyTorch's ``weight_decay`` of ``SGD``, ``Adam``, ``RMSprop`` and ``Adagrad``
      (what :func:`fnn.sgd` ... build) and optax's ``add_decayed_weights``.
    - Decoupled (``learning_rate`` given, the update rule's rate or schedule):
      ``u -= lr_t * weight_decay * p``, placed after the update rule, so the decay
      follows the scheduled rate but not the rule's scaling: PyTorch's ``AdamW``
      (Loshchilov & Hutter 2019), what :func:`fnn.adamw` builds.
    """

    weight_decay: float = attrs.field(
        converter=as_float, validator=check_nonnegative("weight_decay")
    )
    mask: Mask | None = None
    learning_rate: LearningRate | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(as_learning_rate),
        validator=attrs.validators.optional(_check_lr),
    )

    def init(self, params: Any, flat: FloatArray) -> BoolArray | None:
        return resolve_mask(params, self.mask)

    def apply(
        self, u: FloatArray, state: BoolArray | None, p: FloatArray, ctx: UpdateContext
    ) -> None:
        if not self.weight_decay:
            return
        factor = self.weight_decay
        if self.learning_rate is not None:
            factor = -_lr(self.learning_rate, ctx) * self.weight_decay
        tmp = ctx.scratch
        np.multiply(p, factor, out=tmp)
        if state is not None:
            tmp *= state
        u += tmp


@attrs.frozen
class Freeze(InPlace):
    """Zero the update on the leaves selected by ``mask``: those parameters never change.
    Place it last in a :func:`chain` (after any decoupled weight decay).

    In a chain of elementwise transforms (any but global-norm clipping), ``fit`` and
    ``train_step`` compute no gradient for the frozen leaves (:func:`unused_gradient`):
    the layers below the lowest trained one are not run backward, and the earlier
    transforms' state of the frozen leaves sees a zero gradient. ``fnn.backward``
    still returns every gradient."""

    mask: Mask

    def init(self, params: Any, flat: FloatArray) -> BoolArray:
        m = resolve_mask(params, self.mask)
        assert m is not None
        return m

    def apply(self, u: FloatArray, state: BoolArray, p: FloatArray, ctx: UpdateContext) -> None:
        np.copyto(u, 0, where=state)


def unused_gradient(state: OptState) -> BoolArray | None:
    """The flat mask (ravel order, (P,)) of the trainable entries whose gradient the
    training step of ``state``'s optimizer need not compute: those a :class:`Freeze`
    masks, when every transform is an elementwise in-place kernel. In such a chain a
    masked entry's gradient reaches only that entry's own state and a change that the
    freeze zeroes, so with a zero gradient there the parameters come out with the same
    bits (the optimizer state of the frozen entries sees zeros, as PyTorch's frozen
    parameters see no gradient). None when no entry qualifies (a chain with global-norm
    clipping, or no freeze)."""
    transforms = state.optimizer.transforms
    for t in transforms:
        if isinstance(t, Freeze):
            break
    else:
        return None  # no freeze, the common case: decided before any list is built
    masks = [s for t, s in zip(transforms, state.states, strict=True) if isinstance(t, Freeze)]
    if not masks or not all(isinstance(t, InPlace) and t.elementwise for t in transforms):
        return None
    m: BoolArray = np.logical_or.reduce(masks) if len(masks) > 1 else masks[0]
    if state.trainable is not None:
        m = m & state.trainable  # state leaves (running statistics) are always written
    return m if m.any() else None


for _t in (SGD, Adam, RMSprop, Adagrad, ClipByGlobalNorm, AddDecayedWeights, Freeze):
    register_transform(_t)
