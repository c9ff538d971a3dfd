from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import datasets as D

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.parametrize("make", [D.make_moons, D.make_circles, D.make_spirals, D.make_linear])
def test_generators_shapes_labels_and_seeds(make: Any) -> None:
    X, y = make(120, rng=3)
    assert X.shape == (120, 2) and y.shape == (120,) and y.dtype == np.int64
    X2, y2 = make(120, rng=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(make(120, rng=4)[0], X)


def test_generator_geometry() -> None:
    X, y = D.make_circles(200, factor=0.5, rng=0)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.5)
    X, y = D.make_moons(100, rng=0)
    assert np.bincount(y).tolist() == [50, 50]
    X, y = D.make_linear(100, rng=0)
    assert ((X >= -1) & (X <= 1)).all()
    assert np.array_equal(y, (X @ np.array([1, -1.5]) > 0.4).astype(int))
    X, y = D.make_spirals(300, n_classes=3, rng=0)
    assert np.bincount(y).tolist() == [100, 100, 100]
    X, yr = D.make_regression(50, n_features=3, noise=0.0, rng=0)
    A = np.c_[X, np.ones(50)]
    coef, _res, *_ = np.linalg.lstsq(A, yr, rcond=None)
    np.testing.assert_allclose(A @ coef, yr, atol=1e-10)  # exactly linear without noise


def test_generator_errors() -> None:
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        D.make_moons(1)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        D.make_moons(10, noise=-1.0)
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\)"):
        D.make_circles(10, factor=1.5)


def test_train_test_split_stratified_and_plain() -> None:
    X = np.arange(100.0).reshape(50, 2)
    y = np.array([0] * 40 + [1] * 10)
    Xtr, Xte, _ytr, yte = D.train_test_split(X, y, test_size=0.2, rng=0, stratify=True)
    assert len(Xte) == 10 and len(Xtr) == 40
    assert np.bincount(yte).tolist() == [8, 2]  # the 4:1 ratio kept
    assert sorted(np.r_[Xtr[:, 0], Xte[:, 0]].tolist()) == X[:, 0].tolist()
    a = D.train_test_split(X, y, test_size=0.2, rng=1)
    b = D.train_test_split(X, y, test_size=0.2, rng=1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    with pytest.raises(ValueError, match=r"test_size must be in \(0, 1\)"):
        D.train_test_split(X, y, test_size=1.5)


def test_one_hot_standardizer_minibatches() -> None:
    assert D.one_hot([0, 2, 1], 3).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match=r"label 3 out of range \[0, 3\)"):
        D.one_hot([0, 3], 3)
    X = np.array([[1.0, 10.0], [3.0, 10.0]])
    st = D.standardizer(X)
    Z = st.transform(X)
    np.testing.assert_allclose(Z, [[-1, 0], [1, 0]])  # a constant column stays 0
    np.testing.assert_allclose(st.inverse_transform(Z), X)
    assert X[0, 0] == 1.0 and not st.mean.flags.writeable
    a = np.arange(10)
    b = np.arange(10) * 2
    batches = list(D.minibatches(a, b, batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    shuffled = list(D.minibatches(a, b, batch_size=4, rng=0, drop_last=True))
    assert len(shuffled) == 2 and all(np.array_equal(x * 2, y) for x, y in shuffled)


def write_idx(path: Path, arr: np.ndarray, *, gz: bool = True) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return raw


def tiny_mnist(folder: Path, *, gz: bool = True) -> dict[str, str]:
    """Four tiny IDX files; returns their SHA-256 (uncompressed)."""
    gen = np.random.default_rng(0)
    digests = {}
    for name, arr in [
        ("train-images-idx3-ubyte", gen.integers(0, 256, (5, 28, 28))),
        ("train-labels-idx1-ubyte", np.array([0, 1, 2, 3, 9])),
        ("t10k-images-idx3-ubyte", gen.integers(0, 256, (3, 28, 28))),
        ("t10k-labels-idx1-ubyte", np.array([7, 8, 9])),
    ]:
        fname = folder / (name + (".gz" if gz else ""))
        digests[name] = hashlib.sha256(write_idx(fname, arr, gz=gz)).hexdigest()
    return digests


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_reads_gzip_and_raw_idx(tmp_path: Path, gz: bool) -> None:
    tiny_mnist(tmp_path, gz=gz)
    (X, y), (_Xt, yt) = D.load_mnist(tmp_path)
    assert X.shape == (5, 28, 28) and X.dtype == np.uint8
    assert y.tolist() == [0, 1, 2, 3, 9] and yt.tolist() == [7, 8, 9]


def test_load_mnist_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    tiny_mnist(tmp_path / "data" / "mnist")
    monkeypatch.setenv("FNN_DATA_DIR", str(tmp_path / "data"))  # files in a mnist/ subfolder
    assert D.load_mnist()[1][1].tolist() == [7, 8, 9]
    monkeypatch.delenv("FNN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="not found in .*cache/fnn"):
        D.load_mnist()


def test_load_mnist_rejects_truncated_and_corrupted_files(tmp_path: Path) -> None:
    tiny_mnist(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte.gz: truncated: header says shape \(5, 28, 28\)"
    ):
        D.load_mnist(tmp_path)
    f.write_bytes(f.read_bytes()[:40])  # cut the gzip stream itself
    with pytest.raises(ValueError, match="corrupted or truncated gzip data"):
        D.load_mnist(tmp_path)
    f.write_bytes(gzip.compress(b"\x01\x02\x08\x03" + raw[4:]))
    with pytest.raises(ValueError, match="not an IDX file"):
        D.load_mnist(tmp_path)
    tiny_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="3 labels for 5 images"):
        D.load_mnist(tmp_path)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """A small HTTP server on 127.0.0.1 serving tiny IDX files."""
    served = tmp_path / "served"
    served.mkdir()
    digests = tiny_mnist(served)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", digests, served
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_then_moves_into_place(tmp_path: Path, mirror: Any) -> None:
    url, digests, _ = mirror
    dest = tmp_path / "dest"
    with pytest.raises(FileNotFoundError):
        D.load_mnist(dest)
    (X, y), _ = D.load_mnist(dest, download=True, mirror=url, sha256=digests)
    assert X.shape == (5, 28, 28) and y.tolist() == [0, 1, 2, 3, 9]
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in digests)
    # a mismatching digest keeps nothing
    bad = dict(digests, **{"t10k-labels-idx1-ubyte": "0" * 64})
    dest2 = tmp_path / "dest2"
    with pytest.raises(
        ValueError, match="does not match the known SHA-256 of t10k-labels-idx1-ubyte"
    ):
        D.load_mnist(dest2, download=True, mirror=url, sha256=bad)
    assert "t10k-labels-idx1-ubyte.gz" not in {p.name for p in dest2.iterdir()}
    assert not any(p.name.endswith(".part") for p in dest2.iterdir())


def test_known_digests_match_the_shared_copy() -> None:
    if not SHARED_MNIST.is_dir():
        pytest.skip(
            f"real MNIST not found at {SHARED_MNIST}; get it with `python -m fnn demo "
            "--download` or set FNN_DATA_DIR"
        )
    for name, digest in D.mnist.SHA256.items():
        data = gzip.decompress((SHARED_MNIST / f"{name}.gz").read_bytes())
        assert hashlib.sha256(data).hexdigest() == digest
    (X, y), (Xt, yt) = D.load_mnist(SHARED_MNIST)
    assert X.shape == (60000, 28, 28) and Xt.shape == (10000, 28, 28)
    assert np.bincount(y).sum() == 60000 and set(np.unique(yt)) == set(range(10))


def test_datasets_reexported() -> None:
    assert fnn.datasets.make_moons is D.make_moons
