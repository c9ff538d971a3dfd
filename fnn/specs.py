"""Layer specs: descriptions of layers that :func:`fnn.sequential` chains and
:func:`fnn.init` draws, with sizes inferred from the input shape.

Each spec knows the per-sample output shape it gives for an input shape
(``output_shape``, raising ValueError when the input does not fit, so impossible
architectures fail when they are described) and draws its layer
(``init(rng=, dtype=, input_shape=)``). A spec whose layer has no leaves says so with
``has_parameters = False`` (specs without the attribute are taken to have some), so a
stack of such specs alone is refused when it is described::

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
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import attrs
import numpy as np

from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn._validation import check_int
from fnn.layers import conv2d as _conv2d
from fnn.layers import dense as _dense
from fnn.layers import embedding as _embedding
from fnn.layers import positional_embedding as _positional
from fnn.layers.activation import Activation
from fnn.layers.attention import MultiHeadAttention, check_heads
from fnn.layers.base import LAYERS, Layer, input_shape_of, output_shape_of
from fnn.layers.batch_norm import BatchNorm
from fnn.layers.composite import Merge, Parallel, Residual, merged_shape
from fnn.layers.conv2d import Conv2D, PaddingLike, positive_pair, resolve_padding, stride_pair
from fnn.layers.dense import Dense
from fnn.layers.dropout import Dropout
from fnn.layers.embedding import Embedding
from fnn.layers.flatten import Flatten
from fnn.layers.layer_norm import LayerNorm
from fnn.layers.pool2d import (
    AvgPool2D,
    GlobalAvgPool2D,
    MaxPool2D,
    pool2d_output_hw,
    stride_or_none,
    window_pair,
)
from fnn.layers.positional_embedding import PositionalEmbedding
from fnn.layers.recurrent import GRU, LSTM, Recurrent, SimpleRNN, sequence_output_shape

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


def _takes_input_shape(spec: object) -> bool:
    try:
        return "input_shape" in inspect.signature(spec.init).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # pragma: no cover
        return False


def init_chain(
    specs: Sequence[LayerSpec],
    *,
    rng: np.random.Generator,
    dtype: np.dtype[Any],
    input_shape: tuple[int, ...] | None,
    where: str = "layers",
) -> tuple[tuple[Layer, ...], tuple[int, ...] | None]:
    """Draw the layers of ``specs`` applied in order to inputs of per-sample shape
    ``input_shape`` (None: the first layer that fixes it does), each sized from the
    shape before it: ``(layers, output shape)``. ValueError naming ``{where}.{i}``
    when a layer cannot take the shape before it."""
    shape = input_shape
    layers: list[Layer] = []
    for i, spec in enumerate(specs):
        if _takes_input_shape(spec):
            layer = spec.init(rng=rng, dtype=dtype, input_shape=shape)  # type: ignore[call-arg]
        else:
            layer = spec.init(rng=rng, dtype=dtype)
        if shape is None:
            shape = input_shape_of(layer)
        if shape is not None:
            shape = output_shape_of(layer, shape, f"{where}.{i}")
        layers.append(layer)
    return tuple(layers), shape


def spec_chain_shape(
    specs: Sequence[Any], input_shape: tuple[int, ...], where: str
) -> tuple[int, ...]:
    """The per-sample output shape of ``specs`` applied in order to ``input_shape``;
    TypeError for an entry that is not a spec, ValueError naming ``{where}.{i}`` and the
    shapes for one that cannot take the shape before it."""
    current = tuple(input_shape)
    for i, spec in enumerate(specs):
        fn = getattr(spec, "output_shape", None)
        if not callable(fn) or not callable(getattr(spec, "init", None)):
            raise TypeError(
                f"{where}[{i}] must be a layer spec from fnn.specs, got {type(spec).__name__}"
            )
        try:
            current = tuple(fn(current))
        except ValueError as e:
            msg = str(e).replace("{layer}", f"{where}.{i}")
            if msg.startswith(f"{where}.{i}"):
                raise ValueError(msg) from None
            raise ValueError(
                f"{where}.{i} ({type(spec).__name__}) cannot take inputs of shape {current}: {msg}"
            ) from None
    return current


def default_initializer(act: _activations.Activation) -> _initializers.Initializer:
    """He normal for ReLU-like activations (``act.relu_like``), Glorot uniform otherwise."""
    return _initializers.HeNormal() if act.relu_like else _initializers.GlorotUniform()


def _image(kind: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(
            f"{kind} expects images of shape (height, width, channels), got samples of shape "
            f"{tuple(shape)}"
        )
    return shape[0], shape[1], shape[2]


def _init_or_default(
    initializer: _initializers.Initializer | None, act: _activations.Activation
) -> _initializers.Initializer:
    return default_initializer(act) if initializer is None else initializer


def _optional_initializer(v: Any) -> _initializers.Initializer | None:
    return None if v is None else _initializers.get(v)


@attrs.frozen
class DenseSpec:
    """A dense layer of ``n_in -> n_out`` units with its activation and initialiser
    (``n_in`` None: taken from the input shape; ``initializer`` None: He normal for
    ReLU-like activations, Glorot uniform otherwise)."""

    n_in: int | None
    n_out: int
    activation: _activations.Activation = attrs.field(converter=_activations.get)
    initializer: _initializers.Initializer | None = attrs.field(
        default=None, converter=_optional_initializer
    )
    bias: bool = True

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) not in (1, 2):
            raise ValueError(
                f"dense expects inputs of shape (n_features,) or (T, n_features), got "
                f"{tuple(input_shape)} (add flatten() or global_avg_pool2d() first)"
            )
        if self.n_in is not None and input_shape[-1] != self.n_in:
            raise ValueError(f"dense expects {self.n_in} inputs, got {input_shape[-1]}")
        return (*input_shape[:-1], self.n_out)

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> Dense:
        n_in = self.n_in
        if n_in is None:
            if input_shape is None:
                raise ValueError("a dense spec without n_in needs the input shape")
            self.output_shape(input_shape)
            n_in = input_shape[-1]
        layer = _dense.init(
            n_in,
            self.n_out,
            rng=rng,
            activation=self.activation,
            initializer=_init_or_default(self.initializer, self.activation),
            dtype=dtype,
        )
        return layer if self.bias else attrs.evolve(layer, b=None)


@attrs.frozen
class Conv2DSpec:
    """A convolution of ``out_channels`` filters of ``kernel_size``; the input channels
    come from the input shape."""

    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: PaddingLike = "valid"
    activation: _activations.Activation = attrs.field(
        default=_activations.Identity(), converter=_activations.get
    )
    initializer: _initializers.Initializer | None = attrs.field(
        default=None, converter=_optional_initializer
    )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        h, w, _ = _image("conv2d", input_shape)
        _, (oh, ow) = resolve_padding(self.padding, (h, w), self.kernel_size, self.stride)
        return (oh, ow, self.out_channels)

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> Conv2D:
        if input_shape is None:
            raise ValueError("a conv2d spec needs the input shape")
        self.output_shape(input_shape)
        return _conv2d.init(
            input_shape[2],
            self.out_channels,
            self.kernel_size,
            rng=rng,
            stride=self.stride,
            padding=self.padding,
            activation=self.activation,
            initializer=_init_or_default(self.initializer, self.activation),
            dtype=dtype,
        )


@attrs.frozen
class _PoolSpec:
    """A windowed pool: ``window`` (wh, ww), ``stride`` defaulting to the window."""

    window: tuple[int, int]
    stride: tuple[int, int] | None = None
    kind: ClassVar[str] = "pool"
    layer: ClassVar[type[MaxPool2D] | type[AvgPool2D]]
    has_parameters: ClassVar[bool] = False

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        h, w, c = _image(self.kind, input_shape)
        return (*pool2d_output_hw((h, w), self.window, self.stride or self.window), c)

    def init(
        self, *, rng: np.random.Generator, dtype: np.dtype[Any], **_: Any
    ) -> MaxPool2D | AvgPool2D:
        return self.layer(self.window, self.stride)


@attrs.frozen
class MaxPool2DSpec(_PoolSpec):
    """Max pooling (see :class:`fnn.MaxPool2D`)."""

    kind: ClassVar[str] = "max_pool2d"
    layer: ClassVar[type[MaxPool2D]] = MaxPool2D


@attrs.frozen
class AvgPool2DSpec(_PoolSpec):
    """Average pooling (see :class:`fnn.AvgPool2D`)."""

    kind: ClassVar[str] = "avg_pool2d"
    layer: ClassVar[type[AvgPool2D]] = AvgPool2D


@attrs.frozen
class GlobalAvgPool2DSpec:
    """Global average pooling: (h, w, c) -> (c,)."""

    has_parameters: ClassVar[bool] = False

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (_image("global_avg_pool2d", input_shape)[2],)

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any], **_: Any) -> GlobalAvgPool2D:
        return GlobalAvgPool2D()


@attrs.frozen
class FlattenSpec:
    """Flatten each sample (height, width, channel order)."""

    has_parameters: ClassVar[bool] = False

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any], **_: Any) -> Flatten:
        return Flatten()


def _features(kind: str, input_shape: tuple[int, ...] | None) -> int:
    if not input_shape:
        raise ValueError(f"{kind} needs the input shape to size itself")
    return input_shape[-1]


@attrs.frozen
class BatchNormSpec:
    """Batch norm over the last axis, sized from the input: scale ones, shift zeros,
    running mean zeros, running variance ones."""

    momentum: float = 0.1
    eps: float = 1e-5

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _features("batch_norm", input_shape)
        return tuple(input_shape)

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> BatchNorm:
        n = _features("batch_norm", input_shape)
        return BatchNorm.create(n, momentum=self.momentum, eps=self.eps, dtype=dtype)


@attrs.frozen
class LayerNormSpec:
    """Layer norm over the last axis, sized from the input: scale ones, shift zeros."""

    eps: float = 1e-5

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _features("layer_norm", input_shape)
        return tuple(input_shape)

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> LayerNorm:
        return LayerNorm.create(_features("layer_norm", input_shape), eps=self.eps, dtype=dtype)


@attrs.frozen
class EmbeddingSpec:
    """A token embedding of ``vocab_size`` ids into ``dim`` features: it takes token ids
    (T,) (T any length, None) and gives (T, dim)."""

    vocab_size: int
    dim: int

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 1:
            raise ValueError(f"embedding takes token ids of shape (T,), got {tuple(input_shape)}")
        return (input_shape[0], self.dim)

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any], **_: Any) -> Embedding:
        return _embedding.init(self.vocab_size, self.dim, rng=rng, dtype=dtype)


@attrs.frozen
class PositionalEmbeddingSpec:
    """A learned positional embedding of up to ``max_len`` positions, added to a
    sequence (T, d) (``d`` from the input)."""

    max_len: int

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 2:
            raise ValueError(
                f"positional_embedding expects sequences of shape (T, d), got {tuple(input_shape)}"
            )
        T = input_shape[0]
        if T is not None and self.max_len < T:
            raise ValueError(f"sequences of length {T} exceed max_len={self.max_len}")
        return tuple(input_shape)

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> PositionalEmbedding:
        if input_shape is None:
            raise ValueError("a positional_embedding spec needs the input shape")
        self.output_shape(input_shape)
        return _positional.init(self.max_len, input_shape[-1], rng=rng, dtype=dtype)


@attrs.frozen
class DropoutSpec:
    """A dropout layer dropping units with probability ``rate``."""

    rate: float
    has_parameters: ClassVar[bool] = False

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any], **_: Any) -> Dropout:
        return Dropout(rate=self.rate)


@attrs.frozen
class ActivationSpec:
    """An activation as a layer of its own."""

    activation: _activations.Activation = attrs.field(converter=_activations.get)
    has_parameters: ClassVar[bool] = False

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def init(self, *, rng: np.random.Generator, dtype: np.dtype[Any], **_: Any) -> Activation:
        return Activation(self.activation)


def _spec_tuple(value: Any, what: str) -> tuple[LayerSpec, ...]:
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


@attrs.frozen
class ResidualSpec:
    """A :class:`fnn.Residual` block: ``body(x) + shortcut(x)``, each a chain of specs
    sized from the block's input (an empty shortcut is the identity)."""

    body: tuple[LayerSpec, ...]
    shortcut: tuple[LayerSpec, ...] = ()

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shapes = [
            ("body", spec_chain_shape(self.body, input_shape, "{layer}.body")),
            ("shortcut", spec_chain_shape(self.shortcut, input_shape, "{layer}.shortcut")),
        ]
        return merged_shape("add", shapes, input_shape, "Residual")

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> Residual:
        if input_shape is None:
            raise ValueError("a residual spec needs the input shape")
        self.output_shape(input_shape)
        body, _ = init_chain(self.body, rng=rng, dtype=dtype, input_shape=input_shape)
        short, _ = init_chain(self.shortcut, rng=rng, dtype=dtype, input_shape=input_shape)
        return Residual(body=body, shortcut=short)


@attrs.frozen
class ParallelSpec:
    """A :class:`fnn.Parallel` block: branches of specs on the same input, joined by
    ``merge`` (``"concat"`` on the last axis or ``"add"``)."""

    branches: tuple[tuple[LayerSpec, ...], ...]
    merge: Merge = "concat"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shapes = [
            (f"branches.{k}", spec_chain_shape(b, input_shape, f"{{layer}}.branches.{k}"))
            for k, b in enumerate(self.branches)
        ]
        return merged_shape(self.merge, shapes, input_shape, "Parallel")

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> Parallel:
        if input_shape is None:
            raise ValueError("a parallel spec needs the input shape")
        self.output_shape(input_shape)
        branches = [
            init_chain(b, rng=rng, dtype=dtype, input_shape=input_shape)[0] for b in self.branches
        ]
        return Parallel(branches=branches, merge=self.merge)


# --- the functions sequential's users write --------------------------------------------


def dense(
    n_out: int,
    activation: _activations.Activation | str = "identity",
    initializer: _initializers.Initializer | str | None = None,
    bias: bool = True,
) -> DenseSpec:
    """A dense layer of ``n_out`` units (inputs from the previous layer), acting on the
    last axis (a sequence (T, d) gives (T, n_out)); ``bias=False``: no ``b``."""
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
    resolve_padding(padding, (1 << 20, 1 << 20), ks, st)  # checks the padding's values
    n = check_int(out_channels, "out_channels")
    return Conv2DSpec(n, ks, st, padding, activation, initializer)


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
    return ResidualSpec(_spec_tuple(body, "body"), _spec_tuple(shortcut, "shortcut"))


def parallel(branches: Sequence[Sequence[LayerSpec]], merge: Merge = "concat") -> ParallelSpec:
    """Branches of specs on the same input (:class:`fnn.Parallel`), at least two, joined
    by ``merge``: ``"concat"`` on the last axis (every other axis must match) or
    ``"add"`` (identical shapes)."""
    if isinstance(branches, str | bytes) or not isinstance(branches, Sequence):
        raise TypeError(
            f"branches must be a list of lists of layer specs, got {type(branches).__name__}"
        )
    out = tuple(_spec_tuple(b, f"branches[{k}]") for k, b in enumerate(branches))
    if len(out) < 2:
        raise ValueError(f"parallel needs at least 2 branches, got {len(out)}")
    if merge not in ("concat", "add"):
        raise ValueError(f"merge must be 'concat' or 'add', got {merge!r}")
    return ParallelSpec(out, merge)


# --- recurrent layers --------------------------------------------------------------------


@attrs.frozen
class _RecurrentSpec:
    """A recurrent layer of ``units`` hidden units over sequences (T, features), its
    input weights sized from the input (PyTorch's initialisation)."""

    units: int
    return_sequences: bool = False
    kind: ClassVar[str] = "recurrent"
    layer: ClassVar[type[Recurrent]]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return sequence_output_shape(
            self.kind, None, self.units, self.return_sequences, tuple(input_shape)
        )

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> Recurrent:
        if input_shape is None:
            raise ValueError(f"a {self.kind} spec needs the input shape")
        self.output_shape(input_shape)
        return self.layer.create(
            input_shape[1],
            self.units,
            rng=rng,
            return_sequences=self.return_sequences,
            dtype=dtype,
        )


@attrs.frozen
class SimpleRNNSpec(_RecurrentSpec):
    """A tanh recurrent layer (see :class:`fnn.SimpleRNN`)."""

    kind: ClassVar[str] = "simple_rnn"
    layer: ClassVar[type[Recurrent]] = SimpleRNN


@attrs.frozen
class LSTMSpec(_RecurrentSpec):
    """An LSTM layer (see :class:`fnn.LSTM`)."""

    kind: ClassVar[str] = "lstm"
    layer: ClassVar[type[Recurrent]] = LSTM


@attrs.frozen
class GRUSpec(_RecurrentSpec):
    """A GRU layer (see :class:`fnn.GRU`)."""

    kind: ClassVar[str] = "gru"
    layer: ClassVar[type[Recurrent]] = GRU


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


@attrs.frozen
class KindSpec:
    """A registered layer kind and its hyper-parameters, sized from the input: what
    :func:`layer` returns. ``init`` calls the kind's ``create``; ``output_shape`` is the
    output shape of the layer it creates (so no shape logic is written twice)."""

    kind: str
    hyper: dict[str, Any] = attrs.field(factory=dict)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
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
        create = LAYERS[self.kind].create
        assert create is not None  # checked by layer()
        if input_shape is None:
            raise ValueError(f"a {self.kind} spec needs the input shape")
        return create(tuple(input_shape), rng=rng, dtype=dtype, **self.hyper)  # type: ignore[no-any-return]


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


@attrs.frozen
class MultiHeadAttentionSpec:
    """Multi-head self-attention over per-sample inputs (T, d), d from the input shape
    (PyTorch's ``nn.MultiheadAttention`` initialisation)."""

    heads: int
    causal: bool = False
    bias: bool = True

    def _d_model(self, input_shape: tuple[int, ...] | None) -> int:
        if input_shape is None or len(input_shape) != 2 or (input_shape[0] or 1) < 1:
            raise ValueError(
                f"multi_head_attention needs per-sample inputs of shape (T, d_model), got "
                f"{None if input_shape is None else tuple(input_shape)}"
            )
        d = int(input_shape[1])
        check_heads(self.heads, d)
        return d

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._d_model(input_shape)
        return tuple(input_shape)

    def init(
        self,
        *,
        rng: np.random.Generator,
        dtype: np.dtype[Any],
        input_shape: tuple[int, ...] | None = None,
    ) -> MultiHeadAttention:
        d = self._d_model(input_shape)
        return MultiHeadAttention.create(
            d, self.heads, causal=self.causal, bias=self.bias, rng=rng, dtype=dtype
        )


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
    (e.g. an MLP of four times the input's width)."""

    body: Callable[[tuple[int, ...]], Sequence[LayerSpec]]

    def _spec(self, input_shape: tuple[int, ...]) -> ResidualSpec:
        return ResidualSpec(_spec_tuple(self.body(tuple(input_shape)), "body"))

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
        return self._spec(input_shape).init(rng=rng, dtype=dtype, input_shape=input_shape)


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
            LayerNormSpec(),
            dense(ratio * d, activation="gelu", bias=bias),
            dense(d, bias=bias),
            *drop(),
        ]

    attention = ResidualSpec(
        (LayerNormSpec(), multi_head_attention(heads, causal=causal, bias=bias), *drop())
    )
    return [attention, SizedResidualSpec(mlp)]
