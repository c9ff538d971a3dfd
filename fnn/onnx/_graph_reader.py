"""Reading an ONNX graph: the walk from the input to the output, cut into segments
where one value carries everything, blocks whose paths rejoin, constants folded, and
activations written out as arithmetic. What each operator becomes is the layer
reader's (:mod:`fnn.onnx._layer_reader`); this module follows values and their layout."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import onnx
from onnx import helper, numpy_helper

from fnn.layers.activation import Activation
from fnn.onnx._activation_patterns import Expr, X, canon, constant, match_activation
from fnn.onnx._common import MAX_BLOCK_DEPTH, cl_to_cf, clip, listed, node_names
from fnn.onnx._fold import (
    BINARY,
    ELEMENTWISE,
    SHAPE_OPS,
    Filled,
    Shaped,
    eval_node,
    filled,
    moved,
)


@attrs.frozen(eq=False)
class Val:
    """The value flowing through the graph, as fnn sees it: ``shape`` the per-sample
    shape in fnn's channels-last layout; ``layout`` how the graph holds it: "cl" as fnn
    does, "cf" channels-first, "gap" a (batch, C, 1, 1) global pool, "ids" token ids,
    "tm" a time-major sequence (T, batch, units), "tm4" and "h" a recurrent operator's
    Y (T, 1, batch, units) and Y_h (1, batch, units), "tm4t" Y as (T, batch, 1,
    units); ``perm`` for a flattened channels-first image, fnn's feature index of each
    graph feature."""

    shape: tuple[int, ...]
    layout: str = "cl"
    perm: np.ndarray[Any, Any] | None = None

    def graph_shape(self, n: int) -> tuple[int, ...]:
        if self.layout == "tm":  # a sequence, time-major: (T, n, units)
            return (self.shape[0], n, self.shape[1])
        if self.layout == "tm4":  # a recurrent operator's Y: (T, 1, n, units)
            return (self.shape[0], 1, n, self.shape[1])
        if self.layout == "tm4t":  # Y with its middle axes swapped: (T, n, 1, units)
            return (self.shape[0], n, 1, self.shape[1])
        if self.layout == "h":  # a recurrent operator's Y_h: (1, n, units)
            return (1, n, self.shape[0])
        if self.layout == "cf":
            return (n, self.shape[-1], *self.shape[:-1])
        if self.layout == "gap":
            return (n, self.shape[0], 1, 1)
        return (n, *self.shape)

    def features(self, params: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Per-feature parameters in the graph's order, in fnn's order."""
        if self.perm is None:
            return params
        out = np.empty_like(params)
        out[self.perm] = params
        return out


ALLOWED_ATTRS: Final[dict[str, frozenset[str]]] = {
    "Gemm": frozenset({"alpha", "beta", "transA", "transB"}),
    "MatMul": frozenset(),
    "Add": frozenset(),
    "Sum": frozenset(),
    "Concat": frozenset({"axis"}),
    "Conv": frozenset({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}),
    "MaxPool": frozenset(
        {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"}
    ),
    "AveragePool": frozenset(
        {
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "strides",
        }
    ),
    "GlobalAveragePool": frozenset(),
    "Gather": frozenset({"axis"}),
    "RNN": frozenset({"activations", "clip", "direction", "hidden_size", "layout"}),
    "LSTM": frozenset(
        {"activations", "clip", "direction", "hidden_size", "input_forget", "layout"}
    ),
    "GRU": frozenset(
        {"activations", "clip", "direction", "hidden_size", "layout", "linear_before_reset"}
    ),
    "ReduceMean": frozenset({"axes", "keepdims", "noop_with_empty_axes"}),
    "BatchNormalization": frozenset({"epsilon", "momentum", "training_mode", "spatial"}),
    "LayerNormalization": frozenset({"axis", "epsilon", "stash_type"}),
    "Flatten": frozenset({"axis"}),
    "Reshape": frozenset({"allowzero"}),
    "Squeeze": frozenset({"axes"}),
    "Transpose": frozenset({"perm"}),
    "Dropout": frozenset({"seed"}),
    "Identity": frozenset(),
    "Relu": frozenset(),
    "Sigmoid": frozenset(),
    "Tanh": frozenset(),
    "Softplus": frozenset(),
    "LeakyRelu": frozenset({"alpha"}),
    "Elu": frozenset({"alpha"}),
    "Gelu": frozenset({"approximate"}),
    "Softmax": frozenset({"axis"}),
}

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


class GraphReader:
    """Walks one ONNX graph (see :func:`fnn.onnx.load`): the layers read go to
    ``ops``; a subclass gives ``op_<OpType>`` for each operator read on its own and
    :meth:`recurrent`."""

    def __init__(
        self,
        path: Path,
        model: onnx.ModelProto,
        meta: dict[str, Any] | None,
        max_bytes: int,
    ) -> None:
        self.path = path
        self.model = model
        self.meta = meta
        self.opset = next(
            (int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0
        )
        self.consts: dict[str, np.ndarray[Any, Any]] = {}
        self.types: dict[str, np.dtype[Any]] = {}  # the file's type of each constant
        self.ops: list[Any] = []
        self.output = "identity"
        # the field of the layer just built that a constant added next folds into (its
        # bias, when the layer ends in a linear map); None when there is none
        self.bias_field: str | None = None
        self.cur = ""  # the graph's name of the value read so far
        self.producers: dict[str, onnx.NodeProto] = {}  # value name -> the node giving it
        self.uses: dict[str, int] = {}  # value name -> how many node inputs (and outputs) read it
        self.dtype: np.dtype[Any] = np.dtype(np.float32)  # the model's (its input's)
        self.elem = 0  # the model's ONNX element type
        self.max_bytes = max_bytes
        # values computed from the shapes of the layer's values: the node giving each
        self.derived: dict[str, onnx.NodeProto] = {}
        self.seen: dict[str, Val] = {}  # the values between layers, by graph name
        self.dynamic_t = False  # whether the input's time axis has any length (ANY_T)

    # errors
    def bad(self, what: str) -> ValueError:
        return ValueError(f"{clip(str(self.path), 200)}: {clip(what, 700)}")

    def node_error(self, node: onnx.NodeProto, what: str) -> ValueError:
        return self.bad(f"node {node_names([node])[0]}: {what}")

    def attrs_of(self, node: onnx.NodeProto) -> dict[str, Any]:
        out: dict[str, Any] = {}
        allowed = ALLOWED_ATTRS.get(node.op_type)
        for at in node.attribute:
            if allowed is not None and at.name not in allowed:
                raise self.node_error(
                    node, f"attribute {at.name!r} is not supported by fnn's {node.op_type}"
                )
            if at.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise self.node_error(node, "subgraphs are not supported")
            v = helper.get_attribute_value(at)
            out[at.name] = v.decode() if isinstance(v, bytes) else v
        return out

    def tensor(self, t: onnx.TensorProto, name: str) -> np.ndarray[Any, Any]:
        """The tensor's values (floats in float64), its type recorded as ``name``'s;
        its declared size is checked against ``max_bytes`` before it is made."""
        where = f"tensor {clip(repr(t.name), 60)}"
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise self.bad(f"{where} keeps its data in an external file (refused)")
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
        except (KeyError, ValueError, TypeError):
            raise self.bad(f"{where} has an unknown element type {t.data_type}") from None
        size = math.prod(int(d) for d in t.dims)
        if any(d < 0 for d in t.dims) or size * max(dtype.itemsize, 8) > self.max_bytes:
            raise self.bad(
                f"{where} declares shape {clip(str(tuple(t.dims)), 100)}, more than "
                f"max_bytes ({self.max_bytes}) allows"
            )
        try:
            a: np.ndarray[Any, Any] = numpy_helper.to_array(t)  # Any without onnx installed
        except (ValueError, TypeError) as e:
            raise self.bad(f"{where} is malformed: {clip(str(e))}") from None
        self.types[name] = a.dtype
        if a.dtype.kind == "f":
            return a.astype(np.float64)
        return a

    def check_type(self, node: onnx.NodeProto, name: str) -> None:
        """A float constant a layer computes with must be of the model's dtype: ONNX
        Runtime refuses mixed types, and fnn never rounds a weight to make them fit."""
        t = self.types.get(name)
        if t is not None and t.kind == "f" and t != self.dtype:
            raise self.node_error(
                node,
                f"{clip(repr(name), 60)} is {t}, but the model computes in {self.dtype} "
                "(its input's type); fnn does not round weights to another type",
            )

    # graph
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

    def check_sample(self, where: str, shape: tuple[int, ...]) -> None:
        """Refuse a declared per-sample shape whose values (at 8 bytes each, as the
        index of a flatten needs) exceed ``max_bytes``, before anything is made."""
        n = math.prod(shape)
        if 8 * n > self.max_bytes:
            raise self.bad(
                f"{where} declares samples of shape {clip(str(shape), 100)} ({n} values), "
                f"more than max_bytes ({self.max_bytes}) allows; pass a larger max_bytes "
                "to load it"
            )

    def check_fold_size(self, node: onnx.NodeProto, ins: list[Any]) -> None:
        """Refuse, before it is computed, a constant larger than ``max_bytes``."""
        arrays = [np.asarray(v) for v in ins if v is not None]
        op = node.op_type
        try:
            if op in BINARY or op in ("Max", "Min", "Where"):
                n = math.prod(np.broadcast_shapes(*(v.shape for v in arrays)))
            elif op == "Gather" and len(arrays) == 2:
                data, index = arrays
                axis = int(self.attrs_of(node).get("axis", 0)) % max(data.ndim, 1)
                n = data.size // max(data.shape[axis], 1) * index.size
            elif op == "Concat":
                n = sum(v.size for v in arrays)
            else:
                n = max((v.size for v in arrays), default=0)
        except (ValueError, IndexError):
            return  # the node cannot be computed: folding it says so
        if 8 * n > self.max_bytes:
            raise self.node_error(
                node,
                f"computes a constant of {n} values ({8 * n} bytes), more than max_bytes "
                f"({self.max_bytes})",
            )

    def fold(self, node: onnx.NodeProto) -> None:
        a = self.attrs_of(node)
        if node.op_type == "Constant":
            if "value" in a:
                v = self.tensor(a["value"], node.output[0])
            elif "value_float" in a or "value_floats" in a:
                v = np.asarray(a.get("value_float", a.get("value_floats")))
                self.types[node.output[0]] = np.dtype(np.float32)
            elif "value_int" in a or "value_ints" in a:
                v = np.asarray(a.get("value_int", a.get("value_ints")), np.int64)
            else:
                raise self.node_error(node, f"unsupported constant {sorted(a)}")
        elif node.op_type in SHAPE_OPS or node.op_type in ELEMENTWISE:
            ins = [self.consts.get(i) for i in node.input]
            self.check_fold_size(node, ins)
            try:
                v = eval_node(node.op_type, ins, a)
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise self.node_error(node, f"cannot fold the constant: {clip(str(e))}") from None
            if node.op_type == "Cast":
                to = helper.tensor_dtype_to_np_dtype(int(a["to"]))
                self.types[node.output[0]] = np.dtype(to)
            else:  # arithmetic keeps the type of its (float) inputs
                kinds = [self.types[i] for i in node.input if i in self.types]
                if kinds:
                    self.types[node.output[0]] = kinds[0]
        else:
            raise self.node_error(node, "unsupported operator (on constants)")
        self.consts[node.output[0]] = np.asarray(v)

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

    def runtime_input(self, node: onnx.NodeProto) -> int:
        idx = [
            k
            for k, i in enumerate(node.input)
            if i and i not in self.consts and i not in self.derived
        ]
        if len(idx) != 1:
            raise self.node_error(node, "expected one input from the layer before")
        return idx[0]

    def const(
        self, node: onnx.NodeProto, k: int, what: str, weight: bool = True
    ) -> np.ndarray[Any, Any] | None:
        """The constant input ``k`` of ``node`` (None if absent); a ``weight`` must be
        of the model's dtype."""
        if k >= len(node.input) or not node.input[k]:
            return None
        v = self.consts.get(node.input[k])
        if v is None:
            raise self.node_error(node, f"{what} must be a constant (an initializer)")
        if weight:
            self.check_type(node, node.input[k])
        return v

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

    def shape_value(self, name: str, batch: int) -> Any:
        """The value ``name`` for a batch of ``batch``, where it is computed from the
        shapes of the layer's values and constants, never their data: a constant, a
        :class:`Shaped` value between layers, or a :class:`Filled` one. Evaluated
        without recursion, each node once."""
        done: dict[str, Any] = {}
        todo = [name]
        while todo:
            v = todo[-1]
            if v in done:
                todo.pop()
            elif v in self.consts:
                done[v] = self.consts[v]
            elif v in self.seen:
                done[v] = Shaped(self.seen[v].graph_shape(batch))
            elif v not in self.derived:
                raise self.bad(
                    f"value {clip(repr(v), 60)} is computed from a value fnn does not "
                    "follow (only the shapes of the values between layers)"
                )
            else:
                node = self.derived[v]
                missing = [i for i in node.input if i and i not in done]
                if missing:
                    todo.extend(missing)
                    continue
                ins = [done[i] if i else None for i in node.input]
                done[v] = self.shape_step(node, ins)
                todo.pop()
        return done[name]

    def shape_step(self, n: onnx.NodeProto, ins: list[Any]) -> Any:
        """One node computed from shapes: integer arithmetic on them, the shape of a
        value whose data moves (a :class:`Shaped`), or a value filled with one number
        (a :class:`Filled`)."""
        a = self.attrs_of(n)
        op = n.op_type
        if op == "Shape" and len(ins) == 1 and isinstance(ins[0], Shaped | Filled):
            return np.asarray(ins[0].shape[a.get("start", 0) : a.get("end")], np.int64)
        try:
            if op in ("ConstantOfShape", "Expand") or any(isinstance(v, Filled) for v in ins):
                return filled(op, ins, a)
        except (ValueError, TypeError, IndexError, KeyError) as e:
            raise self.node_error(n, f"cannot compute the value: {clip(str(e))}") from None
        if not any(isinstance(v, Shaped) for v in ins):
            if any(v is None for v, i in zip(ins, n.input, strict=True) if i):
                raise self.node_error(n, "reads a value that is neither the layer's nor constant")
            if op not in SHAPE_OPS and op not in ELEMENTWISE:
                raise self.node_error(n, "unsupported operator (on shapes)")
            self.check_fold_size(n, ins)
            try:
                return eval_node(op, ins, a)
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise self.node_error(n, f"cannot compute the shape: {clip(str(e))}") from None
        x = ins[0]
        if not isinstance(x, Shaped) or any(isinstance(v, Shaped) for v in ins[1:]):
            raise self.node_error(n, "combines the layer's value with itself or another")
        try:
            return moved(op, x, ins, a)
        except ValueError as e:
            raise self.node_error(n, str(e)) from None

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
