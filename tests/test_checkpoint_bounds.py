"""Checkpoints, round two (issue 21, items 8, 11 and 17; BAD_INPUTS.md): a save refuses
an optimizer state of another network before it writes anything; a load checks every
declared size against ``max_bytes`` and the whole architecture before it inflates or
allocates anything, and reads each array straight into its final buffer; an unknown
loss says how to register it."""

from __future__ import annotations

import inspect
import json
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
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


# --- item 11: bounded memory ----------------------------------------------------------

MiB = 1 << 20


class PeakMemory:
    """Traced allocations (NumPy's array data included) above what was allocated at the
    last :meth:`reset`: the most at any moment since."""

    def __init__(self) -> None:
        self.base = 0

    def reset(self) -> None:
        tracemalloc.reset_peak()
        self.base = tracemalloc.get_traced_memory()[0]

    def peak(self) -> int:
        return tracemalloc.get_traced_memory()[1] - self.base


@pytest.fixture
def memory() -> Iterator[PeakMemory]:
    tracemalloc.start()
    try:
        yield PeakMemory()
    finally:
        tracemalloc.stop()


@pytest.fixture
def inflated(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """The bytes read out of archive members (inflated) since the fixture was made."""
    total = [0]
    real = zipfile.ZipExtFile.read

    def counting(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        data = real(self, n)
        total[0] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    return lambda: total[0]


def unpack(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("manifest.json").tobytes()), arrays


def write(path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray[Any, Any]]) -> Path:
    """A checkpoint written by hand, deflated, its manifest's array list made to agree."""
    manifest["arrays"] = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
    }
    blob = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    payload: dict[str, Any] = {"manifest.json": blob, **arrays}
    np.savez_compressed(path, **payload)
    return path


def declared_bytes(path: Path) -> int:
    with zipfile.ZipFile(path) as z:
        return sum(i.file_size for i in z.infolist())


def test_a_consistent_checkpoint_loads_into_one_buffer_at_most_one_copy_over(
    tmp_path: Path, memory: PeakMemory
) -> None:
    # 16 MiB of parameters in three layers (the largest half of them)
    net = fnn.init(fnn.mlp([1024, 1024, 1024, 10], output="softmax"), rng=0)
    path = fnn.save(tmp_path / "ck.npz", net)
    declared = declared_bytes(path)
    assert declared > 16 * MiB
    memory.reset()
    ck = fnn.load(path)
    peak = memory.peak()
    # the target: the declared sizes plus one copy (main took four copies)
    assert peak <= 2 * declared, f"peak {peak / MiB:.1f} MiB for {declared / MiB:.1f} MiB"
    assert tree.allclose(ck.params, net, rtol=0, atol=0)
    flat = ck.params.flat
    assert all(np.shares_memory(x, flat) for x in tree.leaves(ck.params))
    assert not flat.flags.writeable
    assert not any(x.flags.writeable for x in tree.leaves(ck.params))


def test_layers_that_do_not_chain_are_refused_before_any_array_is_inflated(
    tmp_path: Path, inflated: Callable[[], int]
) -> None:
    # each layer agrees with its own config, but layers.0 gives 1,000,000 outputs to a
    # layer that takes 8: 16 MB of zeros that deflate to about 16 KB
    net = net_of([2, 8, 3])
    manifest, arrays = unpack(fnn.save(tmp_path / "ck.npz", net))
    manifest["architecture"]["layers"][0]["n_out"] = 10**6
    arrays["params/layers.0.W"] = np.zeros((2, 10**6))
    arrays["params/layers.0.b"] = np.zeros(10**6)
    path = write(tmp_path / "bomb.npz", manifest, arrays)
    assert path.stat().st_size < MiB
    before = inflated()
    with pytest.raises(
        ValueError,
        match=r"bomb.npz: the network cannot be built from the file: layers.1 expects 8 "
        r"inputs but the previous layer gives 1000000",
    ):
        fnn.load(path)
    assert inflated() - before < 64 * 1024  # the .npy headers and the manifest only


def test_every_declared_size_is_checked_against_max_bytes(
    tmp_path: Path, inflated: Callable[[], int], memory: PeakMemory
) -> None:
    net = fnn.init(fnn.mlp([256, 512, 10], output="softmax"), rng=0)  # about 1 MiB
    path = fnn.save(tmp_path / "ck.npz", net, opt_state=fnn.adam(1e-3).init(net))
    declared = declared_bytes(path)
    before = inflated()
    memory.reset()
    with pytest.raises(
        ValueError,
        match=rf"ck.npz: the archive \(uncompressed\) declares {declared:,} bytes, more than "
        rf"max_bytes={declared - 1:,} \(pass a larger max_bytes= to read it\)",
    ):
        fnn.load(path, max_bytes=declared - 1)
    assert inflated() == before and memory.peak() < MiB // 4
    ck = fnn.load(path, max_bytes=declared)
    assert tree.allclose(ck.params, net, rtol=0, atol=0)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        fnn.load(path, max_bytes=None)  # type: ignore[arg-type]
    assert inspect.signature(fnn.load).parameters["max_bytes"].default == 2 << 30


def test_an_optimizer_of_many_transforms_is_refused_one_transform_in(
    tmp_path: Path, memory: PeakMemory
) -> None:
    # 200 Adam transforms declared, the state of none in the file: building the state
    # they declare (200 x 2 x 1 MiB) before comparing would cost 400 MiB
    net = fnn.init(fnn.mlp([256, 512, 10], output="softmax"), rng=0)  # 1 MiB in float64
    path = fnn.save(tmp_path / "ck.npz", net, opt_state=fnn.sgd(1e-2).init(net))
    manifest, arrays = unpack(path)
    manifest["optimizer"] = [fnn.adam(1e-3).config()[0]] * 200
    path = write(path, manifest, arrays)
    memory.reset()
    with pytest.raises(
        ValueError,
        match=r"ck.npz: the optimizer state cannot be restored: optimizer-state arrays "
        r"\['states.0.mu', 'states.0.nu'\] do not match",
    ):
        fnn.load(path)
    assert memory.peak() < 6 * MiB  # the network and one transform's state
