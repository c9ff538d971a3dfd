"""Reading an ONNX graph: the walk from the input to the output, cut into segments
where one value carries everything, blocks whose paths rejoin, constants folded, and
activations written out as arithmetic. What each operator becomes is the layer
reader's (:mod:`fnn.onnx._layer_reader`); this module follows values and their layout."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

from typing import Any, Final

import attrs
import numpy as np
import onnx
from onnx import helper

from fnn.layers.activation import Activation
from fnn.onnx._activation_patterns import Expr, X, canon, constant, match_activation
from fnn.onnx._common import MAX_BLOCK_DEPTH, cl_to_cf, clip, listed, node_names
from fnn.onnx._fold import (
    ELEMENTWISE,
    SHAPE_OPS,
)
from fnn.onnx._model_reader import ModelReader, Val

ERF_GELU = (
    "is the exact (erf) GELU, which fnn does not have (fnn's GELU is the tanh form): "
    "export the model with nn.GELU(approximate='tanh')"
)


@attrs.frozen(eq=False)
class Block:
    """A block read from a graph: paths from one value, rejoined by ``merge`` ("add"
    or "concat"); each chain the ops of one path, in the join's input order."""

    merge: str
    chains: list[list[Any]]


ANY_T: Final = 1009
"""The length a dynamic time axis is followed as (a prime no shape constant holds by
chance; only shapes, never data, are made of it)."""
MAX_PATTERN_SEGMENTS: Final = 6
"""The most segments one layer recognised as a pattern of nodes spans (attention, 5)."""
MAX_PIECES: Final = 4
"""The most segments one activation written out as arithmetic spans."""
MAX_ACTIVATION_NODES: Final = 32
"""The most nodes one activation written out as arithmetic has (GELU's formula, 9)."""


class GraphReader(ModelReader):
    """Walks one ONNX graph (see :func:`fnn.onnx.load`): the layers read go to
    ``ops``; a subclass gives ``op_<OpType>`` for each operator read on its own."""

    def read(self) -> tuple[list[Any], Val, tuple[int | None, ...], np.dtype[Any]]:
        g = self.model.graph
        for t in g.initializer:
            self.consts[t.name] = self.tensor(t, t.name)
        inputs = [v for v in g.input if v.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise self.bad(
                f"fnn reads graphs with one input and one output, this one has "
                f"{len(inputs)} inputs and {len(g.output)} outputs"
            )
        x, out_name = inputs[0], g.output[0].name
        ttype = x.type.tensor_type
        floats = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}
        dtype = floats.get(ttype.elem_type)
        ids = ttype.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
        if ids:  # token ids: the model computes in its output's float type
            dtype = floats.get(g.output[0].type.tensor_type.elem_type)
        if dtype is None:
            raise self.bad(f"input {x.name!r} must be float or double, got element type "
                           f"{ttype.elem_type}")  # fmt: skip
        dims = list(ttype.shape.dim)
        # a sequence's time axis may be dynamic (token ids (batch, T), floats (batch, T,
        # d)): it is followed through the layers as a length no constant holds
        self.dynamic_t = (
            len(dims) in ((2, 3) if ids else (3,))
            and not dims[1].HasField("dim_value")
            and all(d.HasField("dim_value") for d in dims[2:])
        )
        sizes = [ANY_T if k == 1 and self.dynamic_t else d.dim_value for k, d in enumerate(dims)]
        if len(dims) < 2 or not all(d > 0 for d in sizes[1:]):
            raise self.bad(
                f"input {x.name!r} must have a batch dimension and fixed positive sizes "
                f"after it (or a time axis of any length), got "
                f"{[d.dim_value or d.dim_param or '?' for d in dims]}"
            )
        shape = tuple(int(d) for d in sizes[1:])
        self.dtype = np.dtype(dtype)
        self.elem = int(g.output[0].type.tensor_type.elem_type if ids else ttype.elem_type)
        self.check_sample(f"input {clip(repr(x.name), 60)}", shape)
        out_type = g.output[0].type.tensor_type.elem_type
        if out_type and out_type != self.elem:
            raise self.bad(
                f"the input is {self.dtype} but the output {clip(repr(out_name), 60)} "
                f"{helper.tensor_dtype_to_np_dtype(out_type)}; fnn reads models of one type"
            )
        for node in g.node:
            for i in node.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        self.uses[out_name] = self.uses.get(out_name, 0) + 1
        # nodes: constants folded; those that read the input's data form the chain;
        # those that read only its shape (Shape, and what computes from it: zero initial
        # states, masks, a reshape's target) are evaluated when a layer needs them
        runtime: set[str] = {x.name}
        shaped: set[str] = set()
        chain: list[onnx.NodeProto] = []
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise self.node_error(node, f"operator of domain {node.domain!r} is not supported")
            ins = [i for i in node.input if i]
            outs = [o for o in node.output if o]
            if node.op_type != "Shape" and any(i in runtime for i in ins):
                chain.append(node)
                runtime.update(outs)
            elif any(i in runtime or i in shaped for i in ins):
                self.derived.update((o, node) for o in outs)
                shaped.update(outs)
            else:
                self.fold(node)
        if out_name not in runtime:
            raise self.bad(f"output {out_name!r} does not depend on the input")
        first = [n for n in chain if x.name in n.input]
        cl = self.meta is not None or len(shape) <= 2  # vectors, sequences
        if not cl and len(first) == 1 and first[0].op_type == "Transpose":
            perm = self.attrs_of(first[0]).get("perm")
            cl = perm is not None and list(perm) == cl_to_cf(len(shape) + 1)
        val = (
            Val(shape) if cl else Val((*shape[1:], shape[0]), "cf")
        )  # graph (n, c, h, w) is fnn's (n, h, w, c)
        if ids:
            if len(shape) != 1:
                raise self.bad(f"token ids {x.name!r} must have shape (batch, T), got {shape}")
            val = Val(shape, "ids")
        # the network's per-sample input shape: None for a time axis of any length
        input_shape = tuple(
            None if k == 0 and self.dynamic_t else d for k, d in enumerate(val.shape)
        )
        self.cur = x.name
        self.producers = {o: n for n in chain for o in n.output if o}
        val = self.read_chain(chain, x.name, out_name, val, 0)
        if val.perm is not None or val.layout != "cl" or len(val.shape) not in (1, 2):
            raise self.bad(
                f"the graph's output has per-sample shape {val.graph_shape(1)[1:]}; fnn "
                "networks end in a vector of logits"
            )
        return self.ops, val, input_shape, np.dtype(dtype)

    def read_chain(
        self, chain: list[onnx.NodeProto], start: str, end: str, val: Val, depth: int
    ) -> Val:
        """The layers of ``chain``, the nodes from the value ``start`` (``val``) to the
        value ``end``, appended to ``self.ops``; ``depth`` is how deep in blocks."""
        self.cur = start
        self.seen[start] = val
        self.bias_field = None
        # an activation written out as arithmetic may span several segments (its last
        # nodes no longer read the value it started from): runs of them are read together
        pending: list[tuple[list[onnx.NodeProto], str]] = []
        segs = self.segments(chain, start, end)
        skip = 0  # segments a pattern read already
        for i, (seg, seg_end) in enumerate(segs):
            if skip:
                skip -= 1
                continue
            found = None
            if not pending:  # a layer written as several segments (attention)?
                for j in range(i + 1, min(i + MAX_PATTERN_SEGMENTS, len(segs)) + 1):
                    nodes = [n for s, _ in segs[i:j] for n in s]
                    found = self.pattern(nodes, val)
                    if found is not None:
                        val, skip, seg_end = found, j - i - 1, segs[j - 1][1]
                        break
                if found is not None:
                    self.bias_field = None
                    self.check_sample(f"node {node_names(segs[j - 1][0][-1:])[0]}", val.shape)
                    self.cur = seg_end
                    self.seen[seg_end] = val
                    continue
            if self.join(seg) is None and self.arithmetic(seg):
                pending.append((seg, seg_end))
                continue
            val, pending = self.written_activations(pending, val), []
            if self.join(seg) is not None:
                val = self.block(seg, val, depth)
            else:
                val = self.segment(seg, val, depth == 0 and seg_end == end)
            self.check_sample(f"node {node_names(seg[-1:])[0]}", val.shape)
            self.cur = seg_end
            self.seen[seg_end] = val
        return self.written_activations(pending, val)

    def join(self, seg: list[onnx.NodeProto]) -> str | None:
        """How the paths of ``seg`` rejoin, when it is a block of several paths: its
        last node adds (``Add`` of two different values, ``Sum``) or concatenates values
        computed from the layer's input; None otherwise."""
        if len(seg) < 2:
            return None
        last = seg[-1]
        runtime = [i for i in last.input if i and i not in self.consts]
        if len(runtime) != len(last.input) or len(runtime) < 2:
            return None
        if last.op_type == "Add" and runtime[0] != runtime[1]:
            return "add"
        if last.op_type == "Sum":
            return "add"
        if last.op_type == "Concat":
            return "concat"
        return None

    def block(self, seg: list[onnx.NodeProto], val: Val, depth: int) -> Val:
        """A block whose paths leave the value ``self.cur`` and rejoin at the last node
        of ``seg`` (see :meth:`join`): each path is read as a chain of layers (blocks
        nest), and the block becomes a :class:`Block`."""
        last = seg[-1]
        if depth >= MAX_BLOCK_DEPTH:
            raise self.node_error(last, f"blocks nested more than {MAX_BLOCK_DEPTH} deep")
        merge = self.join(seg)
        assert merge is not None
        start = self.cur
        made = {o: n for n in seg for o in n.output if o}
        owner: dict[int, int] = {}  # node (its index in seg) -> the path it belongs to
        paths: list[list[onnx.NodeProto]] = []
        for k, end in enumerate(last.input):
            nodes: set[int] = set()
            todo = [end]
            while todo:
                v = todo.pop()
                n = made.get(v)
                if v == start or n is None:
                    continue
                idx = next(i for i, m in enumerate(seg) if m is n)
                if idx in nodes:
                    continue
                if (idx in owner and owner[idx] != k) or n is last:
                    raise self.not_a_chain(seg)  # paths that share nodes
                nodes.add(idx)
                owner[idx] = k
                todo.extend(i for i in n.input if i and i not in self.consts)
            paths.append([seg[i] for i in sorted(nodes)])
        if len(owner) != len(seg) - 1:
            raise self.not_a_chain(seg)  # nodes on no path to the join
        outer_ops, outer_bias = self.ops, self.bias_field
        chains: list[list[Any]] = []
        vals: list[Val] = []
        for path, end in zip(paths, last.input, strict=True):
            self.ops = []
            vals.append(self.read_chain(path, start, end, val, depth + 1) if path else val)
            chains.append(self.ops)
        self.ops, self.bias_field = outer_ops, outer_bias
        self.cur = start
        out = self.merged(last, merge, vals)
        self.ops.append(Block(merge=merge, chains=chains))
        self.bias_field = None
        return out

    def merged(self, node: onnx.NodeProto, merge: str, vals: list[Val]) -> Val:
        """The value a join gives from its paths' values: equal shapes and layouts for
        a sum; for a concatenation, the channel (or feature) axis."""
        first = vals[0]
        for v in vals[1:]:
            same_rank = len(v.shape) == len(first.shape) and v.layout == first.layout
            if merge == "add" and (v.shape != first.shape or not same_rank):
                raise self.node_error(
                    node, f"adds values of shapes {first.graph_shape(1)[1:]} and "
                    f"{v.graph_shape(1)[1:]}; fnn adds identical shapes"
                )  # fmt: skip
            if not same_rank or v.shape[:-1] != first.shape[:-1]:
                raise self.node_error(
                    node, f"joins values of shapes {first.graph_shape(1)[1:]} and "
                    f"{v.graph_shape(1)[1:]}"
                )  # fmt: skip
        p0 = first.perm
        if any(v.perm is not None for v in vals) and (
            merge != "add"
            or p0 is None
            or not all(v.perm is not None and np.array_equal(v.perm, p0) for v in vals)
        ):
            raise self.node_error(node, "joins flattened images (fnn joins before the flatten)")
        if merge == "add":
            return first
        rank = len(first.shape) + 1
        axis = int(self.attrs_of(node).get("axis", 0))
        channel = 1 if first.layout in ("cf", "gap") else rank - 1
        if axis % rank != channel:
            raise self.node_error(
                node, f"concatenates on axis {axis}; fnn concatenates channels or features "
                f"(axis {channel} here)"
            )  # fmt: skip
        width = sum(v.shape[-1] for v in vals)
        return Val((*first.shape[:-1], width), first.layout)

    def segments(
        self, chain: list[onnx.NodeProto], start: str, end: str
    ) -> list[tuple[list[onnx.NodeProto], str]]:
        """The chain cut where one value carries everything: [(nodes, value at the cut)]."""
        uses: dict[str, int] = {}
        for n in chain:
            for i in set(n.input):
                if i:
                    uses[i] = uses.get(i, 0) + 1
        uses[end] = uses.get(end, 0) + 1
        live = {start: uses.get(start, 0)}
        out: list[tuple[list[onnx.NodeProto], str]] = []
        seg: list[onnx.NodeProto] = []
        made: set[str] = set()  # the values the nodes of ``seg`` give
        for n in chain:
            seg.append(n)
            made.update(n.output)
            for i in set(n.input):
                if i in live:
                    live[i] -= 1
                    if live[i] == 0:
                        del live[i]
            for o in n.output:
                if o and uses.get(o):
                    live[o] = uses[o]
            if len(live) == 1 and next(iter(live)) in made:
                out.append((seg, next(iter(live))))
                seg, made = [], set()
        if seg or not out or out[-1][1] != end:
            raise self.bad(
                "the graph is not a chain of layers (fnn reads sequential networks): "
                f"nodes after the last value that carries everything: "
                f"{listed(node_names(seg))}"
            )
        return out

    def arithmetic(self, seg: list[onnx.NodeProto]) -> bool:
        """Whether ``seg`` is elementwise arithmetic that no layer reads on its own."""
        if not all(n.op_type in ELEMENTWISE for n in seg):
            return False
        if len(seg) > 1:
            return True
        op = seg[0].op_type
        if op == "Add":  # a bias, or a value computed from shapes, is a layer's
            return self.bias_field is None and not any(i in self.derived for i in seg[0].input)
        return not hasattr(self, f"op_{op}")

    def segment(self, seg: list[onnx.NodeProto], val: Val, final: bool) -> Val:
        """The layers of ``seg``, nodes between two values that carry everything: one
        node, an activation written out as arithmetic, or a reshape computed from the
        value's shape (a block of layers with several paths is refused, see
        :meth:`not_a_chain`)."""
        if len(seg) == 1:
            node = seg[0]
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is not None:
                if node.op_type != "Add":
                    self.bias_field = None
                a = self.attrs_of(node)
                if node.op_type == "Softmax" and not final:
                    raise self.node_error(
                        node, "softmax is only supported as the output activation (last node)"
                    )
                try:
                    new: Val = handler(node, a, val)
                except (ValueError, TypeError) as e:
                    if str(e).startswith(f"{clip(str(self.path), 200)}: "):
                        raise
                    # a value fnn's layer refuses (a stride of 0, a NaN slope, epsilon 0)
                    raise self.node_error(node, clip(str(e), 300)) from None
                return new
            if node.op_type not in ELEMENTWISE and node.op_type not in SHAPE_OPS:
                raise self.node_error(node, "unsupported operator")
        self.bias_field = None
        if all(n.op_type in ELEMENTWISE or n.op_type in SHAPE_OPS for n in seg):
            return self.reshape_region(seg, val)
        raise self.not_a_chain(seg)

    def pattern(self, seg: list[onnx.NodeProto], val: Val) -> Val | None:
        """The layer that the nodes of ``seg`` (consecutive segments) compute together
        (attention written out as products and a softmax), appended to ``ops``, and the
        value it gives; None, with nothing changed, if they compute none. A subclass
        recognises them."""
        return None

    def reshape_region(self, seg: list[onnx.NodeProto], val: Val) -> Val:
        """Nodes that only move the value's data (reshapes computed from its shape); a
        subclass reads them."""
        raise NotImplementedError

    def not_a_chain(self, seg: list[onnx.NodeProto]) -> ValueError:
        """The error for nodes that branch and join again (a residual or parallel
        block), naming the first value that feeds several of them."""
        uses: dict[str, list[onnx.NodeProto]] = {self.cur: []}
        for n in seg:
            for i in dict.fromkeys(n.input):
                if i and i not in self.consts:
                    uses.setdefault(i, []).append(n)
        name, users = next(((v, u) for v, u in uses.items() if len(u) > 1), (self.cur, []))
        producer = self.producers.get(name)
        who = (
            f"the input {clip(repr(name), 60)}"
            if producer is None
            else f"node {node_names([producer])[0]}'s output"
        )
        return self.bad(
            f"the graph is not a chain of layers: {who} feeds {len(users)} nodes "
            f"({listed(node_names(users))}); fnn reads chains of layers and blocks whose "
            "paths rejoin through Add, Sum or Concat"
        )

    def written_activations(self, pieces: list[tuple[list[onnx.NodeProto], str]], val: Val) -> Val:
        """Consecutive segments of elementwise arithmetic as the fnn activations they
        compute, recognised by their structure and exact constants (never by their
        values): the shortest run of segments that is one, then the next run."""
        i = 0
        while i < len(pieces):
            for j in range(i + 1, min(i + MAX_PIECES, len(pieces)) + 1):
                nodes = [n for seg, _ in pieces[i:j] for n in seg]
                if len(nodes) > MAX_ACTIVATION_NODES:
                    continue  # larger than any form an activation is written in
                expr = self.expression(nodes, len(val.shape) + 1)
                try:
                    act = match_activation(expr, self.dtype)
                except ValueError as e:  # a recognised form with a constant fnn refuses
                    raise self.node_error(nodes[-1], str(e)) from None
                if act is not None:
                    self.ops.append(Activation(act))
                    self.cur = pieces[j - 1][1]
                    i = j
                    break
            else:
                seg = pieces[i][0]
                if len(seg) > MAX_ACTIVATION_NODES:  # a long block whose paths join
                    raise self.not_a_chain(seg)
                if any(n.op_type == "Erf" for seg, _ in pieces[i:] for n in seg):
                    raise self.node_error(seg[-1], ERF_GELU)
                raise self.node_error(
                    seg[0],
                    f"elementwise arithmetic that is none of fnn's layers or activations "
                    f"(nodes {listed(node_names(seg))}); fnn reads an operator only when "
                    "its structure and constants are exactly one it has",
                )
        return val

    def expression(self, seg: list[onnx.NodeProto], rank: int) -> Expr:
        """What ``seg`` computes from the value at ``self.cur``, as a canonical
        expression (see :func:`canon`)."""
        env: dict[str, Expr] = {self.cur: X}
        for n in seg:
            args: list[Expr] = []
            for i in n.input:
                if i in env:
                    args.append(env[i])
                elif i in self.consts:
                    self.check_type(n, i)
                    args.append(constant(self.consts[i], rank))
                else:
                    args.append(("missing", i))
            env[n.output[0]] = canon(n.op_type, self.attrs_of(n), args, self.elem)
        return env[seg[-1].output[0]]
