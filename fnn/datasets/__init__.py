"""Data sets: toy generators with explicit randomness, the shipped digits, MNIST, and
preprocessing."""

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

__all__ = [
    "Standardizer",
    "load_digits",
    "load_mnist",
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
    "standardizer",
    "train_test_split",
]
