"""Weight decay is one transform, ``AddDecayedWeights``: the optimizers are chains of it
and an update rule, and checkpoints written while decay lived inside the optimizers
(format version 2 and before, ``tests/data/decay_v2/``, written by the fnn of commit
2ac88c0) load into that layout and resume to the bits that fnn reached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import tree
from fnn.optim import Adam, AddDecayedWeights, ClipByGlobalNorm
from tests.data.make_decay_v2 import CASES, HERE, data

CONTINUED = np.load(HERE / "continued.npz")


def old_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k[len("opt_state/") :]: z[k] for k in z.files if k.startswith("opt_state/")}


def test_decay_is_one_transform_before_a_rule_or_after_adam() -> None:
    assert fnn.adam(1e-2).transforms == (Adam(1e-2),)
    assert fnn.adam(1e-2, weight_decay=0.1).transforms == (AddDecayedWeights(0.1), Adam(1e-2))
    sched = fnn.schedules.CosineDecay(1e-2, 10)
    w = fnn.adamw(sched, weight_decay=0.1, decay_mask=fnn.weights_only)
    assert w.transforms == (
        Adam(sched),
        AddDecayedWeights(0.1, fnn.weights_only, learning_rate=sched),
    )
    for make in (fnn.sgd, fnn.rmsprop, fnn.adagrad):
        (decay, _) = make(0.1, weight_decay=0.01).transforms
        assert decay == AddDecayedWeights(0.01)
    with pytest.raises(ValueError, match="weight_decay must be >= 0, got -1.0"):
        fnn.sgd(0.1, weight_decay=-1.0)
    with pytest.raises(TypeError):
        fnn.adam(weight_decay=None)  # type: ignore[arg-type]


def test_decoupled_decay_follows_the_scheduled_rate() -> None:
    """One step of AdamW with a zero gradient changes p by -lr_t * wd * p exactly (the
    Adam step of a zero gradient is zero), at the schedule's rate and ``lr_scale``."""
    p = {"W": np.array([[1.0, -2.0]]), "b": np.array([3.0])}
    g = tree.map(np.zeros_like, p)
    sched = fnn.schedules.StepDecay(0.5, step_size=1, gamma=0.5)
    opt = fnn.adamw(sched, weight_decay=0.1, decay_mask={"W": True})
    state = opt.init(p)
    p1, state = opt.update(p, g, state)
    p2, _ = opt.update(p1, g, state)
    np.testing.assert_array_equal(p1["W"], p["W"] - 0.5 * 0.1 * p["W"])
    np.testing.assert_array_equal(p2["W"], p1["W"] - 0.25 * 0.1 * p1["W"])
    np.testing.assert_array_equal(p2["b"], p["b"])  # not in the mask


@pytest.mark.parametrize("name", list(CASES))
def test_an_old_checkpoint_loads_into_todays_layout_and_resumes_to_the_same_bits(
    name: str,
) -> None:
    path = HERE / f"{name}.npz"
    ck = fnn.load(path)
    assert ck.opt_state is not None
    opt = CASES[name]()  # today's optimizer from the same call
    assert ck.opt_state.optimizer.config() == opt.config()
    # every array of the old state is in the new one, moved, none changed
    old = old_arrays(path)
    new = {p: np.asarray(x) for p, x in tree.leaves_with_paths(ck.opt_state.states)}
    assert sorted(x.tobytes() for x in new.values()) == sorted(
        x.tobytes()
        for p, x in old.items()
        if not (name == "adamw_zero_decay_mask" and p == "states.0.1")
    )
    X, y = data()
    more, _ = fnn.fit(
        ck.params, opt, X, y, epochs=2, batch_size=16, rng=7, opt_state=ck.opt_state, verbose=0
    )
    np.testing.assert_array_equal(more.flat, CONTINUED[name])


def test_old_adamw_arrays_move_to_the_rule_and_the_decay(tmp_path: Path) -> None:
    path = HERE / "adamw_clip_schedule_mask.npz"
    ck = fnn.load(path)
    assert ck.opt_state is not None and ck.history is not None and ck.rng is not None
    kinds = [type(t) for t in ck.opt_state.optimizer.transforms]
    assert kinds == [ClipByGlobalNorm, Adam, AddDecayedWeights]
    old = old_arrays(path)
    st = ck.opt_state.transform_state(1, fnn.optim.AdamState)
    np.testing.assert_array_equal(st.mu, old["states.1.0.mu"])
    np.testing.assert_array_equal(st.nu, old["states.1.0.nu"])
    np.testing.assert_array_equal(ck.opt_state.states[2], old["states.1.1"])
    # saved again, it is a version-3 file (decoupled decay) that loads as it is
    again = fnn.save(tmp_path / "again.npz", ck.params, opt_state=ck.opt_state)
    manifest = json.loads(np.load(again)["manifest.json"].tobytes())
    assert manifest["version"] == 3
    back = fnn.load(again).opt_state
    assert back is not None and back.optimizer.config() == ck.opt_state.optimizer.config()
    assert tree.allclose(back.states, ck.opt_state.states, rtol=0, atol=0)


def test_files_without_decoupled_decay_keep_the_version_older_fnn_reads(tmp_path: Path) -> None:
    """Coupled decay is saved as ``AddDecayedWeights`` and a rule without a
    ``weight_decay`` field, which the fnn of version 1 reads the same way."""
    net = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    for opt, version in (
        (fnn.adam(1e-2, weight_decay=0.1), 1),
        (fnn.sgd(0.1, 0.9, weight_decay=0.1), 1),
        (fnn.adamw(1e-2), 3),
    ):
        path = fnn.save(tmp_path / "m.npz", net, opt_state=opt.init(net))
        manifest = json.loads(np.load(path)["manifest.json"].tobytes())
        assert manifest["version"] == version
        assert all("learning_rate" in t for t in manifest["optimizer"]) == (version == 3)


def rewritten(src: Path, dst: Path, edit: Any) -> Path:
    """A copy of checkpoint ``src`` at ``dst`` after ``edit(manifest)``."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    manifest = json.loads(arrays.pop("manifest.json").tobytes())
    edit(manifest)
    blob = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    payload: dict[str, Any] = {"manifest.json": blob, **arrays}
    np.savez(dst, **payload)
    return dst


def test_malformed_old_or_new_optimizers_are_a_value_error_naming_the_file(
    tmp_path: Path,
) -> None:
    net = fnn.init(fnn.mlp([2, 3, 1]), rng=0)
    v3 = fnn.save(tmp_path / "v3.npz", net, opt_state=fnn.adamw(1e-2).init(net))
    as_v2 = rewritten(v3, tmp_path / "as_v2.npz", lambda m: m.update(version=2))
    with pytest.raises(ValueError, match=r"as_v2.npz: .*version is 2, which holds no decoupled"):
        fnn.load(as_v2)

    def bad_decay(m: dict[str, Any]) -> None:
        m["optimizer"][1]["weight_decay"] = "lots"

    old = HERE / "adamw_clip_schedule_mask.npz"
    broken = rewritten(old, tmp_path / "broken.npz", bad_decay)
    with pytest.raises(
        ValueError,
        match=r'broken.npz: malformed manifest: optimizer.1.weight_decay must be a number, got "lots"',
    ):
        fnn.load(broken)
