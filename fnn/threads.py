"""Threads for the kernels: one setting, chunks that do not depend on it.

fnn's matrix products run on BLAS's own threads; every other pass (elementwise
activations, im2col and col2im, pooling, batch norm) runs here. NumPy releases the GIL
in ufuncs and copies of large arrays, so a pass split into row ranges runs on several
cores at once.

**The setting.** :func:`set_num_threads` / :func:`get_num_threads`, or the environment
variable ``FNN_NUM_THREADS``, read once when the count is first needed. The default is
the number of cores this process may run on (``len(os.sched_getaffinity(0))``, else
``os.cpu_count()``). fnn never changes BLAS's own thread count (``OPENBLAS_NUM_THREADS``
or threadpoolctl set that one). OpenBLAS keeps its workers busy-waiting for a while
after each product, so with OpenBLAS on every core a second fnn thread fights its
spinning worker: there, ``FNN_NUM_THREADS=1`` (or OpenBLAS on one thread) is faster
(measured in docs/threads.md; :func:`blas_threads` reads OpenBLAS's count).
``fnn.distributed`` ranks default to one thread each.

**The same bits for every thread count.** A pass is split by :func:`split` into a
number of row ranges that depends on the sizes only, never on the thread count; each
range is worked by one call of the kernel, on whichever thread, and writes only its own
rows. A reduction sums its ranges' partial results afterwards, in range order. So 1, 2
or 8 threads give the same bytes (with BLAS's thread count held fixed).

**Safety.** :func:`parallel_for` may be called from several threads at once (each
caller works its own chunks and waits only for them) and from inside a chunk (the inner
call then runs on the calling thread). It keeps no writable buffer of its own.

A user's kernel uses it as the built-in ones do::

    import numpy as np
    from fnn import threads

    def scaled_tanh(z, out):          # z, out: (n, d), out written row range by row range
        def rows(start, stop):
            np.tanh(z[start:stop], out=out[start:stop])
            out[start:stop] *= 1.7159
        threads.parallel_rows(len(z), z.nbytes, rows)
        return out
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable
from typing import cast

__all__ = [
    "GRAIN_BYTES",
    "MAX_CHUNKS",
    "blas_threads",
    "configured",
    "default_threads",
    "get_num_threads",
    "parallel_for",
    "parallel_rows",
    "set_num_threads",
    "split",
]

GRAIN_BYTES = 1 << 20
"""The least work a chunk gets, in bytes of its input (1 MiB): below it, handing a
chunk to another thread costs more than the thread saves. (256 KiB cost more than it
gained beside OpenBLAS's spinning workers: the MNIST CNN step 66-77 ms against 64-70
with 1 MiB, predict on 10,000 images 1.98 s against 1.52 s, 2 fnn threads.)"""

MAX_CHUNKS = 8
"""The most chunks :func:`split` makes of one pass."""

_setting: int | None = None  # set by set_num_threads or FNN_NUM_THREADS; None: default
_read_env = False
_lock = threading.Lock()
_jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_workers: list[threading.Thread] = []
_inside = threading.local()  # .active: this thread is running a chunk


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_blas_get: Callable[[], int] | None = None  # OpenBLAS's get_num_threads, once found
_blas_looked = False

# the names of OpenBLAS's thread-count getter in the builds NumPy ships and in others
_BLAS_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)


def _find_blas_getter() -> Callable[[], int] | None:
    """OpenBLAS's ``get_num_threads`` in a library this process has loaded (NumPy's),
    or None (another BLAS, not Linux)."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({ln.split()[-1] for ln in maps if "openblas" in ln.lower()})
    except OSError:  # pragma: no cover - not Linux
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:  # pragma: no cover - not a library
            continue
        for name in _BLAS_GETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                fn.argtypes = []
                return cast(Callable[[], int], fn)
    return None


def blas_threads() -> int:
    """The threads OpenBLAS (NumPy's BLAS) runs its products on, read from the library
    now; 1 when there is no OpenBLAS to ask."""
    global _blas_get, _blas_looked
    if not _blas_looked:
        _blas_get = _find_blas_getter()
        _blas_looked = True
    return 1 if _blas_get is None else max(1, int(_blas_get()))


def default_threads() -> int:
    """The default count: the cores this process may run on, at least 1."""
    return _usable_cores()


def _check_count(n: object, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return n


def _from_env() -> None:
    global _setting, _read_env
    with _lock:
        if _read_env:
            return
        _read_env = True
        raw = os.environ.get("FNN_NUM_THREADS", "").strip()
        if raw and _setting is None:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"FNN_NUM_THREADS must be an int >= 1, got {raw!r}") from None
            if value < 1:
                raise ValueError(f"FNN_NUM_THREADS must be an int >= 1, got {raw!r}")
            _setting = value


def set_num_threads(n: int) -> None:
    """Run fnn's non-BLAS passes on ``n`` threads (the calling one included) from now on,
    in every thread of this process. Results do not depend on ``n``.

    Raises:
        TypeError: ``n`` is not an int.
        ValueError: ``n`` < 1.
    """
    global _setting, _read_env
    value = _check_count(n, "n")
    with _lock:
        _setting = value
        _read_env = True  # an explicit call wins over the environment


def get_num_threads() -> int:
    """The threads fnn's non-BLAS passes run on: the last :func:`set_num_threads`, else
    ``FNN_NUM_THREADS``, else :func:`default_threads` (the cores this process may
    use)."""
    if not _read_env:
        _from_env()
    return default_threads() if _setting is None else _setting


def configured() -> bool:
    """Whether the count was chosen (by :func:`set_num_threads` or ``FNN_NUM_THREADS``)
    rather than defaulted to the number of cores."""
    if not _read_env:
        _from_env()
    return _setting is not None


def split(n_rows: int, nbytes: int) -> list[tuple[int, int]]:
    """Near-equal row ranges ``[(start, stop), ...]`` covering ``range(n_rows)``, one per
    chunk: ``nbytes // GRAIN_BYTES`` of them, at least 1, at most ``MAX_CHUNKS`` and
    ``n_rows``. The split depends on the sizes only, never on the thread count.

    Args:
        n_rows: rows of the pass (the batch, usually); 0 gives no ranges.
        nbytes: the bytes the whole pass reads (e.g. ``x.nbytes``).
    """
    if n_rows <= 0:
        return []
    k = max(1, min(MAX_CHUNKS, n_rows, nbytes // GRAIN_BYTES))
    q, r = divmod(n_rows, k)
    bounds = [i * q + min(i, r) for i in range(k + 1)]
    return list(itertools.pairwise(bounds))


def _worker() -> None:
    while True:
        job = _jobs.get()
        job()
        # drop the finished job before waiting: its closure holds the pass's arrays,
        # which would otherwise stay alive until the next job arrives
        del job


def _ensure_workers(count: int) -> None:
    if len(_workers) >= count:
        return
    with _lock:
        while len(_workers) < count:
            t = threading.Thread(target=_worker, name=f"fnn-{len(_workers)}", daemon=True)
            t.start()
            _workers.append(t)


def _after_fork() -> None:  # the child has none of the parent's threads
    global _jobs
    _workers.clear()
    _jobs = queue.SimpleQueue()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def parallel_for(n_chunks: int, fn: Callable[[int], None]) -> None:
    """Call ``fn(i)`` once for each ``i`` in ``range(n_chunks)``, spread over
    :func:`get_num_threads` threads (the calling one works too), and return when all
    calls have returned.

    Each call must write only what no other call reads or writes (its own rows), so
    the order in which they run does not matter. Called from inside a chunk, it runs
    its calls on the calling thread. The first exception raised by a call is re-raised
    here, after every started call has ended.

    Raises:
        ValueError: ``n_chunks`` is not an int >= 0.
    """
    if isinstance(n_chunks, bool) or not isinstance(n_chunks, int) or n_chunks < 0:
        raise ValueError(f"n_chunks must be an int >= 0, got {n_chunks!r}")
    helpers = min(get_num_threads(), n_chunks) - 1
    if helpers <= 0 or getattr(_inside, "active", False):
        for i in range(n_chunks):
            fn(i)
        return
    _ensure_workers(helpers)
    state = {"next": 0, "done": 0}
    errors: list[BaseException] = []
    lock = threading.Lock()
    finished = threading.Event()

    def work() -> None:
        _inside.active = True
        try:
            while True:
                with lock:
                    i = state["next"]
                    if i >= n_chunks:
                        return
                    state["next"] = i + 1
                try:
                    fn(i)
                except BaseException as e:  # handed to the caller
                    with lock:
                        errors.append(e)
                with lock:
                    state["done"] += 1
                    if state["done"] == n_chunks:
                        finished.set()
        finally:
            _inside.active = False

    for _ in range(helpers):
        _jobs.put(work)
    work()
    finished.wait()
    if errors:
        raise errors[0]


def parallel_rows(n_rows: int, nbytes: int, fn: Callable[[int, int], None]) -> None:
    """Call ``fn(start, stop)`` for each range of :func:`split` ``(n_rows, nbytes)``,
    through :func:`parallel_for`: the common case of a pass over the rows of arrays.

    Args:
        n_rows: rows of the pass.
        nbytes: bytes the whole pass reads (sets the number of ranges).
        fn: works rows ``start:stop`` and writes only those rows of its outputs.
    """
    ranges = split(n_rows, nbytes)
    if len(ranges) == 1:
        fn(*ranges[0])
        return
    parallel_for(len(ranges), lambda i: fn(*ranges[i]))
