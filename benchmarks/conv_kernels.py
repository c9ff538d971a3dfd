"""Speed of fnn's convolution and pooling kernels against PyTorch eager on the CPU.

The shapes are those of the MNIST network of issue 12 at batch 128, float32:

- conv1: conv(1 -> 32, 3x3, valid) on 28x28 (no input gradient: the network's first layer);
- pool1: max-pool 2x2 on its 26x26x32 output;
- conv2: conv(32 -> 64, 3x3, valid) on 13x13 (with the input gradient);
- pool2: max-pool 2x2 on its 11x11x64 output.

Peers, each in a process of its own (in one process OpenBLAS's and PyTorch's thread
pools fight and distort both), run in rotation, ``--rounds`` times:

- ``fnn``: the kernels with every buffer given (what a training loop with preallocated
  workspaces runs); OpenBLAS with its default threads;
- ``fnn-pure``: the same kernels allocating fresh outputs (the pure functions' path);
- ``floor``: the kernels' matrix products alone, into preallocated outputs (the im2col
  floor): forward ``cols @ [W; b]``, backward ``cols^T @ dy`` and, for conv2,
  ``dy @ W^T``;
- ``torch``: ``torch.nn.functional.conv2d`` / ``max_pool2d`` with autograd on NCHW
  tensors (PyTorch's default layout), ``torch.set_num_threads(2)``;
- ``torch-cl``: the same on channels-last tensors (NHWC in memory, fnn's layout).

With ``--coretype NAME`` the fnn peers and the floor also run with
``OPENBLAS_CORETYPE=NAME`` (e.g. SkylakeX: OpenBLAS picks Haswell's AVX2 kernels on
AMD Zen 4 although the CPU has AVX-512).

Each process times ``--repeats`` iterations after a warm-up and reports per-operation
medians and minima; the first table shows the median over rounds of the medians, the
second the least time seen (what an operation costs when no other process preempts it:
the steadier comparison on a busy machine), with ratios to PyTorch's times.
Forward and backward are timed separately (PyTorch's forward records its graph).
The machine is shared: compare ratios from one run, not absolute times across runs.

One run (5 rounds of 15 repeats, ``--coretype SkylakeX``) on the 2-core AMD EPYC VM,
busy with other jobs (load average 1.4 -> 3.0), least ms per operation:

    op           fnn  fnn-pure  floor   fnn AVX-512  floor AVX-512  torch  torch-cl
    conv1 fwd   0.77    0.78    0.45       0.67          0.43        0.52    0.54
    conv1 bwd   0.92    0.94    1.07       0.90          1.02        2.55    1.29
    pool1 fwd   2.09    2.06     -         1.96           -          5.73    0.92
    pool1 bwd   1.82    1.89     -         1.77           -          0.68    0.69
    conv2 fwd   4.33    4.26    3.22       2.76          1.84        1.76    1.43
    conv2 bwd   7.38    7.46    6.15       5.36          3.89        3.56    4.01
    pool2 fwd   0.58    0.57     -         0.59           -          1.87    0.26
    pool2 bwd   0.57    0.45     -         0.55           -          0.25    0.24
    total      18.45   18.39   10.88      14.55          7.17       16.91    9.39

The matrix products are most of fnn's time and run at OpenBLAS's speed: with the AVX2
(Haswell) kernels OpenBLAS picks on this CPU, conv2's products alone take longer than
PyTorch's whole convolution (oneDNN, AVX-512); with ``OPENBLAS_CORETYPE=SkylakeX`` they
take 40% less. Pooling, im2col and col2im run on one core in NumPy, PyTorch's on two.

Run: python benchmarks/conv_kernels.py [--rounds 3] [--repeats 15] [--coretype SkylakeX]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 128
CONVS = {
    # name: (input (n, h, w, c_in), weights (kh, kw, c_in, c_out), input gradient needed)
    "conv1": ((BATCH, 28, 28, 1), (3, 3, 1, 32), False),
    "conv2": ((BATCH, 13, 13, 32), (3, 3, 32, 64), True),
}
POOLS = {"pool1": (BATCH, 26, 26, 32), "pool2": (BATCH, 11, 11, 64)}
OPS = [f"{k} {p}" for k in ("conv1", "pool1", "conv2", "pool2") for p in ("fwd", "bwd")]

Step = Callable[[], None]


def data(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    f32 = np.float32
    arrays: dict[str, Any] = {}
    for name, (xs, ws, _) in CONVS.items():
        oh, ow = xs[1] - ws[0] + 1, xs[2] - ws[1] + 1
        arrays[name] = (
            rng.normal(size=xs).astype(f32),
            (rng.normal(size=ws) * 0.1).astype(f32),
            rng.normal(size=ws[3]).astype(f32),
            rng.normal(size=(xs[0], oh, ow, ws[3])).astype(f32),
        )
    for name, xs in POOLS.items():
        d = rng.normal(size=(xs[0], xs[1] // 2, xs[2] // 2, xs[3])).astype(f32)
        arrays[name] = (rng.normal(size=xs).astype(f32), d)
    return arrays


def fnn_steps(buffers: bool) -> dict[str, Step]:
    from fnn.layers.conv2d import conv2d_backward, conv2d_forward, conv2d_workspace_shapes
    from fnn.layers.pool2d import (
        argmax_dtype,
        max_pool2d_backward,
        max_pool2d_forward,
        max_pool2d_workspace_shapes,
    )

    arrays = data()
    steps: dict[str, Step] = {}
    stride, pads = (1, 1), ((0, 0), (0, 0))
    for name, (_, _, need_d_in) in CONVS.items():
        x, W, b, d = arrays[name]
        s = conv2d_workspace_shapes(x.shape, W.shape, stride, pads)
        buf = {k: np.empty(getattr(s, k), np.float32) for k in s._fields} if buffers else {}
        cache: list[Any] = [conv2d_forward(x, W, b, stride, pads)[1]]

        def fwd(x: Any = x, W: Any = W, b: Any = b, buf: Any = buf, cache: Any = cache) -> None:
            cache[0] = conv2d_forward(
                x, W, b, stride, pads, out=buf.get("out"), work=buf.get("cols")
            )[1]

        def bwd(
            x: Any = x,
            W: Any = W,
            d: Any = d,
            buf: Any = buf,
            cache: Any = cache,
            need: bool = need_d_in,
        ) -> None:
            d_in, work = (buf.get("d_in"), buf.get("d_cols")) if need else (None, None)
            conv2d_backward(
                cache[0], W, d, stride, pads, x.shape, need_d_in=need,
                dW_out=buf.get("dW"), db_out=buf.get("db"), d_in_out=d_in, work=work,
            )  # fmt: skip

        steps[f"{name} fwd"], steps[f"{name} bwd"] = fwd, bwd
    for name in POOLS:
        x, d = arrays[name]
        p = max_pool2d_workspace_shapes(x.shape, 2, 2)
        idt = argmax_dtype(2)
        pb: dict[str, Any] = {}
        if buffers:
            pb = {
                "out": np.empty(p.out, np.float32),
                "argmax": np.empty(p.argmax, idt),
                "work": np.empty(p.argmax, idt),
                "d_in": np.empty(p.d_in, np.float32),
                "d_work": np.empty(p.d_work, np.float32),
            }
        am: list[Any] = [max_pool2d_forward(x, 2, 2)[1]]

        def pfwd(x: Any = x, pb: Any = pb, am: Any = am) -> None:
            am[0] = max_pool2d_forward(
                x, 2, 2, out=pb.get("out"), argmax_out=pb.get("argmax"), work=pb.get("work")
            )[1]

        def pbwd(x: Any = x, d: Any = d, pb: Any = pb, am: Any = am) -> None:
            max_pool2d_backward(
                am[0], d, 2, 2, x.shape, d_in_out=pb.get("d_in"), work=pb.get("d_work")
            )

        steps[f"{name} fwd"], steps[f"{name} bwd"] = pfwd, pbwd
    return steps


def floor_steps() -> dict[str, Step]:
    arrays = data()
    steps: dict[str, Step] = {}
    for name, (_, _, need_d_in) in CONVS.items():
        x, W, b, d = arrays[name]
        n, h, w, c_in = x.shape
        kh, kw, _, c_out = W.shape
        m, k = n * (h - kh + 1) * (w - kw + 1), kh * kw * c_in
        cols = np.random.default_rng(1).normal(size=(m, k + 1)).astype(np.float32)
        wb = np.concatenate([W.reshape(k, c_out), b[None]])
        y, d2 = np.empty((m, c_out), np.float32), d.reshape(m, c_out)
        dwb, dcols = np.empty((k + 1, c_out), np.float32), np.empty((m, k), np.float32)
        w2t = W.reshape(k, c_out).T

        def fwd(cols: Any = cols, wb: Any = wb, y: Any = y) -> None:
            np.matmul(cols, wb, out=y)

        def bwd(
            cols: Any = cols,
            d2: Any = d2,
            dwb: Any = dwb,
            dcols: Any = dcols,
            w2t: Any = w2t,
            need: bool = need_d_in,
        ) -> None:
            np.matmul(cols.T, d2, out=dwb)
            if need:
                np.matmul(d2, w2t, out=dcols)

        steps[f"{name} fwd"], steps[f"{name} bwd"] = fwd, bwd
    return steps


def torch_steps(channels_last: bool) -> dict[str, Step]:
    import torch

    torch.set_num_threads(2)
    F = torch.nn.functional
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    arrays = data()
    steps: dict[str, Step] = {}

    def nchw(a: Any, grad: bool = False) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
        return t.contiguous(memory_format=fmt).requires_grad_(grad)

    for name, (_, _, need_d_in) in CONVS.items():
        x, W, b, d = arrays[name]
        xt = nchw(x, need_d_in)
        wt = torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1)))
        wt = wt.contiguous(memory_format=fmt).requires_grad_(True)
        bt = torch.from_numpy(b).requires_grad_(True)
        dt = nchw(d)
        out: list[Any] = [None]

        def fwd(xt: Any = xt, wt: Any = wt, bt: Any = bt, out: Any = out) -> None:
            xt.grad = wt.grad = bt.grad = None
            out[0] = F.conv2d(xt, wt, bt)

        def bwd(dt: Any = dt, out: Any = out) -> None:
            out[0].backward(dt)

        steps[f"{name} fwd"], steps[f"{name} bwd"] = fwd, bwd
    for name in POOLS:
        x, d = arrays[name]
        xt, dt = nchw(x, True), nchw(d)
        pout: list[Any] = [None]

        def pfwd(xt: Any = xt, pout: Any = pout) -> None:
            xt.grad = None
            pout[0] = F.max_pool2d(xt, 2, 2)

        def pbwd(dt: Any = dt, pout: Any = pout) -> None:
            pout[0].backward(dt)

        steps[f"{name} fwd"], steps[f"{name} bwd"] = pfwd, pbwd
    return steps


def worker(peer: str, repeats: int) -> dict[str, dict[str, float]]:
    """Median and least milliseconds of each operation of ``peer`` in this process."""
    if peer.startswith("fnn-pure"):
        steps = fnn_steps(buffers=False)
    elif peer.startswith("fnn"):
        steps = fnn_steps(buffers=True)
    elif peer.startswith("floor"):
        steps = floor_steps()
    else:
        steps = torch_steps(channels_last=peer == "torch-cl")
    ops = [op for op in OPS if op in steps]
    times: dict[str, list[float]] = {op: [] for op in ops}
    for i in range(repeats + 3):  # 3 warm-up iterations
        for op in ops:  # forward then backward of each kernel, in network order
            t0 = time.perf_counter()
            steps[op]()
            if i >= 3:
                times[op].append(time.perf_counter() - t0)
    return {
        "median": {op: 1e3 * statistics.median(ts) for op, ts in times.items()},
        "min": {op: 1e3 * min(ts) for op, ts in times.items()},
    }


def run_peer(peer: str, repeats: int, coretype: str | None) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if peer.endswith("+coretype") and coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    cmd = [sys.executable, __file__, "--worker", peer, "--repeats", str(repeats)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    stats: dict[str, dict[str, float]] = json.loads(result.stdout.strip().splitlines()[-1])
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--coretype", default=None, help="also run fnn with OPENBLAS_CORETYPE")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats)))
        return

    peers = ["fnn", "fnn-pure", "floor"]
    if args.coretype:
        peers += ["fnn+coretype", "floor+coretype"]
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed (extra 'bench'): timing fnn alone")
        else:
            peers += ["torch", "torch-cl"]
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; batch {BATCH}, float32")
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {p: [] for p in peers}
    for r in range(args.rounds):
        order = peers[r % len(peers) :] + peers[: r % len(peers)]  # rotate the start
        for peer in order:
            rounds[peer].append(run_peer(peer, args.repeats, args.coretype))
    print(f"load average after:  {os.getloadavg()}")
    names = {"fnn+coretype": f"fnn {args.coretype}", "floor+coretype": f"floor {args.coretype}"}
    for stat, combine in (("median", statistics.median), ("min", min)):
        table = {
            p: {op: combine(rr[stat][op] for rr in rs) for op in rs[0][stat]}
            for p, rs in rounds.items()
        }
        print()
        print_table(f"{stat} ms", table, peers, names)


def print_table(
    title: str, table: dict[str, dict[str, float]], peers: list[str], names: dict[str, str]
) -> None:
    header = f"{title:<11}" + "".join(f"{names.get(p, p):>16}" for p in peers)
    if "torch" in table:
        header += f"{'fnn/torch':>11}{'fnn/torch-cl':>14}{'fnn/floor':>11}"
    print(header)
    for op in OPS:
        row = f"{op:<11}" + "".join(
            f"{table[p][op]:>16.3f}" if op in table[p] else f"{'-':>16}" for p in peers
        )
        if "torch" in table:
            row += f"{table['fnn'][op] / table['torch'][op]:>11.2f}"
            row += f"{table['fnn'][op] / table['torch-cl'][op]:>14.2f}"
            row += f"{table['fnn'][op] / table['floor'][op]:>11.2f}" if op in table["floor"] else ""
        print(row)
    totals = {p: sum(table[p].get(op, 0.0) for op in OPS) for p in peers}
    row = f"{'total':<11}" + "".join(f"{totals[p]:>16.3f}" for p in peers)
    if "torch" in table:
        row += (
            f"{totals['fnn'] / totals['torch']:>11.2f}{totals['fnn'] / totals['torch-cl']:>14.2f}"
        )
    print(row)


if __name__ == "__main__":
    main()
