"""Bounded reading of a checkpoint's zip archive: every member's declared size, shape and
dtype is checked before anything is inflated, and nothing is ever unpickled."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np

from fnn._bounded_io import check_declared_size, read_into

FORMAT: Final = "fnn-checkpoint"
MANIFEST: Final = "manifest.json"
"""The archive member holding the manifest (JSON, UTF-8, as a uint8 array)."""


def bad(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what}")


MAX_MANIFEST_BYTES: Final = 64 << 20
"""The largest manifest :func:`load` reads (a History of a million epochs fits)."""
MAX_DEPTH: Final = 32
"""The deepest nesting of JSON lists and objects a manifest may have."""
MAX_MEMBERS: Final = 1 << 16
MAX_NDIM: Final = 32
_DEFLATE_MAX_RATIO: Final = 1032  # deflate cannot expand data by more than ~1032:1
ARRAY_DTYPES: Final = {"float32", "float64", "bool"}


class Malformed(Exception):
    """A manifest entry of the wrong type or value; ``where`` is its dotted JSON path."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where} {what}" if where else what)


@attrs.frozen
class Member:
    """An ``.npy`` member of the archive, from the zip's central directory and the
    member's ``.npy`` header (read before any of its data)."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool


def _npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(d) for d in shape), np.dtype(dtype), bool(fortran)


def _nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


class Archive:
    """A checkpoint opened for reading in bounded memory.

    Opening reads only the zip's central directory and each member's ``.npy`` header,
    and checks that every member's declared size is what its header says and what the
    file can hold (stored members exactly their bytes, deflated ones at most deflate's
    maximal expansion): nothing is decompressed. :meth:`read` then reads one member's
    data into an array allocated at its (checked) size, never more.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.zf = zipfile.ZipFile(path)
        try:
            self.members = self._scan()
        except BaseException:
            self.zf.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zf.close()

    def _scan(self) -> dict[str, Member]:
        infos = self.zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise bad(self.path, f"too many members ({len(infos)} > {MAX_MEMBERS})")
        disk = self.path.stat().st_size
        names: set[str] = set()
        for info in infos:  # from the central directory alone: nothing is inflated
            name = info.filename
            if not name.endswith(".npy"):
                raise bad(self.path, f"unexpected member {name!r} (not an .npy array)")
            if name in names:
                raise bad(self.path, f"member {name!r} appears twice")
            names.add(name)
            if info.flag_bits & 0x1:
                raise bad(self.path, f"member {name!r} is encrypted")
            if info.compress_type == zipfile.ZIP_STORED:
                fits = info.file_size == info.compress_size
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                fits = info.file_size <= _DEFLATE_MAX_RATIO * info.compress_size + 1024
            else:
                raise bad(
                    self.path,
                    f"member {name!r} uses compression method {info.compress_type}; "
                    "only stored and deflated members are read",
                )
            if not fits or info.header_offset + info.compress_size > disk:
                raise bad(
                    self.path,
                    f"member {name!r} declares {info.file_size} bytes, more than its "
                    f"{info.compress_size} stored bytes can hold (corrupted or a zip bomb)",
                )
        total = sum(info.file_size for info in infos)
        check_declared_size(self.path, "the archive (uncompressed)", total, self.max_bytes)
        members: dict[str, Member] = {}
        for info in infos:
            name = info.filename
            key = name[: -len(".npy")]
            try:
                with self.zf.open(info) as f:
                    shape, dtype, fortran = _npy_header(f)
                    header_len = f.tell()
            except (ValueError, SyntaxError, RecursionError, MemoryError, EOFError) as e:
                raise bad(self.path, f"member {name!r} has no valid .npy header ({e})") from e
            if dtype.hasobject:
                raise bad(self.path, "holds object (pickled) arrays, which are never loaded")
            if dtype.fields is not None or dtype.subdtype is not None or len(shape) > MAX_NDIM:
                raise bad(self.path, f"array {key} has an unsupported dtype {dtype} or rank")
            if header_len + _nbytes(shape, dtype) != info.file_size:
                raise bad(
                    self.path,
                    f"array {key}: its header declares shape {list(shape)} and dtype {dtype} "
                    f"({_nbytes(shape, dtype)} bytes), but the archive declares "
                    f"{info.file_size - header_len} bytes of data",
                )
            members[key] = Member(info=info, shape=shape, dtype=dtype, fortran=fortran)
        return members

    def read(self, key: str, out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """The array of member ``key``: exactly its declared bytes, CRC-checked, inflated
        straight into ``out`` (C-contiguous, writable, of the member's shape and dtype)
        if given, else into a new array."""
        m = self.members[key]
        shape = m.shape[::-1] if m.fortran else m.shape
        fill = np.empty(shape, dtype=m.dtype) if out is None or m.fortran else out
        with self.zf.open(m.info) as f:
            _npy_header(f)
            if read_into(f, fill) < fill.nbytes:
                raise bad(self.path, f"array {key} is truncated")
            if f.read(1):  # reaching the end also checks the CRC
                raise bad(self.path, f"array {key} has trailing bytes")
        arr = fill.T if m.fortran else fill
        if out is not None and arr is not out:
            out[...] = arr
            return out
        return arr

    def manifest(self) -> dict[str, Any]:
        """The manifest, parsed: bounded in size and nesting, an object at the top."""
        m = self.members.get(MANIFEST)
        if m is None:
            raise bad(self.path, f"not an fnn checkpoint (no {MANIFEST})")
        if m.dtype != np.uint8 or len(m.shape) != 1:
            raise bad(
                self.path,
                f"the manifest must be a 1-D uint8 array, got shape {list(m.shape)} "
                f"and dtype {m.dtype}",
            )
        if m.shape[0] > MAX_MANIFEST_BYTES:
            raise bad(
                self.path, f"the manifest has {m.shape[0]} bytes (more than {MAX_MANIFEST_BYTES})"
            )
        raw = self.read(MANIFEST).tobytes()
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except RecursionError as e:
            raise bad(self.path, "the manifest is nested too deeply") from e
        except ValueError as e:  # also UnicodeDecodeError and JSONDecodeError
            raise bad(self.path, f"the manifest is not valid JSON ({e})") from e
        if _depth(manifest) > MAX_DEPTH:
            raise bad(self.path, f"the manifest is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise bad(self.path, "not an fnn checkpoint (wrong format field)")
        return manifest


def _depth(x: Any) -> int:
    """The nesting depth of JSON lists and objects in ``x`` (iterative: no recursion)."""
    deepest = 0
    stack = [(x, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        stack.extend((c, d + 1) for c in children)
    return deepest
