"""One training step of the MNIST convolutional network, fnn against PyTorch eager.

The network of ``examples/mnist_cnn.py`` (conv 32 3x3 -> batch norm -> ReLU -> max-pool
2 -> conv 64 3x3 -> batch norm -> ReLU -> max-pool 2 -> flatten -> dense 128 ReLU ->
dense 10, softmax cross-entropy), float32, batch 128, Adam 1e-3, on random images.

Peers, each in a process of its own (in one process OpenBLAS's and PyTorch's thread
pools fight and distort both), timed in rotation ``--rounds`` times:

- ``fnn``: ``fnn.fit`` over ``--steps`` batches (the step time is the call's time over
  the steps; fit's one-off set-up is shared by them);
- ``step``: a loop of ``fnn.train_step`` over the same batches (the pure path);
- ``floor``: the step's matrix products alone (the im2col products of both
  convolutions, forward and backward, and the dense layers'), into outputs allocated
  once: what no NumPy implementation of this step can go below;
- ``torch``: ``nn.Sequential`` with ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ... and
  ``torch.optim.Adam``, NCHW, ``torch.set_num_threads(2)``;
- ``torch-cl``: the same with channels-last memory format (fnn's layout);
- ``frozen`` and ``torch-frozen``: ``fnn`` and ``torch`` with the two convolution blocks
  (each convolution and its batch norm, the lower half of the network) frozen: in fnn by
  an optimizer mask (``fnn.chain(fnn.adam(1e-3), fnn.freeze(...))``), in PyTorch by
  ``requires_grad_(False)``. Batch norm keeps updating its running statistics in both.
  Reported as the frozen step over the full step of the same library.

Each process also reports the peak memory of its steps: for fnn the peak of NumPy's
allocations traced by ``tracemalloc`` during the process's first ``fit`` call (which
allocates the optimizer state, the parameter and gradient buffers, every layer's
workspace and activations), for PyTorch the growth of the process's peak resident set
over its steps (its allocator is not traced).

``--root DIR`` adds the peer ``base``: ``fnn`` run from another checkout (e.g. a ``git
worktree`` of an earlier commit), for an A/B in the same rotation.

``--native-blas`` runs the NumPy peers with ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` unset (these machines set them for older OpenBLAS builds; with
them OpenBLAS uses its Haswell kernels on CPUs that have AVX-512).

Run: python benchmarks/cnn_speed.py [--rounds 5] [--steps 10] [--native-blas]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnn_peers import ROOT, fnn_architecture, run_worker, timed, to_torch, torch_cnn

BATCH = 128
# the two convolution blocks (convolution and batch norm): fnn's paths, PyTorch's modules
FROZEN = ("layers.0.", "layers.1.", "layers.4.", "layers.5.")
FROZEN_TORCH = (0, 1, 4, 5)


def _data(steps: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.random((BATCH * steps, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH * steps)
    return X, y


def worker(peer: str, steps: int, repeats: int) -> dict[str, Any]:
    import resource
    import tracemalloc

    X, y = _data(steps)
    result: dict[str, Any] = {}
    if peer in ("fnn", "step", "frozen", "base"):
        import fnn

        net = fnn.init(fnn_architecture(), rng=0)
        opt = fnn.adam(1e-3)
        if peer == "frozen":
            opt = fnn.chain(opt, fnn.freeze(lambda p: p.startswith(FROZEN)))
        if peer in ("fnn", "frozen", "base"):

            def run() -> None:
                fnn.fit(net, opt, X, y, epochs=1, batch_size=BATCH, shuffle=False, rng=0, verbose=0)

            # the first call, traced: parameters, optimizer state, workspaces, activations
            # and the gradient buffer are all allocated in it (later calls reuse them)
            tracemalloc.start()
            run()
            result["peak_bytes"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            times = timed(run, repeats)
        else:
            carry = {"net": net, "state": opt.init(net)}

            def run() -> None:
                n, s = carry["net"], carry["state"]
                for i in range(0, len(X), BATCH):
                    n, s, _ = fnn.train_step(n, s, X[i : i + BATCH], y[i : i + BATCH])
                carry["net"], carry["state"] = n, s

            times = timed(run, repeats)
        result["blas"] = _blas()
    elif peer == "floor":
        times = timed(_floor(steps), repeats)
        result["blas"] = _blas()
    else:
        import torch

        cl = peer == "torch-cl"
        model, Xt = torch_cnn(channels_last=cl), to_torch(X, channels_last=cl)
        nn = torch.nn
        if peer == "torch-frozen":
            for i in FROZEN_TORCH:
                model[i].requires_grad_(False)
        yt = torch.tensor(y)
        opt_t = torch.optim.Adam(model.parameters(), lr=1e-3)
        crit = nn.CrossEntropyLoss()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        def run() -> None:
            for i in range(0, len(Xt), BATCH):
                opt_t.zero_grad()
                loss = crit(model(Xt[i : i + BATCH]), yt[i : i + BATCH])
                loss.backward()
                opt_t.step()

        times = timed(run, repeats)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["peak_bytes"] = (after - before) * 1024
    result["step_seconds"] = statistics.median(times) / steps
    return result


def _floor(steps: int) -> Any:
    """The step's matrix products alone, into outputs allocated once."""
    import numpy as np

    f32 = np.float32
    rng = np.random.default_rng(0)
    n = BATCH
    # conv1: cols (n*26*26, 9+1) @ (10, 32); backward cols^T @ dy
    c1 = rng.random((n * 676, 10), dtype=f32)
    w1 = rng.random((10, 32), dtype=f32)
    y1 = np.empty((n * 676, 32), f32)
    g1 = np.empty((10, 32), f32)
    # conv2: cols (n*11*11, 288+1) @ (289, 64); backward cols^T @ dy and dy @ W^T
    c2 = rng.random((n * 121, 289), dtype=f32)
    w2 = rng.random((289, 64), dtype=f32)
    y2 = np.empty((n * 121, 64), f32)
    g2 = np.empty((289, 64), f32)
    d2 = np.empty((n * 121, 289), f32)
    # dense 1600 -> 128 -> 10
    h = rng.random((n, 1600), dtype=f32)
    w3, w4 = rng.random((1600, 128), dtype=f32), rng.random((128, 10), dtype=f32)
    y3, y4 = np.empty((n, 128), f32), np.empty((n, 10), f32)
    g3, g4 = np.empty((1600, 128), f32), np.empty((128, 10), f32)
    d3, d4 = np.empty((n, 1600), f32), np.empty((n, 128), f32)

    def run() -> None:
        for _ in range(steps):
            np.dot(c1, w1, out=y1)
            np.dot(c2, w2, out=y2)
            np.dot(h, w3, out=y3)
            np.dot(y3, w4, out=y4)
            np.dot(y3.T, y4, out=g4)
            np.dot(y4, w4.T, out=d4)
            np.dot(h.T, d4, out=g3)
            np.dot(d4, w3.T, out=d3)
            np.dot(c2.T, y2, out=g2)
            np.dot(y2, w2.T, out=d2)
            np.dot(c1.T, y1, out=g1)

    return run


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
        return ", ".join(f"{i.get('architecture')} x{i.get('num_threads')}" for i in info)
    except ImportError:
        return "?"


def run_peer(
    peer: str, steps: int, repeats: int, native: bool, root: Path = ROOT
) -> dict[str, Any]:
    env = dict(os.environ)
    if native and peer in ("fnn", "step", "floor", "frozen", "base"):
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    args = [peer, "--steps", str(steps), "--repeats", str(repeats)]
    return run_worker(__file__, args, root if peer == "base" else ROOT, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="batches per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--native-blas", action="store_true")
    parser.add_argument("--root", default=None, help="another checkout, run as peer 'base'")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.repeats)))
        return
    peers = ["fnn", "step", "floor", "frozen", "torch", "torch-cl", "torch-frozen"]
    try:
        import torch  # noqa: F401
    except ImportError:
        peers = peers[:4]
        print("PyTorch is not installed (extra 'bench'): fnn and the floor only")
    root = Path(args.root).resolve() if args.root else ROOT
    if args.root:
        peers.insert(1, "base")
    got: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    for _ in range(args.rounds):
        for p in peers:
            got[p].append(run_peer(p, args.steps, args.repeats, args.native_blas, root))
    med = {p: statistics.median(r["step_seconds"] for r in got[p]) for p in peers}
    f = med["fnn"]
    print(f"batch {BATCH}, float32, {args.rounds} rounds; BLAS: {got['fnn'][0].get('blas')}")
    print(f"{'peer':12} {'ms/step':>8} {'/ fnn':>7} {'peak MiB':>9} {'max/min':>8}")
    for p in peers:
        peak = [r["peak_bytes"] for r in got[p] if "peak_bytes" in r]
        mib = f"{max(peak) / 2**20:9.1f}" if peak else f"{'':9}"
        times = [r["step_seconds"] for r in got[p]]
        spread = max(times) / min(times)  # over the rounds: the processes' medians
        print(f"{p:12} {med[p] * 1e3:8.2f} {med[p] / f:7.2f} {mib} {spread:8.2f}")
    for t in ("torch", "torch-cl", "base"):
        if t in med:
            print(f"fnn fit step / {t}: {f / med[t]:.2f}")
    print(f"fnn fit step / its matrix products (floor): {f / med['floor']:.2f}")
    print(f"loop of train_step / fit: {med['step'] / f:.2f}")
    print(f"frozen conv blocks, step / full step: fnn {med['frozen'] / f:.2f}", end="")
    if "torch" in med:
        print(f", PyTorch {med['torch-frozen'] / med['torch']:.2f}", end="")
    print()


if __name__ == "__main__":
    main()
