"""Reading an ONNX model as an fnn network (:func:`load`): the file checked and its
external data read within bounds, the graph read as layers, and the layers grouped by
fnn's metadata or, without it, fused (an activation into the layer before it)."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import onnx

from fnn import activations as _act
from fnn import losses as _losses
from fnn import tree
from fnn.layers.activation import Activation
from fnn.layers.composite import Parallel, Residual
from fnn.layers.flatten import Flatten
from fnn.network import Network, pack
from fnn.onnx._common import MAX_BYTES, clip
from fnn.onnx._graph_reader import Block
from fnn.onnx._metadata import align, check_metadata, parse_metadata, takes_activation
from fnn.onnx._sequence_reader import SequenceReader

__all__ = ["load"]


def _fuse(ops: list[Any]) -> list[Any]:
    """Without fnn's metadata: identity and no-op layers dropped, each activation that
    follows a dense or convolution layer made that layer's own."""
    out: list[Any] = []
    for op in ops:
        if isinstance(op, Block):
            out.append(_composite(op.merge, [_fuse(c) for c in op.chains]))
            continue
        if isinstance(op, Activation) and type(op.activation) is _act.Identity:
            continue
        if isinstance(op, Activation) and out and takes_activation(out[-1]):
            out[-1] = attrs.evolve(out[-1], activation=op.activation)
            continue
        out.append(op)
    return out


def _composite(merge: str, chains: list[list[Any]]) -> Residual | Parallel:
    """The fnn layer of a block read without fnn's metadata: two paths added are a
    residual block (the body the first path that has layers), others a parallel one."""
    if merge == "add" and len(chains) == 2:
        body, other = chains if chains[0] or not chains[1] else chains[::-1]
        return Residual(body=body, shortcut=other)
    return Parallel(branches=chains, merge="concat" if merge == "concat" else "add")


def _read_external_data(path: Path, model: onnx.ModelProto, max_bytes: int) -> None:
    """Bring initializers kept in files beside the model (PyTorch's exporter writes
    ``model.onnx.data``) into the model: only regular files in the model's folder, read
    at their declared offset and length."""
    folder = path.resolve().parent
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        where = info.get("location", "")
        if "\0" in where:
            raise ValueError(
                f"{path}: tensor {clip(repr(t.name), 60)} has a NUL byte in its external-data "
                f"location {clip(repr(where), 100)}"
            )
        target = (folder / where).resolve()
        if not where or Path(where).is_absolute() or not target.is_relative_to(folder):
            raise ValueError(
                f"{path}: tensor {t.name!r} points outside the model's folder ({where!r})"
            )
        if not target.is_file():
            raise ValueError(f"{path}: tensor {t.name!r} keeps its data in {target}, not found")
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else target.stat().st_size - offset
        except ValueError:
            raise ValueError(
                f"{path}: tensor {t.name!r} has a malformed offset or length"
            ) from None
        if length > max_bytes:
            raise ValueError(
                f"{path}: tensor {t.name!r} declares {length} bytes, more than max_bytes "
                f"({max_bytes})"
            )
        if offset < 0 or length < 0 or offset + length > target.stat().st_size:
            raise ValueError(
                f"{path}: tensor {t.name!r} reads bytes {offset}..{offset + length} of {target}, "
                f"which has {target.stat().st_size}"
            )
        with target.open("rb") as f:
            f.seek(offset)
            t.raw_data = f.read(length)
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT


def load(
    path: str | os.PathLike[str],
    *,
    loss: _losses.Loss | str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Network:
    """Read an ONNX model as an fnn network.

    Reads every model :func:`export` wrote (giving back the same layers, arrays,
    hyper-parameters and loss, from the model's metadata) and feed-forward models from
    other tools, such as PyTorch's exporters (``torch.onnx.export``, both the default
    dynamo exporter and ``dynamo=False``) for ``nn.Sequential`` networks of the
    operators listed in the module docstring. A channels-first image model becomes a
    channels-last network: :func:`fnn.predict` on ``(n, h, w, c)`` input equals the
    source model on ``(n, c, h, w)``. The network's dtype is the model input's (float
    or double).

    Args:
        path: the ``.onnx`` file.
        loss: the loss to train the network with. By default the metadata's loss for
            a model fnn wrote; otherwise a graph ending in ``Softmax`` gets softmax
            cross-entropy, one ending in ``Sigmoid`` binary cross-entropy and one ending
            in logits an identity output with mean squared error. Give e.g.
            ``loss="softmax_cross_entropy"`` to fine-tune a classifier that ends in
            logits; the final Softmax or Sigmoid node must then agree with its output.
        max_bytes: the most bytes one declared size may take (a tensor, a folded
            constant, one sample of any layer's input or output, at 8 bytes a value);
            every declared size is checked before anything is made, and a larger one is
            a ValueError. Default :data:`MAX_BYTES` (2 GiB).

    Returns:
        A :class:`fnn.Network` (read-only arrays in one buffer).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file, for a file that is not a valid ONNX model
            (truncated, corrupted); naming the node and the operator, for an operator
            or attribute fnn cannot express, or shapes that do not fit; for a model
            whose fnn metadata disagrees with its graph.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int | np.integer):
        raise TypeError(f"max_bytes must be an int, got {type(max_bytes).__name__}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no ONNX model at {p}")
    data = p.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f"{p}: not an ONNX model (corrupted or truncated): {e}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ValueError(f"{p}: not an ONNX model (corrupted or truncated): it has no graph")
    _read_external_data(p, model, int(max_bytes))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{p}: not a valid ONNX model (corrupted or truncated): {first}") from None
    meta = parse_metadata(p, model)
    reader = SequenceReader(p, model, meta, int(max_bytes))
    try:
        ops, _, input_shape, dtype = reader.read()
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise ValueError(f"{p}: malformed model: {type(e).__name__}: {e}") from None
    # the output activation: the metadata's, the loss's, or the graph's last node
    graph_output = reader.output
    last = ops[-1] if ops else None
    if graph_output == "identity" and isinstance(last, Activation):
        graph_output = "sigmoid" if type(last.activation) is _act.Sigmoid else "identity"
    if meta is not None:
        check_metadata(p, meta, graph_output, input_shape, dtype)
    the_loss: _losses.Loss
    if loss is not None:
        the_loss = _losses.get(loss)
    elif meta is not None:
        the_loss = _losses.get(meta["loss"])
    else:
        the_loss = _losses.DEFAULT_FOR_OUTPUT[graph_output]()
    want = the_loss.output
    if graph_output == "softmax" and want != "softmax":
        raise ValueError(
            f"{p}: the graph ends in Softmax, which fits only a softmax output, not the loss "
            f"{the_loss.name!r} (output {want!r})"
        )
    if graph_output == "sigmoid" and want == "sigmoid":
        ops = ops[:-1]
    elif want == "sigmoid" and meta is not None:
        raise ValueError(f"{p}: the metadata's loss needs a final Sigmoid, the graph has none")
    if meta is not None:
        layers = align(lambda m: ValueError(f"{p}: {clip(m, 700)}"), ops, meta["layers"])
    else:
        layers = _fuse(ops)
        layers = [
            layer
            for k, layer in enumerate(layers)
            if not isinstance(layer, Flatten) or not _flat_before(layers[:k], input_shape)
        ]
    cast = [_as_dtype(layer, dtype) for layer in layers]
    if not cast:
        cast = [Flatten()]
    try:
        return pack(Network(layers=cast, loss=the_loss, input_shape=input_shape))
    except ValueError as e:
        raise ValueError(f"{p}: the network cannot be built: {e}") from None


def _flat_before(layers: list[Any], input_shape: tuple[int | None, ...]) -> bool:
    """Whether the layers give vectors (a flatten after them does nothing)."""
    shape = input_shape
    for layer in layers:
        shape = tuple(layer.output_shape(shape))
    return len(shape) == 1


def _as_dtype(layer: Any, dtype: np.dtype[Any]) -> Any:
    return tree.map(lambda v: np.asarray(v, dtype=dtype), layer)
