"""Constant folding: the few ONNX operators fnn evaluates in NumPy (shape arithmetic,
elementwise arithmetic), and the shapes a reshape region gives (:func:`moved`).

Float math runs in float64; nothing from a model file is executed."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import onnx
from onnx import numpy_helper

from fnn.activations import sigmoid

SHAPE_OPS: Final = frozenset(
    {
        "Identity", "Cast", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
        "Concat", "Gather", "Shape", "Slice", "Constant",
    }
)  # fmt: skip


def ints(a: Any) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def reshape(x: np.ndarray[Any, Any], shape: Any, allowzero: int) -> Any:
    target = ints(shape)
    if not allowzero:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(target)


def squeeze(x: np.ndarray[Any, Any], axes: Any) -> Any:
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(ints(axes)))


def unsqueeze(x: np.ndarray[Any, Any], axes: Any) -> Any:
    rank = x.ndim + len(ints(axes))
    for a in sorted(v % rank for v in ints(axes)):
        x = np.expand_dims(x, a)
    return x


def slice_(x: np.ndarray[Any, Any], i: list[Any]) -> Any:
    starts, ends = ints(i[1]), ints(i[2])
    axes = ints(i[3]) if len(i) > 3 and i[3] is not None else list(range(len(starts)))
    steps = ints(i[4]) if len(i) > 4 and i[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        index[a] = slice(s, e, st)
    return x[tuple(index)]


def erf(x: np.ndarray[Any, Any]) -> Any:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


TENSOR_TYPES: Final[dict[int, type[Any]]] = {
    onnx.TensorProto.FLOAT: np.float64,  # evaluated in float64
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int64,
    onnx.TensorProto.BOOL: np.bool_,
}


def cast(x: np.ndarray[Any, Any], to: int) -> Any:
    t = TENSOR_TYPES.get(to)
    if t is None:
        raise ValueError(f"Cast to type {to} is not supported")
    return x.astype(t)


def gelu(x: np.ndarray[Any, Any], approximate: str) -> Any:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


BINARY: Final[dict[str, Callable[[Any, Any], Any]]] = {
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
UNARY: Final[dict[str, Callable[[Any], Any]]] = {
    "Neg": np.negative,
    "Abs": np.abs,
    "Sqrt": np.sqrt,
    "Exp": np.exp,
    "Log": np.log,
    "Tanh": np.tanh,
    "Erf": erf,
    "Sigmoid": sigmoid,
    "Not": np.logical_not,
}
ELEMENTWISE: Final = frozenset(
    {
        *BINARY, *UNARY, "Reciprocal", "Relu", "LeakyRelu", "Elu", "Softplus", "Gelu",
        "Max", "Min", "Where", "Identity", "Cast",
    }
)  # fmt: skip


def eval_node(op: str, i: list[Any], a: dict[str, Any]) -> np.ndarray[Any, Any]:
    """One node's output in NumPy (float math in float64), for the operators above."""
    return np.asarray(evaluate(op, i, a))


def evaluate(op: str, i: list[Any], a: dict[str, Any]) -> Any:
    x: Any = i[0] if i else None
    if op in BINARY:
        return BINARY[op](x, i[1])
    if op in UNARY:
        return UNARY[op](x)
    match op:
        case "Identity":
            return np.asarray(x)
        case "Cast":
            return cast(x, int(a["to"]))
        case "Transpose":
            return np.transpose(x, a.get("perm"))
        case "Reshape":
            return reshape(x, i[1], int(a.get("allowzero", 0)))
        case "Flatten":
            ax = int(a.get("axis", 1)) % max(x.ndim, 1)
            return x.reshape(math.prod(x.shape[:ax]), -1)
        case "Squeeze":
            return squeeze(x, i[1] if len(i) > 1 else a.get("axes"))
        case "Unsqueeze":
            return unsqueeze(x, i[1] if len(i) > 1 else a["axes"])
        case "Concat":
            return np.concatenate(i, axis=int(a["axis"]))
        case "Gather":
            return np.take(x, np.asarray(i[1], np.int64), axis=int(a.get("axis", 0)))
        case "Shape":
            return np.asarray(x.shape[a.get("start", 0) : a.get("end")], np.int64)
        case "Slice":
            return slice_(x, i)
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
            return gelu(x, str(a.get("approximate", "none")))
        case "Max":
            return np.asarray(np.maximum.reduce(np.broadcast_arrays(*i)))
        case "Min":
            return np.asarray(np.minimum.reduce(np.broadcast_arrays(*i)))
        case "Where":
            return np.where(x, i[1], i[2])
    raise ValueError(f"operator {op} cannot be evaluated")  # pragma: no cover


class Shaped:
    """The layer's value in a reshape region: only its shape (batch first) is known."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


class Filled:
    """A value computed from shapes alone, every element ``value`` (a zero initial
    state, a mask's fill): only its shape (batch first) is known."""

    def __init__(self, value: float, shape: tuple[int, ...]) -> None:
        self.value = value
        self.shape = shape


def sliced(shape: tuple[int, ...], i: list[Any]) -> tuple[int, ...]:
    """The shape ``Slice`` gives from ``shape`` (its inputs ``i`` after the data)."""
    starts, ends = ints(i[1]), ints(i[2])
    axes = ints(i[3]) if len(i) > 3 and i[3] is not None else list(range(len(starts)))
    steps = ints(i[4]) if len(i) > 4 and i[4] is not None else [1] * len(starts)
    out = list(shape)
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        if st == 0:
            raise ValueError("Slice with a step of 0")
        out[a % len(shape)] = len(range(*slice(s, e, st).indices(shape[a % len(shape)])))
    return tuple(out)


def filled(op: str, ins: list[Any], a: dict[str, Any]) -> Filled:
    """The :class:`Filled` value a node gives: ``ConstantOfShape``, ``Expand`` of one
    repeated number, or a node that moves a filled value's data; ValueError for others."""
    x = ins[0] if ins else None
    if op == "ConstantOfShape":
        fill = a.get("value")
        v = 0.0 if fill is None else np.asarray(numpy_helper.to_array(fill)).reshape(-1)
        if not isinstance(v, float) and v.size != 1:
            raise ValueError("ConstantOfShape's value must have one element")
        return Filled(float(v if isinstance(v, float) else v[0]), tuple(ints(x)))
    if op == "Expand":
        target = tuple(ints(ins[1]))
        if isinstance(x, Filled):
            return Filled(x.value, tuple(np.broadcast_shapes(x.shape, target)))
        c = np.asarray(x)
        if c.size < 1 or np.any(c != c.reshape(-1)[0]):
            raise ValueError("Expand of a constant that is not one repeated number")
        return Filled(float(c.reshape(-1)[0]), tuple(np.broadcast_shapes(c.shape, target)))
    if not isinstance(x, Filled) or any(isinstance(v, Filled | Shaped) for v in ins[1:]):
        raise ValueError("computes with a value made from shapes")
    if op == "Slice":
        return Filled(x.value, sliced(x.shape, ins))
    if op == "Cast":
        return x
    return Filled(x.value, moved(op, Shaped(x.shape), ins, a).shape)


BATCH_SIZES: Final = (2**20 + 7, 2**21 + 17)
"""The batch sizes a reshape region's shape arithmetic is evaluated for: a model that
flattens gives (batch, features) for both, whatever constants it holds."""


def moved(op: str, x: Shaped, ins: list[Any], a: dict[str, Any]) -> Shaped:
    """The shape of ``x`` after a node that only moves its data in row-major order
    (Identity, Reshape, Flatten, Squeeze, Unsqueeze); ValueError for any other."""
    shape = list(x.shape)
    axes_in = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("axes")
    if op == "Identity":
        return x
    if op == "Reshape":
        target = ints(ins[1])
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
        return Shaped(tuple(target))
    if op == "Flatten":
        ax = int(a.get("axis", 1))
        if not -len(shape) <= ax <= len(shape):
            raise ValueError(f"axis {ax} is out of range for rank {len(shape)}")
        ax %= len(shape) + 1
        return Shaped((math.prod(shape[:ax]), math.prod(shape[ax:])))
    if op == "Squeeze":
        if axes_in is None:
            return Shaped(tuple(d for d in shape if d != 1))
        axes = {v % len(shape) for v in ints(axes_in)}
        if any(shape[k] != 1 for k in axes):
            raise ValueError(f"cannot squeeze axes {sorted(axes)} of {tuple(shape)}")
        return Shaped(tuple(d for k, d in enumerate(shape) if k not in axes))
    if op == "Unsqueeze" and axes_in is not None:
        rank = len(shape) + len(ints(axes_in))
        for k in sorted(v % rank for v in ints(axes_in)):
            shape.insert(k, 1)
        return Shaped(tuple(shape))
    raise ValueError(
        "computes with the layer's value (fnn reads shape arithmetic around reshapes, "
        "not arithmetic on the data)"
    )
