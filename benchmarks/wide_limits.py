"""Where the wide workload's step time goes, and how close to its matrix products a step
written with NumPy can come on this machine.

The target "fnn's step <= 1.10x the time of its matrix products" leaves 10% of the
products' time for everything else in the step, mostly the Adam update of 6.3M
parameters. Timed in rotation in one run (median ms per step):

- ``floor``: the step's matrix products alone, into preallocated outputs (speed.py's);
- ``fnn step`` / ``fnn update``: fnn's training step in steady state, and its optimizer
  update alone (13 passes over the parameters, chunked);
- ``adam bound``: the fewest NumPy passes an Adam update can take (11: the moments kept
  pre-divided by 1 - b1 and 1 - b2, which saves two scalings; the finiteness check and
  the write of the new parameters included), chunked the same way: a lower bound for
  an Adam written with NumPy ufuncs on one thread;
- ``adam bound, 2 threads``: the same split over two Python threads, with OpenBLAS
  limited to one thread (threadpoolctl) so that its idle worker does not spin on the
  second core;
- ``floor, 2 threads``: the products split across two Python threads, OpenBLAS limited
  to one thread: what the products cost if the step took both cores away from OpenBLAS
  (each half's weight gradients are not summed: a lower bound).

The best step NumPy allows is about the floor plus the Adam bound; that line is
printed as a multiple of the floor.

Run: python benchmarks/wide_limits.py [--repeats 15]   (threadpoolctl comes with
scikit-learn, in the ``bench`` extra)
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fnn
from benchmarks.speed import matrix_products
from fnn._engine import Engine
from fnn.optim import CHUNK_BYTES

SIZES, BATCH = [1024, 2048, 2048, 10], 512


def adam_bound(
    g: np.ndarray, M: np.ndarray, V: np.ndarray, p: tuple[np.ndarray, np.ndarray], tmp: np.ndarray
) -> None:
    """One Adam step in 11 passes on one chunk: M = m / (1 - b1), V = v / (1 - b2)."""
    b1, b2, lr, eps, t = 0.9, 0.999, 1e-3, 1e-8, 10
    np.multiply(g, g, out=tmp)
    V *= b2
    V += tmp  # V = b2 V + g^2
    M *= b1
    M += g  # M = b1 M + g
    np.sqrt(V, out=tmp)
    c = math.sqrt((1 - b2) / (1 - b2**t))  # sqrt(v_hat) = c sqrt(V)
    tmp += eps / c
    np.divide(M, tmp, out=g)
    g *= -lr * (1 - b1) / ((1 - b1**t) * c)
    if not math.isfinite(float(g @ g)):
        raise FloatingPointError
    np.add(p[0], g, out=p[1])


def chunked(arrays: list[np.ndarray], parts: int) -> list[list[list[np.ndarray]]]:
    """The arrays cut into fnn's chunks, dealt out to ``parts`` threads."""
    size = CHUNK_BYTES // arrays[0].itemsize
    n = arrays[0].size
    chunks = [[a[lo : lo + size] for a in arrays] for lo in range(0, n, size)]
    per = -(-len(chunks) // parts)
    return [chunks[i * per : (i + 1) * per] for i in range(parts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        sys.exit('threadpoolctl is needed: pip install -e ".[bench]"')

    rng = np.random.default_rng(0)
    X = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    Y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]
    arch = fnn.mlp(SIZES, hidden="relu", output="softmax", dtype=np.float32)
    net = fnn.init(arch, rng=0)
    opt = fnn.adam(1e-3)
    engine = Engine(net, opt, opt.init(net))
    engine.gradient(X, Y, None, None)
    g0 = engine.g.copy()
    P = g0.size

    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in itertools.pairwise(SIZES)]

    def products(x: np.ndarray) -> Callable[[], None]:
        """The step's products for the rows ``x``, into preallocated outputs (speed.py)."""
        return matrix_products(
            Ws, x, 1, lambda a, b, o: np.dot(a, b, out=o), lambda s: np.empty(s, np.float32)
        )

    pool = ThreadPoolExecutor(1)

    def both(f: Callable[[], object], h: Callable[[], object]) -> None:
        fut = pool.submit(h)
        f()
        fut.result()

    half = BATCH // 2
    floor_all, floor_a, floor_b = products(X), products(X[:half]), products(X[half:])
    arrays = [g0.copy(), np.zeros(P, np.float32), np.zeros(P, np.float32)]
    pbuf = (np.array(engine.p), np.empty(P, np.float32))
    tmps = [np.empty(CHUNK_BYTES // 4, np.float32) for _ in range(2)]
    one = chunked([*arrays, *pbuf], 1)[0]
    two = chunked([*arrays, *pbuf], 2)

    def bound(chunks: list[list[np.ndarray]], tmp: np.ndarray) -> None:
        for g, M, V, p0, p1 in chunks:
            adam_bound(g, M, V, (p0, p1), tmp[: g.size])

    def reset() -> None:
        np.copyto(engine.g, g0)
        np.copyto(arrays[0], g0)

    runners: dict[str, Callable[[], object]] = {
        "floor": floor_all,
        "fnn step": lambda: engine.step(X, Y, None, None),
        "fnn update": engine.update,
        "adam bound": lambda: bound(one, tmps[0]),
    }
    limited: dict[str, Callable[[], object]] = {
        "adam bound, 2 threads": lambda: both(
            lambda: bound(two[0], tmps[0]), lambda: bound(two[1], tmps[1])
        ),
        "floor, 2 threads": lambda: both(floor_a, floor_b),
    }
    times: dict[str, list[float]] = {k: [] for k in [*runners, *limited]}

    def timed(name: str, f: Callable[[], object]) -> None:
        reset()
        t = time.perf_counter()
        f()
        times[name].append(time.perf_counter() - t)

    for _ in range(args.repeats + 1):
        for k, f in runners.items():
            timed(k, f)
        with threadpool_limits(1, user_api="blas"):
            time.sleep(0.2)  # OpenBLAS's worker stops spinning ~0.1 s after its last product
            for k, f in limited.items():
                timed(k, f)
    med: dict[str, float] = {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}
    floor = med["floor"]
    for k, v in med.items():
        print(f"{k:24} {v:8.2f} ms   {v / floor:6.3f} x floor")
    best = floor + med["adam bound"]
    best2 = min(floor, med["floor, 2 threads"]) + med["adam bound, 2 threads"]
    print(f"{'floor + adam bound':24} {best:8.2f} ms   {best / floor:6.3f} x floor")
    print(f"{'best of 2-thread parts':24} {best2:8.2f} ms   {best2 / floor:6.3f} x floor")
    print(f"{P} parameters; at 1.10x everything but the products has {0.1 * floor:.2f} ms")


if __name__ == "__main__":
    main()
