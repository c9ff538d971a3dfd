"""The layer protocol: each layer kind's math written once, as kernels.

A layer is a frozen attrs value: its arrays are leaves (trainable parameters, or
non-trainable state declared with :func:`fnn.tree.state_field`), its hyper-parameters
static fields. Its math lives in two *kernels*, which every way of running a network
calls — the pure functions (``fnn.forward``, ``fnn.backward``), ``fnn.train_step``,
``fnn.fit`` and ``fnn.distributed.fit``:

- ``forward_into(X, ctx, ws) -> (out, cache)``: ``X`` (batch, *in_shape) to ``out``
  (batch, *out_shape) and a typed, frozen cache for the backward pass.
- ``backward_into(cache, d_out, grads, ctx, ws, need_d_in) -> d_in | None``: write the
  gradient of the loss with respect to each leaf into the matching leaf of ``grads`` (a
  value of the layer's own type whose arrays are writable; a state leaf receives the
  layer's *new state*, e.g. updated running statistics), and return the gradient with
  respect to the input, ``d_in`` (batch, *in_shape), unless ``need_d_in`` is False.

Kernels take every array they write from the :class:`Workspace` ``ws`` (``ws.empty``):
the pure functions give a workspace of fresh arrays, ``fit`` one that keeps its arrays
from step to step, so the same code is pure for callers and allocation-free in a
training loop. A kernel never writes into ``X``, ``d_out``, the cache or the layer.
The :class:`Context` ``ctx`` says whether this is training, carries the random
generator, and, in data-parallel training, which rows of the global batch this process
holds and how to sum statistics across processes.

``output_shape(in_shape) -> out_shape`` gives the per-sample output shape (raising
ValueError naming the layer and shapes when the input does not fit), so networks infer
sizes and check shapes when they are built. ``config()`` describes the static
hyper-parameters for checkpoints.

:class:`LayerBase` gives every layer the per-layer pure functions ``forward`` and
``backward`` in terms of the kernels. Layers written to the earlier protocol (only
``forward(X, *, train, rng)``, ``backward(cache, d_out)``, ``n_in`` / ``n_out``) keep
working: :mod:`fnn._legacy` adapts them (and activations and losses of their earlier
protocols), refusing at class definition what it cannot adapt.
Each layer kind registers itself (:func:`register_layer`) where it is defined, with a
small random example; checkpoints rebuild layers from the registry, and the shared
property tests run over every registered kind.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

import attrs
import numpy as np

from fnn import _legacy, _scratch, tree
from fnn._registry import Registry
from fnn._types import FloatArray
from fnn.layout import Layout

__all__ = [
    "FRESH",
    "INFERENCE",
    "LAYERS",
    "PREDICT",
    "TRAINING",
    "Context",
    "Kept",
    "Layer",
    "LayerBase",
    "LayerCache",
    "LayerKind",
    "Workspace",
    "backward_kernel",
    "config_size",
    "context",
    "forward_kernel",
    "fresh_grads",
    "input_ids_of",
    "input_shape_of",
    "kind_of",
    "last_axis_shape",
    "min_batch_rows_of",
    "output_shape_of",
    "register_layer",
    "same_shape",
    "seal",
    "weight_paths",
    "working_size_of",
]


@attrs.frozen(eq=False)
class LayerCache:
    """Base class of the typed, frozen records a layer's forward pass keeps."""


@attrs.frozen(eq=False)
class Context:
    """What a kernel sees of the call.

    Attributes:
        train: training mode (dropout active, batch statistics used and updated).
        rng: the generator for random draws (dropout masks), or None.
        rows: in data-parallel training, ``(part, total)``: this process holds rows
            ``part`` of a global batch of ``total`` rows (random draws are made for the
            whole global batch and sliced, so every process uses the masks one process
            would). None otherwise.
        allreduce: in data-parallel training, sums an array over all processes
            (returns the sum; batch statistics use it). None in a single process.
        keep_cache: whether the caller keeps the cache for a backward pass. False in
            ``fnn.predict``, which drops it at once: a kernel may then leave out what
            only its backward pass reads (max pooling's argmax), the output the same.
    """

    train: bool = False
    rng: np.random.Generator | None = None
    rows: tuple[slice, int] | None = None
    allreduce: Callable[[FloatArray], FloatArray] | None = None
    keep_cache: bool = True

    def global_rows(self, n: int) -> int:
        """Rows in the whole (global) batch, given this process's ``n``."""
        return n if self.rows is None else self.rows[1]

    def draw_uniform(self, shape: tuple[int, ...], what: str) -> FloatArray:
        """Uniform [0, 1) draws of ``shape`` (batch first), made for the global batch
        and sliced to this process's rows in data-parallel training."""
        if self.rng is None:
            raise ValueError(f"rng is required for {what} when train=True")
        if self.rows is None:
            return self.rng.random(shape)
        part, total = self.rows
        return self.rng.random((total, *shape[1:]))[part]

    def sum_over_processes(self, a: FloatArray) -> FloatArray:
        """``a`` summed over the data-parallel processes (``a`` itself in one process)."""
        return a if self.allreduce is None else self.allreduce(a)


TRAINING = Context(train=True)
"""The context of a training-mode pass without random draws, in one process."""
INFERENCE = Context()
"""The context of an inference pass."""
PREDICT = Context(keep_cache=False)
"""The context of an inference pass whose caches are dropped (``fnn.predict``)."""


class Workspace:
    """Where kernels get the arrays they write. This one hands out fresh arrays (the
    pure functions' workspace): nothing is shared between calls."""

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> FloatArray:
        """A writable C-contiguous array of ``shape`` and ``dtype``, contents undefined.
        ``name`` tells a kernel's arrays apart (e.g. ``"out"``, ``"d_in"``)."""
        return np.empty(shape, dtype)

    def ones(self, name: str, n: int, dtype: np.dtype[Any]) -> FloatArray:
        """A read-only vector of ``n`` ones (for sums over the batch as products)."""
        key = (n, dtype)
        a = _ONES.get(key)
        if a is None:
            a = tree.read_only(np.ones(n, dtype))
            if len(_ONES) < 64:
                _ONES[key] = a
        return a

    def child(self, key: object) -> Workspace:
        """The workspace of an inner layer ``key`` (any hashable, e.g. ``("body", 0)``).

        A layer made of layers (:class:`fnn.Residual`) hands each inner layer its own
        child and never its own workspace: in ``fit`` a workspace keeps its arrays by
        name from step to step, so two inner layers sharing one would overwrite each
        other's outputs and caches. Fresh arrays need no separation: this workspace
        is its own child."""
        return self


_ONES: dict[tuple[int, np.dtype[Any]], FloatArray] = {}
FRESH = Workspace()
"""The workspace of fresh arrays."""


class Kept(Workspace):
    """A workspace that keeps its arrays from call to call, by name and shape: ``fit``
    gives each layer one, so a training step allocates nothing batch-sized. Arrays from
    one call are overwritten by the next: only for callers that use a step's results
    before the next step (never handed to a user)."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, tuple[int, ...], np.dtype[Any]], FloatArray] = {}
        self.last: dict[str, FloatArray] = {}  # by name: the array of the latest shape
        self.children: dict[object, Kept] = {}

    def child(self, key: object) -> Kept:
        """The inner layer ``key``'s own workspace, kept with this one."""
        ws = self.children.get(key)
        if ws is None:
            ws = self.children[key] = Kept()
        return ws

    def all_arrays(self) -> list[FloatArray]:
        """Every array this workspace and its children keep."""
        out = list(self.arrays.values())
        for ws in self.children.values():
            out += ws.all_arrays()
        return out

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> FloatArray:
        a = self.last.get(name)
        if a is not None and a.shape == shape and (a.dtype is dtype or a.dtype == dtype):
            return a
        key = (name, shape, np.dtype(dtype))
        a = self.arrays.get(key)
        if a is None:
            a = self.arrays[key] = _scratch.take(shape, np.dtype(dtype))
        self.last[name] = a
        return a


@runtime_checkable
class Layer(Protocol):
    """What a network needs of a layer (see the module docstring)."""

    def forward(
        self, X: FloatArray, *, train: bool, rng: np.random.Generator | None
    ) -> tuple[FloatArray, LayerCache]:
        """``X`` (batch, *in_shape) -> (out (batch, *out_shape), cache)."""
        ...

    def backward(self, cache: LayerCache, d_out: FloatArray) -> tuple[Self, FloatArray]:
        """(grads shaped like this layer, d_in (batch, *in_shape)) from ``d_out``."""
        ...

    def config(self) -> dict[str, object]:
        """The layer's static hyper-parameters and kind, JSON-friendly."""
        ...


class LayerBase:
    """Base class of fnn's layers: the pure per-layer ``forward`` / ``backward`` in terms
    of the kernels, which a subclass implements (see the module docstring).

    Subclasses are frozen attrs classes. A subclass that overrides ``forward_into`` or
    ``backward_into`` changes the math everywhere: pure functions, ``train_step`` and
    ``fit`` all call them. A subclass written to the earlier protocol, overriding
    ``forward`` or ``backward`` only, is honoured everywhere too: its kernels then call
    those methods (slower: fresh arrays every step), and ``super().forward(...)`` in
    them still reaches the parent's kernels.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _legacy.adapt(cls, _legacy.LAYER, "layer")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-sample output shape for a per-sample input shape (same by default)."""
        return input_shape

    @property
    def n_in(self) -> int | None:
        """Input features this layer's parameters fix, or None (the earlier protocol's
        name; :meth:`output_shape` and :attr:`input_shape` are what networks use)."""
        return None

    @property
    def n_out(self) -> int | None:
        """Output features, or None when they follow the input."""
        return None

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The per-sample input shape this layer's parameters fix, or None."""
        return None

    def forward_into(
        self, X: FloatArray, ctx: Context, ws: Workspace
    ) -> tuple[FloatArray, LayerCache]:
        """The forward kernel (see the module docstring)."""
        raise NotImplementedError

    def backward_into(
        self,
        cache: Any,
        d_out: FloatArray,
        grads: Any,
        ctx: Context,
        ws: Workspace,
        need_d_in: bool = True,
    ) -> FloatArray | None:
        """The backward kernel (see the module docstring)."""
        raise NotImplementedError

    def forward(
        self, X: FloatArray, *, train: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[FloatArray, LayerCache]:
        """``X`` (batch, *in_shape) -> (out (batch, *out_shape), cache), on fresh arrays."""
        kernel = _native(type(self), "forward_into")
        out, cache = kernel(self, _as_layer_dtype(self, X), context(train, rng), FRESH)
        seal(cache)
        if np.may_share_memory(out, X) or not out.flags.writeable:
            out = np.array(out, copy=True)  # the caller's own array
        return out, cache

    def backward(self, cache: LayerCache, d_out: FloatArray) -> tuple[Self, FloatArray]:
        """``(grads, d_in)``: the gradients as a value of this layer's type (state leaves
        hold the new state) and ``d_in`` (batch, *in_shape), from ``d_out``."""
        grads = fresh_grads(self)
        kernel = _native(type(self), "backward_into")
        d_in = kernel(self, cache, d_out, grads, TRAINING, FRESH, True)
        assert d_in is not None
        if np.may_share_memory(d_in, d_out):  # a kernel may pass d_out on (flatten)
            d_in = np.array(d_in, copy=True)  # the caller's own array
        for leaf in tree.leaves(grads):
            tree.read_only(leaf)
        return grads, d_in


_SCALARS = (int, float, str, bool, type(None))


def seal(value: Any) -> None:
    """Make every array of a cache (attrs records, tuples and lists of arrays, nested)
    read-only, in place: what the pure functions hand out cannot be written."""
    arrays: list[np.ndarray[Any, Any]] = []
    _collect_arrays(value, arrays)
    tree.read_only_each(arrays)


_FIELD_VALUES: dict[type[Any], Callable[[Any], tuple[Any, ...]]] = {}


def _collect_arrays(value: Any, arrays: list[np.ndarray[Any, Any]]) -> None:
    """Append the arrays ``value`` holds to ``arrays`` (every field of a record: a
    cache's arrays may be anywhere); one C call reads a record's fields."""
    t = type(value)
    if t is np.ndarray:
        arrays.append(value)
        return
    if t is tuple or t is list:
        items = value
    else:
        get = _FIELD_VALUES.get(t)
        if get is None:
            names = [name for name, _ in tree.record_fields(t)]
            if not names:
                return
            # attrgetter of two or more names returns a tuple (one C call); of one, the
            # value alone, so a lone field is read by name twice
            get = (
                operator.attrgetter(*names, *names)
                if len(names) == 1
                else operator.attrgetter(*names)
            )
            _FIELD_VALUES[t] = get
        items = get(value)
    for v in items:
        if type(v) is np.ndarray:
            arrays.append(v)  # a layer's input is the previous layer's output: twice
        elif not isinstance(v, _SCALARS):
            _collect_arrays(v, arrays)


def context(train: bool, rng: np.random.Generator | None) -> Context:
    """The context of a call in one process (the shared constants when no generator)."""
    if rng is not None:
        return Context(train=train, rng=rng)
    return TRAINING if train else INFERENCE


_NATIVE: dict[tuple[type[Any], str], Callable[..., Any]] = {}


def _native(cls: type[Any], name: str) -> Callable[..., Any]:
    """The nearest kernel ``name`` in ``cls``'s MRO that is not a legacy adapter."""
    got = _NATIVE.get((cls, name))
    if got is None:
        for k in cls.__mro__:
            f = vars(k).get(name)
            if f is not None and not _legacy.is_adapter(f):
                got = f
                break
        if got is None:  # pragma: no cover - LayerBase defines both
            raise AttributeError(name)
        _NATIVE[(cls, name)] = got
    return got


def forward_kernel(cls: type[Any]) -> Callable[..., tuple[FloatArray, Any]]:
    """The forward kernel of layer class ``cls`` as a plain function,
    ``fn(layer, X, ctx, ws)``; classes that are not :class:`LayerBase` (the earlier
    protocol's plain attrs classes) get an adapter calling their ``forward``."""
    f = getattr(cls, "forward_into", None)
    return f if f is not None else _legacy.legacy_forward_into


def backward_kernel(cls: type[Any]) -> Callable[..., FloatArray | None]:
    """The backward kernel of layer class ``cls`` as a plain function,
    ``fn(layer, cache, d_out, grads, ctx, ws, need_d_in)`` (see :func:`forward_kernel`)."""
    f = getattr(cls, "backward_into", None)
    return f if f is not None else _legacy.legacy_backward_into


def _as_layer_dtype(layer: object, X: FloatArray) -> FloatArray:
    leaves = tree.leaves(layer)
    if leaves and X.dtype != leaves[0].dtype:
        return np.asarray(X, dtype=leaves[0].dtype)
    return X


def fresh_grads(layer: Any) -> Any:
    """A value of ``layer``'s type whose leaves are fresh writable arrays (contents
    undefined) of the same shapes and dtypes: where a backward kernel writes."""

    lay = Layout(layer)
    if not lay.size:
        return layer
    return lay.build(np.empty(lay.size, lay.dtype), writable=True)


def input_ids_of(layer: object) -> int | None:
    """The vocabulary size of a layer that takes integer token ids (it declares it as
    its ``input_ids`` attribute, as :class:`fnn.Embedding`), else None (float inputs).

    A network whose first layer takes ids checks its input as ids in [0, input_ids) and
    passes them unconverted; gradient checks draw such inputs as random ids and skip the
    input gradient."""
    ids = getattr(layer, "input_ids", None)
    return None if ids is None else int(ids)


def input_shape_of(layer: object) -> tuple[int, ...] | None:
    """The per-sample input shape a layer's parameters fix (``(n_in,)`` for a dense
    layer), or None when it takes any."""
    shape = getattr(layer, "input_shape", None)
    if shape is not None:
        return tuple(shape)
    n_in = getattr(layer, "n_in", None)
    return None if n_in is None else (int(n_in),)


def output_shape_of(layer: object, input_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """The per-sample output shape of ``layer`` for ``input_shape``; ValueError naming
    ``where`` (e.g. ``layers.2``) when the input does not fit."""
    fn = getattr(layer, "output_shape", None)
    if callable(fn):
        try:
            return tuple(fn(input_shape))
        except ValueError as e:
            # a layer's message may name itself as "{layer}" (e.g. "{layer}.W")
            msg = str(e).replace("{layer}", where)
            if not msg.startswith(where):
                msg = f"{where} ({type(layer).__name__}): {msg}"
            raise ValueError(msg) from None
    expected = input_shape_of(layer)
    if expected is not None and tuple(input_shape) != expected:
        raise ValueError(
            f"{where} ({type(layer).__name__}) expects inputs of shape {expected} but the "
            f"previous layer gives {tuple(input_shape)}"
        )
    n_out = getattr(layer, "n_out", None)
    return tuple(input_shape) if n_out is None else (int(n_out),)


def last_axis_shape(
    name: str, input_shape: tuple[int, ...], n_features: int | None
) -> tuple[int, ...]:
    """``input_shape`` itself, for a layer ``name`` (``"batch norm"``) over the last axis
    of ``n_features`` entries (None: any, sized from the input); ValueError when the
    input has no last axis or another width."""
    if not input_shape or (n_features is not None and input_shape[-1] != n_features):
        n = "its" if n_features is None else n_features
        raise ValueError(
            f"{name} over {n} features expects inputs whose last axis has "
            f"{n if n_features is not None else 'them'} entries, got shape {tuple(input_shape)}"
        )
    return tuple(input_shape)


def same_shape(input_shape: tuple[int, ...], **hyper: Any) -> tuple[int, ...]:
    """``input_shape`` itself: the ``shape`` of a kind whose output has its input's
    shape whatever its hyper-parameters (dropout, an activation)."""
    return tuple(input_shape)


def working_size_of(
    layer: object, input_shape: tuple[int, ...], output_shape: tuple[int, ...]
) -> int:
    """Elements per sample a layer's forward pass keeps (its output, cache and
    temporaries): its optional ``working_size(input_shape)`` (a convolution counts its
    im2col matrix), else four times its output. Inference sizes its chunks by it."""
    fn = getattr(layer, "working_size", None)
    return int(fn(input_shape)) if fn is not None else 4 * math.prod(output_shape)


def min_batch_rows_of(layer: object, input_shape: tuple[int | None, ...]) -> int:
    """The fewest rows a training batch may have for ``layer``: its optional
    ``min_batch_rows(input_shape)`` (batch norm over single values needs two), else 1."""
    fn = getattr(layer, "min_batch_rows", None)
    return 1 if fn is None else int(fn(input_shape))


@attrs.frozen
class LayerKind:
    """A registered layer kind.

    Attributes:
        name: the ``"kind"`` its ``config()`` records.
        cls: the layer class.
        build: ``build(config, arrays) -> layer`` from the ``config()`` dict and the
            arrays keyed by field name (what checkpoints store).
        example: ``example(rng, dtype) -> (layer, input_shape)``: a small instance with
            random leaves and a per-sample input shape it accepts, for the shared
            property tests (gradient checks, purity, dtypes, fit, save/load). A layer
            taking integer token ids says so itself (:func:`input_ids_of`): the tests
            then draw ids in [0, input_ids) and skip the input gradient.
        shapes: ``shapes(config) -> {field: shape}``, the shape of each array the
            config implies (dotted paths below the layer for inner layers, e.g.
            ``body.0.W``), so checkpoints are checked before any array is read; None,
            or a function returning None, when the config does not fix them (then the
            built layer's config must equal the file's).
        weights: the names of the fields that are *weights* (decayed by
            ``fnn.add_decayed_weights(..., fnn.weights_only)``; biases, norms' scales and
            state are not). None: the trainable leaves with two or more axes (matrices,
            kernels, embeddings), the rule nanoGPT and PyTorch users apply by hand.
        create: ``create(input_shape, *, rng, dtype, **hyper) -> layer``: a new layer
            with drawn parameters, sized from the per-sample ``input_shape``; what
            ``fnn.specs.layer(name, **hyper)`` calls inside ``fnn.sequential``. None:
            the kind cannot be described by a spec (build it directly).
        shape: ``shape(input_shape, **hyper) -> output_shape``: the per-sample output
            shape of the layer ``create`` would draw, found without drawing it (ValueError
            when the input does not fit, as the layer's ``output_shape``: built-in kinds
            share one function between the two, so each shape is written once). None:
            ``fnn.specs`` learns the shape from a throwaway layer ``create`` draws.
    """

    name: str
    cls: type[Any]
    build: Callable[[dict[str, Any], dict[str, Any]], Any]
    example: Callable[[np.random.Generator, np.dtype[Any]], tuple[Any, tuple[int, ...]]] | None
    shapes: Callable[[dict[str, Any]], Mapping[str, Sequence[int]] | None] | None = None
    weights: tuple[str, ...] | None = None
    create: Callable[..., Any] | None = None
    shape: Callable[..., tuple[int, ...]] | None = None


LAYERS: Registry[LayerKind] = Registry("layer kind")
"""Layer kinds by the name their ``config()`` records."""


def _default_build(cls: type[Any]) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    def build(config: dict[str, Any], arrays: dict[str, Any]) -> Any:
        names = {f.name.lstrip("_") for f in attrs.fields(cls) if f.init}
        kwargs = {k: v for k, v in config.items() if k in names and k not in arrays}
        return cls(**kwargs, **arrays)

    return build


def register_layer(
    name: str,
    cls: type[Any],
    *,
    build: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None,
    example: Callable[[np.random.Generator, np.dtype[Any]], tuple[Any, tuple[int, ...]]]
    | None = None,
    shapes: Callable[[dict[str, Any]], Mapping[str, Sequence[int]] | None] | None = None,
    weights: Sequence[str] | None = None,
    create: Callable[..., Any] | None = None,
    shape: Callable[..., tuple[int, ...]] | None = None,
) -> LayerKind:
    """Register a layer kind (see :class:`LayerKind`). ``build`` defaults to calling
    ``cls`` with the arrays and the config entries that name its fields. Registering a
    name again replaces the earlier kind."""
    if weights is not None:
        if isinstance(weights, str) or not all(isinstance(w, str) for w in weights):
            raise TypeError(f"weights must be a sequence of field names, got {weights!r}")
        fields = {f.name for f in attrs.fields(cls)} if attrs.has(cls) else None
        unknown = sorted(set(weights) - fields) if fields is not None else []
        if unknown:
            raise ValueError(f"weights names {unknown}, which are not fields of {cls.__name__}")
    kind = LayerKind(
        name=name,
        cls=cls,
        build=build or _default_build(cls),
        example=example,
        shapes=shapes,
        weights=None if weights is None else tuple(weights),
        create=create,
        shape=shape,
    )
    LAYERS.replace(name, kind)
    return kind


def kind_of(layer: object) -> LayerKind | None:
    """The registered kind of ``layer``'s class, or of its nearest registered base class
    (a subclass keeps its parent's declarations); None for an unregistered class."""
    by_class = {k.cls: k for _, k in LAYERS.items()}
    for cls in type(layer).__mro__[:-1]:  # not ``object``: a kind registered without a class
        kind = by_class.get(cls)
        if kind is not None:
            return kind
    return None


def weight_paths(params: Any) -> frozenset[str]:
    """The paths of the weights among ``params``' leaves: each layer's declared weight
    fields (:attr:`LayerKind.weights`), at any depth (layers inside composites
    included); elsewhere, and for kinds that declare none, the trainable leaves with two
    or more axes."""
    out: set[str] = set()
    trainable = tree.trainable_mask(params)
    for path, leaf in tree.leaves_with_paths(params):
        if np.ndim(leaf) >= 2 and trainable[path]:
            out.add(path)
    _declared(params, "", out)
    return frozenset(out)


def _declared(node: Any, prefix: str, out: set[str]) -> None:
    """Apply the declarations of the registered layers in ``node`` to ``out``: a
    declaring layer's own leaves are weights exactly when declared."""
    if node is None or isinstance(node, np.ndarray):
        return
    declared = None
    if attrs.has(type(node)) and (isinstance(node, LayerBase) or hasattr(node, "config")):
        kind = kind_of(node)
        declared = None if kind is None else kind.weights
    trainable = tree.trainable_mask(node) if declared is not None else {}
    for name, value, _ in tree.children(node):
        if isinstance(value, np.ndarray):
            if declared is not None:
                path = f"{prefix}{name}"
                if name in declared and trainable.get(name, False):
                    out.add(path)
                else:
                    out.discard(path)
        else:
            _declared(value, f"{prefix}{name}.", out)


def config_size(config: Mapping[str, Any], key: str) -> int:
    """``config[key]`` as a positive int (ValueError otherwise): for ``shapes`` functions."""
    v = config.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{key} must be an int >= 1, got {v!r}")
    return v
