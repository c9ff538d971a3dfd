"""Reading files that declare their own sizes (checkpoints, IDX data), in memory bounded
by what they declare.

A reader takes each size a file declares, checks it against the caller's ``max_bytes``
(:data:`MAX_BYTES` by default) before anything of that size is allocated or
decompressed, then reads the data straight into the array it returns: at most the
declared bytes, never the whole file first, and one byte more to tell a file that holds
more than it declares.
"""

from __future__ import annotations

import os
from typing import Any, Final, Protocol

import numpy as np

from fnn._validation import check_int

__all__ = ["CHUNK", "MAX_BYTES", "check_declared_size", "check_max_bytes", "read_into"]

MAX_BYTES: Final = 2 << 30
"""The default ``max_bytes`` of the readers of files: the most a file may declare that
it holds (2 GiB) before it is refused unread. Callers pass a larger one to read more."""

CHUNK: Final = 1 << 20
"""The most bytes decompressed or read at a time (besides the array being filled)."""


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def check_max_bytes(max_bytes: object) -> int:
    """``max_bytes`` as an int >= 1 (TypeError for other kinds, ValueError below 1)."""
    return check_int(max_bytes, "max_bytes", 1)


def check_declared_size(source: str | os.PathLike[str], what: str, n: int, max_bytes: int) -> None:
    """ValueError naming ``source`` unless ``n``, the bytes a file declares for ``what``,
    is at most ``max_bytes``: checked before anything of that size is read or allocated."""
    if n > max_bytes:
        raise ValueError(
            f"{source}: {what} declares {n:,} bytes, more than max_bytes={max_bytes:,} "
            "(pass a larger max_bytes= to read it)"
        )


def read_into(f: Readable, out: np.ndarray[Any, Any]) -> int:
    """Fill ``out`` (C-contiguous, writable) from ``f``, :data:`CHUNK` bytes at a time;
    returns the bytes read, fewer than ``out.nbytes`` only if ``f`` ended first."""
    buf = out.reshape(-1).view(np.uint8)  # the same memory, as bytes
    n, pos = buf.size, 0
    while pos < n:
        chunk = f.read(min(CHUNK, n - pos))
        if not chunk:
            break
        buf[pos : pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        pos += len(chunk)
    return pos
