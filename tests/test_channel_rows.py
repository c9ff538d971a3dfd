"""The tiled, blocked passes over (m, C) arrays that batch norm runs on
(fnn/layers/_channel_rows.py): every row worked exactly once, sums right, the same
bytes for every thread count."""

from __future__ import annotations

import numpy as np
import pytest

import fnn
from fnn import threads
from fnn._types import FloatArray
from fnn.layers import _channel_rows
from fnn.layers._channel_rows import ChannelRows

pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks and blocks, so small arrays are tiled and split many ways."""
    monkeypatch.setattr(threads, "GRAIN_BYTES", 1 << 10)
    monkeypatch.setattr(_channel_rows, "DIRECT_BYTES", 0)
    monkeypatch.setattr(_channel_rows, "BLOCK_BYTES", 1 << 10)
    monkeypatch.setattr(_channel_rows, "TILE_ELEMENTS", 64)


def _centre_and_square(
    x: FloatArray, v: FloatArray, n_threads: int
) -> tuple[FloatArray, FloatArray, list[tuple[int, int, int]]]:
    fnn.set_num_threads(n_threads)
    m, C = x.shape
    rows = ChannelRows.of(m, C, x.itemsize)
    out = np.full_like(x, np.nan)
    xs, os, vt = rows.parts(x), rows.parts(out), rows.tile(v)
    calls: list[tuple[int, int, int]] = []

    def block(p: int, lo: int, hi: int, tmp: FloatArray) -> tuple[FloatArray, FloatArray]:
        calls.append((p, lo, hi))
        o, sq = os[p][lo:hi], tmp[: hi - lo]
        np.subtract(xs[p][lo:hi], vt[p], out=o)
        np.multiply(o, o, out=sq)
        return o.sum(axis=0), sq.sum(axis=0)

    sums = rows.run(block, x.nbytes, x.dtype, n_sums=2)
    return out, sums, calls


@pytest.mark.parametrize("m", [1, 5, 32, 67, 300])
@pytest.mark.parametrize("C", [1, 3, 8, 70])
def test_every_row_once_and_the_sums(small_blocks: None, m: int, C: int) -> None:
    rng = np.random.default_rng(m * 100 + C)
    x = rng.normal(size=(m, C))
    v = rng.normal(size=C)
    out, sums, calls = _centre_and_square(x, v, 1)
    np.testing.assert_array_equal(out, x - v)  # no row skipped (NaN) or worked twice
    np.testing.assert_allclose(sums[0], (x - v).sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums[1], ((x - v) ** 2).sum(axis=0), rtol=1e-12)
    rows = ChannelRows.of(m, C, x.itemsize)
    assert rows.t * rows.R + (m - rows.t * rows.R) == m
    covered = sum(hi - lo for p, lo, hi in calls if p == 0)
    assert covered == rows.t and sum(hi - lo for p, lo, hi in calls if p == 1) == m % rows.R


@pytest.mark.parametrize("m", [1, 67, 300])
@pytest.mark.parametrize("C", [1, 70])
def test_small_arrays_in_one_untiled_block(m: int, C: int) -> None:
    rng = np.random.default_rng(m * 100 + C)
    x = rng.normal(size=(m, C))
    v = rng.normal(size=C)
    out, sums, calls = _centre_and_square(x, v, 2)
    assert calls == [(0, 0, m)]  # under DIRECT_BYTES: one call, the array itself
    np.testing.assert_array_equal(out, x - v)
    np.testing.assert_allclose(sums[0], (x - v).sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums[1], ((x - v) ** 2).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bytes_for_every_thread_count(small_blocks: None, dtype: type) -> None:
    rng = np.random.default_rng(0)
    x: FloatArray = rng.normal(size=(1000, 6)).astype(dtype)
    v: FloatArray = rng.normal(size=6).astype(dtype)
    out1, sums1, _ = _centre_and_square(x, v, 1)
    for n in (2, 3):
        out, sums, _ = _centre_and_square(x, v, n)
        assert out.tobytes() == out1.tobytes() and sums.tobytes() == sums1.tobytes()
