"""Parameter trees: nested tuples, lists, dicts, None and attrs instances.

A *tree* is one of

- a container: ``tuple``, ``list``, ``dict`` (string keys, sorted order) or an attrs
  instance, whose children are trees;
- ``None``: an empty subtree with no leaves;
- anything else: a *leaf* (in fnn, a NumPy array).

Fields of attrs classes declared with :func:`static_field` are structure, not leaves:
hyper-parameters such as activations, sizes and the loss. Fields declared with
:func:`state_field` are leaves that are not trainable (running statistics): they are
flattened and saved like parameters, but optimizers never change them.

Every leaf has a dotted path such as ``layers.0.W``, used by :func:`flatten` and in error
messages.

What a node's children are is decided in one place: :func:`record_fields` (each attrs
field's role, computed once per class) and :func:`children`. Every walk over trees,
records and caches in fnn uses them (this module's, :mod:`fnn.layout`'s generated
builders, the layers' cache sealing and weight declarations).

Trees whose leaves are read-only views of one contiguous buffer (see :func:`pack`) are
raveled without a copy, which lets an optimizer update a whole network with a few array
operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs
import numpy as np

from fnn._types import BoolArray, FloatArray

T = TypeVar("T")

STATIC = "fnn.static"
STATE = "fnn.state"
STATIC_META: dict[str, bool] = {STATIC: True}
"""``metadata=`` for an ``attrs.field`` that is structure, not a leaf. Same as
:func:`static_field`, but visible to mypy's attrs plugin (so converters type-check)."""

__all__ = [
    "DERIVED",
    "LEAF",
    "STATE",
    "STATIC",
    "STATIC_META",
    "allclose",
    "children",
    "flatten",
    "freeze_copy",
    "global_norm",
    "leaf_mask",
    "leaves",
    "leaves_with_paths",
    "map",
    "map_with_path",
    "pack",
    "ravel",
    "read_only",
    "readonly",
    "record_fields",
    "same_structure",
    "state_field",
    "static_field",
    "structure",
    "trainable_mask",
    "unflatten",
    "unravel",
    "zeros_like",
]


def static_field(**kwargs: Any) -> Any:
    """An attrs field that is part of the tree's structure, not a leaf.

    Use for hyper-parameters (activation, sizes, loss). Accepts the keyword arguments of
    ``attrs.field``.
    """
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata[STATIC] = True
    return attrs.field(metadata=metadata, **kwargs)


def state_field(**kwargs: Any) -> Any:
    """An attrs field holding a non-trainable leaf (e.g. running statistics)."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata[STATE] = True
    return attrs.field(metadata=metadata, **kwargs)


def read_only(x: T, *, copy: bool = False, owners: bool = False) -> T:
    """``x`` made read-only: the one place fnn clears an array's ``writeable`` flag.

    Anything but an array is returned unchanged. Otherwise:

    - by default ``x`` itself is made read-only, in place, and returned (for arrays fnn
      made and owns: constants, caches, gradients);
    - with ``owners``, so are the arrays ``x`` views (its ``base`` chain), so the flag of
      ``x`` can never be set again;
    - with ``copy``, ``x`` is first copied (C order) into a private owner, made read-only,
      and a view of it is returned: nothing the caller holds can change the result, and
      its ``writeable`` flag cannot be set again (its base is read-only).
    """
    if not isinstance(x, np.ndarray):
        return x
    if copy:
        owner = np.array(x, copy=True, order="C")
        owner.flags.writeable = False
        return owner.view()  # type: ignore[return-value]
    x.setflags(write=False)  # the method: no flags object made (a third cheaper)
    if owners:
        base = x.base
        while isinstance(base, np.ndarray):
            base.flags.writeable = False
            base = base.base
    return x


def read_only_each(arrays: Iterable[np.ndarray[Any, Any]]) -> None:
    """:func:`read_only` of each array, in place (one call for a cache's or a
    gradient's many arrays)."""
    for x in arrays:
        x.setflags(write=False)


def freeze_copy(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A read-only view of a private copy of ``a`` (``read_only(a, copy=True)``)."""
    return read_only(a, copy=True)


def readonly(x: Any) -> FloatArray:
    """Return ``x`` as a read-only float array (float32/float64 kept, else float64).

    The result is a view of a private copy: a later write into the caller's array (or a
    view of it) does not change it, and its ``writeable`` flag cannot be set again.
    """
    a = np.asarray(x)
    if a.dtype != np.float32 and a.dtype != np.float64:
        if a.dtype.kind == "c":
            raise ValueError(f"Complex data not supported, got dtype {a.dtype}")
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"could not convert array of dtype {a.dtype} to float: {e}") from e
    return freeze_copy(a)


def _is_attrs(x: object) -> bool:
    return attrs.has(type(x))


LEAF = "leaf"
"""The role of an attrs field whose value is a subtree of trainable leaves."""
DERIVED = "derived"
"""The role of an attrs field computed by the class (``init=False``): not a child."""

_FIELDS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def record_fields(cls: type[Any]) -> tuple[tuple[str, str], ...]:
    """``(name, role)`` of each field of attrs class ``cls`` in definition order, role
    :data:`LEAF` (a child), :data:`STATE` (a child whose leaves are not trainable),
    :data:`STATIC` (structure, not a child) or :data:`DERIVED` (``init=False``, not a
    child); ``()`` for a class that is not an attrs class. Computed once per class."""
    got = _FIELDS.get(cls)
    if got is None:
        out: list[tuple[str, str]] = []
        for f in attrs.fields(cls) if attrs.has(cls) else ():
            if not f.init:
                role = DERIVED
            elif f.metadata.get(STATIC, False):
                role = STATIC
            else:
                role = STATE if f.metadata.get(STATE, False) else LEAF
            out.append((f.name, role))
        got = _FIELDS[cls] = tuple(out)
    return got


def children(node: Any) -> Iterator[tuple[str, Any, bool]]:
    """``(key, child, trainable)`` for each child of a container node: a tuple's or
    list's items (keys ``"0"``, ``"1"``, ...), a dict's values in sorted key order, an
    attrs instance's :data:`LEAF` and :data:`STATE` fields (``trainable`` False for
    state). Nothing for a leaf or None."""
    if isinstance(node, tuple | list):
        for i, c in enumerate(node):
            yield str(i), c, True
    elif isinstance(node, dict):
        for k in sorted(node):
            yield str(k), node[k], True
    else:
        for name, role in record_fields(type(node)):
            if role is LEAF or role is STATE:
                yield name, getattr(node, name), role is LEAF


def _is_container(x: object) -> bool:
    return isinstance(x, tuple | list | dict) or _is_attrs(x)


def _walk(node: Any, prefix: str, trainable: bool, out: list[tuple[str, Any, bool]]) -> None:
    if node is None:
        return
    if _is_container(node):
        for key, child, tr in children(node):
            _walk(child, f"{prefix}.{key}" if prefix else key, trainable and tr, out)
    else:
        out.append((prefix, node, trainable))


def _entries(tree: Any) -> list[tuple[str, Any, bool]]:
    out: list[tuple[str, Any, bool]] = []
    _walk(tree, "", True, out)
    return out


def leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree`` in a fixed order (tuple/list order, sorted dict keys,
    attrs field order)."""
    return [leaf for _, leaf, _ in _entries(tree)]


def leaves_with_paths(tree: Any) -> list[tuple[str, Any]]:
    """``(dotted path, leaf)`` pairs in the order of :func:`leaves`."""
    return [(p, leaf) for p, leaf, _ in _entries(tree)]


def structure(tree: Any) -> Any:
    """A hashable description of ``tree``'s structure (containers, keys, static fields).

    Two trees can be mapped together exactly when their structures are equal.
    """
    if tree is None:
        return None
    if isinstance(tree, tuple | list):
        return (type(tree).__name__, tuple(structure(c) for c in tree))
    if isinstance(tree, dict):
        return ("dict", tuple((k, structure(tree[k])) for k in sorted(tree)))
    if _is_attrs(tree):
        parts: list[Any] = []
        for name, role in record_fields(type(tree)):
            if role is DERIVED:
                continue
            v = getattr(tree, name)
            if role is STATIC:
                parts.append((name, "static", _static_key(v)))
            else:
                parts.append((name, structure(v)))
        return (type(tree), tuple(parts))
    return "*"


def _static_key(v: Any) -> Any:
    try:
        hash(v)
    except TypeError:
        return repr(v)
    return v


def same_structure(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` have the same containers, keys and static fields."""
    return bool(structure(a) == structure(b))


def _rebuild(node: Any, fn: Callable[[str, list[Any]], Any], nodes: list[Any], prefix: str) -> Any:
    """Rebuild ``node``'s structure, replacing each leaf by ``fn(path, [leaf, ...])`` where
    the list holds the corresponding leaves of ``nodes`` (``node`` first)."""
    if node is None:
        for other in nodes[1:]:
            if other is not None:
                raise ValueError(f"tree structures differ at '{prefix or '<root>'}'")
        return None
    if isinstance(node, tuple | list):
        for other in nodes[1:]:
            if type(other) is not type(node) or len(other) != len(node):
                raise ValueError(f"tree structures differ at '{prefix or '<root>'}'")
        items = [
            _rebuild(c, fn, [o[i] for o in nodes], f"{prefix}.{i}" if prefix else str(i))
            for i, c in enumerate(node)
        ]
        return type(node)(items)
    if isinstance(node, dict):
        for other in nodes[1:]:
            if not isinstance(other, dict) or sorted(other) != sorted(node):
                raise ValueError(f"tree structures differ at '{prefix or '<root>'}'")
        # visit keys in sorted order (the order of `leaves`), keep the caller's key order
        built = {
            k: _rebuild(node[k], fn, [o[k] for o in nodes], f"{prefix}.{k}" if prefix else str(k))
            for k in sorted(node)
        }
        return {k: built[k] for k in node}
    if _is_attrs(node):
        changes: dict[str, Any] = {}
        for other in nodes[1:]:
            if type(other) is not type(node):
                raise ValueError(
                    f"tree structures differ at '{prefix or '<root>'}': "
                    f"{type(node).__name__} vs {type(other).__name__}"
                )
        for name, role in record_fields(type(node)):
            if role is STATIC or role is DERIVED:
                continue
            path = f"{prefix}.{name}" if prefix else name
            changes[name] = _rebuild(
                getattr(node, name), fn, [getattr(o, name) for o in nodes], path
            )
        return attrs.evolve(node, **changes)
    for other in nodes[1:]:
        if other is None or _is_container(other):
            raise ValueError(f"tree structures differ at '{prefix or '<root>'}'")
    return fn(prefix, nodes)


def map(fn: Callable[..., Any], tree: T, *rest: T) -> T:
    """Apply ``fn`` to the leaves of ``tree`` (and the matching leaves of ``rest``).

    Returns a tree of ``tree``'s type whose leaves are ``fn(leaf, *other_leaves)``.
    Raises ValueError naming the path where the structures differ.
    """
    out: T = _rebuild(tree, lambda _p, ls: fn(*ls), [tree, *rest], "")
    return out


def map_with_path(fn: Callable[[str, Any], Any], tree: T) -> T:
    """Like :func:`map` for one tree, with ``fn(dotted_path, leaf)``."""
    out: T = _rebuild(tree, lambda p, ls: fn(p, ls[0]), [tree], "")
    return out


def zeros_like(tree: T) -> T:
    """A tree like ``tree`` with every array leaf replaced by read-only zeros."""
    return map(lambda x: readonly(np.zeros_like(x)), tree)


def flatten(tree: Any) -> dict[str, FloatArray]:
    """``{dotted path: leaf}`` for every leaf, e.g. ``{"layers.0.W": ..., "layers.0.b": ...}``."""
    return dict(leaves_with_paths(tree))


def unflatten(template: T, flat: Mapping[str, Any]) -> T:
    """Inverse of :func:`flatten`: a tree shaped like ``template`` with leaves from ``flat``.

    Every path of ``template`` must be present in ``flat`` with the same shape, and no
    other key may be; otherwise ValueError names the path.
    """
    expected = {p for p, _ in leaves_with_paths(template)}
    extra = sorted(set(flat) - expected)
    if extra:
        raise ValueError(f"unexpected path(s) {extra}; the tree has {sorted(expected)}")

    def take(path: str, ls: list[Any]) -> Any:
        if path not in flat:
            raise ValueError(f"missing path '{path}'")
        new = np.asarray(flat[path])
        old = ls[0]
        if hasattr(old, "shape") and new.shape != old.shape:
            raise ValueError(f"'{path}' has shape {new.shape}, expected {old.shape}")
        if hasattr(old, "dtype") and new.dtype != old.dtype:
            raise ValueError(f"'{path}' has dtype {new.dtype}, expected {old.dtype}")
        # a private copy: later writes into the caller's arrays change nothing here
        return freeze_copy(new) if isinstance(old, np.ndarray) else new

    out: T = _rebuild(template, take, [template], "")
    return out


def allclose(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """Whether two trees have the same structure and all leaves are ``np.allclose``."""
    if not same_structure(a, b):
        return False
    return all(
        np.shape(x) == np.shape(y) and bool(np.allclose(x, y, rtol=rtol, atol=atol))
        for x, y in zip(leaves(a), leaves(b), strict=True)
    )


def global_norm(tree: Any) -> float:
    """The L2 norm of all leaves taken together: ``sqrt(sum(sum(x**2)))``."""
    total = 0.0
    for x in leaves(tree):
        v = np.asarray(x, dtype=np.float64).ravel()
        total += float(v @ v)
    return float(np.sqrt(total))


def trainable_mask(tree: Any) -> dict[str, bool]:
    """``{path: trainable}``: False for leaves under a :func:`state_field`."""
    return {p: tr for p, _, tr in _entries(tree)}


def _contiguous_base(arrays: list[FloatArray]) -> FloatArray | None:
    """The 1-D buffer the arrays tile in order, if they are consecutive C-contiguous
    views of one; else None."""
    if not arrays:
        return None
    base = arrays[0].base
    if not isinstance(base, np.ndarray) or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    itemsize = base.itemsize
    ptr = base.__array_interface__["data"][0]
    total = 0
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.dtype != base.dtype:
            return None
        if a.__array_interface__["data"][0] != ptr + total * itemsize:
            return None
        total += a.size
    if total != base.size:
        return None
    return base


def ravel(tree: Any) -> FloatArray:
    """All leaves of ``tree`` concatenated into one 1-D array, in :func:`leaves` order.

    When the leaves are consecutive views of one buffer (trees made by :func:`pack`,
    :func:`unravel` or ``fnn.init``), the buffer itself is returned, read-only and
    without a copy. Otherwise a new array is made.
    """
    arrays = [np.asarray(x) for x in leaves(tree)]
    base = _contiguous_base(arrays)
    if base is not None:
        return read_only(base.view())
    if not arrays:
        return np.zeros(0)
    dtype = np.result_type(*arrays)
    return np.concatenate([a.ravel() for a in arrays]).astype(dtype, copy=False)


def unravel(template: T, flat: FloatArray) -> T:
    """A tree shaped like ``template`` whose leaves are read-only views of ``flat``.

    ``flat`` is 1-D with as many elements as ``template`` has in all its leaves. The
    views share memory with ``flat``: pass a fresh array (the caller must not write into
    it afterwards).
    """
    flat = np.asarray(flat)
    sizes = [int(np.size(x)) for x in leaves(template)]
    if flat.ndim != 1 or flat.size != sum(sizes):
        raise ValueError(f"flat has shape {flat.shape}, expected ({sum(sizes)},) for this tree")
    pos = [0]

    def take(_path: str, ls: list[Any]) -> Any:
        shape = np.shape(ls[0])
        n = int(np.prod(shape, dtype=np.int64))
        v = read_only(flat[pos[0] : pos[0] + n].reshape(shape))
        pos[0] += n
        return v

    out: T = _rebuild(template, take, [template], "")
    return out


def pack(tree: T) -> T:
    """A copy of ``tree`` whose leaves are read-only views of one new contiguous buffer."""
    flat = np.array(ravel(tree), copy=True)
    return unravel(tree, flat)


def leaf_mask(tree: Any, predicate: Callable[[str], bool]) -> BoolArray:
    """A flat boolean mask (ravel order) that is True on the leaves whose path
    satisfies ``predicate``."""
    parts = [np.full(int(np.size(x)), predicate(p), dtype=bool) for p, x in leaves_with_paths(tree)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
