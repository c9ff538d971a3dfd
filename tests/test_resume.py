"""A run saved and resumed in a new process equals the uninterrupted run bit for bit,
with validation_split, ReduceOnPlateau, EarlyStopping (restore_best) and dropout
(issue 13, item 5; BAD_INPUTS.md). The runs are in ``tests/resume_cases.py``, which the
new process imports too."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import tree
from fnn.training import Callback, FitState
from tests import resume_cases as rc

ROOT = Path(__file__).resolve().parent.parent
V1 = Path(__file__).with_name("data") / "checkpoint_v1.npz"


def uninterrupted(case: str, **extra: Any) -> tuple[fnn.Network, fnn.History]:
    X, y = rc.data()
    return fnn.fit(
        rc.network(case),
        rc.optimizer(),
        X,
        y,
        epochs=rc.EPOCHS,
        rng=np.random.default_rng(rc.SEED),
        **rc.options(case),
        **extra,
    )


def resume_in_a_new_process(case: str, checkpoint: Path, tmp_path: Path) -> fnn.Checkpoint:
    out = tmp_path / "resumed.npz"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run(
        [sys.executable, "-m", "tests.resume_cases", case, str(checkpoint), str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return fnn.load(out)


def assert_same_run(
    params: fnn.Network, history: fnn.History, other: fnn.Network, other_history: fnn.History
) -> None:
    """Bit for bit: parameters, optimizer state and every recorded value but the time."""
    assert tree.same_structure(params, other)
    for a, b in zip(tree.leaves(params), tree.leaves(other), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert history.epochs == other_history.epochs
    assert history.train_loss == other_history.train_loss
    assert history.val_loss == other_history.val_loss
    assert [r.learning_rate for r in history.records] == [
        r.learning_rate for r in other_history.records
    ]
    assert history.best_epoch == other_history.best_epoch
    assert history.stopped_early == other_history.stopped_early
    s, t = history.opt_state, other_history.opt_state
    assert s is not None and t is not None and s.step == t.step and s.lr_scale == t.lr_scale
    for a, b in zip(tree.leaves(s.states), tree.leaves(t.states), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("case", rc.CASES)
def test_a_run_saved_mid_fit_and_resumed_in_a_new_process_equals_the_uninterrupted_one(
    tmp_path: Path, case: str
) -> None:
    path = tmp_path / "ck.npz"

    def save_at(history: fnn.History, state: FitState) -> None:
        if history.records[-1].epoch == rc.SAVED_AT:
            fnn.save(path, state.params, opt_state=state.opt_state, history=history, rng=state.rng)

    full, hf = uninterrupted(case, callbacks=[save_at])
    ck = fnn.load(path)
    assert ck.history is not None and ck.history.epochs == list(range(1, rc.SAVED_AT + 1))
    resumed = resume_in_a_new_process(case, path, tmp_path)
    assert resumed.history is not None
    assert_same_run(resumed.params, resumed.history, full, hf)

    # each case exercises what it is named after, across the checkpoint
    lrs = [r.learning_rate for r in hf.records]
    if "reduce_on_plateau" in rc.options(case):
        assert lrs[0] > lrs[rc.SAVED_AT - 1] > lrs[-1]
    if "early_stopping" in rc.options(case):
        # the best epoch's parameters came from the checkpoint
        assert hf.stopped_early and hf.best_epoch is not None
        assert hf.best_epoch <= rc.SAVED_AT < len(hf.records) < rc.EPOCHS
        assert ck.history.best_params is not None
    if "validation_split" in rc.options(case):
        assert hf.split is not None and ck.history.split is not None
        assert resumed.history.split is not None
        for s in (ck.history.split, resumed.history.split):
            assert np.array_equal(s.train, hf.split.train)
            assert np.array_equal(s.validation, hf.split.validation)


def test_a_fit_of_k_epochs_saved_afterwards_resumes_exactly(tmp_path: Path) -> None:
    case = "all_but_early_stopping"
    full, hf = uninterrupted(case)
    X, y = rc.data()
    gen = np.random.default_rng(rc.SEED)
    half, h = fnn.fit(
        rc.network(case),
        rc.optimizer(),
        X,
        y,
        epochs=rc.SAVED_AT,
        rng=gen,
        **rc.options(case),
    )
    path = fnn.save(tmp_path / "ck", half, opt_state=h.opt_state, history=h, rng=gen)
    resumed = resume_in_a_new_process(case, path, tmp_path)
    assert resumed.history is not None
    assert_same_run(resumed.params, resumed.history, full, hf)
    # in the same process, continuing the History with the same generator
    again, h2 = fnn.fit(
        half,
        rc.optimizer(),
        X,
        y,
        epochs=rc.EPOCHS - rc.SAVED_AT,
        rng=gen,
        history=h,
        **rc.options(case),
    )
    assert_same_run(again, h2, full, hf)


def test_continuing_a_history_numbers_the_epochs_on() -> None:
    X, y = rc.data()
    opt = rc.optimizer()
    net, h = fnn.fit(rc.network("plain"), opt, X, y, epochs=2, rng=0, verbose=0)
    net, h2 = fnn.fit(net, opt, X, y, epochs=3, rng=0, history=h, verbose=0)
    assert h2.epochs == [1, 2, 3, 4, 5] and h2.records[:2] == h.records
    assert h2.opt_state is not None and h2.opt_state.step == 5 * -(-len(X) // 32)
    with pytest.raises(
        ValueError, match=r"initial_epoch=4 does not continue history.*last epoch is 5"
    ):
        fnn.fit(net, opt, X, y, epochs=1, rng=0, history=h2, initial_epoch=4, verbose=0)
    with pytest.raises(TypeError, match="history must be an fnn.History or None, got dict"):
        fnn.fit(net, opt, X, y, epochs=1, rng=0, history={}, verbose=0)  # type: ignore[arg-type]


def test_a_split_history_is_continued_only_with_the_same_split_and_length() -> None:
    X, y = rc.data()
    opt = rc.optimizer()
    net, h = fnn.fit(
        rc.network("plain"), opt, X, y, epochs=1, rng=0, validation_split=0.25, verbose=0
    )
    assert h.split is not None and h.split.n == len(X) and len(h.split.validation) == 30
    with pytest.raises(
        ValueError, match="X has 100 samples, but history's validation split was drawn for 120"
    ):
        fnn.fit(
            net, opt, X[:100], y[:100], epochs=1, rng=0, history=h, validation_split=0.25, verbose=0
        )
    for other in ({"validation_split": 0.2}, {}, {"validation_data": (X, y)}):
        with pytest.raises(ValueError, match=r"history was made with validation_split=0.25"):
            fnn.fit(net, opt, X, y, epochs=1, rng=0, history=h, verbose=0, **other)
    # a History with epochs but no split: the rows it validated on are unknown
    _, plain = fnn.fit(net, opt, X, y, epochs=1, rng=0, verbose=0)
    with pytest.raises(ValueError, match="it has 1 epoch.* but no validation split"):
        fnn.fit(net, opt, X, y, epochs=1, rng=0, history=plain, validation_split=0.25, verbose=0)


def test_best_params_of_another_network_are_refused() -> None:
    X, y = rc.data()
    es = fnn.EarlyStopping(patience=2)
    _, h = fnn.fit(
        rc.network("plain"), rc.optimizer(), X, y, epochs=2, rng=0, early_stopping=es, verbose=0
    )
    other = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=0)
    with pytest.raises(ValueError, match="history.best_params"):
        fnn.fit(
            other,
            fnn.adam(0.05),
            X,
            y,
            epochs=1,
            rng=0,
            history=h,
            opt_state=fnn.adam(0.05).init(other),
            verbose=0,
        )


def test_restore_best_without_the_best_params_warns_and_returns_the_last() -> None:
    X, y = rc.data()
    opt = rc.optimizer()
    net, h = fnn.fit(rc.network("plain"), opt, X, y, epochs=3, rng=0, verbose=0)
    # a huge min_delta: the first epoch stays the best, and h holds no parameters for it
    es = fnn.EarlyStopping(patience=10, min_delta=10.0)
    with pytest.warns(RuntimeWarning, match=r"cannot restore the best epoch \(1\)"):
        _, h2 = fnn.fit(net, opt, X, y, epochs=1, rng=0, history=h, early_stopping=es, verbose=0)
    assert h2.best_epoch == 1 and h2.best_params is None


def test_callbacks_of_todays_signature_still_get_only_the_history() -> None:
    X, y = rc.data()
    seen: list[str] = []

    def plain(h: fnn.History) -> None:
        seen.append("plain")

    def with_default(h: fnn.History, verbose: bool = False) -> None:
        assert verbose is False
        seen.append("default")

    def with_args(h: fnn.History, *args: Any, **kwargs: Any) -> None:
        assert args == () and kwargs == {}
        seen.append("args")

    class Counter:
        def __call__(self, h: fnn.History) -> bool:
            seen.append("object")
            return False

    def tagged(tag: str, h: fnn.History) -> None:
        seen.append(tag)

    cbs: list[Callback] = [
        plain,
        with_default,
        with_args,
        Counter(),
        functools.partial(tagged, "partial"),
        lambda h: None,
    ]
    fnn.fit(rc.network("plain"), rc.optimizer(), X, y, epochs=2, rng=0, callbacks=cbs, verbose=0)
    assert seen == ["plain", "default", "args", "object", "partial"] * 2


def test_a_callback_with_a_state_parameter_sees_the_params_and_cannot_disturb_the_fit() -> None:
    states: list[FitState] = []

    def keep(history: fnn.History, state: FitState) -> None:
        states.append(state)
        state.rng.normal(size=100)  # a copy: the fit draws on unchanged

    def keyword_only(history: fnn.History, *, state: FitState) -> None:
        assert state is states[-1]  # made once per epoch, shared

    full, hf = uninterrupted("dropout")
    trained, h = uninterrupted("dropout", callbacks=[keep, keyword_only])
    assert_same_run(trained, h, full, hf)
    assert len(states) == rc.EPOCHS
    assert all(
        np.array_equal(a, b)
        for a, b in zip(tree.leaves(states[-1].params), tree.leaves(full), strict=True)
    )
    assert states[-1].opt_state is h.opt_state
    assert not any(x.flags.writeable for x in tree.leaves(states[0].params))


def test_a_checkpoint_saved_before_resume_was_exact_still_loads() -> None:
    ck = fnn.load(V1)
    assert ck.rng is None and ck.history is not None and ck.opt_state is not None
    assert ck.history.split is None and ck.history.best_params is None
    assert ck.history.epochs == [1, 2, 3] and ck.history.best_epoch is not None
    X, y = fnn.datasets.make_moons(60, noise=0.3, rng=0)
    _, h = fnn.fit(ck.params, fnn.adam(1e-2), X, y, epochs=2, rng=1, history=ck.history, verbose=0)
    assert h.epochs == [1, 2, 3, 4, 5]
    # it was made with validation_split, but does not know its rows: not continued silently
    with pytest.raises(ValueError, match="no validation split"):
        fnn.fit(
            ck.params,
            fnn.adam(1e-2),
            X,
            y,
            epochs=1,
            rng=1,
            history=ck.history,
            validation_split=0.25,
            verbose=0,
        )


def test_a_checkpoint_without_the_new_parts_is_still_written_as_version_1(tmp_path: Path) -> None:
    ck = fnn.load(V1)
    assert ck.history is not None
    path = fnn.save(tmp_path / "again", ck.params, opt_state=ck.opt_state, history=ck.history)
    with np.load(path) as z:
        assert set(z.files) == set(np.load(V1).files)
        assert b'"version": 1' in z["manifest.json"].tobytes()
    with_rng = fnn.save(tmp_path / "rng", ck.params, rng=np.random.default_rng(0))
    with np.load(with_rng) as z:
        assert b'"version": 2' in z["manifest.json"].tobytes()


def test_only_generators_whose_state_is_plain_integers_are_saved(tmp_path: Path) -> None:
    net = rc.network("plain")
    with pytest.raises(ValueError, match="cannot save the state of a MT19937 generator"):
        fnn.save(tmp_path / "x", net, rng=np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator, got int"):
        fnn.save(tmp_path / "x", net, rng=5)  # type: ignore[arg-type]
    for bits in (np.random.PCG64(3), np.random.PCG64DXSM(3)):
        gen = np.random.Generator(bits)
        gen.random(3)  # a state mid-stream, with a buffered 32-bit half
        gen.integers(0, 10, dtype=np.uint32)
        ck = fnn.load(fnn.save(tmp_path / "g", net, rng=gen))
        assert ck.rng is not None and ck.rng.bit_generator.state == gen.bit_generator.state
        assert np.array_equal(ck.rng.random(5), gen.random(5))


def _incremental(es: fnn.EarlyStopping, losses: list[float]) -> list[tuple[int, bool]]:
    """The decisions of the loop fit ran before early stopping replayed the History."""
    out = []
    best: tuple[float, int] | None = None
    for e, v in enumerate(losses):
        stop = False
        if best is None or v < best[0] - es.min_delta:
            best = (v, e)
        elif e - best[1] >= es.patience:
            stop = True
        out.append((best[1], stop))
    return out


@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=30),
    st.integers(0, 5),
    st.sampled_from([0.0, 0.01, 0.5]),
)
def test_early_stopping_replays_the_incremental_decisions(
    losses: list[float], patience: int, min_delta: float
) -> None:
    es = fnn.EarlyStopping(patience=patience, min_delta=min_delta)
    replayed = [(i, stop) for i, stop in (es.replay(losses[: k + 1]) for k in range(len(losses)))]
    assert replayed == _incremental(es, losses)
