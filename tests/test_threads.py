"""fnn.threads: the setting, the chunked map, and the same bytes for every thread count."""

from __future__ import annotations

import gc
import itertools
import threading
import time
import weakref
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import specs, threads

pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


@pytest.fixture
def small_grain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 1 KiB, so the small test arrays are split into many ranges."""
    monkeypatch.setattr(threads, "GRAIN_BYTES", 1 << 10)


def test_set_and_get() -> None:
    fnn.set_num_threads(3)
    assert fnn.get_num_threads() == 3
    assert threads.configured()
    fnn.set_num_threads(1)
    assert fnn.get_num_threads() == 1


@pytest.mark.parametrize(("bad", "exc"), [(0, ValueError), (-2, ValueError), (2.0, TypeError)])
def test_bad_count_changes_nothing(bad: Any, exc: type[Exception]) -> None:
    fnn.set_num_threads(2)
    with pytest.raises(exc, match="n must be"):
        fnn.set_num_threads(bad)
    assert fnn.get_num_threads() == 2


def _fresh_count(env: str | None, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(threads, "_setting", None)
    monkeypatch.setattr(threads, "_read_env", False)
    if env is None:
        monkeypatch.delenv("FNN_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("FNN_NUM_THREADS", env)
    return fnn.get_num_threads()


def test_environment_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fresh_count("3", monkeypatch) == 3
    import os

    cores = len(os.sched_getaffinity(0))
    assert _fresh_count(None, monkeypatch) == cores  # the default: usable cores
    assert not threads.configured()
    with pytest.raises(ValueError, match="FNN_NUM_THREADS"):
        _fresh_count("zero", monkeypatch)


def test_split_depends_on_sizes_only() -> None:
    ranges = threads.split(10, 5 * threads.GRAIN_BYTES)
    assert len(ranges) == 5
    assert ranges[0][0] == 0 and ranges[-1][1] == 10
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    fnn.set_num_threads(1)
    assert threads.split(10, 5 * threads.GRAIN_BYTES) == ranges
    assert threads.split(3, 100 * threads.GRAIN_BYTES) == [(0, 1), (1, 2), (2, 3)]
    assert threads.split(0, 10**9) == []


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_parallel_for_runs_each_chunk_once(n_threads: int) -> None:
    fnn.set_num_threads(n_threads)
    seen: list[int] = []
    lock = threading.Lock()

    def chunk(i: int) -> None:
        inner: list[int] = []
        threads.parallel_for(3, inner.append)  # nested: runs on this thread
        assert sorted(inner) == [0, 1, 2]
        with lock:
            seen.append(i)

    threads.parallel_for(17, chunk)
    assert sorted(seen) == list(range(17))


def test_parallel_for_reraises() -> None:
    fnn.set_num_threads(2)

    def chunk(i: int) -> None:
        if i == 5:
            raise KeyError("chunk 5")

    with pytest.raises(KeyError, match="chunk 5"):
        threads.parallel_for(8, chunk)
    with pytest.raises(ValueError, match="n_chunks"):
        threads.parallel_for(-1, chunk)


def test_parallel_rows_user_kernel() -> None:
    """The docs' example: a user's kernel over row ranges equals the whole-array one."""
    fnn.set_num_threads(2)
    z = np.random.default_rng(0).normal(size=(300, 500)).astype(np.float32)
    out = np.empty_like(z)

    def rows(start: int, stop: int) -> None:
        np.tanh(z[start:stop], out=out[start:stop])
        out[start:stop] *= 1.7159

    threads.parallel_rows(len(z), z.nbytes, rows)
    np.testing.assert_array_equal(out, np.tanh(z) * np.float32(1.7159))


def _cnn(dtype: Any) -> fnn.Architecture:
    return fnn.sequential(
        (12, 12, 2),
        [
            specs.conv2d(6, 3, padding="same"),
            specs.batch_norm(),
            specs.activation("relu"),
            specs.max_pool2d(2),
            specs.conv2d(8, 3),
            specs.batch_norm(),
            specs.activation("relu"),
            specs.avg_pool2d(2),
            specs.flatten(),
            specs.dense(10),
        ],
        output="softmax",
        dtype=dtype,
    )


def _run_cnn(n_threads: int, dtype: Any) -> list[bytes]:
    fnn.set_num_threads(n_threads)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 12, 12, 2)).astype(dtype)
    y = rng.integers(0, 10, 24)
    net = fnn.init(_cnn(dtype), rng=0)
    out, cache = fnn.forward(net, X, train=True)
    grads = fnn.backward(net, cache, y)
    fitted, _ = fnn.fit(net, fnn.adam(1e-2), X, y, epochs=2, batch_size=8, rng=0, verbose=0)
    return [
        out.tobytes(),
        fnn.tree.ravel(grads).tobytes(),
        fnn.tree.ravel(fitted).tobytes(),
        fnn.predict(fitted, X).tobytes(),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bytes_for_every_thread_count(small_grain: None, dtype: Any) -> None:
    """Forward, backward, fit steps and predict of a CNN with batch norm and pooling give
    the same bytes on 1, 2 and 3 threads."""
    one = _run_cnn(1, dtype)
    assert _run_cnn(2, dtype) == one
    assert _run_cnn(3, dtype) == one


def test_concurrent_callers_match_sequential(small_grain: None) -> None:
    """Two caller threads running predict and train_step at once get what each gets
    alone: no writable buffer is shared between calls."""
    fnn.set_num_threads(2)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(32, 12, 12, 2)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    net = fnn.init(_cnn(np.float32), rng=0)
    state = fnn.adam(1e-2).init(net)

    def predict() -> bytes:
        return fnn.predict(net, X).tobytes()

    def step() -> bytes:
        n, s = net, state
        for i in range(3):
            n, s, _ = fnn.train_step(n, s, X[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8])
        return fnn.tree.ravel(n).tobytes()

    expected = [predict(), step()] * 2
    got: list[Any] = [None] * 4
    jobs = [predict, step, predict, step]

    def run(k: int) -> None:
        for _ in range(3):
            got[k] = jobs[k]()

    callers = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert got == expected


def test_the_default_is_the_usable_cores_whatever_blas_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default is the cores this process may use, as the issue and
    ``torch.get_num_threads`` have it; BLAS's own thread count (which
    ``blas_threads`` reads) does not change it, and fnn never changes BLAS's."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import os

    cores = len(os.sched_getaffinity(0))
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
            if threads.blas_threads() != n:
                pytest.skip("NumPy's BLAS is not an OpenBLAS fnn can ask")
            assert _fresh_count(None, monkeypatch) == cores
            assert threads.blas_threads() == n  # left as the caller set it
    assert _fresh_count("2", monkeypatch) == 2  # a setting wins over the default


def test_workers_keep_no_array_of_a_finished_pass() -> None:
    """Once parallel_for returns, no worker holds the pass's closure (or the arrays it
    reads): predict's chunks would otherwise stay alive one chunk longer on threads."""
    fnn.set_num_threads(2)
    a = np.ones((4, 1000))
    ref = weakref.ref(a)

    def rows(lo: int, hi: int, a: np.ndarray[Any, Any] = a) -> None:  # holds the array
        a[lo:hi].sum()

    threads.parallel_rows(len(a), 1 << 30, rows)  # 4 chunks, on both threads
    del rows
    del a
    gc.collect()
    deadline = time.monotonic() + 2.0  # a worker drops its job right after running it
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ref() is None
