"""Activations written out as elementwise arithmetic, recognised by their structure and
exact constants (never by their values): canonical expressions and the forms fnn reads."""

from __future__ import annotations

import math
from typing import Any, Final, TypeAlias

import numpy as np

from fnn import activations as _act

Expr: TypeAlias = tuple[Any, ...]
"""An expression over the layer's value: ``X`` itself, ``("c", v)`` a scalar constant,
``(op, *args)`` an operator; commutative operators hold their flattened arguments
sorted, so ``0.5 * (x * t)`` and ``(t * 0.5) * x`` are the same expression."""
X: Final[Expr] = ("x",)
COMMUTATIVE: Final = frozenset({"Add", "Mul", "Max", "Min"})
BOOLEAN: Final = frozenset({"Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal", "Not"})


def constant(a: np.ndarray[Any, Any], rank: int) -> Expr:
    """A constant operand: a scalar (one float that broadcasts without changing the
    value's shape), or an opaque tensor no activation has."""
    if a.size == 1 and a.ndim <= rank and a.dtype.kind == "f":
        return ("c", float(a.reshape(-1)[0]))
    return ("tensor", tuple(a.shape), str(a.dtype))


def canon(op: str, a: dict[str, Any], args: list[Expr], elem: int | None) -> Expr:
    """The canonical expression of ``op`` on ``args``: Identity and a Cast to the
    model's own float type are nothing, ``Pow(x, 3)`` is ``x * x * x``, and commutative
    operators are flattened and sorted. Nothing else is rewritten, so two expressions
    are equal only when they compute the same function."""
    if op == "Identity" and len(args) == 1:
        return args[0]
    same_type = op == "Cast" and not a.keys() - {"to", "saturate"} and a.get("to") == elem
    if same_type and len(args) == 1 and args[0][0] not in BOOLEAN:
        return args[0]
    if op == "Pow" and len(args) == 2 and args[1] == ("c", 3.0):
        return canon("Mul", {}, [args[0]] * 3, elem)
    if op in COMMUTATIVE and not a:
        flat: list[Expr] = []
        for x in args:
            flat.extend(x[1] if x[0] == op else [x])
        return (op, tuple(sorted(flat, key=repr)))
    if a:
        return (op, repr(sorted(a.items())), *args)
    return (op, *args)


def match_activation(e: Expr, dtype: np.dtype[Any]) -> _act.Activation | None:
    """The fnn activation that the expression ``e`` is, exactly, with the constants
    the model's ``dtype`` holds; None if it is none of them. The forms: those
    :func:`export` writes (GELU's formula, leaky ReLU and ELU with float64 constants),
    PyTorch's tanh-GELU (before opset 20) and its thresholded softplus where the
    threshold changes no value of ``dtype``."""

    def c(v: float) -> Expr:
        return ("c", float(dtype.type(v)))

    def op(name: str, *args: Expr) -> Expr:
        return canon(name, {}, list(args), None)

    if e == X:
        return _act.Identity()
    simple: dict[Expr, _act.Activation] = {
        ("Relu", X): _act.ReLU(),
        ("Sigmoid", X): _act.Sigmoid(),
        ("Tanh", X): _act.Tanh(),
        ("Softplus", X): _act.Softplus(),
    }
    if e in simple:
        return simple[e]
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    inner = op("Mul", c(math.sqrt(2.0 / math.pi)), op("Add", X, op("Mul", c(0.044715), X, X, X)))
    if e == op("Mul", c(0.5), X, op("Add", c(1.0), ("Tanh", inner))):
        return _act.GELU()
    if e[0] != "Where" or len(e) != 4 or e[2] != X:
        return None
    cond, other = e[1], e[3]
    if cond == ("Greater", X, c(0.0)) and other[0] == "Mul" and len(other[1]) == 2:
        consts = [v for v in other[1] if v[0] == "c"]
        if len(consts) == 1:
            k = consts[0]
            rest = other[1][1] if other[1][0] == k else other[1][0]
            if rest == X:  # where(x > 0, x, slope x)
                return _act.LeakyReLU(k[1])
            if rest == ("Sub", ("Exp", op("Min", X, c(0.0))), c(1.0)):  # alpha (e^x - 1)
                return _act.ELU(k[1])
    if (
        len(cond) == 3
        and cond[0] == "Greater"
        and cond[1] == X
        and cond[2][0] == "c"
        and other == ("Softplus", X)
    ):
        # where(x > t, x, softplus(x)) is softplus(x) in this dtype when softplus(x) - x,
        # at most exp(-x), is below half a unit in the last place of x for every x > t
        t = cond[2][1]
        if 0 < t < math.inf and math.exp(-t) < float(np.spacing(dtype.type(t))) / 2:
            return _act.Softplus()
    return None
