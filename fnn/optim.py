"""Optimizers: frozen, validated values with ``init(params) -> state`` and
``update(params, grads, state) -> (params, state)``.

Update rules and defaults follow PyTorch's documented algorithms (``torch.optim.SGD``,
``RMSprop``, ``Adagrad``, ``Adam``, ``AdamW``), so a run can be compared step for step.

An optimizer is a chain of *transforms*. Each transform maps an update direction ``u``
(starting as the gradient) to a new one; the last produces the parameter change, added
to the parameters. All of them work on the flat vector of a tree's leaves
(:func:`fnn.tree.ravel`), which for networks made by ``fnn.init`` is the network's own
contiguous buffer: an Adam step is a few array operations for the whole network, not a
few per leaf. Leaves declared with :func:`fnn.tree.state_field` are never changed.

Masks (for weight decay or freezing) select leaves by path: a predicate on the dotted
path such as :func:`weights_only`, or a tree of bools shaped like the parameters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import attrs
import numpy as np

from fnn import schedules, tree
from fnn._registry import Registry
from fnn._types import BoolArray, FloatArray
from fnn._validation import as_float, check_positive, check_range
from fnn.layers.base import weight_paths
from fnn.layout import Layout, StructureKey, describe_mismatch
from fnn.schedules import LearningRate, as_learning_rate, check_learning_rate, value_at

__all__ = [
    "CHUNK_BYTES",
    "MASK_FIELDS",
    "SGD",
    "TRANSFORMS",
    "Adagrad",
    "AdagradState",
    "Adam",
    "AdamState",
    "AdamW",
    "AddDecayedWeights",
    "ClipByGlobalNorm",
    "Context",
    "Freeze",
    "Mask",
    "OptState",
    "Optimizer",
    "RMSprop",
    "RMSpropState",
    "SGDState",
    "Transform",
    "WeightsOnly",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "chain",
    "check_state_fits",
    "chunk_of",
    "chunks",
    "clip_by_global_norm",
    "freeze",
    "frozen_array",
    "map_record",
    "register_transform",
    "resolve_mask",
    "rmsprop",
    "sgd",
    "update",
    "weights_only",
    "writable_copy",
]

P = TypeVar("P")
S = TypeVar("S")
"""A transform's state record class, for :meth:`OptState.transform_state`."""
Mask = Callable[[str], bool] | Mapping[str, bool] | Any
"""A predicate on leaf paths, a ``{path: bool}`` mapping (missing paths are False), or
a tree of bools with the parameters' structure (for plain dict/tuple trees)."""


class WeightsOnly:
    """The mask of the weights: each layer kind's declared weight fields
    (``register_layer(..., weights=...)``; the trainable leaves with two or more axes
    for kinds that declare none), at any depth, composites included. Biases, norms'
    scales and shifts, and state are not weights. Pass it as a mask
    (``fnn.add_decayed_weights(1e-4, fnn.weights_only)``); it reads the parameters'
    layers when the optimizer state is made."""

    def resolve(self, params: Any) -> BoolArray:
        """The flat mask (ravel order) of ``params``' weights."""
        paths = weight_paths(params)
        return tree.leaf_mask(params, paths.__contains__)

    def __call__(self, path: str) -> bool:
        """As a bare predicate on a path, without the tree: paths ending in ``.W``."""
        return path.endswith(".W")

    def __repr__(self) -> str:
        return "fnn.weights_only"


weights_only = WeightsOnly()
"""Mask selecting the weights (see :class:`WeightsOnly`), not biases or norms."""


def resolve_mask(params: Any, mask: Mask | None) -> BoolArray | None:
    """A flat boolean mask (ravel order) from a path predicate or a tree of bools."""
    if mask is None:
        return None
    if isinstance(mask, WeightsOnly):
        return mask.resolve(params)
    if callable(mask):
        return tree.leaf_mask(params, mask)
    if isinstance(mask, Mapping) and all(isinstance(k, str) for k in mask):
        unknown = sorted(set(mask) - {p for p, _ in tree.leaves_with_paths(params)})
        if unknown:
            raise ValueError(f"mask names unknown path(s) {unknown}")
        return tree.leaf_mask(params, lambda p: bool(mask.get(p, False)))
    leaves_p = tree.leaves_with_paths(params)
    flags = tree.leaves(mask)
    if len(flags) != len(leaves_p):
        raise ValueError(
            f"mask has {len(flags)} leaves but the parameters have {len(leaves_p)}; pass a "
            "tree of bools with the parameters' structure or a predicate on paths"
        )
    parts = [np.full(int(np.size(x)), bool(f)) for (_, x), f in zip(leaves_p, flags, strict=True)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


@attrs.frozen(eq=False)
class Context:
    """What every transform sees of the step: ``step`` is the 1-based number of this
    update; ``lr_scale`` multiplies scheduled learning rates (reduce-on-plateau);
    ``scratch`` is a private temporary the size of the parameters."""

    step: int
    lr_scale: float
    scratch: FloatArray

    @staticmethod
    def at(step: int, lr_scale: float, scratch: FloatArray) -> Context:
        """``Context(step, lr_scale, scratch)`` without attrs' ``__init__`` (made every
        update): the slots set through their own descriptors."""
        ctx: Context = object.__new__(Context)
        _CTX_STEP(ctx, step)
        _CTX_SCALE(ctx, lr_scale)
        _CTX_SCRATCH(ctx, scratch)
        return ctx


_CTX_STEP, _CTX_SCALE, _CTX_SCRATCH = (
    getattr(Context, name).__set__ for name in ("step", "lr_scale", "scratch")
)


@runtime_checkable
class Transform(Protocol):
    """One stage of an optimizer, on flat vectors."""

    def init(self, params: Any, flat: FloatArray) -> Any:
        """The stage's initial state (a frozen record of flat arrays, or None)."""
        ...

    def update(
        self, u: FloatArray, state: Any, p: FloatArray, ctx: Context
    ) -> tuple[FloatArray, Any]:
        """The new direction (same shape and dtype as ``u``) and state, given the
        parameters ``p``. Never writes into ``u``, ``state`` or ``p``."""
        ...


def _lr(learning_rate: LearningRate, ctx: Context) -> float:
    return value_at(learning_rate, ctx.step - 1) * ctx.lr_scale


def frozen_array(x: Any) -> Any:
    """``x`` made read-only when it is an array, with the arrays it views (in place; for
    arrays fnn owns), so its flag cannot be set again."""
    return tree.read_only(x, owners=True)


def writable_copy(x: Any) -> Any:
    """A private writable copy of an array leaf; other leaves unchanged."""
    return np.array(x, copy=True) if isinstance(x, np.ndarray) else x


def map_record(fn: Callable[[Any], Any], node: Any) -> Any:
    """``fn`` on every array of an optimizer-state record (None, arrays, tuples, lists
    and attrs records of them), rebuilt without re-validation: the fast
    :func:`fnn.tree.map` for the small records transforms keep."""
    if node is None:
        return None
    if isinstance(node, np.ndarray):
        return fn(node)
    if isinstance(node, tuple | list):
        return type(node)(map_record(fn, c) for c in node)
    fields = _RECORD_FIELDS.get(type(node))
    if fields is None:
        if not attrs.has(type(node)):
            return node
        fields = _RECORD_FIELDS[type(node)] = [
            (f.name, bool(f.metadata.get(tree.STATIC, False))) for f in attrs.fields(type(node))
        ]
    obj = None
    for name, static in fields:
        v = getattr(node, name)
        if v is None or static:
            continue  # kept as is (None is also what a fresh record would get)
        if obj is None:
            obj = object.__new__(type(node))
            for other, _ in fields:  # start from the record's own values
                object.__setattr__(obj, other, getattr(node, other))
        object.__setattr__(obj, name, map_record(fn, v))
    return node if obj is None else obj  # a record with no arrays is shared, not copied


_RECORD_FIELDS: dict[type[Any], list[tuple[str, bool]]] = {}


CHUNK_BYTES = 1 << 20
"""Bytes per array in one chunk of an elementwise optimizer pass: the best of 256 KiB
to 16 MiB measured on a 2-core machine, for 235k (one chunk) and 6.3M parameters (1.5x
faster than unchunked). ``fnn.fit`` and :meth:`InPlace.update` both chunk."""


def chunks(n: int, itemsize: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` bounds of the cache-sized chunks of a flat vector of ``n`` elements."""
    size = max(1, CHUNK_BYTES // itemsize)
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def chunk_of(x: Any, lo: int, hi: int) -> Any:
    """Elements ``lo:hi`` of a flat (1-D) state array; any other leaf as it is."""
    return x[lo:hi] if isinstance(x, np.ndarray) and x.ndim == 1 else x


def _fresh_or_copy(x: Any) -> Any:
    """A new uninitialised array like a flat state array (filled chunk by chunk), a
    private copy of any other array."""
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return np.empty_like(x)
    return writable_copy(x)


def _sealed(x: Any) -> Any:
    if not isinstance(x, np.ndarray):
        return x
    return tree.read_only(x).view()  # a view of a read-only owner: its flag cannot be set again


class InPlace:
    """Mixin for transforms written once, as an in-place kernel.

    ``apply(u, state, p, ctx)`` overwrites the direction ``u`` and the arrays of
    ``state`` (both private buffers) and never writes ``p``. The functional
    :meth:`update` runs the same kernel on copies, so both paths compute the same bits;
    ``fnn.fit`` calls :meth:`apply` on its own buffers with no allocation.
    """

    elementwise: ClassVar[bool] = True
    """Whether element i of the result depends only on element i of the inputs (true for
    every transform but global-norm clipping). Elementwise chains run in cache-sized
    chunks inside ``fnn.fit``."""

    def apply(self, u: FloatArray, state: Any, p: FloatArray, ctx: Context) -> None:
        raise NotImplementedError

    def update(
        self, u: FloatArray, state: Any, p: FloatArray, ctx: Context
    ) -> tuple[FloatArray, Any]:
        if not self.elementwise or u.nbytes <= CHUNK_BYTES:
            st = map_record(writable_copy, state)
            out = np.array(u, copy=True)
            self.apply(out, st, p, ctx)
            return out, map_record(_sealed, st)
        # Large vectors go chunk by chunk, as in fit: each chunk of the direction and
        # the flat state is copied into the new arrays and the kernel's passes over it
        # run while it is in cache. Elementwise, so the same bits as one call.
        out = np.empty_like(u)
        st = map_record(_fresh_or_copy, state)
        flat = [
            (old, new)
            for old, new in zip(tree.leaves(state), tree.leaves(st), strict=True)
            if isinstance(new, np.ndarray) and new.ndim == 1
        ]
        for lo, hi in chunks(u.size, u.itemsize):
            np.copyto(out[lo:hi], u[lo:hi])
            for old, new in flat:
                np.copyto(new[lo:hi], old[lo:hi])
            part = Context.at(ctx.step, ctx.lr_scale, ctx.scratch[: hi - lo])
            views = map_record(functools.partial(chunk_of, lo=lo, hi=hi), st)
            self.apply(out[lo:hi], views, p[lo:hi], part)
        return out, map_record(_sealed, st)


def _check_lr(_inst: object, _attr: object, value: LearningRate) -> None:
    check_learning_rate(value)


_NONNEG = math.inf


def _add_l2(u: FloatArray, p: FloatArray, weight_decay: float, tmp: FloatArray) -> None:
    """``u += weight_decay * p`` (PyTorch's coupled weight decay)."""
    if weight_decay:
        np.multiply(p, weight_decay, out=tmp)
        u += tmp


# --- SGD ---------------------------------------------------------------------------


@attrs.frozen(eq=False)
class SGDState:
    """The momentum buffer (flat; zeros before the first step), or None without momentum."""

    momentum_buffer: FloatArray | None


@attrs.frozen
class SGD(InPlace):
    """Stochastic gradient descent, PyTorch's ``torch.optim.SGD``:

    ``g += weight_decay * p``; with momentum ``b = momentum * b + (1 - dampening) * g``
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
    weight_decay: float = attrs.field(
        default=0.0,
        converter=as_float,
        validator=check_range("weight_decay", 0, _NONNEG),
    )

    def __attrs_post_init__(self) -> None:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def init(self, params: Any, flat: FloatArray) -> SGDState:
        return SGDState(
            momentum_buffer=frozen_array(np.zeros_like(flat)) if self.momentum else None
        )

    def apply(self, u: FloatArray, state: SGDState, p: FloatArray, ctx: Context) -> None:
        tmp = ctx.scratch
        _add_l2(u, p, self.weight_decay, tmp)
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


# --- Adam / AdamW ------------------------------------------------------------------


@attrs.frozen(eq=False)
class AdamState:
    """First and second moment estimates (flat)."""

    mu: FloatArray
    nu: FloatArray


def _adam_apply(
    u: FloatArray,
    state: AdamState,
    lr: float,
    b1: float,
    b2: float,
    eps: float,
    t: int,
    tmp: FloatArray,
) -> None:
    """In place: update the moments from the gradient in ``u``, then leave the Adam step
    in ``u``. PyTorch's form: ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    Eleven passes over the arrays: the constant ``1 / sqrt(1 - b2^t)`` is moved out of
    the denominator, ``m / (sqrt(v) c + eps) = (m / (sqrt(v) + eps / c)) / c``, and ``u``
    is scaled in place before it feeds ``m``. Equal to PyTorch's to rounding.
    """
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
    tmp += eps / c
    np.divide(m, tmp, out=u)
    u *= -lr / ((1 - b1**t) * c)


def _zeros_state(flat: FloatArray) -> AdamState:
    return AdamState(mu=frozen_array(np.zeros_like(flat)), nu=frozen_array(np.zeros_like(flat)))


@attrs.frozen
class Adam(InPlace):
    """Adam, PyTorch's ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient).

    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    optax's ``adam`` puts ``eps`` outside the bias correction of ``v`` the same way; it
    has no coupled weight decay.

    Reference: Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization".
    """

    learning_rate: LearningRate = attrs.field(
        default=1e-3, converter=as_learning_rate, validator=_check_lr
    )
    b1: float = attrs.field(default=0.9, converter=as_float, validator=check_range("b1", 0, 1))
    b2: float = attrs.field(default=0.999, converter=as_float, validator=check_range("b2", 0, 1))
    eps: float = attrs.field(default=1e-8, converter=as_float, validator=check_positive("eps"))
    weight_decay: float = attrs.field(
        default=0.0,
        converter=as_float,
        validator=check_range("weight_decay", 0, _NONNEG),
    )

    def init(self, params: Any, flat: FloatArray) -> AdamState:
        return _zeros_state(flat)

    def apply(self, u: FloatArray, state: AdamState, p: FloatArray, ctx: Context) -> None:
        _add_l2(u, p, self.weight_decay, ctx.scratch)
        lr = _lr(self.learning_rate, ctx)
        _adam_apply(u, state, lr, self.b1, self.b2, self.eps, ctx.step, ctx.scratch)


@attrs.frozen
class AdamW(InPlace):
    """AdamW, PyTorch's ``torch.optim.AdamW``: decoupled weight decay
    ``p -= lr * weight_decay * p`` (on the leaves selected by ``decay_mask``, all by
    default), then the Adam step.

    optax's ``adamw`` applies the decay after scaling by the learning rate likewise, but
    its default ``weight_decay`` is 1e-4 where PyTorch's is 1e-2.

    Reference: Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization".
    """

    learning_rate: LearningRate = attrs.field(
        default=1e-3, converter=as_learning_rate, validator=_check_lr
    )
    b1: float = attrs.field(default=0.9, converter=as_float, validator=check_range("b1", 0, 1))
    b2: float = attrs.field(default=0.999, converter=as_float, validator=check_range("b2", 0, 1))
    eps: float = attrs.field(default=1e-8, converter=as_float, validator=check_positive("eps"))
    weight_decay: float = attrs.field(
        default=1e-2,
        converter=as_float,
        validator=check_range("weight_decay", 0, _NONNEG),
    )
    decay_mask: Mask | None = None

    def init(self, params: Any, flat: FloatArray) -> tuple[AdamState, BoolArray | None]:
        return _zeros_state(flat), resolve_mask(params, self.decay_mask)

    def apply(
        self,
        u: FloatArray,
        state: tuple[AdamState, BoolArray | None],
        p: FloatArray,
        ctx: Context,
    ) -> None:
        adam_state, mask = state
        lr = _lr(self.learning_rate, ctx)
        _adam_apply(u, adam_state, lr, self.b1, self.b2, self.eps, ctx.step, ctx.scratch)
        if self.weight_decay:
            tmp = ctx.scratch
            np.multiply(p, -lr * self.weight_decay, out=tmp)
            if mask is not None:
                tmp *= mask
            u += tmp


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
    """RMSprop, PyTorch's ``torch.optim.RMSprop``:

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
    weight_decay: float = attrs.field(
        default=0.0,
        converter=as_float,
        validator=check_range("weight_decay", 0, _NONNEG),
    )
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

    def apply(self, u: FloatArray, state: RMSpropState, p: FloatArray, ctx: Context) -> None:
        tmp = ctx.scratch
        _add_l2(u, p, self.weight_decay, tmp)
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
    """Adagrad, PyTorch's ``torch.optim.Adagrad``:

    ``s += g^2``; ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)``.

    optax's ``adagrad`` puts ``eps`` inside the square root and starts the accumulator
    at 0.1; PyTorch's ``initial_accumulator_value=0`` and ``eps=1e-10`` are kept here.
    """

    learning_rate: LearningRate = attrs.field(
        default=1e-2, converter=as_learning_rate, validator=_check_lr
    )
    lr_decay: float = attrs.field(
        default=0.0, converter=as_float, validator=check_range("lr_decay", 0, _NONNEG)
    )
    weight_decay: float = attrs.field(
        default=0.0,
        converter=as_float,
        validator=check_range("weight_decay", 0, _NONNEG),
    )
    initial_accumulator_value: float = attrs.field(
        default=0.0,
        converter=as_float,
        validator=check_range("initial_accumulator_value", 0, _NONNEG),
    )
    eps: float = attrs.field(default=1e-10, converter=as_float, validator=check_positive("eps"))

    def init(self, params: Any, flat: FloatArray) -> AdagradState:
        return AdagradState(sum=frozen_array(np.full_like(flat, self.initial_accumulator_value)))

    def apply(self, u: FloatArray, state: AdagradState, p: FloatArray, ctx: Context) -> None:
        tmp = ctx.scratch
        _add_l2(u, p, self.weight_decay, tmp)
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

    def apply(self, u: FloatArray, state: None, p: FloatArray, ctx: Context) -> None:
        norm = float(np.sqrt(u @ u))
        if norm > self.max_norm:
            u *= self.max_norm / (norm + 1e-6)


@attrs.frozen
class AddDecayedWeights(InPlace):
    """L2 regularisation on the gradient: ``u += weight_decay * p`` on the leaves selected
    by ``mask`` (all by default). Place it before the optimizer in a :func:`chain`."""

    weight_decay: float = attrs.field(
        converter=as_float, validator=check_range("weight_decay", 0, _NONNEG)
    )
    mask: Mask | None = None

    def init(self, params: Any, flat: FloatArray) -> BoolArray | None:
        return resolve_mask(params, self.mask)

    def apply(self, u: FloatArray, state: BoolArray | None, p: FloatArray, ctx: Context) -> None:
        tmp = ctx.scratch
        np.multiply(p, self.weight_decay, out=tmp)
        if state is not None:
            tmp *= state
        u += tmp


@attrs.frozen
class Freeze(InPlace):
    """Zero the update on the leaves selected by ``mask``: those parameters never change.
    Place it last in a :func:`chain` (after any decoupled weight decay)."""

    mask: Mask

    def init(self, params: Any, flat: FloatArray) -> BoolArray:
        m = resolve_mask(params, self.mask)
        assert m is not None
        return m

    def apply(self, u: FloatArray, state: BoolArray, p: FloatArray, ctx: Context) -> None:
        np.copyto(u, 0, where=state)


# --- optimizers and their state ----------------------------------------------------


@attrs.frozen(eq=False)
class OptState:
    """An optimizer's state: a frozen tree.

    Attributes:
        step: updates made so far.
        lr_scale: factor on scheduled learning rates (set by reduce-on-plateau).
        states: one state per transform of the optimizer (flat arrays).
        trainable: flat mask of the trainable leaves, or None when all are.
        optimizer: the optimizer that made this state (static), so ``fnn.update``
            needs only the state.
    """

    step: int
    lr_scale: float
    states: tuple[Any, ...]
    trainable: BoolArray | None
    optimizer: Optimizer = attrs.field(metadata=tree.STATIC_META)
    params_key: Any = attrs.field(default=None, metadata=tree.STATIC_META, repr=False)
    """The structure key of the parameters it was made for (see :mod:`fnn.layout`)."""

    def advanced(self, step: int, states: tuple[Any, ...]) -> OptState:
        """This state at ``step`` with new transform ``states`` (no re-validation)."""
        new = object.__new__(OptState)
        put = object.__setattr__
        put(new, "step", step)
        put(new, "lr_scale", self.lr_scale)
        put(new, "states", states)
        put(new, "trainable", self.trainable)
        put(new, "optimizer", self.optimizer)
        put(new, "params_key", self.params_key)
        return new

    def transform_state(self, i: int, cls: type[S]) -> S:
        """The state of transform ``i`` (negative counts from the end), typed as ``cls``:
        ``state.transform_state(0, fnn.optim.AdamState).mu`` is a typed array where
        ``state.states[0]`` is ``Any``. A transform whose state is a tuple holding one
        ``cls`` record (AdamW's ``(AdamState, decay mask)``) gives that record.

        Raises:
            TypeError: transform ``i``'s state is not (and does not hold) a ``cls``.
            IndexError: the optimizer has no transform ``i``.
        """
        n = len(self.states)
        if not -n <= i < n:
            raise IndexError(f"transform index {i} is out of range for {n} transform(s)")
        st = self.states[i]
        if isinstance(st, cls):
            return st
        held = [s for s in st if isinstance(s, cls)] if isinstance(st, tuple) else []
        if len(held) == 1:
            return held[0]
        name = type(self.optimizer.transforms[i]).__name__
        raise TypeError(
            f"states.{i % n} (of the optimizer's {name}) is a {type(st).__name__}, expected "
            f"a {cls.__name__}"
        )

    @property
    def learning_rate(self) -> float:
        """The learning rate the next update will use."""
        return self.optimizer.learning_rate_at(self.step, self.lr_scale)


def _flatten_transforms(parts: tuple[Any, ...]) -> tuple[Transform, ...]:
    out: list[Transform] = []
    for t in parts:
        if isinstance(t, Optimizer):
            out.extend(t.transforms)
        elif isinstance(t, Transform):
            out.append(t)
        else:
            raise TypeError(f"chain takes optimizers and transforms, got {type(t).__name__}")
    if not out:
        raise ValueError("an optimizer needs at least one transform")
    return tuple(out)


@attrs.frozen
class Optimizer:
    """A chain of transforms with ``init`` and ``update``."""

    transforms: tuple[Transform, ...] = attrs.field(converter=_flatten_transforms)

    def init(self, params: Any) -> OptState:
        """The initial state for ``params`` (any tree of float arrays, with at least one).

        Raises:
            TypeError: ``params`` is None or its leaves are not float arrays.
            ValueError: ``params`` is a tree with no leaves (``{}``, ``()``).
        """
        if params is None:
            raise TypeError(
                "params must be a network or a tree of float arrays (what the optimizer "
                "will update), got None"
            )
        if not tree.leaves(params):
            raise ValueError(
                f"params has no arrays to optimize: got an empty {type(params).__name__} "
                f"{params!r}; pass the network (or tree of float arrays) to update"
            )
        flat = tree.ravel(params)
        if flat.dtype.kind != "f":
            raise TypeError(f"parameters must be float arrays, got dtype {flat.dtype}")
        mask = tree.trainable_mask(params)
        trainable = None
        if not all(mask.values()):
            trainable = tree.leaf_mask(params, lambda p: mask[p])
        lay = getattr(params, "layout", None)
        return OptState(
            step=0,
            lr_scale=1.0,
            states=tuple(map_record(_sealed, t.init(params, flat)) for t in self.transforms),
            trainable=None if trainable is None else _sealed(trainable),
            optimizer=self,
            params_key=lay.key if isinstance(lay, Layout) else None,
        )

    def config(self) -> list[dict[str, Any]]:
        """One :func:`transform_config` per transform: what a checkpoint stores, and what
        decides whether a saved state belongs to this optimizer."""
        return [transform_config(t) for t in self.transforms]

    def learning_rate_at(self, step: int, lr_scale: float = 1.0) -> float:
        """The learning rate of update number ``step + 1`` (the first transform that has one)."""
        for t in self.transforms:
            lr = getattr(t, "learning_rate", None)
            if lr is not None:
                return value_at(lr, step) * lr_scale
        return math.nan

    def step_flat(
        self, p: FloatArray, g: FloatArray, state: OptState
    ) -> tuple[FloatArray, OptState]:
        """The flat parameter change for gradient ``g`` at parameters ``p``, and the new
        state; :meth:`update` on flat vectors. The transforms' in-place kernels run on
        private copies (``fnn.fit`` runs the same kernels on its own buffers)."""
        ctx = Context.at(state.step + 1, state.lr_scale, np.empty_like(p))
        u = g
        new_states = []
        for t, s in zip(self.transforms, state.states, strict=True):
            u, s = t.update(u, s, p, ctx)
            new_states.append(s)
        if state.trainable is not None:
            u = np.where(state.trainable, u, u.dtype.type(0))
        return u, state.advanced(ctx.step, tuple(new_states))

    def update(self, params: P, grads: P, state: OptState) -> tuple[P, OptState]:
        """New parameters and state after one step; ``params`` and ``state`` are unchanged.

        ``grads`` has the type and structure of ``params`` (checked: ValueError naming
        the first differing path). Non-trainable leaves (running statistics) take the
        values ``grads`` holds for them (the new state ``backward`` computed).
        """
        if not isinstance(state, OptState):
            raise TypeError(f"state must be an fnn.optim.OptState, got {type(state).__name__}")
        lay = getattr(params, "layout", None)
        if isinstance(lay, Layout):
            new_params: P
            new_params, new_state = self._update_flat(params, lay, grads, state)
            return new_params, new_state
        if not tree.same_structure(params, grads):
            raise ValueError(describe_mismatch(params, grads, "grads"))
        p = tree.ravel(params)
        g = tree.ravel(grads)
        if p.shape != g.shape:
            raise ValueError(describe_mismatch(params, grads, "grads"))
        check_state_fits(state, p)
        if g.dtype != p.dtype:
            g = g.astype(p.dtype)
        mask = tree.trainable_mask(params)
        if all(mask.values()):
            u, new_state = self.step_flat(p, g, state)
            return tree.unravel(params, p + u), new_state
        # as for a network: state leaves hold new statistics, not gradients, so no
        # transform (nor a global norm) sees them, and the new state is taken over
        trainable = tree.leaf_mask(params, lambda path: mask[path])
        u, new_state = self.step_flat(p, np.where(trainable, g, g.dtype.type(0)), state)
        return tree.unravel(params, np.where(trainable, p + u, g)), new_state

    def _update_flat(
        self, params: Any, lay: Layout, grads: Any, state: OptState
    ) -> tuple[Any, OptState]:
        glay = getattr(grads, "layout", None)
        if type(grads) is not type(params) or not (
            glay is lay or (isinstance(glay, Layout) and glay.key == lay.key)
        ):
            raise ValueError(describe_mismatch(params, grads, "grads"))
        check_state_fits(state, params.flat, lay.key)
        return self.update_flat(params, grads.flat, state)

    def update_flat(self, params: P, g: FloatArray, state: OptState) -> tuple[P, OptState]:
        """:meth:`update` for a network given its gradient as one flat vector ``g`` in
        ``params.layout`` order (the state segments holding the new state), the state
        already checked to fit. ``g`` is not written."""
        lay: Layout = params.layout  # type: ignore[attr-defined]
        p: FloatArray = params.flat  # type: ignore[attr-defined]
        gu = g
        if lay.state_slices:  # state leaves hold new statistics, not gradients
            gu = np.array(g, copy=True)
            lay.zero_state(gu)
        u, new_state = self.step_flat(p, gu, state)
        new = np.add(p, u)
        lay.take_state(new, g)
        return params.with_flat(new), new_state  # type: ignore[attr-defined]


def check_state_fits(state: OptState, p: FloatArray, params_key: Any = None) -> None:
    """ValueError when the state was made for another network (``params_key``, the
    parameters' layout key, given) or its flat arrays do not fit parameters ``p``."""
    if params_key is not None and state.params_key is params_key:
        return  # made for parameters of this very layout: nothing to compare
    known = params_key is not None and state.params_key is not None
    if known and state.params_key is not params_key and state.params_key != params_key:
        raise ValueError(
            "opt_state was made for another network: "
            + _key_difference(state.params_key, params_key)
        )
    for i, st in enumerate(state.states):
        for leaf in tree.leaves(st):
            if isinstance(leaf, np.ndarray) and leaf.ndim == 1 and leaf.shape != p.shape:
                raise ValueError(
                    f"opt_state was made for parameters of {leaf.size} elements "
                    f"(states.{i}), but these have {p.size}"
                )
            if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f" and leaf.dtype != p.dtype:
                raise ValueError(
                    f"opt_state has dtype {leaf.dtype} (states.{i}), but the parameters "
                    f"have {p.dtype}"
                )


def _key_difference(made_for: Any, got: Any) -> str:
    """Where two layout keys differ, by path."""
    if isinstance(made_for, StructureKey) and isinstance(got, StructureKey):
        return made_for.difference(got)
    return "its structure differs"


TRANSFORMS: Registry[type[Any]] = Registry("optimizer transform")
"""Transform classes by class name: what checkpoints rebuild optimizers from."""


def register_transform(cls: type[Any]) -> type[Any]:
    """Register a transform class (an attrs class; its fields are its configuration) so
    checkpoints holding it load. Usable as a class decorator."""
    TRANSFORMS.register(cls.__name__, cls)
    return cls


for _t in (SGD, Adam, AdamW, RMSprop, Adagrad, ClipByGlobalNorm, AddDecayedWeights, Freeze):
    register_transform(_t)

MASK_FIELDS = ("decay_mask", "mask")
"""Transform fields that hold masks (recorded in configs only as set or not)."""


def _lr_config(lr: Any) -> Any:
    if isinstance(lr, int | float):
        return float(lr)
    if attrs.has(type(lr)):
        return {"schedule": type(lr).__name__, **attrs.asdict(lr)}
    raise ValueError(f"the learning-rate schedule {type(lr).__name__} has no config")


def transform_config(t: Any) -> dict[str, Any]:
    """A JSON-friendly description of a built-in transform: its class and fields. Masks
    are recorded only as set or not (the resolved mask lives in the optimizer state)."""
    if not attrs.has(type(t)):
        raise ValueError(f"the transform {type(t).__name__} has no config")
    cfg: dict[str, Any] = {"transform": type(t).__name__}
    for f in attrs.fields(type(t)):
        v = getattr(t, f.name)
        if f.name in MASK_FIELDS:
            cfg[f.name] = None if v is None else "mask"
        elif f.name == "learning_rate":
            cfg[f.name] = _lr_config(v)
        else:
            cfg[f.name] = v
    return cfg


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


def clip_by_global_norm(max_norm: float) -> ClipByGlobalNorm:
    """Clip the gradient's global norm (see :class:`ClipByGlobalNorm`)."""
    return ClipByGlobalNorm(max_norm)


def add_decayed_weights(weight_decay: float, mask: Mask | None = None) -> AddDecayedWeights:
    """L2 weight decay on masked leaves (see :class:`AddDecayedWeights`)."""
    return AddDecayedWeights(weight_decay, mask)


def freeze(mask: Mask) -> Freeze:
    """Keep the masked leaves fixed (see :class:`Freeze`)."""
    return Freeze(mask)


# Schedules are accepted wherever a learning rate is.
_ = schedules
