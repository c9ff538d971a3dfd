"""Networks: a sequence of layers ending in logits, and the loss that pairs with them.

The four functions of fnn live here:

- :func:`init` turns an architecture (from :func:`mlp`) into a :class:`Network`;
- :func:`forward` computes the output (after the output activation) and a cache;
- :func:`backward` computes the gradient of the network's loss, as a :class:`Network`;
- :func:`predict` is inference: no dropout, no cache.

(``update`` is in :mod:`fnn.optim`.) A network is a frozen attrs value; its arrays are
read-only views of one contiguous buffer (see :func:`fnn.tree.pack`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, cast

import attrs
import numpy as np

from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn import losses as _losses
from fnn import tree
from fnn._diverged import NonFinite
from fnn._types import ArrayLike, BoolArray, FloatArray, RNGLike, Shape
from fnn._validation import (
    as_generator,
    as_list,
    check_sample_weight,
    check_shape,
    check_X,
    float_dtype,
)
from fnn.layers.base import (
    FRESH,
    PREDICT,
    TRAINING,
    Context,
    Layer,
    LayerCache,
    Workspace,
    backward_kernel,
    context,
    forward_kernel,
    input_ids_of,
    input_shape_of,
    output_shape_of,
    seal,
    working_size_of,
)
from fnn.layers.dropout import Dropout
from fnn.layout import Layout, StructureKey
from fnn.specs import (
    ActivationSpec,
    BatchNormSpec,
    DenseSpec,
    DropoutSpec,
    LayerSpec,
    default_initializer,
    init_chain,
    spec_chain_shape,
)
from fnn.tree import STATIC_META, leaves_with_paths

__all__ = [
    "ActivationSpec",
    "Architecture",
    "BatchNormSpec",
    "DenseSpec",
    "DropoutSpec",
    "GradientSkip",
    "LayerSpec",
    "Network",
    "NetworkCache",
    "backward",
    "forward",
    "init",
    "loss",
    "mlp",
    "pack",
    "predict",
    "sequential",
    "value_and_grad",
]


# --- architectures -----------------------------------------------------------------


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
        shape = None if self.input_shape is None else _for_layers(self.input_shape)
        layers, _ = init_chain(self.layers, rng=rng, dtype=self.dtype, input_shape=shape)
        return Network(layers=layers, loss=self.loss, input_shape=self.input_shape)


def _per_layer(value: Any, n: int, name: str, scalar_types: tuple[type, ...]) -> list[Any]:
    if isinstance(value, scalar_types) or value is None:
        return [value] * n
    if isinstance(value, Sequence):
        if len(value) != n:
            raise ValueError(
                f"{name} has {len(value)} entries but the network has {n} hidden layers"
            )
        return list(value)
    return [value] * n


def mlp(
    sizes: Sequence[int],
    *,
    hidden: _activations.Activation | str | Sequence[_activations.Activation | str] = "relu",
    output: _losses.OutputName = "identity",
    loss: _losses.Loss | str | None = None,
    initializer: _initializers.Initializer
    | str
    | Sequence[_initializers.Initializer | str]
    | None = None,
    output_initializer: _initializers.Initializer | str = "glorot_uniform",
    dropout: float | Sequence[float] = 0.0,
    norm: Literal["batch"] | None = None,
    dtype: Any = np.float64,
) -> Architecture:
    """Describe a multilayer perceptron.

    Args:
        sizes: ``[n_features, hidden_1, ..., n_outputs]``, each >= 1.
        hidden: the hidden activation, or one per hidden layer.
        output: ``"identity"``, ``"sigmoid"`` or ``"softmax"``; with ``loss`` it forms a
            named pair (identity + mse/mae/huber, sigmoid + binary cross-entropy,
            softmax + cross-entropy). The default loss is the output's natural one.
        loss: a loss name or value, or None for the output's default.
        initializer: hidden weights' initialiser, or one per hidden layer; default He
            normal for ReLU-like activations and Glorot uniform otherwise.
        output_initializer: the output layer's initialiser.
        dropout: dropout rate after each hidden layer, or one per hidden layer.
        norm: None (the default) for ``Dense(activation)`` hidden blocks; ``"batch"``
            builds each hidden block as ``Dense`` (identity) -> :class:`BatchNorm` ->
            :class:`Activation` -> ``Dropout`` (when set), the order of the batch-norm
            paper and of PyTorch models.
        dtype: float32 or float64.

    Returns:
        An :class:`Architecture` for :func:`init`.
    """
    sizes = as_list(sizes, "sizes", "layer widths")
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least 2 entries (inputs, outputs), got {sizes}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise TypeError(f"sizes[{i}] must be an int, got {type(s).__name__}")
        if s < 1:
            raise ValueError(f"layer width must be >= 1, got sizes[{i}]={s}")
    the_loss = _output_loss(output, loss, sizes[-1])
    n_hidden = len(sizes) - 2
    acts = [
        _activations.get(a)
        for a in _per_layer(hidden, n_hidden, "hidden", (str, _activations.Activation))
    ]
    inits = _per_layer(initializer, n_hidden, "initializer", (str, _initializers.Initializer))
    rates = [float(r) for r in _per_layer(dropout, n_hidden, "dropout", (int, float))]
    if norm not in (None, "batch"):
        raise ValueError(f"norm must be None or 'batch', got {norm!r}")
    specs: list[LayerSpec] = []
    for i in range(n_hidden):
        ini = default_initializer(acts[i]) if inits[i] is None else inits[i]
        if norm == "batch":
            specs.append(DenseSpec(int(sizes[i]), int(sizes[i + 1]), "identity", ini))
            specs.append(BatchNormSpec())
            specs.append(ActivationSpec(acts[i]))
        else:
            specs.append(DenseSpec(int(sizes[i]), int(sizes[i + 1]), acts[i], ini))
        if rates[i] != 0.0:
            Dropout(rate=rates[i])  # validates the rate now, when the object is built
            specs.append(DropoutSpec(rates[i]))
    specs.append(DenseSpec(int(sizes[-2]), int(sizes[-1]), "identity", output_initializer))
    return Architecture(layers=tuple(specs), loss=the_loss, dtype=dtype)


def _output_loss(output: str, loss: _losses.Loss | str | None, n_outputs: int) -> _losses.Loss:
    """The loss of an output activation (its natural one when ``loss`` is None),
    checked to pair with it."""
    if output not in _losses.DEFAULT_FOR_OUTPUT:
        raise ValueError(f"unknown output {output!r}; expected 'identity', 'sigmoid' or 'softmax'")
    the_loss = _losses.DEFAULT_FOR_OUTPUT[output]() if loss is None else _losses.get(loss)
    if the_loss.output != output:
        raise ValueError(
            f"loss {the_loss.name!r} pairs with output {the_loss.output!r}, not {output!r}"
        )
    if output == "softmax" and n_outputs < 2:
        raise ValueError("a softmax output needs at least 2 units; use output='sigmoid'")
    return the_loss


def sequential(
    input_shape: int | Sequence[int | None],
    layers: Sequence[LayerSpec],
    *,
    output: _losses.OutputName = "identity",
    loss: _losses.Loss | str | None = None,
    dtype: Any = np.float64,
) -> Architecture:
    """Describe a network as a stack of layer specs (:mod:`fnn.specs`), sizes inferred.

    Args:
        input_shape: the per-sample input shape: ``(n_features,)`` (or an int) for
            vectors, ``(height, width, channels)`` for images (channels last).
        layers: specs from :mod:`fnn.specs` (``conv2d``, ``max_pool2d``, ``flatten``,
            ``dense``, ...); the last gives the logits, shape ``(n_outputs,)``.
        output: ``"identity"``, ``"sigmoid"`` or ``"softmax"``, as in :func:`mlp`.
        loss: the loss, paired with ``output`` (its natural one by default).
        dtype: float32 or float64.

    Returns:
        An :class:`Architecture` for :func:`init`.

    Raises:
        ValueError: at once, naming the layer and the shapes, when a layer cannot take
            the shape before it (a kernel larger than its padded input, a dense layer
            after a 4-D output without ``flatten()``), or the last shape is not a vector;
            when ``input_shape`` is ``()`` or no spec has parameters.
        TypeError: ``input_shape`` or ``layers`` is not a sequence (or an int).
    """
    if input_shape is None:
        as_list(input_shape, "input_shape", "positive ints")  # TypeError naming it
    shape = _to_shape(input_shape)
    assert shape is not None
    specs = tuple(as_list(layers, "layers", "layer specs"))
    if not specs:
        raise ValueError("sequential needs at least one layer spec")
    current = spec_chain_shape(specs, _for_layers(shape), "layers")
    if len(current) not in (1, 2):
        raise ValueError(
            f"the last layer gives outputs of shape {current}; a network ends in logits of "
            "shape (n_outputs,) or per-position logits (T, n_outputs): add flatten() or "
            "global_avg_pool2d() and a dense layer"
        )
    if not any(getattr(spec, "has_parameters", True) for spec in specs):
        raise ValueError(
            f"a network needs at least one layer with parameters, but none of "
            f"{', '.join(type(s).__name__ for s in specs)} has any: add one such as "
            f"fnn.specs.dense({current[-1]})"
        )
    the_loss = _output_loss(output, loss, current[-1])
    return Architecture(layers=specs, loss=the_loss, dtype=dtype, input_shape=shape)


# --- networks ----------------------------------------------------------------------


def _to_layers(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    if isinstance(layers, Architecture):
        raise TypeError(
            "layers must be a sequence of layers; to build from an Architecture "
            "call fnn.init(arch, rng=...)"
        )
    return tuple(layers)


def _for_layers(shape: Shape) -> tuple[int, ...]:
    """``shape`` as the layer protocol types it (``output_shape``, specs): a None time
    axis travels through as is, and layers read it as "any length"."""
    return cast(tuple[int, ...], shape)


def _to_shape(shape: Any) -> Shape | None:
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
    input_shape: Shape | None = attrs.field(default=None, converter=_to_shape, metadata=STATIC_META)
    # cached: the flat layout, the contiguous buffer the leaves view (if any), what the
    # structure fixes (shapes, kernels); not part of the tree
    _layout: Layout | None = attrs.field(init=False, default=None, repr=False)
    _flat: FloatArray | None = attrs.field(init=False, default=None, repr=False)
    _plan: _Plan | None = attrs.field(init=False, default=None, repr=False)

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
            shape = output_shape_of(layer, _for_layers(shape), f"layers.{i}")
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
        object.__setattr__(self, "_plan", _Plan.of(self.layers, tuple(shapes), first))
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
        return int(np.prod(_for_layers(shape)))

    @property
    def n_outputs(self) -> int:
        """Output units (logits per sample, or per position for per-position logits)."""
        k = self.shapes[-1][-1]
        assert k is not None  # only a time axis may be None
        return k

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


@attrs.frozen(eq=False)
class _Plan:
    """What a network's structure fixes, computed when it is built and shared by every
    network of that structure (its gradients, its updated parameters).

    Attributes:
        shapes: each layer's per-sample output shape.
        forward: ``forward(layers, X, ctx, workspaces) -> (out, caches)``, the layers'
            forward kernels in order.
        backward: ``backward(layers, caches, d, grad_layers, ctx, workspaces)``, their
            backward kernels in reverse order, down to the first layer with leaves
            (which is not asked for an input gradient; the layers below it are not run).
        needs_rng: whether training draws random numbers (a layer's ``needs_rng``).
        per_position: whether the logits are per position (the last shape is (T, k)).
        input_ids: the first layer's vocabulary size when it takes token ids, else None.
        (Both read every step by the pure functions' checks: kept here, not recomputed.)
    """

    shapes: tuple[tuple[int, ...], ...]
    forward: Callable[..., tuple[FloatArray, tuple[LayerCache, ...]]]
    backward: Callable[..., None]
    needs_rng: bool
    per_position: bool
    input_ids: int | None
    # the backward passes that skip unused gradients, by mask (see gradient_skip)
    skips: dict[bytes, GradientSkip | None] = attrs.field(factory=dict)

    @staticmethod
    def of(layers: Sequence[Layer], shapes: tuple[tuple[int, ...], ...], first: int) -> _Plan:
        forward, backward = _compile_passes(layers, first)
        return _Plan(
            shapes=shapes,
            forward=forward,
            backward=backward,
            needs_rng=any(getattr(layer, "needs_rng", False) for layer in layers),
            per_position=len(shapes[-1]) == 2,
            input_ids=input_ids_of(layers[0]),
        )


def _compile_passes(
    layers: Sequence[Layer], first: int
) -> tuple[Callable[..., tuple[FloatArray, tuple[LayerCache, ...]]], Callable[..., None]]:
    """The forward and backward passes of a network's structure as straight-line
    Python: one call of each layer's kernel (looked up once, from its class), with no
    loop, zip or list in between.

    Measured against a plain loop over the same kernels (issue 19; alternating fresh
    processes on a busy 2-core machine, benchmarks/speed.py workloads): the loop made
    the step of ``fit`` about 3-5% slower on tiny (about 1.5 us of 33 us) and the same
    within noise on mnist-mlp, while generating the code is most of the cost of building
    a ``Network`` (170 us against 34 us with the loop). Kept for the step: the build cost
    is paid when a network is built from layers; the networks fnn makes from another of
    the same structure (updates, gradients: :func:`from_flat`) share its plan."""
    n = len(layers)
    consts: dict[str, Any] = {"_failed": _layer_failed, "_no_d_in": _no_d_in}
    for i, layer in enumerate(layers):
        consts[f"f{i}"] = forward_kernel(type(layer))
        consts[f"b{i}"] = backward_kernel(type(layer))
    fwd = ["def forward(L, h, ctx, ws):", "    i = 0", "    try:"]
    for i in range(n):
        fwd.append(f"        h, c{i} = f{i}(L[{i}], h, ctx, ws[{i}])")
        fwd.append(f"        i = {i + 1}")
    fwd.append("    except ValueError as e:")
    fwd.append("        _failed(L, i, e)")
    fwd.append(f"    return h, ({''.join(f'c{i}, ' for i in range(n))})")
    bwd = ["def backward(L, C, d, G, ctx, ws):"]
    for i in range(n - 1, first, -1):
        bwd.append(f"    d = b{i}(L[{i}], C[{i}], d, G[{i}], ctx, ws[{i}], True)")
        bwd.append(f"    if d is None: _no_d_in(L, {i})")
    bwd.append(f"    b{first}(L[{first}], C[{first}], d, G[{first}], ctx, ws[{first}], False)")
    src = "\n".join(fwd) + "\n" + "\n".join(bwd) + "\n"
    exec(compile(src, "<fnn.network passes>", "exec"), consts)  # code written here, not read
    return consts["forward"], consts["backward"]


def _layer_failed(layers: Sequence[Layer], i: int, e: ValueError) -> None:
    """Re-raise a layer's ValueError naming the layer (``layers.i (Kind): ...``)."""
    msg = str(e)
    if not msg.startswith("layers."):
        msg = f"layers.{i} ({type(layers[i]).__name__}): {msg}"
    raise ValueError(msg) from None


def _no_d_in(layers: Sequence[Layer], i: int) -> None:
    raise TypeError(
        f"layers.{i} ({type(layers[i]).__name__}): backward_into returned None, but the "
        "layer below needs the input gradient (need_d_in=True)"
    )


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
    _set_cached(net, template, None if writable else flat.view())
    return net


def _set_cached(net: Network, template: Network, flat: FloatArray | None) -> None:
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


def init(architecture: Architecture, *, rng: RNGLike) -> Network:
    """Draw a network's initial parameters.

    Args:
        architecture: from :func:`mlp` or :func:`sequential`.
        rng: a ``np.random.Generator`` or an int seed; the same seed gives the same bits.

    Returns:
        A :class:`Network` whose arrays are read-only views of one contiguous buffer.
    """
    if not isinstance(architecture, Architecture):
        raise TypeError(
            f"architecture must be an fnn.Architecture (from fnn.mlp), got "
            f"{type(architecture).__name__}"
        )
    gen = as_generator(rng)
    return pack(architecture.build(gen))


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
        current = (Xa.shape[1], *_for_layers(shape)[1:])
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


def forward_pass(
    params: Network, X: FloatArray, ctx: Context, workspaces: Sequence[Workspace]
) -> tuple[FloatArray, tuple[LayerCache, ...]]:
    """The layers' forward kernels in order on a validated batch: ``(logits, caches)``.
    ``workspaces`` holds one workspace per layer (may repeat one)."""
    plan = params._plan
    assert plan is not None
    return plan.forward(params.layers, X, ctx, workspaces)


def backward_pass(
    params: Network,
    caches: Sequence[LayerCache],
    d: FloatArray,
    grads: Network,
    ctx: Context,
    workspaces: Sequence[Workspace],
    skip: GradientSkip | None = None,
) -> None:
    """The layers' backward kernels in reverse order from ``d = dL/dlogits``, writing
    every leaf of ``grads`` (writable views of a flat buffer). No input gradient is
    computed below the first layer with leaves; with ``skip``, below the first layer
    with a needed leaf (see :func:`gradient_skip`)."""
    if skip is not None:
        skip.backward(params.layers, caches, d, grads.layers, ctx, workspaces)
        return
    plan = params._plan
    assert plan is not None
    plan.backward(params.layers, caches, d, grads.layers, ctx, workspaces)


@attrs.frozen(eq=False)
class GradientSkip:
    """A backward pass that leaves out the gradients a training step does not read
    (from :func:`gradient_skip`).

    Attributes:
        backward: ``backward(layers, caches, d, grad_layers, ctx, workspaces)``, like
            the plan's, from the last layer down to ``first``.
        first: the lowest layer run (it computes no input gradient); the layers below
            it get no backward kernel call, only their new state.
    """

    backward: Callable[..., None]
    first: int


def gradient_skip(params: Network, unused: BoolArray | None) -> GradientSkip | None:
    """The backward pass for a step whose update reads no gradient where ``unused``
    (P,) (flat, ``params.layout`` order; :func:`fnn.optim.transforms.unused_gradient`)
    is True, or None to run the full one (``unused`` None or skipping nothing).

    A leaf is skipped when all its entries are unused; a layer is run when it has a
    needed trainable leaf or one above it does. The layers below the lowest such layer
    are not run: a layer there with state leaves (batch norm's running statistics)
    writes its new state with its optional ``state_into(cache, grads)``, or, without
    one, the pass goes down to it. Every skipped leaf's gradient is zero. The gradients
    computed are the full pass's bits: the same kernels run on the same inputs.
    Computed once per network structure and mask, then kept."""
    if unused is None:
        return None
    plan = params._plan
    assert plan is not None
    key = np.packbits(unused).tobytes()
    if key not in plan.skips:
        plan.skips[key] = _build_skip(params, unused)
    return plan.skips[key]


def _build_skip(params: Network, unused: BoolArray) -> GradientSkip | None:
    layers = params.layers
    n = len(layers)
    trainable = tree.trainable_mask(params)
    needed = [False] * n
    has_state = [False] * n
    zero: list[list[int]] = [[] for _ in range(n)]  # per layer: skipped leaf indices
    counts = [0] * n
    lo = 0  # the leaf's offset in the flat layout (leaves in tree order)
    for path, leaf in leaves_with_paths(params):
        i = int(path.split(".")[1])  # paths are "layers.<i>...."
        j, counts[i] = counts[i], counts[i] + 1
        size = int(np.size(leaf))
        if not trainable[path]:
            has_state[i] = True
        elif unused[lo : lo + size].all():
            zero[i].append(j)
        else:
            needed[i] = True
        lo += size
    first = next((i for i in range(n) if needed[i]), n)
    hooks: list[tuple[int, Callable[..., None]]] = []
    for i in range(first - 1, -1, -1):
        if not has_state[i]:
            continue
        hook = getattr(type(layers[i]), "state_into", None)
        if hook is None:
            first = i  # no way to get its new state but its backward kernel
            hooks = []  # the layers above it run their backward kernels
        else:
            hooks.append((i, hook))
    default = next(i for i in range(n) if counts[i])  # the plan's lowest layer
    if first == default and not any(zero):
        return None  # the full pass: nothing skipped
    kernels: list[Callable[..., FloatArray | None]] = []
    for i, layer in enumerate(layers):
        # a frozen layer between trained ones passes the gradient down, computing its
        # input gradient alone when it can (an optional input_gradient_into)
        only_d_in = getattr(type(layer), "input_gradient_into", None)
        if i > first and zero[i] and not needed[i] and not has_state[i] and only_d_in:
            kernels.append(_input_gradient_kernel(only_d_in))
        else:
            kernels.append(backward_kernel(type(layer)))
    zeroed = [(i, tuple(z)) for i, z in enumerate(zero) if z]

    def backward(
        L: Sequence[Layer],
        C: Sequence[LayerCache],
        d: FloatArray,
        G: Sequence[Layer],
        ctx: Context,
        ws: Sequence[Workspace],
    ) -> None:
        for i in range(n - 1, first, -1):
            d_in = kernels[i](L[i], C[i], d, G[i], ctx, ws[i], True)
            if d_in is None:
                _no_d_in(L, i)
                return
            d = d_in
        if first < n:
            kernels[first](L[first], C[first], d, G[first], ctx, ws[first], False)
        for i, hook in hooks:
            hook(L[i], C[i], G[i])
        for i, idx in zeroed:
            leaves = tree.leaves(G[i])
            for j in idx:
                leaves[j][...] = 0

    return GradientSkip(backward=backward, first=first)


def _input_gradient_kernel(
    method: Callable[..., FloatArray],
) -> Callable[..., FloatArray | None]:
    """A backward kernel that runs a layer's ``input_gradient_into`` (no parameter
    gradients; the caller zeroes them)."""

    def kernel(
        layer: Layer,
        cache: LayerCache,
        d: FloatArray,
        grads: Layer,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool,
    ) -> FloatArray | None:
        return method(layer, cache, d, ctx, ws)

    return kernel


def _rng_for(params: Network, train: bool, rng: RNGLike | None) -> np.random.Generator | None:
    gen = None if rng is None else as_generator(rng)
    if train and gen is None and params.has_dropout:
        raise ValueError("rng is required when train=True and the network has dropout")
    return gen


def forward(
    params: Network, X: ArrayLike, *, train: bool = False, rng: RNGLike | None = None
) -> tuple[FloatArray, NetworkCache]:
    """Run the network on a batch.

    Args:
        params: the network.
        X: inputs (n_samples, *input_shape), e.g. (n_samples, n_features); converted
            once to the network's dtype.
        train: training mode (dropout active, batch statistics used). Needs ``rng`` if
            the network has dropout.
        rng: a Generator or int seed for dropout masks.

    Returns:
        ``(out, cache)``: ``out`` (n_samples, n_outputs) after the output activation
        (probabilities for sigmoid/softmax outputs), a fresh array the caller owns, and
        the cache for :func:`backward` (read-only leaves).
    """
    params = check_network(params)
    Xa = check_input(params, X)
    if isinstance(X, np.ndarray) and np.may_share_memory(Xa, X):
        Xa = Xa.copy()  # the cache keeps it: a later write into X must not change it
    ctx = context(train, _rng_for(params, train, rng))
    logits, caches = forward_pass(params, Xa, ctx, [FRESH] * len(params.layers))
    out = params.loss.link(logits)
    if np.may_share_memory(out, logits):
        out = out.copy()
    seal(caches)
    # the record made without attrs' __init__ (every step of the pure loop)
    cache: NetworkCache = object.__new__(NetworkCache)
    _SET_CACHE_LAYERS(cache, caches)
    _SET_CACHE_LOGITS(cache, logits)
    _SET_CACHE_LOSS(cache, params.loss)
    _SET_CACHE_KEY(cache, params.layout.key)
    return out, cache


def check_cache(params: Network, cache: object) -> NetworkCache:
    """``cache`` if it comes from :func:`forward` of a network of ``params``' structure."""
    if not isinstance(cache, NetworkCache):
        raise TypeError(
            f"cache must be an fnn.NetworkCache from forward, got {type(cache).__name__}"
        )
    key = params.layout.key
    if cache.network_key is not key and cache.network_key != key:
        where = (
            key.difference(cache.network_key)
            if isinstance(cache.network_key, StructureKey)
            else "it was not made by fnn.forward"
        )
        raise ValueError(
            f"cache does not come from a forward pass of this network: {where} "
            "(this network, then the cache's)"
        )
    return cache


def batch_gradient(
    params: Network,
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    ctx: Context,
    workspaces: Sequence[Workspace],
    grads: Network,
    *,
    out: FloatArray | None = None,
    scale: float | None = None,
    check: bool = False,
    skip: GradientSkip | None = None,
) -> float:
    """One batch's loss, gradient and new layer state: the training step every way of
    training runs (``value_and_grad``, ``train_step``, ``fit``, ``fnn.distributed.fit``).

    The layers' forward kernels on the validated batch ``X`` (n, *input_shape), then
    :func:`gradient_from_logits`. Returns the batch's mean loss. ``skip``: leave out
    the gradients the step does not read (:func:`gradient_skip`).
    """
    plan = params._plan
    assert plan is not None
    logits, caches = plan.forward(params.layers, X, ctx, workspaces)
    return gradient_from_logits(
        params, logits, caches, y, w, ctx, workspaces, grads, True, out, scale, check, skip
    )


def gradient_from_logits(
    params: Network,
    logits: FloatArray,
    caches: Sequence[LayerCache],
    y: FloatArray,
    w: FloatArray | None,
    ctx: Context,
    workspaces: Sequence[Workspace],
    grads: Network,
    value: bool = True,
    out: FloatArray | None = None,
    scale: float | None = None,
    check: bool = False,
    skip: GradientSkip | None = None,
) -> float:
    """The loss of a forward pass's ``logits`` (n, n_outputs) or (n, T, n_outputs) for
    prepared targets ``y`` and weights ``w`` (n,), and the backward pass from its
    gradient into ``grads`` (writable views of a flat buffer: every leaf written, the
    non-trainable ones with the layers' new state). Returns the loss (NaN when not
    ``value``: then only the loss gradient is computed).

    ``out``, if given, receives the batch's predictions (the output activation). A
    data-parallel shard passes ``scale``, its share of the global batch's weight (the
    loss gradient is scaled by it); an empty shard, or one with nothing counted
    (``scale == 0``), adds nothing. ``check``: raise :class:`fnn._diverged.NonFinite`,
    before the backward pass, when the loss is not finite.
    """
    loss_fn = params.loss
    if logits.shape[0] == 0 or scale == 0:
        v, d = 0.0, np.zeros_like(logits)
    elif value:
        v, d = loss_fn.value_and_grad(logits, y, w)  # one pass for both
    else:
        v, d = float("nan"), loss_fn.grad(logits, y, w)  # the gradient alone
    if out is not None:
        out[...] = loss_fn.link(logits)
    if check and not math.isfinite(v):
        raise NonFinite("loss", v)
    if scale is not None:
        d *= d.dtype.type(scale)
    if skip is not None:
        skip.backward(params.layers, caches, d, grads.layers, ctx, workspaces)
        return v
    plan = params._plan
    assert plan is not None
    plan.backward(params.layers, caches, d, grads.layers, ctx, workspaces)
    return v


def fresh_gradient(params: Network) -> tuple[FloatArray, Network, list[FloatArray]]:
    """A fresh flat gradient buffer (uninitialised; a backward pass writes all of it), a
    tree of ``params``' structure whose leaves are writable views of it (no cached
    fields set), and the list of those leaves."""
    lay = params.layout
    G = np.empty(lay.size, lay.dtype)
    grads, views = lay.build_with_views(G)
    return G, grads, views


def _sealed_gradient(
    params: Network, gradient: tuple[FloatArray, Network, list[FloatArray]]
) -> Network:
    """A :func:`fresh_gradient` made read-only, as a :class:`Network` with ``params``'
    cached fields."""
    G, grads, views = gradient
    tree.read_only(G)
    for v in views:
        tree.read_only(v)
    _set_cached(grads, params, G.view())
    return grads


def backprop_flat(
    params: Network, caches: Sequence[LayerCache], d: FloatArray, ctx: Context
) -> FloatArray:
    """The gradient from ``d = dL/dlogits`` as one fresh, writable flat vector in
    ``params.layout`` order."""
    G, grads, _ = fresh_gradient(params)
    backward_pass(params, caches, d, grads, ctx, [FRESH] * len(params.layers))
    return G


def backprop(params: Network, caches: Sequence[LayerCache], d: FloatArray, ctx: Context) -> Network:
    """Gradients as a fresh read-only :class:`Network` from ``d = dL/dlogits``."""
    gradient = fresh_gradient(params)
    backward_pass(params, caches, d, gradient[1], ctx, [FRESH] * len(params.layers))
    return _sealed_gradient(params, gradient)


def training_inputs(
    params: Network, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """``(X, y, w)`` validated and prepared for ``params`` (targets for its loss)."""
    Xa = check_input(params, X)
    ya = prepare_targets(params, y, Xa.shape[0], output_length(params, Xa))
    w = check_sample_weight(sample_weight, Xa.shape[0], params.dtype)
    return Xa, ya, w


def backward(
    params: Network, cache: NetworkCache, y: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> Network:
    """Gradient of the network's mean loss with respect to its parameters.

    Args:
        params: the network given to :func:`forward`.
        cache: the cache :func:`forward` returned.
        y: targets: (n,) or (n, 1) for one output; (n, k) for k outputs; integer labels
            (n,) or probabilities (n, k) for softmax cross-entropy.
        sample_weight: optional non-negative weights (n,); the loss is their weighted mean.

    Returns:
        A :class:`Network` of the same structure whose arrays are the gradients; its
        non-trainable leaves hold the layers' new state (updated running statistics
        after a training-mode forward), which :func:`fnn.update` takes over.
    """
    params = check_network(params)
    cache = check_cache(params, cache)
    n, T = cache.logits.shape[0], (cache.logits.shape[1] if cache.logits.ndim == 3 else 0)
    ya = prepare_targets(params, y, n, T)
    w = check_sample_weight(sample_weight, n, params.dtype)
    gradient = fresh_gradient(params)
    # the backward pass's temporaries are never handed out: no need to seal them
    fresh = [FRESH] * len(params.layers)
    gradient_from_logits(
        params, cache.logits, cache.layers, ya, w, TRAINING, fresh, gradient[1], value=False
    )
    return _sealed_gradient(params, gradient)


def value_and_grad(
    params: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    train: bool = False,
    rng: RNGLike | None = None,
) -> tuple[float, Network]:
    """``(loss, grads)`` for a batch: :func:`forward` then :func:`backward`."""
    params = check_network(params)
    Xa, ya, w = training_inputs(params, X, y, sample_weight)
    ctx = context(train, _rng_for(params, train, rng))
    gradient = fresh_gradient(params)
    value = batch_gradient(params, Xa, ya, w, ctx, [FRESH] * len(params.layers), gradient[1])
    return value, _sealed_gradient(params, gradient)


def loss(
    params: Network, X: ArrayLike, y: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> float:
    """The network's mean loss on ``(X, y)`` at inference (no dropout), a float."""
    params = check_network(params)
    Xa = check_input(params, X)
    logits = logits_of(params, Xa)
    n, T = logits.shape[0], (logits.shape[1] if logits.ndim == 3 else 0)
    ya = prepare_targets(params, y, n, T)
    w = check_sample_weight(sample_weight, n, params.dtype)
    return params.loss.value(logits, ya, w)


INFERENCE_BYTES = 16 << 20
"""The bytes one inference chunk may hold (see :func:`inference_rows`). Small chunks
are faster too: measured on examples/mnist_cnn.py's network (10,000 images, busy 2-core
machine), predict took about 1.1 s at 16 MiB against 3.6 s at 256 MiB, the chunk's
arrays staying in cache and in the allocator's reused memory."""
SEQUENCE_ROWS = 512


def inference_rows(params: Network) -> int:
    """Rows per chunk at inference: at most 4096, fewer when one sample's activations
    are large, so a forward pass over many images takes about ``INFERENCE_BYTES`` at a
    time, not gigabytes. Inference keeps no cache: while layer i runs, its input and
    its output and temporaries are alive, and the arrays of the layers before it are
    freed. So a sample costs the largest, over the layers, of the input's size plus the
    layer's optional ``working_size(input_shape)`` (elements per sample; a convolution
    counts its im2col matrix), else four times its output. A time axis of any length
    (None) is counted as ``SEQUENCE_ROWS`` positions."""
    shapes = params.shapes
    assert params.input_shape is not None
    inputs = (params.input_shape, *shapes[:-1])

    def concrete(s: Shape) -> tuple[int, ...]:
        return tuple(SEQUENCE_ROWS if d is None else d for d in s)

    elements = max(
        math.prod(concrete(shape_in))
        + working_size_of(layer, concrete(shape_in), concrete(shape_out))
        for layer, shape_in, shape_out in zip(params.layers, inputs, shapes, strict=True)
    )
    per_sample = elements * params.dtype.itemsize
    return max(16, min(4096, INFERENCE_BYTES // max(per_sample, 1)))


def _inference_pass(params: Network, X: FloatArray) -> FloatArray:
    """The layers' forward kernels at inference on a validated batch, each layer's cache
    dropped as soon as it returns, so a layer's arrays are freed once the next layer has
    read them. Returns the logits."""
    h = X
    layers = params.layers
    for i, layer in enumerate(layers):
        try:
            h, _ = forward_kernel(type(layer))(layer, h, PREDICT, FRESH)
        except ValueError as e:
            _layer_failed(layers, i, e)
    return h


def logits_of(params: Network, X: FloatArray) -> FloatArray:
    """Inference logits (n, n_outputs) of a validated batch (no dropout, running
    statistics), in chunks of :func:`inference_rows` rows, each chunk's logits written
    into one fresh array (no cache is kept, see :func:`_inference_pass`)."""
    rows = inference_rows(params)
    if len(X) <= rows:
        return _inference_pass(params, X)
    first = _inference_pass(params, X[:rows])
    out = np.empty((len(X), *first.shape[1:]), first.dtype)
    out[:rows] = first
    del first
    for i in range(rows, len(X), rows):
        out[i : i + rows] = _inference_pass(params, X[i : i + rows])
    return out


def predict(params: Network, X: ArrayLike) -> FloatArray:
    """Inference: the output (n_samples, n_outputs) after the output activation, with
    dropout off and no cache kept; a fresh array the caller owns."""
    params = check_network(params)
    Xa = check_input(params, X)
    logits = logits_of(params, Xa)
    out = params.loss.link(logits)
    if np.may_share_memory(out, Xa):
        out = out.copy()
    return out
