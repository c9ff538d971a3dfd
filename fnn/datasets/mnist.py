"""MNIST in its original IDX files (gzip-compressed or raw).

``load_mnist(path=None)`` looks for the four files in ``path``, else in the directory
named by the environment variable ``FNN_DATA_DIR``, else in a per-user cache folder
(``$XDG_CACHE_HOME/fnn`` or ``~/.cache/fnn``); in each place it accepts the files
directly or in a ``mnist/`` subfolder. With ``download=True`` missing files are fetched
from a public mirror; each is verified against the SHA-256 of the published
(uncompressed) file before it is moved into place, so a failed or tampered download
leaves nothing behind.

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of
dimensions, each dimension as a big-endian uint32, then the data in C order.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = ["FILES", "MIRROR", "SHA256", "default_cache_dir", "load_mnist", "read_idx"]

FILES: Final = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

SHA256: Final[Mapping[str, str]] = {
    # SHA-256 of the uncompressed, published files (MD5s as published: 6bbc9ace...,
    # a25bea73..., 2646ac64..., 27ae3e4e...).
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MIRROR: Final = "https://ossci-datasets.s3.amazonaws.com/mnist/"

Split = tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, np.dtype[np.uint8]]]


def default_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/fnn`` or ``~/.cache/fnn``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fnn"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupted or truncated gzip data ({e})") from e
    return raw


def read_idx(path: str | os.PathLike[str]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Read one IDX file of unsigned bytes (gzip or raw), validating its header and size.

    Raises ValueError naming the file for a bad magic number, an unsupported type, or a
    size that does not match the header (truncated or padded).
    """
    p = Path(path)
    data = _read_bytes(p)
    if len(data) < 4:
        raise ValueError(f"{p}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{p}: not an IDX file (magic bytes {data[:4].hex()})")
    if data[2] != 0x08:
        raise ValueError(f"{p}: IDX type 0x{data[2]:02x} is not supported (expected 0x08, ubyte)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"{p}: truncated IDX header ({len(data)} bytes for {ndim} dimensions)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    # exact: np.prod in int64 wraps around for dimensions such as (2**31, 2**31, 4)
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{p}: {what}: header says shape {dims} ({expected} bytes), file has {len(data)}"
        )
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()
    return arr


def _locate(name: str, folder: Path) -> Path | None:
    for d in (folder, folder / "mnist"):
        for candidate in (d / f"{name}.gz", d / name):
            if candidate.is_file():
                return candidate
    return None


def _download(name: str, folder: Path, mirror: str, sha256: Mapping[str, str]) -> Path:
    """Fetch ``name.gz`` into ``folder``: temp file, verify, then rename into place."""
    folder.mkdir(parents=True, exist_ok=True)
    url = mirror.rstrip("/") + f"/{name}.gz"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        digest = hashlib.sha256(_read_bytes(Path(tmp))).hexdigest()
        if digest != sha256[name]:
            raise ValueError(
                f"downloaded {url} does not match the known SHA-256 of {name} "
                f"(got {digest}); nothing was kept"
            )
        final = folder / f"{name}.gz"
        os.replace(tmp, final)
        return final
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    mirror: str = MIRROR,
    sha256: Mapping[str, str] = SHA256,
) -> tuple[Split, Split]:
    """Load MNIST as ``((X_train, y_train), (X_test, y_test))``, as in the files:
    images uint8 (n, 28, 28), labels uint8 (n,) in [0, 10).

    Args:
        path: the folder holding the files; default ``$FNN_DATA_DIR``, else the cache.
        download: fetch missing files from ``mirror`` into that folder (verified
            against ``sha256`` before they are moved into place).
        mirror: where to fetch from (overridable for other mirrors and for tests).
        sha256: the expected digests of the uncompressed files, by file name.

    Raises:
        FileNotFoundError: files are missing and ``download`` is False.
        ValueError: a file is corrupted or truncated, or the files do not agree.
    """
    if path is not None:
        folder = Path(path)
    elif os.environ.get("FNN_DATA_DIR"):
        folder = Path(os.environ["FNN_DATA_DIR"])
    else:
        folder = default_cache_dir()
    found: dict[str, Path] = {}
    for key, name in FILES.items():
        loc = _locate(name, folder)
        if loc is None:
            if not download:
                raise FileNotFoundError(
                    f"MNIST file {name}(.gz) not found in {folder} (or {folder / 'mnist'}); "
                    "pass path=, set FNN_DATA_DIR, or use download=True"
                )
            loc = _download(name, folder, mirror, sha256)
        found[key] = loc
    arrays = {k: read_idx(p) for k, p in found.items()}
    for split in ("train", "test"):
        X, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if X.ndim != 3 or y.ndim != 1:
            raise ValueError(
                f"{found[f'{split}_images']}: expected images (n, rows, cols) and labels (n,), "
                f"got {X.shape} and {y.shape}"
            )
        if len(X) != len(y):
            raise ValueError(f"{found[f'{split}_labels']}: {len(y)} labels for {len(X)} images")
        if y.size and y.max() > 9:
            raise ValueError(
                f"{found[f'{split}_labels']}: label {int(y.max())} out of range [0, 10)"
            )
    return (arrays["train_images"], arrays["train_labels"]), (
        arrays["test_images"],
        arrays["test_labels"],
    )
