"""What every transform sees and is (:class:`UpdateContext`, :class:`Transform`,
:class:`InPlace`), and :class:`ChainRunner`, the one place that runs a chain."""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np

from fnn._diverged import NonFinite
from fnn._types import BoolArray, FloatArray
from fnn.optim._arrays import (
    chunk_of,
    chunk_size,
    chunks,
    map_record,
    sealed,
    writable_copy,
)

__all__ = ["Context", "InPlace", "Transform", "UpdateContext"]


@attrs.frozen(eq=False)
class UpdateContext:
    """What every transform sees of the update: ``step`` is the 1-based number of this
    update; ``lr_scale`` multiplies scheduled learning rates (reduce-on-plateau);
    ``scratch`` is a private temporary the size of the parameters (or of the chunk).

    (A layer's kernels see :class:`fnn.layers.base.Context`, the pass's context: training
    mode, rng, rows. This one was ``fnn.optim.Context``, a name that stays importable.)"""

    step: int
    lr_scale: float
    scratch: FloatArray

    @staticmethod
    def at(step: int, lr_scale: float, scratch: FloatArray) -> UpdateContext:
        """``UpdateContext(step, lr_scale, scratch)`` without attrs' ``__init__`` (made every
        update): the slots set through their own descriptors."""
        ctx: UpdateContext = object.__new__(UpdateContext)
        _CTX_STEP(ctx, step)
        _CTX_SCALE(ctx, lr_scale)
        _CTX_SCRATCH(ctx, scratch)
        return ctx


_CTX_STEP, _CTX_SCALE, _CTX_SCRATCH = (
    getattr(UpdateContext, name).__set__ for name in ("step", "lr_scale", "scratch")
)
Context = UpdateContext
"""The former name of :class:`UpdateContext` (kept importable)."""


@runtime_checkable
class Transform(Protocol):
    """One stage of an optimizer, on flat vectors."""

    def init(self, params: Any, flat: FloatArray) -> Any:
        """The stage's initial state (a frozen record of flat arrays, or None)."""
        ...

    def update(
        self, u: FloatArray, state: Any, p: FloatArray, ctx: UpdateContext
    ) -> tuple[FloatArray, Any]:
        """The new direction (same shape and dtype as ``u``) and state, given the
        parameters ``p``. Never writes into ``u``, ``state`` or ``p``."""
        ...


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

    def apply(self, u: FloatArray, state: Any, p: FloatArray, ctx: UpdateContext) -> None:
        raise NotImplementedError

    def update(
        self, u: FloatArray, state: Any, p: FloatArray, ctx: UpdateContext
    ) -> tuple[FloatArray, Any]:
        out, states = run_on_copies((self,), (state,), p, None, u, None, [], ctx.step, ctx.lr_scale)  # type: ignore[arg-type]
        return out, states[0]


class ChainRunner:
    """Applies an optimizer's chain of transforms to a flat gradient: the one place
    that runs transforms, for ``fnn.update``, ``train_step``, ``fit`` and
    ``fnn.distributed.fit``.

    One call turns the gradient ``u`` (P,) into the parameter change, in place, and
    writes ``p_old + change`` into ``p_new`` (P,) (not when ``p_new`` is None: the change
    stays in ``u``). On the way:

    - the ``keep`` slices (non-trainable leaves: running statistics) hold new values,
      not gradients: they are set aside, zeroed so no transform sees them, and written
      into ``p_new`` as they were;
    - the transforms run in order: in-place kernels on the private ``u`` and
      ``states`` (one state per transform), the pure ``update`` of any other transform;
    - the change is zeroed where ``frozen`` (P,) is True;
    - with ``check``, a non-finite change (a non-finite gradient always gives one)
      raises :class:`NonFinite` before ``p_new`` is written.

    An elementwise chain of in-place kernels runs in cache-sized chunks (see
    :data:`fnn.optim.CHUNK_BYTES`): the dozen passes of an optimizer over a chunk of parameters,
    change and state hit the cache rather than memory. The chunk views are built once,
    so ``fit`` keeps one runner over its buffers; :meth:`on_copies` makes one over fresh
    copies for the pure functions (filled chunk by chunk), so both compute the same bits.
    """

    def __init__(
        self,
        transforms: tuple[Transform, ...],
        states: list[Any],
        p_old: FloatArray,
        p_new: FloatArray | None,
        u: FloatArray,
        frozen: BoolArray | None = None,
        keep: list[tuple[int, int]] | None = None,
        copies: list[tuple[FloatArray, FloatArray]] | None = None,
    ) -> None:
        """``copies``: ``(source, target)`` flat pairs copied chunk by chunk before the
        chain runs (the pure path's fresh ``u`` and state from the caller's)."""
        self.transforms = transforms
        self.states = states
        self.u = u
        self.p_old = p_old
        self.p_new = p_new
        self.frozen = frozen
        self.keep = keep or []
        self.copies = copies or []
        self.chunks: list[_Chunk] = []
        self.scratch: FloatArray | None = None
        if _chunked(transforms, u):
            bounds = chunks(u.size, u.itemsize)
            scratch = np.empty(max(hi - lo for lo, hi in bounds), dtype=u.dtype)
            self.chunks = [self._chunk(lo, hi, scratch) for lo, hi in bounds]

    @staticmethod
    def on_copies(
        transforms: tuple[Transform, ...],
        states: tuple[Any, ...],
        p: FloatArray,
        p_new: FloatArray | None,
        g: FloatArray,
        frozen: BoolArray | None = None,
        keep: list[tuple[int, int]] | None = None,
    ) -> ChainRunner:
        """A runner over fresh arrays: ``u`` a copy of ``g`` and private copies of
        ``states`` (neither written), filled chunk by chunk when the chain runs so."""
        u = np.empty_like(g)
        copies = [(g, u)]

        def fresh(x: Any) -> Any:
            # flat state arrays are filled chunk by chunk (while in cache); others copied
            if isinstance(x, np.ndarray) and x.ndim == 1:
                new = np.empty_like(x)
                copies.append((x, new))
                return new
            return writable_copy(x)

        new_states = [map_record(fresh, s) for s in states]
        return ChainRunner(transforms, new_states, p, p_new, u, frozen, keep, copies)

    def _chunk(self, lo: int, hi: int, scratch: FloatArray) -> _Chunk:
        keep = [(max(a, lo) - lo, min(b, hi) - lo) for a, b in self.keep if a < hi and b > lo]
        return _Chunk(
            p_old=self.p_old[lo:hi],
            p_new=None if self.p_new is None else self.p_new[lo:hi],
            u=self.u[lo:hi],
            scratch=scratch[: hi - lo],
            frozen=None if self.frozen is None else self.frozen[lo:hi],
            states=[map_record(functools.partial(chunk_of, lo=lo, hi=hi), s) for s in self.states],
            keep=keep,
            copies=[(a[lo:hi], b[lo:hi]) for a, b in self.copies],
        )

    def sealed_states(self) -> tuple[Any, ...]:
        """The new states, read-only (the runner is not used afterwards)."""
        return tuple(map_record(sealed, s) for s in self.states)

    def __call__(self, step: int, lr_scale: float, *, check: bool = False) -> None:
        """Run the chain for update number ``step`` (1-based) with the learning-rate
        factor ``lr_scale``."""
        if not self.chunks:
            for a, b in self.copies:
                np.copyto(b, a)
            if self.scratch is None:
                self.scratch = np.empty_like(self.u)
            self.u = _run_whole(
                self.transforms,
                self.states,
                self.p_old,
                self.p_new,
                self.u,
                self.frozen,
                self.keep,
                self.scratch,
                step,
                lr_scale,
                check,
            )
            return
        src = self.copies[0][0] if self.copies else self.u  # where the gradient is now
        saved = [src[lo:hi].copy() for lo, hi in self.keep] if self.keep else []
        for c in self.chunks:
            _run_chunk(self.transforms, c, step, lr_scale, check)
        if self.p_new is not None:
            for (lo, hi), v in zip(self.keep, saved, strict=True):
                self.p_new[lo:hi] = v


def run_on_copies(
    transforms: tuple[Transform, ...],
    states: tuple[Any, ...],
    p: FloatArray,
    p_new: FloatArray | None,
    g: FloatArray,
    frozen: BoolArray | None,
    keep: list[tuple[int, int]],
    step: int,
    lr_scale: float,
    check: bool = False,
    owned: bool = False,
) -> tuple[FloatArray, tuple[Any, ...]]:
    """The chain run by :meth:`ChainRunner.on_copies` for update number ``step``: the
    change (in ``u``) and the new states, read-only. A chain that fits one chunk runs
    on copies made at once, with no runner built (the pure functions' small steps);
    there ``owned`` says ``g`` is the caller's private buffer, run in with no copy."""
    if _chunked(transforms, g):
        run = ChainRunner.on_copies(transforms, states, p, p_new, g, frozen, keep)
        run(step, lr_scale, check=check)
        return run.u, run.sealed_states()
    u = g if owned else g.copy()
    copied = [map_record(writable_copy, s) for s in states]
    scratch = np.empty_like(u)
    u = _run_whole(transforms, copied, p, p_new, u, frozen, keep, scratch, step, lr_scale, check)
    return u, tuple([map_record(sealed, s) for s in copied])


def _run_whole(
    transforms: tuple[Transform, ...],
    states: list[Any],
    p_old: FloatArray,
    p_new: FloatArray | None,
    u: FloatArray,
    frozen: BoolArray | None,
    keep: list[tuple[int, int]],
    scratch: FloatArray,
    step: int,
    lr_scale: float,
    check: bool,
) -> FloatArray:
    """The chain on the whole vector (one chunk, or a chain that needs the whole
    vector: a global norm, a transform without an in-place kernel); see
    :class:`ChainRunner`. Returns the change (``u``, or a new array from a transform
    without an in-place kernel)."""
    saved = []
    if keep:  # (a network with running statistics; none on most steps' paths)
        saved = [u[lo:hi].copy() for lo, hi in keep]
        for lo, hi in keep:
            u[lo:hi] = 0
    ctx = UpdateContext.at(step, lr_scale, scratch)
    for i, tr in enumerate(transforms):
        if isinstance(tr, InPlace):
            tr.apply(u, states[i], p_old, ctx)
        else:
            u, states[i] = tr.update(u, states[i], p_old, ctx)
    if frozen is not None:
        np.copyto(u, 0, where=frozen)
    # ndarray.dot: a third of the call cost of ``@`` on small vectors
    if check and not math.isfinite(u.dot(u)):
        raise NonFinite("gradient or update")
    if p_new is not None:
        np.add(p_old, u, out=p_new)
        if keep:
            for (lo, hi), v in zip(keep, saved, strict=True):
                p_new[lo:hi] = v
    return u


def _chunked(transforms: tuple[Transform, ...], u: FloatArray) -> bool:
    """Whether the chain runs chunk by chunk on ``u``: more than one chunk, and every
    transform an elementwise in-place kernel."""
    return u.size > chunk_size(u.itemsize) and all(
        isinstance(t, InPlace) and t.elementwise for t in transforms
    )


def _run_chunk(
    transforms: tuple[Transform, ...], c: _Chunk, step: int, lr_scale: float, check: bool
) -> None:
    """The chain's in-place kernels on one chunk (see :class:`ChainRunner`)."""
    for a, b in c.copies:
        np.copyto(b, a)
    u = c.u
    for lo, hi in c.keep:
        u[lo:hi] = 0
    ctx = UpdateContext.at(step, lr_scale, c.scratch)
    for tr, st in zip(transforms, c.states, strict=True):
        tr.apply(u, st, c.p_old, ctx)  # type: ignore[attr-defined]
    if c.frozen is not None:
        np.copyto(u, 0, where=c.frozen)
    # A non-finite gradient always gives a non-finite change: one check covers both
    if check and not math.isfinite(u.dot(u)):
        raise NonFinite("gradient or update")
    if c.p_new is not None:
        np.add(c.p_old, u, out=c.p_new)


@attrs.frozen(eq=False)
class _Chunk:
    """Views of one cache-sized slice of the parameters (old and new), the change, the
    scratch array, the frozen mask and the states; the ``keep`` slices and ``copies``
    that fall in it."""

    p_old: FloatArray
    p_new: FloatArray | None
    u: FloatArray
    scratch: FloatArray
    frozen: BoolArray | None
    states: list[Any]
    keep: list[tuple[int, int]]
    copies: list[tuple[FloatArray, FloatArray]]
