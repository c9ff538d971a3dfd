"""ONNX exporters of fnn's built-in layer kinds, registered by kind name (see
:func:`fnn.onnx.register_exporter`). Each writes its layer from ``b.cur`` to a new
``b.cur``; images go channels-first (ONNX's layout) for convolutions and pools."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
from typing import Any

import numpy as np
from onnx import numpy_helper

from fnn.onnx._common import GATE_ORDER, onnx_gates
from fnn.onnx.builder import GraphBuilder, register_exporter

Shape = tuple[int, ...]


def dense(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``Gemm`` on vectors; ``MatMul`` (+ ``Add``) on the last axis of a sequence."""
    if len(in_shape) == 1:
        bias = np.zeros(layer.n_out, layer.W.dtype) if layer.b is None else layer.b
        b.node(where, "Gemm", [b.const(f"{where}.W", layer.W), b.const(f"{where}.b", bias)])
    else:  # on the last axis of a sequence (n, T, n_in)
        b.node(where, "MatMul", [b.const(f"{where}.W", layer.W)])
        if layer.b is not None:
            b.node(where, "Add", [b.const(f"{where}.b", layer.b)])
    b.activation(where, layer.activation)


def embedding(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``Gather`` of the table's rows: out[i, t] = W[X[i, t]]."""
    b.op(where, "Gather", [b.const(f"{where}.W", layer.W), b.cur], axis=0)


def positional_embedding(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """out = X + P[:T], T read off X (``Shape``, ``Slice``, ``Add``)."""
    x = b.cur
    steps = b.op(where, "Shape", [x], start=1, end=2)
    zero = b.const(f"{where}.zero", [0], np.int64)
    P = b.const(f"{where}.P", layer.P)
    rows = b.op(where, "Slice", [P, zero, steps, zero])
    b.op(where, "Add", [x, rows])


def recurrent(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """ONNX's RNN, LSTM or GRU operator (one direction, zero initial state) on the
    sequence made time-major: W (1, G u, F) is ``W_ih.T``, R (1, G u, u) ``W_hh.T`` and
    B (1, 2 G u) the two biases, gate blocks in ONNX's order; the GRU with
    ``linear_before_reset=1`` (the reset gate applied after the hidden product, as
    PyTorch). The output: Y (T, 1, n, u) as (n, T, u), or Y_h (1, n, u) as (n, u)."""
    kind = layer.config()["kind"]
    order = GATE_ORDER[kind]
    op = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind]
    W = onnx_gates(layer.W_ih, order).T[None]
    R = onnx_gates(layer.W_hh, order).T[None]
    B = np.concatenate([onnx_gates(layer.b_ih, order), onnx_gates(layer.b_hh, order)])[None]
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


def attention(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
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


def conv2d(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``Conv`` channels-first, the kernel (h, w, in, out) stored as (out, in, h, w)."""
    b.to_cf(where)
    W = b.const(f"{where}.W", np.ascontiguousarray(layer.W.transpose(3, 2, 0, 1)))
    kw: dict[str, Any] = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride)}
    pad = layer.padding
    if pad == "valid":
        kw["auto_pad"] = "VALID"
    elif pad == "same":
        kw["auto_pad"] = "SAME_UPPER"
    else:
        (t, bo), (le, r) = pad
        kw["pads"] = [t, le, bo, r]
    b.node(where, "Conv", [W, b.const(f"{where}.b", layer.b)], **kw)
    b.activation(where, layer.activation)


def pool(op: str) -> Any:
    """The exporter of a 2-D pool as the ONNX operator ``op``, channels-first."""

    def write(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
        b.to_cf(where)
        b.node(where, op, kernel_shape=list(layer.window), strides=list(layer.strides))

    return write


def global_avg_pool2d(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``ReduceMean`` over the pixels, in whichever layout the image is."""
    axes = [2, 3] if b.cf else [1, 2]
    if b.opset >= 18:
        b.node(where, "ReduceMean", [b.const(f"{where}.axes", axes, np.int64)], keepdims=0)
    else:
        b.node(where, "ReduceMean", axes=axes, keepdims=0)
    b.cf = False


def batch_norm(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``BatchNormalization`` in inference mode (the running statistics), channels on
    axis 1."""
    if b.rank > 2:
        b.to_cf(where)
    names = [
        b.const(f"{where}.{f}", getattr(layer, f))
        for f in ("scale", "shift", "running_mean", "running_var")
    ]
    b.node(where, "BatchNormalization", names, epsilon=layer.eps, momentum=1.0 - layer.momentum)


def layer_norm(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``LayerNormalization`` over the last axis, channels-last."""
    b.to_cl(where)
    names = [b.const(f"{where}.{f}", getattr(layer, f)) for f in ("scale", "shift")]
    b.node(where, "LayerNormalization", names, axis=-1, epsilon=layer.eps)


def flatten(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``Flatten`` of the channels-last sample, as fnn orders its features."""
    b.to_cl(where)
    b.node(where, "Flatten", axis=1)


def identity(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """``Identity`` (dropout in inference)."""
    b.node(where, "Identity")


def activation(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """The layer's activation (``Identity`` for the identity)."""
    if layer.activation.name in ("identity", "linear"):
        b.node(where, "Identity")
    else:
        b.activation(where, layer.activation)


def composite(b: GraphBuilder, where: str, layer: Any, in_shape: Shape) -> None:
    """Every chain from the composite's input, joined by ``Add`` (two chains), ``Sum``
    (more) or ``Concat`` on the channel axis; an empty chain is the input itself. All
    chains end in one layout, the first non-empty chain's (an empty one is the
    input's)."""
    start, start_cf = b.cur, b.cf
    ends: list[tuple[str, bool]] = []
    out_rank = 0
    for name, layers in layer.chains:
        b.cur, b.cf = start, start_cf
        out_rank = len(b.chain(f"{where}.{name}", layers, in_shape)) + 1
        ends.append((b.cur, b.cf))
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


register_exporter("dense", dense)
register_exporter("embedding", embedding)
register_exporter("positional_embedding", positional_embedding)
for _kind in GATE_ORDER:
    register_exporter(_kind, recurrent)
register_exporter("multi_head_attention", attention)
register_exporter("conv2d", conv2d)
register_exporter("max_pool2d", pool("MaxPool"))
register_exporter("avg_pool2d", pool("AveragePool"))
register_exporter("global_avg_pool2d", global_avg_pool2d)
register_exporter("batch_norm", batch_norm)
register_exporter("layer_norm", layer_norm)
register_exporter("flatten", flatten)
register_exporter("dropout", identity)
register_exporter("activation", activation)
register_exporter("residual", composite)
register_exporter("parallel", composite)
