"""The training step used by ``fnn.fit``: a plan built once per fit, which runs the
layers' own kernels on private buffers.

Purity is about what callers see. Inside a fit, the engine keeps the parameters in a
private, writable flat buffer and updates it in place; the layers' backward kernels
write the gradient into a second preallocated buffer through per-layer views; each
layer gets a workspace that keeps its arrays from step to step (:class:`Kept`). The
math is the layers' ``forward_into`` / ``backward_into``, the loss's ``value_and_grad``
and the optimizer transforms' in-place kernels: exactly what ``fnn.forward``,
``fnn.backward`` and ``fnn.update`` run on fresh arrays. Nothing here knows a concrete
layer class. Callers only ever receive fresh, read-only networks.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from fnn import _scratch, tree
from fnn._types import FloatArray
from fnn.layers.base import TRAINING, Kept
from fnn.layers.base import Context as LayerContext
from fnn.network import Network, backward_pass, forward_pass, from_flat, logits_of
from fnn.optim import (
    Context,
    InPlace,
    Optimizer,
    OptState,
    chunk_of,
    chunks,
    frozen_array,
    writable_copy,
)


def _reopen(x: Any) -> Any:
    """Make an array this engine owns writable again (no copy)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        if isinstance(x.base, np.ndarray):
            x.base.flags.writeable = True  # a sealed view: its private owner first
        x.flags.writeable = True
    return x


def _readonly_copy(x: Any) -> Any:
    return tree.read_only(x, copy=True)  # a view of a read-only owner: its flag cannot be set again


class NonFinite(Exception):
    """Raised by :meth:`Engine.step` when the loss, gradient or update is not finite."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Engine:
    """Holds the private buffers of one fit. Call :meth:`close` when done."""

    def __init__(
        self, params: Network, optimizer: Optimizer, opt_state: OptState, *, own_state: bool = False
    ) -> None:
        """``own_state``: the caller made ``opt_state`` for this engine alone and never
        shows it to anyone, so its arrays are used in place instead of copied."""
        self.template = params
        self.optimizer = optimizer
        # Two parameter buffers: a step reads the current one and writes the updated
        # parameters into the other, and they swap only when the whole step succeeded.
        # So the update is fused into the optimizer's pass, and a failing step leaves
        # the last finite parameters untouched.
        # The big private buffers come from the last fit's scratch when shapes match
        # (fresh memory costs page faults, see fnn._scratch) and go back in close().
        lay = params.layout
        self.layout = lay
        flat = params.flat
        p0 = _scratch.take(flat.shape, flat.dtype)
        np.copyto(p0, flat)
        self.pb: tuple[FloatArray, FloatArray] = (p0, _scratch.take(p0.shape, p0.dtype))
        self.cur = 0
        # every step writes the whole gradient before it is read: no zero fill needed
        self.g: FloatArray = _scratch.take(p0.shape, p0.dtype)
        # the networks whose leaves view each parameter buffer, and the gradient tree
        # viewing the gradient buffer (where the backward kernels write): built once
        self.nets = (
            from_flat(params, p0, writable=True),
            from_flat(params, self.pb[1], writable=True),
        )
        self.grads = from_flat(params, self.g, writable=True)
        self.workspaces = [Kept() for _ in params.layers]
        self._ctx = TRAINING
        # the optimizer's temporary: one chunk long when it runs chunk by chunk (set below)
        self.scratch: FloatArray = p0[:0]
        # the optimizer state, as private writable buffers for in-place transforms
        private = _reopen if own_state else writable_copy
        self.states: list[Any] = [
            tree.map(private, s) if isinstance(t, InPlace) else s
            for t, s in zip(optimizer.transforms, opt_state.states, strict=True)
        ]
        self.step_count = opt_state.step
        self.lr_scale = opt_state.lr_scale
        self.trainable = opt_state.trainable
        self.frozen = None if opt_state.trainable is None else ~opt_state.trainable
        # Elementwise chains run chunk by chunk, so the dozen passes of an optimizer over
        # a chunk of parameters, change and state hit the cache rather than memory. The
        # chunk views are fixed: the buffers are updated in place.
        self.chunks: list[_Chunk] = []
        if all(isinstance(t, InPlace) and t.elementwise for t in optimizer.transforms):
            bounds = chunks(p0.size, p0.itemsize)
            self.scratch = np.empty(max(hi - lo for lo, hi in bounds), dtype=p0.dtype)
            self.chunks = [self._chunk(lo, hi) for lo, hi in bounds]

    @property
    def p(self) -> FloatArray:
        """The current parameters (flat, private)."""
        return self.pb[self.cur]

    def _chunk(self, lo: int, hi: int) -> _Chunk:
        return _Chunk(
            p=(self.pb[0][lo:hi], self.pb[1][lo:hi]),
            u=self.g[lo:hi],
            scratch=self.scratch[: hi - lo],
            frozen=None if self.frozen is None else self.frozen[lo:hi],
            states=[
                tree.map(lambda a, lo=lo, hi=hi: chunk_of(a, lo, hi), st) for st in self.states
            ],
        )

    def close(self, *, keep_scratch: bool = False) -> None:
        """Release the buffers; the engine is not used after this. ``keep_scratch``:
        the fit ended normally, so no caller holds any of the private buffers (a
        traceback's frames might): they are kept for the next fit (fnn._scratch)."""
        if keep_scratch:
            private = [b for b in (*self.pb, self.g) if b.size]  # not released params
            for ws in self.workspaces:
                private += ws.all_arrays()
            _scratch.keep(private)
        self.workspaces = []

    @property
    def opt_state(self) -> OptState:
        """A fresh, read-only snapshot of the optimizer state."""
        return self._state(self.states, _readonly_copy)

    def release_state(self) -> OptState:
        """The current optimizer state as read-only values, without a copy: no step may
        follow (the parameters can still be read and released)."""
        states, self.states, self.chunks = self.states, [], []
        return self._state(states, frozen_array)

    def _state(self, states: list[Any], leaf: Any) -> OptState:
        return OptState(
            step=self.step_count,
            lr_scale=self.lr_scale,
            states=tuple(tree.map(leaf, s) for s in states),
            trainable=self.trainable,
            optimizer=self.optimizer,
            params_key=self.layout.key,
        )

    def params(self) -> Network:
        """A fresh, read-only network with the current parameters."""
        return from_flat(self.template, self.p.copy())

    def release_params(self) -> Network:
        """The current parameters as a read-only network, without a copy: the engine
        must not be used afterwards."""
        p = self.p
        # the spare buffer stays (for close); the handed-over one is replaced by an empty view
        self.pb = (p[:0], self.pb[1]) if self.cur == 0 else (self.pb[0], p[:0])
        return from_flat(self.template, p)

    def logits(self, X: FloatArray) -> FloatArray:
        """Inference logits (no dropout, running statistics) with the current parameters."""
        return logits_of(self.nets[self.cur], X)

    def step(
        self,
        X: FloatArray,
        y: FloatArray,
        w: FloatArray | None,
        rng: np.random.Generator | None,
        out: FloatArray | None = None,
    ) -> float:
        """One step on a batch; returns the batch loss. ``out`` (n, k), if given, receives
        the batch's predictions (for training metrics)."""
        value = self.gradient(X, y, w, rng, out)
        self.update()
        return value

    def gradient(
        self,
        X: FloatArray,
        y: FloatArray,
        w: FloatArray | None,
        rng: np.random.Generator | None,
        out: FloatArray | None = None,
        rows: tuple[slice, int] | None = None,
        allreduce: Any = None,
        scale: float | None = None,
        check: bool = True,
    ) -> float:
        """Fill ``self.g`` with the gradient of the batch's mean loss; returns the loss.

        Data-parallel training passes ``rows = (part, total)`` (the batch is rows
        ``part`` of a global batch of ``total`` rows, so random draws are made for the
        whole global batch), ``allreduce`` (sums across processes, for batch
        statistics) and ``scale`` (this shard's share of the global batch's weight: the
        loss gradient is scaled by it, so the shards' gradients add up to the global
        batch's). With ``check`` False a non-finite loss does not raise (every process
        must reach the collective sums of the backward pass; the caller checks).
        """
        net = self.nets[self.cur]
        loss_fn = net.loss
        ctx = self._ctx
        if ctx.rng is not rng or rows is not None or allreduce is not None:
            ctx = LayerContext(train=True, rng=rng, rows=rows, allreduce=allreduce)
            if rows is None and allreduce is None:
                self._ctx = ctx  # the same for every step of a fit
        logits, caches = forward_pass(net, X, ctx, self.workspaces)
        if X.shape[0] == 0 or scale == 0:
            # an empty shard of a data-parallel batch, or one with nothing counted (all
            # its positions ignored): it adds nothing to the global batch's loss
            value, d = 0.0, np.zeros_like(logits)
        else:
            value, d = loss_fn.value_and_grad(logits, y, w)
        if out is not None:
            out[...] = loss_fn.link(logits)
        if check and not math.isfinite(value):
            raise NonFinite("loss")
        if scale is not None:
            d *= d.dtype.type(scale)
        backward_pass(net, caches, d, self.grads, ctx, self.workspaces)
        return value

    def update(self) -> None:
        """Apply the optimizer to the gradient in ``self.g``. The optimizer turns the
        gradient buffer into the parameter change, in place; the updated parameters go
        to the other buffer (see __init__)."""
        t = self.step_count + 1
        lay = self.layout
        # non-trainable leaves: the gradient buffer holds their new values (running
        # statistics), which no transform sees; they go into the new parameters as is
        saved = [self.g[lo:hi].copy() for lo, hi in lay.state_slices] if lay.state_slices else []
        if saved:
            lay.zero_state(self.g)
        if self.chunks:
            self._optimize(self.chunks, t)
        else:
            if self.scratch.size != self.p.size:
                self.scratch = np.empty_like(self.p)
            ctx = Context.at(t, self.lr_scale, self.scratch)
            u = self.g
            for i, tr in enumerate(self.optimizer.transforms):
                if isinstance(tr, InPlace):
                    tr.apply(u, self.states[i], self.p, ctx)
                else:
                    u, self.states[i] = tr.update(u, self.states[i], self.p, ctx)
            if self.frozen is not None:
                np.copyto(u, 0, where=self.frozen)
            if not math.isfinite(float(u @ u)):
                raise NonFinite("gradient or update")
            np.add(self.p, u, out=self.pb[1 - self.cur])
        if saved:
            new = self.pb[1 - self.cur]
            for (lo, hi), v in zip(lay.state_slices, saved, strict=True):
                new[lo:hi] = v
        self.step_count = t
        self.cur = 1 - self.cur

    def _optimize(self, chunks: list[_Chunk], t: int) -> None:
        """Run the chain on each chunk and write the updated parameters into the other
        buffer. A non-finite change raises before the buffers swap."""
        transforms = self.optimizer.transforms
        cur = self.cur
        for c in chunks:
            ctx = Context.at(t, self.lr_scale, c.scratch)
            p_old = c.p[cur]
            for tr, st in zip(transforms, c.states, strict=True):
                tr.apply(c.u, st, p_old, ctx)  # type: ignore[attr-defined]
            if c.frozen is not None:
                np.copyto(c.u, 0, where=c.frozen)
            # A non-finite gradient always gives a non-finite change: one check covers both
            if not math.isfinite(float(c.u @ c.u)):
                raise NonFinite("gradient or update")
            np.add(p_old, c.u, out=c.p[1 - cur])


@attrs.frozen(eq=False)
class _Chunk:
    """Views of one cache-sized slice of the two parameter buffers, the change, the
    scratch array and the optimizer state."""

    p: tuple[FloatArray, FloatArray]
    u: FloatArray
    scratch: FloatArray
    frozen: Any
    states: list[Any]
