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

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import tree
from fnn._types import FloatArray

__all__ = ["Layout", "describe_mismatch", "layout_of"]


def _shape_key(x: Any) -> Any:
    return (tuple(np.shape(x)), str(np.asarray(x).dtype)) if isinstance(x, np.ndarray) else "*"


def _builder(node: Any, pos: list[int], flat_leaves: list[tuple[int, tuple[int, ...]]]) -> Any:
    """A function ``f(flat, views) -> node-like`` built once; ``views`` is the list of leaf
    views in order, consumed from its start index recorded here."""
    if node is None:
        return lambda views: None
    if isinstance(node, tuple | list):
        parts = [_builder(c, pos, flat_leaves) for c in node]
        kind = type(node)
        return lambda views: kind(p(views) for p in parts)
    if isinstance(node, dict):
        keys = sorted(node)
        dparts = {k: _builder(node[k], pos, flat_leaves) for k in keys}
        order = list(node)
        return lambda views: {k: dparts[k](views) for k in order}
    if attrs.has(type(node)):
        cls = type(node)
        fields: list[tuple[str, Any, bool]] = []  # (name, builder or value, is_builder)
        for f in attrs.fields(cls):
            v = getattr(node, f.name)
            if f.metadata.get(tree.STATIC, False) or not f.init:
                fields.append((f.name, None if not f.init else v, False))
            else:
                fields.append((f.name, _builder(v, pos, flat_leaves), True))
        new = object.__new__
        setattr_ = object.__setattr__

        def build(views: Any) -> Any:
            obj = new(cls)
            for name, b, is_b in fields:
                setattr_(obj, name, b(views) if is_b else b)
            return obj

        return build
    # a leaf: record its place in the flat buffer
    i = len(flat_leaves)
    shape = tuple(np.shape(node))
    flat_leaves.append((pos[0], shape))
    pos[0] += int(np.prod(shape, dtype=np.int64))
    return lambda views: views[i]


class Layout:
    """Where each leaf of trees of one structure lives in a flat buffer."""

    def __init__(self, template: Any) -> None:
        entries = tree.leaves_with_paths(template)
        self.paths: list[str] = [p for p, _ in entries]
        self.key: Any = (
            tree.structure(template),
            tuple(_shape_key(x) for _, x in entries),
        )
        arrays = [np.asarray(x) for _, x in entries]
        self.dtype: np.dtype[Any] = np.result_type(*arrays) if arrays else np.dtype(np.float64)
        pos = [0]
        self._leaves: list[tuple[int, tuple[int, ...]]] = []
        self._build: Callable[[list[FloatArray]], Any] = _builder(template, pos, self._leaves)
        self.size: int = pos[0]
        trainable = tree.trainable_mask(template)
        self.state_slices: list[tuple[int, int]] = []
        for (lo, shape), p in zip(self._leaves, self.paths, strict=True):
            if not trainable[p]:
                hi = lo + int(np.prod(shape, dtype=np.int64))
                if self.state_slices and self.state_slices[-1][1] == lo:
                    self.state_slices[-1] = (self.state_slices[-1][0], hi)
                else:
                    self.state_slices.append((lo, hi))

    def views(self, flat: FloatArray) -> list[FloatArray]:
        """The leaves' views of ``flat`` (1-D, :attr:`size` elements), in order."""
        out = []
        for lo, shape in self._leaves:
            n = 1
            for d in shape:
                n *= d
            out.append(flat[lo : lo + n].reshape(shape))
        return out

    def build(self, flat: FloatArray, *, writable: bool = False) -> Any:
        """A tree of this structure whose leaves are views of ``flat``, made without
        re-validation. Unless ``writable``, ``flat`` is made read-only first, so the
        views can never be made writable; a writable build is for private buffers."""
        if not writable and flat.flags.writeable:
            flat.flags.writeable = False
        return self._build(self.views(flat))

    def build_with_views(self, flat: FloatArray) -> tuple[Any, list[FloatArray]]:
        """:meth:`build` of a writable buffer, and the list of its leaves (to seal them)."""
        views = self.views(flat)
        return self._build(views), views

    def zero_state(self, u: FloatArray) -> None:
        """Zero the state segments of a flat direction ``u`` (in place)."""
        for lo, hi in self.state_slices:
            u[lo:hi] = 0

    def take_state(self, new: FloatArray, g: FloatArray) -> None:
        """Copy the state segments of ``g`` (where backward put the new state) into
        ``new`` (in place)."""
        for lo, hi in self.state_slices:
            new[lo:hi] = g[lo:hi]


_CACHE: dict[Any, Layout] = {}


def layout_of(value: Any) -> Layout:
    """The layout of a tree (kept on values that cache theirs, such as networks)."""
    get = getattr(value, "layout", None)
    if isinstance(get, Layout):
        return get
    return Layout(value)


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
