"""IDX files that lie about their size (issue 21, item 11; BAD_INPUTS.md): refused with a
ValueError naming the file, in memory bounded by what the header declares, and every
declared size checked against ``max_bytes`` before anything is allocated or inflated."""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fnn import datasets
from fnn.datasets import mnist

MiB = 1 << 20


@pytest.fixture
def peak_memory() -> Iterator[Callable[[], int]]:
    """The peak traced allocation (bytes, NumPy's array data included) since the last
    ``tracemalloc.reset_peak()``."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def gzipped(path: Path, head: bytes, zeros: int) -> Path:
    """``head`` then ``zeros`` zero bytes, gzipped without holding them in memory."""
    with gzip.GzipFile(path, "wb") as g:
        g.write(head)
        for _ in range(zeros // MiB):
            g.write(bytes(MiB))
        g.write(bytes(zeros % MiB))
    return path


def test_a_gzipped_file_holding_far_more_than_its_header_is_refused_in_bounded_memory(
    tmp_path: Path, peak_memory: Callable[[], int]
) -> None:
    # the header declares 7,856 bytes; the stream inflates to 64 MiB more
    path = gzipped(tmp_path / "labels.gz", header((7848,)), 7848 + 64 * MiB)
    assert path.stat().st_size < MiB
    tracemalloc.reset_peak()
    with pytest.raises(
        ValueError,
        match=r"labels.gz: has trailing bytes: header says shape \(7848,\) \(7856 bytes\), "
        r"file has more than 7856",
    ):
        datasets.read_idx(path)
    assert peak_memory() < 3 * MiB  # one chunk of inflated data, not the 64 MiB


@pytest.mark.parametrize("gz", [True, False])
def test_a_file_holding_less_or_more_than_its_header_says_is_refused(
    tmp_path: Path, gz: bool, peak_memory: Callable[[], int]
) -> None:
    data = header((4, 5)) + bytes(range(20))
    path = tmp_path / ("x.gz" if gz else "x")
    for body, message in [
        (data[:-3], r"truncated: header says shape \(4, 5\) \(32 bytes\), file has 29"),
        (data + b"\x00", r"has trailing bytes: header says shape \(4, 5\) \(32 bytes\)"),
        (data[:10], r"truncated IDX header \(10 bytes for 2 dimensions\)"),
    ]:
        path.write_bytes(gzip.compress(body) if gz else body)
        with pytest.raises(ValueError, match=r"x(\.gz)?: " + message):
            datasets.read_idx(path)
    path.write_bytes(gzip.compress(data) if gz else data)
    assert datasets.read_idx(path).tolist() == np.arange(20).reshape(4, 5).tolist()
    # a raw file's size is known: one declaring 64 MiB that holds 20 bytes is refused
    # before anything of the declared size is allocated
    raw = tmp_path / "raw"
    raw.write_bytes(header((64, MiB)) + bytes(20))
    tracemalloc.reset_peak()
    with pytest.raises(ValueError, match=r"raw: truncated: header says shape \(64, 1048576\)"):
        datasets.read_idx(raw)
    assert peak_memory() < MiB


@pytest.mark.parametrize("gz", [True, False])
def test_a_header_declaring_80_gb_is_a_value_error_before_any_allocation(
    tmp_path: Path, gz: bool, peak_memory: Callable[[], int]
) -> None:
    head = header((80_000, 1000, 1000))
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(head + bytes(100)) if gz else head + bytes(100))
    tracemalloc.reset_peak()
    with pytest.raises(
        ValueError,
        match=r"huge: its header \(shape \(80000, 1000, 1000\)\) declares 80,000,000,016 bytes, "
        r"more than max_bytes=2,147,483,648 \(pass a larger max_bytes= to read it\)",
    ):
        datasets.read_idx(path)
    assert peak_memory() < MiB


def test_max_bytes_is_the_callers_to_raise(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(header((10, 100)) + bytes(1000)))
    with pytest.raises(ValueError, match=r"declares 1,012 bytes, more than max_bytes=1,000"):
        datasets.read_idx(path, max_bytes=1000)
    assert datasets.read_idx(path, max_bytes=1012).shape == (10, 100)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        datasets.read_idx(path, max_bytes=2.5e9)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes must be >= 1, got 0"):
        datasets.read_idx(path, max_bytes=0)


def test_load_mnist_passes_max_bytes_to_each_file(tmp_path: Path) -> None:
    gen = np.random.default_rng(0)
    for name, arr in [
        ("train-images-idx3-ubyte", gen.integers(0, 256, (5, 28, 28))),
        ("train-labels-idx1-ubyte", np.arange(5)),
        ("t10k-images-idx3-ubyte", gen.integers(0, 256, (3, 28, 28))),
        ("t10k-labels-idx1-ubyte", np.arange(3)),
    ]:
        raw = header(arr.shape) + arr.astype(np.uint8).tobytes()
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(raw))
    images = 16 + 5 * 28 * 28
    with pytest.raises(
        ValueError,
        match=rf"train-images-idx3-ubyte.gz: .* declares {images:,} bytes, more than "
        rf"max_bytes={images - 1:,}",
    ):
        datasets.load_mnist(tmp_path, max_bytes=images - 1)
    (X, y), _ = datasets.load_mnist(tmp_path, max_bytes=images)
    assert X.shape == (5, 28, 28) and y.tolist() == [0, 1, 2, 3, 4]
    assert mnist.read_idx is datasets.read_idx
