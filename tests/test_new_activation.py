"""A new activation defined in this file alone, through ``fnn.activations.register``,
works everywhere a built-in one does: ``fnn.mlp`` and ``fnn.specs``, ``fnn.summary``,
``fit``, save/load, ``fnn.testing.check_grads`` and the hypothesis strategies; ONNX
export refuses it naming it. Also: the ``ActivationName`` list mypy reads matches the
registry, and the He/Glorot default is the kind's own declaration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, get_args

import attrs
import hypothesis
import numpy as np
import pytest

import fnn
from fnn import activations as A
from fnn._types import FloatArray
from fnn.testing import strategies as fst


@attrs.frozen
class Swish(A.Activation):
    """``f(z) = z * sigmoid(beta * z)`` (SiLU for beta = 1)."""

    name: ClassVar[str] = "test_swish"
    relu_like: ClassVar[bool] = True
    beta: float = 1.0

    def __call__(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        r = z * A.sigmoid(self.beta * z)
        if out is None:
            return r
        np.copyto(out, r)
        return out

    def vjp(
        self, z: FloatArray, a: FloatArray, da: FloatArray, out: FloatArray | None = None
    ) -> FloatArray:
        # d/dz z s(bz) = s(bz) + b z s(bz) (1 - s(bz))
        s = A.sigmoid(self.beta * z)
        r = da * (s + self.beta * z * s * (1 - s))
        if out is None:
            return r
        np.copyto(out, r)
        return out


@pytest.fixture(autouse=True)
def swish_kind() -> Iterator[None]:
    A.register(Swish)
    yield
    A.ACTIVATIONS.unregister("test_swish")


def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(24, 3)), rng.integers(0, 2, 24)


def test_its_math_matches_torch_autograd() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (extra 'bench')")
    rng = np.random.default_rng(0)
    z, da = rng.normal(size=(5, 7)) * 3, rng.normal(size=(5, 7))
    act = Swish(beta=1.7)
    zt = torch.tensor(z, requires_grad=True)
    at = zt * torch.sigmoid(1.7 * zt)
    at.backward(torch.tensor(da))
    a = act(z)
    np.testing.assert_allclose(a, at.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(act.vjp(z, a, da), zt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_it_goes_into_mlp_specs_summary_fit_and_checkpoints(tmp_path: Path) -> None:
    X, y = data()
    net = fnn.init(fnn.mlp([3, 5, 2], hidden="test_swish", output="softmax"), rng=0)
    by_spec = fnn.init(
        fnn.sequential(
            3,
            [fnn.specs.dense(5, activation=Swish(beta=2.0)), fnn.specs.dense(2)],
            output="softmax",
        ),
        rng=0,
    )
    assert by_spec.layer(0, fnn.Dense).activation == Swish(beta=2.0)
    assert "test_swish" in fnn.summary(net)
    fnn.testing.check_grads(net, X, y)
    trained, h = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=2, batch_size=6, rng=0, verbose=0)
    assert h.train_loss[-1] < h.train_loss[0]
    path = fnn.save(tmp_path / "swish.npz", trained, opt_state=h.opt_state)
    back = fnn.load(path).params
    np.testing.assert_array_equal(back.flat, trained.flat)
    assert back.layer(0, fnn.Dense).activation == Swish()
    np.testing.assert_array_equal(fnn.predict(back, X), fnn.predict(trained, X))


def test_its_declaration_picks_the_default_initializer() -> None:
    assert isinstance(fnn.specs.default_initializer(Swish()), fnn.initializers.HeNormal)
    assert isinstance(fnn.specs.default_initializer(A.Tanh()), fnn.initializers.GlorotUniform)


def test_the_strategies_draw_it_and_its_gradients_check() -> None:
    assert "test_swish" in fst.hidden_activations()
    arch = hypothesis.find(
        fst.architectures(dropout=False),
        lambda a: any(getattr(sp, "activation", None) == Swish() for sp in a.layers),
        settings=hypothesis.settings(max_examples=500, database=None),
    )
    net = fnn.init(arch, rng=0)
    n_in = net.layer(0, fnn.Dense).W.shape[0]
    rng = np.random.default_rng(2)
    X = rng.normal(size=(8, n_in))
    out = fnn.predict(net, X)
    y = rng.integers(0, out.shape[1], 8) if net.loss.name == "cross_entropy" else out * 0.5
    fnn.testing.check_grads(net, X, y)


def test_onnx_export_refuses_it_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx is not installed (extra 'onnx')")
    net = fnn.init(fnn.mlp([3, 5, 1], hidden="test_swish"), rng=0)
    with pytest.raises((ValueError, TypeError), match="test_swish|Swish"):
        fnn.onnx.export(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_the_name_list_mypy_reads_is_the_registry() -> None:
    built_in = {n for n, cls in A.ACTIVATIONS.items() if cls.__module__ == A.__name__}
    assert set(get_args(A.ActivationName)) == built_in
