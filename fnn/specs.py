"""Layer specs: descriptions of layers that :func:`fnn.sequential` chains and
:func:`fnn.init` draws, with sizes inferred from the input shape.

Every spec of a registered layer kind is one generic value, :class:`KindSpec`: the
kind's name and its hyper-parameters. What it does comes from the kind's registration
(:func:`fnn.layers.register_layer`): ``shape`` gives the per-sample output shape for an
input shape without drawing anything (ValueError when the input does not fit, so
impossible architectures fail when they are described; it is the same function the
layer's own ``output_shape`` calls, so each shape is written once), and ``create``
draws the layer sized from the input. The named factories (:func:`dense`,
:func:`conv2d`, ..., :func:`residual`) only check their arguments and return such a
spec; :func:`layer` does the same for any kind, a user's included. The earlier spec
classes (``DenseSpec``, ``Conv2DSpec``, ...) remain as thin constructors of
:class:`KindSpec` taking their earlier fields. A spec whose layer has no leaves says
so (``has_parameters`` False), so a stack of such specs alone is refused when it is
described::

    arch = fnn.sequential(
        (28, 28, 1),
        [
            fnn.specs.conv2d(32, 3, activation="relu"),
            fnn.specs.max_pool2d(2),
            fnn.specs.flatten(),
            fnn.specs.dense(10),
        ],
        output="softmax",
    )
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import attrs
import numpy as np

from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn._validation import check_int
from fnn.layers.attention import check_heads
from fnn.layers.base import LAYERS, Layer, output_shape_of
from fnn.layers.batch_norm import BatchNorm
from fnn.layers.composite import (
    Merge,
    Residual,
    chain_output_shape,
    init_chain,
    spec_tuple,
)
from fnn.layers.conv2d import PaddingLike, padding_value, positive_pair, stride_pair
from fnn.layers.dropout import Dropout
from fnn.layers.layer_norm import LayerNorm
from fnn.layers.pool2d import stride_or_none, window_pair
from fnn.tree import STATIC

__all__ = [
    "ActivationSpec",
    "AvgPool2DSpec",
    "BatchNormSpec",
    "Conv2DSpec",
    "DenseSpec",
    "DropoutSpec",
    "EmbeddingSpec",
    "FlattenSpec",
    "GRUSpec",
    "GlobalAvgPool2DSpec",
    "KindSpec",
    "LSTMSpec",
    "LayerNormSpec",
    "LayerSpec",
    "MaxPool2DSpec",
    "MultiHeadAttentionSpec",
    "ParallelSpec",
    "PositionalEmbeddingSpec",
    "ResidualSpec",
    "SimpleRNNSpec",
    "SizedResidualSpec",
    "activation",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "default_initializer",
    "dense",
    "dropout",
    "embedding",
    "flatten",
    "global_avg_pool2d",
    "gru",
    "init_chain",
    "layer",
    "layer_norm",
    "lstm",
    "max_pool2d",
    "multi_head_attention",
    "parallel",
    "positional_embedding",
    "residual",
    "simple_rnn",
    "spec_chain_shape",
    "transformer_block",
]


class LayerSpec(Protocol):
    """A description of a layer that can draw its initial parameters."""

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any]) -> Layer:
        """The layer with freshly drawn parameters of ``dtype``. Specs whose sizes come
        from the input also take ``input_shape=`` (the per-sample input shape)."""
        ...


def spec_chain_shape(
    specs: Sequence[Any], input_shape: tuple[int, ...], where: str
) -> tuple[int, ...]:
    """The per-sample output shape of ``specs`` applied in order to ``input_shape``;
    TypeError for an entry that is not a spec, ValueError naming ``{where}.{i}`` and the
    shapes for one that cannot take the shape before it."""
    return chain_output_shape(spec_tuple(specs, where), tuple(input_shape), where)


def default_initializer(act: _activations.Activation) -> _initializers.Initializer:
    """He normal for ReLU-like activations (``act.relu_like``), Glorot uniform otherwise."""
    return _initializers.for_activation(None, act)


@attrs.frozen(hash=False)
class KindSpec:
    """A registered layer kind and its hyper-parameters, sized from the input: what
    :func:`layer` and the named factories return. ``init`` calls the kind's ``create``;
    ``output_shape`` its ``shape`` (or, for a kind registered without one, the output
    shape of a throwaway layer ``create`` draws), so no shape logic is written twice.

    Attributes:
        kind: the registered kind's name (``"dense"``).
        hyper: the keyword arguments of its ``create`` besides the input shape, rng and
            dtype (``{"n_out": 10, "activation": ReLU(), ...}``).
    """

    kind: str
    hyper: dict[str, Any] = attrs.field(factory=dict)

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self.hyper.items())))

    @property
    def has_parameters(self) -> bool:
        """Whether the kind's layers have leaves: False for a kind whose class has only
        static fields (pools, flatten, dropout, activations)."""
        cls = LAYERS[self.kind].cls
        if not attrs.has(cls):
            return True
        return any(not f.metadata.get(STATIC, False) for f in attrs.fields(cls) if f.init)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The per-sample input shape the spec fixes: ``(n_in,)`` when its
        hyper-parameters give ``n_in`` (the dense specs of :func:`fnn.mlp`), else None
        (sized from the layers before it)."""
        n_in = self.hyper.get("n_in")
        return None if n_in is None else (int(n_in),)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-sample output shape for ``input_shape``, nothing drawn (for a kind
        with a ``shape`` function); ValueError when the input does not fit."""
        shape = LAYERS[self.kind].shape
        if shape is not None:
            return tuple(shape(tuple(input_shape), **self.hyper))
        layer = self.init(
            rng=np.random.default_rng(0), dtype=np.dtype(np.float64), input_shape=input_shape
        )
        return output_shape_of(layer, input_shape, "{layer}")

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> Layer:
        """The layer, drawn by the kind's ``create`` for ``input_shape`` (the spec's own
        :attr:`input_shape` when None)."""
        create = LAYERS[self.kind].create
        if create is None:  # pragma: no cover - checked by layer()
            raise ValueError(f"layer kind {self.kind!r} has no create function")
        shape = self.input_shape if input_shape is None else input_shape
        if shape is None:
            raise ValueError(f"a {self.kind} spec needs the input shape")
        return create(tuple(shape), rng=rng, dtype=dtype, **self.hyper)  # type: ignore[no-any-return]


def layer(name: str, **hyper: Any) -> KindSpec:
    """The spec of any registered layer kind, a user's included: ``create(input_shape,
    rng=, dtype=, **hyper)`` of its registration (``fnn.layers.register_layer(...,
    create=...)``) draws it inside :func:`fnn.sequential`, sized from the shape before
    it. Unknown kinds and hyper-parameters are refused at once."""
    kind = LAYERS[name]  # ValueError naming the known kinds
    if kind.create is None:
        raise ValueError(
            f"layer kind {name!r} has no create function: register it with "
            "create=lambda input_shape, *, rng, dtype, **hyper: layer"
        )
    try:
        inspect.signature(kind.create).bind((1,), rng=None, dtype=None, **hyper)
    except TypeError as e:
        raise TypeError(f"fnn.specs.layer({name!r}, ...): {e}") from None
    return KindSpec(name, dict(hyper))


# --- the earlier spec classes: thin constructors of KindSpec ---------------------------


class _Named(KindSpec):
    """A :class:`KindSpec` of kind ``KIND`` built from the positional and keyword
    arguments ``FIELDS`` of an earlier spec class (defaults ``DEFAULTS``): the class
    only names the kind, the registration does the rest."""

    KIND: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]] = ()
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self.FIELDS):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(self.FIELDS)} arguments "
                f"({', '.join(self.FIELDS)}), got {len(args)}"
            )
        given = {**self.DEFAULTS, **dict(zip(self.FIELDS, args, strict=False))}
        for k, v in kwargs.items():
            if k not in self.FIELDS:
                raise TypeError(f"{type(self).__name__} has no field {k!r}")
            given[k] = v
        missing = [f for f in self.FIELDS if f not in given]
        if missing:
            raise TypeError(f"{type(self).__name__} is missing {', '.join(missing)}")
        super().__init__(self.KIND, self._convert({f: given[f] for f in self.FIELDS}))

    def __getattr__(self, name: str) -> Any:
        """The earlier class's fields, read from :attr:`hyper` (``spec.n_out``)."""
        if name in type(self).FIELDS:
            return self.hyper[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        """The earlier class's repr, ``DenseSpec(n_in=None, n_out=10, ...)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"

    @staticmethod
    def _convert(hyper: dict[str, Any]) -> dict[str, Any]:
        return hyper


class DenseSpec(_Named):
    """``DenseSpec(n_in, n_out, activation, initializer=None, bias=True)``: the spec of
    kind ``"dense"`` (what :func:`dense` returns, with ``n_in`` None: from the input)."""

    KIND = "dense"
    FIELDS = ("n_in", "n_out", "activation", "initializer", "bias")
    DEFAULTS: ClassVar[dict[str, Any]] = {"initializer": None, "bias": True}

    @staticmethod
    def _convert(hyper: dict[str, Any]) -> dict[str, Any]:
        ini = hyper["initializer"]
        return {
            **hyper,
            "activation": _activations.get(hyper["activation"]),
            "initializer": None if ini is None else _initializers.get(ini),
        }


class Conv2DSpec(_Named):
    """``Conv2DSpec(out_channels, kernel_size, stride=(1, 1), padding="valid",
    activation="identity", initializer=None)``: the spec of kind ``"conv2d"``."""

    KIND = "conv2d"
    FIELDS = ("out_channels", "kernel_size", "stride", "padding", "activation", "initializer")
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "stride": (1, 1),
        "padding": "valid",
        "activation": "identity",
        "initializer": None,
    }

    @staticmethod
    def _convert(hyper: dict[str, Any]) -> dict[str, Any]:
        return DenseSpec._convert(hyper)


class MaxPool2DSpec(_Named):
    """``MaxPool2DSpec(window, stride=None)``: the spec of kind ``"max_pool2d"``."""

    KIND = "max_pool2d"
    FIELDS = ("window", "stride")
    DEFAULTS: ClassVar[dict[str, Any]] = {"stride": None}


class AvgPool2DSpec(_Named):
    """``AvgPool2DSpec(window, stride=None)``: the spec of kind ``"avg_pool2d"``."""

    KIND = "avg_pool2d"
    FIELDS = ("window", "stride")
    DEFAULTS: ClassVar[dict[str, Any]] = {"stride": None}


class GlobalAvgPool2DSpec(_Named):
    """``GlobalAvgPool2DSpec()``: the spec of kind ``"global_avg_pool2d"``."""

    KIND = "global_avg_pool2d"


class FlattenSpec(_Named):
    """``FlattenSpec()``: the spec of kind ``"flatten"``."""

    KIND = "flatten"


class BatchNormSpec(_Named):
    """``BatchNormSpec(momentum=0.1, eps=1e-5)``: the spec of kind ``"batch_norm"``."""

    KIND = "batch_norm"
    FIELDS = ("momentum", "eps")
    DEFAULTS: ClassVar[dict[str, Any]] = {"momentum": 0.1, "eps": 1e-5}


class LayerNormSpec(_Named):
    """``LayerNormSpec(eps=1e-5)``: the spec of kind ``"layer_norm"``."""

    KIND = "layer_norm"
    FIELDS = ("eps",)
    DEFAULTS: ClassVar[dict[str, Any]] = {"eps": 1e-5}


class EmbeddingSpec(_Named):
    """``EmbeddingSpec(vocab_size, dim)``: the spec of kind ``"embedding"``."""

    KIND = "embedding"
    FIELDS = ("vocab_size", "dim")


class PositionalEmbeddingSpec(_Named):
    """``PositionalEmbeddingSpec(max_len)``: the spec of kind ``"positional_embedding"``."""

    KIND = "positional_embedding"
    FIELDS = ("max_len",)


class DropoutSpec(_Named):
    """``DropoutSpec(rate)``: the spec of kind ``"dropout"``."""

    KIND = "dropout"
    FIELDS = ("rate",)


class ActivationSpec(_Named):
    """``ActivationSpec(activation)``: the spec of kind ``"activation"`` (a name is
    looked up)."""

    KIND = "activation"
    FIELDS = ("activation",)

    @staticmethod
    def _convert(hyper: dict[str, Any]) -> dict[str, Any]:
        return {"activation": _activations.get(hyper["activation"])}


class ResidualSpec(_Named):
    """``ResidualSpec(body, shortcut=())``: the spec of kind ``"residual"`` (chains of
    specs, sized from the block's input)."""

    KIND = "residual"
    FIELDS = ("body", "shortcut")
    DEFAULTS: ClassVar[dict[str, Any]] = {"shortcut": ()}


class ParallelSpec(_Named):
    """``ParallelSpec(branches, merge="concat")``: the spec of kind ``"parallel"``."""

    KIND = "parallel"
    FIELDS = ("branches", "merge")
    DEFAULTS: ClassVar[dict[str, Any]] = {"merge": "concat"}


class SimpleRNNSpec(_Named):
    """``SimpleRNNSpec(units, return_sequences=False)``: the spec of kind ``"simple_rnn"``."""

    KIND = "simple_rnn"
    FIELDS = ("units", "return_sequences")
    DEFAULTS: ClassVar[dict[str, Any]] = {"return_sequences": False}


class LSTMSpec(SimpleRNNSpec):
    """``LSTMSpec(units, return_sequences=False)``: the spec of kind ``"lstm"``."""

    KIND = "lstm"


class GRUSpec(SimpleRNNSpec):
    """``GRUSpec(units, return_sequences=False)``: the spec of kind ``"gru"``."""

    KIND = "gru"


class MultiHeadAttentionSpec(_Named):
    """``MultiHeadAttentionSpec(heads, causal=False, bias=True)``: the spec of kind
    ``"multi_head_attention"``."""

    KIND = "multi_head_attention"
    FIELDS = ("heads", "causal", "bias")
    DEFAULTS: ClassVar[dict[str, Any]] = {"causal": False, "bias": True}


# --- the functions sequential's users write --------------------------------------------


def dense(
    n_out: int,
    activation: _activations.Activation | str = "identity",
    initializer: _initializers.Initializer | str | None = None,
    bias: bool = True,
) -> DenseSpec:
    """A dense layer of ``n_out`` units (inputs from the previous layer), acting on the
    last axis (a sequence (T, d) gives (T, n_out)); ``bias=False``: no ``b``;
    ``initializer`` None: He normal before a ReLU-like activation, Glorot uniform
    otherwise."""
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
    return DenseSpec(None, check_int(n_out, "n_out"), activation, initializer, bias)


def conv2d(
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: PaddingLike = "valid",
    activation: _activations.Activation | str = "identity",
    initializer: _initializers.Initializer | str | None = None,
) -> Conv2DSpec:
    """A convolution (see :class:`fnn.Conv2D`); ``kernel_size`` and ``stride`` an int or
    a pair, ``padding`` "valid", "same", an int, a pair or a pair of pairs."""
    ks = positive_pair(kernel_size, name="kernel_size")
    st = stride_pair(stride)
    n = check_int(out_channels, "out_channels")
    return Conv2DSpec(n, ks, st, padding_value(padding), activation, initializer)


def max_pool2d(
    window: int | tuple[int, int], stride: int | tuple[int, int] | None = None
) -> MaxPool2DSpec:
    """Max pooling; ``stride`` defaults to the window."""
    return MaxPool2DSpec(window_pair(window), stride_or_none(stride))


def avg_pool2d(
    window: int | tuple[int, int], stride: int | tuple[int, int] | None = None
) -> AvgPool2DSpec:
    """Average pooling; ``stride`` defaults to the window."""
    return AvgPool2DSpec(window_pair(window), stride_or_none(stride))


def global_avg_pool2d() -> GlobalAvgPool2DSpec:
    """The mean over each channel's pixels: (h, w, c) -> (c,)."""
    return GlobalAvgPool2DSpec()


def flatten() -> FlattenSpec:
    """Flatten each sample."""
    return FlattenSpec()


def batch_norm(momentum: float = 0.1, eps: float = 1e-5) -> BatchNormSpec:
    """Batch norm over the last axis (PyTorch's BatchNorm1d / BatchNorm2d conventions)."""
    BatchNorm.create(1, momentum=momentum, eps=eps)  # validates now
    return BatchNormSpec(momentum, eps)


def layer_norm(eps: float = 1e-5) -> LayerNormSpec:
    """Layer norm over the last axis (PyTorch's LayerNorm conventions)."""
    LayerNorm.create(1, eps=eps)  # validates now
    return LayerNormSpec(eps)


def embedding(vocab_size: int, dim: int) -> EmbeddingSpec:
    """A token embedding (:class:`fnn.Embedding`): ``W`` (vocab_size, dim), N(0, 1)."""
    return EmbeddingSpec(check_int(vocab_size, "vocab_size"), check_int(dim, "dim"))


def positional_embedding(max_len: int) -> PositionalEmbeddingSpec:
    """A learned positional embedding (:class:`fnn.PositionalEmbedding`) of up to
    ``max_len`` positions, its width from the input; ``P`` drawn from N(0, 0.02²)."""
    return PositionalEmbeddingSpec(check_int(max_len, "max_len"))


def dropout(rate: float) -> DropoutSpec:
    """Dropout with probability ``rate``."""
    Dropout(rate=rate)  # validates now
    return DropoutSpec(float(rate))


def activation(name: _activations.Activation | str) -> ActivationSpec:
    """An activation as a layer of its own."""
    return ActivationSpec(name)


def residual(
    body: Sequence[LayerSpec], shortcut: Sequence[LayerSpec] | None = None
) -> ResidualSpec:
    """A residual block ``body(x) + shortcut(x)`` (:class:`fnn.Residual`): ``body`` and
    ``shortcut`` are lists of specs, sized from the block's input; ``shortcut`` None or
    ``[]`` is the identity, e.g. ``[conv2d(c, 1, stride=2), batch_norm()]`` where the body
    changes the shape."""
    return ResidualSpec(spec_tuple(body, "body"), spec_tuple(shortcut, "shortcut"))


def parallel(branches: Sequence[Sequence[LayerSpec]], merge: Merge = "concat") -> ParallelSpec:
    """Branches of specs on the same input (:class:`fnn.Parallel`), at least two, joined
    by ``merge``: ``"concat"`` on the last axis (every other axis must match) or
    ``"add"`` (identical shapes)."""
    if isinstance(branches, str | bytes) or not isinstance(branches, Sequence):
        raise TypeError(
            f"branches must be a list of lists of layer specs, got {type(branches).__name__}"
        )
    out = tuple(spec_tuple(b, f"branches[{k}]") for k, b in enumerate(branches))
    if len(out) < 2:
        raise ValueError(f"parallel needs at least 2 branches, got {len(out)}")
    if merge not in ("concat", "add"):
        raise ValueError(f"merge must be 'concat' or 'add', got {merge!r}")
    return ParallelSpec(out, merge)


def _return_sequences(value: object) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"return_sequences must be a bool, got {type(value).__name__}")
    return bool(value)


def simple_rnn(units: int, return_sequences: bool = False) -> SimpleRNNSpec:
    """A tanh recurrent layer of ``units`` units over (T, features) sequences: the last
    hidden state (units,), or every one (T, units) with ``return_sequences``."""
    return SimpleRNNSpec(check_int(units, "units"), _return_sequences(return_sequences))


def lstm(units: int, return_sequences: bool = False) -> LSTMSpec:
    """An LSTM layer of ``units`` units over (T, features) sequences (PyTorch's
    conventions): the last hidden state (units,), or every one (T, units)."""
    return LSTMSpec(check_int(units, "units"), _return_sequences(return_sequences))


def gru(units: int, return_sequences: bool = False) -> GRUSpec:
    """A GRU layer of ``units`` units over (T, features) sequences (PyTorch's
    conventions): the last hidden state (units,), or every one (T, units)."""
    return GRUSpec(check_int(units, "units"), _return_sequences(return_sequences))


def multi_head_attention(
    heads: int, causal: bool = False, bias: bool = True
) -> MultiHeadAttentionSpec:
    """Multi-head self-attention with ``heads`` heads (dividing d_model, checked when
    the network is built); ``causal``: position t attends to positions <= t;
    ``bias=False``: no biases at all."""
    check_heads(heads, heads)  # an int >= 1 now; divisibility once d_model is known
    return MultiHeadAttentionSpec(int(heads), bool(causal), bool(bias))


@attrs.frozen
class SizedResidualSpec:
    """A :class:`fnn.Residual` block with an identity shortcut whose body is a chain of
    specs that depends on the block's per-sample input shape: ``body(input_shape)``
    (e.g. an MLP of four times the input's width). Not a kind of its own: it makes the
    :func:`residual` spec for the shape it is given."""

    body: Callable[[tuple[int, ...]], Sequence[LayerSpec]]

    def _spec(self, input_shape: tuple[int, ...]) -> ResidualSpec:
        return residual(self.body(tuple(input_shape)))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self._spec(input_shape).output_shape(input_shape)

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> Residual:
        if input_shape is None:
            raise ValueError("a residual spec needs the input shape")
        layer = self._spec(input_shape).init(rng=rng, dtype=dtype, input_shape=input_shape)
        assert isinstance(layer, Residual)
        return layer


def transformer_block(
    heads: int,
    mlp_ratio: int = 4,
    dropout: float = 0.0,
    causal: bool = True,
    bias: bool = True,
) -> list[LayerSpec]:
    """A pre-LayerNorm transformer block (GPT-2's) on sequences (T, d), as two residual
    blocks of existing kinds, no new math:

        x = x + Dropout(MultiHeadAttention(LayerNorm(x)))
        x = x + Dropout(Dense_d(GELU(Dense_{mlp_ratio d}(LayerNorm(x)))))

    GELU in its tanh form; ``bias=False`` drops the biases of the attention and MLP
    projections. Returns the two specs: splat them into :func:`fnn.sequential`'s list
    (``[..., *fnn.specs.transformer_block(4), ...]``)."""
    ratio = check_int(mlp_ratio, "mlp_ratio")
    if not isinstance(bias, bool) or not isinstance(causal, bool):
        raise TypeError("bias and causal must be bools")
    Dropout(rate=dropout)  # validates now

    def drop() -> list[LayerSpec]:
        return [DropoutSpec(float(dropout))] if dropout else []

    def mlp(shape: tuple[int, ...]) -> list[LayerSpec]:
        d = int(shape[-1])
        return [
            layer_norm(),
            dense(ratio * d, activation="gelu", bias=bias),
            dense(d, bias=bias),
            *drop(),
        ]

    attention = residual(
        [layer_norm(), multi_head_attention(heads, causal=causal, bias=bias), *drop()]
    )
    return [attention, SizedResidualSpec(mlp)]
