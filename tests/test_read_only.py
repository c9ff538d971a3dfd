"""``fnn.tree.read_only`` is the one place fnn clears an array's ``writeable`` flag."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import fnn
from fnn import tree


def test_in_place_by_default() -> None:
    a = np.arange(6.0)
    out = tree.read_only(a)
    assert out is a
    assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1.0


def test_owners_freezes_the_base_chain() -> None:
    owner = np.arange(6.0)
    v = owner[1:4]
    tree.read_only(v, owners=True)
    assert not owner.flags.writeable
    with pytest.raises(ValueError):
        v.flags.writeable = True


def test_copy_is_private_and_cannot_be_reopened() -> None:
    a = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    out = tree.read_only(a, copy=True)
    a[0, 0] = 99.0  # the caller's array stays writable and the copy does not change
    assert out[0, 0] == 0.0
    assert out.flags.c_contiguous
    with pytest.raises(ValueError):
        out.flags.writeable = True


def test_non_arrays_pass_through() -> None:
    for x in (None, 1.5, "a", (1, 2)):
        assert tree.read_only(x) is x


def test_no_other_module_clears_the_flag() -> None:
    """Every other module calls the helper: one concept, one place."""
    root = Path(fnn.__file__).parent
    pattern = re.compile(r"\.writeable\s*=\s*False|setflags\(\s*write\s*=\s*False")
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in sorted(root.rglob("*.py"))
        if p.name != "tree.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
