"""Training speed of fnn against peers measured in the same run, on the same batches.

Peers: the hand-written NumPy loop in ``benchmarks/reference_numpy.py``, scikit-learn's
``MLPClassifier`` (its own fit loop) and PyTorch eager (``nn.Sequential`` +
``torch.optim``, 2 threads) when installed (``pip install -e ".[bench]"``). fnn is
timed three ways on the same batches: ``fnn.fit``; a loop of ``fnn.train_step``; and
the design card's loop a user writes, ``forward -> backward -> update``.

Workloads (float32):

- tiny: 2-16-16-1, ReLU, sigmoid + BCE, batch 32, SGD lr 0.1;
- mnist-mlp: 784-256-128-10, ReLU, softmax CE, batch 128, Adam 1e-3;
- wide: 1024-2048-2048-10, ReLU, softmax CE, batch 512, Adam 1e-3.

For each it reports the median time per training step over repeats after a warm-up,
samples per second, each peer's time as a multiple of fnn's, and (mnist-mlp, wide) the
time of the step's matrix products alone (the floor) with fnn's step as a multiple of
it; likewise PyTorch's step against PyTorch's own products. ``--mnist`` also times
reaching 98% MNIST test accuracy with fnn and with scikit-learn's MLP.
Ratios, not absolute times, are the result: machines are shared.

Run: python benchmarks/speed.py [--workloads tiny,mnist-mlp,wide] [--mnist] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

import fnn
from benchmarks.reference_numpy import NumpyMLP

WORKLOADS: dict[str, dict[str, Any]] = {
    "tiny": {
        "sizes": [2, 16, 16, 1],
        "output": "sigmoid",
        "batch": 32,
        "opt": "sgd",
        "lr": 0.1,
        "steps": 400,
        "repeats": 7,
    },
    "mnist-mlp": {
        "sizes": [784, 256, 128, 10],
        "output": "softmax",
        "batch": 128,
        "opt": "adam",
        "lr": 1e-3,
        "steps": 200,
        "repeats": 5,
    },
    "wide": {
        "sizes": [1024, 2048, 2048, 10],
        "output": "softmax",
        "batch": 512,
        "opt": "adam",
        "lr": 1e-3,
        "steps": 32,
        "repeats": 3,
    },
}


def batches(w: dict[str, Any], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` batches of float32 inputs and targets, concatenated. Each timed call
    trains one epoch over them, so fnn's and scikit-learn's per-fit set-up (fresh
    buffers: first touches of memory are slow on virtual machines) is shared by that
    many steps; the NumPy loop and PyTorch keep their model and optimizer across calls."""
    rng = np.random.default_rng(seed)
    n = w["batch"] * w["steps"]
    X = rng.standard_normal((n, w["sizes"][0])).astype(np.float32)
    if w["output"] == "sigmoid":
        y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    else:
        y = rng.integers(0, w["sizes"][-1], n)
    return X, y


Runner = Callable[[], None]


def interleaved_medians(runners: dict[str, Runner], repeats: int) -> dict[str, float]:
    """Median seconds of each runner, timed in rotation (a, b, c, a, b, c, ...) after one
    warm-up each, so drift in the machine's speed hits every peer alike."""
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(repeats):
        for k, run in runners.items():
            t = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def make_fnn(w: dict[str, Any], X: np.ndarray, y: np.ndarray) -> Runner:
    arch = fnn.mlp(
        w["sizes"], hidden="relu", output=w["output"], initializer="he_normal", dtype=np.float32
    )
    net = fnn.init(arch, rng=0)
    opt = fnn.sgd(w["lr"]) if w["opt"] == "sgd" else fnn.adam(w["lr"])

    def run() -> None:
        fnn.fit(net, opt, X, y, epochs=1, batch_size=w["batch"], shuffle=False, rng=0, verbose=0)

    return run


def _fnn_start(w: dict[str, Any]) -> tuple[fnn.Network, fnn.Optimizer]:
    arch = fnn.mlp(
        w["sizes"], hidden="relu", output=w["output"], initializer="he_normal", dtype=np.float32
    )
    opt = fnn.sgd(w["lr"]) if w["opt"] == "sgd" else fnn.adam(w["lr"])
    return fnn.init(arch, rng=0), opt


def make_train_step(w: dict[str, Any], X: np.ndarray, y: np.ndarray) -> Runner:
    """A loop of ``fnn.train_step`` over the batches; params and state carried over."""
    B = w["batch"]
    parts = [(X[i : i + B], y[i : i + B]) for i in range(0, len(X), B)]
    net, opt = _fnn_start(w)
    carry = {"net": net, "state": opt.init(net)}

    def run() -> None:
        net, state = carry["net"], carry["state"]
        for xb, yb in parts:
            net, state, _ = fnn.train_step(net, state, xb, yb)
        carry["net"], carry["state"] = net, state

    return run


def make_pure_loop(w: dict[str, Any], X: np.ndarray, y: np.ndarray) -> Runner:
    """The design card's loop: ``forward -> backward -> update`` per batch."""
    B = w["batch"]
    parts = [(X[i : i + B], y[i : i + B]) for i in range(0, len(X), B)]
    net, opt = _fnn_start(w)
    carry = {"net": net, "state": opt.init(net)}

    def run() -> None:
        net, state = carry["net"], carry["state"]
        for xb, yb in parts:
            _, cache = fnn.forward(net, xb)
            grads = fnn.backward(net, cache, yb)
            net, state = fnn.update(net, grads, state)
        carry["net"], carry["state"] = net, state

    return run


def make_numpy(w: dict[str, Any], X: np.ndarray, y: np.ndarray) -> Runner:
    B = w["batch"]
    yy = y.reshape(-1, 1).astype(np.float32) if w["output"] == "sigmoid" else y
    parts = [(X[i : i + B], yy[i : i + B]) for i in range(0, len(X), B)]
    model = NumpyMLP(w["sizes"], output=w["output"], optimizer=w["opt"], learning_rate=w["lr"])

    def run() -> None:
        for xb, yb in parts:
            model.step(xb, yb)

    return run


def make_sklearn(w: dict[str, Any], X: np.ndarray, y: np.ndarray) -> Runner | None:
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(w["sizes"][1:-1]),
        activation="relu",
        solver=w["opt"],
        learning_rate_init=w["lr"],
        batch_size=w["batch"],
        max_iter=1,
        shuffle=False,
        tol=0.0,
        alpha=0.0,
        momentum=0.0,
        nesterovs_momentum=False,
        random_state=0,
    )

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)  # one epoch of `steps` minibatches through sklearn's own loop

    return run


def make_torch(w: dict[str, Any], X: np.ndarray, y: np.ndarray) -> Runner | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    torch.manual_seed(0)
    layers: list[Any] = []
    s = w["sizes"]
    for i in range(len(s) - 1):
        layers.append(torch.nn.Linear(s[i], s[i + 1]))
        if i < len(s) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = (torch.optim.SGD if w["opt"] == "sgd" else torch.optim.Adam)(
        model.parameters(), lr=w["lr"]
    )
    if w["output"] == "sigmoid":
        crit: Any = torch.nn.BCEWithLogitsLoss()
        yt = torch.tensor(y.reshape(-1, 1), dtype=torch.float32)
    else:
        crit = torch.nn.CrossEntropyLoss()
        yt = torch.tensor(y)
    Xt = torch.tensor(X)
    B = w["batch"]
    parts = [(Xt[i : i + B], yt[i : i + B]) for i in range(0, len(X), B)]

    def run() -> None:
        for xb, yb in parts:
            opt.zero_grad()
            loss = crit(model(xb), yb)
            loss.backward()
            opt.step()

    return run


def matrix_products(
    Ws: list[Any], xb: Any, steps: int, mm: Callable[[Any, Any, Any], Any], empty: Any
) -> Runner:
    """``steps`` times the step's matrix products alone: X @ W forward, x^T dz and
    dz W^T backward (no input gradient for the first layer), each written into an
    output allocated once (``mm(a, b, out)``), as fnn's engine does: freshly allocated
    outputs of a few MB cost page faults, up to 30% of the products' time on these
    machines, which is not the products' time. NumPy arrays or PyTorch tensors alike."""
    n = xb.shape[0]
    outs = [empty((n, W.shape[1])) for W in Ws]
    grads = [empty(tuple(W.shape)) for W in Ws]
    dxs = [empty((n, W.shape[0])) for W in Ws]

    def run() -> None:
        for _ in range(steps):
            hs = [xb]
            h = xb
            for W, o in zip(Ws, outs, strict=True):
                h = mm(h, W, o)
                hs.append(h)
            d = h
            for i in range(len(Ws) - 1, -1, -1):
                mm(hs[i].T, d, grads[i])
                if i > 0:
                    d = mm(d, Ws[i].T, dxs[i])

    return run


def make_floor(w: dict[str, Any], X: np.ndarray) -> Runner:
    """The step's matrix products alone, with NumPy (fnn's floor)."""
    rng = np.random.default_rng(0)
    s, B = w["sizes"], w["batch"]
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in itertools.pairwise(s)]
    return matrix_products(
        Ws,
        X[:B],
        w["steps"],
        lambda a, b, o: np.dot(a, b, out=o),
        lambda shape: np.empty(shape, np.float32),
    )


def make_torch_floor(w: dict[str, Any], X: np.ndarray) -> Runner | None:
    """The same products with PyTorch, so PyTorch's step can be set against its floor
    the way fnn's is."""
    try:
        import torch
    except ImportError:
        return None
    g = torch.Generator().manual_seed(0)
    s, B = w["sizes"], w["batch"]
    Ws = [torch.randn(a, b, generator=g) for a, b in itertools.pairwise(s)]
    return matrix_products(
        Ws,
        torch.tensor(X[:B]),
        w["steps"],
        lambda a, b, o: torch.mm(a, b, out=o),
        lambda shape: torch.empty(shape),
    )


def mnist_time_to(target: float, data: str | None) -> dict[str, float | None]:
    """Wall time until the MNIST test accuracy first reaches ``target``, evaluated after
    each epoch, for fnn (the example's network) and scikit-learn's MLP (same sizes,
    Adam 1e-3, batch 128)."""
    (Xtr, ytr), (Xte, yte) = fnn.datasets.load_mnist(data)
    Xtr = (Xtr.reshape(len(Xtr), -1) / np.float32(255)).astype(np.float32)
    Xte = (Xte.reshape(len(Xte), -1) / np.float32(255)).astype(np.float32)
    out: dict[str, float | None] = {}
    arch = fnn.mlp([784, 256, 128, 10], output="softmax", dropout=0.2, dtype=np.float32)
    net = fnn.init(arch, rng=0)
    epochs = 20
    opt = fnn.adam(fnn.schedules.CosineDecay(1e-3, decay_steps=epochs * 469))
    start = time.perf_counter()
    state = None
    out["fnn"] = None
    gen = np.random.default_rng(0)
    for e in range(epochs):
        net, h = fnn.fit(
            net,
            opt,
            Xtr,
            ytr,
            epochs=1,
            batch_size=128,
            rng=gen,
            opt_state=state,
            initial_epoch=e,
            verbose=0,
        )
        state = h.opt_state
        if fnn.metrics.accuracy(yte, fnn.predict(net, Xte)) >= target:
            out["fnn"] = time.perf_counter() - start
            out["fnn_epochs"] = e + 1
            break
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return out
    clf = MLPClassifier(
        hidden_layer_sizes=(256, 128),
        solver="adam",
        learning_rate_init=1e-3,
        batch_size=128,
        random_state=0,
    )
    start = time.perf_counter()
    out["sklearn"] = None
    for e in range(40):
        clf.partial_fit(Xtr, ytr, classes=np.arange(10))
        if clf.score(Xte, yte) >= target:
            out["sklearn"] = time.perf_counter() - start
            out["sklearn_epochs"] = e + 1
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="fnn training speed against peers")
    parser.add_argument("--workloads", default="tiny,mnist-mlp,wide")
    parser.add_argument("--mnist", action="store_true", help="also time reaching 98%% on MNIST")
    parser.add_argument("--data", default=None, help="folder with the MNIST files")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "numpy": np.__version__}}
    print(f"{'workload':10} {'peer':8} {'us/step':>10} {'samples/s':>11} {'peer/fnn':>9}")
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        X, y = batches(w)
        runners: dict[str, Runner | None] = {
            "fnn": make_fnn(w, X, y),
            "step": make_train_step(w, X, y),
            "loop": make_pure_loop(w, X, y),
            "numpy": make_numpy(w, X, y),
            "sklearn": make_sklearn(w, X, y),
            "torch": make_torch(w, X, y),
        }
        if name != "tiny":
            runners["matmul_floor"] = make_floor(w, X)
            runners["torch_floor"] = make_torch_floor(w, X)
        medians = interleaved_medians(
            {k: v for k, v in runners.items() if v is not None}, w["repeats"]
        )
        r: dict[str, float | None] = {k: None for k in runners}
        r.update({k: v / w["steps"] for k, v in medians.items()})
        results[name] = r
        f = r["fnn"]
        assert f is not None
        for peer in ("fnn", "numpy", "sklearn", "torch"):
            t = r[peer]
            if t is None:
                print(f"{name:10} {peer:8} {'not installed':>10}")
                continue
            print(f"{name:10} {peer:8} {t * 1e6:10.1f} {w['batch'] / t:11.0f} {t / f:9.2f}")
        # the public loops against their targets (issue: at most 1.5x / 1.15x the NumPy
        # loop for the design card's loop, 1.5x / 1.25x fit's step for train_step)
        n, st, lp = r["numpy"], r["step"], r["loop"]
        assert n is not None and st is not None and lp is not None
        print(
            f"{name:10} {'step':8} {st * 1e6:10.1f} {w['batch'] / st:11.0f} "
            f"train_step loop / fit {st / f:.2f}"
        )
        print(
            f"{name:10} {'loop':8} {lp * 1e6:10.1f} {w['batch'] / lp:11.0f} "
            f"forward/backward/update loop / NumPy loop {lp / n:.2f}"
        )
        floor = r.get("matmul_floor")
        if floor:
            print(f"{name:10} {'floor':8} {floor * 1e6:10.1f} {'':11} fnn/floor {f / floor:.3f}")
        tf, tt = r.get("torch_floor"), r.get("torch")
        if tf and tt:
            print(f"{name:10} {'tfloor':8} {tf * 1e6:10.1f} {'':11} torch/its floor {tt / tf:.3f}")
    if args.mnist:
        m = mnist_time_to(0.98, args.data)
        results["mnist_time_to_98"] = m
        print(
            "MNIST to 98% test accuracy: "
            + ", ".join(f"{k} {v:.1f}" for k, v in m.items() if v is not None)
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
