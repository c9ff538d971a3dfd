"""Recurrent layers: :class:`SimpleRNN` (tanh), :class:`LSTM` and :class:`GRU`, with
PyTorch's conventions (``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` with ``batch_first=True``,
one layer, zero initial state), so weights and results compare one to one.

Input ``X`` is (n, T, features); the output is the last hidden state (n, units), or
every hidden state (n, T, units) with ``return_sequences=True``. Each layer holds

    W_ih (features, G * units),  W_hh (units, G * units),  b_ih, b_hh (G * units,)

in fnn's (n_in, n_out) orientation: PyTorch's ``weight_ih_l0`` is ``W_ih.T``,
``weight_hh_l0`` is ``W_hh.T``, and the biases are the same vectors. The G gate blocks
are in PyTorch's order. With ``xp_t = x_t W_ih + b_ih`` and ``hp_t = h_{t-1} W_hh + b_hh``
(blocks ``[a | b | ...]`` of ``units`` columns each), ``h_0 = c_0 = 0``:

- SimpleRNN (G = 1): ``h_t = tanh(xp_t + hp_t)``.
- LSTM (G = 4, gates i, f, g, o): ``[i | f | g | o] = [s | s | tanh | s](xp_t + hp_t)``
  with ``s`` the logistic sigmoid; ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``.
- GRU (G = 3, gates r, z, n): ``r = s(xp_r + hp_r)``, ``z = s(xp_z + hp_z)``,
  ``n = tanh(xp_n + r hp_n)`` (the reset gate applied after the hidden product),
  ``h_t = (1 - z) n + z h_{t-1}``.

The kernels project the input of all T steps in one matrix product before the loop
and make one product per step for the hidden part; backpropagation through time
collects the gradients of the gate pre-activations of every step, (T, n, G * units),
and forms the weight gradients and the input gradient in one product each:

    dW_ih = sum_t x_t^T dxp_t,   dW_hh = sum_t h_{t-1}^T dhp_t,   dX_t = dxp_t W_ih^T,

``db_ih`` and ``db_hh`` the sums of ``dxp`` and ``dhp`` (``dxp = dhp`` except in the
GRU's n block, where ``dhp_n = r dxp_n``). The sigmoid is computed as
``(1 + tanh(a / 2)) / 2`` (no overflow for any finite input), with the halving folded
exactly into copies of the weights.

Initialisation as PyTorch: every leaf uniform in ``[-1/sqrt(units), 1/sqrt(units)]``.

References: Elman 1990, "Finding Structure in Time"; Hochreiter & Schmidhuber 1997,
"Long Short-Term Memory"; Cho et al. 2014, "Learning Phrase Representations using
RNN Encoder-Decoder for Statistical Machine Translation".
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn._validation import check_int, float_dtype
from fnn.layers.base import Context, LayerBase, LayerCache, Workspace, config_size, register_layer
from fnn.tree import STATIC_META, readonly

__all__ = [
    "GRU",
    "LSTM",
    "GRUCache",
    "LSTMCache",
    "Recurrent",
    "SimpleRNN",
    "SimpleRNNCache",
    "sequence_output_shape",
]


def sequence_output_shape(
    kind: str,
    features: int | None,
    units: int,
    return_sequences: bool,
    input_shape: tuple[int, ...],
) -> tuple[int, ...]:
    """The per-sample output shape of a recurrent layer for ``input_shape`` (T,
    features): (units,), or (T, units) with ``return_sequences``. ValueError when the
    input is not a sequence of ``features`` (any number when None)."""
    if len(input_shape) != 2:
        raise ValueError(
            f"{kind} expects sequences of shape (steps, features), got samples of shape "
            f"{tuple(input_shape)}"
        )
    if features is not None and input_shape[1] != features:
        raise ValueError(
            f"{kind} expects {features} features per step but the input has "
            f"{input_shape[1]} (shape {tuple(input_shape)})"
        )
    return (input_shape[0], units) if return_sequences else (units,)


@attrs.frozen(eq=False)
class Recurrent(LayerBase):
    """What the recurrent layers share: the four leaves (and, with the same type, their
    gradients), the shapes, the configuration and the end of the backward pass.

    Attributes:
        W_ih: input weights (features, G * units), read-only.
        W_hh: hidden weights (units, G * units), read-only.
        b_ih: input bias (G * units,), read-only.
        b_hh: hidden bias (G * units,), read-only.
        return_sequences: output every hidden state (n, T, units) rather than the
            last one (n, units) (static).
    """

    W_ih: FloatArray = attrs.field(converter=readonly)
    W_hh: FloatArray = attrs.field(converter=readonly)
    b_ih: FloatArray = attrs.field(converter=readonly)
    b_hh: FloatArray = attrs.field(converter=readonly)
    return_sequences: bool = attrs.field(default=False, converter=bool, metadata=STATIC_META)

    GATES: ClassVar[int] = 1
    KIND: ClassVar[str] = "recurrent"

    def __attrs_post_init__(self) -> None:
        name = type(self).__name__
        if self.W_hh.ndim != 2 or self.W_hh.shape[0] < 1:
            raise ValueError(
                f"{name}: W_hh must have shape (units, {self.GATES} * units), got {self.W_hh.shape}"
            )
        u = self.W_hh.shape[0]
        gu = self.GATES * u
        if self.W_hh.shape != (u, gu):
            raise ValueError(f"{name}: W_hh must have shape ({u}, {gu}), got {self.W_hh.shape}")
        if self.W_ih.ndim != 2 or self.W_ih.shape[1] != gu or self.W_ih.shape[0] < 1:
            raise ValueError(
                f"{name}: W_ih must have shape (features, {gu}), got {self.W_ih.shape}"
            )
        for field in ("b_ih", "b_hh"):
            b = getattr(self, field)
            if b.shape != (gu,):
                raise ValueError(f"{name}: {field} must have shape ({gu},), got {b.shape}")
        for field in ("W_hh", "b_ih", "b_hh"):
            d = getattr(self, field).dtype
            if d != self.W_ih.dtype:
                raise ValueError(f"{name}: {field} has dtype {d} but W_ih has {self.W_ih.dtype}")

    @classmethod
    def create(
        cls,
        features: int,
        units: int,
        *,
        rng: np.random.Generator,
        return_sequences: bool = False,
        dtype: Any = np.float64,
    ) -> Self:
        """A new layer for ``features`` inputs per step and ``units`` hidden units,
        every leaf drawn uniformly from [-1/sqrt(units), 1/sqrt(units)] as PyTorch
        does (in its order: W_ih, W_hh, b_ih, b_hh)."""
        f = check_int(features, "features")
        u = check_int(units, "units")
        d = float_dtype(dtype)
        k = 1.0 / np.sqrt(u)
        gu = cls.GATES * u
        shapes = {"W_ih": (f, gu), "W_hh": (u, gu), "b_ih": (gu,), "b_hh": (gu,)}
        leaves = {name: rng.uniform(-k, k, shape).astype(d) for name, shape in shapes.items()}
        return cls(**leaves, return_sequences=return_sequences)

    @property
    def features(self) -> int:
        return int(self.W_ih.shape[0])

    @property
    def units(self) -> int:
        return int(self.W_hh.shape[0])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return sequence_output_shape(
            f"{{layer}} ({type(self).__name__})",
            self.features,
            self.units,
            self.return_sequences,
            input_shape,
        )

    def config(self) -> dict[str, object]:
        return {
            "kind": self.KIND,
            "features": self.features,
            "units": self.units,
            "return_sequences": self.return_sequences,
        }

    # --- helpers of the kernels --------------------------------------------------------

    def _scaled(self, ws: Workspace, name: str, a: FloatArray, sigmoid: FloatArray) -> FloatArray:
        """``a`` with the columns of the sigmoid gates halved (exact: a power of two)."""
        out = ws.empty(name, a.shape, a.dtype)
        np.multiply(a, sigmoid, out=out)
        return out

    def _gate_vectors(self, ws: Workspace, sigmoid_blocks: tuple[int, ...]) -> FloatArray:
        """(G * units,): 0.5 in the columns of the gates in ``sigmoid_blocks``, 1 else."""
        u = self.units
        v = ws.empty("gate_scale", (self.GATES * u,), self.W_ih.dtype)
        v.fill(1)
        for k in sigmoid_blocks:
            v[k * u : (k + 1) * u] = 0.5
        return v

    def _project(
        self, X: FloatArray, W: FloatArray, b: FloatArray, ws: Workspace
    ) -> tuple[FloatArray, FloatArray]:
        """``(xt, xp)``: ``X`` time-major (T, n, F), and ``xt W + b`` (T, n, G * units)
        for all steps in one product."""
        n, T, F = X.shape
        dt = self.W_ih.dtype
        xt = ws.empty("xt", (T, n, F), dt)
        np.copyto(xt, X.transpose(1, 0, 2))
        xp = ws.empty("gates", (T, n, W.shape[1]), dt)
        xp2 = xp.reshape(T * n, W.shape[1])
        np.dot(xt.reshape(T * n, F), W, out=xp2)
        xp2 += b
        return xt, xp

    def _output(self, h: FloatArray, ws: Workspace) -> FloatArray:
        """The layer's output from the hidden states ``h`` (T + 1, n, units)."""
        if self.return_sequences:
            out = ws.empty("out", (h.shape[1], h.shape[0] - 1, h.shape[2]), h.dtype)
            np.copyto(out, h[1:].transpose(1, 0, 2))
            return out
        last = ws.empty("out", h.shape[1:], h.dtype)
        np.copyto(last, h[-1])
        return last

    def _d_h_last(self, d_out: FloatArray, ws: Workspace, shape: tuple[int, int]) -> FloatArray:
        """The gradient reaching the last hidden state, in a fresh (n, units) array."""
        dh = ws.empty("dh", shape, self.W_ih.dtype)
        np.copyto(dh, d_out[:, -1] if self.return_sequences else d_out)
        return dh

    def _finish(
        self,
        xt: FloatArray,
        h: FloatArray,
        dxp: FloatArray,
        dhp: FloatArray,
        grads: Any,
        ws: Workspace,
        need_d_in: bool,
    ) -> FloatArray | None:
        """The weight gradients from the pre-activation gradients of every step, ``dxp``
        (input side) and ``dhp`` (hidden side), both (T, n, G * units), and ``d_in``."""
        T, n, F = xt.shape
        gu = dxp.shape[2]
        u = h.shape[2]
        dxp2 = dxp.reshape(T * n, gu)
        dhp2 = dhp.reshape(T * n, gu)
        ones = ws.ones("rows", T * n, dxp.dtype)
        np.dot(xt.reshape(T * n, F).T, dxp2, out=grads.W_ih)
        np.dot(ones, dxp2, out=grads.b_ih)
        # h_0 = 0: the first step adds nothing to dW_hh
        np.dot(h[1:T].reshape((T - 1) * n, u).T, dhp2[n:], out=grads.W_hh)
        np.dot(ones, dhp2, out=grads.b_hh)
        if not need_d_in:
            return None
        dxt = ws.empty("d_xt", (T, n, F), dxp.dtype)
        np.dot(dxp2, self.W_ih.T, out=dxt.reshape(T * n, F))
        d_in = ws.empty("d_in", (n, T, F), dxp.dtype)
        np.copyto(d_in, dxt.transpose(1, 0, 2))
        return d_in


# --- SimpleRNN ------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class SimpleRNNCache(LayerCache):
    """``xt`` the input time-major (T, n, features); ``h`` the hidden states
    (T + 1, n, units), ``h[0] = 0``."""

    xt: FloatArray
    h: FloatArray


@attrs.frozen(eq=False)
class SimpleRNN(Recurrent):
    """An Elman network, PyTorch's ``nn.RNN(nonlinearity="tanh")``:
    ``h_t = tanh(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)`` (see the module docstring)."""

    GATES: ClassVar[int] = 1
    KIND: ClassVar[str] = "simple_rnn"

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, SimpleRNNCache]:
        """``X`` (n, T, features) -> (n, units), or (n, T, units) with return_sequences."""
        n, T, _ = X.shape
        u = self.units
        dt = self.W_ih.dtype
        h = ws.empty("h", (T + 1, n, u), dt)
        h[0] = 0
        bias = ws.empty("bias", (u,), dt)
        np.add(self.b_ih, self.b_hh, out=bias)
        xt = ws.empty("xt", (T, n, X.shape[2]), dt)
        np.copyto(xt, X.transpose(1, 0, 2))
        # the pre-activations of all steps' inputs, written where the states go
        z = h[1:].reshape(T * n, u)
        np.dot(xt.reshape(T * n, X.shape[2]), self.W_ih, out=z)
        z += bias
        hp = ws.empty("hp", (n, u), dt)
        for t in range(T):
            a = h[t + 1]
            if t:
                np.dot(h[t], self.W_hh, out=hp)
                a += hp
            np.tanh(a, out=a)
        return self._output(h, ws), SimpleRNNCache(xt=xt, h=h)

    def backward_into(
        self,
        cache: SimpleRNNCache,
        d_out: FloatArray,
        grads: SimpleRNN,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Backpropagation through time: ``dz_t = dh_t (1 - h_t^2)``,
        ``dh_{t-1} = dz_t W_hh^T`` (+ the output's gradient at t - 1)."""
        h = cache.h
        T, n, u = h.shape[0] - 1, h.shape[1], h.shape[2]
        dt = h.dtype
        dz = ws.empty("d_gates", (T, n, u), dt)
        dh = self._d_h_last(d_out, ws, (n, u))
        for t in range(T - 1, -1, -1):
            d = dz[t]
            np.multiply(h[t + 1], h[t + 1], out=d)
            np.subtract(1, d, out=d)
            d *= dh
            if t:
                np.dot(d, self.W_hh.T, out=dh)
                if self.return_sequences:
                    dh += d_out[:, t - 1]
        return self._finish(cache.xt, h, dz, dz, grads, ws, need_d_in)


# --- LSTM --------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class LSTMCache(LayerCache):
    """``xt`` the input time-major (T, n, features); ``gates`` the activated gates
    [i | f | g | o] (T, n, 4 units); ``h`` and ``c`` the hidden and cell states
    (T + 1, n, units), zero at 0; ``tanh_c`` = tanh(c_t) (T, n, units)."""

    xt: FloatArray
    gates: FloatArray
    h: FloatArray
    c: FloatArray
    tanh_c: FloatArray


@attrs.frozen(eq=False)
class LSTM(Recurrent):
    """A long short-term memory layer, PyTorch's ``nn.LSTM`` (gates i, f, g, o; see the
    module docstring)."""

    GATES: ClassVar[int] = 4
    KIND: ClassVar[str] = "lstm"

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, LSTMCache]:
        """``X`` (n, T, features) -> (n, units), or (n, T, units) with return_sequences."""
        n, T, _ = X.shape
        u = self.units
        dt = self.W_ih.dtype
        half = self._gate_vectors(ws, (0, 1, 3))  # 0.5 for i, f, o; 1 for g
        shift = ws.empty("gate_shift", half.shape, dt)
        np.subtract(1, half, out=shift)  # sigmoid(a) = 0.5 tanh(a / 2) + 0.5; g: tanh(a)
        bias = ws.empty("bias", half.shape, dt)
        np.add(self.b_ih, self.b_hh, out=bias)
        bias *= half
        xt, gates = self._project(X, self._scaled(ws, "W_ih_s", self.W_ih, half), bias, ws)
        W_hh = self._scaled(ws, "W_hh_s", self.W_hh, half)
        h = ws.empty("h", (T + 1, n, u), dt)
        c = ws.empty("c", (T + 1, n, u), dt)
        tanh_c = ws.empty("tanh_c", (T, n, u), dt)
        h[0] = 0
        c[0] = 0
        hp = ws.empty("hp", (n, 4 * u), dt)
        ig = ws.empty("ig", (n, u), dt)
        for t in range(T):
            a = gates[t]
            if t:
                np.dot(h[t], W_hh, out=hp)
                a += hp
            np.tanh(a, out=a)
            a *= half
            a += shift
            np.multiply(a[:, u : 2 * u], c[t], out=c[t + 1])
            np.multiply(a[:, :u], a[:, 2 * u : 3 * u], out=ig)
            c[t + 1] += ig
            np.tanh(c[t + 1], out=tanh_c[t])
            np.multiply(a[:, 3 * u :], tanh_c[t], out=h[t + 1])
        cache = LSTMCache(xt=xt, gates=gates, h=h, c=c, tanh_c=tanh_c)
        return self._output(h, ws), cache

    def backward_into(
        self,
        cache: LSTMCache,
        d_out: FloatArray,
        grads: LSTM,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Backpropagation through time, the cell gradient ``dc`` carried back through
        the forget gate: ``dc_t = dc_{t+1} f_{t+1} + dh_t o_t (1 - tanh(c_t)^2)``."""
        gates, c, tanh_c = cache.gates, cache.c, cache.tanh_c
        T, n, u = tanh_c.shape
        dt = gates.dtype
        da = ws.empty("d_gates", gates.shape, dt)
        dh = self._d_h_last(d_out, ws, (n, u))
        dc = ws.empty("dc", (n, u), dt)
        dc.fill(0)
        tmp = ws.empty("tmp", (n, u), dt)
        deriv = ws.empty("deriv", (n, 4 * u), dt)
        for t in range(T - 1, -1, -1):
            a, d = gates[t], da[t]
            i, f, g, o = a[:, :u], a[:, u : 2 * u], a[:, 2 * u : 3 * u], a[:, 3 * u :]
            tc = tanh_c[t]
            # through h = o tanh(c)
            np.multiply(dh, tc, out=d[:, 3 * u :])
            np.multiply(tc, tc, out=tmp)
            np.subtract(1, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp
            # through c = f c_prev + i g
            np.multiply(dc, g, out=d[:, :u])
            np.multiply(dc, c[t], out=d[:, u : 2 * u])
            np.multiply(dc, i, out=d[:, 2 * u : 3 * u])
            dc *= f
            # through the activations: s' = s (1 - s), tanh' = 1 - g^2
            np.subtract(1, a, out=deriv)
            deriv *= a
            dg = deriv[:, 2 * u : 3 * u]
            np.multiply(g, g, out=dg)
            np.subtract(1, dg, out=dg)
            d *= deriv
            if t:
                np.dot(d, self.W_hh.T, out=dh)
                if self.return_sequences:
                    dh += d_out[:, t - 1]
        return self._finish(cache.xt, cache.h, da, da, grads, ws, need_d_in)


# --- GRU ------------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class GRUCache(LayerCache):
    """``xt`` the input time-major (T, n, features); ``gates`` the activated gates
    [r | z | n] (T, n, 3 units); ``h`` the hidden states (T + 1, n, units), ``h[0] =
    0``; ``hn`` the hidden part of the candidate, ``h_{t-1} W_hn + b_hn`` (T, n, units)."""

    xt: FloatArray
    gates: FloatArray
    h: FloatArray
    hn: FloatArray


@attrs.frozen(eq=False)
class GRU(Recurrent):
    """A gated recurrent unit layer, PyTorch's ``nn.GRU`` (gates r, z, n, the reset
    gate applied after the hidden product; see the module docstring)."""

    GATES: ClassVar[int] = 3
    KIND: ClassVar[str] = "gru"

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, GRUCache]:
        """``X`` (n, T, features) -> (n, units), or (n, T, units) with return_sequences."""
        n, T, _ = X.shape
        u = self.units
        dt = self.W_ih.dtype
        half = self._gate_vectors(ws, (0, 1))  # 0.5 for r and z, 1 for n
        b_ih = self._scaled(ws, "b_ih_s", self.b_ih, half)
        xt, gates = self._project(X, self._scaled(ws, "W_ih_s", self.W_ih, half), b_ih, ws)
        W_hh = self._scaled(ws, "W_hh_s", self.W_hh, half)
        b_hh = self._scaled(ws, "b_hh_s", self.b_hh, half)
        h = ws.empty("h", (T + 1, n, u), dt)
        h[0] = 0
        hn = ws.empty("hn", (T, n, u), dt)
        hp = ws.empty("hp", (n, 3 * u), dt)
        for t in range(T):
            a = gates[t]
            if t:
                np.dot(h[t], W_hh, out=hp)
                hp += b_hh
            else:
                hp[...] = b_hh
            rz = a[:, : 2 * u]
            rz += hp[:, : 2 * u]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            np.copyto(hn[t], hp[:, 2 * u :])
            cand = a[:, 2 * u :]
            np.multiply(a[:, :u], hn[t], out=hp[:, 2 * u :])
            cand += hp[:, 2 * u :]
            np.tanh(cand, out=cand)
            # h_t = n + z (h_{t-1} - n)
            np.subtract(h[t], cand, out=h[t + 1])
            h[t + 1] *= a[:, u : 2 * u]
            h[t + 1] += cand
        return self._output(h, ws), GRUCache(xt=xt, gates=gates, h=h, hn=hn)

    def backward_into(
        self,
        cache: GRUCache,
        d_out: FloatArray,
        grads: GRU,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Backpropagation through time: with ``dn = dh (1 - z) (1 - n^2)`` the
        candidate's pre-activation gradient, ``dz = dh (h_{t-1} - n) z (1 - z)`` and
        ``dr = dn hn r (1 - r)``, the input side gets [dr | dz | dn], the hidden side
        [dr | dz | r dn], and ``dh_{t-1} = dh z + [dr | dz | r dn] W_hh^T``."""
        gates, h, hn = cache.gates, cache.h, cache.hn
        T, n, u = hn.shape
        dt = gates.dtype
        dxp = ws.empty("d_gates", gates.shape, dt)
        dhp = ws.empty("d_gates_h", gates.shape, dt)
        dh = self._d_h_last(d_out, ws, (n, u))
        tmp = ws.empty("tmp", (n, u), dt)
        tmp2 = ws.empty("tmp2", (n, u), dt)
        back = ws.empty("back", (n, u), dt)
        for t in range(T - 1, -1, -1):
            a, dx, dhh = gates[t], dxp[t], dhp[t]
            r, z, cand = a[:, :u], a[:, u : 2 * u], a[:, 2 * u :]
            dr, dz, dn = dx[:, :u], dx[:, u : 2 * u], dx[:, 2 * u :]
            # the candidate: dh (1 - z) (1 - n^2)
            np.subtract(1, z, out=tmp)
            tmp *= dh
            np.multiply(cand, cand, out=tmp2)
            np.subtract(1, tmp2, out=tmp2)
            np.multiply(tmp, tmp2, out=dn)
            # the update gate: dh (h_{t-1} - n) z (1 - z)
            np.subtract(h[t], cand, out=tmp)
            tmp *= dh
            np.subtract(1, z, out=tmp2)
            tmp2 *= z
            np.multiply(tmp, tmp2, out=dz)
            # the reset gate: dn hn r (1 - r)
            np.multiply(dn, hn[t], out=tmp)
            np.subtract(1, r, out=tmp2)
            tmp2 *= r
            np.multiply(tmp, tmp2, out=dr)
            np.copyto(dhh[:, : 2 * u], dx[:, : 2 * u])
            np.multiply(dn, r, out=dhh[:, 2 * u :])
            if t:
                np.dot(dhh, self.W_hh.T, out=back)
                dh *= z
                dh += back
                if self.return_sequences:
                    dh += d_out[:, t - 1]
        return self._finish(cache.xt, h, dxp, dhp, grads, ws, need_d_in)


# --- registration -------------------------------------------------------------------------


def _shapes(gates: int) -> Any:
    def shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        f, u = config_size(cfg, "features"), config_size(cfg, "units")
        return {
            "W_ih": (f, gates * u),
            "W_hh": (u, gates * u),
            "b_ih": (gates * u,),
            "b_hh": (gates * u,),
        }

    return shapes


def _build(cls: type[Recurrent]) -> Any:
    def build(cfg: dict[str, Any], a: dict[str, Any]) -> Recurrent:
        seq = cfg.get("return_sequences", False)
        if not isinstance(seq, bool):
            raise ValueError(f"return_sequences must be true or false, got {seq!r}")
        return cls(
            W_ih=a["W_ih"], W_hh=a["W_hh"], b_ih=a["b_ih"], b_hh=a["b_hh"], return_sequences=seq
        )

    return build


def _example(cls: type[Recurrent], return_sequences: bool) -> Any:
    def example(
        rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> tuple[Recurrent, tuple[int, ...]]:
        features, units, steps = 3, 4, 3
        # leaves a little larger than the initialisation's (0.5 for 4 units), so that
        # the gates are neither saturated nor all near one half
        shapes = _shapes(cls.GATES)({"features": features, "units": units})
        leaves = {k: rng.uniform(-0.7, 0.7, s).astype(dtype) for k, s in shapes.items()}
        return cls(**leaves, return_sequences=return_sequences), (steps, features)

    return example


def _shape(kind: str) -> Any:
    def shape(s: tuple[int, ...], *, units: int, return_sequences: bool = False) -> tuple[int, ...]:
        return sequence_output_shape(kind, None, units, return_sequences, s)

    return shape


def _create(cls: type[Recurrent]) -> Any:
    """The kind's ``create``: a layer on sequences (T, features), sized from them."""

    def create(
        s: tuple[int, ...],
        *,
        rng: np.random.Generator,
        dtype: Any,
        units: int,
        return_sequences: bool = False,
    ) -> Recurrent:
        sequence_output_shape(cls.KIND, None, units, return_sequences, s)
        return cls.create(s[1], units, rng=rng, return_sequences=return_sequences, dtype=dtype)

    return create


for _cls, _seq in ((SimpleRNN, True), (LSTM, False), (GRU, True)):
    register_layer(
        _cls.KIND,
        _cls,
        build=_build(_cls),
        example=_example(_cls, _seq),
        shapes=_shapes(_cls.GATES),
        create=_create(_cls),
        shape=_shape(_cls.KIND),
    )
