"""MNIST in its original IDX files (gzip-compressed or raw).

``load_mnist(path=None)`` looks for the four files in ``path``, else in the directory
named by the environment variable ``FNN_DATA_DIR``, else in a per-user cache folder
(``$XDG_CACHE_HOME/fnn`` or ``~/.cache/fnn``); in each place it accepts the files
directly or in a ``mnist/`` subfolder. With ``download=True`` missing files are fetched
from the first mirror of :data:`MIRRORS` that answers (about 11 MB in all), showing
progress on standard error; each is verified against the SHA-256 of the published
(uncompressed) file before it is moved into place, so a failed or tampered download
leaves nothing behind. ``python -m fnn demo --download`` does this from the shell.

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of
dimensions, each dimension as a big-endian uint32, then the data in C order.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO, cast

import numpy as np

from fnn._bounded_io import CHUNK, MAX_BYTES, check_declared_size, check_max_bytes, read_into

__all__ = [
    "FILES",
    "MIRROR",
    "MIRRORS",
    "SHA256",
    "DownloadError",
    "default_cache_dir",
    "load_mnist",
    "read_idx",
]

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

MIRRORS: Final[tuple[str, ...]] = (
    # PyTorch's copy (torchvision's first choice), then TensorFlow's (tf.keras' source)
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
"""Where ``download=True`` looks for ``<name>.gz``, in this order."""

MIRROR: Final = MIRRORS[0]


class DownloadError(ConnectionError):
    """No mirror delivered a file (network unreachable, HTTP error, or a wrong digest)."""


Split = tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, np.dtype[np.uint8]]]


def default_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/fnn`` or ``~/.cache/fnn``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fnn"


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for reading, through gzip if it starts with gzip's magic bytes;
    gzip's errors become a ValueError naming the file."""
    with path.open("rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not gz:
            yield raw
            return
        try:
            with gzip.GzipFile(fileobj=raw) as f:
                yield cast(BinaryIO, f)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupted or truncated gzip data ({e})") from e


def _sha256(path: Path, max_bytes: int) -> str:
    """The SHA-256 of ``path``'s content (uncompressed), reading at most ``max_bytes``
    (ValueError if it holds more)."""
    digest = hashlib.sha256()
    done = 0
    with _opened(path) as f:
        while chunk := f.read(min(CHUNK, max_bytes + 1 - done)):
            done += len(chunk)
            if done > max_bytes:
                raise ValueError(
                    f"it holds more than max_bytes={max_bytes:,} uncompressed (pass a larger "
                    "max_bytes= to read it)"
                )
            digest.update(chunk)
    return digest.hexdigest()


def _read_header(p: Path, f: BinaryIO) -> tuple[int, ...]:
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(f"{p}: too short for an IDX header ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        raise ValueError(f"{p}: not an IDX file (magic bytes {head.hex()})")
    if head[2] != 0x08:
        raise ValueError(f"{p}: IDX type 0x{head[2]:02x} is not supported (expected 0x08, ubyte)")
    ndim = head[3]
    raw = f.read(4 * ndim)
    if ndim == 0 or len(raw) < 4 * ndim:
        raise ValueError(f"{p}: truncated IDX header ({4 + len(raw)} bytes for {ndim} dimensions)")
    return tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(ndim))


def read_idx(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES
) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Read one IDX file of unsigned bytes (gzip or raw), validating its header and size.

    The header's declared size is checked against ``max_bytes`` (2 GiB by default)
    before anything is allocated; the data is then read (decompressed) straight into
    the returned array, one byte past the declared size at most, so memory is bounded
    by what the header declares, whatever the file holds.

    Raises ValueError naming the file for a bad magic number, an unsupported type, a
    declared size over ``max_bytes``, or a size that does not match the header
    (truncated or padded).
    """
    max_bytes = check_max_bytes(max_bytes)
    p = Path(path)
    with _opened(p) as f:
        dims = _read_header(p, f)
        header = 4 + 4 * len(dims)
        # exact: np.prod in int64 wraps around for dimensions such as (2**31, 2**31, 4)
        expected = header + math.prod(dims)
        check_declared_size(p, f"its header (shape {dims})", expected, max_bytes)
        # a raw file's size is known: checked before anything is allocated
        n = None if isinstance(f, gzip.GzipFile) else os.fstat(f.fileno()).st_size
        if n is None or n == expected:
            out = np.empty(dims, dtype=np.uint8)
            n = header + read_into(f, out)
            if n == expected and f.read(1):
                n += 1  # more than declared: how much more is never read
    if n != expected:
        what = "truncated" if n < expected else "has trailing bytes"
        holds = n if n < expected else f"more than {expected}"
        raise ValueError(
            f"{p}: {what}: header says shape {dims} ({expected} bytes), file has {holds}"
        )
    return out


def _locate(name: str, folder: Path) -> Path | None:
    for d in (folder, folder / "mnist"):
        for candidate in (d / f"{name}.gz", d / name):
            if candidate.is_file():
                return candidate
    return None


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Report:
    """Download progress on ``stream``: a live line on a terminal, else a line per file."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        try:
            self.live = stream is not None and stream.isatty()
        except (AttributeError, ValueError, OSError):
            self.live = False

    def start(self, url: str) -> None:
        if self.stream is not None and not self.live:
            self.stream.write(f"downloading {url}\n")
            self.stream.flush()

    def chunk(self, url: str, done: int, total: int | None) -> None:
        if self.stream is None or not self.live:
            return
        size = f"{100 * done // total}% of {_megabytes(total)}" if total else _megabytes(done)
        self.stream.write(f"\rdownloading {url}  {size}\x1b[K")
        self.stream.flush()

    def end(self, url: str, done: int) -> None:
        if self.stream is None:
            return
        line = f"downloaded {url} ({_megabytes(done)}), SHA-256 verified"
        self.stream.write(f"\r{line}\x1b[K\n" if self.live else f"{line}\n")
        self.stream.flush()


def _fetch(url: str, out: Any, report: _Report, max_bytes: int) -> int:
    report.start(url)
    done = 0
    with urllib.request.urlopen(url, timeout=30) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        while chunk := resp.read(1 << 16):
            done += len(chunk)
            if max(done, total or 0) > max_bytes:
                raise ValueError(
                    f"the download is {max(done, total or 0):,} bytes, more than "
                    f"max_bytes={max_bytes:,} (pass a larger max_bytes= to read it)"
                )
            out.write(chunk)
            report.chunk(url, done, total)
    return done


def _download(
    name: str,
    folder: Path,
    mirrors: Sequence[str],
    sha256: Mapping[str, str],
    report: _Report,
    max_bytes: int,
) -> Path:
    """Fetch ``name.gz`` into ``folder`` from the first mirror that delivers the right
    bytes: each try goes to a temporary file, verified (reading at most ``max_bytes``,
    compressed or not), then renamed into place."""
    folder.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    mismatch_only = True
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{name}.gz"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                size = _fetch(url, out, report, max_bytes)
            digest = _sha256(Path(tmp), max_bytes)
            if digest != sha256[name]:
                failures.append(f"{url} does not match the known SHA-256 of {name} (got {digest})")
                continue
            final = folder / f"{name}.gz"
            os.replace(tmp, final)
            report.end(url, size)
            return final
        except (OSError, ValueError, EOFError) as e:  # URLError, HTTPError, timeouts
            mismatch_only = False
            reason = getattr(e, "reason", None) or e
            failures.append(f"{url}: {reason}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    if mismatch_only and failures:
        raise ValueError("downloaded " + "; ".join(failures) + "; nothing was kept")
    raise DownloadError(f"could not download {name}.gz (" + "; ".join(failures) + ")")


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    mirror: str | Sequence[str] = MIRRORS,
    sha256: Mapping[str, str] = SHA256,
    progress: bool | TextIO = True,
    max_bytes: int = MAX_BYTES,
) -> tuple[Split, Split]:
    """Load MNIST as ``((X_train, y_train), (X_test, y_test))``, as in the files:
    images uint8 (n, 28, 28), labels uint8 (n,) in [0, 10).

    Args:
        path: the folder holding the files; default ``$FNN_DATA_DIR``, else the cache
            (``~/.cache/fnn``).
        download: fetch missing files into that folder, from the first of ``mirror``
            that delivers them (each verified against ``sha256`` before it is moved
            into place).
        mirror: a mirror URL or a sequence of them, tried in order (default
            :data:`MIRRORS`; overridable for other mirrors and for tests).
        sha256: the expected digests of the uncompressed files, by file name.
        progress: show download progress on standard error (True), not at all
            (False), or on this stream. Only written to while downloading.
        max_bytes: the most bytes a file may declare (its IDX header) or hold
            (a download, compressed or not) before it is refused unread; 2 GiB by
            default, raise it to read larger files.

    Raises:
        FileNotFoundError: files are missing and ``download`` is False; the message says
            how to get them.
        DownloadError: (a ConnectionError) no mirror could be reached for a file.
        ValueError: a file is corrupted or truncated, declares more than ``max_bytes``,
            the files do not agree, or every mirror delivered a file whose SHA-256 is
            wrong.
    """
    max_bytes = check_max_bytes(max_bytes)
    mirrors = (mirror,) if isinstance(mirror, str) else tuple(mirror)
    if path is not None:
        folder = Path(path)
    elif os.environ.get("FNN_DATA_DIR"):
        folder = Path(os.environ["FNN_DATA_DIR"])
    else:
        folder = default_cache_dir()
    found: dict[str, Path] = {}
    report = _Report(sys.stderr if progress is True else progress or None)
    for key, name in FILES.items():
        loc = _locate(name, folder)
        if loc is None:
            if not download:
                raise FileNotFoundError(
                    f"MNIST file {name}(.gz) not found in {folder} (or {folder / 'mnist'}); "
                    "get it with `python -m fnn demo --download` (into ~/.cache/fnn) or "
                    "load_mnist(download=True), or set FNN_DATA_DIR to a folder that has "
                    "the IDX files"
                )
            if not mirrors:
                raise ValueError("mirror must name at least one URL")
            loc = _download(name, folder, mirrors, sha256, report, max_bytes)
        found[key] = loc
    arrays = {k: read_idx(p, max_bytes=max_bytes) for k, p in found.items()}
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
