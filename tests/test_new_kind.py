"""A new layer kind defined in this file alone works everywhere (issue 19, point 2):
in fnn.sequential (through fnn.specs.layer), fnn.summary, fit, save/load, fnn.testing's
property checks and the weight-decay mask; ONNX export refuses it, naming it. Nothing
outside this file is edited for it. Also: check_layer_kind over every registered kind,
and that it catches what it claims to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import fnn
from fnn.layers import LAYERS, Context, LayerBase, LayerCache, Workspace

FloatArray = np.ndarray[Any, np.dtype[np.floating[Any]]]


@attrs.frozen(eq=False)
class AffineCache(LayerCache):
    x: FloatArray


@attrs.frozen(eq=False)
class Affine(LayerBase):
    """``out = X * g + h`` over the last axis: ``g`` a weight (decayed), ``h`` a bias."""

    g: FloatArray = attrs.field(converter=fnn.tree.readonly)
    h: FloatArray = attrs.field(converter=fnn.tree.readonly)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if not input_shape or input_shape[-1] != self.g.shape[0]:
            raise ValueError(f"expects a last axis of {self.g.shape[0]}, got {input_shape}")
        return input_shape

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, AffineCache]:
        out = np.multiply(X, self.g, out=ws.empty("out", X.shape, X.dtype))
        out += self.h
        return out, AffineCache(x=X)

    def backward_into(
        self,
        cache: AffineCache,
        d_out: FloatArray,
        grads: Affine,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        n = self.g.shape[0]
        xd = np.multiply(cache.x, d_out, out=ws.empty("xd", d_out.shape, d_out.dtype))
        np.sum(xd.reshape(-1, n), axis=0, out=grads.g)
        np.sum(d_out.reshape(-1, n), axis=0, out=grads.h)
        if not need_d_in:
            return None
        return np.multiply(d_out, self.g, out=ws.empty("d_in", d_out.shape, d_out.dtype))

    def config(self) -> dict[str, object]:
        return {"kind": "test_affine", "n_features": int(self.g.shape[0])}


def _create(
    input_shape: tuple[int, ...], *, rng: np.random.Generator, dtype: Any, scale: float = 1.0
) -> Affine:
    n = input_shape[-1]
    return Affine(g=np.full(n, scale, dtype), h=rng.normal(size=n).astype(dtype))


@pytest.fixture(autouse=True)
def affine_kind() -> Iterator[None]:
    fnn.layers.register_layer(
        "test_affine",
        Affine,
        example=lambda rng, dtype: (
            Affine(g=rng.normal(size=3).astype(dtype), h=rng.normal(size=3).astype(dtype)),
            (2, 3),
        ),
        shapes=lambda cfg: {k: (fnn.layers.base.config_size(cfg, "n_features"),) for k in "gh"},
        weights=("g",),
        create=_create,
    )
    yield
    LAYERS.unregister("test_affine")


def arch() -> fnn.Architecture:
    s = fnn.specs
    return fnn.sequential(
        (4,),
        [
            s.dense(5),
            s.layer("test_affine", scale=0.5),
            s.residual([s.layer("test_affine")]),
            s.dense(2),
        ],
        output="softmax",
    )


def test_a_new_kind_goes_into_sequential_summary_fit_and_checkpoints(tmp_path: Path) -> None:
    net = fnn.init(arch(), rng=0)
    assert isinstance(net.layers[1], Affine) and np.all(net.layers[1].g == 0.5)
    assert "Affine" in fnn.summary(net)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 2, 20)
    fnn.testing.check_grads(net, X, y)
    trained, h = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=2, batch_size=5, rng=0, verbose=0)
    path = fnn.save(tmp_path / "affine.npz", trained, opt_state=h.opt_state)
    back = fnn.load(path).params
    np.testing.assert_array_equal(back.flat, trained.flat)
    assert isinstance(back.layers[2], fnn.Residual) and isinstance(back.layers[2].body[0], Affine)


def test_its_spec_is_sized_by_its_shape_function_without_drawing_it() -> None:
    """Registered with ``shape=``, the kind is sized by it alone: ``fnn.sequential``
    draws nothing, ``fnn.init`` draws each layer once; without it, a throwaway layer."""
    drawn: list[tuple[int, ...]] = []

    def counted(input_shape: tuple[int, ...], **kw: Any) -> Affine:
        drawn.append(tuple(input_shape))
        return _create(input_shape, **kw)

    def shape(input_shape: tuple[int, ...], scale: float = 1.0) -> tuple[int, ...]:
        return tuple(input_shape)

    kind = LAYERS["test_affine"]
    spec = fnn.specs.layer("test_affine", scale=2.0)
    assert spec.output_shape((3,)) == (3,)  # no shape= yet: a throwaway layer
    fnn.layers.register_layer(
        "test_affine", Affine, example=kind.example, create=counted, shape=shape
    )
    a = arch()
    assert drawn == []
    assert "Affine" in fnn.summary(a)  # an architecture's summary draws it
    drawn.clear()
    net = fnn.init(a, rng=0)
    assert drawn == [(5,), (5,)]
    assert fnn.specs.layer("test_affine").output_shape((5,)) == net.shapes[1]


def test_a_new_kind_passes_the_property_checks() -> None:
    fnn.testing.check_layer_kind("test_affine")


def test_its_declared_weights_are_decayed_and_its_bias_is_not() -> None:
    net = fnn.init(arch(), rng=0)
    mask = fnn.optim.resolve_mask(net, fnn.weights_only)
    assert mask is not None
    chosen = {p for p, m in zip(net.layout.paths, _leaf_flags(net, mask), strict=True) if m}
    assert chosen == {"layers.0.W", "layers.1.g", "layers.2.body.0.g", "layers.3.W"}


def _leaf_flags(net: fnn.Network, mask: Any) -> list[bool]:
    out, i = [], 0
    for _, x in fnn.tree.leaves_with_paths(net):
        out.append(bool(mask[i]))
        i += int(np.size(x))
    return out


def test_onnx_export_refuses_it_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx is not installed (extra 'onnx')")
    net = fnn.init(arch(), rng=0)
    with pytest.raises(ValueError, match="Affine"):
        fnn.onnx.export(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_specs_layer_checks_its_arguments_at_once() -> None:
    with pytest.raises(ValueError, match="unknown layer kind 'no_such_kind'"):
        fnn.specs.layer("no_such_kind")
    with pytest.raises(TypeError, match="test_affine"):
        fnn.specs.layer("test_affine", sclae=2.0)


@pytest.mark.parametrize(
    "name", [n for n, k in LAYERS.items() if k.example is not None and n != "test_affine"]
)
def test_check_layer_kind_holds_for_every_registered_kind(name: str) -> None:
    fnn.testing.check_layer_kind(name)


def test_check_layer_kind_finds_a_composite_sharing_its_workspace() -> None:
    @attrs.frozen(eq=False)
    class Shared(fnn.Residual):
        """A residual block whose inner layers all write into its own workspace."""

        def forward_into(self, X: Any, ctx: Context, ws: Workspace) -> Any:
            return super().forward_into(X, ctx, _NoChildren(ws))

        def backward_into(
            self,
            cache: Any,
            d_out: Any,
            grads: Any,
            ctx: Context,
            ws: Workspace,
            need_d_in: bool = True,
        ) -> Any:
            return super().backward_into(cache, d_out, grads, ctx, _NoChildren(ws), need_d_in)

    kind = LAYERS["residual"]
    base_example = kind.example
    assert base_example is not None

    def example(rng: np.random.Generator, dtype: Any) -> tuple[Any, tuple[int, ...]]:
        layer, shape = base_example(rng, dtype)
        return Shared(body=layer.body, shortcut=layer.shortcut), shape

    bad = fnn.layers.LayerKind(name="residual", cls=Shared, build=kind.build, example=example)
    with pytest.raises(
        AssertionError, match="fit equals train_step: fit and a loop of train_step differ"
    ):
        fnn.testing.check_layer_kind(bad)


class _NoChildren(Workspace):
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        return self.ws.empty(name, shape, dtype)

    def child(self, key: object) -> Workspace:
        return self.ws  # the mistake: every inner layer in the same workspace


def test_check_layer_kind_finds_a_wrong_gradient() -> None:
    @attrs.frozen(eq=False)
    class Wrong(Affine):
        def backward_into(
            self,
            cache: Any,
            d_out: Any,
            grads: Any,
            ctx: Context,
            ws: Workspace,
            need_d_in: bool = True,
        ) -> Any:
            d = super().backward_into(cache, d_out, grads, ctx, ws, need_d_in)
            grads.h[...] *= 1.01
            return d

    kind = LAYERS["test_affine"]
    bad = attrs.evolve(
        kind,
        cls=Wrong,
        example=lambda rng, dtype: (Wrong(g=rng.normal(size=3), h=rng.normal(size=3)), (3,)),
    )
    with pytest.raises(AssertionError, match=r"layer gradients: .*gradient of h\[\d\] differs"):
        fnn.testing.check_layer_kind(bad)
