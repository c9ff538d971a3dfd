"""Nothing silently wrong, round two (issue 21): each case was silently wrong or failed
late before; now it works or is refused at the boundary with a message naming the
argument (BAD_INPUTS.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fnn
from fnn.layers.batch_norm import BatchNorm


def unchecked(value: object) -> Any:
    """``value`` as it is, hidden from mypy: a wrong kind on purpose."""
    return value


# --- point 4: fnn.update on any tree takes over the new state --------------------


def _bn_and_grads(rng: np.random.Generator) -> tuple[BatchNorm, BatchNorm]:
    """A batch-norm layer and the gradients of a training pass (state leaves: the new
    running statistics), with scale and shift gradients large enough to be clipped."""
    bn = BatchNorm(scale=rng.normal(size=3), shift=rng.normal(size=3))
    X = rng.normal(size=(8, 3)) * 3 + 5
    out, cache = bn.forward(X, train=True)
    grads, _ = bn.backward(cache, 10 * rng.normal(size=out.shape))
    return bn, grads


@pytest.mark.parametrize("wrap", ["layer", "dict", "tuple"])
@pytest.mark.parametrize(
    "make",
    [lambda: fnn.chain(fnn.clip_by_global_norm(0.5), fnn.sgd(0.1)), lambda: fnn.adam(0.1)],
    ids=["clip+sgd", "adam"],
)
def test_update_takes_over_state_on_any_tree(
    rng: np.random.Generator, wrap: str, make: Any
) -> None:
    bn, grads = _bn_and_grads(rng)
    assert not np.allclose(grads.running_mean, bn.running_mean)
    params: Any = {"layer": bn, "dict": {"bn": bn}, "tuple": (bn,)}[wrap]
    g: Any = {"layer": grads, "dict": {"bn": grads}, "tuple": (grads,)}[wrap]
    opt = make()
    new, _ = fnn.update(params, g, opt.init(params))
    got = new if wrap == "layer" else new["bn"] if wrap == "dict" else new[0]
    # the new running statistics are taken over
    np.testing.assert_array_equal(got.running_mean, grads.running_mean)
    np.testing.assert_array_equal(got.running_var, grads.running_var)
    # the trainable leaves move as if the state leaves were not there (the clipping
    # norm and Adam's moments see only the gradients)
    alone = {"scale": bn.scale, "shift": bn.shift}
    want, _ = fnn.update(alone, {"scale": grads.scale, "shift": grads.shift}, opt.init(alone))
    np.testing.assert_allclose(got.scale, want["scale"], rtol=1e-12)
    np.testing.assert_allclose(got.shift, want["shift"], rtol=1e-12)
