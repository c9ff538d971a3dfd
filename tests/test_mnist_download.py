"""MNIST download: mirrors tried in order, SHA-256 verified, progress shown, and a clear
error (with nothing left behind) when no mirror answers. Served from 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fnn import datasets
from fnn.datasets import mnist

NAMES = list(mnist.FILES.values())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def tiny_files(folder: Path) -> dict[str, str]:
    """Four tiny gzipped IDX files; returns the SHA-256 of each uncompressed file."""
    gen = np.random.default_rng(0)
    shapes = {"train-images-idx3-ubyte": (5, 28, 28), "t10k-images-idx3-ubyte": (3, 28, 28)}
    digests = {}
    for name in NAMES:
        arr = (
            gen.integers(0, 256, shapes[name])
            if name in shapes
            else np.arange(5 if "train" in name else 3)
        )
        raw = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        raw += arr.astype(np.uint8).tobytes()
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        digests[name] = hashlib.sha256(raw).hexdigest()
    return digests


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path / "served"
    root.mkdir()
    digests = tiny_files(root)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", digests
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> str:
    """A loopback URL on which nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_default_mirrors_are_documented_https_urls() -> None:
    assert mnist.MIRRORS[0] == mnist.MIRROR
    assert len(mnist.MIRRORS) >= 2 and all(m.startswith("https://") for m in mnist.MIRRORS)
    assert {n for n in mnist.SHA256} == set(NAMES)


def test_an_unreachable_mirror_falls_back_to_the_next(tmp_path: Path, served: Any) -> None:
    url, digests = served
    log = io.StringIO()
    (X, y), (Xt, _) = datasets.load_mnist(
        tmp_path / "dest", download=True, mirror=[closed_port(), url], sha256=digests, progress=log
    )
    assert X.shape == (5, 28, 28) and y.tolist() == [0, 1, 2, 3, 4] and Xt.shape == (3, 28, 28)
    lines = log.getvalue().splitlines()  # not a terminal: a line per try and per file
    assert sum(line.startswith("downloading http://127.0.0.1") for line in lines) == 8
    assert sum(line.endswith("SHA-256 verified") for line in lines) == 4
    # the files are cached: a second load downloads nothing
    log2 = io.StringIO()
    datasets.load_mnist(tmp_path / "dest", download=True, mirror=[], sha256=digests, progress=log2)
    assert log2.getvalue() == ""


def test_progress_on_a_terminal_is_one_live_line_per_file(tmp_path: Path, served: Any) -> None:
    url, digests = served
    term = Terminal()
    datasets.load_mnist(tmp_path, download=True, mirror=url, sha256=digests, progress=term)
    text = term.getvalue()
    assert text.count("\n") == 4 and "100% of 0.0 MB" in text and "\r" in text


def test_no_mirror_answers_raises_download_error_and_keeps_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(
        mnist.DownloadError, match="could not download train-images-idx3-ubyte.gz"
    ) as info:
        datasets.load_mnist(
            dest, download=True, mirror=[closed_port(), closed_port()], progress=False
        )
    assert isinstance(info.value, ConnectionError) and info.value.args[0].count("127.0.0.1") == 2
    assert list(dest.iterdir()) == []


def test_a_wrong_digest_everywhere_is_a_value_error(tmp_path: Path, served: Any) -> None:
    url, digests = served
    bad = dict(digests, **{NAMES[0]: "0" * 64})
    with pytest.raises(ValueError, match=f"does not match the known SHA-256 of {NAMES[0]}"):
        datasets.load_mnist(tmp_path, download=True, mirror=(url, url), sha256=bad, progress=False)
    assert not any(p.name.startswith(NAMES[0]) or p.suffix == ".part" for p in tmp_path.iterdir())


def test_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"python -m fnn demo --download.*FNN_DATA_DIR"):
        datasets.load_mnist(tmp_path)
    with pytest.raises(ValueError, match="mirror must name at least one URL"):
        datasets.load_mnist(tmp_path, download=True, mirror=[])


def test_a_download_is_read_in_bounded_memory_and_refused_over_max_bytes(
    tmp_path: Path, served: Any
) -> None:
    url, digests = served
    # a mirror serves 2 KiB that inflate to 16 MiB: verified by streaming, never whole,
    # and refused past max_bytes (here 1 MiB) before the rest is inflated
    bomb = gzip.compress(bytes(16 << 20))
    (tmp_path / "served" / f"{NAMES[0]}.gz").write_bytes(bomb)
    dest = tmp_path / "dest"
    tracemalloc.start()
    try:
        with pytest.raises(
            mnist.DownloadError,
            match=rf"/{NAMES[0]}.gz: it holds more than max_bytes=1,048,576 uncompressed",
        ):
            datasets.load_mnist(
                dest, download=True, mirror=url, sha256=digests, progress=False, max_bytes=1 << 20
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert list(dest.iterdir()) == []  # nothing kept
    # a download whose announced length is over max_bytes is not fetched at all
    with pytest.raises(
        mnist.DownloadError,
        match=rf"/{NAMES[0]}.gz: the download is {len(bomb):,} bytes, more than "
        rf"max_bytes={len(bomb) - 1:,}",
    ):
        datasets.load_mnist(
            dest, download=True, mirror=url, sha256=digests, progress=False, max_bytes=len(bomb) - 1
        )
    assert list(dest.iterdir()) == []
