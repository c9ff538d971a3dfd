"""The graph being written, and the per-kind hooks that write layers and activations
into it.

:func:`fnn.onnx.export` walks a network's layers and, for each, calls the exporter
registered for its kind (:func:`register_exporter`, keyed by the name the kind was
registered under with :func:`fnn.layers.register_layer`, the ``"kind"`` of its
``config()``). fnn's own kinds register theirs in :mod:`fnn.onnx`; a user's kind adds
one the same way, without editing fnn::

    def export_scale(b: GraphBuilder, where: str, layer: Scale, in_shape: tuple[int, ...]) -> None:
        b.node(where, "Mul", [b.const(f"{where}.s", layer.s)])  # out = x * s

    fnn.onnx.register_exporter("scale", export_scale)

Activations are looked up the same way, by the name they are registered under
(:func:`register_activation_exporter`).
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from fnn import activations as _act
from fnn.layers.base import kind_of
from fnn.onnx._common import INPUT_NAME, cf_to_cl, cl_to_cf

__all__ = [
    "ActivationExporter",
    "Exporter",
    "GraphBuilder",
    "register_activation_exporter",
    "register_exporter",
]


class GraphBuilder:
    """The nodes and initializers of the graph being written.

    Attributes:
        dtype: the network's float dtype (float32 or float64); :meth:`const` stores
            floats in it.
        opset: the ONNX opset being written.
        cur: the name of the value computed so far (the input of the next layer).
        cf: whether ``cur`` is held channels-first (an image transposed from fnn's
            channels-last layout for ONNX's convolutions and pools).
        rank: the rank of ``cur``, batch axis included.
        nodes: the nodes written so far, in order.
        inits: the initializers (constants) written so far.
    """

    def __init__(self, dtype: np.dtype[Any], opset: int) -> None:
        self.dtype = dtype
        self.opset = opset
        self.nodes: list[NodeProto] = []
        self.inits: list[TensorProto] = []
        self.cur = INPUT_NAME
        self.cf = False
        self.rank = 0
        self._n = 0

    def const(self, name: str, value: Any, dtype: Any = None) -> str:
        """An initializer ``name`` holding ``value`` (as ``dtype``, default the
        network's); returns its name."""
        a = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def node(self, where: str, op: str, extra: Sequence[str] = (), **attributes: Any) -> str:
        """A node ``op`` on the current value (and the ``extra`` inputs after it); its
        output becomes the current value, and its name is returned."""
        return self.op(where, op, [self.cur, *extra], **attributes)

    def op(
        self, where: str, op: str, inputs: Sequence[str], n_out: int = 1, **attributes: Any
    ) -> str:
        """A node ``op`` on explicit ``inputs``; its (first) output becomes the current
        value and is returned. With ``n_out`` > 1, the outputs are ``{name}.0``,
        ``{name}.1``, ..."""
        self._n += 1
        out = f"{where}/{op}_{self._n}"
        outs = [out] if n_out == 1 else [f"{out}.{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=out, **attributes))
        self.cur = outs[0]
        return outs[0]

    def to_cf(self, where: str) -> None:
        """Make the current value channels-first (a ``Transpose`` if it is not)."""
        if not self.cf:
            self.node(where, "Transpose", perm=cl_to_cf(self.rank))
            self.cf = True

    def to_cl(self, where: str) -> None:
        """Make the current value channels-last, fnn's layout (a ``Transpose`` if it is
        not)."""
        if self.cf:
            self.node(where, "Transpose", perm=cf_to_cl(self.rank))
            self.cf = False

    def layer(self, where: str, layer: Any, in_shape: tuple[int, ...]) -> None:
        """The nodes of ``layer`` on the current value, whose per-sample shape is
        ``in_shape``, written by its kind's exporter (:func:`register_exporter`).

        Raises:
            ValueError: the layer's kind is not registered or has no exporter.
        """
        kind = kind_of(layer)
        if kind is None:
            raise ValueError(
                f"{where}: no ONNX export for {type(layer).__name__}: it is not a registered "
                "layer kind (fnn.layers.register_layer)"
            )
        fn = _EXPORTERS.get(kind.name)
        if fn is None:
            raise ValueError(
                f"{where}: no ONNX export for the layer kind {kind.name!r} "
                f"({type(layer).__name__}, {layer.config()}); give it one with "
                f"fnn.onnx.register_exporter({kind.name!r}, fn)"
            )
        self.rank = len(in_shape) + 1
        fn(self, where, layer, in_shape)

    def chain(
        self, where: str, layers: Sequence[Any], in_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        """The nodes of ``layers`` applied in order from the current value (per-sample
        shape ``in_shape``), the ``j``-th named ``{where}.{j}``; returns the per-sample
        output shape."""
        shape = in_shape
        for j, layer in enumerate(layers):
            out = tuple(int(d or 0) for d in layer.output_shape(shape))
            self.layer(f"{where}.{j}", layer, shape)
            shape = out
        self.rank = len(shape) + 1
        return shape

    def activation(self, where: str, act: _act.Activation) -> None:
        """The nodes of the activation ``act`` on the current value, written by the
        exporter registered for its name (:func:`register_activation_exporter`).

        Raises:
            ValueError: the activation has no exporter.
        """
        name = act.name
        fn = _ACTIVATION_EXPORTERS.get(name)
        registered = name in _act.ACTIVATIONS and isinstance(act, _act.ACTIVATIONS[name])
        if fn is None or not registered:
            raise ValueError(
                f"{where}: no ONNX export for the activation {type(act).__name__} "
                f"({act.config()}); give it one with "
                f"fnn.onnx.register_activation_exporter({name!r}, fn)"
            )
        fn(self, where, act)


Exporter: TypeAlias = Callable[[GraphBuilder, str, Any, tuple[int, ...]], None]
"""``fn(b, where, layer, in_shape)``: write ``layer``'s nodes into ``b``, from ``b.cur``
(per-sample shape ``in_shape``, held channels-first when ``b.cf``) to the new
``b.cur``; name nodes and constants after ``where`` (e.g. ``"layers.3"``)."""
ActivationExporter: TypeAlias = Callable[[GraphBuilder, str, Any], None]
"""``fn(b, where, act)``: write the activation ``act`` on ``b.cur``, elementwise."""

_EXPORTERS: dict[str, Exporter] = {}
_ACTIVATION_EXPORTERS: dict[str, ActivationExporter] = {}


def register_exporter(kind: str, fn: Exporter | None) -> Exporter | None:
    """Make ``fn`` the ONNX exporter of the layer kind ``kind`` (the name it was
    registered under with :func:`fnn.layers.register_layer`); a later registration of
    the same kind replaces it, and ``fn=None`` removes it.

    Args:
        kind: the layer kind's name, e.g. ``"dense"``.
        fn: ``fn(b, where, layer, in_shape)`` (see :data:`Exporter`): writes the layer's
            nodes into the :class:`GraphBuilder` ``b``, from ``b.cur`` (the layer's
            input, per-sample shape ``in_shape``) to a new ``b.cur`` holding its output
            (per-sample shape ``layer.output_shape(in_shape)``), in fnn's channels-last
            layout unless it leaves ``b.cf`` set.

    Returns:
        ``fn``.

    Raises:
        TypeError: ``kind`` is not a non-empty str, or ``fn`` neither callable nor None.
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty str, got {kind!r}")
    if fn is None:
        _EXPORTERS.pop(kind, None)
        return None
    if not callable(fn):
        raise TypeError(f"fn must be callable or None, got {type(fn).__name__}")
    _EXPORTERS[kind] = fn
    return fn


def register_activation_exporter(
    name: str, fn: ActivationExporter | None
) -> ActivationExporter | None:
    """Make ``fn`` the ONNX exporter of the activation registered as ``name`` (see
    :func:`fnn.activations.register`); a later registration of the name replaces it,
    and ``fn=None`` removes it.

    Args:
        name: the activation's name, e.g. ``"relu"``.
        fn: ``fn(b, where, act)`` (see :data:`ActivationExporter`): writes ``act``
            applied elementwise to ``b.cur`` and leaves the result in ``b.cur``.

    Returns:
        ``fn``.

    Raises:
        TypeError: ``name`` is not a non-empty str, or ``fn`` neither callable nor None.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if fn is None:
        _ACTIVATION_EXPORTERS.pop(name, None)
        return None
    if not callable(fn):
        raise TypeError(f"fn must be callable or None, got {type(fn).__name__}")
    _ACTIVATION_EXPORTERS[name] = fn
    return fn
