"""Learning-rate callables and schedules are checked (issue 13, item 4; BAD_INPUTS.md):
a callable of the wrong kind is a TypeError when the optimizer is made, a value that is
negative or not finite is a ValueError naming the step when it is used, so a schedule
never makes an optimizer step uphill. Also ``Optimizer.init`` with no parameters."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import schedules

MAKERS: list[Any] = [fnn.sgd, fnn.adam, fnn.adamw, fnn.rmsprop, fnn.adagrad]


def params() -> dict[str, np.ndarray[Any, Any]]:
    return {"w": np.array([1.0, -2.0])}


def ones() -> dict[str, np.ndarray[Any, Any]]:
    return {"w": np.ones(2)}


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize(
    ("lr", "message"),
    [
        (lambda step, other: 0.1, r"called as learning_rate\(step\).*signature \(step, other\)"),
        (lambda: 0.1, r"called as learning_rate\(step\).*signature \(\)"),
        (lambda *, step: 0.1, r"called as learning_rate\(step\).*signature \(\*, step\)"),
        (
            schedules.Constant,
            r"got the class Constant; pass an instance such as Constant\(\.\.\.\)",
        ),
        ("fast", "learning_rate must be a float or a schedule .*got str"),
        (None, "learning_rate must be a float or a schedule .*got NoneType"),
        ([0.1], "learning_rate must be a float or a schedule .*got list"),
        (True, "learning_rate must be a float or a schedule, got bool"),
    ],
)
def test_a_callable_of_the_wrong_kind_is_refused_when_the_optimizer_is_made(
    make: Any, lr: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        make(lr)


@pytest.mark.parametrize(
    "lr",
    [
        lambda step: 0.1,
        lambda step, scale=1.0: 0.1 * scale,
        lambda *args: 0.1,
        functools.partial(lambda step, k: k, k=0.1),
        schedules.StepDecay(0.1, step_size=2),
        np.float64(0.1),
        3,
    ],
)
def test_callables_of_one_step_and_numbers_are_accepted(lr: Any) -> None:
    p, s = fnn.update(params(), ones(), fnn.sgd(lr).init(params()))
    assert s.step == 1
    assert (p["w"] < params()["w"]).all()  # a descent step on a gradient of ones


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize(
    ("value", "shown"), [(-1.0, "-1.0"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_a_negative_or_non_finite_value_is_refused_naming_the_step(
    make: Any, value: float, shown: str
) -> None:
    # good for the first two steps, bad from the third (0-based step 2) on
    opt = make(lambda step: 0.1 if step < 2 else value)
    p, s = params(), opt.init(params())
    for _ in range(2):
        p, s = fnn.update(p, ones(), s)
    before = p
    with pytest.raises(
        ValueError,
        match=rf"learning_rate schedule returned {shown} at step 2 \(learning_rate\(2\)\); "
        r"a learning rate must be finite and >= 0",
    ):
        fnn.update(p, ones(), s)
    assert before is p and s.step == 2  # nothing was changed
    with pytest.raises(ValueError, match="at step 2"):
        _ = s.learning_rate  # what the next update would use


def test_sgd_with_a_negative_callable_never_ascends() -> None:
    X, y = fnn.datasets.make_moons(40, noise=0.1, rng=0)
    net = fnn.init(fnn.mlp([2, 4, 1], output="sigmoid"), rng=0)
    with pytest.raises(ValueError, match=r"returned -1.0 at step 0 \(learning_rate\(0\)\)"):
        fnn.fit(net, fnn.sgd(lambda step: -1.0), X, y, epochs=2, batch_size=10, rng=0, verbose=0)
    with pytest.raises(ValueError, match=r"returned -0.5 at step 4 \(learning_rate\(4\)\)"):
        fnn.fit(
            net,
            fnn.sgd(lambda step: 0.1 if step < 4 else -0.5),
            X,
            y,
            epochs=2,
            batch_size=10,
            rng=0,
            verbose=0,
        )


@pytest.mark.parametrize(
    ("returned", "shown"), [("0.1", r"'0.1' \(str\)"), (None, r"None \(NoneType\)")]
)
def test_a_value_that_is_not_a_number_is_a_type_error(returned: Any, shown: str) -> None:
    s = fnn.sgd(lambda step: returned).init(params())
    with pytest.raises(TypeError, match=rf"returned {shown} at step 0; it must return a float"):
        fnn.update(params(), ones(), s)


def test_a_schedule_may_decay_to_zero() -> None:
    # CosineDecay with alpha=0 ends at exactly 0: that is allowed (no step is taken)
    sched = schedules.CosineDecay(1.0, decay_steps=1)
    assert schedules.value_at(sched, 1) == 0.0
    p, s = fnn.update(params(), ones(), fnn.sgd(lambda step: 0.0).init(params()))
    assert np.array_equal(p["w"], params()["w"]) and s.step == 1


def test_init_with_no_parameters_is_a_clear_error() -> None:
    opt = fnn.adam()
    with pytest.raises(
        TypeError, match="params must be a network or a tree of float arrays.*got None"
    ):
        opt.init(None)
    with pytest.raises(
        ValueError, match=r"params has no arrays to optimize: got an empty dict \{\}"
    ):
        opt.init({})
    with pytest.raises(
        ValueError, match=r"params has no arrays to optimize: got an empty tuple \(\)"
    ):
        opt.init(())
    with pytest.raises(TypeError, match="parameters must be float arrays, got dtype int64"):
        opt.init({"w": np.zeros(2, dtype=np.int64)})
