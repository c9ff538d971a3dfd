"""Specs are one generic value built through the layer registry (issue 19, point 2):
every named factory returns a :class:`fnn.specs.KindSpec` whose shape comes from its
kind's ``shape`` function (nothing drawn) and whose layer comes from its kind's
``create``; the earlier spec classes are thin constructors of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np
import pytest

import fnn
from fnn.layers import LAYERS
from fnn.specs import KindSpec

s = fnn.specs

# (spec, per-sample input shape): one of every named factory, composites included
CASES: list[tuple[Any, tuple[int, ...]]] = [
    (s.dense(4, activation="relu"), (3,)),
    (s.dense(4, bias=False), (5, 3)),
    (s.conv2d(3, 2, stride=2, padding="same", activation="tanh"), (5, 6, 2)),
    (s.max_pool2d(2), (4, 6, 3)),
    (s.avg_pool2d((2, 3), stride=1), (4, 6, 3)),
    (s.global_avg_pool2d(), (4, 6, 3)),
    (s.flatten(), (4, 6, 3)),
    (s.batch_norm(momentum=0.2), (4, 6, 3)),
    (s.layer_norm(), (7, 4)),
    (s.embedding(11, 4), (7,)),
    (s.positional_embedding(9), (7, 4)),
    (s.dropout(0.3), (5,)),
    (s.activation("elu"), (5,)),
    (s.simple_rnn(3), (6, 2)),
    (s.lstm(3, return_sequences=True), (6, 2)),
    (s.gru(3), (6, 2)),
    (s.multi_head_attention(2, causal=True), (5, 4)),
    (s.residual([s.dense(3, "tanh"), s.batch_norm()]), (3,)),
    (s.residual([s.conv2d(4, 3, padding="same")], [s.conv2d(4, 1)]), (5, 5, 2)),
    (s.parallel([[s.dense(2)], [s.residual([s.dense(3)])], []]), (3,)),
    (s.parallel([[s.dense(3)], [s.dense(3, "relu")]], merge="add"), (3,)),
]


@pytest.fixture
def no_drawing() -> Iterator[None]:
    """Every registered kind's ``create`` replaced by one that fails: what runs under
    it draws no layer."""
    saved = LAYERS.items()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a layer was drawn")

    for name, kind in saved:
        LAYERS.replace(name, attrs.evolve(kind, create=refuse))
    yield
    for name, kind in saved:
        LAYERS.replace(name, kind)


@pytest.mark.parametrize(("spec", "shape"), CASES, ids=lambda v: getattr(v, "kind", None))
def test_every_named_factory_is_a_kind_spec_whose_shape_is_its_layers(
    spec: Any, shape: tuple[int, ...]
) -> None:
    assert isinstance(spec, KindSpec) and spec.kind in LAYERS
    layer = spec.init(rng=np.random.default_rng(0), dtype=np.dtype(np.float64), input_shape=shape)
    assert isinstance(layer, LAYERS[spec.kind].cls)
    assert spec.output_shape(shape) == layer.output_shape(shape)
    assert spec.has_parameters == bool(fnn.tree.leaves(layer))


@pytest.mark.parametrize(("spec", "shape"), CASES, ids=lambda v: getattr(v, "kind", None))
def test_a_spec_is_sized_without_drawing_its_layer(
    spec: Any, shape: tuple[int, ...], no_drawing: None
) -> None:
    assert len(spec.output_shape(shape)) >= 1
    with pytest.raises(AssertionError, match="a layer was drawn"):
        spec.init(rng=np.random.default_rng(0), dtype=np.dtype(np.float64), input_shape=shape)


def test_sequential_sizes_a_network_without_drawing_it(no_drawing: None) -> None:
    arch = fnn.sequential(
        (8, 8, 1),
        [s.conv2d(4, 3), s.residual([s.conv2d(4, 3, padding="same")]), s.flatten(), s.dense(3)],
        output="softmax",
    )
    assert len(arch.layers) == 4


def test_init_draws_each_layer_through_its_kind_once() -> None:
    calls: list[str] = []
    saved = LAYERS.items()
    for name, kind in saved:
        create = kind.create
        if create is None:
            continue

        def counting(*args: Any, _name: str = name, _create: Any = create, **kw: Any) -> Any:
            calls.append(_name)
            return _create(*args, **kw)

        LAYERS.replace(name, attrs.evolve(kind, create=counting))
    try:
        arch = fnn.sequential(
            (4,), [s.dense(3), s.residual([s.dense(3), s.batch_norm()]), s.dense(2)]
        )
        assert calls == []  # described without drawing
        fnn.init(arch, rng=0)
    finally:
        for name, kind in saved:
            LAYERS.replace(name, kind)
    assert sorted(calls) == ["batch_norm", "dense", "dense", "dense", "residual"]


def test_the_earlier_spec_classes_are_thin_constructors_of_kind_specs() -> None:
    old = fnn.DenseSpec(None, 3, "tanh", "glorot_uniform")
    assert fnn.specs.DenseSpec is fnn.DenseSpec is fnn.network.DenseSpec
    assert isinstance(old, KindSpec) and old.kind == "dense"
    assert old == s.dense(3, "tanh", "glorot_uniform")
    assert hash(old) == hash(s.dense(3, "tanh", "glorot_uniform"))
    assert repr(old) == (
        "DenseSpec(n_in=None, n_out=3, activation=Tanh(), initializer=GlorotUniform(), bias=True)"
    )
    assert (old.n_in, old.n_out, old.bias) == (None, 3, True)  # the earlier fields
    assert fnn.network.DropoutSpec(0.5).hyper == {"rate": 0.5}
    assert fnn.network.ActivationSpec("relu").hyper["activation"] == fnn.activations.get("relu")
    assert fnn.network.BatchNormSpec().hyper == {"momentum": 0.1, "eps": 1e-5}
    with pytest.raises(TypeError, match="DenseSpec is missing n_out, activation"):
        fnn.DenseSpec(None)
    with pytest.raises(TypeError, match="DropoutSpec has no field 'p'"):
        fnn.DropoutSpec(p=0.5)
    with pytest.raises(ValueError, match="unknown activation"):
        fnn.DenseSpec(None, 3, "no_such_activation")


def test_a_spec_whose_layer_cannot_take_its_input_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"layers\.1 \(MultiHeadAttention\) expects .*got \(3,\)"):
        fnn.sequential((4,), [s.dense(3), s.multi_head_attention(1), s.dense(2)])
    with pytest.raises(ValueError, match=r"heads=2 does not divide the model width d_model=3"):
        fnn.sequential((5, 3), [s.multi_head_attention(2), s.dense(2)])
