"""One ONNX model as the reader sees it: its constants (folded), node attributes
(checked against what fnn reads), the value flowing between layers and its layout
(:class:`Val`), and values computed from shapes (zero states, masks, reshape targets),
evaluated without making data. Errors name the file and the node."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import onnx
from onnx import helper, numpy_helper

from fnn.onnx._common import clip, node_names
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


class ModelReader:
    """One ONNX model's constants, attributes and values computed from shapes, with
    errors that name the file and the node (see :func:`fnn.onnx.load`)."""

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
