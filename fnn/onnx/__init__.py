"""ONNX export and import: networks that leave fnn and come in.

:func:`export` writes a network as an ONNX model that ONNX Runtime (or any ONNX
runtime) runs with the result of :func:`fnn.predict`; :func:`load` reads back what
:func:`export` wrote, and the feed-forward models PyTorch's exporters write.

**The exported model.**

- Input ``"X"``: shape ``(batch, *net.input_shape)`` in fnn's layout, channels-last
  for images (``(batch, height, width, channels)``), of the network's dtype (float32
  or float64); the batch dimension is dynamic (named ``"batch"``).
- Output ``"output"``: ``(batch, n_outputs)``, what :func:`fnn.predict` returns: the
  logits through the loss's output activation (Sigmoid, Softmax over the last axis,
  or none).
- Opset: :data:`DEFAULT_OPSET` (18) unless ``opset=`` says otherwise; any opset from
  :data:`MIN_OPSET` (17, the first with LayerNormalization) to the newest the
  installed ``onnx`` knows. The IR version is the lowest that opset allows, so older
  runtimes read the file.
- Convolutions and pools run in ONNX's channels-first layout: a ``Transpose`` goes in
  before the first of a run of them and one back before ``Flatten`` (and before a
  layer norm), so a dense layer's weights are stored as fnn has them.
- A residual block (:class:`fnn.Residual`) is its two paths joined by ``Add`` (an
  empty shortcut is the block's input itself); a parallel block (:class:`fnn.Parallel`)
  its branches joined by ``Concat`` on the channel axis (axis 1 of a channels-first
  image inside the model, the last axis of vectors and sequences), by ``Add`` (two
  branches) or ``Sum`` (more). Blocks nest. Every path of a block ends in one layout
  (the first non-empty path's), so a ``Transpose`` may go in before the join.
- Sequence networks: token ids come in as int64 ``(batch, T)``, and a time axis of any
  length is the dynamic dimension ``"T"``. An embedding is ``Gather``; a dense layer on
  a sequence ``MatMul`` and ``Add``; a positional embedding adds ``P[:T]`` (``Slice``);
  SimpleRNN, LSTM and GRU are ONNX's ``RNN``, ``LSTM`` (gates i, o, f, c) and ``GRU``
  (z, r, h, ``linear_before_reset=1``) on the time-major sequence; attention is written
  out as ``MatMul``, ``Reshape``, ``Transpose`` and ``Softmax``, with the causal mask
  made by ``Trilu`` from the input's length.
- Each layer is written by the exporter registered for its kind
  (:func:`register_exporter`); a kind without one is refused, naming it.
- Dropout is the identity (an ``Identity`` node); batch and layer norm are in
  inference mode (``BatchNormalization`` with the running statistics,
  ``LayerNormalization`` over the last axis); GELU is fnn's tanh form (``Gelu`` with
  ``approximate="tanh"`` from opset 20, the formula before it, and always the formula
  with float64 constants in a float64 network, since the ``Gelu`` operator's reference
  definition rounds its constants to float32).
- ONNX keeps float attributes in float32. A batch or layer norm's epsilon is such
  an attribute: in a float64 network whose epsilon is not a float32 number (1e-5 is
  not), the runtime adds a slightly different epsilon, which changes the output by up
  to about 1e-9 relative where the normalised values are nearly equal. A float64
  network whose leaky-ReLU slope or ELU alpha is not a float32 number gets the
  activation written out with float64 constants instead, so its output stays the
  network's to float64 precision.
- ``metadata_props`` hold ``"fnn"``: JSON with the format, the fnn version, the dtype,
  the input shape, the loss's config and every layer's ``config()``, so :func:`load`
  gives back the same network (the same layers, hyper-parameters, arrays and loss).

**Import.** :func:`load` reads the graph node by node and builds the fnn layers that
compute it: ``Gemm`` or ``MatMul`` (+ ``Add``), ``Conv`` (with batch norm folded in
or not), ``MaxPool``, ``AveragePool``, ``GlobalAveragePool`` (or ``ReduceMean`` over
the pixels), ``BatchNormalization``, ``LayerNormalization``, ``Flatten`` or a
``Reshape`` that flattens, ``Dropout``, ``Identity``, ``Relu``, ``LeakyRelu``,
``Elu``, ``Sigmoid``, ``Tanh``, ``Softplus``, ``Gelu`` (tanh form) and a final
``Softmax`` (of logits or of per-position logits); ``Gather`` of a table by token ids
(an embedding), ``RNN``, ``LSTM`` and ``GRU`` (one forward direction, PyTorch's
activations, zero initial state, as both of PyTorch's exporters write ``nn.RNN``,
``nn.LSTM`` and ``nn.GRU`` with ``batch_first=True``; the dynamo exporter's ``nn.RNN``,
written out step by step, is recognised node by node) and the last step of their
sequence (``y[:, -1]``); the positional embedding and the multi-head attention
:func:`export` writes, recognised node by node with their exact constants, so fnn's
transformers read back. A time axis of any length (a dynamic ``T``) stays one.
Values computed only from shapes (zero initial states, a causal mask, a reshape's
target) are evaluated without making data. Paths that
leave one value and rejoin through ``Add`` or ``Sum`` (of identical shapes) or
``Concat`` (on the channels or features) are a block: two paths added become an
:class:`fnn.Residual` (the first path with layers its body, the other its shortcut,
empty for the identity), other joins an :class:`fnn.Parallel`; each path
is read as a chain of layers, and blocks nest up to :data:`MAX_BLOCK_DEPTH` deep.
Paths that share nodes, or cross between blocks, are an error naming the node. An
activation written out as several elementwise nodes (PyTorch's tanh-GELU before opset
20) is recognised by its structure and exact constants, never by its values: anything
else is an error naming the node. A channels-first graph (as
PyTorch writes) becomes a channels-last network: the dense layer after a flatten gets
its rows permuted, so :func:`fnn.predict` on ``(n, h, w, c)`` input equals the source
model on ``(n, c, h, w)``.

Nothing in a model file is executed: the file is parsed as protobuf (initializers kept
as external data are read only from regular files in the model's folder, at their
declared offset and length; other external tensors are refused), and constants are
folded by a few NumPy lines per operator for a short list of shape and arithmetic
operators.

**The package.** :mod:`fnn.onnx.writer` writes a network (:func:`export`);
:mod:`fnn.onnx.builder` holds the graph being written and the per-kind exporters
(:func:`register_exporter`, :func:`register_activation_exporter`), so a user's layer
kind gets an ONNX form without editing fnn; :mod:`fnn.onnx.loader` reads a model
(:func:`load`). Importing :mod:`fnn.onnx` imports ``onnx``; ``import fnn`` does not.
"""

from __future__ import annotations

from fnn.onnx._common import (
    DEFAULT_OPSET,
    INPUT_NAME,
    MAX_BLOCK_DEPTH,
    MAX_BYTES,
    MIN_OPSET,
    OUTPUT_NAME,
)
from fnn.onnx.builder import (
    ActivationExporter,
    Exporter,
    GraphBuilder,
    register_activation_exporter,
    register_exporter,
)
from fnn.onnx.loader import load
from fnn.onnx.writer import export

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "MAX_BLOCK_DEPTH",
    "MAX_BYTES",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "ActivationExporter",
    "Exporter",
    "GraphBuilder",
    "export",
    "load",
    "register_activation_exporter",
    "register_exporter",
]
