"""Issue 22, point 3: inference builds no cache and bounds its memory.

``predict`` runs the layers chunk by chunk, dropping each layer's cache as soon as the
next layer has read its output, and writes the chunks' logits into one array: its peak
is its output plus about one chunk's activations, whatever the number of rows.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import fnn
import fnn.network
from fnn import specs
from fnn.network import inference_rows


def cnn() -> fnn.Network:
    arch = fnn.sequential(
        (12, 12, 1),
        [
            specs.conv2d(8, 3),
            specs.batch_norm(),
            specs.activation("relu"),
            specs.max_pool2d(2),
            specs.conv2d(8, 3),
            specs.flatten(),
            specs.dense(16, activation="relu"),
            specs.dense(4),
        ],
        output="softmax",
        dtype=np.float32,
    )
    return fnn.init(arch, rng=0)


def test_chunked_predict_gives_forward_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk's rows get the bits of forward on those rows (BLAS's bits depend on a
    product's size, so the chunks are the ones predict uses)."""
    net = cnn()
    X = np.random.default_rng(0).random((300, 12, 12, 1), dtype=np.float32)
    monkeypatch.setattr(fnn.network.inference, "INFERENCE_BYTES", 1 << 16)
    rows = inference_rows(net)
    assert rows < 100  # so predict runs several chunks, the last one shorter
    want = np.concatenate([fnn.forward(net, X[i : i + rows])[0] for i in range(0, 300, rows)])
    np.testing.assert_array_equal(fnn.predict(net, X), want)


def test_predict_peak_is_its_output_plus_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    net = cnn()
    monkeypatch.setattr(fnn.network.inference, "INFERENCE_BYTES", 1 << 20)
    rows = inference_rows(net)
    n = 20 * rows
    X = np.random.default_rng(0).random((n, 12, 12, 1), dtype=np.float32)
    fnn.predict(net, X[: 2 * rows])  # one-off allocations (kernels' caches) first
    tracemalloc.start()
    try:
        out = fnn.predict(net, X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_sample = sum(math.prod(d for d in s if d is not None) for s in net.shapes)
    activations = rows * per_sample * net.dtype.itemsize
    floor = out.nbytes + activations
    assert peak <= 1.5 * floor, f"peak {peak / 2**20:.2f} MiB, floor {floor / 2**20:.2f} MiB"
