"""Checkpoints, round two (issue 21, items 8, 11 and 17; BAD_INPUTS.md): a save refuses
an optimizer state of another network before it writes anything; a load checks every
declared size against ``max_bytes`` and the whole architecture before it inflates or
allocates anything, and reads each array straight into its final buffer; an unknown
loss says how to register it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import fnn
from fnn import tree


def net_of(sizes: list[int], dtype: Any = np.float64) -> fnn.Network:
    return fnn.init(fnn.mlp(sizes, output="softmax", dtype=dtype), rng=0)


# --- item 8: a save refuses an optimizer state made for another network --------------


@pytest.mark.parametrize(
    ("other", "where"),
    [
        (lambda: net_of([2, 16, 3]), r"'layers\.0\.W' is shape \(2, 16\)"),  # bigger
        (lambda: net_of([2, 4, 3]), r"'layers\.0\.W' is shape \(2, 4\)"),  # smaller
        (lambda: net_of([4, 6, 3]), r"'layers\.0\.W' is shape \(4, 6\)"),  # 51 parameters too
        (lambda: net_of([2, 8, 3], np.float32), r"'layers\.0\.W' is shape \(2, 8\) float32"),
        (lambda: net_of([2, 8, 4, 3]), r"'layers\.1\.W' is shape \(8, 4\)"),  # deeper
    ],
)
def test_save_refuses_an_optimizer_state_of_another_network(
    tmp_path: Path, other: Any, where: str
) -> None:
    net = net_of([2, 8, 3])
    assert sum(x.size for x in tree.leaves(net_of([4, 6, 3]))) == net.flat.size
    opt = fnn.adam(1e-2)
    path = fnn.save(tmp_path / "ck.npz", net, opt_state=opt.init(net))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="opt_state was made for another network: " + where):
        fnn.save(path, net, opt_state=opt.init(other()))
    assert path.read_bytes() == before  # the good checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]  # nothing else written
    ck = fnn.load(path)
    assert ck.opt_state is not None and tree.allclose(ck.params, net, rtol=0, atol=0)


def test_save_refuses_a_state_that_does_not_know_its_network(tmp_path: Path) -> None:
    # a state that does not record the structure it was made for is checked leaf by leaf
    net = net_of([2, 8, 3])
    opt = fnn.adam(1e-2)
    bigger = attrs.evolve(opt.init(net_of([2, 16, 3])), params_key=None)
    with pytest.raises(
        ValueError, match=r"opt_state was made for parameters of 99 elements \(states.0\)"
    ):
        fnn.save(tmp_path / "ck.npz", net, opt_state=bigger)
    masked = attrs.evolve(opt.init(net), params_key=None, trainable=np.ones(51, bool))
    with pytest.raises(ValueError, match=r"opt_state has more leaves .* at 'trainable'"):
        fnn.save(tmp_path / "ck.npz", net, opt_state=masked)
    assert not (tmp_path / "ck.npz").exists()
    # one that fits is saved, and loads
    fitting = attrs.evolve(opt.init(net), params_key=None)
    ck = fnn.load(fnn.save(tmp_path / "ck.npz", net, opt_state=fitting))
    assert ck.opt_state is not None and ck.opt_state.step == 0
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


# --- item 17: an unknown loss says how to register it --------------------------------


@attrs.frozen
class HalfMSE(fnn.losses.MeanSquaredError):
    """A loss kind of the user's (not registered until the test registers it)."""

    name = "half_mse"


def test_an_unregistered_loss_points_to_the_loss_registry(tmp_path: Path) -> None:
    base = fnn.init(fnn.mlp([2, 8, 1]), rng=0)
    net = fnn.Network(layers=base.layers, loss=HalfMSE())
    path = fnn.save(tmp_path / "ck.npz", net)
    with pytest.raises(
        ValueError,
        match=r"ck.npz: architecture.loss has unknown loss 'half_mse' "
        r"\(register it with fnn.losses.register\)",
    ):
        fnn.load(path)
    # the name the message gives is the one that makes the file load
    fnn.losses.register(HalfMSE)
    try:
        ck = fnn.load(path)
    finally:
        fnn.losses.LOSSES.unregister("half_mse")
    assert type(ck.params.loss) is HalfMSE
    assert tree.allclose(ck.params, net, rtol=0, atol=0)
