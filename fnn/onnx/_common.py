"""What the writer and the reader of ONNX models share: the names and versions of the
format, layout permutations, the recurrent operators' gate order, and error text.

Importing it imports ``onnx`` (an ImportError that names the extra if it is missing).
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

try:
    import onnx
except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fnn.onnx needs the onnx package: pip install 'fnn[onnx]'") from e

DEFAULT_OPSET: Final = 18
"""The opset :func:`fnn.onnx.export` writes unless told otherwise (ONNX Runtime 1.14 and
later)."""
MIN_OPSET: Final = 17
"""The oldest opset :func:`fnn.onnx.export` writes (LayerNormalization needs 17)."""
INPUT_NAME: Final = "X"
"""The exported model's input: (batch, *input_shape), channels-last."""
OUTPUT_NAME: Final = "output"
"""The exported model's output: (batch, n_outputs), as :func:`fnn.predict` returns."""
METADATA_KEY: Final = "fnn"
FORMAT: Final = "fnn-onnx"
FORMAT_VERSION: Final = 1
MAX_BLOCK_DEPTH: Final = 64
"""The deepest blocks (residual or parallel) may nest in a graph fnn reads."""
MAX_BYTES: Final = 2 << 30
"""The default ``max_bytes`` of :func:`fnn.onnx.load` (2 GiB)."""

ELEM: Final = {
    np.dtype(np.float32): onnx.TensorProto.FLOAT,
    np.dtype(np.float64): onnx.TensorProto.DOUBLE,
}
"""ONNX's element type of each float dtype fnn computes in."""

GATE_ORDER: Final[dict[str, tuple[int, ...]]] = {
    "simple_rnn": (0,),
    "lstm": (0, 3, 1, 2),
    "gru": (1, 0, 2),
}
"""ONNX's gate blocks, as indices of fnn's (PyTorch's), by layer kind: LSTM i, o, f, c
from i, f, g, o; GRU z, r, h from r, z, n."""


def cl_to_cf(rank: int) -> list[int]:
    """Channels-last to channels-first: (0, r-1, 1, ..., r-2)."""
    return [0, rank - 1, *range(1, rank - 1)]


def cf_to_cl(rank: int) -> list[int]:
    """Channels-first to channels-last: (0, 2, ..., r-1, 1)."""
    return [0, *range(2, rank), 1]


def onnx_gates(a: np.ndarray[Any, Any], order: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """``a`` (..., G * units) with its G gate blocks in ``order``."""
    blocks = np.split(a, len(order), axis=-1)
    return np.concatenate([blocks[k] for k in order], axis=-1)


def clip(text: str, limit: int = 200) -> str:
    """``text``, cut in the middle to at most about ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ... ({len(text) - 2 * half} characters) ... {text[-half:]}"


def listed(items: Sequence[str], most: int = 8) -> str:
    """``items`` joined, the first ``most`` of them and "... and N more"."""
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} ... and {len(items) - most} more"


def node_names(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """Each node as ``'name' (OpType)``, for error messages."""
    return [f"{clip(repr(n.name or n.output[0]), 60)} ({n.op_type})" for n in nodes]
