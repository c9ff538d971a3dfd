"""Atomic file writes, shared by checkpoints (:func:`fnn.save`) and ONNX export.

:func:`write_atomically` writes a temporary file in the target's folder, flushes it to
disk and renames it over the target, so a write that fails half-way (an exception, a
full disk, a killed process) leaves the previous file at that path intact. The file
gets the permissions ``open(path, "wb")`` would give, and each write removes the
temporaries of earlier writes to the same target whose process has died.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

__all__ = ["host_tag", "write_atomically"]


def write_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file next to ``target``, then rename it over
    ``target``; if ``write`` raises, ``target`` is left as it was and the temporary
    is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    tmp, fd = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            # an existing file keeps its mode, as open(path, "wb") would keep it
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(tmp)


# Temporaries are named ".<target name>.<host>.<pid>.<random>.tmp": the process that
# writes one is known, so the next write to the same target can tell a temporary left
# by an interrupted write (its process is gone) from one being written right now.
_ACTIVE: set[Path] = set()
_ACTIVE_LOCK = threading.Lock()
_TEMP_TAIL: Final = re.compile(r"([0-9a-f]{8})\.([0-9]+)\.([0-9a-f]{16})\.tmp")


def host_tag() -> str:
    """This host's tag in the names of temporaries (8 hex digits)."""
    return zlib.crc32(socket.gethostname().encode("utf-8", "replace")).to_bytes(4, "big").hex()


def _create_temporary(target: Path) -> tuple[Path, int]:
    """A new temporary file next to ``target``, created as ``open(path, "wb")`` creates
    files (mode ``0o666`` less the umask), and registered as being written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.with_name(
            f".{target.name}.{host_tag()}.{os.getpid()}.{os.urandom(8).hex()}.tmp"
        )
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:  # pragma: no cover - 64 random bits collided
            continue
        with _ACTIVE_LOCK:
            _ACTIVE.add(tmp)
        return tmp, fd


def _process_is_gone(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # alive (another user's), or not a pid
        return False
    return False


def _remove_stale_temporaries(target: Path) -> None:
    """Remove the temporaries of interrupted writes to ``target``: those written on
    this host by a process that no longer runs (or by this process, but no longer being
    written). A temporary of a write in progress, or of another target, is left alone."""
    prefix = f".{target.name}."
    host, me = host_tag(), os.getpid()
    try:
        candidates = [p for p in target.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for p in candidates:
        m = _TEMP_TAIL.fullmatch(p.name[len(prefix) :])
        if m is None or m.group(1) != host:
            continue
        pid = int(m.group(2))
        if pid == me:
            with _ACTIVE_LOCK:
                stale = p not in _ACTIVE
        else:
            stale = _process_is_gone(pid)
        if stale:
            # OSError: removed by another write meanwhile, or not ours to remove
            with contextlib.suppress(OSError):
                p.unlink()
