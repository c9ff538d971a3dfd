"""A new loss and a new learning-rate schedule defined in this file alone, through
``fnn.losses.register`` and ``fnn.schedules.register_schedule``, work everywhere a
built-in one does: ``fnn.mlp``, ``fit``, ``fnn.summary``, save/load (and resuming from
the file), ``fnn.testing.check_grads`` and the hypothesis strategies. A checkpoint that
names an unregistered one says how to register it, and one that would load as another
kind is refused when saved. Also: the ``LossName`` list mypy reads is the registry."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, get_args

import attrs
import hypothesis
import numpy as np
import pytest

import fnn
from fnn import losses as L
from fnn import schedules as S
from fnn._types import FloatArray
from fnn.testing import strategies as fst


@attrs.frozen
class LogCosh(L.Loss):
    """``mean(log(cosh(z - y)))`` with an identity output; gradient ``tanh(z - y) / k``."""

    name: ClassVar[str] = "test_log_cosh"
    scale: float = 1.0

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        d = self.scale * (logits - y)
        # log(cosh(d)) = |d| + log1p(exp(-2|d|)) - log(2): no overflow for large |d|
        a = np.abs(d)
        per = (a + np.log1p(np.exp(-2 * a)) - math.log(2)).mean(axis=1) if value else None
        return per, self.scale * np.tanh(d) / logits.shape[1]


@attrs.frozen
class InverseSqrt:
    """``peak * min((step + 1) / warmup, sqrt(warmup / (step + 1)))``."""

    peak: float
    warmup: int

    def __call__(self, step: int) -> float:
        t = step + 1
        return self.peak * min(t / self.warmup, math.sqrt(self.warmup / t))


@attrs.frozen
class Quartic(L.MeanSquaredError):
    """A subclass that keeps its parent's name ("mse"): saved, it would load as MSE."""

    def fused(
        self, logits: FloatArray, y: FloatArray, *, value: bool = True
    ) -> tuple[FloatArray | None, FloatArray]:
        d = logits - y
        per = (d**4).mean(axis=1) if value else None
        return per, 4 * d**3 / logits.shape[1]


@pytest.fixture(autouse=True)
def kinds() -> Iterator[None]:
    L.register(LogCosh)
    S.register_schedule(InverseSqrt)
    yield
    L.LOSSES.unregister("test_log_cosh")
    S.SCHEDULES.unregister("InverseSqrt")


def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(32, 3))
    return X, X @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]])


def net_and_opt() -> tuple[fnn.Network, fnn.Optimizer]:
    net = fnn.init(fnn.mlp([3, 6, 2], loss="test_log_cosh"), rng=0)
    return net, fnn.adam(InverseSqrt(peak=2e-2, warmup=4))


def test_its_math_matches_torch_autograd() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (extra 'bench')")
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(5, 3)) * 20, rng.normal(size=(5, 3))
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.log(torch.cosh(1.5 * (zt - torch.tensor(y)))).mean()
    lt.backward()
    loss = LogCosh(scale=1.5)
    value, grad = loss.value_and_grad(z, y)
    np.testing.assert_allclose(value, lt.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_they_go_into_mlp_fit_summary_and_checkpoints(tmp_path: Path) -> None:
    X, y = data()
    net, opt = net_and_opt()
    assert net.loss == LogCosh()
    assert "Loss: test_log_cosh (identity output)" in fnn.summary(net)
    fnn.testing.check_grads(net, X, y)
    half, h = fnn.fit(net, opt, X, y, epochs=3, batch_size=8, rng=0, verbose=0)
    _, h_full = fnn.fit(net, opt, X, y, epochs=6, batch_size=8, rng=0, verbose=0)
    assert h_full.train_loss[-1] < h_full.train_loss[0]
    # the schedule ran: after 3 epochs of 4 steps the next rate is InverseSqrt(12)
    assert h.opt_state is not None
    assert h.opt_state.learning_rate == InverseSqrt(peak=2e-2, warmup=4)(12)

    path = fnn.save(tmp_path / "run.npz", half, opt_state=h.opt_state, history=h)
    manifest = json.loads(np.load(path)["manifest.json"].tobytes())
    assert manifest["architecture"]["loss"] == {"name": "test_log_cosh", "scale": 1.0}
    assert manifest["optimizer"][0]["learning_rate"]["schedule"] == "InverseSqrt"
    ck = fnn.load(path)
    assert ck.params.loss == LogCosh()
    assert ck.opt_state is not None and ck.opt_state.optimizer == opt
    np.testing.assert_array_equal(ck.params.flat, half.flat)
    # resumed from the file, the run continues as from the values in memory, bit for bit
    resumed, again = (
        fnn.fit(p, opt, X, y, epochs=3, batch_size=8, rng=5, opt_state=st, verbose=0)[0]
        for p, st in ((ck.params, ck.opt_state), (half, h.opt_state))
    )
    np.testing.assert_array_equal(resumed.flat, again.flat)


def test_a_checkpoint_naming_an_unregistered_kind_says_how_to_register_it(
    tmp_path: Path,
) -> None:
    net, opt = net_and_opt()
    path = fnn.save(tmp_path / "run.npz", net, opt_state=opt.init(net))
    S.SCHEDULES.unregister("InverseSqrt")
    with pytest.raises(ValueError, match=r"fnn\.schedules\.register_schedule"):
        fnn.load(path)
    L.LOSSES.unregister("test_log_cosh")
    with pytest.raises(ValueError, match=r"unknown loss 'test_log_cosh'.*fnn\.losses\.register"):
        fnn.load(path)


def test_what_would_load_as_another_kind_is_not_saved(tmp_path: Path) -> None:
    net, _ = net_and_opt()
    quartic = fnn.Network(layers=net.layers, loss=Quartic())
    with pytest.raises(ValueError, match=r"loss Quartic: its name 'mse' is registered to "):
        fnn.save(tmp_path / "q.npz", quartic)

    @attrs.frozen
    class CosineDecay(InverseSqrt):  # the name of a built-in schedule
        pass

    for lr in (CosineDecay(1e-2, 4), lambda step: 1e-2):
        state = fnn.sgd(lr).init(net)
        with pytest.raises(ValueError, match=r"fnn\.schedules\.register_schedule"):
            fnn.save(tmp_path / "s.npz", net, opt_state=state)
    assert not list(tmp_path.iterdir())


def test_the_strategies_draw_the_loss_and_its_gradients_check() -> None:
    assert ("identity", "test_log_cosh") in fst.losses()
    assert ("identity", "test_log_cosh") not in fst.LOSSES  # the import-time snapshot
    arch = hypothesis.find(
        fst.architectures(dropout=False),
        lambda a: a.loss == LogCosh(),
        settings=hypothesis.settings(max_examples=500, database=None),
    )
    net = fnn.init(arch, rng=0)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, net.n_features))
    fnn.testing.check_grads(net, X, fst.targets(net, 6, 3))


def test_the_name_list_mypy_reads_is_the_registry() -> None:
    built_in = {n for n, cls in L.LOSSES.items() if cls.__module__ == L.__name__}
    assert set(get_args(L.LossName)) == built_in
