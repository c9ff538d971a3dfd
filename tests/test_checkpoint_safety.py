"""Checkpoints that lie are refused before they cost anything (issue 13, items 6-9;
BAD_INPUTS.md): arrays that contradict the manifest's architecture, malformed manifests,
archives that would decompress to more than they declare, and the files a save leaves.
Every refusal is a ValueError naming the file and what is wrong."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import _atomic, tree

Arrays = dict[str, np.ndarray[Any, Any]]
Edit = Callable[[dict[str, Any], Arrays], None]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a checkpoint with a network (dense, dropout, dense), an optimizer
    state (clip + AdamW with a mask and a schedule) and a History."""
    X, y = fnn.datasets.make_spirals(60, rng=0)
    net = fnn.init(fnn.mlp([2, 8, 3], output="softmax", dropout=0.1), rng=0)
    opt = fnn.chain(
        fnn.clip_by_global_norm(5.0),
        fnn.adamw(fnn.schedules.WarmupCosine(1e-2, 5, 50), decay_mask=fnn.weights_only),
    )
    net, h = fnn.fit(net, opt, X, y, epochs=2, rng=0, verbose=0)
    path = fnn.save(
        tmp_path_factory.mktemp("ck") / "good.npz", net, opt_state=h.opt_state, history=h
    )
    return path.read_bytes()


def unpack(data: bytes) -> tuple[dict[str, Any], Arrays]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("manifest.json").tobytes()), arrays


def write(path: Path, manifest: dict[str, Any] | bytes, arrays: Arrays, **savez: Any) -> Path:
    """A checkpoint written by hand (np.savez, or np.savez_compressed with compress=True)."""
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    payload: dict[str, Any] = {"manifest.json": np.frombuffer(raw, dtype=np.uint8), **arrays}
    (np.savez_compressed if savez.get("compress") else np.savez)(path, **payload)
    return path


def npy(a: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def build(path: Path, manifest: dict[str, Any], members: dict[str, bytes]) -> Path:
    """An archive member by member (deflated), with whatever bytes each member holds."""
    raw = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json.npy", npy(raw))
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return path


def edited(tmp_path: Path, saved: bytes, edit: Edit, name: str = "bad.npz") -> Path:
    manifest, arrays = unpack(saved)
    edit(manifest, arrays)
    return write(tmp_path / name, manifest, arrays)


def declare(manifest: dict[str, Any], arrays: Arrays) -> None:
    """Make the manifest's array list agree with ``arrays`` (a consistent lie)."""
    manifest["arrays"] = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
    }


def opt_path(arrays: Arrays, field: str) -> str:
    (key,) = [k for k in arrays if k.startswith("opt_state/") and k.endswith(field)]
    return key


# --- item 6: arrays that contradict the architecture --------------------------------


def replace(key: str, make: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]) -> Edit:
    def edit(m: dict[str, Any], a: Arrays) -> None:
        a[key] = make(a[key])
        declare(m, a)

    return edit


def replace_opt(field: str, make: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]) -> Edit:
    def edit(m: dict[str, Any], a: Arrays) -> None:
        key = opt_path(a, field)
        a[key] = make(a[key])
        declare(m, a)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            replace("params/layers.0.W", lambda w: w[:1]),
            r"array params/layers.0.W has shape \[1, 8\] and dtype float64, but the architecture "
            r"\(architecture.layers.0: dense 2 -> 8\) needs shape \[2, 8\] and dtype float64",
        ),
        (
            replace("params/layers.2.W", lambda w: np.zeros((8, 4))),
            r"array params/layers.2.W has shape \[8, 4\] .* needs shape \[8, 3\]",
        ),
        (
            replace("params/layers.0.W", lambda w: w.astype(np.float32)),
            r"array params/layers.0.W has shape \[2, 8\] and dtype float32, .* needs shape "
            r"\[2, 8\] and dtype float64",
        ),
        (
            replace("params/layers.0.b", lambda b: b.reshape(1, 8)),
            r"array params/layers.0.b has shape \[1, 8\] .* needs shape \[8\]",
        ),
        (
            replace_opt("mu", lambda mu: mu[:-1]),
            r"array opt_state/states.1.mu has shape \[50\] and dtype float64, but the optimizer "
            r"state for this network needs shape \[51\] and dtype float64",
        ),
        (
            replace_opt("nu", lambda nu: np.concatenate([nu, nu])),
            r"array opt_state/states.1.nu has shape \[102\] .* needs shape \[51\]",
        ),
        (
            replace_opt("mu", lambda mu: mu.reshape(3, 17)),
            r"array opt_state/states.1.mu has shape \[3, 17\] .* needs shape \[51\]",
        ),
        (
            replace_opt("mu", lambda mu: mu.astype(np.float32)),
            r"array opt_state/states.1.mu has shape \[51\] and dtype float32, .* dtype float64",
        ),
        (
            replace_opt("states.2", lambda mask: mask.astype(np.float64)),
            r"array opt_state/states.2 has shape \[51\] and dtype float64, .* dtype bool",
        ),
    ],
)
def test_arrays_that_contradict_the_architecture_are_refused(
    tmp_path: Path, saved: bytes, edit: Edit, message: str
) -> None:
    path = edited(tmp_path, saved, edit)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        fnn.load(path)


def test_a_missing_or_extra_optimizer_array_is_refused(tmp_path: Path, saved: bytes) -> None:
    def drop_nu(m: dict[str, Any], a: Arrays) -> None:
        del a[opt_path(a, "nu")]
        declare(m, a)

    path = edited(tmp_path, saved, drop_nu)
    with pytest.raises(
        ValueError,
        match=r"bad.npz: the optimizer state cannot be restored: optimizer-state arrays "
        r"\['states.1.nu'\] do not match",
    ):
        fnn.load(path)

    def stray(m: dict[str, Any], a: Arrays) -> None:
        a["other/thing"] = np.zeros(2)
        declare(m, a)

    with pytest.raises(ValueError, match=r"bad.npz: unexpected array other/thing"):
        fnn.load(edited(tmp_path, saved, stray))


def test_a_custom_layer_must_give_back_the_files_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_training import Scale

    # registrations made here are undone afterwards
    monkeypatch.setattr(fnn.layers.LAYERS, "_items", dict(fnn.layers.LAYERS.as_table()))

    base = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    net = fnn.Network(layers=(Scale(s=np.array([2.0, 3.0])), *base.layers), loss="mse")
    path = fnn.save(tmp_path / "custom", net)
    manifest, arrays = unpack(path.read_bytes())
    manifest["architecture"]["layers"][0]["n"] = 5  # a config the built layer cannot give
    write(path, manifest, arrays)
    fnn.layers.register_layer("scale", Scale, build=lambda cfg, a: Scale(s=a["s"]))
    with pytest.raises(
        ValueError,
        match=r"custom.npz: layers.0 built from the file's arrays is \{'kind': 'scale'\}, but "
        r"the manifest's architecture says \{'kind': 'scale', 'n': 5\}",
    ):
        fnn.load(path)
    # with a shape function, the arrays are checked against the architecture first
    fnn.layers.register_layer(
        "scale", Scale, build=lambda cfg, a: Scale(s=a["s"]), shapes=lambda cfg: {"s": (cfg["n"],)}
    )
    with pytest.raises(
        ValueError, match=r"array params/layers.0.s has shape \[2\] .* needs shape \[5\]"
    ):
        fnn.load(path)


# --- item 7: malformed manifests ----------------------------------------------------


def setting(*keys: Any, value: Any) -> Edit:
    def edit(m: dict[str, Any], a: Arrays) -> None:
        node: Any = m
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def deleting(*keys: Any) -> Edit:
    def edit(m: dict[str, Any], a: Arrays) -> None:
        node: Any = m
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return edit


MALFORMED: list[tuple[Edit, str]] = [
    (setting("version", value=True), "version must be an int from 1 to 3, got true"),
    (setting("version", value=0), "version must be an int from 1 to 3, got 0"),
    (setting("version", value=-1), "version must be an int from 1 to 3, got -1"),
    (setting("version", value="1"), r"version must be an int from 1 to 3, got \"1\""),
    (setting("version", value=1.0), "version must be an int from 1 to 3, got 1.0"),
    (deleting("version"), "version must be an int from 1 to 3, got null"),
    (setting("dtype", value=64), "dtype must be a string, got 64"),
    (setting("dtype", value="int8"), "dtype must be 'float32' or 'float64'"),
    (setting("architecture", value=[]), "architecture must be a JSON object, got a JSON list"),
    (deleting("architecture", "layers"), "architecture.layers is missing"),
    (setting("architecture", "layers", value={}), "architecture.layers must be a JSON list"),
    (setting("architecture", "layers", 0, value=5), "architecture.layers.0 must be a JSON object"),
    (setting("architecture", "layers", 1, "kind", value=None), "layers.1.kind must be a string"),
    (setting("architecture", "loss", value=3), "architecture.loss must be a JSON object, got 3"),
    (setting("architecture", "loss", value={"name": 3}), "architecture.loss.name must be a string"),
    (
        setting("architecture", "loss", value={"name": "cross_entropy", "bogus": 1}),
        "the network cannot be built from the file",
    ),
    (
        setting("architecture", "layers", 0, "n_in", value="2"),
        r"architecture.layers.0 \(dense\): n_in must be an int >= 1, got '2'",
    ),
    (
        setting("architecture", "layers", 0, "n_out", value=True),
        r"architecture.layers.0 \(dense\): n_out must be an int >= 1, got True",
    ),
    (
        setting("architecture", "layers", 0, "activation", value={"name": ["relu"]}),
        "layers.0 cannot be built from the file",
    ),
    (setting("architecture", "layers", 1, "rate", value=[]), "layers.1 cannot be built"),
    (setting("arrays", value=[]), "arrays must be a JSON object"),
    (setting("arrays", "params/layers.0.W", value=3), r"arrays.params/layers.0.W must be a JSON"),
    (
        setting("arrays", "params/layers.0.W", "shape", value=[2, -8]),
        r"arrays.params/layers.0.W.shape.1 must be an int >= 0, got -8",
    ),
    (
        setting("arrays", "params/layers.0.W", "shape", value="2x8"),
        r"arrays.params/layers.0.W.shape must be a JSON list",
    ),
    (
        setting("arrays", "params/layers.0.W", "dtype", value="object"),
        r"arrays.params/layers.0.W.dtype must be one of \['bool', 'float32', 'float64'\]",
    ),
    (setting("optimizer", value="adam"), r"optimizer must be a JSON list, got \"adam\""),
    (setting("optimizer", 0, value=[]), "optimizer.0 must be a JSON object"),
    (setting("optimizer", 0, "transform", value=7), "optimizer.0.transform must be a string"),
    (setting("optimizer", 0, "transform", value="Lion"), r"optimizer.0.transform is unknown"),
    (
        setting("optimizer", 1, "learning_rate", value={"schedule": 3}),
        "optimizer.1.learning_rate.schedule must be a string",
    ),
    (
        setting("optimizer", 1, "learning_rate", value={"schedule": "os.system"}),
        "optimizer.1.learning_rate.schedule is unknown",
    ),
    (
        setting("optimizer", 1, "learning_rate", "peak", value="x"),
        "the optimizer cannot be rebuilt from the file: peak must be a real number, got str",
    ),
    (setting("optimizer", 1, "b1", value=[0.9]), r"the optimizer cannot be rebuilt.*b1 must be"),
    (setting("optimizer", 1, "bogus", value=1), "the optimizer cannot be rebuilt from the file"),
    (setting("optimizer", 2, "mask", value=5), "optimizer.2.mask must be null or"),
    (deleting("opt_state"), "opt_state is missing"),
    (setting("opt_state", value=3), "opt_state must be a JSON object"),
    (setting("opt_state", "step", value="3"), r"opt_state.step must be an int >= 0, got \"3\""),
    (setting("opt_state", "step", value=-1), "opt_state.step must be an int >= 0, got -1"),
    (setting("opt_state", "lr_scale", value=None), "opt_state.lr_scale must be a number"),
    (setting("opt_state", "lr_scale", value=float("nan")), "opt_state.lr_scale must be finite"),
    (setting("history", value=[]), "history must be a JSON object"),
    (setting("history", "records", value="x"), "history.records must be a JSON list"),
    (setting("history", "records", 0, value=1), "history.records.0 must be a JSON object"),
    (
        setting("history", "records", 0, "epoch", value="1"),
        "history.records.0.epoch must be an int >= 1",
    ),
    (
        setting("history", "records", 1, "train_loss", value=None),
        "history.records.1.train_loss must be a number, got null",
    ),
    (
        setting("history", "records", 0, "metrics", value=[1]),
        "history.records.0.metrics must be a JSON object",
    ),
    (
        setting("history", "records", 0, "metrics", value={"accuracy": "high"}),
        "history.records.0.metrics.accuracy must be a number",
    ),
    (
        setting("history", "records", 0, "exec", value=1),
        r"history.records.0 has unknown fields \['exec'\]",
    ),
    (setting("history", "best_epoch", value="2"), "history.best_epoch must be an int >= 1"),
    (
        setting("history", "stopped_early", value="no"),
        r"history.stopped_early must be true or false, got \"no\"",
    ),
]


@pytest.mark.parametrize(("edit", "message"), MALFORMED)
def test_malformed_manifests_are_a_value_error_naming_the_file(
    tmp_path: Path, saved: bytes, edit: Edit, message: str
) -> None:
    path = edited(tmp_path, saved, edit)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": .*" + message):
        fnn.load(path)


def test_deep_nesting_is_a_value_error(tmp_path: Path, saved: bytes) -> None:
    manifest, arrays = unpack(saved)
    text = json.dumps(manifest)
    # deeper than Python's recursion limit: json.loads itself would raise RecursionError
    bomb = text[:-1] + ', "extra": ' + "[" * 200_000 + "]" * 200_000 + "}"
    path = write(tmp_path / "deep.npz", bomb.encode(), arrays)
    with pytest.raises(ValueError, match=r"deep.npz: the manifest is nested too deeply"):
        fnn.load(path)
    # parsed fine, but deeper than any checkpoint needs
    nested = text[:-1] + ', "extra": ' + "[" * 40 + "]" * 40 + "}"
    path = write(tmp_path / "nested.npz", nested.encode(), arrays)
    with pytest.raises(ValueError, match=r"nested.npz: the manifest is nested deeper than 32"):
        fnn.load(path)
    # the same depth where load reads: the layer configs
    manifest["architecture"]["layers"][0]["activation"] = json.loads("[" * 40 + "]" * 40)
    path = write(tmp_path / "layer.npz", manifest, arrays)
    with pytest.raises(ValueError, match=r"layer.npz: the manifest is nested deeper than 32"):
        fnn.load(path)


@pytest.mark.parametrize("padding", [[[0, 0]], [], [[0, 0], [0]], [[0, 0], 1], 5, {"top": 1}])
def test_a_malformed_conv_padding_is_a_value_error(tmp_path: Path, padding: Any) -> None:
    # [[0, 0]] and [] were an IndexError from fnn.load
    arch = fnn.sequential(
        (6, 6, 1), [fnn.specs.conv2d(2, 3), fnn.specs.flatten()], output="identity"
    )
    saved = fnn.save(tmp_path / "cnn.npz", fnn.init(arch, rng=0)).read_bytes()
    path = edited(tmp_path, saved, setting("architecture", "layers", 0, "padding", value=padding))
    with pytest.raises(
        ValueError, match=r"layers.0 cannot be built from the file: padding must be a string or"
    ):
        fnn.load(path)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"[1, 2]", r"not an fnn checkpoint \(wrong format field\)"),
        (b"\xff\xfe{}", r"the manifest is not valid JSON"),
        (b'{"format": "fnn-checkpoint", "version": 1, ', "the manifest is not valid JSON"),
        (b'{"format": "fnn-checkpoint", "version": 1' + b"9" * 5000 + b"}", "the manifest is not"),
    ],
)
def test_manifests_that_are_not_json_objects(
    tmp_path: Path, saved: bytes, manifest: bytes, message: str
) -> None:
    _, arrays = unpack(saved)
    path = write(tmp_path / "m.npz", manifest, arrays)
    with pytest.raises(ValueError, match=r"m.npz: " + message):
        fnn.load(path)


def test_a_manifest_that_is_not_bytes_is_refused(tmp_path: Path, saved: bytes) -> None:
    _, arrays = unpack(saved)
    path = tmp_path / "m.npz"
    payload: dict[str, Any] = {"manifest.json": np.zeros((2, 3)), **arrays}
    np.savez(path, **payload)
    with pytest.raises(
        ValueError,
        match=r"m.npz: the manifest must be a 1-D uint8 array, got shape \[2, 3\] and dtype "
        "float64",
    ):
        fnn.load(path)


# --- item 8: bounded memory ---------------------------------------------------------


@pytest.fixture
def peak_memory() -> Iterator[Callable[[], int]]:
    """The peak traced allocation (bytes, NumPy's array data included) since the start."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def patch_sizes(path: Path, member: str, *, file_size: int | None = None) -> None:
    """Overwrite the uncompressed size that the zip's central directory declares."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        n = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + n]) == name:
            if file_size is not None:
                struct.pack_into("<I", data, at + 24, file_size)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"no member {member}")


BIG = 100 * 2**20  # 100 MiB of zeros deflate to about 100 KiB


def test_a_deflated_array_larger_than_the_manifest_declares_is_never_decompressed(
    tmp_path: Path, saved: bytes, peak_memory: Callable[[], int]
) -> None:
    manifest, arrays = unpack(saved)
    arrays["params/layers.0.W"] = np.zeros(BIG // 8)
    path = write(tmp_path / "bomb.npz", manifest, arrays, compress=True)
    assert path.stat().st_size < 2**20
    del arrays
    tracemalloc.reset_peak()
    with pytest.raises(
        ValueError,
        match=r"bomb.npz: array params/layers.0.W has shape \[13107200\] and dtype float64, "
        r"but the manifest says \[2, 8\] and float64",
    ):
        fnn.load(path)
    assert peak_memory() < 4 * 2**20


def test_an_archive_that_declares_less_than_it_decompresses_to_is_read_only_so_far(
    tmp_path: Path, saved: bytes, peak_memory: Callable[[], int]
) -> None:
    # the .npy header and the zip directory both say 2x8, the deflated stream holds 100 MiB
    manifest, arrays = unpack(saved)
    members = {k: npy(a) for k, a in arrays.items()}
    members["params/layers.0.W"] = npy_header((2, 8)) + bytes(BIG)
    path = build(tmp_path / "bomb.npz", manifest, members)
    del members
    patch_sizes(path, "params/layers.0.W.npy", file_size=len(npy_header((2, 8))) + 16 * 8)
    assert path.stat().st_size < 2**20
    tracemalloc.reset_peak()
    with pytest.raises(ValueError, match=r"bomb.npz: corrupted or truncated checkpoint \(Bad CRC"):
        fnn.load(path)
    assert peak_memory() < 4 * 2**20


def test_an_archive_declaring_more_than_its_bytes_can_hold_is_refused(
    tmp_path: Path, saved: bytes, peak_memory: Callable[[], int]
) -> None:
    path = tmp_path / "huge.npz"
    path.write_bytes(saved)
    patch_sizes(path, "params/layers.0.W.npy", file_size=4_000_000_000)
    tracemalloc.reset_peak()
    with pytest.raises(
        ValueError,
        match=r"huge.npz: member 'params/layers.0.W.npy' declares 4000000000 bytes, more than "
        r"its 256 stored bytes can hold",
    ):
        fnn.load(path)
    assert peak_memory() < 2**20


def test_a_header_declaring_terabytes_is_refused_before_any_allocation(
    tmp_path: Path, saved: bytes, peak_memory: Callable[[], int]
) -> None:
    # manifest, architecture and .npy header agree on a 1e6 x 1e6 layer: 8 TB
    manifest, arrays = unpack(saved)
    manifest["architecture"]["layers"][0]["n_out"] = 10**6
    manifest["architecture"]["layers"][0]["n_in"] = 10**6
    manifest["arrays"]["params/layers.0.W"]["shape"] = [10**6, 10**6]
    members = {k: npy(a) for k, a in arrays.items()}
    members["params/layers.0.W"] = (
        npy_header((10**6, 10**6)) + arrays["params/layers.0.W"].tobytes()
    )
    path = build(tmp_path / "tera.npz", manifest, members)
    tracemalloc.reset_peak()
    with pytest.raises(
        ValueError,
        match=r"tera.npz: array params/layers.0.W: its header declares shape \[1000000, 1000000\] "
        r"and dtype float64 \(8000000000000 bytes\), but the archive declares 128 bytes of data",
    ):
        fnn.load(path)
    assert peak_memory() < 2**20


def test_other_compression_methods_are_refused(tmp_path: Path, saved: bytes) -> None:
    path = tmp_path / "bz.npz"
    with (
        zipfile.ZipFile(io.BytesIO(saved)) as src,
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(ValueError, match=r"bz.npz: member '.*' uses compression method 12"):
        fnn.load(path)


def test_a_compressed_but_honest_checkpoint_still_loads(tmp_path: Path, saved: bytes) -> None:
    manifest, arrays = unpack(saved)
    path = write(tmp_path / "small.npz", manifest, arrays, compress=True)
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    ck = fnn.load(path)
    plain = tmp_path / "plain.npz"
    plain.write_bytes(saved)
    ref = fnn.load(plain)
    assert tree.allclose(ck.params, ref.params, rtol=0, atol=0)
    assert ck.opt_state is not None and ref.opt_state is not None
    assert tree.allclose(ck.opt_state.states, ref.opt_state.states, rtol=0, atol=0)


# --- item 9: permissions and temporaries --------------------------------------------


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)
    try:
        yield lambda m: (os.umask(m), None)[1]
    finally:
        os.umask(old)


def small_net() -> fnn.Network:
    return fnn.init(fnn.mlp([2, 3, 1]), rng=0)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o000])
def test_a_saved_file_has_the_mode_open_would_give(
    tmp_path: Path, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)
    path = fnn.save(tmp_path / "ck.npz", small_net())
    with open(tmp_path / "plain", "wb"):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_overwriting_keeps_the_files_mode(tmp_path: Path, umask: Callable[[int], None]) -> None:
    umask(0o022)
    path = fnn.save(tmp_path / "ck.npz", small_net())
    path.chmod(0o640)
    fnn.save(path, small_net())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def temp_name(target: str, pid: int, host: str | None = None) -> str:
    host = host or _atomic.host_tag()
    return f".{target}.{host}.{pid}.{'ab' * 8}.tmp"


@pytest.mark.skipif(os.name != "posix", reason="process liveness is checked on POSIX only")
def test_the_next_save_removes_stale_temporaries_only(tmp_path: Path) -> None:
    dead = dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / temp_name("ck.npz", dead)
        in_progress = tmp_path / temp_name("ck.npz", live.pid)
        other_target = tmp_path / temp_name("other.npz", dead)
        other_host = tmp_path / temp_name("ck.npz", dead, host="0badc0de")
        unrelated = tmp_path / ".ck.npz.notes.tmp"
        for p in (stale, in_progress, other_target, other_host, unrelated):
            p.write_bytes(b"x" * 1000)
        fnn.save(tmp_path / "ck", small_net())
        left = sorted(p.name for p in tmp_path.iterdir())
        assert stale.name not in left
        assert (
            sorted(["ck.npz", in_progress.name, other_target.name, other_host.name, unrelated.name])
            == left
        )
    finally:
        live.kill()
        live.wait()


def test_a_save_in_progress_in_this_process_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ck.npz"
    real = np.savez
    seen: list[list[str]] = []

    def savez_then_save_again(f: Any, **arrays: Any) -> None:
        real(f, **arrays)
        monkeypatch.setattr(np, "savez", real)
        fnn.save(path, small_net())  # a second save to the same path, meanwhile
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    monkeypatch.setattr(np, "savez", savez_then_save_again)
    fnn.save(path, small_net())
    (inner,) = seen
    assert len(inner) == 2 and "ck.npz" in inner  # the outer temporary survived
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]
    assert fnn.load(path).params.n_features == 2


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process liveness are POSIX")
def test_a_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        import fnn
        real = np.lib.format.write_array
        def slow(*args, **kwargs):
            real(*args, **kwargs)
            print("writing", flush=True)
            time.sleep(60)
        np.lib.format.write_array = slow
        fnn.save({str(tmp_path / "ck.npz")!r}, fnn.init(fnn.mlp([2, 3, 1]), rng=0))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        (tmp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert f".{proc.pid}." in tmp.name
        # while it is being written, a save to the same path leaves it alone
        fnn.save(tmp_path / "ck.npz", small_net())
        assert tmp.exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert tmp.exists()  # killed mid-write: nothing cleaned up
    start = time.monotonic()
    fnn.save(tmp_path / "ck.npz", small_net())
    assert time.monotonic() - start < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]


# --- what an exact resume adds: the generator's state, the split, the best params ---


@pytest.fixture(scope="module")
def saved_resumable(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a checkpoint saved from a callback mid-fit, with the generator's
    state, the validation split and the best epoch's parameters (format version 2)."""
    X, y = fnn.datasets.make_moons(40, noise=0.3, rng=0)
    net = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=0)
    path = tmp_path_factory.mktemp("ck") / "resumable.npz"

    def save(history: fnn.History, state: fnn.training.FitState) -> None:
        fnn.save(path, state.params, opt_state=state.opt_state, history=history, rng=state.rng)

    fnn.fit(
        net,
        fnn.adam(1e-2),
        X,
        y,
        epochs=2,
        rng=0,
        validation_split=0.25,
        early_stopping=fnn.EarlyStopping(),
        callbacks=[save],
        verbose=0,
    )
    ck = fnn.load(path)
    assert ck.rng is not None and ck.history is not None
    assert ck.history.split is not None and ck.history.best_params is not None
    return path.read_bytes()


def overlapping(train: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = train.copy()
    out[0] = out[1]  # a row twice, another never
    return out


MALFORMED_RESUMABLE: list[tuple[Edit, str]] = [
    (setting("version", value=1), "version is 1, which holds no rng"),
    (setting("rng", value=[]), "rng must be a JSON object, got a JSON list"),
    (
        setting("rng", "bit_generator", value="MT19937"),
        r"rng.bit_generator must be one of \['PCG64', 'PCG64DXSM'\], got \"MT19937\"",
    ),
    (setting("rng", "extra", value=1), "rng must have the fields"),
    (setting("rng", "state", value={"state": 1}), "rng.state must have the fields"),
    (setting("rng", "state", "inc", value="1"), r"rng.state.inc must be an int >= 0, got \"1\""),
    (setting("rng", "state", "state", value=-1), "rng.state.state must be an int >= 0, got -1"),
    (setting("rng", "state", "state", value=1 << 130), f"rng.state.state must be < {1 << 128},"),
    (setting("rng", "has_uint32", value=2), "rng.has_uint32 must be < 2, got 2"),
    (setting("rng", "uinteger", value=True), "rng.uinteger must be an int >= 0, got true"),
    (setting("history", "split", value=3), "history.split must be a JSON object, got 3"),
    (
        setting("history", "split", "fraction", value=1.5),
        r"history.split.fraction must be in \(0, 1\), got 1.5",
    ),
    (deleting("history", "split", "n"), "history.split.n is missing"),
    (
        setting("history", "split", "n", value=41),
        r"the split's arrays have \[30, 10\] rows, but history.split.n is 41",
    ),
    (deleting("history", "split"), r"unexpected array split/train \(history.split is unset\)"),
    (
        replace("split/train", overlapping),
        r"the split's rows are not two sorted, disjoint index arrays covering range\(40\)",
    ),
    (
        replace("split/validation", lambda v: v[::-1].copy()),
        "the split's rows are not two sorted",
    ),
    (
        replace("split/train", lambda t: t.astype(np.float64)),
        r"arrays.split/train must be a 1-D int64 array, got float64 \[30\]",
    ),
    (
        replace("split/train", lambda t: t.reshape(2, 15)),
        r"arrays.split/train must be a 1-D int64 array, got int64 \[2, 15\]",
    ),
    (setting("history", "best_params", value=False), "history.best_params must be true, got false"),
    (
        deleting("history", "best_params"),
        r"unexpected array best_params/layers.0.W \(history.best_params is unset\)",
    ),
    (
        replace("best_params/layers.0.W", lambda w: w[:1]),
        r"array best_params/layers.0.W has shape \[1, 4\] and dtype float64, but the "
        r"architecture needs shape \[2, 4\]",
    ),
    (
        replace("best_params/layers.1.b", lambda b: b.astype(np.float32)),
        r"array best_params/layers.1.b has shape \[1\] and dtype float32, .* dtype float64",
    ),
]


def dropping(key: str) -> Edit:
    def edit(m: dict[str, Any], a: Arrays) -> None:
        del a[key]
        declare(m, a)

    return edit


MALFORMED_RESUMABLE += [
    (dropping("best_params/layers.0.b"), r"best-parameter arrays do not match the architecture"),
    (dropping("split/validation"), r"the split arrays do not match: \['split/validation'\]"),
]


@pytest.mark.parametrize(("edit", "message"), MALFORMED_RESUMABLE)
def test_a_malformed_generator_state_split_or_best_params_is_refused(
    tmp_path: Path, saved_resumable: bytes, edit: Edit, message: str
) -> None:
    path = edited(tmp_path, saved_resumable, edit)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": .*" + message):
        fnn.load(path)


def test_the_resumable_checkpoint_loads_unedited(tmp_path: Path, saved_resumable: bytes) -> None:
    path = edited(tmp_path, saved_resumable, lambda m, a: None)
    ck = fnn.load(path)
    assert ck.history is not None and ck.history.split is not None
    assert not ck.history.split.train.flags.writeable
    assert ck.history.best_params is not None
    assert all(not x.flags.writeable for x in tree.leaves(ck.history.best_params))
