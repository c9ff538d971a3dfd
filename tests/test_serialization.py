from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import serialization, tree


def trained(dtype: Any = np.float64) -> tuple[fnn.Network, fnn.History, fnn.Optimizer]:
    X, y = fnn.datasets.make_spirals(90, rng=0)
    net = fnn.init(
        fnn.mlp([2, 8, 3], hidden="leaky_relu", output="softmax", dropout=0.1, dtype=dtype), rng=0
    )
    opt = fnn.chain(
        fnn.clip_by_global_norm(5.0),
        fnn.adamw(fnn.schedules.WarmupCosine(1e-2, 5, 50), decay_mask=fnn.weights_only),
    )
    net, h = fnn.fit(net, opt, X, y, epochs=2, rng=0, verbose=0)
    return net, h, opt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_exact(tmp_path: Path, dtype: Any) -> None:
    net, h, _ = trained(dtype)
    path = fnn.save(tmp_path / "model", net, opt_state=h.opt_state, history=h)
    assert path.name == "model.npz"
    ck = fnn.load(path)
    assert tree.same_structure(ck.params, net)
    for a, b in zip(tree.leaves(ck.params), tree.leaves(net), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    X = np.random.default_rng(1).normal(size=(10, 2))
    assert np.array_equal(fnn.predict(ck.params, X), fnn.predict(net, X))
    assert ck.history is not None and ck.history.train_loss == h.train_loss
    assert ck.opt_state is not None and h.opt_state is not None
    assert ck.opt_state.step == h.opt_state.step
    assert ck.opt_state.learning_rate == h.opt_state.learning_rate
    assert tree.allclose(ck.opt_state.states, h.opt_state.states, rtol=0, atol=0)
    assert all(not x.flags.writeable for x in tree.leaves(ck.params))
    # params only
    bare = fnn.load(fnn.save(tmp_path / "bare.npz", net))
    assert bare.opt_state is None and bare.history is None


def test_resume_from_a_checkpoint_is_exact(tmp_path: Path) -> None:
    X, y = fnn.datasets.make_moons(100, noise=0.2, rng=0)
    net0 = fnn.init(fnn.mlp([2, 8, 1], output="sigmoid"), rng=0)
    opt = fnn.adamw(1e-2, decay_mask=fnn.weights_only)
    full, _ = fnn.fit(net0, opt, X, y, epochs=4, rng=np.random.default_rng(3), verbose=0)
    gen = np.random.default_rng(3)
    half, h = fnn.fit(net0, opt, X, y, epochs=2, rng=gen, verbose=0)
    ck = fnn.load(fnn.save(tmp_path / "half", half, opt_state=h.opt_state, history=h))
    # the user's optimizer again (its mask is a function: the file holds the resolved mask)
    resumed, _ = fnn.fit(
        ck.params,
        fnn.adamw(1e-2, decay_mask=fnn.weights_only),
        X,
        y,
        epochs=2,
        rng=gen,
        opt_state=ck.opt_state,
        initial_epoch=2,
        verbose=0,
    )
    assert tree.allclose(resumed, full, rtol=0, atol=0)
    with pytest.raises(ValueError, match="different optimizer"):
        fnn.fit(ck.params, fnn.adam(1e-2), X, y, epochs=1, rng=0, opt_state=ck.opt_state, verbose=0)


def test_manifest_is_plain_json_any_program_can_read(tmp_path: Path) -> None:
    net, h, _ = trained()
    path = fnn.save(tmp_path / "m.npz", net, opt_state=h.opt_state, history=h)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert "manifest.json.npy" in names and "params/layers.0.W.npy" in names
    with np.load(path, allow_pickle=False) as data:
        manifest = json.loads(data["manifest.json"].tobytes())
    # version 3: AdamW's decoupled weight decay (older versions hold none)
    assert manifest["format"] == "fnn-checkpoint" and manifest["version"] == 3
    assert manifest["architecture"]["layers"][0]["activation"]["name"] == "leaky_relu"
    assert [t["transform"] for t in manifest["optimizer"]] == [
        "ClipByGlobalNorm",
        "Adam",
        "AddDecayedWeights",
    ]
    assert manifest["optimizer"][1]["learning_rate"]["schedule"] == "WarmupCosine"
    assert manifest["optimizer"][2]["learning_rate"] == manifest["optimizer"][1]["learning_rate"]


def test_interrupted_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, _, opt = trained()
    path = fnn.save(tmp_path / "ck.npz", net)
    before = path.read_bytes()
    calls = {"n": 0}
    real = np.lib.format.write_array

    def failing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the write fails half-way through the archive
            raise OSError("disk full")
        real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing)
    other = fnn.init(fnn.mlp([2, 8, 3], output="softmax"), rng=9)
    with pytest.raises(OSError, match="disk full"):
        fnn.save(path, other, opt_state=opt.init(other))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]  # no temporary left
    assert tree.allclose(fnn.load(path).params, net, rtol=0, atol=0)


def rewrite(path: Path, edit: Any) -> None:
    """Rewrite a checkpoint after ``edit(manifest, arrays)`` (without fnn.save)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    manifest = json.loads(arrays.pop("manifest.json").tobytes())
    edit(manifest, arrays)
    blob = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    payload: dict[str, Any] = {"manifest.json": blob, **arrays}
    np.savez(path, **payload)


def test_bad_checkpoints_name_the_file_and_what_is_wrong(tmp_path: Path) -> None:
    net, h, _ = trained()
    good = fnn.save(tmp_path / "good.npz", net, opt_state=h.opt_state, history=h)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated.npz: corrupted or truncated checkpoint"):
        fnn.load(truncated)

    corrupted = tmp_path / "corrupted.npz"
    corrupted.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(ValueError, match=r"corrupted.npz: corrupted or truncated checkpoint"):
        fnn.load(corrupted)

    newer = tmp_path / "newer.npz"
    newer.write_bytes(data)
    rewrite(newer, lambda m, a: m.update(version=99))
    with pytest.raises(
        ValueError, match=r"newer.npz: format version 99 is newer than this fnn reads \(3\)"
    ):
        fnn.load(newer)

    mismatch = tmp_path / "mismatch.npz"
    mismatch.write_bytes(data)
    rewrite(mismatch, lambda m, a: a.update({"params/layers.0.W": a["params/layers.0.W"][:1]}))
    with pytest.raises(
        ValueError, match=r"mismatch.npz: array params/layers.0.W has shape \[1, 8\]"
    ):
        fnn.load(mismatch)

    extra = tmp_path / "extra.npz"
    extra.write_bytes(data)
    rewrite(extra, lambda m, a: a.update({"params/layers.9.W": np.zeros(2)}))
    with pytest.raises(ValueError, match=r"extra.npz: the manifest does not match the arrays"):
        fnn.load(extra)

    pickled = tmp_path / "pickled.npz"
    evil: dict[str, Any] = {
        "manifest.json": np.zeros(3, np.uint8),
        "evil": np.array([object()], dtype=object),
    }
    np.savez(pickled, **evil)
    with pytest.raises(
        ValueError, match=r"pickled.npz: holds object \(pickled\) arrays, which are never loaded"
    ):
        fnn.load(pickled)

    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))  # a valid .npz that is not a checkpoint
    with pytest.raises(ValueError, match=r"foreign.npz: not an fnn checkpoint"):
        fnn.load(foreign)

    unknown = tmp_path / "unknown.npz"
    unknown.write_bytes(data)
    rewrite(unknown, lambda m, a: m["architecture"]["layers"][0].update(kind="conv"))
    with pytest.raises(ValueError, match=r"unknown.npz: layers.0 has unknown kind 'conv'"):
        fnn.load(unknown)

    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        fnn.load(tmp_path / "missing.npz")


def test_save_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="params must be an fnn.Network"):
        fnn.save(tmp_path / "x", {"W": np.zeros(2)})  # type: ignore[arg-type]
    net, _, _ = trained()
    with pytest.raises(TypeError, match="opt_state must be an fnn.optim.OptState"):
        fnn.save(tmp_path / "x", net, opt_state="adam")  # type: ignore[arg-type]
    assert not (tmp_path / "x.npz").exists()


def test_custom_layers_can_be_registered(tmp_path: Path) -> None:
    from tests.test_training import Scale

    base = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    net = fnn.Network(layers=(Scale(s=np.array([2.0, 3.0])), *base.layers), loss="mse")
    path = fnn.save(tmp_path / "custom", net)
    with pytest.raises(ValueError, match="unknown kind 'scale'"):
        fnn.load(path)
    with pytest.warns(DeprecationWarning, match="fnn.layers.register_layer"):
        serialization.register_layer("scale", lambda cfg, a: Scale(s=a["s"]))
    assert tree.allclose(fnn.load(path).params, net, rtol=0, atol=0)
