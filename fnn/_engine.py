"""The training step used by ``fnn.fit``: one forward/backward/update on a private
parameter buffer.

Purity is about what callers see. Inside a fit, the engine keeps the parameters in one
private, writable flat buffer and updates it in place; gradients are written into a
second preallocated buffer through per-layer views. Callers only ever receive fresh,
read-only networks (:meth:`Engine.params` copies the buffer). Dense and dropout layers
take a fast path; any other layer goes through its ``forward``/``backward`` methods.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from fnn import _scratch, tree
from fnn._types import FloatArray
from fnn.activations import Identity, ReLU
from fnn.layers.base import LayerCache
from fnn.layers.dense import Dense
from fnn.layers.dropout import Dropout
from fnn.network import Network
from fnn.optim import Context, InPlace, Optimizer, OptState, _frozen_array, _writable_copy

CHUNK_BYTES = 1 << 20
"""Bytes per array in one optimizer chunk: the best of 256 KiB to 16 MiB measured on a
2-core machine, for 235k (one chunk) and 6.3M parameters (1.5x faster than unchunked)."""


def _slice(x: Any, lo: int, hi: int) -> Any:
    return x[lo:hi] if isinstance(x, np.ndarray) and x.ndim == 1 else x


def _reopen(x: Any) -> Any:
    """Make an array this engine owns writable again (no copy)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x.flags.writeable = True
    return x


def _readonly_copy(x: Any) -> Any:
    if not isinstance(x, np.ndarray):
        return x
    c = np.array(x, copy=True)
    c.flags.writeable = False
    return c


class NonFinite(Exception):
    """Raised by :meth:`Engine.step` when the loss, gradient or update is not finite."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _offsets(params: Network) -> dict[str, tuple[int, tuple[int, ...]]]:
    out = {}
    pos = 0
    for path, x in tree.leaves_with_paths(params):
        out[path] = (pos, tuple(np.shape(x)))
        pos += int(np.size(x))
    return out


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
        flat = tree.ravel(params)
        p0 = _scratch.take(flat.shape, flat.dtype)
        np.copyto(p0, flat)
        self.pb: tuple[FloatArray, FloatArray] = (p0, _scratch.take(p0.shape, p0.dtype))
        self.cur = 0
        # every step writes the whole gradient before it is read: no zero fill needed
        self.g: FloatArray = _scratch.take(p0.shape, p0.dtype)
        # the optimizer's temporary: one chunk long when it runs chunk by chunk (set below)
        self.scratch: FloatArray = p0[:0]
        # the optimizer state, as private writable buffers for in-place transforms
        private = _reopen if own_state else _writable_copy
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
            size = max(1, CHUNK_BYTES // self.p.itemsize)
            self.scratch = np.empty(min(size, p0.size), dtype=p0.dtype)
            self.chunks = [
                self._chunk(lo, min(lo + size, self.p.size)) for lo in range(0, self.p.size, size)
            ]
        self.fast = all(isinstance(layer, Dense | Dropout) for layer in params.layers)
        self.views_by_buffer = (self._views(params, 0), self._views(params, 1))
        # the first layer with parameters needs no input gradient
        self.first = next(i for i, v in enumerate(self.views) if v is not None) if self.fast else -1
        # ReLU's floor per layer: a row of zeros for wide layers, where NumPy's
        # maximum(z, row) runs 2-3x faster than maximum(z, 0); the scalar for narrow ones
        self.zeros: list[Any] = [
            np.zeros(v[1].shape, v[1].dtype) if v is not None and v[1].size >= 64 else 0
            for v in self.views
        ]
        # per batch size: a forward output buffer and an input-gradient buffer per layer
        # and a column of ones. Products go through np.dot, which costs a microsecond
        # less per call than np.matmul on small arrays (the same BLAS call on large ones).
        self.buffers: dict[int, tuple[FloatArray, list[tuple[FloatArray, FloatArray] | None]]] = {}

    @property
    def p(self) -> FloatArray:
        """The current parameters (flat, private)."""
        return self.pb[self.cur]

    @property
    def views(self) -> list[tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None]:
        """Per layer: (W, b) views of the current parameters and (dW, db) views of the
        gradient buffer; None for layers without parameters."""
        return self.views_by_buffer[self.cur]

    def _views(
        self, params: Network, k: int
    ) -> list[tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None]:
        offs = _offsets(params)
        p = self.pb[k]
        out: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None] = []
        for i, layer in enumerate(params.layers):
            if isinstance(layer, Dense):
                (wo, ws), (bo, bs) = offs[f"layers.{i}.W"], offs[f"layers.{i}.b"]
                nw, nb = int(np.prod(ws)), int(np.prod(bs))
                out.append(
                    (
                        p[wo : wo + nw].reshape(ws),
                        p[bo : bo + nb],
                        self.g[wo : wo + nw].reshape(ws),
                        self.g[bo : bo + nb],
                    )
                )
            else:
                out.append(None)
        return out

    def _chunk(self, lo: int, hi: int) -> _Chunk:
        return _Chunk(
            p=(self.pb[0][lo:hi], self.pb[1][lo:hi]),
            u=self.g[lo:hi],
            scratch=self.scratch[: hi - lo],
            frozen=None if self.frozen is None else self.frozen[lo:hi],
            states=[tree.map(lambda a, lo=lo, hi=hi: _slice(a, lo, hi), st) for st in self.states],
        )

    def close(self, *, keep_scratch: bool = False) -> None:
        """Release the buffers; the engine is not used after this. ``keep_scratch``:
        the fit ended normally, so no caller holds any of the private buffers (a
        traceback's frames might): they are kept for the next fit (fnn._scratch)."""
        if keep_scratch:
            private = [b for b in (*self.pb, self.g) if b.size]  # not released params
            for _, bufs in self.buffers.values():
                private += [a for pair in bufs if pair is not None for a in pair]
            _scratch.keep(private)
        self.buffers.clear()

    @property
    def opt_state(self) -> OptState:
        """A fresh, read-only snapshot of the optimizer state."""
        return self._state(self.states, _readonly_copy)

    def release_state(self) -> OptState:
        """The current optimizer state as read-only values, without a copy: no step may
        follow (the parameters can still be read and released)."""
        states, self.states, self.chunks = self.states, [], []
        return self._state(states, _frozen_array)

    def _state(self, states: list[Any], leaf: Any) -> OptState:
        return OptState(
            step=self.step_count,
            lr_scale=self.lr_scale,
            states=tuple(tree.map(leaf, s) for s in states),
            trainable=self.trainable,
            optimizer=self.optimizer,
        )

    def params(self) -> Network:
        """A fresh, read-only network with the current parameters."""
        return tree.unravel(self.template, self.p.copy())

    def release_params(self) -> Network:
        """The current parameters as a read-only network, without a copy: the engine
        must not be used afterwards."""
        p = self.p
        # the spare buffer stays (for close); the handed-over one is replaced by an empty view
        self.pb = (p[:0], self.pb[1]) if self.cur == 0 else (self.pb[0], p[:0])
        return tree.unravel(self.template, p)

    def logits(self, X: FloatArray) -> FloatArray:
        """Inference logits (no dropout) with the current parameters."""
        h = X
        if not self.fast:
            net = tree.unravel(self.template, self.p)
            for layer in net.layers:
                h, _ = layer.forward(h, train=False, rng=None)
            return h
        for layer, v in zip(self.template.layers, self.views, strict=True):
            if v is not None:
                assert isinstance(layer, Dense)
                z = h @ v[0]
                z += v[1]
                h = layer.activation(z)
        return h

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
    ) -> float:
        """Fill ``self.g`` with the gradient of the batch's mean loss; returns the loss.

        ``rows = (part, total)`` says the batch is rows ``part`` of a global batch of
        ``total`` rows (data-parallel training): dropout masks are drawn for the whole
        global batch and sliced, so every shard uses the masks one process would.
        """
        loss_fn = self.template.loss
        if self.fast:
            logits, caches = self._forward_fast(X, rng, rows)
        else:
            net = tree.unravel(self.template, self.p)
            h = X
            generic: list[LayerCache] = []
            for layer in net.layers:
                h, c = layer.forward(h, train=True, rng=rng)
                generic.append(c)
            logits = h
        value, d = loss_fn.value_and_grad(logits, y, w)
        if out is not None:
            out[...] = loss_fn.link(logits)
        if not math.isfinite(value):
            raise NonFinite("loss")
        if self.fast:
            self._backward_fast(caches, d)
        else:
            grads = []
            for layer, c in zip(reversed(net.layers), reversed(generic), strict=True):
                g, d = layer.backward(c, d)
                grads.append(g)
            grad_net = Network(layers=tuple(reversed(grads)), loss=loss_fn)
            self.g[...] = tree.ravel(grad_net)
        return value

    def update(self) -> None:
        """Apply the optimizer to the gradient in ``self.g``. The optimizer turns the
        gradient buffer into the parameter change, in place; the updated parameters go
        to the other buffer (see __init__)."""
        t = self.step_count + 1
        self.step_count = t
        if self.chunks:
            self._optimize(self.chunks, t)
        else:
            if self.scratch.size != self.p.size:
                self.scratch = np.empty_like(self.p)
            ctx = Context(step=t, lr_scale=self.lr_scale, scratch=self.scratch)
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
        self.cur = 1 - self.cur

    def _optimize(self, chunks: list[_Chunk], t: int) -> None:
        """Run the chain on each chunk and write the updated parameters into the other
        buffer. A non-finite change raises before the buffers swap."""
        transforms = self.optimizer.transforms
        cur = self.cur
        for c in chunks:
            ctx = Context(step=t, lr_scale=self.lr_scale, scratch=c.scratch)
            p_old = c.p[cur]
            for tr, st in zip(transforms, c.states, strict=True):
                tr.apply(c.u, st, p_old, ctx)  # type: ignore[attr-defined]
            if c.frozen is not None:
                np.copyto(c.u, 0, where=c.frozen)
            # A non-finite gradient always gives a non-finite change: one check covers both
            if not math.isfinite(float(c.u @ c.u)):
                raise NonFinite("gradient or update")
            np.add(p_old, c.u, out=c.p[1 - cur])

    def _layer_buffers(
        self, n: int
    ) -> tuple[FloatArray, list[tuple[FloatArray, FloatArray] | None]]:
        """For a batch of ``n`` rows: a column of ones (n,) and, per layer with
        parameters, its output (n, n_out) and input-gradient (n, n_in) buffers."""
        got = self.buffers.get(n)
        if got is None:
            bufs: list[tuple[FloatArray, FloatArray] | None] = []
            for v in self.views:
                if v is None:
                    bufs.append(None)
                else:
                    W = v[0]
                    bufs.append(
                        (
                            _scratch.take((n, W.shape[1]), W.dtype),
                            _scratch.take((n, W.shape[0]), W.dtype),
                        )
                    )
            got = self.buffers[n] = (np.ones(n, self.p.dtype), bufs)
        return got

    def _forward_fast(
        self,
        X: FloatArray,
        rng: np.random.Generator | None,
        rows: tuple[slice, int] | None = None,
    ) -> tuple[FloatArray, list[Any]]:
        h = X
        caches: list[Any] = []
        _, bufs = self._layer_buffers(X.shape[0])
        for layer, v, buf, zero in zip(
            self.template.layers, self.views, bufs, self.zeros, strict=True
        ):
            if v is not None and buf is not None:
                assert isinstance(layer, Dense)
                z = np.dot(h, v[0], out=buf[0])
                z += v[1]
                act = layer.activation
                if isinstance(act, ReLU):
                    a = np.maximum(z, zero, out=z)  # in place: ReLU's vjp needs only a > 0
                elif isinstance(act, Identity):
                    a = z
                else:
                    a = act(z)
                caches.append((h, z, a))
                h = a
            else:
                assert isinstance(layer, Dropout)
                if layer.rate > 0:
                    if rng is None:
                        raise ValueError("rng is required for dropout in training")
                    if rows is None:
                        keep = rng.random(h.shape) >= layer.rate
                    else:
                        part, total = rows
                        keep = (rng.random((total, h.shape[1])) >= layer.rate)[part]
                    mask = keep.astype(h.dtype) * h.dtype.type(1.0 / (1.0 - layer.rate))
                    h = h * mask
                    caches.append(mask)
                else:
                    caches.append(None)
        return h, caches

    def _backward_fast(self, caches: list[Any], d: FloatArray) -> None:
        ones, bufs = self._layer_buffers(d.shape[0])
        for i in range(len(self.views) - 1, -1, -1):
            v = self.views[i]
            c = caches[i]
            layer = self.template.layers[i]
            if v is None:
                if c is not None:
                    d = d * c
                continue
            assert isinstance(layer, Dense)
            x, z, a = c
            act = layer.activation
            # ReLU in place: d is private to this step
            dz = np.multiply(d, a > 0, out=d) if isinstance(act, ReLU) else act.vjp(z, a, d)
            np.dot(x.T, dz, out=v[2])  # dW = x^T dz, written into the gradient buffer
            np.dot(ones, dz, out=v[3])  # db = 1^T dz, the sum over the batch
            if i > self.first:
                buf = bufs[i]
                assert buf is not None
                d = np.dot(dz, v[0].T, out=buf[1])  # dX, not needed below the first layer


@attrs.frozen(eq=False)
class _Chunk:
    """Views of one cache-sized slice of the two parameter buffers, the change, the
    scratch array and the optimizer state."""

    p: tuple[FloatArray, FloatArray]
    u: FloatArray
    scratch: FloatArray
    frozen: Any
    states: list[Any]
