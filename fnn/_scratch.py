"""Private scratch memory kept from one ``fnn.fit`` call for the next.

Memory fresh from the operating system costs a page fault on first touch: about 2.5 us
per 4 KiB page on the 2-core virtual machines measured, so the ~66 MB of private
buffers of a fit of a 6.3M-parameter network (the spare parameter buffer, the gradient
buffer, each layer's activations) cost ~150 ms before its first step ends, 5 ms per step
over a 32-step fit. A fit takes its private buffers here and gives them back when it
ends normally; the next fit with the same shapes reuses them.

Only arrays that no caller ever saw are given back (parameters and optimizer state
handed to the caller never are), and only the last fit's, up to :data:`LIMIT_BYTES`:
what was kept before is dropped. Each array is taken by one fit at a time
(``list.pop`` is atomic), so concurrent fits in threads are safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fnn._types import FloatArray

LIMIT_BYTES = 256 << 20
"""The most memory kept between fits (256 MiB); a larger fit's buffers are freed."""

_kept: dict[tuple[tuple[int, ...], np.dtype[Any]], list[FloatArray]] = {}


def take(shape: tuple[int, ...], dtype: np.dtype[Any]) -> FloatArray:
    """A writable, C-contiguous array of ``shape`` and ``dtype`` with undefined contents:
    one kept from the last fit if there is one, else a new one."""
    stack = _kept.get((shape, np.dtype(dtype)))
    if stack:
        try:
            return stack.pop()
        except IndexError:  # another thread took the last one
            pass
    return np.empty(shape, dtype)


def keep(arrays: Iterable[FloatArray]) -> None:
    """Keep these arrays (private to the caller, who must not use them afterwards) for
    the next fit, in place of whatever was kept before, up to :data:`LIMIT_BYTES`."""
    new: dict[tuple[tuple[int, ...], np.dtype[Any]], list[FloatArray]] = {}
    total = 0
    for a in arrays:
        total += a.nbytes
        if total > LIMIT_BYTES:
            break
        new.setdefault((a.shape, a.dtype), []).append(a)
    _kept.clear()
    _kept.update(new)


def clear() -> None:
    """Drop everything kept (the memory goes back to the allocator)."""
    _kept.clear()
