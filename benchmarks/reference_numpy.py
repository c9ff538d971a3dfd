"""The hand-written NumPy reference: a careful forward/backward/optimizer loop, the way
an experienced engineer writes one from scratch (no framework).

- float32 throughout; weights per layer in lists; ReLU hidden layers;
- the output loss fused with its activation (sigmoid + BCE or softmax + CE);
- the first layer's input gradient is skipped;
- SGD updates each weight in place; Adam keeps per-layer moment arrays and updates them
  in place with the usual expressions (temporaries for g*g, the bias-corrected moments
  and the step).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np


class NumpyMLP:
    def __init__(
        self,
        sizes: list[int],
        *,
        output: str,
        optimizer: str,
        learning_rate: float,
        seed: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.W = [
            (rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(dtype)
            for a, b in itertools.pairwise(sizes)
        ]
        self.b = [np.zeros(b, dtype=dtype) for b in sizes[1:]]
        self.output = output
        self.optimizer = optimizer
        self.lr = learning_rate
        self.t = 0
        if optimizer == "adam":
            self.mW = [np.zeros_like(w) for w in self.W]
            self.vW = [np.zeros_like(w) for w in self.W]
            self.mb = [np.zeros_like(b) for b in self.b]
            self.vb = [np.zeros_like(b) for b in self.b]

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        """One training step on a batch; returns the loss."""
        n = X.shape[0]
        hs = [X]
        h = X
        L = len(self.W)
        for i in range(L):
            z = h @ self.W[i] + self.b[i]
            h = np.maximum(z, 0) if i < L - 1 else z
            hs.append(h)
        z = hs[-1]
        if self.output == "sigmoid":
            # stable BCE from logits; y is (n, 1) of 0/1
            loss = float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
            p = 0.5 * (1 + np.tanh(0.5 * z))  # the sigmoid, without overflow
            d = (p - y) / n
        else:
            # softmax cross-entropy; y holds integer labels (n,)
            s = z - z.max(axis=1, keepdims=True)
            e = np.exp(s)
            sums = e.sum(axis=1, keepdims=True)
            loss = float(np.mean(np.log(sums[:, 0]) - s[np.arange(n), y]))
            d = e / sums
            d[np.arange(n), y] -= 1
            d /= n
        gW: list[np.ndarray] = [np.empty(0)] * L
        gb: list[np.ndarray] = [np.empty(0)] * L
        for i in range(L - 1, -1, -1):
            gW[i] = hs[i].T @ d
            gb[i] = d.sum(axis=0)
            if i > 0:
                d = (d @ self.W[i].T) * (hs[i] > 0)
        self._update(gW, gb)
        return loss

    def _update(self, gW: list[np.ndarray], gb: list[np.ndarray]) -> None:
        if self.optimizer == "sgd":
            for w, g in zip(self.W + self.b, gW + gb, strict=True):
                w -= self.lr * g
            return
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for w, g, m, v in zip(
            self.W + self.b, gW + gb, self.mW + self.mb, self.vW + self.vb, strict=True
        ):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            w -= self.lr * (m / c1) / (np.sqrt(v / c2) + eps)
