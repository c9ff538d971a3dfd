"""What each ONNX operator becomes: the fnn layers read from single nodes (dense,
convolution, pools, norms, reshapes, activations, embeddings) and from ONNX's recurrent
operators."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np
import onnx

from fnn import activations as _act
from fnn.layers.activation import Activation
from fnn.layers.batch_norm import BatchNorm
from fnn.layers.conv2d import Conv2D, PaddingLike
from fnn.layers.dense import Dense
from fnn.layers.dropout import Dropout
from fnn.layers.flatten import Flatten
from fnn.layers.layer_norm import LayerNorm
from fnn.layers.pool2d import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from fnn.onnx._common import cf_to_cl, cl_to_cf
from fnn.onnx._fold import BATCH_SIZES, Shaped, ints
from fnn.onnx._graph_reader import ERF_GELU, GraphReader
from fnn.onnx._model_reader import Val


class LayerReader(GraphReader):
    """Turns one ONNX graph into fnn layers (see :func:`fnn.onnx.load`): one method
    ``op_<OpType>`` per operator read on its own."""

    # one node each
    def op_Gemm(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
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

    def op_MatMul(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        if self.runtime_input(node) != 0:
            raise self.node_error(node, "only X @ W with constant W is supported")
        W = self.const(node, 1, "the weight")
        assert W is not None
        if W.ndim != 2:
            raise self.node_error(node, f"weight must be 2-D, got shape {W.shape}")
        return self.dense(node, W, np.zeros(W.shape[1]), val)

    def dense(self, node: onnx.NodeProto, W: Any, b: Any, val: Val) -> Val:
        sequence = len(val.shape) == 2 and val.layout == "tm"  # time-major: the same map
        if not sequence and (len(val.shape) not in (1, 2) or val.layout != "cl"):
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
        self.bias_field = "b"
        return Val((*val.shape[:-1], int(W.shape[1])), val.layout)

    def op_Add(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        """A constant added to the layer just built, when that layer's last step is a
        linear map (its bias is ``self.bias_field``), folded into the bias; other adds
        are arithmetic (see :meth:`written_activations`)."""
        k = self.runtime_input(node)
        if node.input[1 - k] in self.derived:
            self.bias_field = None
            return self.derived_add(node, node.input[1 - k], val)
        c = self.const(node, 1 - k, "the added value")
        field, self.bias_field = self.bias_field, None
        if field is None or c is None or not self.ops:
            return self.written_activations([([node], node.output[0])], val)
        last = self.ops[-1]
        n = val.shape[-1]
        if not per_channel(c, val):
            raise self.node_error(node, f"adds shape {c.shape} to {n} outputs of the layer before")
        bias = getattr(last, field)
        base = np.zeros(n) if bias is None else bias
        self.ops[-1] = attrs.evolve(last, **{field: base + c.reshape(-1)})
        return val

    def derived_add(self, node: onnx.NodeProto, name: str, val: Val) -> Val:
        """``val`` plus the value ``name`` computed from shapes (see
        :class:`~fnn.onnx._sequence_reader.SequenceReader`: a positional embedding)."""
        raise self.node_error(node, "adds a value computed from the shapes of values")

    def op_Conv(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
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
            stride=tuple(ints(a.get("strides", [1, 1]))),
            padding=padding,
        )
        self.ops.append(layer)
        self.bias_field = "b"
        return Val(self.out_shape(node, layer, val), "cf")

    def padding(self, node: onnx.NodeProto, a: dict[str, Any]) -> PaddingLike:
        auto = str(a.get("auto_pad", "NOTSET"))
        if auto == "VALID":
            return "valid"
        if auto == "SAME_UPPER":
            return "same"
        if auto != "NOTSET":
            raise self.node_error(node, f"attribute auto_pad={auto} is not supported")
        t, le, bo, r = ints(a.get("pads", [0, 0, 0, 0]))
        return "valid" if t == le == bo == r == 0 else ((t, bo), (le, r))

    def out_shape(self, node: onnx.NodeProto, layer: Any, val: Val) -> tuple[int, ...]:
        try:
            return tuple(layer.output_shape(val.shape))
        except ValueError as e:
            raise self.node_error(node, str(e).replace("{layer}", "the layer")) from None

    def pool(self, node: onnx.NodeProto, a: dict[str, Any], val: Val, cls: Any) -> Val:
        if val.layout != "cf" or len(val.shape) != 3:
            raise self.node_error(node, "only 2-D pooling of (batch, C, H, W) images")
        if str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
            raise self.node_error(node, f"attribute auto_pad={a['auto_pad']} is not supported")
        if any(ints(a.get("pads", [0]))):
            raise self.node_error(node, f"attribute pads={a['pads']} is not supported")
        if any(int(d) != 1 for d in a.get("dilations", [1])):
            raise self.node_error(node, f"attribute dilations={a['dilations']} is not supported")
        if int(a.get("storage_order", 0)):
            raise self.node_error(node, "attribute storage_order=1 is not supported")
        window = tuple(ints(a["kernel_shape"]))
        strides = tuple(ints(a.get("strides", [1, 1])))
        layer = cls(window=window, stride=strides)
        shape = self.out_shape(node, layer, val)
        if int(a.get("ceil_mode", 0)):
            h, w = val.shape[:2]
            ceil = [-(-(s - k) // st) + 1 for s, k, st in zip((h, w), window, strides, strict=True)]
            if tuple(ceil) != shape[:2]:
                raise self.node_error(node, "attribute ceil_mode=1 changes the output size here")
        self.ops.append(layer)
        return Val(shape, "cf")

    def op_MaxPool(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.pool(node, a, val, MaxPool2D)

    def op_AveragePool(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.pool(node, a, val, AvgPool2D)

    def op_GlobalAveragePool(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        if val.layout != "cf" or len(val.shape) != 3:
            raise self.node_error(node, "only (batch, C, H, W) images")
        self.ops.append(GlobalAvgPool2D())
        return Val((val.shape[-1],), "gap")

    def op_ReduceMean(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        axes = self.const(node, 1, "axes") if len(node.input) > 1 else a.get("axes")
        spatial = {2, 3} if val.layout == "cf" else {1, 2}
        if len(val.shape) != 3 or axes is None or {v % 4 for v in ints(axes)} != spatial:
            raise self.node_error(node, "only the mean over all pixels of images is supported")
        self.ops.append(GlobalAvgPool2D())
        keep = int(a.get("keepdims", 1))
        if keep and val.layout != "cf":
            raise self.node_error(node, "keepdims=1 on channels-last images is not supported")
        return Val((val.shape[-1],), "gap" if keep else "cl")

    def op_BatchNormalization(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
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

    def op_LayerNormalization(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
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

    def flatten(self, val: Val) -> Val:
        if val.layout == "gap":
            return Val(val.shape)
        self.ops.append(Flatten())
        if val.layout == "cf":
            h, w, c = val.shape
            perm = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
            return Val((h * w * c,), "cl", perm)
        return Val((math.prod(val.shape),), "cl", val.perm)

    def op_Flatten(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        if int(a.get("axis", 1)) != 1:
            raise self.node_error(node, f"attribute axis={a['axis']} is not supported")
        return self.flatten(val)

    def op_Reshape(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        shape = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if shape is not None:
            target = ints(shape)
            size = math.prod(val.shape)
            if len(target) == 2 and target[0] in (0, -1) and target[1] in (-1, size):
                return self.flatten(val)
        return self.reshape_region([node], val)

    def op_Squeeze(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        axes = self.const(node, 1, "axes") if len(node.input) > 1 else a.get("axes")
        if val.layout == "gap" and axes is not None and {v % 4 for v in ints(axes)} == {2, 3}:
            return Val(val.shape)
        if val.layout == "tm4" and axes is not None and [v % 4 for v in ints(axes)] == [1]:
            return Val(val.shape, "tm")
        if val.layout == "tm4t" and axes is not None and [v % 4 for v in ints(axes)] == [2]:
            return Val(val.shape, "tm")
        if val.layout == "h" and axes is not None and [v % 3 for v in ints(axes)] == [0]:
            return Val(val.shape)
        return self.reshape_region([node], val)

    def op_Transpose(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        rank = len(val.shape) + 1
        perm = list(a.get("perm", []))
        if val.layout == "cl" and rank > 2 and perm == cl_to_cf(rank):
            return Val(val.shape, "cf")
        if val.layout == "cf" and perm == cf_to_cl(rank):
            return Val(val.shape, "cl")
        if val.layout in ("cl", "tm") and len(val.shape) == 2 and perm == [1, 0, 2]:
            return Val(val.shape, "tm" if val.layout == "cl" else "cl")
        if val.layout in ("tm4", "tm4t") and perm == [0, 2, 1, 3]:  # (T, 1, n, u) <-> (T, n, 1, u)
            return Val(val.shape, "tm4t" if val.layout == "tm4" else "tm4")
        raise self.node_error(node, f"transpose perm={perm} is not supported here")

    def op_Dropout(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        ratio = self.const(node, 1, "ratio", weight=False)
        mode = self.const(node, 2, "training_mode")
        if mode is not None and bool(mode):
            raise self.node_error(node, "training_mode=True is not supported")
        self.ops.append(Dropout(rate=0.5 if ratio is None else float(ratio)))
        return val

    def op_Identity(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        self.ops.append(Activation(_act.Identity()))
        return val

    def activation(self, act: _act.Activation, val: Val) -> Val:
        self.ops.append(Activation(act))
        return val

    def op_Relu(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.activation(_act.ReLU(), val)

    def op_Sigmoid(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.activation(_act.Sigmoid(), val)

    def op_Tanh(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.activation(_act.Tanh(), val)

    def op_Softplus(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.activation(_act.Softplus(), val)

    def op_LeakyRelu(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.activation(_act.LeakyReLU(float(a.get("alpha", 0.01))), val)

    def op_Elu(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        return self.activation(_act.ELU(float(a.get("alpha", 1.0))), val)

    def op_Gelu(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        if str(a.get("approximate", "none")) != "tanh":
            raise self.node_error(node, ERF_GELU)
        return self.activation(_act.GELU(), val)

    def op_Softmax(self, node: onnx.NodeProto, a: dict[str, Any], val: Val) -> Val:
        rank = len(val.shape) + 1  # vectors of logits, or one per position
        if rank not in (2, 3) or val.layout != "cl" or int(a.get("axis", -1)) not in (-1, rank - 1):
            raise self.node_error(node, "only a softmax over the logits (last axis)")
        self.output = "softmax"
        return val

    def reshape_region(self, seg: list[onnx.NodeProto], val: Val) -> Val:
        """``seg``, reshapes of the value whose target is computed from its shape (as
        ``x.view(x.size(0), -1)`` is written), as a flatten or nothing. The shape
        arithmetic is evaluated exactly, on integers, for two batch sizes; the value's
        data is never made, only its shape followed."""
        results = []
        for batch in BATCH_SIZES:
            env: dict[str, Any] = {self.cur: Shaped(val.graph_shape(batch))}
            for n in seg:
                ins = [
                    (env[i] if i in env else self.shape_value(i, batch)) if i else None
                    for i in n.input
                ]
                env[n.output[0]] = self.shape_step(n, ins)
            out = env[seg[-1].output[0]]
            if not isinstance(out, Shaped):
                raise self.node_error(seg[-1], "gives a shape, not the layer's output")
            results.append((batch, out.shape))
        if all(shape == val.graph_shape(batch) for batch, shape in results):
            return val
        # a recurrent operator's sequence (T, 1, n, u) or (T, n, 1, u) as (T, n, u)
        tm = Val(val.shape, "tm")
        if val.layout in ("tm4", "tm4t") and all(
            shape == tm.graph_shape(batch) for batch, shape in results
        ):
            return tm
        if all(shape == (batch, math.prod(val.shape)) for batch, shape in results):
            return self.flatten(val)
        batch, shape = results[0]
        raise self.node_error(
            seg[-1],
            f"reshapes samples of shape {val.graph_shape(batch)[1:]} to {shape[1:]} (for a "
            f"batch of {batch}, giving {shape[:1]}); fnn reads only reshapes that flatten",
        )


def per_channel(c: np.ndarray[Any, Any], val: Val) -> bool:
    """Whether the constant ``c`` added to the graph's value ``val`` adds one number per
    channel (the features of vectors and sequences): its shape, aligned to the value's
    from the right, is 1 on every axis but the channel axis."""
    n = val.shape[-1]
    rank = len(val.graph_shape(1))
    channel = 1 if val.layout in ("cf", "gap") else rank - 1
    if c.size != n or c.ndim > rank:
        return False
    dims = (1,) * (rank - c.ndim) + tuple(c.shape)
    return all(d == 1 for k, d in enumerate(dims) if k != channel)
