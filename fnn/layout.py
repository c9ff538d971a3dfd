"""The flat layout of a tree of arrays: where each leaf lives in one contiguous buffer.

A :class:`Layout` is computed once per tree structure (containers, static fields, leaf
shapes and dtypes) and kept on the frozen values that have it (networks cache theirs).
It gives

- :attr:`Layout.key`, a hashable description of the structure: two trees can be used
  together (parameters and their gradients, parameters and an optimizer state made for
  them) exactly when their keys are equal, a cheap comparison when both come from the
  same layout;
- :meth:`Layout.build`: a tree of the same structure whose leaves are views of a flat
  buffer, made without re-validation (fnn's own results are built this way; a value
  from a user goes through its class's validation once);
- the non-trainable (state) segments of the buffer, which optimizers never change.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import tree
from fnn._types import FloatArray

__all__ = ["Layout", "StructureKey", "describe_mismatch"]


_SLOT = types.MemberDescriptorType  # a __slots__ field's accessor


def _shape_key(x: Any) -> Any:
    return (tuple(np.shape(x)), str(np.asarray(x).dtype)) if isinstance(x, np.ndarray) else "*"


class _Codegen:
    """Writes one straight-line Python function that rebuilds a tree of a fixed structure
    from the list of its leaves: no recursion, no re-validation (attrs instances are made
    with ``object.__new__`` and their fields set directly). The walk that writes it is
    :func:`fnn.tree.record_fields`'s, like every other walk over trees.

    Kept rather than a recursive rebuild over the same field table (issue 19): on
    benchmarks/speed.py's tiny network (2-16-16-1, a Network of three Dense layers) a
    build took 7.7 us generated against 17.3 us for a recursive rebuild from a
    precomputed plan (/tmp A/B script, 7 interleaved medians of 20,000 builds, 2-core
    machine shared with other jobs), and the pure training loop builds networks from
    flat buffers on every step (gradients, updated parameters) of a step of ~45 us."""

    def __init__(self) -> None:
        self.build_flat: Callable[[FloatArray], Any] = lambda f: None
        self.build_views: Callable[[FloatArray], Any] = lambda f: None
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__}
        self.n_vars = 0
        self.leaves: list[tuple[int, tuple[int, ...]]] = []
        self.pos = 0

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def var(self) -> str:
        self.n_vars += 1
        return f"_o{self.n_vars}"

    def expr(self, node: Any) -> str:
        """An expression (a name or a constant) that evaluates to the rebuilt node."""
        if node is None:
            return "None"
        if isinstance(node, tuple | list):
            items = [self.expr(c) for c in node]
            if isinstance(node, tuple) and type(node) is tuple:
                return "(" + "".join(f"{x}, " for x in items) + ")"
            return f"{self.const(type(node))}([{', '.join(items)}])"
        if isinstance(node, dict):
            built = {k: self.expr(node[k]) for k in sorted(node)}  # leaves in sorted order
            return "{" + ", ".join(f"{k!r}: {built[k]}" for k in node) + "}"
        if attrs.has(type(node)):
            values = []
            for name, role in tree.record_fields(type(node)):
                if role is tree.DERIVED:
                    values.append((name, self.const(None)))
                elif role is tree.STATIC:
                    values.append((name, self.const(getattr(node, name))))
                else:
                    values.append((name, self.expr(getattr(node, name))))
            o = self.var()
            cls = type(node)
            self.lines.append(f"{o} = _new({self.const(cls)})")
            for name, x in values:
                slot = getattr(cls, name, None)
                if type(slot) is _SLOT:  # a slotted class: its field's own setter, a C call
                    self.lines.append(f"{self.const(slot.__set__)}({o}, {x})")
                else:
                    self.lines.append(f"_set({o}, {name!r}, {x})")
            return o
        i = len(self.leaves)
        shape = tuple(np.shape(node))
        self.leaves.append((self.pos, shape))
        self.pos += int(np.prod(shape, dtype=np.int64))
        return f"v[{i}]"

    def compile(self, template: Any) -> None:
        """Write ``build_flat(f) -> tree`` and ``build_views(f) -> (tree, leaves)``, which
        read the leaves straight from a flat buffer ``f`` as ``f[a:b].reshape(s)``."""
        result = self.expr(template)
        body = "\n".join(f"    {line}" for line in self.lines)
        views = [
            f"f[{lo}:{lo + int(np.prod(shape, dtype=np.int64))}]"
            + ("" if len(shape) == 1 else f".reshape({shape!r})")  # a 1-D slice has its shape
            for lo, shape in self.leaves
        ]
        head = f"    v = [{', '.join(views)}]\n{body}\n"
        src = f"def build_flat(f):\n{head}    return {result}\n"
        src += f"def build_views(f):\n{head}    return {result}, v\n"
        namespace = dict(self.consts)
        exec(compile(src, "<fnn.layout>", "exec"), namespace)  # code written here, not read
        self.build_flat = namespace["build_flat"]
        self.build_views = namespace["build_views"]


@attrs.frozen(eq=False)
class StructureKey:
    """A tree structure's key: containers, static fields, leaf shapes and dtypes.

    Equal (and hashed) by that description; it also knows its leaves' paths, so a
    mismatch can be reported by path."""

    description: Any
    paths: tuple[str, ...]

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return isinstance(other, StructureKey) and self.description == other.description

    def __hash__(self) -> int:
        return hash(self.description)

    def difference(self, other: StructureKey) -> str:
        """Where ``other`` differs from this key, by path."""
        mine, theirs = self.description[1], other.description[1]
        for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            pa = self.paths[i]
            pb = other.paths[i] if i < len(other.paths) else "?"
            if pa != pb:
                return f"at '{pa}' the other has '{pb}'"
            if a != b:
                return f"'{pa}' is {_show(a)} in one and {_show(b)} in the other"
        if len(mine) != len(theirs):
            return f"one has {len(mine)} leaves, the other {len(theirs)}"
        return "the layer kinds or static hyper-parameters differ"


def _show(k: Any) -> str:
    return f"shape {k[0]} {k[1]}" if isinstance(k, tuple) else str(k)


class Layout:
    """Where each leaf of trees of one structure lives in a flat buffer."""

    def __init__(self, template: Any) -> None:
        entries = tree.leaves_with_paths(template)
        self.paths: list[str] = [p for p, _ in entries]
        self.key = StructureKey(
            (tree.structure(template), tuple(_shape_key(x) for _, x in entries)),
            tuple(self.paths),
        )
        arrays = [np.asarray(x) for _, x in entries]
        self.dtype: np.dtype[Any] = np.result_type(*arrays) if arrays else np.dtype(np.float64)
        gen = _Codegen()
        gen.compile(template)
        self._build_flat: Callable[[FloatArray], Any] = gen.build_flat
        self._build_views: Callable[[FloatArray], Any] = gen.build_views
        self._leaves: list[tuple[int, tuple[int, ...]]] = gen.leaves
        self.size: int = gen.pos
        trainable = tree.trainable_mask(template)
        self.state_slices: list[tuple[int, int]] = []
        for (lo, shape), p in zip(self._leaves, self.paths, strict=True):
            if not trainable[p]:
                hi = lo + int(np.prod(shape, dtype=np.int64))
                if self.state_slices and self.state_slices[-1][1] == lo:
                    self.state_slices[-1] = (self.state_slices[-1][0], hi)
                else:
                    self.state_slices.append((lo, hi))

    def build(self, flat: FloatArray, *, writable: bool = False) -> Any:
        """A tree of this structure whose leaves are views of ``flat``, made without
        re-validation. Unless ``writable``, ``flat`` is made read-only first, so the
        views can never be made writable; a writable build is for private buffers."""
        if not writable:
            tree.read_only(flat)
        return self._build_flat(flat)

    def build_with_views(self, flat: FloatArray) -> tuple[Any, list[FloatArray]]:
        """:meth:`build` of a writable buffer, and the list of its leaves (to seal them)."""
        return self._build_views(flat)  # type: ignore[no-any-return]

    def zero_state(self, u: FloatArray) -> None:
        """Zero the state segments of a flat direction ``u`` (in place)."""
        for lo, hi in self.state_slices:
            u[lo:hi] = 0

    def take_state(self, new: FloatArray, g: FloatArray) -> None:
        """Copy the state segments of ``g`` (where backward put the new state) into
        ``new`` (in place)."""
        for lo, hi in self.state_slices:
            new[lo:hi] = g[lo:hi]


def describe_mismatch(expected: Any, got: Any, what: str) -> str:
    """A message naming the first path where tree ``got`` differs from ``expected``:
    structure, shape or dtype."""
    if type(got) is not type(expected):
        return (
            f"{what} is a {type(got).__name__}, but the parameters are a "
            f"{type(expected).__name__}: expected the same structure"
        )
    try:
        a = tree.leaves_with_paths(expected)
        b = tree.leaves_with_paths(got)
    except Exception as e:  # pragma: no cover - exotic trees
        return f"{what} does not match the parameters ({e})"
    for (pa, xa), (pb, xb) in zip(a, b, strict=False):
        if pa != pb:
            return f"{what} differs from the parameters at '{pa}': found '{pb}' there"
        sa, sb = np.shape(xa), np.shape(xb)
        if sa != sb:
            return f"{what} has shape {sb} at '{pa}', expected {sa}"
        da, db = np.asarray(xa).dtype, np.asarray(xb).dtype
        if da != db:
            return f"{what} has dtype {db} at '{pa}', expected {da}"
    if len(a) != len(b):
        extra = b[len(a) :] if len(b) > len(a) else a[len(b) :]
        where = extra[0][0]
        more = "more" if len(b) > len(a) else "fewer"
        return f"{what} has {more} leaves than the parameters (first difference at '{where}')"
    if not tree.same_structure(expected, got):
        return (
            f"{what} has the parameters' leaves but another structure (layer kinds or "
            "static hyper-parameters differ)"
        )
    return f"{what} does not match the parameters"
