"""The earlier protocols of layers, activations and losses, adapted in one place.

fnn's kinds once had simpler methods; a class written to them keeps working, adapted
when it is defined (the bases' ``__init_subclass__`` call :func:`adapt`):

- a layer's ``forward(X, *, train, rng) -> (out, cache)`` and ``backward(cache, d_out)
  -> (grads, d_in)`` become its kernels ``forward_into`` / ``backward_into`` (fresh
  arrays every step: slower than kernels, never wrong);
- an activation's ``__call__(z)`` and ``vjp(z, a, da)`` gain ``out=None``;
- a loss's ``per_sample(logits, y)`` / ``per_sample_grad(logits, y)`` become its
  ``fused`` pass, and a ``fused(logits, y)`` without ``value=`` gains it.

Each rule names a method of today's protocol (``new``), the earlier methods that stand
for it (``old``) and how to make the one from the other. A method that fits neither
protocol (say ``__call__(self)``, or a layer ``forward(X)`` without ``train``/``rng``)
cannot be adapted: :func:`adapt` raises TypeError naming the class, the method and
both protocols, when the class is defined rather than at its first use.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from fnn import tree
from fnn._types import FloatArray

__all__ = [
    "ACTIVATION",
    "LAYER",
    "LOSS",
    "Rule",
    "adapt",
    "is_adapter",
    "legacy_backward_into",
    "legacy_forward_into",
]


@attrs.frozen
class Rule:
    """How one method of today's protocol is made from an earlier one.

    Attributes:
        new: the method today's callers use (``"forward_into"``, ``"__call__"``).
        old: the earlier methods standing for it; when the class defines one of them and
            not ``new``, ``make(cls, own)`` gives ``new`` (``own``: the class's own
            namespace).
        current: the call shape today's ``new`` accepts, as ``(positional arguments
            after self, keyword names)``; a ``new`` the class defines that takes it is
            kept.
        earlier: the call shape of the earlier form of ``new`` itself, adapted by
            ``wrap(fn)`` (None: ``new`` had no earlier form).
        old_shape: the call shape the ``old`` methods must accept.
        wrap: makes today's ``new`` from its earlier form.
        make: makes ``new`` from the ``old`` methods.
        spelled: the calls ``new`` must accept, for messages.
        old_spelled: the calls the ``old`` methods must accept, for messages.
    """

    new: str
    current: tuple[int, tuple[str, ...]]
    spelled: str
    old: tuple[str, ...] = ()
    old_shape: tuple[int, tuple[str, ...]] = (0, ())
    earlier: tuple[int, tuple[str, ...]] | None = None
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
    make: Callable[[type[Any], dict[str, Any]], Callable[..., Any]] | None = None
    old_spelled: str = ""


def _accepts(fn: Any, shape: tuple[int, tuple[str, ...]]) -> bool:
    """Whether ``fn(self, *positional, **keywords)`` binds (``shape``: their counts/names)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return True
    n, names = shape
    try:
        sig.bind(None, *range(n), **dict.fromkeys(names))
    except TypeError:
        return False
    return True


def _params(fn: Any) -> str:
    """``fn``'s parameters by name, ``(self, X)``, without annotations."""
    try:
        return f"({', '.join(inspect.signature(fn).parameters)})"
    except (TypeError, ValueError):  # pragma: no cover
        return "(...)"


def adapt(cls: type[Any], rules: Sequence[Rule], what: str) -> None:
    """Give ``cls`` (a new subclass of a base of kind ``what``) today's methods for the
    earlier ones it defines (see the module docstring). TypeError naming the method
    when it fits neither protocol."""
    own = vars(cls)
    for rule in rules:
        fn = own.get(rule.new)
        if fn is not None:
            if is_adapter(fn) or _accepts(fn, rule.current):
                continue
            if rule.earlier is not None and rule.wrap is not None and _accepts(fn, rule.earlier):
                setattr(cls, rule.new, rule.wrap(fn))
                continue
            raise TypeError(
                f"{what} {cls.__name__}.{rule.new}{_params(fn)} cannot be adapted: it must "
                f"accept {rule.spelled}"
            )
        written = [name for name in rule.old if name in own]
        if not written or rule.make is None:
            continue
        for name in written:
            if not _accepts(own[name], rule.old_shape):
                raise TypeError(
                    f"{what} {cls.__name__}.{name}{_params(own[name])} cannot be adapted to "
                    f"{rule.new}: the earlier protocol's methods accept {rule.old_spelled}"
                )
        setattr(cls, rule.new, rule.make(cls, dict(own)))


def is_adapter(fn: object) -> bool:
    """Whether ``fn`` is a method this module made (not the class's own math)."""
    return bool(getattr(fn, "_fnn_legacy", False))


def _mark(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn._fnn_legacy = True  # type: ignore[attr-defined]
    return fn


# --- layers ------------------------------------------------------------------------------


def legacy_forward_into(layer: Any, X: FloatArray, ctx: Any, ws: Any) -> tuple[FloatArray, Any]:
    """The forward kernel of a layer written to the earlier protocol: its ``forward``."""
    return layer.forward(X, train=ctx.train, rng=ctx.rng)  # type: ignore[no-any-return]


def legacy_backward_into(
    layer: Any,
    cache: Any,
    d_out: FloatArray,
    grads: Any,
    ctx: Any,
    ws: Any,
    need_d_in: bool = True,
) -> FloatArray | None:
    """The backward kernel of a layer written to the earlier protocol: its ``backward``,
    with the gradients copied into ``grads`` (ValueError naming the layer when they
    do not have its leaves)."""
    g, d_in = layer.backward(cache, d_out)
    dst, src = tree.leaves(grads), tree.leaves(g)
    if len(dst) != len(src):
        raise ValueError(
            f"{type(layer).__name__}.backward returned gradients with {len(src)} leaves, "
            f"but the layer has {len(dst)}: return a value of the layer's own type"
        )
    for a, b in zip(dst, src, strict=True):
        np.copyto(a, b)
    return d_in  # type: ignore[no-any-return]


_mark(legacy_forward_into)
_mark(legacy_backward_into)

LAYER = (
    Rule(
        new="forward_into",
        current=(3, ()),
        spelled="forward_into(X, ctx, ws)",
        old_spelled="forward(X, *, train, rng)",
        old=("forward",),
        old_shape=(1, ("train", "rng")),
        make=lambda cls, own: legacy_forward_into,
    ),
    Rule(
        new="backward_into",
        current=(6, ()),
        spelled="backward_into(cache, d_out, grads, ctx, ws, need_d_in)",
        old_spelled="backward(cache, d_out)",
        old=("backward",),
        old_shape=(2, ()),
        make=lambda cls, own: legacy_backward_into,
    ),
)
"""The rules of layers: ``forward`` / ``backward`` stand for the kernels."""


# --- activations -------------------------------------------------------------------------


def _give(r: FloatArray, out: FloatArray | None) -> FloatArray:
    if out is None:
        return r
    np.copyto(out, r)
    return out


def _call_with_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(self: Any, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return _give(fn(self, z), out)

    return _mark(call)


def _vjp_with_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def vjp(
        self: Any, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        return _give(fn(self, z, a, da), out)

    return _mark(vjp)


ACTIVATION = (
    Rule(
        new="__call__",
        current=(1, ("out",)),
        spelled="__call__(z, out=None) or the earlier __call__(z)",
        earlier=(1, ()),
        wrap=_call_with_out,
    ),
    Rule(
        new="vjp",
        current=(3, ("out",)),
        spelled="vjp(z, a, da, out=None) or the earlier vjp(z, a, da)",
        earlier=(3, ()),
        wrap=_vjp_with_out,
    ),
)
"""The rules of activations: ``__call__(z)`` and ``vjp(z, a, da)`` gain ``out=``."""


# --- losses ------------------------------------------------------------------------------


def _fused_with_value(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def fused(self: Any, logits: FloatArray, y: FloatArray, *, value: bool = True) -> Any:
        return fn(self, logits, y)

    return _mark(fused)


def _fused_from_per_sample(cls: type[Any], own: dict[str, Any]) -> Callable[..., Any]:
    """``fused`` from ``per_sample`` / ``per_sample_grad``; the one not written comes
    from the parent's ``fused``, so an inherited fused pass never shadows them."""
    parent_fused: Callable[..., Any] = getattr(cls.__mro__[1], "fused")  # noqa: B009
    ps, pg = own.get("per_sample"), own.get("per_sample_grad")

    def fused(
        self: Any, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        per = None
        if value:
            per = ps(self, logits, y) if ps is not None else parent_fused(self, logits, y)[0]
        g = pg(self, logits, y) if pg is not None else parent_fused(self, logits, y)[1]
        return per, g

    return _mark(fused)


LOSS = (
    Rule(
        new="fused",
        current=(2, ("value",)),
        spelled="fused(logits, y, *, value=True) or the earlier fused(logits, y)",
        old_spelled="per_sample(logits, y) and per_sample_grad(logits, y)",
        earlier=(2, ()),
        wrap=_fused_with_value,
        old=("per_sample", "per_sample_grad"),
        old_shape=(2, ()),
        make=_fused_from_per_sample,
    ),
)
"""The rules of losses: ``per_sample`` / ``per_sample_grad`` stand for ``fused``, and
a ``fused(logits, y)`` gains ``value=``."""
