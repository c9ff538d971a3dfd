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

from typing import Any

import numpy as np

from fnn import _scratch, tree
from fnn._diverged import NonFinite
from fnn._types import FloatArray
from fnn.layers.base import TRAINING, Kept
from fnn.layers.base import Context as LayerContext
from fnn.network import Network, batch_gradient, from_flat, gradient_skip, logits_of
from fnn.optim._arrays import frozen_array, writable_copy
from fnn.optim.base import ChainRunner, InPlace
from fnn.optim.state import Optimizer, OptState
from fnn.optim.transforms import unused_gradient

__all__ = ["Engine", "NonFinite"]


def _reopen(x: Any) -> Any:
    """Make an array this engine owns writable again (no copy)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        if isinstance(x.base, np.ndarray):
            x.base.flags.writeable = True  # a sealed view: its private owner first
        x.flags.writeable = True
    return x


def _readonly_copy(x: Any) -> Any:
    return tree.read_only(x, copy=True)  # a view of a read-only owner: its flag cannot be set again


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
        # the gradients no update reads (frozen leaves) are not computed
        self.skip = gradient_skip(params, unused_gradient(opt_state))
        # The optimizer runs through two runners, one per direction between the two
        # parameter buffers (their chunk views are built once; the state is shared).
        keep = lay.state_slices
        self.runners = tuple(
            ChainRunner(optimizer.transforms, self.states, a, b, self.g, self.frozen, keep)
            for a, b in ((self.pb[0], self.pb[1]), (self.pb[1], self.pb[0]))
        )

    @property
    def p(self) -> FloatArray:
        """The current parameters (flat, private)."""
        return self.pb[self.cur]

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
        states, self.states, self.runners = self.states, [], ()
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
        ctx = self._ctx
        if ctx.rng is not rng or rows is not None or allreduce is not None:
            ctx = LayerContext(train=True, rng=rng, rows=rows, allreduce=allreduce)
            if rows is None and allreduce is None:
                self._ctx = ctx  # the same for every step of a fit
        net = self.nets[self.cur]
        return batch_gradient(
            net,
            X,
            y,
            w,
            ctx,
            self.workspaces,
            self.grads,
            out=out,
            scale=scale,
            check=check,
            skip=self.skip,
        )

    def update(self) -> None:
        """Apply the optimizer to the gradient in ``self.g``. The optimizer turns the
        gradient buffer into the parameter change, in place; the updated parameters go
        to the other buffer (see __init__)."""
        t = self.step_count + 1
        self.runners[self.cur](t, self.lr_scale, check=True)
        self.step_count = t
        self.cur = 1 - self.cur
