"""ONNX export and import: networks that leave fnn and come in.

:func:`export` writes a network as an ONNX model that ONNX Runtime (or any ONNX
runtime) runs with the result of :func:`fnn.predict`; :func:`load` reads back what
:func:`export` wrote, and the feed-forward models PyTorch's exporters write.

**The exported model.**

- Input ``"X"``: shape ``(batch, *net.input_shape)`` in fnn's layout, channels-last
  for images (``(batch, height, width, channels)``), of the network's dtype (float32
  or float64); the batch dimension is dynamic (named ``"batch"``).
- Output ``"output"``: ``(batch, n_outputs)``, what :func:`fnn.predict` returns: the
  logits through the loss's output activation (Sigmoid, Softmax over the last axis,
  or none).
- Opset: :data:`DEFAULT_OPSET` (18) unless ``opset=`` says otherwise; any opset from
  :data:`MIN_OPSET` (17, the first with LayerNormalization) to the newest the
  installed ``onnx`` knows. The IR version is the lowest that opset allows, so older
  runtimes read the file.
- Convolutions and pools run in ONNX's channels-first layout: a ``Transpose`` goes in
  before the first of a run of them and one back before ``Flatten`` (and before a
  layer norm), so a dense layer's weights are stored as fnn has them.
- A residual block (:class:`fnn.Residual`) is its two paths joined by ``Add`` (an
  empty shortcut is the block's input itself); a parallel block (:class:`fnn.Parallel`)
  its branches joined by ``Concat`` on the channel axis (axis 1 of a channels-first
  image inside the model, the last axis of vectors and sequences), by ``Add`` (two
  branches) or ``Sum`` (more). Blocks nest. Every path of a block ends in one layout
  (the first non-empty path's), so a ``Transpose`` may go in before the join.
- Sequence networks: token ids come in as int64 ``(batch, T)``, and a time axis of any
  length is the dynamic dimension ``"T"``. An embedding is ``Gather``; a dense layer on
  a sequence ``MatMul`` and ``Add``; a positional embedding adds ``P[:T]`` (``Slice``);
  SimpleRNN, LSTM and GRU are ONNX's ``RNN``, ``LSTM`` (gates i, o, f, c) and ``GRU``
  (z, r, h, ``linear_before_reset=1``) on the time-major sequence; attention is written
  out as ``MatMul``, ``Reshape``, ``Transpose`` and ``Softmax``, with the causal mask
  made by ``Trilu`` from the input's length.
- Dropout is the identity (an ``Identity`` node); batch and layer norm are in
  inference mode (``BatchNormalization`` with the running statistics,
  ``LayerNormalization`` over the last axis); GELU is fnn's tanh form (``Gelu`` with
  ``approximate="tanh"`` from opset 20, the formula before it, and always the formula
  with float64 constants in a float64 network, since the ``Gelu`` operator's reference
  definition rounds its constants to float32).
- ONNX keeps float attributes in float32. A batch or layer norm's epsilon is such
  an attribute: in a float64 network whose epsilon is not a float32 number (1e-5 is
  not), the runtime adds a slightly different epsilon, which changes the output by up
  to about 1e-9 relative where the normalised values are nearly equal. A float64
  network whose leaky-ReLU slope or ELU alpha is not a float32 number gets the
  activation written out with float64 constants instead, so its output stays the
  network's to float64 precision.
- ``metadata_props`` hold ``"fnn"``: JSON with the format, the fnn version, the dtype,
  the input shape, the loss's config and every layer's ``config()``, so :func:`load`
  gives back the same network (the same layers, hyper-parameters, arrays and loss).

**Import.** :func:`load` reads the graph node by node and builds the fnn layers that
compute it: ``Gemm`` or ``MatMul`` (+ ``Add``), ``Conv`` (with batch norm folded in
or not), ``MaxPool``, ``AveragePool``, ``GlobalAveragePool`` (or ``ReduceMean`` over
the pixels), ``BatchNormalization``, ``LayerNormalization``, ``Flatten`` or a
``Reshape`` that flattens, ``Dropout``, ``Identity``, ``Relu``, ``LeakyRelu``,
``Elu``, ``Sigmoid``, ``Tanh``, ``Softplus``, ``Gelu`` (tanh form) and a final
``Softmax``; ``Gather`` of a table by token ids (an embedding), ``RNN``, ``LSTM``
and ``GRU`` (one forward direction, PyTorch's activations, zero initial state, as
PyTorch's TorchScript exporter writes ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` with
``batch_first=True``) and the last step of their sequence (``y[:, -1]``). Paths that
leave one value and rejoin through ``Add`` or ``Sum`` (of identical shapes) or
``Concat`` (on the channels or features) are a block: two paths added become an
:class:`fnn.Residual` (the first path with layers its body, the other its shortcut,
empty for the identity), other joins an :class:`fnn.Parallel`; each path
is read as a chain of layers, and blocks nest up to :data:`MAX_BLOCK_DEPTH` deep.
Paths that share nodes, or cross between blocks, are an error naming the node. An
activation written out as several elementwise nodes (PyTorch's tanh-GELU before opset
20) is recognised by its structure and exact constants, never by its values: anything
else is an error naming the node. A channels-first graph (as
PyTorch writes) becomes a channels-last network: the dense layer after a flatten gets
its rows permuted, so :func:`fnn.predict` on ``(n, h, w, c)`` input equals the source
model on ``(n, c, h, w)``.

Nothing in a model file is executed: the file is parsed as protobuf (initializers kept
as external data are read only from regular files in the model's folder, at their
declared offset and length; other external tensors are refused), and constants are
folded by a few NumPy lines per operator for a short list of shape and arithmetic
operators.
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np

try:
    import onnx
    from onnx import helper, numpy_helper
except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fnn.onnx needs the onnx package: pip install 'fnn[onnx]'") from e

from fnn import activations as _act
from fnn import losses as _losses
from fnn import tree
from fnn._atomic import write_atomically
from fnn._version import VERSION
from fnn.layers.activation import Activation
from fnn.layers.attention import MultiHeadAttention
from fnn.layers.batch_norm import BatchNorm
from fnn.layers.composite import Composite, Parallel, Residual
from fnn.layers.conv2d import Conv2D, PaddingLike
from fnn.layers.dense import Dense
from fnn.layers.dropout import Dropout
from fnn.layers.embedding import Embedding
from fnn.layers.flatten import Flatten
from fnn.layers.layer_norm import LayerNorm
from fnn.layers.pool2d import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from fnn.layers.positional_embedding import PositionalEmbedding
from fnn.layers.recurrent import GRU, LSTM, Recurrent, SimpleRNN
from fnn.network import Network, pack

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "MAX_BLOCK_DEPTH",
    "MAX_BYTES",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "export",
    "load",
]

DEFAULT_OPSET: Final = 18
"""The opset :func:`export` writes unless told otherwise (ONNX Runtime 1.14 and later)."""
MIN_OPSET: Final = 17
"""The oldest opset :func:`export` writes (LayerNormalization needs 17)."""
INPUT_NAME: Final = "X"
"""The exported model's input: (batch, *input_shape), channels-last."""
OUTPUT_NAME: Final = "output"
"""The exported model's output: (batch, n_outputs), as :func:`fnn.predict` returns."""
METADATA_KEY: Final = "fnn"
FORMAT: Final = "fnn-onnx"
FORMAT_VERSION: Final = 1

_ELEM = {
    np.dtype(np.float32): onnx.TensorProto.FLOAT,
    np.dtype(np.float64): onnx.TensorProto.DOUBLE,
}


# --- export ---------------------------------------------------------------------------


def _cl_to_cf(rank: int) -> list[int]:
    """Channels-last to channels-first: (0, r-1, 1, ..., r-2)."""
    return [0, rank - 1, *range(1, rank - 1)]


def _cf_to_cl(rank: int) -> list[int]:
    """Channels-first to channels-last: (0, 2, ..., r-1, 1)."""
    return [0, *range(2, rank), 1]


class _Builder:
    """The nodes and initializers of the graph being written; ``cur`` is the name of the
    value so far, ``cf`` whether it is channels-first (transposed from fnn's layout)."""

    def __init__(self, dtype: np.dtype[Any], opset: int) -> None:
        self.dtype = dtype
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.cur = INPUT_NAME
        self.cf = False
        self.rank = 0
        self._n = 0

    def const(self, name: str, value: Any, dtype: Any = None) -> str:
        a = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def node(self, where: str, op: str, extra: Sequence[str] = (), **attrs_: Any) -> str:
        """A node on the current value (and ``extra`` inputs); its output is the new one."""
        self._n += 1
        out = f"{where}/{op}_{self._n}"
        self.nodes.append(helper.make_node(op, [self.cur, *extra], [out], name=out, **attrs_))
        self.cur = out
        return out

    def op(self, where: str, op: str, inputs: Sequence[str], n_out: int = 1, **attrs_: Any) -> str:
        """A node on explicit ``inputs``; its (first) output is the new current value.
        With ``n_out`` > 1, the outputs are ``{name}.0``, ``{name}.1``, ..."""
        self._n += 1
        out = f"{where}/{op}_{self._n}"
        outs = [out] if n_out == 1 else [f"{out}.{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=out, **attrs_))
        self.cur = outs[0]
        return outs[0]

    def to_cf(self, where: str) -> None:
        if not self.cf:
            self.node(where, "Transpose", perm=_cl_to_cf(self.rank))
            self.cf = True

    def to_cl(self, where: str) -> None:
        if self.cf:
            self.node(where, "Transpose", perm=_cf_to_cl(self.rank))
            self.cf = False


def _f32_exact(x: float) -> bool:
    return float(np.float32(x)) == x


def _export_activation(b: _Builder, where: str, act: _act.Activation) -> None:
    kind = type(act)
    if kind is _act.Identity:
        return
    if kind is _act.ReLU:
        b.node(where, "Relu")
    elif kind is _act.Sigmoid:
        b.node(where, "Sigmoid")
    elif kind is _act.Tanh:
        b.node(where, "Tanh")
    elif kind is _act.Softplus:
        b.node(where, "Softplus")
    elif kind is _act.LeakyReLU:
        slope = act.negative_slope  # type: ignore[attr-defined]
        if b.dtype == np.float32 or _f32_exact(slope):
            b.node(where, "LeakyRelu", alpha=slope)
        else:  # where(x > 0, x, slope * x) with a float64 slope
            x = b.cur
            pos = b.node(where, "Greater", [b.const(f"{where}.zero", 0.0)])
            b.cur = x
            neg = b.node(where, "Mul", [b.const(f"{where}.negative_slope", slope)])
            b.cur = pos
            b.node(where, "Where", [x, neg])
    elif kind is _act.ELU:
        alpha = act.alpha  # type: ignore[attr-defined]
        if b.dtype == np.float32 or _f32_exact(alpha):
            b.node(where, "Elu", alpha=alpha)
        else:  # where(x > 0, x, alpha * (exp(min(x, 0)) - 1)) with a float64 alpha
            x = b.cur
            zero = b.const(f"{where}.zero", 0.0)
            pos = b.node(where, "Greater", [zero])
            b.cur = x
            b.node(where, "Min", [zero])
            b.node(where, "Exp")
            b.node(where, "Sub", [b.const(f"{where}.one", 1.0)])
            neg = b.node(where, "Mul", [b.const(f"{where}.alpha", alpha)])
            b.cur = pos
            b.node(where, "Where", [x, neg])
    elif kind is _act.GELU:
        if b.opset >= 20 and b.dtype == np.float32:
            b.node(where, "Gelu", approximate="tanh")
        else:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            x = b.cur
            b.node(where, "Pow", [b.const(f"{where}.three", 3.0)])
            cubic = b.node(where, "Mul", [b.const(f"{where}.c1", 0.044715)])
            b.cur = x
            b.node(where, "Add", [cubic])
            b.node(where, "Mul", [b.const(f"{where}.c0", math.sqrt(2.0 / math.pi))])
            b.node(where, "Tanh")
            b.node(where, "Add", [b.const(f"{where}.one", 1.0)])
            b.node(where, "Mul", [x])
            b.node(where, "Mul", [b.const(f"{where}.half", 0.5)])
    else:
        raise ValueError(
            f"{where}: no ONNX export for the activation {type(act).__name__} "
            f"({act.config()}): fnn.onnx writes fnn's built-in activations only"
        )


def _export_chain(
    b: _Builder, where: str, layers: Sequence[Any], in_shape: tuple[int, ...]
) -> tuple[int, ...]:
    """The nodes of ``layers`` applied in order from ``b.cur`` (per-sample shape
    ``in_shape``); returns the per-sample output shape."""
    shape = in_shape
    for j, layer in enumerate(layers):
        out = tuple(int(d or 0) for d in layer.output_shape(shape))
        _export_layer(b, f"{where}.{j}", layer, shape)
        shape = out
    b.rank = len(shape) + 1
    return shape


def _export_composite(b: _Builder, where: str, layer: Composite, in_shape: tuple[int, ...]) -> None:
    """Every chain from the composite's input, joined by ``Add`` (two chains), ``Sum``
    (more) or ``Concat`` on the channel axis; an empty chain is the input itself."""
    start, start_cf = b.cur, b.cf
    ends: list[tuple[str, bool]] = []
    out_rank = 0
    for name, layers in layer.chains:
        b.cur, b.cf = start, start_cf
        out_rank = len(_export_chain(b, f"{where}.{name}", layers, in_shape)) + 1
        ends.append((b.cur, b.cf))
    # one layout for all: the first non-empty chain's (an empty one is the input's)
    cf = next((c for (_, ls), (_, c) in zip(layer.chains, ends, strict=True) if ls), start_cf)
    cf = cf and out_rank > 2
    names = []
    for k, (cur, c) in enumerate(ends):
        b.cur, b.cf, b.rank = cur, c and out_rank > 2, out_rank
        if cf:
            b.to_cf(f"{where}.join{k}")
        else:
            b.to_cl(f"{where}.join{k}")
        names.append(b.cur)
    b.cur, b.cf, b.rank = names[0], cf, out_rank
    if layer.merge == "concat":
        b.node(where, "Concat", names[1:], axis=1 if cf else out_rank - 1)
    elif len(names) == 2:
        b.node(where, "Add", names[1:])
    else:
        b.node(where, "Sum", names[1:])


def _export_layer(b: _Builder, where: str, layer: Any, in_shape: tuple[int, ...]) -> None:
    kind = type(layer)
    b.rank = len(in_shape) + 1
    if isinstance(layer, Composite):
        _export_composite(b, where, layer, in_shape)
    elif kind is Dense and len(in_shape) == 1:
        bias = np.zeros(layer.n_out, layer.W.dtype) if layer.b is None else layer.b
        b.node(where, "Gemm", [b.const(f"{where}.W", layer.W), b.const(f"{where}.b", bias)])
        _export_activation(b, where, layer.activation)
    elif kind is Dense:  # on the last axis of a sequence (n, T, n_in)
        b.node(where, "MatMul", [b.const(f"{where}.W", layer.W)])
        if layer.b is not None:
            b.node(where, "Add", [b.const(f"{where}.b", layer.b)])
        _export_activation(b, where, layer.activation)
    elif kind is Embedding:  # out[i, t] = W[X[i, t]]
        b.op(where, "Gather", [b.const(f"{where}.W", layer.W), b.cur], axis=0)
    elif kind is PositionalEmbedding:  # out = X + P[:T], T read off X
        x = b.cur
        steps = b.op(where, "Shape", [x], start=1, end=2)
        zero = b.const(f"{where}.zero", [0], np.int64)
        P = b.const(f"{where}.P", layer.P)
        rows = b.op(where, "Slice", [P, zero, steps, zero])
        b.op(where, "Add", [x, rows])
    elif isinstance(layer, Recurrent):
        _export_recurrent(b, where, layer)
    elif kind is MultiHeadAttention:
        _export_attention(b, where, layer)
    elif kind is Conv2D:
        b.to_cf(where)
        W = b.const(f"{where}.W", np.ascontiguousarray(layer.W.transpose(3, 2, 0, 1)))
        kw: dict[str, Any] = {
            "kernel_shape": list(layer.kernel_size),
            "strides": list(layer.stride),
        }
        pad = layer.padding
        if pad == "valid":
            kw["auto_pad"] = "VALID"
        elif pad == "same":
            kw["auto_pad"] = "SAME_UPPER"
        else:
            (t, bo), (le, r) = pad
            kw["pads"] = [t, le, bo, r]
        b.node(where, "Conv", [W, b.const(f"{where}.b", layer.b)], **kw)
        _export_activation(b, where, layer.activation)
    elif kind is MaxPool2D or kind is AvgPool2D:
        b.to_cf(where)
        op = "MaxPool" if kind is MaxPool2D else "AveragePool"
        b.node(where, op, kernel_shape=list(layer.window), strides=list(layer.strides))
    elif kind is GlobalAvgPool2D:
        axes = [2, 3] if b.cf else [1, 2]
        if b.opset >= 18:
            b.node(where, "ReduceMean", [b.const(f"{where}.axes", axes, np.int64)], keepdims=0)
        else:
            b.node(where, "ReduceMean", axes=axes, keepdims=0)
        b.cf = False
    elif kind is BatchNorm:
        if b.rank > 2:
            b.to_cf(where)
        names = [
            b.const(f"{where}.{f}", getattr(layer, f))
            for f in ("scale", "shift", "running_mean", "running_var")
        ]
        b.node(where, "BatchNormalization", names, epsilon=layer.eps, momentum=1.0 - layer.momentum)
    elif kind is LayerNorm:
        b.to_cl(where)
        names = [b.const(f"{where}.{f}", getattr(layer, f)) for f in ("scale", "shift")]
        b.node(where, "LayerNormalization", names, axis=-1, epsilon=layer.eps)
    elif kind is Flatten:
        b.to_cl(where)
        b.node(where, "Flatten", axis=1)
    elif kind is Dropout:
        b.node(where, "Identity")
    elif kind is Activation:
        if type(layer.activation) is _act.Identity:
            b.node(where, "Identity")
        else:
            _export_activation(b, where, layer.activation)
    else:
        raise ValueError(
            f"{where}: no ONNX export for the layer {kind.__name__} ({layer.config()}); "
            "fnn.onnx writes fnn's built-in layer kinds"
        )


# ONNX's gate blocks, as indices of fnn's (PyTorch's): LSTM i, o, f, c from i, f, g, o;
# GRU z, r, h from r, z, n
_GATE_ORDER: Final = {SimpleRNN: (0,), LSTM: (0, 3, 1, 2), GRU: (1, 0, 2)}


def _onnx_gates(a: np.ndarray[Any, Any], order: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """``a`` (..., G * units) with its gate blocks in ``order``."""
    blocks = np.split(a, len(order), axis=-1)
    return np.concatenate([blocks[k] for k in order], axis=-1)


def _export_recurrent(b: _Builder, where: str, layer: Recurrent) -> None:
    """ONNX's RNN, LSTM or GRU operator (one direction, zero initial state) on the
    sequence made time-major: W (1, G u, F) is ``W_ih.T``, R (1, G u, u) ``W_hh.T`` and
    B (1, 2 G u) the two biases, gate blocks in ONNX's order; the GRU with
    ``linear_before_reset=1`` (the reset gate applied after the hidden product, as
    PyTorch). The output: Y (T, 1, n, u) as (n, T, u), or Y_h (1, n, u) as (n, u)."""
    order = _GATE_ORDER[type(layer)]
    op = {SimpleRNN: "RNN", LSTM: "LSTM", GRU: "GRU"}[type(layer)]
    W = _onnx_gates(layer.W_ih, order).T[None]
    R = _onnx_gates(layer.W_hh, order).T[None]
    B = np.concatenate([_onnx_gates(layer.b_ih, order), _onnx_gates(layer.b_hh, order)])[None]
    extra: dict[str, Any] = {"linear_before_reset": 1} if op == "GRU" else {}
    b.node(where, "Transpose", perm=[1, 0, 2])
    names = [
        b.const(f"{where}.{k}", np.ascontiguousarray(v))
        for k, v in zip("WRB", (W, R, B), strict=True)
    ]
    y = b.op(where, op, [b.cur, *names], n_out=2, hidden_size=layer.units, **extra)
    if layer.return_sequences:
        b.cur = y
        b.node(where, "Squeeze", [b.const(f"{where}.axis1", [1], np.int64)])
        b.node(where, "Transpose", perm=[1, 0, 2])
    else:
        b.cur = y[: -len(".0")] + ".1"
        b.node(where, "Squeeze", [b.const(f"{where}.axis0", [0], np.int64)])


def _export_attention(b: _Builder, where: str, layer: MultiHeadAttention) -> None:
    """Self-attention as MatMul, Reshape, Transpose, Softmax: ``X`` (n, T, d) -> Q, K, V
    (n, h, T, d_h) -> ``softmax(Q K^T / sqrt(d_h) + mask) V`` -> heads side by side
    (n, T, d) -> the output projection. The causal mask, ``-inf`` above the diagonal,
    is made from the input's length by ``Trilu`` on a constant-filled (T, T) matrix."""
    d, h = layer.d_model, layer.heads
    dh = d // h
    x = b.cur
    b.node(where, "MatMul", [b.const(f"{where}.W_in", layer.W_in)])
    if layer.b_in is not None:
        b.node(where, "Add", [b.const(f"{where}.b_in", layer.b_in)])
    b.node(where, "Reshape", [b.const(f"{where}.qkv_shape", [0, 0, 3, h, dh], np.int64)])
    qkv = b.node(where, "Transpose", perm=[2, 0, 3, 1, 4])  # (3, n, h, T, dh)
    q, k, v = (
        b.op(where, "Gather", [qkv, b.const(f"{where}.{name}", j, np.int64)], axis=0)
        for j, name in enumerate("qkv")
    )
    kt = b.op(where, "Transpose", [k], perm=[0, 1, 3, 2])
    b.op(where, "MatMul", [q, kt])
    scores = b.node(where, "Mul", [b.const(f"{where}.scale", 1.0 / math.sqrt(dh))])
    if layer.causal:
        steps = b.op(where, "Shape", [x], start=1, end=2)
        square = b.op(where, "Concat", [steps, steps], axis=0)
        fill = numpy_helper.from_array(np.array([-np.inf], dtype=b.dtype))
        full = b.op(where, "ConstantOfShape", [square], value=fill)
        mask = b.op(where, "Trilu", [full, b.const(f"{where}.one", 1, np.int64)], upper=1)
        b.op(where, "Add", [scores, mask])
    p = b.node(where, "Softmax", axis=-1)
    b.op(where, "MatMul", [p, v])
    b.node(where, "Transpose", perm=[0, 2, 1, 3])
    b.node(where, "Reshape", [b.const(f"{where}.out_shape", [0, 0, d], np.int64)])
    b.node(where, "MatMul", [b.const(f"{where}.W_out", layer.W_out)])
    if layer.b_out is not None:
        b.node(where, "Add", [b.const(f"{where}.b_out", layer.b_out)])


def _model(net: Network, opset: int) -> onnx.ModelProto:
    dtype = net.dtype
    if dtype not in _ELEM:
        raise ValueError(f"only float32 and float64 networks can be exported, got {dtype}")
    b = _Builder(dtype, opset)
    assert net.input_shape is not None
    # a time axis of any length (None) is the dynamic dimension "T"; its size here is
    # only for following shapes through the layers
    dims: list[int | str] = ["T" if d is None else int(d) for d in net.input_shape]
    input_shape = tuple(1 if d is None else int(d) for d in net.input_shape)
    _export_chain(b, "layers", net.layers, input_shape)
    out_dims: list[int | str] = ["T" if d is None else int(d) for d in net.shapes[-1]]
    output = net.loss.output
    if output == "sigmoid":
        b.node("output", "Sigmoid")
    elif output == "softmax":
        b.node("output", "Softmax", axis=-1)
    if b.cur == INPUT_NAME:
        b.node("output", "Identity")
    last = b.nodes[-1]
    last.output[0] = OUTPUT_NAME
    elem = _ELEM[dtype]
    in_elem = elem if net.input_ids is None else onnx.TensorProto.INT64
    inputs = [helper.make_tensor_value_info(INPUT_NAME, in_elem, ["batch", *dims])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", *out_dims])]
    graph = helper.make_graph(
        b.nodes,
        "fnn",
        inputs,
        outputs,
        initializer=b.inits,
        doc_string=(
            f"fnn network: input {INPUT_NAME} (batch, "
            f"{', '.join(map(str, dims))}) channels-last, output "
            f"{OUTPUT_NAME} (batch, {', '.join(map(str, out_dims))}) after the {output} "
            "output activation"
        ),
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="fnn",
        producer_version=VERSION,
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "fnn_version": VERSION,
        "dtype": str(dtype),
        "input_shape": list(net.input_shape),
        "loss": net.loss.config(),
        "layers": [layer.config() for layer in net.layers],
    }
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    return model


def _check_opset(opset: object) -> int:
    newest = int(onnx.defs.onnx_opset_version())
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, int | np.integer):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be between {MIN_OPSET} and {newest} (the newest the installed onnx "
            f"knows), got {opset}"
        )
    return int(opset)


def export(net: Network, path: str | os.PathLike[str], *, opset: int | None = None) -> Path:
    """Write ``net`` as an ONNX model that computes :func:`fnn.predict`.

    Args:
        net: the network (float32 or float64, fnn's built-in layer kinds and
            activations).
        path: the file to write (conventionally ``.onnx``).
        opset: the ONNX opset, from :data:`MIN_OPSET` (17) to the newest the installed
            ``onnx`` knows; default :data:`DEFAULT_OPSET` (18).

    Returns:
        The path written. The model's input is ``"X"`` (batch, *net.input_shape),
        channels-last, the output ``"output"`` (batch, n_outputs), both of the
        network's dtype, with a dynamic batch dimension; ``onnx.checker`` passes on it.
        The file is written atomically (a temporary file in the same folder, then a
        rename), so a write that fails half-way leaves the previous file intact.

    Raises:
        TypeError: ``net`` is not a Network, or ``opset`` not an int.
        ValueError: a layer or activation has no ONNX form (a user-defined kind), or the
            opset is out of range.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be an fnn.Network, got {type(net).__name__}")
    model = _model(net, _check_opset(opset))
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    target = Path(path)
    write_atomically(target, lambda f: f.write(data))
    return target


# --- import: a few operators in NumPy (constant folding and recognising activations) --

_SHAPE_OPS: Final = frozenset(
    {
        "Identity", "Cast", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
        "Concat", "Gather", "Shape", "Slice", "Constant",
    }
)  # fmt: skip


def _ints(a: Any) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _reshape(x: np.ndarray[Any, Any], shape: Any, allowzero: int) -> Any:
    target = _ints(shape)
    if not allowzero:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(target)


def _squeeze(x: np.ndarray[Any, Any], axes: Any) -> Any:
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(_ints(axes)))


def _unsqueeze(x: np.ndarray[Any, Any], axes: Any) -> Any:
    rank = x.ndim + len(_ints(axes))
    for a in sorted(v % rank for v in _ints(axes)):
        x = np.expand_dims(x, a)
    return x


def _slice(x: np.ndarray[Any, Any], i: list[Any]) -> Any:
    starts, ends = _ints(i[1]), _ints(i[2])
    axes = _ints(i[3]) if len(i) > 3 and i[3] is not None else list(range(len(starts)))
    steps = _ints(i[4]) if len(i) > 4 and i[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        index[a] = slice(s, e, st)
    return x[tuple(index)]


def _erf(x: np.ndarray[Any, Any]) -> Any:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


_TENSOR_TYPES: Final[dict[int, type[Any]]] = {
    onnx.TensorProto.FLOAT: np.float64,  # evaluated in float64
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int64,
    onnx.TensorProto.BOOL: np.bool_,
}


def _cast(x: np.ndarray[Any, Any], to: int) -> Any:
    t = _TENSOR_TYPES.get(to)
    if t is None:
        raise ValueError(f"Cast to type {to} is not supported")
    return x.astype(t)


def _gelu(x: np.ndarray[Any, Any], approximate: str) -> Any:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


_BINARY: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Pow": np.power,
    "Greater": np.greater,
    "Less": np.less,
    "GreaterOrEqual": np.greater_equal,
    "LessOrEqual": np.less_equal,
    "Equal": np.equal,
}
_UNARY: Final[dict[str, Callable[[Any], Any]]] = {
    "Neg": np.negative,
    "Abs": np.abs,
    "Sqrt": np.sqrt,
    "Exp": np.exp,
    "Log": np.log,
    "Tanh": np.tanh,
    "Erf": _erf,
    "Sigmoid": _act.sigmoid,
    "Not": np.logical_not,
}
_ELEMENTWISE: Final = frozenset(
    {
        *_BINARY, *_UNARY, "Reciprocal", "Relu", "LeakyRelu", "Elu", "Softplus", "Gelu",
        "Max", "Min", "Where", "Identity", "Cast",
    }
)  # fmt: skip


def _eval_node(op: str, i: list[Any], a: dict[str, Any]) -> np.ndarray[Any, Any]:
    """One node's output in NumPy (float math in float64), for the operators above."""
    return np.asarray(_eval(op, i, a))


def _eval(op: str, i: list[Any], a: dict[str, Any]) -> Any:
    x: Any = i[0] if i else None
    if op in _BINARY:
        return _BINARY[op](x, i[1])
    if op in _UNARY:
        return _UNARY[op](x)
    match op:
        case "Identity":
            return np.asarray(x)
        case "Cast":
            return _cast(x, int(a["to"]))
        case "Transpose":
            return np.transpose(x, a.get("perm"))
        case "Reshape":
            return _reshape(x, i[1], int(a.get("allowzero", 0)))
        case "Flatten":
            ax = int(a.get("axis", 1)) % max(x.ndim, 1)
            return x.reshape(math.prod(x.shape[:ax]), -1)
        case "Squeeze":
            return _squeeze(x, i[1] if len(i) > 1 else a.get("axes"))
        case "Unsqueeze":
            return _unsqueeze(x, i[1] if len(i) > 1 else a["axes"])
        case "Concat":
            return np.concatenate(i, axis=int(a["axis"]))
        case "Gather":
            return np.take(x, np.asarray(i[1], np.int64), axis=int(a.get("axis", 0)))
        case "Shape":
            return np.asarray(x.shape[a.get("start", 0) : a.get("end")], np.int64)
        case "Slice":
            return _slice(x, i)
        case "Reciprocal":
            return 1 / x
        case "Relu":
            return np.maximum(x, 0)
        case "LeakyRelu":
            return np.where(x > 0, x, x * float(a.get("alpha", 0.01)))
        case "Elu":
            return np.where(x > 0, x, float(a.get("alpha", 1.0)) * np.expm1(np.minimum(x, 0)))
        case "Softplus":
            return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
        case "Gelu":
            return _gelu(x, str(a.get("approximate", "none")))
        case "Max":
            return np.asarray(np.maximum.reduce(np.broadcast_arrays(*i)))
        case "Min":
            return np.asarray(np.minimum.reduce(np.broadcast_arrays(*i)))
        case "Where":
            return np.where(x, i[1], i[2])
    raise ValueError(f"operator {op} cannot be evaluated")  # pragma: no cover


# --- import: reading a graph ----------------------------------------------------------


@attrs.frozen(eq=False)
class _Val:
    """The value flowing through the graph, as fnn sees it: ``shape`` the per-sample
    shape in fnn's channels-last layout; ``layout`` how the graph holds it: "cl" as fnn
    does, "cf" channels-first, "gap" a (batch, C, 1, 1) global pool, "ids" token ids,
    "tm" a time-major sequence (T, batch, units), "tm4" and "h" a recurrent operator's
    Y (T, 1, batch, units) and Y_h (1, batch, units); ``perm`` for a
    flattened channels-first image, fnn's feature index of each graph feature."""

    shape: tuple[int, ...]
    layout: str = "cl"
    perm: np.ndarray[Any, Any] | None = None

    def graph_shape(self, n: int) -> tuple[int, ...]:
        if self.layout == "tm":  # a sequence, time-major: (T, n, units)
            return (self.shape[0], n, self.shape[1])
        if self.layout == "tm4":  # a recurrent operator's Y: (T, 1, n, units)
            return (self.shape[0], 1, n, self.shape[1])
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


_ALLOWED_ATTRS: Final[dict[str, frozenset[str]]] = {
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

_ERF_GELU = (
    "is the exact (erf) GELU, which fnn does not have (fnn's GELU is the tanh form): "
    "export the model with nn.GELU(approximate='tanh')"
)


def _linear(op: Any) -> bool:
    return isinstance(op, Dense | Conv2D)


class _Reader:
    """Turns one ONNX graph into fnn layers (see :func:`load`)."""

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
        self.last_linear = False
        self.cur = ""  # the graph's name of the value read so far
        self.producers: dict[str, onnx.NodeProto] = {}  # value name -> the node giving it
        self.uses: dict[str, int] = {}  # value name -> how many node inputs (and outputs) read it
        self.dtype: np.dtype[Any] = np.dtype(np.float32)  # the model's (its input's)
        self.elem = 0  # the model's ONNX element type
        self.max_bytes = max_bytes

    # errors
    def bad(self, what: str) -> ValueError:
        return ValueError(f"{_clip(str(self.path), 200)}: {_clip(what, 700)}")

    def node_error(self, node: onnx.NodeProto, what: str) -> ValueError:
        return self.bad(f"node {_node_names([node])[0]}: {what}")

    def attrs_of(self, node: onnx.NodeProto) -> dict[str, Any]:
        out: dict[str, Any] = {}
        allowed = _ALLOWED_ATTRS.get(node.op_type)
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
        where = f"tensor {_clip(repr(t.name), 60)}"
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise self.bad(f"{where} keeps its data in an external file (refused)")
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
        except (KeyError, ValueError, TypeError):
            raise self.bad(f"{where} has an unknown element type {t.data_type}") from None
        size = math.prod(int(d) for d in t.dims)
        if any(d < 0 for d in t.dims) or size * max(dtype.itemsize, 8) > self.max_bytes:
            raise self.bad(
                f"{where} declares shape {_clip(str(tuple(t.dims)), 100)}, more than "
                f"max_bytes ({self.max_bytes}) allows"
            )
        try:
            a: np.ndarray[Any, Any] = numpy_helper.to_array(t)  # Any without onnx installed
        except (ValueError, TypeError) as e:
            raise self.bad(f"{where} is malformed: {_clip(str(e))}") from None
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
                f"{_clip(repr(name), 60)} is {t}, but the model computes in {self.dtype} "
                "(its input's type); fnn does not round weights to another type",
            )

    # graph
    def read(self) -> tuple[list[Any], _Val, tuple[int, ...], np.dtype[Any]]:
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
        if len(dims) < 2 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
            raise self.bad(
                f"input {x.name!r} must have a batch dimension and fixed positive sizes "
                f"after it, got {[d.dim_value or d.dim_param or '?' for d in dims]}"
            )
        shape = tuple(int(d.dim_value) for d in dims[1:])
        self.dtype = np.dtype(dtype)
        self.elem = int(g.output[0].type.tensor_type.elem_type if ids else ttype.elem_type)
        self.check_sample(f"input {_clip(repr(x.name), 60)}", shape)
        out_type = g.output[0].type.tensor_type.elem_type
        if out_type and out_type != self.elem:
            raise self.bad(
                f"the input is {self.dtype} but the output {_clip(repr(out_name), 60)} "
                f"{helper.tensor_dtype_to_np_dtype(out_type)}; fnn reads models of one type"
            )
        for node in g.node:
            for i in node.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        self.uses[out_name] = self.uses.get(out_name, 0) + 1
        # nodes: constants folded; those that read the input form the chain
        runtime: set[str] = {x.name}
        chain: list[onnx.NodeProto] = []
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise self.node_error(node, f"operator of domain {node.domain!r} is not supported")
            if any(i in runtime for i in node.input if i):
                chain.append(node)
                runtime.update(o for o in node.output if o)
            else:
                self.fold(node)
        if out_name not in runtime:
            raise self.bad(f"output {out_name!r} does not depend on the input")
        first = [n for n in chain if x.name in n.input]
        cl = self.meta is not None or len(shape) <= 2  # vectors, sequences
        if not cl and len(first) == 1 and first[0].op_type == "Transpose":
            perm = self.attrs_of(first[0]).get("perm")
            cl = perm is not None and list(perm) == _cl_to_cf(len(shape) + 1)
        val = (
            _Val(shape) if cl else _Val((*shape[1:], shape[0]), "cf")
        )  # graph (n, c, h, w) is fnn's (n, h, w, c)
        if ids:
            if len(shape) != 1:
                raise self.bad(f"token ids {x.name!r} must have shape (batch, T), got {shape}")
            val = _Val(shape, "ids")
        input_shape = val.shape
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
        self, chain: list[onnx.NodeProto], start: str, end: str, val: _Val, depth: int
    ) -> _Val:
        """The layers of ``chain``, the nodes from the value ``start`` (``val``) to the
        value ``end``, appended to ``self.ops``; ``depth`` is how deep in blocks."""
        self.cur = start
        self.last_linear = False
        # an activation written out as arithmetic may span several segments (its last
        # nodes no longer read the value it started from): runs of them are read together
        pending: list[tuple[list[onnx.NodeProto], str]] = []
        for seg, seg_end in self.segments(chain, start, end):
            if self.join(seg) is None and self.arithmetic(seg):
                pending.append((seg, seg_end))
                continue
            val, pending = self.written_activations(pending, val), []
            if self.join(seg) is not None:
                val = self.block(seg, val, depth)
            else:
                val = self.segment(seg, val, depth == 0 and seg_end == end)
            self.check_sample(f"node {_node_names(seg[-1:])[0]}", val.shape)
            self.cur = seg_end
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

    def block(self, seg: list[onnx.NodeProto], val: _Val, depth: int) -> _Val:
        """A block whose paths leave the value ``self.cur`` and rejoin at the last node
        of ``seg`` (see :meth:`join`): each path is read as a chain of layers (blocks
        nest), and the block becomes a :class:`_Block`."""
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
        outer_ops, outer_linear = self.ops, self.last_linear
        chains: list[list[Any]] = []
        vals: list[_Val] = []
        for path, end in zip(paths, last.input, strict=True):
            self.ops = []
            vals.append(self.read_chain(path, start, end, val, depth + 1) if path else val)
            chains.append(self.ops)
        self.ops, self.last_linear = outer_ops, outer_linear
        self.cur = start
        out = self.merged(last, merge, vals)
        self.ops.append(_Block(merge=merge, chains=chains))
        self.last_linear = False
        return out

    def merged(self, node: onnx.NodeProto, merge: str, vals: list[_Val]) -> _Val:
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
        return _Val((*first.shape[:-1], width), first.layout)

    def check_sample(self, where: str, shape: tuple[int, ...]) -> None:
        """Refuse a declared per-sample shape whose values (at 8 bytes each, as the
        index of a flatten needs) exceed ``max_bytes``, before anything is made."""
        n = math.prod(shape)
        if 8 * n > self.max_bytes:
            raise self.bad(
                f"{where} declares samples of shape {_clip(str(shape), 100)} ({n} values), "
                f"more than max_bytes ({self.max_bytes}) allows; pass a larger max_bytes "
                "to load it"
            )

    def check_fold_size(self, node: onnx.NodeProto, ins: list[Any]) -> None:
        """Refuse, before it is computed, a constant larger than ``max_bytes``."""
        arrays = [np.asarray(v) for v in ins if v is not None]
        op = node.op_type
        try:
            if op in _BINARY or op in ("Max", "Min", "Where"):
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
        elif node.op_type in _SHAPE_OPS or node.op_type in _ELEMENTWISE:
            ins = [self.consts.get(i) for i in node.input]
            self.check_fold_size(node, ins)
            try:
                v = _eval_node(node.op_type, ins, a)
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise self.node_error(node, f"cannot fold the constant: {_clip(str(e))}") from None
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
                f"{_listed(_node_names(seg))}"
            )
        return out

    def arithmetic(self, seg: list[onnx.NodeProto]) -> bool:
        """Whether ``seg`` is elementwise arithmetic that no layer reads on its own."""
        if not all(n.op_type in _ELEMENTWISE for n in seg):
            return False
        if len(seg) > 1:
            return True
        op = seg[0].op_type
        if op == "Add":
            return not self.last_linear
        return not hasattr(self, f"op_{op}")

    def runtime_input(self, node: onnx.NodeProto) -> int:
        idx = [k for k, i in enumerate(node.input) if i and i not in self.consts]
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

    def segment(self, seg: list[onnx.NodeProto], val: _Val, final: bool) -> _Val:
        """The layers of ``seg``, nodes between two values that carry everything: one
        node, an activation written out as arithmetic, or a reshape computed from the
        value's shape (a block of layers with several paths is refused, see
        :meth:`not_a_chain`)."""
        if len(seg) == 1:
            node = seg[0]
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is not None:
                if node.op_type != "Add":
                    self.last_linear = False
                a = self.attrs_of(node)
                if node.op_type == "Softmax" and not final:
                    raise self.node_error(
                        node, "softmax is only supported as the output activation (last node)"
                    )
                try:
                    new: _Val = handler(node, a, val)
                except (ValueError, TypeError) as e:
                    if str(e).startswith(f"{_clip(str(self.path), 200)}: "):
                        raise
                    # a value fnn's layer refuses (a stride of 0, a NaN slope, epsilon 0)
                    raise self.node_error(node, _clip(str(e), 300)) from None
                return new
            if node.op_type not in _ELEMENTWISE and node.op_type not in _SHAPE_OPS:
                raise self.node_error(node, "unsupported operator")
        self.last_linear = False
        if seg[-1].op_type in _RECURRENT:
            return self.recurrent(seg, val)
        if all(n.op_type in _ELEMENTWISE or n.op_type in _SHAPE_OPS for n in seg):
            return self.reshape_region(seg, val)
        raise self.not_a_chain(seg)

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
            f"the input {_clip(repr(name), 60)}"
            if producer is None
            else f"node {_node_names([producer])[0]}'s output"
        )
        return self.bad(
            f"the graph is not a chain of layers: {who} feeds {len(users)} nodes "
            f"({_listed(_node_names(users))}); fnn reads chains of layers and blocks whose "
            "paths rejoin through Add, Sum or Concat"
        )

    # recurrent layers: ONNX's RNN, LSTM and GRU operators
    def recurrent(self, seg: list[onnx.NodeProto], val: _Val) -> _Val:
        """A recurrent operator on the sequence made time-major, with zero initial states
        computed from the sequence's shape (as PyTorch's TorchScript exporter writes):
        the sequence's ``Transpose``, shape arithmetic, and ``ConstantOfShape`` of zero."""
        node = seg[-1]
        made = {o: n for n in seg for o in n.output if o}
        x_node = made.get(node.input[0])
        if (
            x_node is None
            or x_node.op_type != "Transpose"
            or list(x_node.input) != [self.cur]
            or list(self.attrs_of(x_node).get("perm", [])) != [1, 0, 2]
            or val.layout != "cl"
            or len(val.shape) != 2
        ):
            raise self.node_error(node, "reads a sequence that is not (T, batch, features)")
        for k in (5, 6):
            if k < len(node.input) and node.input[k] and node.input[k] in made:
                init = made[node.input[k]]
                fill = self.attrs_of(init).get("value")
                zero = fill is None or not np.any(numpy_helper.to_array(fill))
                if init.op_type != "ConstantOfShape" or not zero:
                    raise self.node_error(node, "only a zero initial state is supported")
        for n in seg[:-1]:
            if n is not x_node and n.op_type not in (*_SHAPE_OPS, "ConstantOfShape"):
                raise self.node_error(n, "unsupported operator (around a recurrent layer)")
        return self.rnn(node, _Val(val.shape, "tm"))

    def rnn(self, node: onnx.NodeProto, val: _Val) -> _Val:
        """The fnn recurrent layer of an RNN, LSTM or GRU node (one direction, PyTorch's
        activations) on a time-major sequence; its output the one of Y and Y_h the graph
        reads (see :meth:`segments`: the other is unused)."""
        op = node.op_type
        a = self.attrs_of(node)
        cls, acts = _RECURRENT[op]
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
        back = tuple(int(k) for k in np.argsort(_GATE_ORDER[cls]))  # fnn's blocks from ONNX's
        used = [k for k, o in enumerate(node.output) if o and self.uses.get(o)]
        if used not in ([0], [1]):
            raise self.node_error(node, "only one of Y and Y_h may be read (Y_c is not)")
        seq = used == [0]
        self.ops.append(
            cls(
                W_ih=_onnx_gates(W[0].T, back),
                W_hh=_onnx_gates(R[0].T, back),
                b_ih=_onnx_gates(B[0, : G * u], back),
                b_hh=_onnx_gates(B[0, G * u :], back),
                return_sequences=seq,
            )
        )
        return _Val((val.shape[0], u), "tm4") if seq else _Val((u,), "h")

    def op_RNN(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.rnn(node, val)

    def op_LSTM(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.rnn(node, val)

    def op_GRU(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.rnn(node, val)

    def op_Gather(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
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
            return _Val((val.shape[0], int(W.shape[1])))
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
            return _Val(val.shape[1:])
        raise self.node_error(
            node, "only an embedding, or the last step of a recurrent layer's sequence"
        )

    # one node each
    def op_Gemm(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if self.runtime_input(node) != 0 or int(a.get("transA", 0)):
            raise self.node_error(node, "only X @ W (+ b) with constant W is supported")
        W = self.const(node, 1, "the weight")
        assert W is not None
        if W.ndim != 2:
            raise self.node_error(node, f"weight must be 2-D, got shape {W.shape}")
        if int(a.get("transB", 0)):
            W = W.T
        W = W * float(a.get("alpha", 1.0))
        C = self.const(node, 2, "the bias")
        b = np.zeros(W.shape[1])
        if C is not None:
            try:
                b = np.broadcast_to(C * float(a.get("beta", 1.0)), (1, W.shape[1])).reshape(-1)
            except ValueError:
                raise self.node_error(
                    node, f"bias of shape {C.shape} does not fit {W.shape[1]} outputs"
                ) from None
        return self.dense(node, W, b, val)

    def op_MatMul(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if self.runtime_input(node) != 0:
            raise self.node_error(node, "only X @ W with constant W is supported")
        W = self.const(node, 1, "the weight")
        assert W is not None
        if W.ndim != 2:
            raise self.node_error(node, f"weight must be 2-D, got shape {W.shape}")
        return self.dense(node, W, np.zeros(W.shape[1]), val)

    def dense(self, node: onnx.NodeProto, W: Any, b: Any, val: _Val) -> _Val:
        if len(val.shape) not in (1, 2) or val.layout != "cl":
            raise self.node_error(
                node,
                "a dense layer needs vectors or sequences, got samples of shape "
                f"{val.graph_shape(1)[1:]}",
            )
        if W.shape[0] != val.shape[-1]:
            raise self.node_error(
                node,
                f"weight of shape {tuple(W.shape)} takes {W.shape[0]} inputs, but the layer "
                f"before gives {val.shape[-1]}",
            )
        self.ops.append(Dense(W=val.features(W), b=b))
        self.last_linear = True
        return _Val((*val.shape[:-1], int(W.shape[1])))

    def op_Add(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        k = self.runtime_input(node)
        c = self.const(node, 1 - k, "the added value")
        last: Any = self.ops[-1] if self.ops else None
        if not self.last_linear or c is None or not _linear(last):
            self.last_linear = False
            return self.written_activations([([node], node.output[0])], val)
        n = int(last.b.shape[0])
        ok = c.size == n and (
            c.shape[-1:] == (n,) if isinstance(last, Dense) else c.squeeze().shape == (n,)
        )
        if isinstance(last, Conv2D) and ok:
            ok = c.ndim <= 1 or (c.shape[-2:] == (1, 1) and c.shape[-3] == n)
        if not ok:
            raise self.node_error(node, f"adds shape {c.shape} to {n} outputs of the layer before")
        self.ops[-1] = attrs.evolve(last, b=last.b + c.reshape(-1))
        self.last_linear = False
        return val

    def op_Conv(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if self.runtime_input(node) != 0:
            raise self.node_error(node, "only a convolution with constant weights is supported")
        W = self.const(node, 1, "the weight")
        assert W is not None
        if val.layout != "cf" or len(val.shape) != 3 or W.ndim != 4:
            raise self.node_error(node, "only 2-D convolutions of (batch, C, H, W) images")
        if int(a.get("group", 1)) != 1:
            raise self.node_error(node, f"attribute group={a['group']} is not supported")
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
            raise self.node_error(node, f"attribute dilations={a['dilations']} is not supported")
        if list(a.get("kernel_shape", W.shape[2:])) != list(W.shape[2:]):
            raise self.node_error(node, "kernel_shape does not match the weight")
        if W.shape[1] != val.shape[-1]:
            raise self.node_error(
                node,
                f"weight of shape {tuple(W.shape)} takes {W.shape[1]} channels, but the "
                f"layer before gives {val.shape[-1]}",
            )
        padding = self.padding(node, a)
        b = self.const(node, 2, "the bias")
        layer = Conv2D(
            W=W.transpose(2, 3, 1, 0),
            b=np.zeros(W.shape[0]) if b is None else b.reshape(-1),
            stride=tuple(_ints(a.get("strides", [1, 1]))),
            padding=padding,
        )
        self.ops.append(layer)
        self.last_linear = True
        return _Val(self.out_shape(node, layer, val), "cf")

    def padding(self, node: onnx.NodeProto, a: dict[str, Any]) -> PaddingLike:
        auto = str(a.get("auto_pad", "NOTSET"))
        if auto == "VALID":
            return "valid"
        if auto == "SAME_UPPER":
            return "same"
        if auto != "NOTSET":
            raise self.node_error(node, f"attribute auto_pad={auto} is not supported")
        t, le, bo, r = _ints(a.get("pads", [0, 0, 0, 0]))
        return "valid" if t == le == bo == r == 0 else ((t, bo), (le, r))

    def out_shape(self, node: onnx.NodeProto, layer: Any, val: _Val) -> tuple[int, ...]:
        try:
            return tuple(layer.output_shape(val.shape))
        except ValueError as e:
            raise self.node_error(node, str(e).replace("{layer}", "the layer")) from None

    def pool(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val, cls: Any) -> _Val:
        if val.layout != "cf" or len(val.shape) != 3:
            raise self.node_error(node, "only 2-D pooling of (batch, C, H, W) images")
        if str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
            raise self.node_error(node, f"attribute auto_pad={a['auto_pad']} is not supported")
        if any(_ints(a.get("pads", [0]))):
            raise self.node_error(node, f"attribute pads={a['pads']} is not supported")
        if any(int(d) != 1 for d in a.get("dilations", [1])):
            raise self.node_error(node, f"attribute dilations={a['dilations']} is not supported")
        if int(a.get("storage_order", 0)):
            raise self.node_error(node, "attribute storage_order=1 is not supported")
        window = tuple(_ints(a["kernel_shape"]))
        strides = tuple(_ints(a.get("strides", [1, 1])))
        layer = cls(window=window, stride=strides)
        shape = self.out_shape(node, layer, val)
        if int(a.get("ceil_mode", 0)):
            h, w = val.shape[:2]
            ceil = [-(-(s - k) // st) + 1 for s, k, st in zip((h, w), window, strides, strict=True)]
            if tuple(ceil) != shape[:2]:
                raise self.node_error(node, "attribute ceil_mode=1 changes the output size here")
        self.ops.append(layer)
        return _Val(shape, "cf")

    def op_MaxPool(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.pool(node, a, val, MaxPool2D)

    def op_AveragePool(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.pool(node, a, val, AvgPool2D)

    def op_GlobalAveragePool(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if val.layout != "cf" or len(val.shape) != 3:
            raise self.node_error(node, "only (batch, C, H, W) images")
        self.ops.append(GlobalAvgPool2D())
        return _Val((val.shape[-1],), "gap")

    def op_ReduceMean(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        axes = self.const(node, 1, "axes") if len(node.input) > 1 else a.get("axes")
        spatial = {2, 3} if val.layout == "cf" else {1, 2}
        if len(val.shape) != 3 or axes is None or {v % 4 for v in _ints(axes)} != spatial:
            raise self.node_error(node, "only the mean over all pixels of images is supported")
        self.ops.append(GlobalAvgPool2D())
        keep = int(a.get("keepdims", 1))
        if keep and val.layout != "cf":
            raise self.node_error(node, "keepdims=1 on channels-last images is not supported")
        return _Val((val.shape[-1],), "gap" if keep else "cl")

    def op_BatchNormalization(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if self.runtime_input(node) != 0 or int(a.get("training_mode", 0)):
            raise self.node_error(node, "only inference mode (training_mode=0) is supported")
        if any(o for o in node.output[1:]):
            raise self.node_error(node, "the running-statistics outputs are not supported")
        if val.layout == "cl" and len(val.shape) != 1:
            raise self.node_error(
                node, "normalises axis 1, which is not fnn's channel axis (the last) here"
            )
        params = [self.const(node, k + 1, n) for k, n in enumerate(("scale", "B", "mean", "var"))]
        c = val.shape[-1]
        if any(p is None or p.shape != (c,) for p in params):
            raise self.node_error(
                node, f"scale, B, mean and var must have shape ({c},), got "
                f"{[None if p is None else p.shape for p in params]}"
            )  # fmt: skip
        scale, shift, mean, var = (val.features(p) for p in params if p is not None)
        momentum = round(1.0 - float(a.get("momentum", 0.9)), 7)
        self.ops.append(
            BatchNorm(
                scale=scale,
                shift=shift,
                running_mean=mean,
                running_var=var,
                momentum=min(max(momentum, 0.0), 1.0),
                eps=float(a.get("epsilon", 1e-5)),
            )
        )
        return val

    def op_LayerNormalization(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        rank = len(val.shape) + 1
        if int(a.get("axis", -1)) % rank != rank - 1 or val.layout != "cl":
            raise self.node_error(node, "only normalisation over the channels (last axis)")
        if any(o for o in node.output[1:]):
            raise self.node_error(node, "the mean and inverse-deviation outputs are unsupported")
        c = val.shape[-1]
        scale = self.const(node, 1, "scale")
        shift = self.const(node, 2, "B")
        shift = np.zeros(c) if shift is None else shift
        if scale is None or scale.shape != (c,) or shift.shape != (c,):
            raise self.node_error(node, f"scale and B must have shape ({c},)")
        self.ops.append(
            LayerNorm(
                scale=val.features(scale),
                shift=val.features(shift),
                eps=float(a.get("epsilon", 1e-5)),
            )
        )
        return val

    def flatten(self, val: _Val) -> _Val:
        if val.layout == "gap":
            return _Val(val.shape)
        self.ops.append(Flatten())
        if val.layout == "cf":
            h, w, c = val.shape
            perm = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
            return _Val((h * w * c,), "cl", perm)
        return _Val((math.prod(val.shape),), "cl", val.perm)

    def op_Flatten(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if int(a.get("axis", 1)) != 1:
            raise self.node_error(node, f"attribute axis={a['axis']} is not supported")
        return self.flatten(val)

    def op_Reshape(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        shape = self.const(node, 1, "the shape")
        assert shape is not None
        target = _ints(shape)
        size = math.prod(val.shape)
        if len(target) == 2 and target[0] in (0, -1) and target[1] in (-1, size):
            return self.flatten(val)
        return self.reshape_region([node], val)

    def op_Squeeze(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        axes = self.const(node, 1, "axes") if len(node.input) > 1 else a.get("axes")
        if val.layout == "gap" and axes is not None and {v % 4 for v in _ints(axes)} == {2, 3}:
            return _Val(val.shape)
        if val.layout == "tm4" and axes is not None and [v % 4 for v in _ints(axes)] == [1]:
            return _Val(val.shape, "tm")
        if val.layout == "h" and axes is not None and [v % 3 for v in _ints(axes)] == [0]:
            return _Val(val.shape)
        return self.reshape_region([node], val)

    def op_Transpose(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        rank = len(val.shape) + 1
        perm = list(a.get("perm", []))
        if val.layout == "cl" and rank > 2 and perm == _cl_to_cf(rank):
            return _Val(val.shape, "cf")
        if val.layout == "cf" and perm == _cf_to_cl(rank):
            return _Val(val.shape, "cl")
        if val.layout in ("cl", "tm") and len(val.shape) == 2 and perm == [1, 0, 2]:
            return _Val(val.shape, "tm" if val.layout == "cl" else "cl")
        raise self.node_error(node, f"transpose perm={perm} is not supported here")

    def op_Dropout(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        ratio = self.const(node, 1, "ratio", weight=False)
        mode = self.const(node, 2, "training_mode")
        if mode is not None and bool(mode):
            raise self.node_error(node, "training_mode=True is not supported")
        self.ops.append(Dropout(rate=0.5 if ratio is None else float(ratio)))
        return val

    def op_Identity(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        self.ops.append(Activation(_act.Identity()))
        return val

    def activation(self, act: _act.Activation, val: _Val) -> _Val:
        self.ops.append(Activation(act))
        return val

    def op_Relu(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.activation(_act.ReLU(), val)

    def op_Sigmoid(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.activation(_act.Sigmoid(), val)

    def op_Tanh(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.activation(_act.Tanh(), val)

    def op_Softplus(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.activation(_act.Softplus(), val)

    def op_LeakyRelu(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.activation(_act.LeakyReLU(float(a.get("alpha", 0.01))), val)

    def op_Elu(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        return self.activation(_act.ELU(float(a.get("alpha", 1.0))), val)

    def op_Gelu(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if str(a.get("approximate", "none")) != "tanh":
            raise self.node_error(node, _ERF_GELU)
        return self.activation(_act.GELU(), val)

    def op_Softmax(self, node: onnx.NodeProto, a: dict[str, Any], val: _Val) -> _Val:
        if len(val.shape) != 1 or int(a.get("axis", -1)) not in (-1, 1):
            raise self.node_error(node, "only a softmax over the logits (last axis)")
        self.output = "softmax"
        return val

    # several nodes: an activation written out, or a flatten computed from the shape
    def written_activations(
        self, pieces: list[tuple[list[onnx.NodeProto], str]], val: _Val
    ) -> _Val:
        """Consecutive segments of elementwise arithmetic as the fnn activations they
        compute, recognised by their structure and exact constants (never by their
        values): the shortest run of segments that is one, then the next run."""
        i = 0
        while i < len(pieces):
            for j in range(i + 1, min(i + _MAX_PIECES, len(pieces)) + 1):
                nodes = [n for seg, _ in pieces[i:j] for n in seg]
                if len(nodes) > _MAX_ACTIVATION_NODES:
                    continue  # larger than any form an activation is written in
                expr = self.expression(nodes, len(val.shape) + 1)
                try:
                    act = _match_activation(expr, self.dtype)
                except ValueError as e:  # a recognised form with a constant fnn refuses
                    raise self.node_error(nodes[-1], str(e)) from None
                if act is not None:
                    self.ops.append(Activation(act))
                    self.cur = pieces[j - 1][1]
                    i = j
                    break
            else:
                seg = pieces[i][0]
                if len(seg) > _MAX_ACTIVATION_NODES:  # a long block whose paths join
                    raise self.not_a_chain(seg)
                if any(n.op_type == "Erf" for seg, _ in pieces[i:] for n in seg):
                    raise self.node_error(seg[-1], _ERF_GELU)
                raise self.node_error(
                    seg[0],
                    f"elementwise arithmetic that is none of fnn's layers or activations "
                    f"(nodes {_listed(_node_names(seg))}); fnn reads an operator only when "
                    "its structure and constants are exactly one it has",
                )
        return val

    def expression(self, seg: list[onnx.NodeProto], rank: int) -> _Expr:
        """What ``seg`` computes from the value at ``self.cur``, as a canonical
        expression (see :func:`_canon`)."""
        env: dict[str, _Expr] = {self.cur: _X}
        for n in seg:
            args: list[_Expr] = []
            for i in n.input:
                if i in env:
                    args.append(env[i])
                elif i in self.consts:
                    self.check_type(n, i)
                    args.append(_constant(self.consts[i], rank))
                else:
                    args.append(("missing", i))
            env[n.output[0]] = _canon(n.op_type, self.attrs_of(n), args, self.elem)
        return env[seg[-1].output[0]]

    def reshape_region(self, seg: list[onnx.NodeProto], val: _Val) -> _Val:
        """``seg``, reshapes of the value whose target is computed from its shape (as
        ``x.view(x.size(0), -1)`` is written), as a flatten or nothing. The shape
        arithmetic is evaluated exactly, on integers, for two batch sizes; the value's
        data is never made, only its shape followed."""
        results = []
        for batch in _BATCH_SIZES:
            env: dict[str, Any] = {self.cur: _Shaped(val.graph_shape(batch))}
            for n in seg:
                ins = [env.get(i, self.consts.get(i)) if i else None for i in n.input]
                env[n.output[0]] = self.shape_step(n, ins)
            out = env[seg[-1].output[0]]
            if not isinstance(out, _Shaped):
                raise self.node_error(seg[-1], "gives a shape, not the layer's output")
            results.append((batch, out.shape))
        if all(shape == val.graph_shape(batch) for batch, shape in results):
            return val
        if all(shape == (batch, math.prod(val.shape)) for batch, shape in results):
            return self.flatten(val)
        batch, shape = results[0]
        raise self.node_error(
            seg[-1],
            f"reshapes samples of shape {val.graph_shape(batch)[1:]} to {shape[1:]} (for a "
            f"batch of {batch}, giving {shape[:1]}); fnn reads only reshapes that flatten",
        )

    def shape_step(self, n: onnx.NodeProto, ins: list[Any]) -> Any:
        """One node of a reshape region: integer arithmetic on shapes, or a reshape of
        the value (a :class:`_Shaped`)."""
        a = self.attrs_of(n)
        if not any(isinstance(v, _Shaped) for v in ins):
            if any(v is None for v, i in zip(ins, n.input, strict=True) if i):
                raise self.node_error(n, "reads a value that is neither the layer's nor constant")
            self.check_fold_size(n, ins)
            try:
                return _eval_node(n.op_type, ins, a)
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise self.node_error(n, f"cannot compute the shape: {_clip(str(e))}") from None
        x = ins[0]
        if not isinstance(x, _Shaped) or any(isinstance(v, _Shaped) for v in ins[1:]):
            raise self.node_error(n, "combines the layer's value with itself or another")
        if n.op_type == "Shape":
            return np.asarray(x.shape[a.get("start", 0) : a.get("end")], np.int64)
        try:
            return _moved(n.op_type, x, ins, a)
        except ValueError as e:
            raise self.node_error(n, str(e)) from None


MAX_BLOCK_DEPTH: Final = 64
"""The deepest blocks (residual or parallel) may nest in a graph fnn reads."""


@attrs.frozen(eq=False)
class _Block:
    """A block read from a graph: paths from one value, rejoined by ``merge`` ("add"
    or "concat"); each chain the ops of one path, in the join's input order."""

    merge: str
    chains: list[list[Any]]


_RECURRENT: Final[dict[str, tuple[type[Recurrent], tuple[str, ...]]]] = {
    "RNN": (SimpleRNN, ("Tanh",)),
    "LSTM": (LSTM, ("Sigmoid", "Tanh", "Tanh")),
    "GRU": (GRU, ("Sigmoid", "Tanh")),
}
"""ONNX's recurrent operators: the fnn layer and PyTorch's activations."""

_MAX_PIECES: Final = 4
"""The most segments one activation written out as arithmetic spans."""
_MAX_ACTIVATION_NODES: Final = 32
"""The most nodes one activation written out as arithmetic has (GELU's formula, 9)."""


class _Shaped:
    """The layer's value in a reshape region: only its shape (batch first) is known."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


_BATCH_SIZES: Final = (2**20 + 7, 2**21 + 17)
"""The batch sizes a reshape region's shape arithmetic is evaluated for: a model that
flattens gives (batch, features) for both, whatever constants it holds."""


def _moved(op: str, x: _Shaped, ins: list[Any], a: dict[str, Any]) -> _Shaped:
    """The shape of ``x`` after a node that only moves its data in row-major order
    (Identity, Reshape, Flatten, Squeeze, Unsqueeze); ValueError for any other."""
    shape = list(x.shape)
    axes_in = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("axes")
    if op == "Identity":
        return x
    if op == "Reshape":
        target = _ints(ins[1])
        if not int(a.get("allowzero", 0)):
            target = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(target)]
        total = math.prod(shape)
        if target.count(-1) > 1 or any(d < -1 for d in target):
            raise ValueError(f"reshape to {target} is not a valid shape")
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if known == 0 or total % known:
                raise ValueError(f"cannot reshape {tuple(shape)} to {target}")
            target[target.index(-1)] = total // known
        if math.prod(target) != total:
            raise ValueError(f"cannot reshape {tuple(shape)} to {target}")
        return _Shaped(tuple(target))
    if op == "Flatten":
        ax = int(a.get("axis", 1))
        if not -len(shape) <= ax <= len(shape):
            raise ValueError(f"axis {ax} is out of range for rank {len(shape)}")
        ax %= len(shape) + 1
        return _Shaped((math.prod(shape[:ax]), math.prod(shape[ax:])))
    if op == "Squeeze":
        if axes_in is None:
            return _Shaped(tuple(d for d in shape if d != 1))
        axes = {v % len(shape) for v in _ints(axes_in)}
        if any(shape[k] != 1 for k in axes):
            raise ValueError(f"cannot squeeze axes {sorted(axes)} of {tuple(shape)}")
        return _Shaped(tuple(d for k, d in enumerate(shape) if k not in axes))
    if op == "Unsqueeze" and axes_in is not None:
        rank = len(shape) + len(_ints(axes_in))
        for k in sorted(v % rank for v in _ints(axes_in)):
            shape.insert(k, 1)
        return _Shaped(tuple(shape))
    raise ValueError(
        "computes with the layer's value (fnn reads shape arithmetic around reshapes, "
        "not arithmetic on the data)"
    )


# --- import: activations written out as arithmetic, recognised by their structure ----

_Expr = tuple[Any, ...]
"""An expression over the layer's value: ``_X`` itself, ``("c", v)`` a scalar constant,
``(op, *args)`` an operator; commutative operators hold their flattened arguments
sorted, so ``0.5 * (x * t)`` and ``(t * 0.5) * x`` are the same expression."""
_X: Final[_Expr] = ("x",)
_COMMUTATIVE: Final = frozenset({"Add", "Mul", "Max", "Min"})
_BOOLEAN: Final = frozenset({"Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal", "Not"})


def _constant(a: np.ndarray[Any, Any], rank: int) -> _Expr:
    """A constant operand: a scalar (one float that broadcasts without changing the
    value's shape), or an opaque tensor no activation has."""
    if a.size == 1 and a.ndim <= rank and a.dtype.kind == "f":
        return ("c", float(a.reshape(-1)[0]))
    return ("tensor", tuple(a.shape), str(a.dtype))


def _canon(op: str, a: dict[str, Any], args: list[_Expr], elem: int | None) -> _Expr:
    """The canonical expression of ``op`` on ``args``: Identity and a Cast to the
    model's own float type are nothing, ``Pow(x, 3)`` is ``x * x * x``, and commutative
    operators are flattened and sorted. Nothing else is rewritten, so two expressions
    are equal only when they compute the same function."""
    if op == "Identity" and len(args) == 1:
        return args[0]
    same_type = op == "Cast" and not a.keys() - {"to", "saturate"} and a.get("to") == elem
    if same_type and len(args) == 1 and args[0][0] not in _BOOLEAN:
        return args[0]
    if op == "Pow" and len(args) == 2 and args[1] == ("c", 3.0):
        return _canon("Mul", {}, [args[0]] * 3, elem)
    if op in _COMMUTATIVE and not a:
        flat: list[_Expr] = []
        for x in args:
            flat.extend(x[1] if x[0] == op else [x])
        return (op, tuple(sorted(flat, key=repr)))
    if a:
        return (op, repr(sorted(a.items())), *args)
    return (op, *args)


def _match_activation(e: _Expr, dtype: np.dtype[Any]) -> _act.Activation | None:
    """The fnn activation that the expression ``e`` is, exactly, with the constants
    the model's ``dtype`` holds; None if it is none of them. The forms: those
    :func:`export` writes (GELU's formula, leaky ReLU and ELU with float64 constants),
    PyTorch's tanh-GELU (before opset 20) and its thresholded softplus where the
    threshold changes no value of ``dtype``."""

    def c(v: float) -> _Expr:
        return ("c", float(dtype.type(v)))

    def op(name: str, *args: _Expr) -> _Expr:
        return _canon(name, {}, list(args), None)

    if e == _X:
        return _act.Identity()
    simple: dict[_Expr, _act.Activation] = {
        ("Relu", _X): _act.ReLU(),
        ("Sigmoid", _X): _act.Sigmoid(),
        ("Tanh", _X): _act.Tanh(),
        ("Softplus", _X): _act.Softplus(),
    }
    if e in simple:
        return simple[e]
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    inner = op(
        "Mul", c(math.sqrt(2.0 / math.pi)), op("Add", _X, op("Mul", c(0.044715), _X, _X, _X))
    )
    if e == op("Mul", c(0.5), _X, op("Add", c(1.0), ("Tanh", inner))):
        return _act.GELU()
    if e[0] != "Where" or len(e) != 4 or e[2] != _X:
        return None
    cond, other = e[1], e[3]
    if cond == ("Greater", _X, c(0.0)) and other[0] == "Mul" and len(other[1]) == 2:
        consts = [v for v in other[1] if v[0] == "c"]
        if len(consts) == 1:
            k = consts[0]
            rest = other[1][1] if other[1][0] == k else other[1][0]
            if rest == _X:  # where(x > 0, x, slope x)
                return _act.LeakyReLU(k[1])
            if rest == ("Sub", ("Exp", op("Min", _X, c(0.0))), c(1.0)):  # alpha (e^x - 1)
                return _act.ELU(k[1])
    if (
        len(cond) == 3
        and cond[0] == "Greater"
        and cond[1] == _X
        and cond[2][0] == "c"
        and other == ("Softplus", _X)
    ):
        # where(x > t, x, softplus(x)) is softplus(x) in this dtype when softplus(x) - x,
        # at most exp(-x), is below half a unit in the last place of x for every x > t
        t = cond[2][1]
        if 0 < t < math.inf and math.exp(-t) < float(np.spacing(dtype.type(t))) / 2:
            return _act.Softplus()
    return None


def _node_names(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    return [f"{_clip(repr(n.name or n.output[0]), 60)} ({n.op_type})" for n in nodes]


def _listed(items: Sequence[str], most: int = 8) -> str:
    """``items`` joined, the first ``most`` of them and "... and N more"."""
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} ... and {len(items) - most} more"


# --- import: from nodes to layers -----------------------------------------------------


def _fuse(ops: list[Any]) -> list[Any]:
    """Without fnn's metadata: identity and no-op layers dropped, each activation that
    follows a dense or convolution layer made that layer's own."""
    out: list[Any] = []
    for op in ops:
        if isinstance(op, _Block):
            out.append(_composite(op.merge, [_fuse(c) for c in op.chains]))
            continue
        if isinstance(op, Activation) and type(op.activation) is _act.Identity:
            continue
        if (
            isinstance(op, Activation)
            and out
            and _linear(out[-1])
            and type(out[-1].activation) is _act.Identity
        ):
            out[-1] = attrs.evolve(out[-1], activation=op.activation)
            continue
        out.append(op)
    return out


def _composite(merge: str, chains: list[list[Any]]) -> Residual | Parallel:
    """The fnn layer of a block read without fnn's metadata: two paths added are a
    residual block (the body the first path that has layers), others a parallel one."""
    if merge == "add" and len(chains) == 2:
        body, other = chains if chains[0] or not chains[1] else chains[::-1]
        return Residual(body=body, shortcut=other)
    return Parallel(branches=chains, merge="concat" if merge == "concat" else "add")


def _rounded(x: Any) -> Any:
    if isinstance(x, float):
        return float(np.float32(x))
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_rounded(v) for v in x]
    return x


def _semantics(layer: Any) -> Any:
    """What a graph says of a layer: its config with floats at float32 precision (ONNX
    attributes), pool strides resolved, and without what ONNX does not hold (dropout
    rates, batch-norm momentum)."""
    cfg = dict(layer.config())
    if isinstance(layer, MaxPool2D | AvgPool2D):
        cfg["stride"] = list(layer.strides)
    for k in ("rate", "momentum"):
        cfg.pop(k, None)
    return _rounded(json.loads(json.dumps(cfg)))


def _align_block(
    bad: Callable[[str], ValueError], op: Any, cfg: dict[str, Any], where: str
) -> Residual | Parallel:
    """With fnn's metadata: a block of the graph as the metadata's residual or parallel
    layer, each path aligned with its chain of configs."""
    kind = cfg["kind"]
    merge: Any
    if kind == "residual":
        names, cfg_chains, merge = (
            ["body", "shortcut"],
            [cfg.get("body"), cfg.get("shortcut")],
            "add",
        )
    else:
        branches = cfg.get("branches")
        if not isinstance(branches, list):
            raise bad(f"metadata: {where} is not a layer config: {_clip(repr(cfg))}")
        names = [f"branches.{k}" for k in range(len(branches))]
        cfg_chains, merge = branches, cfg.get("merge")
    if not isinstance(op, _Block) or op.merge != merge or len(op.chains) != len(cfg_chains):
        raise bad(f"metadata: {where} is {_clip(repr(cfg))}, but the graph computes {op} there")
    chains = []
    for name, ops, cfgs in zip(names, op.chains, cfg_chains, strict=True):
        if not isinstance(cfgs, list):
            raise bad(f"metadata: {where}.{name} is not a list of layer configs")
        chains.append(_align(bad, ops, cfgs, f"{where}.{name}"))
    if kind == "residual":
        return Residual(body=chains[0], shortcut=chains[1])
    return Parallel(branches=chains, merge=merge)


def _align(
    bad: Callable[[str], ValueError], ops: list[Any], cfgs: list[Any], where: str = "layers"
) -> list[Any]:
    """With fnn's metadata: the graph's layers grouped as the metadata's, each built from
    the metadata's config and the graph's arrays, checked to compute the same."""
    from fnn.layers.base import LAYERS

    layers: list[Any] = []
    k = 0
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict) or not isinstance(cfg.get("kind"), str):
            raise bad(f"metadata: {where}.{i} is not a layer config: {_clip(repr(cfg))}")
        kind = cfg["kind"]
        if k >= len(ops):
            raise bad(f"metadata: {where}.{i} ({kind}) has no nodes in the graph")
        op = ops[k]
        k += 1
        if kind in ("residual", "parallel"):
            layers.append(_align_block(bad, op, cfg, f"{where}.{i}"))
            continue
        if isinstance(op, _Block):
            raise bad(f"metadata: {where}.{i} is {_clip(repr(cfg))}, but the graph has a block")
        act = cfg.get("activation")
        if (
            kind in ("dense", "conv2d")
            and _linear(op)
            and isinstance(act, dict)
            and act.get("name") not in ("identity", "linear")
        ):
            if k >= len(ops) or not isinstance(ops[k], Activation):
                raise bad(f"metadata: {where}.{i} has activation {act}, the graph none")
            op = attrs.evolve(op, activation=ops[k].activation)
            k += 1
        if kind == "dropout" and isinstance(op, Activation):
            op = Dropout(rate=0.0)
        try:
            built = LAYERS[kind].build(cfg, tree.flatten(op))
        except (KeyError, ValueError, TypeError) as e:
            raise bad(f"metadata: {where}.{i} ({kind}) cannot be built from the graph: {e}") from e
        if type(built) is not type(op) or _semantics(built) != _semantics(op):
            raise bad(f"metadata: {where}.{i} is {cfg}, but the graph computes {op.config()} there")
        layers.append(built)
    rest = ops[k:]
    if any(not (isinstance(o, Activation) and type(o.activation) is _act.Identity) for o in rest):
        raise bad(f"metadata lists {len(cfgs)} layers in {where}, the graph has more: {rest}")
    return layers


def _metadata(path: Path, model: onnx.ModelProto) -> dict[str, Any] | None:
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        return None
    try:
        meta = json.loads(props[METADATA_KEY])
    except ValueError as e:
        raise ValueError(f"{path}: metadata {METADATA_KEY!r} is not JSON: {e}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or not isinstance(meta.get("version"), int)
        or not isinstance(meta.get("layers"), list)
        or not isinstance(meta.get("loss"), dict)
    ):
        raise ValueError(f"{path}: metadata {METADATA_KEY!r} is not fnn's ({FORMAT})")
    if meta["version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written by a newer fnn (metadata version {meta['version']}, this fnn "
            f"reads {FORMAT_VERSION})"
        )
    return meta


def _read_external_data(path: Path, model: onnx.ModelProto, max_bytes: int) -> None:
    """Bring initializers kept in files beside the model (PyTorch's exporter writes
    ``model.onnx.data``) into the model: only regular files in the model's folder, read
    at their declared offset and length."""
    folder = path.resolve().parent
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        where = info.get("location", "")
        if "\0" in where:
            raise ValueError(
                f"{path}: tensor {_clip(repr(t.name), 60)} has a NUL byte in its external-data "
                f"location {_clip(repr(where), 100)}"
            )
        target = (folder / where).resolve()
        if not where or Path(where).is_absolute() or not target.is_relative_to(folder):
            raise ValueError(
                f"{path}: tensor {t.name!r} points outside the model's folder ({where!r})"
            )
        if not target.is_file():
            raise ValueError(f"{path}: tensor {t.name!r} keeps its data in {target}, not found")
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else target.stat().st_size - offset
        except ValueError:
            raise ValueError(
                f"{path}: tensor {t.name!r} has a malformed offset or length"
            ) from None
        if length > max_bytes:
            raise ValueError(
                f"{path}: tensor {t.name!r} declares {length} bytes, more than max_bytes "
                f"({max_bytes})"
            )
        if offset < 0 or length < 0 or offset + length > target.stat().st_size:
            raise ValueError(
                f"{path}: tensor {t.name!r} reads bytes {offset}..{offset + length} of {target}, "
                f"which has {target.stat().st_size}"
            )
        with target.open("rb") as f:
            f.seek(offset)
            t.raw_data = f.read(length)
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT


MAX_BYTES: Final = 2 << 30
"""The default ``max_bytes`` of :func:`load` (2 GiB)."""


def load(
    path: str | os.PathLike[str],
    *,
    loss: _losses.Loss | str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Network:
    """Read an ONNX model as an fnn network.

    Reads every model :func:`export` wrote (giving back the same layers, arrays,
    hyper-parameters and loss, from the model's metadata) and feed-forward models from
    other tools, such as PyTorch's exporters (``torch.onnx.export``, both the default
    dynamo exporter and ``dynamo=False``) for ``nn.Sequential`` networks of the
    operators listed in the module docstring. A channels-first image model becomes a
    channels-last network: :func:`fnn.predict` on ``(n, h, w, c)`` input equals the
    source model on ``(n, c, h, w)``. The network's dtype is the model input's (float
    or double).

    Args:
        path: the ``.onnx`` file.
        loss: the loss to train the network with. By default the metadata's loss for
            a model fnn wrote; otherwise a graph ending in ``Softmax`` gets softmax
            cross-entropy, one ending in ``Sigmoid`` binary cross-entropy and one ending
            in logits an identity output with mean squared error. Give e.g.
            ``loss="softmax_cross_entropy"`` to fine-tune a classifier that ends in
            logits; the final Softmax or Sigmoid node must then agree with its output.
        max_bytes: the most bytes one declared size may take (a tensor, a folded
            constant, one sample of any layer's input or output, at 8 bytes a value);
            every declared size is checked before anything is made, and a larger one is
            a ValueError. Default :data:`MAX_BYTES` (2 GiB).

    Returns:
        A :class:`fnn.Network` (read-only arrays in one buffer).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file, for a file that is not a valid ONNX model
            (truncated, corrupted); naming the node and the operator, for an operator
            or attribute fnn cannot express, or shapes that do not fit; for a model
            whose fnn metadata disagrees with its graph.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int | np.integer):
        raise TypeError(f"max_bytes must be an int, got {type(max_bytes).__name__}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no ONNX model at {p}")
    data = p.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f"{p}: not an ONNX model (corrupted or truncated): {e}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ValueError(f"{p}: not an ONNX model (corrupted or truncated): it has no graph")
    _read_external_data(p, model, int(max_bytes))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{p}: not a valid ONNX model (corrupted or truncated): {first}") from None
    meta = _metadata(p, model)
    reader = _Reader(p, model, meta, int(max_bytes))
    try:
        ops, _, input_shape, dtype = reader.read()
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise ValueError(f"{p}: malformed model: {type(e).__name__}: {e}") from None
    # the output activation: the metadata's, the loss's, or the graph's last node
    graph_output = reader.output
    last = ops[-1] if ops else None
    if graph_output == "identity" and isinstance(last, Activation):
        graph_output = "sigmoid" if type(last.activation) is _act.Sigmoid else "identity"
    if meta is not None:
        _check_metadata(p, meta, graph_output, input_shape, dtype)
    the_loss: _losses.Loss
    if loss is not None:
        the_loss = _losses.get(loss)
    elif meta is not None:
        the_loss = _losses.get(meta["loss"])
    else:
        the_loss = _losses.DEFAULT_FOR_OUTPUT[graph_output]()
    want = the_loss.output
    if graph_output == "softmax" and want != "softmax":
        raise ValueError(
            f"{p}: the graph ends in Softmax, which fits only a softmax output, not the loss "
            f"{the_loss.name!r} (output {want!r})"
        )
    if graph_output == "sigmoid" and want == "sigmoid":
        ops = ops[:-1]
    elif want == "sigmoid" and meta is not None:
        raise ValueError(f"{p}: the metadata's loss needs a final Sigmoid, the graph has none")
    if meta is not None:
        layers = _align(lambda m: ValueError(f"{p}: {_clip(m, 700)}"), ops, meta["layers"])
    else:
        layers = _fuse(ops)
        layers = [
            layer
            for k, layer in enumerate(layers)
            if not isinstance(layer, Flatten) or not _flat_before(layers[:k], input_shape)
        ]
    cast = [_as_dtype(layer, dtype) for layer in layers]
    if not cast:
        cast = [Flatten()]
    try:
        return pack(Network(layers=cast, loss=the_loss, input_shape=input_shape))
    except ValueError as e:
        raise ValueError(f"{p}: the network cannot be built: {e}") from None


def _check_metadata(
    path: Path,
    meta: dict[str, Any],
    graph_output: str,
    input_shape: tuple[int, ...],
    dtype: np.dtype[Any],
) -> None:
    """fnn's metadata must say what the graph computes: the output activation (a final
    Softmax or Sigmoid node), the input's shape and the dtype."""
    try:
        output = _losses.get(meta["loss"]).output
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: metadata: the loss {_clip(repr(meta['loss']))}: {e}") from None
    if output == "softmax" and graph_output != "softmax":
        raise ValueError(
            f"{path}: metadata: the loss's output is softmax, but the graph has no final "
            "Softmax node (it outputs logits)"
        )
    if output == "sigmoid" and graph_output != "sigmoid":
        raise ValueError(
            f"{path}: metadata: the loss's output is sigmoid, but the graph has no final "
            "Sigmoid node (it outputs logits)"
        )
    if graph_output == "softmax" and output != "softmax":
        raise ValueError(
            f"{path}: metadata: the graph ends in Softmax, but the loss's output is {output}"
        )
    if meta.get("input_shape") != list(input_shape):
        raise ValueError(
            f"{path}: metadata: the input shape is {_clip(repr(meta.get('input_shape')))}, "
            f"but the graph's input is (batch, {', '.join(map(str, input_shape))})"
        )
    if meta.get("dtype") != str(dtype):
        raise ValueError(
            f"{path}: metadata: the dtype is {_clip(repr(meta.get('dtype')))}, but the graph "
            f"computes in {dtype}"
        )


def _clip(text: str, limit: int = 200) -> str:
    """``text``, cut in the middle to at most about ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ... ({len(text) - 2 * half} characters) ... {text[-half:]}"


def _flat_before(layers: list[Any], input_shape: tuple[int, ...]) -> bool:
    """Whether the layers give vectors (a flatten after them does nothing)."""
    shape = input_shape
    for layer in layers:
        shape = tuple(layer.output_shape(shape))
    return len(shape) == 1


def _as_dtype(layer: Any, dtype: np.dtype[Any]) -> Any:
    return tree.map(lambda v: np.asarray(v, dtype=dtype), layer)
