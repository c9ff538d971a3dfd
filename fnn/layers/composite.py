"""Layers made of layers: residual connections and parallel branches.

A composite holds *chains*: sequences of layers applied one after another to the
composite's input. Every chain sees the same input ``x``; their outputs are merged:

- :class:`Residual` ``(body, shortcut)``: ``out = body(x) + shortcut(x)``; an empty
  shortcut (``()`` or None) is the identity, so ``out = body(x) + x``.
- :class:`Parallel` ``(branches, merge)``: ``"concat"`` joins the branches' outputs on
  the last axis (features, or the channels of channels-last images), ``"add"`` sums
  them.

Backward: a sum hands its gradient ``g`` unchanged to each chain, a concatenation hands
chain ``k`` its slice of ``g`` on the last axis. The input feeds every chain, so its
gradient is the sum of the chains' input gradients:
``dL/dx = J_1(x)^T g_1 + J_2(x)^T g_2 + ...``.

The inner layers' leaves are the composite's leaves (paths such as ``body.1.W`` or
``branches.0.2.scale``), so they live in the network's one flat layout and every
optimizer, checkpoint and gradient check sees them. Each inner layer runs its own
kernels with a workspace of its own, ``ws.child((chain, index))``: in ``fit`` a
workspace keeps its arrays from step to step, and two layers sharing one would
overwrite each other's outputs. Write your own composite the same way.

Composites nest: a chain may hold composites.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
import numpy as np

from fnn._types import FloatArray
from fnn.layers.base import (
    LAYERS,
    Context,
    Layer,
    LayerBase,
    LayerCache,
    Workspace,
    backward_kernel,
    forward_kernel,
    input_shape_of,
    min_batch_rows_of,
    output_shape_of,
    register_layer,
    working_size_of,
)
from fnn.layers.batch_norm import BatchNorm
from fnn.layers.dense import Dense
from fnn.tree import STATIC_META

__all__ = [
    "Composite",
    "CompositeCache",
    "Parallel",
    "Residual",
    "chain_backward",
    "chain_forward",
    "chain_output_shape",
    "init_chain",
    "merged_chains_shape",
    "merged_shape",
    "spec_tuple",
]

Merge = Literal["concat", "add"]


# --- chains: a sequence of layers, applied in order ------------------------------------


def chain_output_shape(
    layers: Sequence[Layer], input_shape: tuple[int, ...], where: str
) -> tuple[int, ...]:
    """The per-sample output shape of ``layers`` applied in order to ``input_shape``;
    ValueError naming the layer as ``{where}.{index}`` when one does not fit."""
    shape = tuple(input_shape)
    for j, layer in enumerate(layers):
        shape = output_shape_of(layer, shape, f"{where}.{j}")
    return shape


def chain_forward(
    layers: Sequence[Layer], X: FloatArray, ctx: Context, ws: Workspace, name: str
) -> tuple[FloatArray, tuple[LayerCache, ...]]:
    """Run the forward kernels of ``layers`` in order on ``X`` (batch, *in_shape):
    ``(out (batch, *out_shape), caches)``. Layer ``j`` works in ``ws.child((name, j))``.
    An empty chain is the identity (``out`` is ``X``)."""
    caches: list[LayerCache] = []
    h = X
    for j, layer in enumerate(layers):
        h, c = forward_kernel(type(layer))(layer, h, ctx, ws.child((name, j)))
        caches.append(c)
    return h, tuple(caches)


def chain_backward(
    layers: Sequence[Layer],
    caches: Sequence[LayerCache],
    d_out: FloatArray,
    grads: Sequence[Any],
    ctx: Context,
    ws: Workspace,
    name: str,
    need_d_in: bool,
) -> FloatArray | None:
    """Run the backward kernels of ``layers`` in reverse order from ``d_out`` (batch,
    *out_shape), writing each layer's gradients into ``grads[j]``; returns the input
    gradient (batch, *in_shape) when ``need_d_in`` (``d_out`` itself for an empty
    chain), else None."""
    d: FloatArray | None = d_out
    for j in range(len(layers) - 1, -1, -1):
        layer = layers[j]
        need = j > 0 or need_d_in
        assert d is not None
        d = backward_kernel(type(layer))(
            layer, caches[j], d, grads[j], ctx, ws.child((name, j)), need
        )
        if need and d is None:
            raise TypeError(
                f"{name}.{j} ({type(layer).__name__}): backward_into returned None, but the "
                "layer below needs the input gradient (need_d_in=True)"
            )
    return d if need_d_in else None


def merged_chains_shape(
    merge: Merge,
    chains: Sequence[tuple[str, Sequence[Any]]],
    input_shape: tuple[int, ...],
    kind: str,
) -> tuple[int, ...]:
    """The per-sample output shape of a composite ``kind`` whose ``(name, chain)``
    pairs all take ``input_shape`` and are joined by ``merge``. A chain holds layers or
    specs (anything with ``output_shape``): the same function sizes a built block and
    the spec that describes it. ValueError naming the inner layer (``{layer}.body.1``)
    or the block and the shapes."""
    shapes = [
        (name, chain_output_shape(items, input_shape, f"{{layer}}.{name}"))
        for name, items in chains
    ]
    return merged_shape(merge, shapes, input_shape, kind)


# --- chains of specs: drawing the layers a description sizes ---------------------------


def spec_tuple(value: Any, what: str) -> tuple[Any, ...]:
    """A chain of layer specs (anything with ``output_shape`` and ``init``, as
    :mod:`fnn.specs` makes) as a tuple; None is the empty chain. TypeError naming
    ``{what}[i]`` for an entry that is not a spec."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a list of layer specs, got {type(value).__name__}")
    out = tuple(value)
    for i, spec in enumerate(out):
        if not callable(getattr(spec, "output_shape", None)) or not callable(
            getattr(spec, "init", None)
        ):
            raise TypeError(
                f"{what}[{i}] must be a layer spec from fnn.specs, got {type(spec).__name__}"
            )
    return out


def _takes_input_shape(spec: object) -> bool:
    try:
        return "input_shape" in inspect.signature(spec.init).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # pragma: no cover
        return False


def init_chain(
    specs: Sequence[Any],
    *,
    rng: np.random.Generator,
    dtype: np.dtype[Any],
    input_shape: tuple[int, ...] | None,
    where: str = "layers",
) -> tuple[tuple[Layer, ...], tuple[int, ...] | None]:
    """Draw the layers of ``specs`` applied in order to inputs of per-sample shape
    ``input_shape`` (None: the first layer that fixes it does), each sized from the
    shape before it: ``(layers, output shape)``. One walk: each drawn layer's
    ``output_shape`` gives the next one's input. ValueError naming ``{where}.{i}`` when
    a layer cannot take the shape before it."""
    shape = input_shape
    layers: list[Layer] = []
    for i, spec in enumerate(specs):
        try:
            if _takes_input_shape(spec):
                layer = spec.init(rng=rng, dtype=dtype, input_shape=shape)
            else:
                layer = spec.init(rng=rng, dtype=dtype)
        except ValueError as e:
            msg = str(e).replace("{layer}", f"{where}.{i}")
            if not msg.startswith(f"{where}.{i}"):
                msg = f"{where}.{i} ({type(spec).__name__}): {msg}"
            raise ValueError(msg) from None
        if shape is None:
            shape = input_shape_of(layer)
        if shape is not None:
            shape = output_shape_of(layer, shape, f"{where}.{i}")
        layers.append(layer)
    return tuple(layers), shape


# --- merging the chains' outputs --------------------------------------------------------


def merged_shape(
    merge: Merge,
    shapes: Sequence[tuple[str, tuple[int, ...]]],
    input_shape: tuple[int, ...],
    kind: str,
) -> tuple[int, ...]:
    """The per-sample shape of merging the chains' output ``shapes`` (``(name, shape)``
    pairs; an empty chain gives ``input_shape``). ValueError naming the block as
    ``{layer} (kind)`` and the shapes when they cannot be added or concatenated."""
    (first_name, first), *rest = shapes
    if merge == "add":
        for name, s in rest:
            if s != first:
                if kind == "Residual" and name == "shortcut" and s == tuple(input_shape):
                    raise ValueError(
                        f"{{layer}} ({kind}): body gives {first}, input is {s}; add a shortcut"
                        " that gives the body's shape (e.g. a 1x1 convolution or a dense layer)"
                    )
                raise ValueError(
                    f"{{layer}} ({kind}): {first_name} gives {first}, {name} gives {s}; "
                    "'add' needs identical shapes (no broadcasting)"
                )
        return first
    if merge != "concat":  # pragma: no cover - checked when the layer is built
        raise ValueError(f"merge must be 'concat' or 'add', got {merge!r}")
    width = 0
    for name, s in shapes:
        if len(s) != len(first) or s[:-1] != first[:-1] or not s:
            raise ValueError(
                f"{{layer}} ({kind}): {first_name} gives {first}, {name} gives {s}; "
                "'concat' joins the last axis and needs every other axis to match"
            )
        width += s[-1]
    return (*first[:-1], width)


@attrs.frozen(eq=False)
class CompositeCache(LayerCache):
    """One tuple of inner caches per chain, and each chain's width on the last axis
    (to slice the gradient of a concatenation)."""

    chains: tuple[tuple[LayerCache, ...], ...]
    widths: tuple[int, ...]


class Composite(LayerBase):
    """Base of layers made of chains of layers that all take the composite's input and
    whose outputs are merged (added or concatenated on the last axis).

    A subclass (a frozen attrs class) gives :attr:`chains` and :attr:`merge`; the
    kernels, shapes and the random-draw flag follow from them.
    """

    @property
    def chains(self) -> tuple[tuple[str, tuple[Layer, ...]], ...]:
        """``(name, layers)`` of each chain, in order: the names are the field paths of
        the inner layers (``"body"``, ``"branches.1"``)."""
        raise NotImplementedError

    @property
    def merge(self) -> Merge:
        """How the chains' outputs are joined: ``"add"`` or ``"concat"``."""
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The per-sample input shape an inner first layer fixes, or None."""
        for _, layers in self.chains:
            if layers:
                shape = input_shape_of(layers[0])
                if shape is not None:
                    return shape
        return None

    @property
    def needs_rng(self) -> bool:
        """Whether training draws random numbers (an inner layer does)."""
        return any(
            getattr(layer, "needs_rng", False) for _, layers in self.chains for layer in layers
        )

    def _inner(
        self, input_shape: tuple[int, ...]
    ) -> list[tuple[Layer, tuple[int, ...], tuple[int, ...]]]:
        """Every inner layer with its per-sample input and output shapes."""
        out = []
        for name, layers in self.chains:
            shape = tuple(input_shape)
            for j, layer in enumerate(layers):
                nxt = output_shape_of(layer, shape, f"{{layer}}.{name}.{j}")
                out.append((layer, shape, nxt))
                shape = nxt
        return out

    def working_size(self, input_shape: tuple[int, ...]) -> int:
        """Elements per sample the forward pass keeps: the inner layers' (each its own
        ``working_size``, else four times its output) and the merged output."""
        inner = sum(working_size_of(*entry) for entry in self._inner(input_shape))
        return inner + math.prod(self.output_shape(input_shape))

    def min_batch_rows(self, input_shape: tuple[int, ...]) -> int:
        """The most any inner layer needs (batch norm inside a block needs two)."""
        return max(
            (min_batch_rows_of(lay, shape) for lay, shape, _ in self._inner(input_shape)), default=1
        )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return merged_chains_shape(self.merge, self.chains, input_shape, type(self).__name__)

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, CompositeCache]:
        """Every chain on ``X`` (batch, *in_shape), merged into ``out`` (batch,
        *out_shape)."""
        outs: list[FloatArray] = []
        caches: list[tuple[LayerCache, ...]] = []
        for name, layers in self.chains:
            h, c = chain_forward(layers, X, ctx, ws, name)
            outs.append(h)
            caches.append(c)
        dt = outs[0].dtype
        if self.merge == "add":
            out = ws.empty("out", outs[0].shape, dt)
            np.add(outs[0], outs[1], out=out)
            for h in outs[2:]:
                out += h
        else:
            shape = (*outs[0].shape[:-1], sum(h.shape[-1] for h in outs))
            out = ws.empty("out", shape, dt)
            np.concatenate(outs, axis=-1, out=out)
        widths = tuple(int(h.shape[-1]) for h in outs)
        return out, CompositeCache(chains=tuple(caches), widths=widths)

    def backward_into(
        self,
        cache: CompositeCache,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """Each chain's backward pass from its part of ``d_out`` (batch, *out_shape);
        ``d_in`` (batch, *in_shape) is the sum of the chains' input gradients."""
        d_in: FloatArray | None = None
        lo = 0
        for k, ((name, layers), (_, grad_layers)) in enumerate(
            zip(self.chains, grads.chains, strict=True)
        ):
            if self.merge == "add":
                g = d_out
            else:
                hi = lo + cache.widths[k]
                # a contiguous copy of the slice: kernels may reshape their d_out
                g = ws.empty(f"d_out.{name}", (*d_out.shape[:-1], hi - lo), d_out.dtype)
                np.copyto(g, d_out[..., lo:hi])
                lo = hi
            d = chain_backward(layers, cache.chains[k], g, grad_layers, ctx, ws, name, need_d_in)
            if d is None:
                continue
            if d_in is None:
                d_in = ws.empty("d_in", d.shape, d.dtype)
                np.copyto(d_in, d)
            else:
                d_in += d
        return d_in

    def _chain_configs(self, layers: Iterable[Layer]) -> list[dict[str, object]]:
        return [layer.config() for layer in layers]


def _layer_tuple(value: Any, what: str) -> tuple[Layer, ...]:
    """A chain as a tuple of layers (None is the empty chain; one layer a chain of one)."""
    if value is None:
        return ()
    if isinstance(value, Layer) and attrs.has(type(value)):
        return (value,)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a sequence of layers, got {type(value).__name__}")
    out = tuple(value)
    for j, layer in enumerate(out):
        if not isinstance(layer, Layer) or not attrs.has(type(layer)):
            raise TypeError(
                f"{what}.{j} is a {type(layer).__name__}, not an fnn layer (a frozen attrs "
                "class with forward and backward)"
            )
    return out


def _body(value: Any) -> tuple[Layer, ...]:
    return _layer_tuple(value, "body")


def _shortcut(value: Any) -> tuple[Layer, ...]:
    return _layer_tuple(value, "shortcut")


def _branches(value: Any) -> tuple[tuple[Layer, ...], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"branches must be a sequence of sequences of layers, got {type(value).__name__}"
        )
    out = tuple(_layer_tuple(b, f"branches.{k}") for k, b in enumerate(value))
    if len(out) < 2:
        raise ValueError(f"Parallel needs at least 2 branches, got {len(out)}")
    return out


def _check_merge(instance: Any, attribute: Any, value: Any) -> None:
    if value not in ("concat", "add"):
        raise ValueError(f"merge must be 'concat' or 'add', got {value!r}")


@attrs.frozen(eq=False)
class Residual(Composite):
    """``out = body(x) + shortcut(x)``: a residual connection (He et al. 2016).

    Attributes:
        body: the layers applied in order to the input (a tuple; a list is converted).
        shortcut: the layers of the other path, ``()`` (or None) for the identity, e.g.
            a 1x1 convolution and batch norm where the body changes the shape.

    The body's and shortcut's output shapes must be equal (checked when a network is
    built, naming the block and both shapes). Leaves: ``body.j.*``, ``shortcut.j.*``.
    """

    body: tuple[Layer, ...] = attrs.field(converter=_body)
    shortcut: tuple[Layer, ...] = attrs.field(default=(), converter=_shortcut)

    @property
    def chains(self) -> tuple[tuple[str, tuple[Layer, ...]], ...]:
        return (("body", self.body), ("shortcut", self.shortcut))

    @property
    def merge(self) -> Merge:
        return "add"

    def config(self) -> dict[str, object]:
        return {
            "kind": "residual",
            "body": self._chain_configs(self.body),
            "shortcut": self._chain_configs(self.shortcut),
        }


@attrs.frozen(eq=False)
class Parallel(Composite):
    """Branches on the same input, joined: ``concat(b_1(x), ..., b_k(x))`` on the last
    axis, or ``b_1(x) + ... + b_k(x)`` (as Inception blocks and multi-path networks).

    Attributes:
        branches: at least two chains of layers (tuples; ``()`` is the identity).
        merge: ``"concat"`` (the last axis; every other axis must match) or ``"add"``
            (identical shapes, no broadcasting), static.

    Leaves: ``branches.k.j.*``.
    """

    branches: tuple[tuple[Layer, ...], ...] = attrs.field(converter=_branches)
    merge: Merge = attrs.field(default="concat", validator=_check_merge, metadata=STATIC_META)

    @property
    def chains(self) -> tuple[tuple[str, tuple[Layer, ...]], ...]:
        return tuple((f"branches.{k}", b) for k, b in enumerate(self.branches))

    def config(self) -> dict[str, object]:
        return {
            "kind": "parallel",
            "merge": self.merge,
            "branches": [self._chain_configs(b) for b in self.branches],
        }


# --- registration: checkpoints rebuild the inner layers from their own kinds -----------


def _configs(cfg: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    v = cfg.get(key)
    if not isinstance(v, list) or not all(isinstance(c, dict) for c in v):
        raise ValueError(f"{key} must be a list of layer configs, got {v!r}")
    return v


def _build_chain(
    configs: list[dict[str, Any]], arrays: Mapping[str, Any], prefix: str
) -> tuple[Any, ...]:
    layers = []
    for j, c in enumerate(configs):
        own = f"{prefix}.{j}."
        sub = {k[len(own) :]: v for k, v in arrays.items() if k.startswith(own)}
        layers.append(LAYERS[str(c.get("kind"))].build(c, sub))
    return tuple(layers)


def _chain_shapes(configs: list[dict[str, Any]], prefix: str) -> dict[str, Sequence[int]] | None:
    out: dict[str, Sequence[int]] = {}
    for j, c in enumerate(configs):
        shapes = LAYERS[str(c.get("kind"))].shapes
        if shapes is None:
            return None  # an inner kind whose config does not fix its shapes
        got = shapes(c)
        if got is None:
            return None
        out.update({f"{prefix}.{j}.{k}": s for k, s in got.items()})
    return out


def _residual_shapes(cfg: dict[str, Any]) -> dict[str, Sequence[int]] | None:
    body = _chain_shapes(_configs(cfg, "body"), "body")
    short = _chain_shapes(_configs(cfg, "shortcut"), "shortcut")
    return None if body is None or short is None else {**body, **short}


def _parallel_shapes(cfg: dict[str, Any]) -> dict[str, Sequence[int]] | None:
    out: dict[str, Sequence[int]] = {}
    branches = cfg.get("branches")
    if not isinstance(branches, list):
        raise ValueError(f"branches must be a list of lists of layer configs, got {branches!r}")
    for k, b in enumerate(branches):
        got = _chain_shapes(_configs({"b": b}, "b"), f"branches.{k}")
        if got is None:
            return None
        out.update(got)
    return out


def _example_dense(
    rng: np.random.Generator, dtype: np.dtype[Any], n_in: int, n_out: int, act: str
) -> Dense:
    return Dense(
        W=(rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(dtype),
        b=rng.normal(size=n_out).astype(dtype),
        activation=act,
    )


def _residual_example(
    rng: np.random.Generator, dtype: np.dtype[Any]
) -> tuple[Residual, tuple[int, ...]]:
    bn = BatchNorm(
        scale=rng.uniform(0.5, 1.5, 4).astype(dtype),
        shift=rng.normal(size=4).astype(dtype),
        running_mean=rng.normal(size=4).astype(dtype),
        running_var=rng.uniform(0.5, 2.0, 4).astype(dtype),
        momentum=0.2,
    )
    body = (_example_dense(rng, dtype, 3, 4, "tanh"), bn)
    layer = Residual(body=body, shortcut=(_example_dense(rng, dtype, 3, 4, "identity"),))
    return layer, (3,)


def _parallel_example(
    rng: np.random.Generator, dtype: np.dtype[Any]
) -> tuple[Parallel, tuple[int, ...]]:
    inner = Residual(body=(_example_dense(rng, dtype, 3, 3, "tanh"),))  # composites nest
    first = (_example_dense(rng, dtype, 3, 2, "sigmoid"),)
    second = (inner, _example_dense(rng, dtype, 3, 2, "tanh"))
    layer = Parallel(branches=(first, second, ()))
    return layer, (3,)


def _create_residual(
    input_shape: tuple[int, ...],
    *,
    rng: np.random.Generator,
    dtype: Any,
    body: Sequence[Any],
    shortcut: Sequence[Any] | None = (),
) -> Residual:
    """A residual block whose chains are drawn from specs, each sized from the
    block's input (``fnn.specs.residual``); the merge is checked by the block's
    ``output_shape`` where the chain it sits in is walked."""
    b, _ = init_chain(body, rng=rng, dtype=dtype, input_shape=input_shape, where="{layer}.body")
    s, _ = init_chain(
        shortcut or (), rng=rng, dtype=dtype, input_shape=input_shape, where="{layer}.shortcut"
    )
    return Residual(body=b, shortcut=s)


def _create_parallel(
    input_shape: tuple[int, ...],
    *,
    rng: np.random.Generator,
    dtype: Any,
    branches: Sequence[Sequence[Any]],
    merge: Merge = "concat",
) -> Parallel:
    """A parallel block whose branches are drawn from specs, each sized from the
    block's input (``fnn.specs.parallel``)."""
    chains = [
        init_chain(
            b, rng=rng, dtype=dtype, input_shape=input_shape, where=f"{{layer}}.branches.{k}"
        )[0]
        for k, b in enumerate(branches)
    ]
    return Parallel(branches=chains, merge=merge)


register_layer(
    "residual",
    Residual,
    build=lambda cfg, a: Residual(
        body=_build_chain(_configs(cfg, "body"), a, "body"),
        shortcut=_build_chain(_configs(cfg, "shortcut"), a, "shortcut"),
    ),
    example=_residual_example,
    shapes=_residual_shapes,
    weights=(),  # the inner layers declare their own
    create=_create_residual,
    shape=lambda s, *, body, shortcut=(): merged_chains_shape(
        "add", (("body", body), ("shortcut", shortcut or ())), s, "Residual"
    ),
)
register_layer(
    "parallel",
    Parallel,
    build=lambda cfg, a: Parallel(
        branches=[
            _build_chain(_configs({"b": b}, "b"), a, f"branches.{k}")
            for k, b in enumerate(cfg["branches"])
        ],
        merge=cfg["merge"],
    ),
    example=_parallel_example,
    shapes=_parallel_shapes,
    weights=(),  # the inner layers declare their own
    create=_create_parallel,
    shape=lambda s, *, branches, merge="concat": merged_chains_shape(
        merge, [(f"branches.{k}", b) for k, b in enumerate(branches)], s, "Parallel"
    ),
)
