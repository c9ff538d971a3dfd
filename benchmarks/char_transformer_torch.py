"""PyTorch reference for examples/char_transformer.py: the same model, initialisation
conventions, data, schedule and val_loss, so the two validation losses compare.

- Model: token embedding N(0, 1) (``nn.Embedding``'s default) + learned positions
  N(0, 0.02²); ``layers`` pre-LayerNorm blocks: causal multi-head self-attention without
  biases (fused in-projection Xavier-uniform over (3d, d), out-projection
  U(±1/sqrt(d)), ``nn.MultiheadAttention``'s init), MLP d -> 4d (He normal,
  std sqrt(2/d), GELU tanh form) -> d (Glorot uniform), no biases; final LayerNorm
  (eps 1e-5); untied head d -> vocab without bias (Glorot uniform). These are fnn's
  initialisations (``fnn.specs`` defaults).
- Data: the shipped Shakespeare (``fnn.datasets.load_shakespeare``), first 90% train;
  batches drawn as ``fnn.datasets.text_windows`` draws them, from
  ``np.random.default_rng(seed)`` (the same windows as fnn's run with that seed).
- AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on every 2-D weight (embeddings
  included), lr ``1e-3 * (t + 1) / 101`` for t < 100 then cosine to 1e-4 at the last
  step, global-norm clipping 1.0.
- val_loss: mean nats per character over 2,000 windows of the full context, evenly
  spaced over the last 10% of the text.

Run: python benchmarks/char_transformer_torch.py [--seed S] [--steps N] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import fnn


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.in_proj = nn.Linear(d, 3 * d, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.proj = nn.Linear(4 * d, d, bias=False)
        nn.init.xavier_uniform_(self.in_proj.weight)  # nn.MultiheadAttention's
        a = 1 / math.sqrt(d)
        nn.init.uniform_(self.out_proj.weight, -a, a)
        nn.init.normal_(self.fc.weight, std=math.sqrt(2 / d))  # He normal (GELU)
        nn.init.xavier_uniform_(self.proj.weight)  # Glorot uniform (identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, T, d = x.shape
        q, k, v = self.in_proj(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(n, T, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out_proj(o.transpose(1, 2).reshape(n, T, d))
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)  # N(0, 1)
        self.pos = nn.Parameter(torch.randn(context, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        nn.init.xavier_uniform_(self.head.weight)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        x = self.tok(X) + self.pos[: X.shape[1]]
        return self.head(self.ln(self.blocks(x)))


def lr_at(t: int, steps: int, lr: float, warmup: int = 100) -> float:
    if t < warmup:
        return lr * (t + 1) / (warmup + 1)
    ratio = min(t - warmup, steps - 1 - warmup) / (steps - 1 - warmup)
    return lr / 10 + (lr - lr / 10) * 0.5 * (1 + math.cos(math.pi * ratio))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = fnn.datasets.load_shakespeare()
    vocab = fnn.datasets.char_vocab(text)
    train_text, val_text = fnn.datasets.split_text(text)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    starts = np.linspace(0, len(val_ids) - a.context - 1, 2000).astype(np.int64)
    idx = starts[:, None] + np.arange(a.context)
    X_val, y_val = torch.from_numpy(val_ids[idx]), torch.from_numpy(val_ids[idx + 1])

    model = GPT(vocab.size, a.d_model, a.heads, a.layers, a.context)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    rest = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=a.lr,
        betas=(0.9, 0.99),
    )
    rng = np.random.default_rng(a.seed)
    start = time.perf_counter()
    for t in range(a.steps):
        X, y = fnn.datasets.text_windows(train_ids, a.context, a.batch_size, rng=rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(t, a.steps, a.lr)
        logits = model(torch.from_numpy(X))
        loss = F.cross_entropy(logits.reshape(-1, vocab.size), torch.from_numpy(y).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if t % 200 == 0 or t == a.steps - 1:
            print(f"step {t:5d}  train loss {loss.item():.4f}", flush=True)
    ms = 1000 * (time.perf_counter() - start) / a.steps
    model.eval()
    with torch.no_grad():
        total = 0.0
        for i in range(0, len(X_val), 500):
            lg = model(X_val[i : i + 500])
            total += F.cross_entropy(
                lg.reshape(-1, vocab.size), y_val[i : i + 500].reshape(-1), reduction="sum"
            ).item()
    print(f"val_loss {total / y_val.numel():.4f}")
    print(f"{ms:.1f} ms/step")


if __name__ == "__main__":
    main()
