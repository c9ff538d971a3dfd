"""The values of a network: :class:`Architecture` (what :func:`fnn.init` builds),
:class:`Network` (parameters, and gradients of the same type), :class:`NetworkCache`
(what :func:`fnn.forward` keeps for :func:`fnn.backward`), and the checks of what the
functions on them take at their boundary (a network, inputs, targets).

A network is a frozen attrs value; its arrays are read-only views of one contiguous
buffer (see :func:`pack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import attrs
import numpy as np

from fnn import losses as _losses
from fnn import tree
from fnn._types import ArrayLike, FloatArray, Shape
from fnn._validation import (
    as_list,
    check_shape,
    check_X,
    float_dtype,
)
from fnn.layers.base import (
    Layer,
    LayerCache,
    input_shape_of,
    output_shape_of,
)
from fnn.layout import Layout
from fnn.network._plan import Plan
from fnn.specs import (
    LayerSpec,
    init_chain,
)
from fnn.tree import STATIC_META, leaves_with_paths


@attrs.frozen
class Architecture:
    """What :func:`init` builds: layer descriptions, the loss (which fixes the output
    activation), the float dtype of the parameters and, where the layers do not fix it,
    the per-sample input shape."""

    layers: tuple[LayerSpec, ...]
    loss: _losses.Loss
    dtype: np.dtype[Any] = attrs.field(converter=float_dtype)
    input_shape: Shape | None = None

    def build(self, rng: np.random.Generator) -> Network:
        """A network with parameters drawn from ``rng`` (not yet packed)."""
        shape = None if self.input_shape is None else for_layers(self.input_shape)
        layers, _ = init_chain(self.layers, rng=rng, dtype=self.dtype, input_shape=shape)
        return Network(layers=layers, loss=self.loss, input_shape=self.input_shape)


def _to_layers(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    if isinstance(layers, Architecture):
        raise TypeError(
            "layers must be a sequence of layers; to build from an Architecture "
            "call fnn.init(arch, rng=...)"
        )
    return tuple(layers)


def for_layers(shape: Shape) -> tuple[int, ...]:
    """``shape`` as the layer protocol types it (``output_shape``, specs): a None time
    axis travels through as is, and layers read it as "any length"."""
    return cast(tuple[int, ...], shape)


def to_shape(shape: Any) -> Shape | None:
    """A per-sample input shape: positive ints, or None for the time axis of a sequence
    (its first axis, in ``(None,)`` for token ids or ``(None, d)``): any length."""
    if shape is None:
        return None
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (shape,)
    dims = tuple(as_list(shape, "input_shape", "positive ints"))
    if dims and dims[0] is None and len(dims) <= 2:  # a sequence's time axis
        return (None, *check_shape(dims[1:])) if len(dims) == 2 else (None,)
    return check_shape(dims)


L = TypeVar("L", bound=Layer)
"""A layer class, for :meth:`Network.layer`."""


@attrs.frozen(eq=False, repr=False)
class Network:
    """A network's parameters (and, with the same type, their gradients).

    Attributes:
        layers: the layers in order; the last produces the logits (n, n_outputs).
        loss: the loss, which fixes the output activation (static).
        input_shape: the per-sample input shape (static): ``(n_features,)`` for dense
            networks (inferred from the first layer when it is dense, else required),
            ``(height, width, channels)`` for images.

    Built by :func:`init`, or directly from arrays::

        Network(layers=[Dense(W=[[2, 4], [4, -5]], activation="relu"), Dense(W=[[2], [7]])],
                loss="mse")

    Non-trainable leaves (a batch-norm layer's running statistics) are leaves like the
    parameters; in a gradient tree (from :func:`backward`) they hold the layer's *new*
    state, which :func:`fnn.update` takes over, and optimizers never change them.
    """

    layers: tuple[Layer, ...] = attrs.field(converter=_to_layers)
    loss: _losses.Loss = attrs.field(converter=_losses.get, metadata=STATIC_META)
    input_shape: Shape | None = attrs.field(default=None, converter=to_shape, metadata=STATIC_META)
    # cached: the flat layout, the contiguous buffer the leaves view (if any), what the
    # structure fixes (shapes, kernels); not part of the tree
    _layout: Layout | None = attrs.field(init=False, default=None, repr=False)
    _flat: FloatArray | None = attrs.field(init=False, default=None, repr=False)
    _plan: Plan | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer) or not attrs.has(type(layer)):
                hint = (
                    "; call fnn.init(arch, rng=...) to build a network from an Architecture"
                    if isinstance(layer, Architecture)
                    else ""
                )
                raise TypeError(
                    f"layers.{i} is a {type(layer).__name__}, not an fnn layer (a frozen attrs "
                    f"class with forward and backward){hint}"
                )
        shape = self.input_shape
        if shape is None:
            # only the first layer's parameters say what the network takes: a later
            # layer's input is what the layers before it give, not X
            shape = input_shape_of(self.layers[0])
            if shape is None:
                raise ValueError(
                    f"the network's input shape is not fixed by its first layer (layers.0, "
                    f"{type(self.layers[0]).__name__}): pass input_shape= (the shape of one "
                    "sample, e.g. (height, width, channels) for images)"
                )
            object.__setattr__(self, "input_shape", shape)
        shapes = []
        for i, layer in enumerate(self.layers):
            shape = output_shape_of(layer, for_layers(shape), f"layers.{i}")
            shapes.append(shape)
        if len(shape) not in (1, 2):
            raise ValueError(
                f"the last layer gives outputs of shape {shape}; a network ends in logits of "
                "shape (n_outputs,) or per-position logits (T, n_outputs) (add a flatten or "
                "global pooling layer and a dense layer)"
            )
        entries = leaves_with_paths(self)
        if not entries:
            raise ValueError("a network needs at least one layer with parameters")
        first = next(i for i, layer in enumerate(self.layers) if leaves_with_paths(layer))
        object.__setattr__(self, "_plan", Plan.of(self.layers, tuple(shapes), first))
        dtype = entries[0][1].dtype
        for p, x in entries:
            if x.dtype != dtype:
                raise ValueError(f"'{p}' has dtype {x.dtype}, but the network's dtype is {dtype}")

    def __repr__(self) -> str:
        parts = [
            _layer_label(layer, shape)
            for layer, shape in zip(self.layers, self.shapes, strict=True)
        ]
        n = sum(int(np.size(x)) for x in tree.leaves(self))
        return (
            f"Network(input_shape={self.input_shape}, layers=[{', '.join(parts)}], "
            f"loss={self.loss.name}, {n:,} parameters, {self.dtype})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # unpickled and deep-copied networks are rebuilt into a fresh read-only buffer
        return (_restore, (tuple(self.layers), self.loss, self.input_shape))

    def layer(self, i: int, cls: type[L]) -> L:
        """Layer ``i`` (negative counts from the end), typed as ``cls``: checked, so
        ``net.layer(0, fnn.Dense).W`` is a typed array where ``net.layers[0]`` is only a
        :class:`Layer`.

        Raises:
            TypeError: layer ``i`` is not a ``cls`` (an instance of a subclass is).
            IndexError: the network has no layer ``i``.
        """
        n = len(self.layers)
        if not -n <= i < n:
            raise IndexError(f"layer index {i} is out of range for a network of {n} layers")
        layer = self.layers[i]
        if not isinstance(layer, cls):
            raise TypeError(
                f"layers.{i % n} is a {type(layer).__name__}, expected a {cls.__name__}"
            )
        return layer

    @property
    def layout(self) -> Layout:
        """The flat layout of the network's leaves (computed once, then kept)."""
        lay = self._layout
        if lay is None:
            lay = Layout(self)
            object.__setattr__(self, "_layout", lay)
        return lay

    @property
    def flat(self) -> FloatArray:
        """All leaves as one read-only 1-D array, in :func:`fnn.tree.leaves` order: the
        buffer the leaves view (no copy) for networks made by fnn, else a new array."""
        f = self._flat
        if f is None:
            f = tree.ravel(self)
            if not f.flags.writeable:
                object.__setattr__(self, "_flat", f)
            else:
                tree.read_only(f)
        return f

    def with_flat(self, flat: FloatArray) -> Network:
        """A network of this structure whose leaves are views of ``flat`` (a fresh 1-D
        array of ``layout.size`` elements, made read-only here and never written again)."""
        return from_flat(self, flat)

    @property
    def shapes(self) -> tuple[Shape, ...]:
        """The per-sample output shape of each layer."""
        plan = self._plan
        assert plan is not None
        return plan.shapes

    @property
    def n_features(self) -> int:
        """Input features expected: the size of one sample (``prod(input_shape)``)."""
        shape = self.input_shape
        assert shape is not None
        if None in shape:
            raise ValueError(f"a sequence network's samples have no fixed size: {shape}")
        return int(np.prod(for_layers(shape)))

    @property
    def n_outputs(self) -> int:
        """Output units (logits per sample, or per position for per-position logits)."""
        k = self.shapes[-1][-1]
        assert k is not None  # only a time axis may be None
        return k

    def output_bytes(self, n: int, T: int = 1) -> int:
        """Bytes of all the layers' outputs on a batch of ``n`` samples (of ``T``
        positions, for the outputs with a time axis): how large a step's activations
        are."""
        plan = self._plan
        assert plan is not None
        fixed, per_position = plan.output_elements
        return n * (fixed + per_position * T) * self.dtype.itemsize

    @property
    def per_position(self) -> bool:
        """Whether the network ends in per-position logits (n, T, n_outputs)."""
        plan = self._plan
        assert plan is not None
        return plan.per_position

    @property
    def input_ids(self) -> int | None:
        """``vocab_size`` when the network takes integer token ids (its first layer has
        ``input_ids``, as :class:`fnn.Embedding`), else None (float inputs)."""
        plan = self._plan
        assert plan is not None
        return plan.input_ids

    @property
    def dtype(self) -> np.dtype[Any]:
        """The float dtype of every parameter."""
        return self.layout.dtype

    @property
    def has_dropout(self) -> bool:
        """Whether training draws random numbers (dropout with a positive rate)."""
        plan = self._plan
        assert plan is not None
        return plan.needs_rng


def _layer_label(layer: object, out_shape: Shape) -> str:
    """``Dense(2->16, relu)``-style: the kind, the output shape, the activation."""
    act = getattr(layer, "activation", None)
    name = getattr(act, "name", None)
    n_in = getattr(layer, "n_in", None)
    shape = f"{n_in}->{out_shape[0]}" if n_in is not None and len(out_shape) == 1 else ""
    inner = ", ".join(x for x in (shape, None if name in (None, "identity") else name) if x)
    return f"{type(layer).__name__}({inner})"


def _restore(
    layers: tuple[Layer, ...], loss: _losses.Loss, input_shape: tuple[int, ...] | None
) -> Network:
    return pack(Network(layers=layers, loss=loss, input_shape=input_shape))


def from_flat(template: Network, flat: FloatArray, *, writable: bool = False) -> Network:
    """A network of ``template``'s structure whose leaves are views of ``flat`` (1-D,
    ``template.layout.size`` elements), built without re-validation. ``flat`` is made
    read-only (the caller must not keep a writable alias) unless ``writable``, which is
    for private buffers that training writes in place."""
    lay = template.layout
    net: Network = lay.build(flat, writable=writable)
    # the owner stays private: callers get a view, whose flag cannot be set again
    set_cached(net, template, None if writable else flat.view())
    return net


def set_cached(net: Network, template: Network, flat: FloatArray | None) -> None:
    """Set the cached fields of a network fnn built from ``template``'s layout: the
    layout, the flat buffer its leaves view (None when private) and the plan."""
    _SET_LAYOUT(net, template.layout)  # the slots' own setters: C calls, every step
    _SET_FLAT(net, flat)
    _SET_PLAN(net, template._plan)


_SET_LAYOUT, _SET_FLAT, _SET_PLAN = (
    getattr(Network, name).__set__ for name in ("_layout", "_flat", "_plan")
)


def pack(net: Network) -> Network:
    """A copy of ``net`` whose leaves are read-only views of one new contiguous buffer."""
    return from_flat(net, np.array(tree.ravel(net), copy=True))


@attrs.frozen(eq=False)
class NetworkCache:
    """What :func:`forward` keeps for :func:`backward`.

    Attributes:
        layers: one cache per layer.
        logits: the last layer's output (n, n_outputs), before the output activation.
        loss: the network's loss (static), whose output activation gives :attr:`out`.
        network_key: the structure of the network that made it (static), so
            :func:`backward` refuses a cache of another network.
    """

    layers: tuple[LayerCache, ...]
    logits: FloatArray
    loss: _losses.Loss = attrs.field(metadata=STATIC_META)
    network_key: Any = attrs.field(default=None, metadata=STATIC_META, repr=False)

    @property
    def out(self) -> FloatArray:
        """The output activation of the logits (n, n_outputs), a fresh array."""
        out = self.loss.link(self.logits)
        return out.copy() if np.may_share_memory(out, self.logits) else out


_SET_CACHE_LAYERS, _SET_CACHE_LOGITS, _SET_CACHE_LOSS, _SET_CACHE_KEY = (
    getattr(NetworkCache, name).__set__ for name in ("layers", "logits", "loss", "network_key")
)


def new_cache(
    layers: tuple[LayerCache, ...], logits: FloatArray, loss: _losses.Loss, key: Any
) -> NetworkCache:
    """A :class:`NetworkCache` made without attrs' ``__init__`` (every step of the pure
    loop): the layers' caches, the logits (n, n_outputs), the loss and the structure key
    of the network that made it."""
    cache: NetworkCache = object.__new__(NetworkCache)
    _SET_CACHE_LAYERS(cache, layers)
    _SET_CACHE_LOGITS(cache, logits)
    _SET_CACHE_LOSS(cache, loss)
    _SET_CACHE_KEY(cache, key)
    return cache


def check_network(params: object, name: str = "params") -> Network:
    """``params`` if it is a :class:`Network`; TypeError telling the fix otherwise."""
    if isinstance(params, Network):
        return params
    if isinstance(params, Architecture):
        raise TypeError(
            f"{name} must be an fnn.Network, got an Architecture: call "
            "fnn.init(arch, rng=...) first to draw its parameters"
        )
    raise TypeError(f"{name} must be an fnn.Network, got {type(params).__name__}")


def check_input(params: Network, X: ArrayLike) -> FloatArray:
    """``X`` validated for ``params`` (shape, finiteness) and in its dtype."""
    shape = params.input_shape
    assert shape is not None
    Xa = check_X(X, input_shape=shape, dtype=params.dtype, ids=params.input_ids)
    if None in shape:
        # a time axis of any length: the layers check this batch's length (a positional
        # embedding's max_len) before any work, a few calls of their output_shape
        current = (Xa.shape[1], *for_layers(shape)[1:])
        for i, layer in enumerate(params.layers):
            current = output_shape_of(layer, current, f"layers.{i}")
    return Xa


def prepare_targets(params: Network, y: Any, n: int, T: int) -> FloatArray:
    """``y`` validated and prepared for ``params``' loss, for a batch of ``n`` samples
    whose per-position logits have ``T`` positions (ignored for vector outputs):
    ``loss.targets`` for logits (n, k), ``loss.sequence_targets`` (targets (n, T)) for
    per-position logits (n, T, k)."""
    if params.per_position:
        return params.loss.sequence_targets(y, (n, T, params.n_outputs), params.dtype)
    return params.loss.targets(y, n, params.n_outputs, params.dtype)


def output_length(params: Network, X: np.ndarray[Any, Any]) -> int:
    """The number of positions of the logits for a validated batch ``X`` (n, T, ...):
    a fixed time axis, or ``T`` of the input for one of any length (0 for vector
    outputs)."""
    if not params.per_position:
        return 0
    T = params.shapes[-1][0]
    return int(X.shape[1]) if T is None else int(T)
