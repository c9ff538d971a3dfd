"""Data sets: toy generators with explicit randomness, the shipped digits, MNIST, the
shipped Shakespeare text with its character tools, and preprocessing."""

from fnn.datasets.digits import load_digits
from fnn.datasets.mnist import load_mnist, read_idx
from fnn.datasets.preprocessing import (
    Standardizer,
    minibatches,
    one_hot,
    random_shifts,
    split_indices,
    standardizer,
    train_test_split,
)
from fnn.datasets.synthetic import (
    make_circles,
    make_linear,
    make_moons,
    make_regression,
    make_spirals,
)
from fnn.datasets.text import (
    CharVocab,
    char_vocab,
    load_shakespeare,
    split_text,
    text_windows,
)

__all__ = [
    "CharVocab",
    "Standardizer",
    "char_vocab",
    "load_digits",
    "load_mnist",
    "load_shakespeare",
    "make_circles",
    "make_linear",
    "make_moons",
    "make_regression",
    "make_spirals",
    "minibatches",
    "one_hot",
    "random_shifts",
    "read_idx",
    "split_indices",
    "split_text",
    "standardizer",
    "text_windows",
    "train_test_split",
]
