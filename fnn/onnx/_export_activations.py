"""ONNX exporters of fnn's built-in activations, registered by name (see
:func:`fnn.onnx.register_activation_exporter`)."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fnn.onnx.builder import GraphBuilder, register_activation_exporter


def f32_exact(x: float) -> bool:
    """Whether ``x`` is a float32 number (ONNX keeps float attributes in float32)."""
    return float(np.float32(x)) == x


def identity(b: GraphBuilder, where: str, act: Any) -> None:
    """Nothing: the value itself."""


def simple(op: str) -> Any:
    """The exporter of an activation that is one ONNX operator without attributes."""

    def write(b: GraphBuilder, where: str, act: Any) -> None:
        b.node(where, op)

    return write


def leaky_relu(b: GraphBuilder, where: str, act: Any) -> None:
    """``LeakyRelu``, or ``where(x > 0, x, slope x)`` for a float64 slope that float32
    does not hold."""
    slope = float(act.negative_slope)
    if b.dtype == np.float32 or f32_exact(slope):
        b.node(where, "LeakyRelu", alpha=slope)
        return
    x = b.cur
    pos = b.node(where, "Greater", [b.const(f"{where}.zero", 0.0)])
    b.cur = x
    neg = b.node(where, "Mul", [b.const(f"{where}.negative_slope", slope)])
    b.cur = pos
    b.node(where, "Where", [x, neg])


def elu(b: GraphBuilder, where: str, act: Any) -> None:
    """``Elu``, or ``where(x > 0, x, alpha (exp(min(x, 0)) - 1))`` for a float64 alpha
    that float32 does not hold."""
    alpha = float(act.alpha)
    if b.dtype == np.float32 or f32_exact(alpha):
        b.node(where, "Elu", alpha=alpha)
        return
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


def gelu(b: GraphBuilder, where: str, act: Any) -> None:
    """fnn's tanh GELU: the ``Gelu`` operator from opset 20 in float32, else its formula
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (float64 constants in float64)."""
    if b.opset >= 20 and b.dtype == np.float32:
        b.node(where, "Gelu", approximate="tanh")
        return
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


register_activation_exporter("identity", identity)
register_activation_exporter("linear", identity)
register_activation_exporter("relu", simple("Relu"))
register_activation_exporter("sigmoid", simple("Sigmoid"))
register_activation_exporter("tanh", simple("Tanh"))
register_activation_exporter("softplus", simple("Softplus"))
register_activation_exporter("leaky_relu", leaky_relu)
register_activation_exporter("elu", elu)
register_activation_exporter("gelu", gelu)
