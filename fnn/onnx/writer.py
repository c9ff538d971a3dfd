"""Writing a network as an ONNX model (:func:`export`): the graph's input and output,
the output activation, fnn's metadata, and the file written atomically. The layers'
nodes come from their kinds' exporters (:mod:`fnn.onnx.builder`)."""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from fnn._atomic import write_atomically
from fnn._version import VERSION
from fnn.network import Network
from fnn.onnx import _export_activations as _export_activations  # registers the built-ins
from fnn.onnx import _export_layers as _export_layers  # registers the built-ins
from fnn.onnx._common import (
    DEFAULT_OPSET,
    ELEM,
    FORMAT,
    FORMAT_VERSION,
    INPUT_NAME,
    METADATA_KEY,
    MIN_OPSET,
    OUTPUT_NAME,
)
from fnn.onnx.builder import GraphBuilder

__all__ = ["export"]


def _model(net: Network, opset: int) -> onnx.ModelProto:
    dtype = net.dtype
    if dtype not in ELEM:
        raise ValueError(f"only float32 and float64 networks can be exported, got {dtype}")
    b = GraphBuilder(dtype, opset)
    assert net.input_shape is not None
    # a time axis of any length (None) is the dynamic dimension "T"; its size here is
    # only for following shapes through the layers
    dims: list[int | str] = ["T" if d is None else int(d) for d in net.input_shape]
    input_shape = tuple(1 if d is None else int(d) for d in net.input_shape)
    b.chain("layers", net.layers, input_shape)
    out_dims: list[int | str] = ["T" if d is None else int(d) for d in net.shapes[-1]]
    output = net.loss.output
    if output == "sigmoid":
        b.node("output", "Sigmoid")
    elif output == "softmax":
        b.node("output", "Softmax", axis=-1)
    if b.cur == INPUT_NAME:
        b.node("output", "Identity")
    last = b.nodes[-1]
    last.output[0] = OUTPUT_NAME
    elem = ELEM[dtype]
    in_elem = elem if net.input_ids is None else onnx.TensorProto.INT64
    inputs = [helper.make_tensor_value_info(INPUT_NAME, in_elem, ["batch", *dims])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", *out_dims])]
    graph = helper.make_graph(
        b.nodes,
        "fnn",
        inputs,
        outputs,
        initializer=b.inits,
        doc_string=(
            f"fnn network: input {INPUT_NAME} (batch, "
            f"{', '.join(map(str, dims))}) channels-last, output "
            f"{OUTPUT_NAME} (batch, {', '.join(map(str, out_dims))}) after the {output} "
            "output activation"
        ),
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="fnn",
        producer_version=VERSION,
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "fnn_version": VERSION,
        "dtype": str(dtype),
        "input_shape": list(net.input_shape),
        "loss": net.loss.config(),
        "layers": [layer.config() for layer in net.layers],
    }
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    return model


def _check_opset(opset: object) -> int:
    newest = int(onnx.defs.onnx_opset_version())
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, int | np.integer):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be between {MIN_OPSET} and {newest} (the newest the installed onnx "
            f"knows), got {opset}"
        )
    return int(opset)


def export(net: Network, path: str | os.PathLike[str], *, opset: int | None = None) -> Path:
    """Write ``net`` as an ONNX model that computes :func:`fnn.predict`.

    Args:
        net: the network (float32 or float64); every layer's kind and activation
            needs an exporter (fnn's built-in kinds have one; a user's kind gets one
            with :func:`fnn.onnx.register_exporter`).
        path: the file to write (conventionally ``.onnx``).
        opset: the ONNX opset, from :data:`MIN_OPSET` (17) to the newest the installed
            ``onnx`` knows; default :data:`DEFAULT_OPSET` (18).

    Returns:
        The path written. The model's input is ``"X"`` (batch, *net.input_shape),
        channels-last, the output ``"output"`` (batch, n_outputs), both of the
        network's dtype, with a dynamic batch dimension; ``onnx.checker`` passes on it.
        The file is written atomically (a temporary file in the same folder, then a
        rename), so a write that fails half-way leaves the previous file intact.

    Raises:
        TypeError: ``net`` is not a Network, or ``opset`` not an int.
        ValueError: a layer or activation has no ONNX exporter (naming its kind and
            :func:`fnn.onnx.register_exporter`), or the opset is out of range.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be an fnn.Network, got {type(net).__name__}")
    model = _model(net, _check_opset(opset))
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    target = Path(path)
    write_atomically(target, lambda f: f.write(data))
    return target
