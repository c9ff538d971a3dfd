"""Running the Python blocks of README.md and docs/ (see the root conftest.py): each
block statement by statement, asserting the values the page states in comments."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import numpy as np
from sybil import Example

ROOT = Path(__file__).resolve().parents[1]

_ALLOWED_IN_STATED = (
    ast.Expression,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.UnaryOp,
    ast.USub,
    ast.Load,
    ast.Call,
    ast.Name,
)


def stated_value(comment: str) -> tuple[np.ndarray[Any, Any], float] | None:
    """The value a trailing ``# ...`` comment states, with its tolerance; None for prose."""
    text = comment.strip()
    if not text.startswith("#"):
        return None
    text = text[1:].strip()
    try:
        node = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    for n in ast.walk(node):
        if not isinstance(n, _ALLOWED_IN_STATED):
            return None
        if isinstance(n, ast.Name) and n.id != "array":
            return None
        if isinstance(n, ast.Constant) and (
            isinstance(n.value, bool) or not isinstance(n.value, int | float)
        ):
            return None
    value = eval(compile(node, "<stated>", "eval"), {"__builtins__": {}, "array": np.array})
    decimals = max((len(d) for d in re.findall(r"\.(\d*)", text)), default=0)
    return np.asarray(value, dtype=np.float64), 0.5 * 10.0**-decimals


def evaluate(example: Example) -> None:
    """Run a block statement by statement, checking each value stated in a comment."""
    __tracebackhide__ = True
    padded = "\n" * (example.line + example.parsed.line_offset) + str(example.parsed)
    lines = padded.splitlines()
    ns = example.namespace
    for stmt in ast.parse(padded, filename=example.path).body:
        stated = None
        if isinstance(stmt, ast.Expr) and stmt.end_lineno is not None:
            stated = stated_value(lines[stmt.end_lineno - 1][stmt.end_col_offset or 0 :])
        if stated is None:
            exec(compile(ast.Module([stmt], []), example.path, "exec"), ns)
            continue
        assert isinstance(stmt, ast.Expr)
        got = eval(compile(ast.Expression(stmt.value), example.path, "eval"), ns)
        expected, tolerance = stated
        actual = np.asarray(got, dtype=np.float64)
        path = Path(example.path)
        page = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        where = f"{page}, line {stmt.lineno}"
        assert actual.shape == expected.shape and bool(
            np.all(np.abs(actual - expected) <= tolerance * (1 + 1e-12))
        ), f"{where}: the docs state {expected.tolist()}, the code gives {actual.tolist()}"
    ns.pop("__builtins__", None)
