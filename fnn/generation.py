"""Sampling from a language model: :func:`generate` extends token-id prompts one token
at a time.

A language model here is a network that takes integer token ids ``(n, T)`` (its first
layer an :class:`fnn.Embedding`) and ends in per-position logits ``(n, T, vocab)`` with
a softmax output, such as the GPT-style model of ``examples/char_transformer.py``.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from fnn._types import IntArray, RNGLike
from fnn._validation import as_generator
from fnn.layers.positional_embedding import PositionalEmbedding
from fnn.network import Network, check_network, logits_of

__all__ = ["context_length", "generate"]


def _max_lens(node: Any, out: list[int]) -> None:
    """Collect the ``max_len`` of every positional embedding in ``node`` (a layer, a
    composite's tuples of layers, at any depth)."""
    if isinstance(node, PositionalEmbedding):
        out.append(node.max_len)
    elif isinstance(node, tuple | list):
        for child in node:
            _max_lens(child, out)
    elif attrs.has(type(node)) and not isinstance(node, np.ndarray):
        for f in attrs.fields(type(node)):
            value = getattr(node, f.name)
            if isinstance(value, tuple | list) or attrs.has(type(value)):
                _max_lens(value, out)


def context_length(net: Network) -> int | None:
    """The longest sequence ``net`` takes: the smallest ``max_len`` of its positional
    embeddings, or None when it has none (a recurrent model takes any length)."""
    found: list[int] = []
    _max_lens(net.layers, found)
    return min(found) if found else None


def _check_prompt(prompt: Any, vocab_size: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """``prompt`` as int64 (n, T0), n, T0 >= 1, every id in [0, vocab_size)."""
    a = np.asarray(prompt)
    if a.dtype.kind not in "iu":
        raise ValueError(
            f"prompt must hold integer token ids in [0, {vocab_size}), got dtype {a.dtype}"
        )
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(
            f"prompt must have shape (n, T0) with n, T0 >= 1 (one row of token ids per "
            f"sequence; a single prompt is ids[None]), got shape {a.shape}"
        )
    bad = (a < 0) | (a >= vocab_size)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(
            f"token id {a[tuple(where)]} at prompt[{where[0]}, {where[1]}] is outside "
            f"[0, {vocab_size})"
        )
    return a.astype(np.int64)  # a fresh copy: the caller's array is never kept


def _check_options(steps: Any, temperature: Any, top_k: Any, vocab_size: int) -> float:
    """Validate ``steps``, ``temperature`` and ``top_k``; the temperature as a float."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float | np.floating):
        raise TypeError(f"temperature must be a float, got {type(temperature).__name__}")
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
            raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")
        if not 1 <= top_k <= vocab_size:
            raise ValueError(f"top_k must be in [1, {vocab_size}] (the vocabulary), got {top_k}")
    return t


def _sample(
    logits: np.ndarray[Any, Any], temperature: float, top_k: int | None, rng: np.random.Generator
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """One token per row from ``softmax(logits / temperature)`` (n, V), restricted to
    the ``top_k`` largest logits of each row when given; int64 (n,)."""
    if top_k == 1:  # greedy: the most likely token (no draw)
        greedy: np.ndarray[Any, np.dtype[np.int64]] = np.argmax(logits, axis=1).astype(np.int64)
        return greedy
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[1]:
        # keep exactly k logits per row (the k largest), the rest get probability 0
        drop = np.argpartition(z, -top_k, axis=1)[:, :-top_k]
        np.put_along_axis(z, drop, -np.inf, axis=1)
    p = np.exp(z - z.max(axis=1, keepdims=True))  # softmax, up to the normalisation
    c = np.cumsum(p, axis=1)
    # inverse-CDF sampling: the first index whose cumulative mass exceeds u * total;
    # a token of probability 0 never is (its cumulative mass equals its predecessor's)
    u = rng.random(len(z))[:, None] * c[:, -1:]
    drawn: np.ndarray[Any, np.dtype[np.int64]] = np.minimum(
        (c <= u).sum(axis=1), z.shape[1] - 1
    ).astype(np.int64)
    return drawn


def generate(
    net: Network,
    prompt: IntArray | Any,
    steps: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    rng: RNGLike,
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Extend each prompt by ``steps`` tokens sampled from the network, one at a time.

    At each step the network reads the last ``min(T, max_len)`` tokens of each sequence
    (``max_len``: its positional embedding's, see :func:`context_length`; the whole
    sequence if it has none), and the next token is drawn from the softmax of its
    last position's logits divided by ``temperature``, among the ``top_k`` largest
    when given (``top_k=1``: the most likely token, greedy decoding, without a draw).

    Cost: each new token is one inference forward pass of the network on a batch of
    ``n`` windows of up to ``max_len`` tokens (there is no cache of keys and values),
    so a transformer with ``L`` blocks of width ``d`` pays about
    ``n * L * (12 * w * d**2 + 2 * w**2 * d)`` multiply-adds per token for a window of
    ``w`` tokens, the cost of predicting a batch ``(n, w)``.

    Args:
        net: a language model: integer token ids ``(n, T)`` in, per-position logits
            ``(n, T, vocab)`` out (first layer an :class:`fnn.Embedding`).
        prompt: integer token ids ``(n, T0)``, ``n, T0 >= 1``, each in ``[0, vocab)``
            (a single prompt is ``ids[None]``), ``T0 <= max_len``: a longer prompt is
            refused (pass ``prompt[:, -max_len:]`` to keep its end).
        steps: the number of tokens to add, ``>= 0``.
        temperature: divides the logits before the softmax, finite and ``> 0``:
            below 1 sharpens the distribution toward the likeliest tokens, above 1
            flattens it.
        top_k: sample among the ``k`` likeliest tokens only, ``1 <= top_k <= vocab``;
            None: among all.
        rng: a Generator or seed: the same seed gives the same tokens.

    Returns:
        int64 ``(n, T0 + steps)``: the prompt followed by the sampled tokens, a fresh
        array.

    Raises:
        TypeError: ``net`` is not a network, or an option has the wrong kind.
        ValueError: ``net`` is not a language model, the prompt is empty, not integer
            ids or holds an id outside the vocabulary (naming it and its position), is
            longer than the network's context, or an option is out of range. Nothing
            is drawn from ``rng`` then.
    """
    net = check_network(net, "net")
    vocab = net.input_ids
    if vocab is None or not net.per_position:
        raise ValueError(
            "net must be a language model: token ids (n, T) in (first layer an "
            "fnn.Embedding), per-position logits (n, T, vocab) out"
        )
    if net.n_outputs != vocab:
        raise ValueError(
            f"net reads {vocab} token ids but gives logits over {net.n_outputs}: its "
            "outputs cannot be fed back"
        )
    ids = _check_prompt(prompt, vocab)
    t = _check_options(steps, temperature, top_k, vocab)
    window = context_length(net)
    if window is not None and ids.shape[1] > window:
        raise ValueError(
            f"prompt has {ids.shape[1]} tokens, longer than the network's context of "
            f"{window} (its positional embedding's max_len); pass prompt[:, -{window}:] "
            "to keep its end"
        )
    gen = as_generator(rng)
    out = np.empty((ids.shape[0], ids.shape[1] + int(steps)), dtype=np.int64)
    out[:, : ids.shape[1]] = ids
    for end in range(ids.shape[1], out.shape[1]):
        start = 0 if window is None else max(0, end - window)
        logits = logits_of(net, out[:, start:end])  # (n, w, vocab)
        out[:, end] = _sample(logits[:, -1], t, top_k, gen)
    return out
