"""Training steps of sequence models, fnn against PyTorch eager (issue 20's speed targets).

Two models, float32, integer targets (no one-hot), one optimizer step per batch:

- ``transformer``: the character transformer of issue 20 (token and learned position
  embeddings, 4 pre-LayerNorm blocks of 4 heads, d_model 128, context 64, GELU (tanh
  form) MLP of width 512, final LayerNorm, untied head to 73 characters, no biases in
  the attention and MLP projections, no dropout), batch 12, AdamW (lr 1e-3, betas (0.9,
  0.99), weight decay 0.1 on the 2-D weights) after global-norm clipping at 1.0; the
  loss is the cross-entropy over all 12 x 64 positions. PyTorch's peer uses
  ``F.scaled_dot_product_attention(is_causal=True)``.
- ``lstm``: ``LSTM(128)`` over (128, 28, 28) (MNIST read row by row) and a dense head
  to 10 classes, Adam 1e-3. PyTorch's peer is ``nn.LSTM`` (its fused CPU kernel).

Each (model, peer) runs in a fresh process of its own (in one process OpenBLAS's and
PyTorch's thread pools fight), ``--rounds`` times in rotation, so drift in the
machine's speed hits every peer alike. A process trains ``--steps`` batches per timed
call after one warm-up call, ``--repeats`` calls, and reports its median per step. The
table gives, per peer, the median over processes and the spread (slowest process over
fastest), and fnn's step as a multiple of PyTorch's.

fnn's peer is ``fnn.fit`` over the batches (``--loop step`` times a loop of
``fnn.train_step`` instead). ``--threads`` sets both libraries' threads (default 2:
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` for NumPy, ``torch.set_num_threads``).

Run: python benchmarks/sequence_speed.py [--quick] [--threads 2] [--rounds 5]
     [--models transformer,lstm] [--loop fit|step]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

VOCAB, LAYERS, HEADS, D_MODEL, CONTEXT, TBATCH = 73, 4, 4, 128, 64, 12
UNITS, LBATCH, ROWS, PIXELS, CLASSES = 128, 128, 28, 28, 10


def _data(model: str, steps: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    if model == "transformer":
        ids = rng.integers(0, VOCAB, (TBATCH * steps, CONTEXT + 1))
        return ids[:, :-1].copy(), ids[:, 1:].copy()
    X = rng.random((LBATCH * steps, ROWS, PIXELS), dtype=np.float32)
    return X, rng.integers(0, CLASSES, LBATCH * steps)


def _fnn(model: str, loop: str, X: Any, y: Any) -> Any:
    import numpy as np

    import fnn

    s = fnn.specs
    if model == "transformer":
        blocks = [b for _ in range(LAYERS) for b in s.transformer_block(HEADS, bias=False)]
        arch = fnn.sequential(
            (None,),
            [
                s.embedding(VOCAB, D_MODEL),
                s.positional_embedding(CONTEXT),
                *blocks,
                s.layer_norm(),
                s.dense(VOCAB, bias=False),
            ],
            output="softmax",
            dtype=np.float32,
        )
        opt = fnn.chain(
            fnn.clip_by_global_norm(1.0),
            fnn.adamw(1e-3, 0.9, 0.99, weight_decay=0.1, decay_mask=fnn.weights_only),
        )
        batch = TBATCH
    else:
        arch = fnn.sequential(
            (ROWS, PIXELS), [s.lstm(UNITS), s.dense(CLASSES)], output="softmax", dtype=np.float32
        )
        opt = fnn.adam(1e-3)
        batch = LBATCH
    net = fnn.init(arch, rng=0)
    if loop == "fit":

        def run() -> None:
            fnn.fit(net, opt, X, y, epochs=1, batch_size=batch, shuffle=False, rng=0, verbose=0)

        return run
    carry: dict[str, Any] = {"net": net, "state": opt.init(net)}

    def run_steps() -> None:
        n, st = carry["net"], carry["state"]
        for i in range(0, len(X), batch):
            n, st, _ = fnn.train_step(n, st, X[i : i + batch], y[i : i + batch])
        carry["net"], carry["state"] = n, st

    return run_steps


def _torch(model: str, X: Any, y: Any, threads: int) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    if model == "transformer":

        class Block(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
                self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL, bias=False)
                self.proj = nn.Linear(D_MODEL, D_MODEL, bias=False)
                self.fc = nn.Linear(D_MODEL, 4 * D_MODEL, bias=False)
                self.out = nn.Linear(4 * D_MODEL, D_MODEL, bias=False)

            def forward(self, x: Any) -> Any:
                n, T, d = x.shape
                q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
                q, k, v = (t.view(n, T, HEADS, d // HEADS).transpose(1, 2) for t in (q, k, v))
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + self.proj(o.transpose(1, 2).reshape(n, T, d))
                return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

        class GPT(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.tok = nn.Embedding(VOCAB, D_MODEL)
                self.pos = nn.Embedding(CONTEXT, D_MODEL)
                self.blocks = nn.Sequential(*[Block() for _ in range(LAYERS)])
                self.ln = nn.LayerNorm(D_MODEL)
                self.head = nn.Linear(D_MODEL, VOCAB, bias=False)

            def forward(self, ids: Any) -> Any:
                x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
                return self.head(self.ln(self.blocks(x)))

        net: Any = GPT()
        decay = [p for p in net.parameters() if p.dim() == 2]
        other = [p for p in net.parameters() if p.dim() != 2]
        opt: Any = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
            lr=1e-3,
            betas=(0.9, 0.99),
        )
        batch, clip = TBATCH, True
    else:

        class Rows(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lstm = nn.LSTM(PIXELS, UNITS, batch_first=True)
                self.head = nn.Linear(UNITS, CLASSES)

            def forward(self, x: Any) -> Any:
                return self.head(self.lstm(x)[1][0][0])

        net = Rows()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        batch, clip = LBATCH, False

    def run() -> None:
        for i in range(0, len(Xt), batch):
            opt.zero_grad()
            logits = net(Xt[i : i + batch])
            target = yt[i : i + batch].reshape(-1)
            loss: Any = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target)
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()

    return run


def worker(model: str, peer: str, loop: str, steps: int, repeats: int, threads: int) -> float:
    """Median seconds per step of one peer on one model, in this process."""
    X, y = _data(model, steps)
    run = _torch(model, X, y, threads) if peer == "torch" else _fnn(model, loop, X, y)
    run()  # warm-up: workspaces, caches, lazy imports
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) / steps


def run_peer(model: str, peer: str, args: argparse.Namespace) -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, __file__, "--worker", f"{model}:{peer}", "--loop", args.loop]
    cmd += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of few steps (a smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="threads of each library")
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per peer")
    parser.add_argument("--steps", type=int, default=None, help="batches per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--models", default="transformer,lstm")
    parser.add_argument("--loop", choices=["fit", "step"], default="fit")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, peer = args.worker.split(":")
        steps = args.steps or 10
        print(json.dumps(worker(model, peer, args.loop, steps, args.repeats, args.threads)))
        return
    if args.quick:
        args.rounds, args.repeats, args.steps = 2, 2, args.steps or 3
    args.steps = args.steps or 10
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in ("transformer", "lstm"):
            parser.error(f"unknown model {m!r} (transformer, lstm)")
    peers = ["fnn", "torch"]
    got: dict[tuple[str, str], list[float]] = {(m, p): [] for m in models for p in peers}
    for _ in range(args.rounds):
        for m in models:
            for p in peers:
                got[m, p].append(run_peer(m, p, args))
    print(
        f"float32, {args.threads} threads, {args.rounds} fresh processes per peer in rotation, "
        f"{args.steps} steps x {args.repeats} calls each; fnn loop: {args.loop}"
    )
    print(f"{'model':12} {'peer':6} {'ms/step':>8} {'spread':>7}")
    for m in models:
        for p in peers:
            t = got[m, p]
            print(f"{m:12} {p:6} {statistics.median(t) * 1e3:8.2f} {max(t) / min(t):7.2f}")
    for m in models:
        ratio = statistics.median(got[m, "fnn"]) / statistics.median(got[m, "torch"])
        print(f"{m}: fnn step / PyTorch step = {ratio:.2f}")


if __name__ == "__main__":
    main()
