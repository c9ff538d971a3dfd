"""Passes over ``(m, C)`` arrays that combine every row with a vector of C values.

Batch norm broadcasts a vector per channel along ``m = n h w`` rows. With few channels
(C = 32 in a small CNN) NumPy runs such a broadcast as m inner loops of only C
elements, about 1.5x slower than a flat pass; and a pass over an array larger than the
cache goes to memory and back, once per operation.

:class:`ChannelRows` views the rows as ``(m // R, R C)``, R consecutive rows side by
side, with each vector tiled R times (:meth:`ChannelRows.tile`), so the inner loops are
long; and it runs a pass in blocks of about :data:`BLOCK_BYTES` of one array, so the
several operations of a block work on data still in cache. The ``m % R`` rows left
over form a tail, worked untiled.

The blocks depend on the sizes alone. They are grouped into the chunks of
:func:`fnn.threads.split` and run on fnn's threads; column sums are kept per chunk and
added in chunk order, so every thread count gives the same bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import threads
from fnn._types import FloatArray

__all__ = ["BLOCK_BYTES", "DIRECT_BYTES", "ChannelRows"]

BLOCK_BYTES = 512 << 10
"""Bytes of one array that a block covers (512 KiB): a block's inputs, output and
temporary stay in a core's L2 cache between its operations."""

DIRECT_BYTES = 256 << 10
"""Arrays of at most this many bytes (256 KiB) are worked in one untiled block with no
chunk bookkeeping: on them the tiling and the per-chunk sums cost more than they save
(a batch norm of 32 x 16 took 45 µs forward and backward worked directly, 93 µs
tiled)."""

TILE_ELEMENTS = 2048
"""Elements of a tiled row ``R C`` aimed at (R = TILE_ELEMENTS // C, at least 1)."""

BlockFn = Callable[[int, int, int, FloatArray], tuple[FloatArray, ...]]
"""``fn(part, lo, hi, tmp)``: works rows ``lo:hi`` of part ``part`` (0 the tiled body,
1 the tail) of every array (:meth:`ChannelRows.parts`), and returns the column sums it
keeps over those rows (each (R C,) for the body, (C,) for the tail), or ``()``. ``tmp``
is scratch of the part's width and at least ``hi - lo`` rows, for this call alone."""


@attrs.frozen
class ChannelRows:
    """How a pass over ``(m, C)`` arrays is tiled and blocked (module docstring).

    ``R`` rows are laid side by side in each of the ``t = m // R`` rows of the body;
    ``block`` body rows make a block.
    """

    m: int
    C: int
    R: int
    t: int
    block: int

    @classmethod
    def of(cls, m: int, C: int, itemsize: int) -> ChannelRows:
        if m * C * itemsize <= DIRECT_BYTES:
            return cls(m=m, C=C, R=1, t=m, block=max(1, m))  # one untiled block
        R = max(1, TILE_ELEMENTS // max(1, C))
        t = m // R
        block = max(1, BLOCK_BYTES // (R * C * itemsize))
        return cls(m=m, C=C, R=R, t=t, block=block)

    def parts(self, a: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``a`` (m, C) as its body (t, R C) and its tail (m - t R, C), both views."""
        if self.R == 1 and self.t == self.m:  # untiled, no tail: the array itself
            return a, a[:0]
        cut = self.t * self.R
        return a[:cut].reshape(self.t, self.R * self.C), a[cut:]

    def tile(self, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """A vector (C,) as the body's (R C,) and the tail's (C,)."""
        return (v if self.R == 1 else np.tile(v, self.R)), v

    def run(self, fn: BlockFn, nbytes: int, dtype: Any, n_sums: int = 0) -> FloatArray:
        """Call ``fn`` on every block of the body (spread over fnn's threads) and then on
        the tail, and return the ``n_sums`` column sums it returns, added over all rows
        in a fixed order, as ``(n_sums, C)`` (``(0, C)`` when ``n_sums`` is 0).

        Args:
            fn: the block kernel (:data:`BlockFn`).
            nbytes: the bytes the pass reads (sets the number of chunks).
            n_sums: how many column sums ``fn`` returns.
            dtype: the dtype of the sums and of the scratch handed to ``fn``.
        """
        L = self.R * self.C
        if self.R == 1 and self.t <= self.block:  # one untiled block, no tail
            got = fn(0, 0, self.t, np.empty((self.t, L), dtype))
            return np.array(got, dtype).reshape(n_sums, self.C)
        ranges = threads.split(self.t, nbytes)
        acc = np.zeros((len(ranges), n_sums, L), dtype)

        def chunk(i: int) -> None:
            lo, hi = ranges[i]
            tmp = np.empty((min(self.block, hi - lo), L), dtype)  # this chunk's own
            for s in range(lo, hi, self.block):
                got = fn(0, s, min(hi, s + self.block), tmp)
                for j in range(n_sums):
                    acc[i, j] += got[j]

        threads.parallel_for(len(ranges), chunk)
        total = np.zeros((n_sums, self.C), dtype)
        for i in range(len(ranges)):  # chunk order: the same for any thread count
            total += acc[i].reshape(n_sums, self.R, self.C).sum(axis=1)
        if self.t * self.R < self.m:
            r = self.m - self.t * self.R
            got = fn(1, 0, r, np.empty((r, self.C), dtype))
            for j in range(n_sums):
                total[j] += got[j]
        return total
