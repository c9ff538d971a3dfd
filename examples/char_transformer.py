"""Example: a small GPT-style character model trained from scratch, float32.

    token embedding (vocab, d) + learned position embedding (context, d)
    -> layers x transformer block (pre-LayerNorm, causal self-attention with
       `heads` heads, GELU MLP of width 4d; no biases in their projections)
    -> LayerNorm -> dense head (d, vocab), untied, softmax cross-entropy

trained on eight Shakespeare tragedies shipped with fnn (or any UTF-8 text, --corpus)
with AdamW (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on every 2-D weight,
embeddings included), a learning rate warmed up linearly over 100 steps
(``lr * (t + 1) / 101``) then decayed on a cosine to lr / 10 at the last step, and
global-norm clipping at 1. Each step is one ``fnn.train_step`` on a batch of random
windows (``fnn.datasets.text_windows``) of the first 90% of the text.

It prints ``val_loss`` (mean nats per character over 2,000 fixed windows of the full
context, evenly spaced over the last 10% of the text), the training speed in ms/step
and a sample of generated text (``fnn.generate``). The defaults are the small CPU
setting of nanoGPT's Shakespeare example; ``benchmarks/char_transformer_torch.py`` is
the same model and run in PyTorch.

NumPy's BLAS runs on one thread here unless OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS)
is set: a step's products are small (768 x 128 by 128 x 512 at most) and a second BLAS
thread waiting for a busy core costs more than it gives.

Run: python examples/char_transformer.py [--quick] [--layers N] [--heads N]
     [--d-model N] [--context N] [--batch-size N] [--steps N] [--lr LR] [--seed S]
     [--corpus FILE] [--out FILE]
"""

from __future__ import annotations

import os

# before NumPy loads its BLAS (see the module docstring); a value the user set is kept
if "OPENBLAS_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse
import math
import time
from typing import Any

import attrs
import numpy as np

import fnn
from fnn import specs

IntArray = np.ndarray[Any, np.dtype[np.integer[Any]]]

WARMUP = 100
VAL_WINDOWS = 2000
SAMPLE_PROMPT = "ROMEO:"


@attrs.frozen
class Config:
    """The run's settings (the command-line flags)."""

    layers: int = 4
    heads: int = 4
    d_model: int = 128
    context: int = 64
    batch_size: int = 12
    steps: int = 2000
    learning_rate: float = 1e-3
    seed: int = 0


QUICK = Config(layers=2, heads=2, d_model=32, context=32, batch_size=8, steps=60)


def architecture(vocab_size: int, cfg: Config) -> fnn.Architecture:
    """The network of the module docstring: token ids (n, T) to logits (n, T, vocab)."""
    blocks = [
        spec
        for _ in range(cfg.layers)
        for spec in specs.transformer_block(cfg.heads, bias=False)  # no dropout by default
    ]
    return fnn.sequential(
        (None,),  # token ids, any length up to the context
        [
            specs.embedding(vocab_size, cfg.d_model),
            specs.positional_embedding(cfg.context),
            *blocks,
            specs.layer_norm(),
            specs.dense(vocab_size, bias=False),  # untied from the token embedding
        ],
        output="softmax",
        dtype=np.float32,
    )


def learning_rate(cfg: Config) -> fnn.schedules.WarmupCosine:
    """``lr * (t + 1) / (w + 1)`` for the first ``w = 100`` steps ``t``, then a cosine
    from ``lr`` down to ``lr / 10`` at the last step (``w`` is smaller for runs of
    fewer than 202 steps, so that the cosine keeps at least one step)."""
    w = min(WARMUP, max(1, (cfg.steps - 1) // 2))
    # WarmupCosine: initial + (peak - initial) * t / w, which is peak * (t + 1) / (w + 1)
    # for initial = peak / (w + 1)
    return fnn.schedules.WarmupCosine(
        peak=cfg.learning_rate,
        warmup_steps=w,
        decay_steps=max(cfg.steps - 1, w + 1),
        initial=cfg.learning_rate / (w + 1),
        end=cfg.learning_rate / 10,
    )


def optimizer(cfg: Config) -> fnn.Optimizer:
    """Global-norm clipping at 1, then AdamW with decay on the weights (2-D leaves)."""
    return fnn.chain(
        fnn.clip_by_global_norm(1.0),
        fnn.adamw(
            learning_rate(cfg), b1=0.9, b2=0.99, weight_decay=0.1, decay_mask=fnn.weights_only
        ),
    )


def validation_windows(
    ids: IntArray, context: int, n: int = VAL_WINDOWS
) -> tuple[IntArray, IntArray]:
    """``n`` fixed windows of ``context`` ids evenly spaced over ``ids`` (len,) and
    their next ids: ``X``, ``y`` int64 (n, context)."""
    starts = np.linspace(0, len(ids) - context - 1, n).astype(np.int64)
    idx = starts[:, None] + np.arange(context)
    return ids[idx], ids[idx + 1]


def read_corpus(path: str | None, context: int) -> str:
    """The shipped Shakespeare, or the UTF-8 text of ``path``; a text too short for a
    validation window of ``context + 1`` characters (10% of it) is refused."""
    text = fnn.datasets.load_shakespeare() if path is None else _read_text(path)
    train, val = fnn.datasets.split_text(text)
    if len(val) < context + 1 or len(train) < context + 1:
        raise ValueError(
            f"{path or 'the corpus'} has {len(text):,} characters: too short for windows of "
            f"context + 1 = {context + 1} characters in both its first 90% and its last 10% "
            f"(at least {10 * (context + 1) + 10:,} characters are needed)"
        )
    return text


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e})") from None


def main(
    cfg: Config = Config(),
    corpus: str | None = None,
    out: str | None = None,
    sample_chars: int = 300,
) -> dict[str, float]:
    """Train, then print ``val_loss``, ms/step and a generated sample.

    Args:
        cfg: the model and run settings.
        corpus: a UTF-8 text file to train on (default: the shipped Shakespeare).
        out: save the trained network, with its vocabulary, to this file.
        sample_chars: the length of the generated sample.

    Returns:
        ``{"val_loss": ..., "ms_per_step": ..., "seconds": ...}``.
    """
    text = read_corpus(corpus, cfg.context)
    vocab = fnn.datasets.char_vocab(text)
    train_text, val_text = fnn.datasets.split_text(text)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    X_val, y_val = validation_windows(val_ids, cfg.context)

    rng = np.random.default_rng(cfg.seed)
    net = fnn.init(architecture(vocab.size, cfg), rng=rng)
    state = optimizer(cfg).init(net)
    print(
        f"{sum(x.size for x in fnn.tree.leaves(net)):,} parameters, vocabulary of "
        f"{vocab.size}, {len(train_ids):,} training characters"
    )
    start = time.perf_counter()
    for t in range(cfg.steps):
        X, y = fnn.datasets.text_windows(train_ids, cfg.context, cfg.batch_size, rng=rng)
        net, state, loss = fnn.train_step(net, state, X, y)
        if t % 200 == 0 or t == cfg.steps - 1:
            print(f"step {t:5d}  train loss {loss:.4f}")
    seconds = time.perf_counter() - start
    ms = 1000 * seconds / cfg.steps

    val_loss = fnn.evaluate(net, X_val, y_val)["loss"]
    print(f"val_loss {val_loss:.4f}")
    print(f"{ms:.1f} ms/step")
    prompt = SAMPLE_PROMPT if all(c in vocab.chars for c in SAMPLE_PROMPT) else text[0]
    ids = fnn.generate(net, vocab.encode(prompt)[None], sample_chars, top_k=None, rng=cfg.seed)
    print(f"sample:\n{vocab.decode(ids[0])}")
    if out is not None:
        path = fnn.save(out, net, vocab=vocab)
        print(f"saved the network and its vocabulary to {path}")
    if not math.isfinite(val_loss):  # pragma: no cover - training stops first
        raise FloatingPointError(f"val_loss {val_loss}")
    return {"val_loss": val_loss, "ms_per_step": ms, "seconds": seconds}


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def seed_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """The run's :class:`Config` from the command line (``--quick`` starts from the
    small quick settings, which the other flags override), and the parsed flags."""
    d = Config()
    parser = argparse.ArgumentParser(
        description="Train a small GPT-style character model on Shakespeare (or --corpus), "
        "then print val_loss (nats/char on 2,000 fixed validation windows), ms/step and a "
        "generated sample.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a tiny model for {QUICK.steps} steps (a smoke test, a few seconds)",
    )
    for flag, name, help_text in (
        ("--layers", "layers", "transformer blocks"),
        ("--heads", "heads", "attention heads (must divide --d-model)"),
        ("--d-model", "d_model", "model width"),
        ("--context", "context", "window length in characters (the positional table's)"),
        ("--batch-size", "batch_size", "windows per step"),
        ("--steps", "steps", "training steps"),
    ):
        parser.add_argument(
            flag,
            type=positive_int,
            metavar="N",
            help=f"{help_text} (default {getattr(d, name)}, {getattr(QUICK, name)} with --quick)",
        )
    parser.add_argument(
        "--lr",
        type=positive_float,
        metavar="LR",
        help=f"peak learning rate (default {d.learning_rate:g})",
    )
    parser.add_argument(
        "--seed", type=seed_int, metavar="S", help=f"random seed (default {d.seed})"
    )
    parser.add_argument(
        "--corpus",
        metavar="FILE",
        help="train on this UTF-8 text file instead of the shipped Shakespeare",
    )
    parser.add_argument(
        "--out", metavar="FILE", help="save the trained network and its vocabulary (.npz)"
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else d
    given = {
        name: getattr(args, name)
        for name in ("layers", "heads", "d_model", "context", "batch_size", "steps", "seed")
        if getattr(args, name) is not None
    }
    if args.lr is not None:
        given["learning_rate"] = args.lr
    cfg = attrs.evolve(cfg, **given)
    if cfg.d_model % cfg.heads:
        parser.error(f"--heads {cfg.heads} does not divide --d-model {cfg.d_model}")
    return cfg, args


if __name__ == "__main__":
    config, flags = parse_args()
    try:
        main(config, flags.corpus, flags.out, sample_chars=100 if flags.quick else 300)
    except (OSError, ValueError) as e:
        raise SystemExit(f"char_transformer.py: {e}") from None
