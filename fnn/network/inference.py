"""Inference: :func:`predict` and the chunked, cache-free forward pass under it
(:func:`logits_of`), whose chunk size bounds its memory (:func:`inference_rows`).
"""

from __future__ import annotations

import math

import numpy as np

from fnn._types import ArrayLike, FloatArray, Shape
from fnn.layers.base import (
    FRESH,
    PREDICT,
    forward_kernel,
    working_size_of,
)
from fnn.network._plan import layer_failed
from fnn.network.values import Network, check_input, check_network

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
            layer_failed(layers, i, e)
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
