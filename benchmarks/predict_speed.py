"""Inference through the MNIST convolutional network: fnn against ONNX Runtime and PyTorch.

The network of ``examples/mnist_cnn.py``, float32, on ``--n`` (10,000) random images
(28, 28, 1); each peer in a process of its own, timed in rotation ``--rounds`` times:

- ``fnn``: ``fnn.predict(net, X)``;
- ``ort``: the same network exported by ``fnn.onnx.export``, run by ONNX Runtime
  (its default session options) on the whole batch;
- ``torch`` / ``torch-cl``: ``nn.Sequential`` in eval mode under ``torch.no_grad()``,
  NCHW / channels-last, ``torch.set_num_threads(2)``.

For fnn the process also reports the peak of NumPy's allocations during one
``predict`` (``tracemalloc``), against what the call cannot do without: its output
(n, 10) plus one chunk's activations (the chunk of :func:`fnn.network.inference_rows`
rows times the sum of the layers' output sizes).

``--root DIR`` runs the fnn peer from another checkout (e.g. a ``git worktree`` of an
earlier commit), as the extra peer ``base``, for an A/B in the same run.

Run: python benchmarks/predict_speed.py [--rounds 5] [--n 10000] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnn_peers import ROOT, fnn_architecture, run_worker, timed, to_torch, torch_cnn


def _data(n: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).random((n, 28, 28, 1), dtype=np.float32)


def _net() -> Any:
    import fnn

    return fnn.init(fnn_architecture(), rng=0)


def worker(peer: str, n: int, repeats: int) -> dict[str, Any]:

    X = _data(n)
    result: dict[str, Any] = {}
    if peer in ("fnn", "base"):
        import tracemalloc

        import fnn
        from fnn.network import inference_rows

        net = _net()
        tracemalloc.start()
        out = fnn.predict(net, X)
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows = min(n, inference_rows(net))
        per_sample = sum(math.prod(s) for s in net.shapes) * net.dtype.itemsize
        result["floor_bytes"] = out.nbytes + rows * per_sample
        result["rows"] = rows
        times = timed(lambda: fnn.predict(net, X), repeats)
    elif peer == "ort":
        import onnxruntime as ort

        import fnn.onnx

        with tempfile.TemporaryDirectory() as tmp:
            path = fnn.onnx.export(_net(), Path(tmp) / "cnn.onnx")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        times = timed(lambda: session.run(None, {name: X}), repeats)
    else:
        import torch

        cl = peer == "torch-cl"
        model, Xt = torch_cnn(channels_last=cl).eval(), to_torch(X, channels_last=cl)

        def run() -> None:
            with torch.no_grad():
                torch.softmax(model(Xt), dim=1)

        times = timed(run, repeats)
    result["seconds"] = statistics.median(times)
    return result


def run_peer(peer: str, n: int, repeats: int, root: Path) -> dict[str, Any]:
    args = [peer, "--n", str(n), "--repeats", str(repeats)]
    return run_worker(__file__, args, root if peer == "base" else ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=10_000, help="images")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--root", default=None, help="another checkout, run as peer 'base'")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.repeats)))
        return
    peers = ["fnn", "ort", "torch", "torch-cl"]
    for mod in ("onnxruntime", "torch"):
        try:
            __import__(mod)
        except ImportError:
            print(f"{mod} is not installed: its peers are left out")
            peers = [p for p in peers if not p.startswith(mod[:3])]
    root = Path(args.root).resolve() if args.root else ROOT
    if args.root:
        peers.insert(1, "base")
    got: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    for _ in range(args.rounds):
        for p in peers:
            got[p].append(run_peer(p, args.n, args.repeats, root))
    med = {p: statistics.median(r["seconds"] for r in got[p]) for p in peers}
    f = med["fnn"]
    print(f"{args.n} images, float32, {args.rounds} rounds")
    print(f"{'peer':9} {'s':>7} {'/ fnn':>7} {'max/min':>8} {'peak MiB':>9} {'/ floor':>8}")
    for p in peers:
        times = [r["seconds"] for r in got[p]]
        mem = ""
        if "peak_bytes" in got[p][0]:
            r = got[p][0]
            mem = f"{r['peak_bytes'] / 2**20:9.1f} {r['peak_bytes'] / r['floor_bytes']:8.2f}"
        print(f"{p:9} {med[p]:7.3f} {med[p] / f:7.2f} {max(times) / min(times):8.2f} {mem}")
    r = got["fnn"][0]
    print(
        f"floor: output + one chunk's activations ({r['rows']} rows) = "
        f"{r['floor_bytes'] / 2**20:.1f} MiB"
    )
    for p in ("ort", "torch", "torch-cl", "base"):
        if p in med:
            print(f"fnn predict / {p}: {f / med[p]:.2f}")


if __name__ == "__main__":
    main()
