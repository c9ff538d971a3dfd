from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import schedules, tree

OPTIMIZERS: list[tuple[str, Any]] = [
    ("sgd", lambda: fnn.sgd(0.1)),
    ("sgd_momentum", lambda: fnn.sgd(0.1, momentum=0.9)),
    ("sgd_nesterov", lambda: fnn.sgd(0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda: fnn.adam(0.1)),
    ("adamw", lambda: fnn.adamw(0.1)),
    ("rmsprop", lambda: fnn.rmsprop(0.01)),
    ("rmsprop_centered_momentum", lambda: fnn.rmsprop(0.01, momentum=0.5, centered=True)),
    ("adagrad", lambda: fnn.adagrad(0.5)),
]


def small_net() -> fnn.Network:
    return fnn.init(fnn.mlp([3, 4, 2]), rng=0)


def grads_like(net: fnn.Network, seed: int) -> fnn.Network:
    flat = tree.ravel(net)
    return tree.unravel(net, np.random.default_rng(seed).normal(size=flat.shape))


def test_hand_worked_first_steps() -> None:
    p = {"w": np.array([1.0, -2.0])}
    g = {"w": np.array([0.5, -4.0])}
    eps = 1e-8

    def first(opt: fnn.Optimizer) -> np.ndarray:
        new, _ = fnn.update(p, g, opt.init(p))
        return np.asarray(new["w"])

    # SGD: p - lr g = [1 - 0.05, -2 + 0.4]
    np.testing.assert_allclose(first(fnn.sgd(0.1)), [0.95, -1.6])
    # momentum's first buffer is g itself, so the first step equals plain SGD
    np.testing.assert_allclose(first(fnn.sgd(0.1, momentum=0.9)), [0.95, -1.6])
    # Nesterov: g + mu * b = 1.9 g
    np.testing.assert_allclose(first(fnn.sgd(0.1, 0.9, True)), [1 - 0.095, -2 + 0.76])
    # Adam: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) ~ lr * sign(g)
    np.testing.assert_allclose(
        first(fnn.adam(0.1)), [1 - 0.1 * 0.5 / (0.5 + eps), -2 + 0.1 * 4 / (4 + eps)]
    )
    # AdamW: decay p by lr * wd first: p (1 - 0.1 * 0.01), then the Adam step
    np.testing.assert_allclose(
        first(fnn.adamw(0.1)), [1 * 0.999 - 0.1, -2 * 0.999 + 0.1], rtol=1e-7
    )
    # RMSprop: v = 0.01 g^2, so step = lr g / (0.1 |g| + eps) ~ 10 lr sign(g)
    np.testing.assert_allclose(first(fnn.rmsprop(0.01)), [1 - 0.1, -2 + 0.1], rtol=1e-6)
    # Adagrad: s = g^2, step = lr g / (|g| + eps)
    np.testing.assert_allclose(first(fnn.adagrad(0.5)), [0.5, -1.5], rtol=1e-9)


def test_second_momentum_step_by_hand() -> None:
    p = {"w": np.array([0.0])}
    opt = fnn.sgd(1.0, momentum=0.5)
    s = opt.init(p)
    p1, s = fnn.update(p, {"w": np.array([1.0])}, s)  # b = 1, p = -1
    p2, s = fnn.update(p1, {"w": np.array([2.0])}, s)  # b = 0.5 * 1 + 2 = 2.5, p = -3.5
    assert p2["w"][0] == -3.5
    assert s.step == 2


@pytest.mark.parametrize(("name", "make"), OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_state_structure_unchanged_and_inputs_untouched(name: str, make: Any) -> None:
    opt = make()
    net = small_net()
    s0 = opt.init(net)
    g = grads_like(net, 1)
    before_net, before_g = tree.map(np.copy, net), tree.map(np.copy, g)
    net1, s1 = fnn.update(net, g, s0)
    assert tree.same_structure(s0, s1)
    assert tree.same_structure(net, net1) and type(net1) is fnn.Network
    assert tree.allclose(net, before_net, rtol=0, atol=0)
    assert tree.allclose(g, before_g, rtol=0, atol=0)
    assert s0.step == 0 and s1.step == 1
    assert all(not x.flags.writeable for x in tree.leaves(net1))


@pytest.mark.parametrize(("name", "make"), OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_converges_on_a_quadratic(name: str, make: Any) -> None:
    target = np.array([1.0, -2.0, 3.0])
    p: dict[str, Any] = {"x": np.zeros(3)}
    opt = make()
    s = opt.init(p)
    for _ in range(3000):
        p, s = fnn.update(p, {"x": p["x"] - target}, s)  # gradient of 0.5 |x - t|^2
    tol = 0.05 if name == "adamw" else 1e-2  # AdamW's decay pulls toward 0 a little
    np.testing.assert_allclose(p["x"], target, atol=tol)


def test_float32_stays_float32() -> None:
    net = fnn.init(fnn.mlp([3, 4, 2], dtype=np.float32), rng=0)
    g32 = tree.map(lambda x: x.astype(np.float32), grads_like(net, 0))
    for _, make in OPTIMIZERS:
        opt = make()
        new, _s = fnn.update(net, g32, opt.init(net))
        assert {x.dtype for x in tree.leaves(new)} == {np.dtype(np.float32)}
        # gradients of another dtype are refused, naming the path (no silent promotion)
        with pytest.raises(ValueError, match="grads has dtype float64 at 'layers.0.W'"):
            fnn.update(net, grads_like(net, 0), opt.init(net))


def test_masked_weight_decay_leaves_biases_alone() -> None:
    net = small_net()
    zero = tree.zeros_like(net)
    for opt in (
        fnn.adamw(0.1, weight_decay=0.5, decay_mask=fnn.weights_only),
        fnn.chain(fnn.add_decayed_weights(0.5, fnn.weights_only), fnn.sgd(0.1)),
    ):
        b_net = fnn.Network(
            layers=[
                fnn.Dense(W=l.W, b=np.ones_like(l.b), activation=l.activation)
                for l in net.layers
                if isinstance(l, fnn.Dense)
            ],
            loss=net.loss,
        )
        new, _ = fnn.update(b_net, zero, opt.init(b_net))
        for old_l, new_l in zip(b_net.layers, new.layers, strict=True):
            assert np.array_equal(old_l.b, new_l.b)  # type: ignore[attr-defined]
            assert not np.allclose(old_l.W, new_l.W)  # type: ignore[attr-defined]


def test_freeze_leaves_masked_layers_untouched() -> None:
    net = small_net()
    opt = fnn.chain(fnn.adamw(0.1), fnn.freeze(lambda path: path.startswith("layers.0")))
    s = opt.init(net)
    new = net
    for i in range(3):
        new, s = fnn.update(new, grads_like(net, i), s)
    assert np.array_equal(new.layers[0].W, net.layers[0].W)  # type: ignore[attr-defined]
    assert np.array_equal(new.layers[0].b, net.layers[0].b)  # type: ignore[attr-defined]
    assert not np.allclose(new.layers[1].W, net.layers[1].W)  # type: ignore[attr-defined]
    # a {path: bool} mapping works as a mask too
    mask = {p: True for p in tree.flatten(net)}
    s2 = fnn.chain(fnn.sgd(0.1), fnn.freeze(mask)).init(net)
    same, _ = fnn.update(net, grads_like(net, 0), s2)
    assert tree.allclose(same, net, rtol=0, atol=0)


def test_clip_by_global_norm() -> None:
    p = {"w": np.zeros(2)}
    opt = fnn.chain(fnn.clip_by_global_norm(1.0), fnn.sgd(1.0))
    new, _ = fnn.update(p, {"w": np.array([3.0, 4.0])}, opt.init(p))  # norm 5 -> 1
    np.testing.assert_allclose(new["w"], [-0.6, -0.8], rtol=1e-5)
    small, _ = fnn.update(p, {"w": np.array([0.3, 0.4])}, opt.init(p))  # norm 0.5: as is
    np.testing.assert_allclose(small["w"], [-0.3, -0.4])


def test_learning_rate_and_schedules_in_state() -> None:
    sched = schedules.StepDecay(1.0, step_size=2, gamma=0.5)
    opt = fnn.sgd(sched)
    p = {"w": np.zeros(1)}
    s = opt.init(p)
    lrs = []
    for _ in range(5):
        lrs.append(s.learning_rate)
        p, s = fnn.update(p, {"w": np.ones(1)}, s)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    # the steps taken used those rates: -(1 + 1 + 0.5 + 0.5 + 0.25)
    assert p["w"][0] == pytest.approx(-3.25)


def test_schedule_values() -> None:
    assert schedules.Constant(0.1)(100) == 0.1
    pw = schedules.PiecewiseConstant([10, 20], [1.0, 0.1, 0.01])
    assert [pw(0), pw(10), pw(19), pw(20)] == [1.0, 0.1, 0.1, 0.01]
    ex = schedules.ExponentialDecay(1.0, 0.5, transition_steps=10)
    assert ex(10) == pytest.approx(0.5) and ex(20) == pytest.approx(0.25)
    cos = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1)
    assert cos(500) == pytest.approx(0.1)
    wc = schedules.WarmupCosine(peak=1.0, warmup_steps=10, decay_steps=110)
    assert wc(0) == 0.0 and wc(5) == 0.5 and wc(10) == 1.0
    assert wc(60) == pytest.approx(0.5) and wc(110) == pytest.approx(0.0, abs=1e-12)


def test_reduce_on_plateau_replays_the_losses() -> None:
    r = schedules.ReduceOnPlateau(factor=0.5, patience=2)
    assert r.scale_from_losses([1.0, 0.9, 0.8]) == 1.0
    # best 0.8 at epoch 3; epochs 4, 5, 6 do not improve: the third bad epoch cuts
    assert r.scale_from_losses([1.0, 0.9, 0.8, 0.8, 0.85, 0.81]) == 0.5
    # no improvement after epoch 1: cuts after epochs 4, 7 and 10
    assert r.scale_from_losses([1.0] * 10) == 0.125


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fnn.adam(-1.0), "learning_rate must be > 0, got -1.0"),
        (lambda: fnn.sgd(0.0), "learning_rate must be > 0, got 0.0"),
        (lambda: fnn.sgd(math.nan), "learning_rate must be > 0"),
        (lambda: fnn.sgd(math.inf), "learning_rate must be > 0"),
        (lambda: fnn.adam(b1=1.0), r"b1 must be in \[0, 1\)"),
        (lambda: fnn.sgd(0.1, momentum=-0.1), r"momentum must be in \[0, 1\)"),
        (lambda: fnn.sgd(0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda: fnn.adam(eps=0.0), "eps must be > 0"),
        (lambda: fnn.rmsprop(alpha=1.5), r"alpha must be in \[0, 1\)"),
        (lambda: fnn.adamw(weight_decay=-1.0), "weight_decay must be >= 0, got -1.0"),
        (lambda: fnn.clip_by_global_norm(0.0), "max_norm must be > 0"),
        (lambda: schedules.CosineDecay(1.0, decay_steps=0), "decay_steps must be an int >= 1"),
        (lambda: schedules.ReduceOnPlateau(factor=1.5), r"factor must be in \(0, 1\)"),
    ],
)
def test_bad_hyper_parameters(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_update_checks_its_inputs() -> None:
    net = small_net()
    s = fnn.adam().init(net)
    with pytest.raises(TypeError, match="state must be an fnn.optim.OptState"):
        fnn.update(net, net, {"step": 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grads is a dict, but the parameters are a Network"):
        fnn.update(net, {"w": np.zeros(3)}, s)
    with pytest.raises(TypeError, match="learning_rate must be a float or a schedule"):
        fnn.sgd("fast")  # type: ignore[arg-type]


torch_missing = importlib.util.find_spec("torch") is None


@pytest.mark.skipif(torch_missing, reason="PyTorch is not installed (extra 'bench' installs it)")
@pytest.mark.parametrize(
    ("make_fnn", "make_torch"),
    [
        (lambda: fnn.sgd(0.05), lambda t, ps: t.optim.SGD(ps, lr=0.05)),
        (
            lambda: fnn.sgd(0.05, 0.9, weight_decay=0.01),
            lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
        ),
        (
            lambda: fnn.sgd(0.05, 0.9, True),
            lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        ),
        (
            lambda: fnn.adam(0.01, weight_decay=0.1),
            lambda t, ps: t.optim.Adam(ps, lr=0.01, weight_decay=0.1),
        ),
        (lambda: fnn.adamw(0.01), lambda t, ps: t.optim.AdamW(ps, lr=0.01)),
        (
            lambda: fnn.rmsprop(0.01, momentum=0.5, centered=True),
            lambda t, ps: t.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
        ),
        (lambda: fnn.rmsprop(), lambda t, ps: t.optim.RMSprop(ps)),
        (
            lambda: fnn.adagrad(0.1, lr_decay=0.01),
            lambda t, ps: t.optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
        ),
    ],
)
def test_step_for_step_equal_to_pytorch(make_fnn: Any, make_torch: Any) -> None:  # pragma: no cover
    import torch

    gen = np.random.default_rng(0)
    p0 = {"a": gen.normal(size=(3, 2)), "b": gen.normal(size=2)}
    tp = [torch.tensor(p0["a"], requires_grad=True), torch.tensor(p0["b"], requires_grad=True)]
    topt = make_torch(torch, tp)
    opt = make_fnn()
    p: dict[str, Any] = p0
    s = opt.init(p)
    for _ in range(10):
        g = {"a": gen.normal(size=(3, 2)), "b": gen.normal(size=2)}
        tp[0].grad, tp[1].grad = torch.tensor(g["a"]), torch.tensor(g["b"])
        topt.step()
        p, s = fnn.update(p, g, s)
        np.testing.assert_allclose(p["a"], tp[0].detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(p["b"], tp[1].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_optimizer_registry_matches_the_estimators_literal() -> None:
    """The scikit-learn wrapper's ``OptimizerName`` (for mypy) lists exactly the
    registered optimizers, and each registered factory takes the learning rate first."""
    from typing import get_args

    from fnn.sklearn import OptimizerName

    assert set(get_args(OptimizerName)) == set(fnn.optim.OPTIMIZERS.as_table())
    for name, make in fnn.optim.OPTIMIZERS.items():
        opt = make(0.125)
        assert isinstance(opt, fnn.optim.Optimizer), name
        assert opt.learning_rate_at(0) == 0.125, name


def test_the_update_context_has_its_own_name() -> None:
    """The transforms' context is ``UpdateContext``; the old ``fnn.optim.Context``
    still imports, and is not the layers' pass context."""
    from fnn.layers.base import Context as PassContext

    assert fnn.optim.Context is fnn.optim.UpdateContext
    assert not issubclass(fnn.optim.UpdateContext, PassContext)
    assert "Context" not in fnn.optim.__all__


def test_the_optimizers_context_is_not_the_layers() -> None:
    """One name per concept: transforms see ``fnn.optim.UpdateContext`` (its former name
    ``fnn.optim.Context`` stays importable, not public); layers see ``fnn.layers.Context``."""
    assert fnn.optim.Context is fnn.optim.UpdateContext
    assert not issubclass(fnn.optim.UpdateContext, fnn.layers.Context)
    assert "Context" not in fnn.optim.__all__ and "UpdateContext" in fnn.optim.__all__
