"""Running the Python blocks of README.md and docs/ (see the root conftest.py): each
block statement by statement, asserting the values the page states in comments.

Blocks run as the page pasted into a file would: compiled without this module's
``from __future__`` imports (``compile(..., dont_inherit=True)``), all blocks of a page in
order in one fresh module namespace named ``__main__`` (standing in for
``sys.modules["__main__"]`` while a block runs, as ``python page.py`` would have it),
apart from the runner's own bookkeeping in Sybil's namespace.
"""

from __future__ import annotations
import __future__

import ast
import re
import sys
import types
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


PAGE_MODULE = "_doc_page_module"
"""The key of the page's module in Sybil's namespace of the page."""
PAGE_FLAGS = "_doc_page_future_flags"
"""The key of the ``__future__`` compiler flags the page's blocks have turned on."""


def page_module(namespace: dict[str, Any]) -> types.ModuleType:
    """The page's own module, made fresh for its first block: what its code sees as
    globals, as a script's ``__main__``."""
    module = namespace.get(PAGE_MODULE)
    if not isinstance(module, types.ModuleType):
        module = namespace[PAGE_MODULE] = types.ModuleType("__main__")
    return module


def evaluate(example: Example) -> None:
    """Run a block statement by statement, checking each value stated in a comment."""
    __tracebackhide__ = True
    padded = "\n" * (example.line + example.parsed.line_offset) + str(example.parsed)
    lines = padded.splitlines()
    module = page_module(example.namespace)
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        flags = _run_block(
            padded, lines, example.path, module.__dict__, example.namespace.get(PAGE_FLAGS, 0)
        )
        example.namespace[PAGE_FLAGS] = flags
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main


def _future_flags(stmt: ast.stmt) -> int:
    """The compiler flags a ``from __future__ import ...`` statement turns on (0 else)."""
    if not (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
        return 0
    flags = 0
    for alias in stmt.names:
        flags |= int(getattr(getattr(__future__, alias.name, None), "compiler_flag", 0))
    return flags


def _run_block(
    padded: str, lines: list[str], path_name: str, ns: dict[str, Any], flags: int
) -> int:
    """Run one block's statements in ``ns`` with the page's ``__future__`` ``flags`` so
    far; the flags after it (a page's future import holds for the rest of the page, as
    at the top of a file)."""
    __tracebackhide__ = True
    for stmt in ast.parse(padded, filename=path_name).body:
        flags |= _future_flags(stmt)
        stated = None
        if isinstance(stmt, ast.Expr) and stmt.end_lineno is not None:
            stated = stated_value(lines[stmt.end_lineno - 1][stmt.end_col_offset or 0 :])
        if stated is None:
            code = compile(ast.Module([stmt], []), path_name, "exec", flags, dont_inherit=True)
            exec(code, ns)
            continue
        assert isinstance(stmt, ast.Expr)
        expr = compile(ast.Expression(stmt.value), path_name, "eval", flags, dont_inherit=True)
        got = eval(expr, ns)
        expected, tolerance = stated
        actual = np.asarray(got, dtype=np.float64)
        path = Path(path_name)
        page = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        where = f"{page}, line {stmt.lineno}"
        assert actual.shape == expected.shape and bool(
            np.all(np.abs(actual - expected) <= tolerance * (1 + 1e-12))
        ), f"{where}: the docs state {expected.tolist()}, the code gives {actual.tolist()}"
    return flags
