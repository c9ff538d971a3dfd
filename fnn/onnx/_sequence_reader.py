"""What ONNX's sequence operators and patterns become: embeddings (``Gather``), the
recurrent operators (``RNN``, ``LSTM``, ``GRU``) and the last step of their sequence, a
learned positional embedding (``X + P[:T]``) and multi-head self-attention written out
as :func:`fnn.onnx.export` writes it (products, a softmax and an optional causal mask)."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
from typing import Any, Final

import attrs
import numpy as np
import onnx

from fnn.layers.attention import MultiHeadAttention
from fnn.layers.dense import Dense
from fnn.layers.embedding import Embedding
from fnn.layers.positional_embedding import PositionalEmbedding
from fnn.layers.recurrent import GRU, LSTM, Recurrent, SimpleRNN
from fnn.onnx._common import GATE_ORDER, onnx_gates
from fnn.onnx._fold import BATCH_SIZES, Filled, ints
from fnn.onnx._layer_reader import LayerReader
from fnn.onnx._model_reader import Val

RECURRENT: Final[dict[str, tuple[type[Recurrent], tuple[str, ...]]]] = {
    "RNN": (SimpleRNN, ("Tanh",)),
    "LSTM": (LSTM, ("Sigmoid", "Tanh", "Tanh")),
    "GRU": (GRU, ("Sigmoid", "Tanh")),
}
"""ONNX's recurrent operators: the fnn layer and PyTorch's activations."""


@attrs.frozen(eq=False)
class AttentionCore:
    """Attention read up to its output projection: the input projection (``W_in``,
    ``b_in``), the heads and the mask; the next dense layer completes it."""

    W_in: np.ndarray[Any, Any]
    b_in: np.ndarray[Any, Any] | None
    heads: int
    causal: bool


class SequenceReader(LayerReader):
    """A :class:`~fnn.onnx._layer_reader.LayerReader` that also reads sequence layers."""

    def rnn(self, node: onnx.NodeProto, val: Val) -> Val:
        """The fnn recurrent layer of an RNN, LSTM or GRU node (one direction, PyTorch's
        activations) on a time-major sequence; its output the one of Y and Y_h the graph
        reads (see :meth:`segments`: the other is unused)."""
        op = node.op_type
        a = self.attrs_of(node)
        cls, acts = RECURRENT[op]
        if val.layout != "tm":
            raise self.node_error(node, "reads a sequence that is not (T, batch, features)")
        if str(a.get("direction", "forward")) != "forward" or int(a.get("layout", 0)):
            raise self.node_error(node, "only one forward direction, time-major")
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in a.get("activations", acts)]
        if names != list(acts) or "clip" in a:
            raise self.node_error(node, f"only {op} with activations {list(acts)}, no clip")
        reset_after = int(a.get("linear_before_reset", 0))
        if int(a.get("input_forget", 0)) or reset_after != (op == "GRU"):
            raise self.node_error(node, "only PyTorch's form (GRU: linear_before_reset=1)")
        if any(i for i in node.input[4:5]) or any(i for i in node.input[7:]):
            raise self.node_error(node, "sequence lengths and peepholes are not supported")
        W, R = self.const(node, 1, "W"), self.const(node, 2, "R")
        assert W is not None and R is not None
        G = cls.GATES
        u = int(a.get("hidden_size", R.shape[-1]))
        F = val.shape[-1]
        if W.shape != (1, G * u, F) or R.shape != (1, G * u, u):
            raise self.node_error(
                node, f"W {W.shape} and R {R.shape} do not fit {G} gates of {u} units on "
                f"{F} features"
            )  # fmt: skip
        B = self.const(node, 3, "B")
        B = np.zeros((1, 2 * G * u)) if B is None else B
        if B.shape != (1, 2 * G * u):
            raise self.node_error(node, f"B has shape {B.shape}, not (1, {2 * G * u})")
        for k in (5, 6):  # initial_h, initial_c
            if k < len(node.input) and node.input[k]:
                self.zero_state(node, node.input[k], u)
        back = tuple(int(k) for k in np.argsort(GATE_ORDER[cls.KIND]))  # fnn's blocks from ONNX's
        used = [k for k, o in enumerate(node.output) if o and self.uses.get(o)]
        if used not in ([0], [1]):
            raise self.node_error(node, "only one of Y and Y_h may be read (Y_c is not)")
        seq = used == [0]
        self.ops.append(
            cls(
                W_ih=onnx_gates(W[0].T, back),
                W_hh=onnx_gates(R[0].T, back),
                b_ih=onnx_gates(B[0, : G * u], back),
                b_hh=onnx_gates(B[0, G * u :], back),
                return_sequences=seq,
            )
        )
        return Val((val.shape[0], u), "tm4") if seq else Val((u,), "h")

    def zero_state(self, node: onnx.NodeProto, name: str, units: int) -> None:
        """The initial state ``name`` of a recurrent operator must be zeros of shape
        (1, batch, units), computed from the shapes (as PyTorch's exporters write it)."""
        for batch in BATCH_SIZES:
            v = self.shape_value(name, batch)
            if not isinstance(v, Filled) or v.value != 0 or v.shape != (1, batch, units):
                raise self.node_error(node, "only a zero initial state is supported")

    def op_RNN(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.rnn(node, val)

    def op_LSTM(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.rnn(node, val)

    def op_GRU(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.rnn(node, val)

    def op_Gather(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        """An embedding (the table constant, token ids from the input), or the last
        step of the sequence a recurrent layer gives (``y[:, -1]``)."""
        k = self.runtime_input(node)
        axis = int(a.get("axis", 0))
        if k == 1 and val.layout == "ids" and axis == 0:
            W = self.const(node, 0, "the embedding table")
            assert W is not None
            if W.ndim != 2:
                raise self.node_error(node, f"the table must be 2-D, got shape {W.shape}")
            self.ops.append(Embedding(W=W))
            return Val((val.shape[0], int(W.shape[1])))
        index = self.const(node, 1, "the index", weight=False)
        last: Any = self.ops[-1] if self.ops else None
        if (
            k == 0
            and index is not None
            and index.ndim == 0
            and val.layout == "cl"
            and len(val.shape) == 2
            and axis % 3 == 1
            and int(index) in (-1, val.shape[0] - 1)
            and isinstance(last, Recurrent)
            and last.return_sequences
        ):
            self.ops[-1] = attrs.evolve(last, return_sequences=False)
            return Val(val.shape[1:])
        raise self.node_error(
            node, "only an embedding, or the last step of a recurrent layer's sequence"
        )

    def derived_add(self, node: onnx.NodeProto, name: str, val: Val) -> Val:
        """A learned positional embedding, as :func:`fnn.onnx.export` writes it: the
        layer's input plus ``Slice(P, [0], Shape(x)[1:2], [0])``, the first T rows of
        the constant table P (max_len, d)."""
        sl = self.derived[name]
        ins = list(sl.input) + [""] * (5 - len(sl.input))
        P = self.consts.get(ins[0])
        steps = self.derived.get(ins[2])
        zero = [self.consts.get(ins[k]) for k in (1, 3)]
        ok = (
            sl.op_type == "Slice"
            and P is not None
            and P.ndim == 2
            and all(z is not None and ints(z) == [0] for z in zero)
            and (not ins[4] or ints(self.consts.get(ins[4], [0])) == [1])
            and steps is not None
            and steps.op_type == "Shape"
            and list(steps.input) == [self.cur]
            and self.attrs_of(steps) == {"start": 1, "end": 2}
            and val.layout == "cl"
            and len(val.shape) == 2
        )
        if not ok or P is None:
            raise self.node_error(node, "adds a value computed from shapes that is not P[:T]")
        self.check_type(node, ins[0])
        if P.shape[1] != val.shape[1]:
            raise self.node_error(
                node, f"adds a table of shape {P.shape} to {val.shape[1]} features"
            )
        self.ops.append(PositionalEmbedding(P=P))
        return val

    def pattern(self, seg: list[onnx.NodeProto], val: Val) -> Val | None:
        """Multi-head self-attention after its input projection (the dense layer read
        just before), as :func:`fnn.onnx.export` writes it, recognised node by node:
        ``Reshape`` to (n, T, 3, h, d_h), ``Transpose`` to (3, n, h, T, d_h), ``Gather``
        of Q, K and V, ``Q K^T`` scaled by exactly ``1/sqrt(d_h)`` (the model's dtype),
        the causal mask (``Trilu`` of -inf over (T, T)) or none, ``Softmax`` over the
        last axis, the product with V, and the heads put side by side (n, T, d)."""
        if val.layout == "tm":
            return self.unrolled_rnn(seg, val)
        prev = self.ops[-1] if self.ops else None
        if (
            not isinstance(prev, Dense)
            or prev.activation.name not in ("identity", "linear")
            or val.layout != "cl"
            or len(val.shape) != 2
        ):
            return None
        users: dict[str, list[onnx.NodeProto]] = {}
        for n in seg:
            for i in dict.fromkeys(n.input):
                users.setdefault(i, []).append(n)
        seen: list[onnx.NodeProto] = []

        def next_node(name: str, op: str, **attributes: Any) -> onnx.NodeProto | None:
            found = users.get(name, [])
            if len(found) != 1 or found[0].op_type != op:
                return None
            n = found[0]
            a = self.attrs_of(n)
            if any(a.get(k) != v for k, v in attributes.items()):
                return None
            seen.append(n)
            return n

        def const_of(n: onnx.NodeProto, k: int) -> np.ndarray[Any, Any] | None:
            return self.consts.get(n.input[k]) if len(n.input) > k else None

        d3 = val.shape[1]
        d = d3 // 3
        r1 = next_node(self.cur, "Reshape")
        target = None if r1 is None else const_of(r1, 1)
        if r1 is None or target is None or d3 % 3 or len(ints(target)) != 5:
            return None
        h, dh = ints(target)[3:]
        if ints(target)[:3] != [0, 0, 3] or h < 1 or h * dh != d:
            return None
        t1 = next_node(r1.output[0], "Transpose", perm=[2, 0, 3, 1, 4])
        if t1 is None:
            return None
        qkv: dict[int, str] = {}
        for g in users.get(t1.output[0], []):
            index = const_of(g, 1)
            if g.op_type != "Gather" or index is None or index.ndim != 0:
                return None
            if self.attrs_of(g).get("axis", 0) != 0 or int(index) in qkv:
                return None
            qkv[int(index)] = g.output[0]
            seen.append(g)
        if sorted(qkv) != [0, 1, 2]:
            return None
        kt = next_node(qkv[1], "Transpose", perm=[0, 1, 3, 2])
        s = next_node(qkv[0], "MatMul")
        if kt is None or s is None or list(s.input) != [qkv[0], kt.output[0]]:
            return None
        if users.get(kt.output[0]) != [s]:
            return None
        m = next_node(s.output[0], "Mul")
        scale = None if m is None else self.consts.get(m.input[1])
        want = float(self.dtype.type(1.0 / math.sqrt(dh)))
        if m is None or scale is None or scale.size != 1 or float(scale.reshape(-1)[0]) != want:
            return None
        self.check_type(m, m.input[1])
        scores = m.output[0]
        add = next_node(scores, "Add")
        causal = add is not None
        if add is not None:
            if add.input[0] != scores or not self.causal_mask(add.input[1]):
                return None
            scores = add.output[0]
        sm = next_node(scores, "Softmax")
        if sm is None or self.attrs_of(sm).get("axis", -1) not in (-1, 3):
            return None
        o = next_node(sm.output[0], "MatMul")
        if o is None or list(o.input) != [sm.output[0], qkv[2]] or users.get(qkv[2]) != [o]:
            return None
        t2 = next_node(o.output[0], "Transpose", perm=[0, 2, 1, 3])
        r2 = None if t2 is None else next_node(t2.output[0], "Reshape")
        target = None if r2 is None else const_of(r2, 1)
        if r2 is None or target is None or ints(target) != [0, 0, d] or len(seen) != len(seg):
            return None
        if any(int(self.attrs_of(n).get("allowzero", 0)) for n in (r1, r2)):
            return None
        self.ops[-1] = AttentionCore(W_in=prev.W, b_in=prev.b, heads=h, causal=causal)
        return Val((val.shape[0], d))

    def causal_mask(self, name: str) -> bool:
        """Whether ``name`` is the causal mask :func:`fnn.onnx.export` writes: ``Trilu``
        (upper, k = 1) of a (T, T) matrix of -inf made from the sequence's length."""
        tri = self.derived.get(name)
        if tri is None or tri.op_type != "Trilu" or self.attrs_of(tri).get("upper") != 1:
            return False
        k = self.consts.get(tri.input[1]) if len(tri.input) > 1 else None
        if k is None or k.size != 1 or int(k.reshape(-1)[0]) != 1:
            return False
        full = self.derived.get(tri.input[0])
        if full is None or full.op_type != "ConstantOfShape":
            return False
        T = self.seen[self.cur].shape[0]
        for batch in BATCH_SIZES:
            v = self.shape_value(full.output[0], batch)
            if not isinstance(v, Filled) or v.value != -math.inf or v.shape != (T, T):
                return False
        return True

    def dense(self, node: onnx.NodeProto, W: Any, b: Any, val: Val) -> Val:
        """A dense layer, or the output projection that completes attention."""
        core = self.ops[-1] if self.ops else None
        if not isinstance(core, AttentionCore):
            return super().dense(node, W, b, val)
        d = val.shape[-1]
        if W.shape != (d, d) or len(val.shape) != 2:
            raise self.node_error(node, f"attention's output projection must be ({d}, {d})")
        self.ops[-1] = MultiHeadAttention(
            W_in=core.W_in, b_in=core.b_in, W_out=W, b_out=b, heads=core.heads, causal=core.causal
        )
        self.bias_field = "b_out"
        return val

    def read_chain(
        self, chain: list[onnx.NodeProto], start: str, end: str, val: Val, depth: int
    ) -> Val:
        out = super().read_chain(chain, start, end, val, depth)
        if self.ops and isinstance(self.ops[-1], AttentionCore):
            raise self.bad(f"attention without its output projection before {end!r}")
        return out

    def unrolled_rnn(self, seg: list[onnx.NodeProto], val: Val) -> Val | None:
        """A tanh RNN written out step by step (as PyTorch's dynamo exporter writes
        ``nn.RNN``), after the input projection (the dense layer read just before, on
        the time-major sequence A (T, n, u)): ``h_t = tanh(A[t] + h_{t-1} R + c)`` from
        zeros, the same R and c at every step, its T states concatenated in order on
        the time axis. Recognised node by node on symbolic terms, never by values."""
        prev = self.ops[-1] if self.ops else None
        T, u = val.shape
        if not isinstance(prev, Dense) or prev.activation.name not in ("identity", "linear"):
            return None
        if len(seg) < 3 or seg[-1].op_type != "Concat":
            return None
        n = BATCH_SIZES[0]
        env: dict[str, Step] = {self.cur: Step("A", -1, (T, n, u))}
        weights: dict[str, Any] = {}  # the recurrence's R and c, the same at every step

        def term(name: str) -> Step | None:
            if name in env:
                return env[name]
            node = self.derived.get(name)
            if node is not None and node.op_type in ("MatMul", "Add"):
                return self.step(node, [term(i) for i in node.input], env, weights)
            if node is not None:
                v = self.shape_value(name, n)
                if isinstance(v, Filled) and v.value == 0 and v.shape in ((1, n, u), (n, u)):
                    return Step("h", 0, v.shape)  # the zero initial state
            return None

        for node in seg[:-1]:
            out = self.step(node, [term(i) for i in node.input], env, weights)
            if out is None:
                return None
            env[node.output[0]] = out
        cat = seg[-1]
        parts = [env.get(i) for i in cat.input]
        if int(self.attrs_of(cat).get("axis", 0)) != 0 or len(parts) != T:
            return None
        if parts != [Step("h", t + 1, (1, n, u)) for t in range(T)] or "R" not in weights:
            return None
        if len(weights["forms"]) != 1:
            return None
        R, c = weights["R"], weights.get("c", np.zeros(u))
        self.ops[-1] = SimpleRNN(W_ih=prev.W, W_hh=R, b_ih=prev.b, b_hh=c, return_sequences=True)
        return Val((T, u), "tm")

    def step(
        self,
        node: onnx.NodeProto,
        args: list[Step | None],
        env: dict[str, Step],
        weights: dict[str, Any],
    ) -> Step | None:
        """The term one node of an unrolled RNN gives (see :meth:`unrolled_rnn`), or
        None if it is none of its forms."""
        op = node.op_type
        a = self.attrs_of(node)
        x = args[0] if args else None
        consts = [self.consts.get(i) for i in node.input]
        if op in ("Slice", "Gather", "Squeeze", "Unsqueeze") and x is not None:
            return x.moved(op, a, consts)
        if op == "MatMul" and x is not None and x.kind == "h" and consts[1] is not None:
            R = consts[1]
            if R.shape != (x.shape[-1], x.shape[-1]) or not self.same(weights, "R", R, node, 1):
                return None
            return Step("hR", x.t, x.shape)
        if op == "Add" and len(args) == 2:
            k = 0 if args[0] is not None and args[0].kind in ("hR", "hRc") else 1
            lin, other = args[k], args[1 - k]
            if lin is None or lin.kind not in ("hR", "hRc"):
                return None
            bias = consts[1 - k]
            if lin.kind == "hR" and other is None and bias is not None:
                c = bias.reshape(-1)
                if c.shape != (lin.shape[-1],) or not self.same(weights, "c", c, node, 1 - k):
                    return None
                return Step("hRc", lin.t, lin.shape)
            if other is not None and other.kind == "x" and other.t == lin.t:
                weights.setdefault("forms", set()).add(lin.kind)  # with c or without, always
                return Step("pre", lin.t, tuple(np.broadcast_shapes(lin.shape, other.shape)))
            return None
        if op == "Tanh" and x is not None and x.kind == "pre":
            return Step("h", x.t + 1, x.shape)
        return None

    def same(
        self,
        weights: dict[str, Any],
        key: str,
        v: np.ndarray[Any, Any],
        node: onnx.NodeProto,
        k: int,
    ) -> bool:
        """Record ``v`` as the recurrence's ``key``, or check it equals the one recorded."""
        self.check_type(node, node.input[k])
        if key not in weights:
            weights[key] = v
            return True
        return bool(weights[key].shape == v.shape and np.array_equal(weights[key], v))


@attrs.frozen
class Step:
    """A term of an unrolled RNN: ``kind`` "A" (the projected sequence), "xs" and "x"
    (its step ``t``, (1, n, u) or (n, u)), "h" (the state after ``t`` steps), "hR"
    (``h R``), "hRc" (``h R + c``), "pre" (``h_t R + c + A[t]``); ``shape`` with a
    concrete batch."""

    kind: str
    t: int
    shape: tuple[int, ...]

    def moved(self, op: str, a: dict[str, Any], consts: list[Any]) -> Step | None:
        """The term after a node that selects or reshapes: step ``t`` of A (``Slice``
        [t, t+1) or ``Gather`` t on the time axis), or a unit axis squeezed or added."""
        axes = consts[1] if len(consts) > 1 and consts[1] is not None else a.get("axes")
        if self.kind == "A" and op == "Gather" and consts[1] is not None:
            t = int(consts[1]) if np.ndim(consts[1]) == 0 else -1
            if int(a.get("axis", 0)) != 0 or not 0 <= t < self.shape[0]:
                return None
            return Step("x", t, self.shape[1:])
        if self.kind == "A" and op == "Slice" and all(c is not None for c in consts[1:]):
            starts, ends = ints(consts[1]), ints(consts[2])
            axes_ = ints(consts[3]) if len(consts) > 3 else [0]
            steps = ints(consts[4]) if len(consts) > 4 else [1]
            t = starts[0] if starts else -1
            if axes_ != [0] or steps != [1] or ends != [t + 1] or not 0 <= t < self.shape[0]:
                return None
            return Step("xs", t, (1, *self.shape[1:]))
        if axes is None or ints(axes) != [0] or self.kind == "A":
            return None
        if op == "Squeeze" and self.shape[0] == 1:
            return Step("x" if self.kind == "xs" else self.kind, self.t, self.shape[1:])
        if op == "Unsqueeze" and len(self.shape) == 2:
            return Step(self.kind, self.t, (1, *self.shape))
        return None
