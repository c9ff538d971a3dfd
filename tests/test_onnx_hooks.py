"""A user's layer kind and activation get an ONNX export through fnn.onnx's hooks
(issue 19, point 2): defined and registered in this file alone, no edit of fnn; an
unregistered kind is refused naming the kind and the hook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (extra 'onnx')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (extra 'onnx')")

import fnn  # noqa: E402
import fnn.onnx as fo  # noqa: E402
from fnn.layers import LAYERS, Context, LayerBase, LayerCache, Workspace  # noqa: E402

FloatArray = np.ndarray[Any, np.dtype[np.floating[Any]]]


@attrs.frozen(eq=False)
class ScaleCache(LayerCache):
    x: FloatArray


@attrs.frozen(eq=False)
class Scale(LayerBase):
    """``out = X * g + h`` over the last axis."""

    g: FloatArray = attrs.field(converter=fnn.tree.readonly)
    h: FloatArray = attrs.field(converter=fnn.tree.readonly)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if not input_shape or input_shape[-1] != self.g.shape[0]:
            raise ValueError(f"expects a last axis of {self.g.shape[0]}, got {input_shape}")
        return input_shape

    def forward_into(self, X: FloatArray, ctx: Context, ws: Workspace) -> tuple[Any, Any]:
        return X * self.g + self.h, ScaleCache(x=X)

    def backward_into(
        self,
        cache: ScaleCache,
        d_out: FloatArray,
        grads: Scale,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        n = self.g.shape[0]
        np.sum((cache.x * d_out).reshape(-1, n), axis=0, out=grads.g)
        np.sum(d_out.reshape(-1, n), axis=0, out=grads.h)
        return d_out * self.g if need_d_in else None

    def config(self) -> dict[str, object]:
        return {"kind": "test_onnx_scale", "n_features": int(self.g.shape[0])}


class Unexported(Scale):
    """The same math, registered as another kind that has no exporter."""

    def config(self) -> dict[str, object]:
        return {"kind": "test_onnx_unexported", "n_features": int(self.g.shape[0])}


@attrs.frozen
class Swish(fnn.activations.Activation):
    """``z * sigmoid(z)``."""

    name = "test_onnx_swish"

    def __call__(self, z: Any, out: Any = None) -> Any:
        return z * fnn.activations.sigmoid(z)

    def vjp(self, z: Any, a: Any, da: Any, out: Any = None) -> Any:
        s = fnn.activations.sigmoid(z)
        return da * (s + z * s * (1 - s))


def export_scale(b: fo.GraphBuilder, where: str, layer: Any, in_shape: tuple[int, ...]) -> None:
    b.node(where, "Mul", [b.const(f"{where}.g", layer.g)])
    b.node(where, "Add", [b.const(f"{where}.h", layer.h)])


def export_swish(b: fo.GraphBuilder, where: str, act: Any) -> None:
    x = b.cur
    b.node(where, "Sigmoid")
    b.node(where, "Mul", [x])


@pytest.fixture(autouse=True)
def kinds() -> Iterator[None]:
    for name, cls in (("test_onnx_scale", Scale), ("test_onnx_unexported", Unexported)):
        fnn.layers.register_layer(name, cls)
    fnn.activations.register(Swish)
    yield
    for name in ("test_onnx_scale", "test_onnx_unexported"):
        LAYERS.unregister(name)
        fo.register_exporter(name, None)
    fnn.activations.ACTIVATIONS.unregister("test_onnx_swish")
    fo.register_activation_exporter("test_onnx_swish", None)


def network(layer: Any, dtype: Any, activation: Any = "relu") -> fnn.Network:
    rng = np.random.default_rng(0)
    return fnn.Network(
        layers=[
            fnn.Dense(W=rng.normal(size=(3, 4)).astype(dtype), activation=activation),
            layer,
            fnn.Dense(W=rng.normal(size=(4, 2)).astype(dtype)),
        ],
        loss="softmax_cross_entropy",
        input_shape=(3,),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_registered_exporter_writes_a_users_kind(dtype: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    scale = Scale(g=rng.normal(size=4).astype(dtype), h=rng.normal(size=4).astype(dtype))
    net = network(scale, dtype, activation=Swish())
    with pytest.raises(ValueError, match=r"layers\.0: no ONNX export for the activation Swish "
                       r".*register_activation_exporter\('test_onnx_swish'"):  # fmt: skip
        fo.export(net, tmp_path / "m.onnx")
    assert fo.register_activation_exporter("test_onnx_swish", export_swish) is export_swish
    with pytest.raises(ValueError, match=r"layers\.1: no ONNX export for the layer kind "
                       r"'test_onnx_scale' .*fnn\.onnx\.register_exporter\('test_onnx_scale'"):  # fmt: skip
        fo.export(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    assert fo.register_exporter("test_onnx_scale", export_scale) is export_scale
    path = fo.export(net, tmp_path / "m.onnx")
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Mul") == 2 and "Sigmoid" in ops
    X = rng.normal(size=(5, 3)).astype(dtype)
    if dtype == np.float32:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = np.asarray(session.run(None, {fo.INPUT_NAME: X})[0])
    else:
        from onnx.reference import ReferenceEvaluator

        outputs: Any = ReferenceEvaluator(str(path)).run(None, {fo.INPUT_NAME: X})
        got = np.asarray(outputs[0])
    want = fnn.predict(net, X)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_an_unregistered_kind_is_refused_naming_it_and_the_hook(tmp_path: Path) -> None:
    fo.register_exporter("test_onnx_scale", export_scale)  # a parent's exporter is not its
    layer = Unexported(g=np.ones(4), h=np.zeros(4))
    with pytest.raises(ValueError, match=r"'test_onnx_unexported' \(Unexported, .*\); give it "
                       r"one with fnn\.onnx\.register_exporter\('test_onnx_unexported', fn\)"):  # fmt: skip
        fo.export(network(layer, np.float64), tmp_path / "m.onnx")
    LAYERS.unregister("test_onnx_unexported")  # a subclass of a registered kind is that kind
    path = fo.export(network(layer, np.float64), tmp_path / "m.onnx")
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("Mul") == 1


def test_register_exporter_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="kind must be a non-empty str"):
        fo.register_exporter("", export_scale)
    with pytest.raises(TypeError, match="fn must be callable or None"):
        fo.register_exporter("test_onnx_scale", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        fo.register_activation_exporter(3, export_swish)  # type: ignore[arg-type]
