from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest

import fnn
from fnn import tree


@attrs.frozen(eq=False)
class Pair:
    a: Any
    b: Any
    name: str = tree.static_field(default="p")


@attrs.frozen(eq=False)
class WithState:
    w: Any
    running: Any = tree.state_field()


def make() -> dict[str, Any]:
    return {"x": (np.arange(3.0), None, [np.ones((2, 2))]), "p": Pair(np.zeros(2), np.eye(2))}


def test_leaves_paths_and_static_fields_are_structure() -> None:
    t = make()
    paths = [p for p, _ in tree.leaves_with_paths(t)]
    # dict keys sorted; None has no leaves; static field "name" is not a leaf
    assert paths == ["p.a", "p.b", "x.0", "x.2.0"]
    assert len(tree.leaves(t)) == 4


def test_map_over_several_trees_keeps_type_and_structure() -> None:
    t = make()
    doubled = tree.map(lambda x, y: x + y, t, t)
    assert isinstance(doubled["p"], Pair)
    assert doubled["p"].name == "p"
    assert np.array_equal(doubled["x"][2][0], 2 * np.ones((2, 2)))
    assert tree.same_structure(t, doubled)


def test_map_rejects_different_structures_with_path() -> None:
    a = {"x": (np.zeros(1), np.zeros(1))}
    b = {"x": (np.zeros(1),)}
    with pytest.raises(ValueError, match="structures differ at 'x'"):
        tree.map(lambda u, v: u, a, b)


def test_static_fields_distinguish_structures() -> None:
    a = Pair(np.zeros(1), np.zeros(1), name="a")
    b = Pair(np.zeros(1), np.zeros(1), name="b")
    assert not tree.same_structure(a, b)


def test_flatten_unflatten_round_trip_with_network_paths() -> None:
    net = fnn.init(fnn.mlp([3, 4, 2]), rng=0)
    flat = tree.flatten(net)
    assert list(flat) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]
    back = tree.unflatten(net, {k: v * 2 for k, v in flat.items()})
    assert isinstance(back, fnn.Network)
    assert np.array_equal(back.layers[0].W, 2 * net.layers[0].W)  # type: ignore[attr-defined]


def test_unflatten_names_missing_extra_and_misshapen_paths() -> None:
    net = fnn.init(fnn.mlp([3, 4, 2]), rng=0)
    flat = tree.flatten(net)
    with pytest.raises(ValueError, match="missing path 'layers.1.b'"):
        tree.unflatten(net, {k: v for k, v in flat.items() if k != "layers.1.b"})
    with pytest.raises(ValueError, match="unexpected path"):
        tree.unflatten(net, {**flat, "layers.9.W": np.zeros(1)})
    with pytest.raises(ValueError, match=r"'layers.0.W' has shape \(4, 3\), expected \(3, 4\)"):
        tree.unflatten(net, {**flat, "layers.0.W": np.zeros((4, 3))})


def test_allclose_global_norm_zeros_like() -> None:
    t = make()
    assert tree.allclose(t, tree.map(lambda x: x + 1e-12, t))
    assert not tree.allclose(t, tree.map(lambda x: x + 1.0, t))
    # norm of all leaves together: 0,1,2 and four ones and eye(2)
    assert tree.global_norm(t) == pytest.approx(np.sqrt(0 + 1 + 4 + 4 + 2))
    z = tree.zeros_like(t)
    assert tree.global_norm(z) == 0.0
    assert all(not x.flags.writeable for x in tree.leaves(z))


def test_ravel_of_packed_tree_is_zero_copy_and_unravel_inverts() -> None:
    t = tree.pack(make())
    flat = tree.ravel(t)
    assert flat.shape == (3 + 4 + 2 + 4,)
    assert all(np.shares_memory(flat, x) for x in tree.leaves(t))
    assert not flat.flags.writeable
    back = tree.unravel(t, np.array(flat))
    assert tree.allclose(back, t)
    # an unpacked tree is raveled by copying, in the same order
    assert np.array_equal(tree.ravel(make()), flat)


def test_state_fields_are_leaves_but_not_trainable() -> None:
    t = WithState(w=np.ones(2), running=np.zeros(2))
    assert tree.trainable_mask(t) == {"w": True, "running": False}


def test_readonly_view_does_not_freeze_the_callers_array() -> None:
    a = np.ones(3)
    v = tree.readonly(a)
    assert a.flags.writeable and not v.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        v[0] = 2.0


def test_one_field_table_decides_every_walks_children() -> None:
    """``record_fields`` gives each attrs field's role once per class, and ``children``
    (what leaves, paths, structure, maps, layouts and sealing walk) follows it."""
    bn = fnn.layers.BatchNorm.create(2)
    roles = dict(tree.record_fields(type(bn)))
    assert roles["scale"] == tree.LEAF and roles["running_mean"] == tree.STATE
    assert roles["momentum"] == tree.STATIC
    assert tree.record_fields(type(bn)) is tree.record_fields(type(bn))  # computed once
    assert tree.record_fields(int) == ()
    kids = [(k, tr) for k, _, tr in tree.children(bn)]
    assert kids == [
        ("scale", True),
        ("shift", True),
        ("running_mean", False),
        ("running_var", False),
    ]
    assert [p for p, _ in tree.leaves_with_paths(bn)] == [k for k, _ in kids]
    assert list(tree.children({"b": 1, "a": (2,)})) == [("a", (2,), True), ("b", 1, True)]
    assert list(tree.children(np.ones(3))) == []
