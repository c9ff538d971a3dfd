"""Helpers that prove layers, losses and networks right, shipped for users' own kinds.

- :func:`check_grads` compares a network's analytic gradient (``fnn.backward``) with
  central differences of its loss, in float64.
- :func:`check_layer_grads` does the same for one layer's ``backward`` (parameters and
  input), through a random linear read-out of its output.
- :func:`check_layer_kind` runs every property a registered layer kind must have
  (gradients, purity, dtypes, ``fit`` equal to ``train_step``, save and load): fnn's
  own test suite runs it over every built-in kind.
- :mod:`fnn.testing.strategies` (needs hypothesis) draws architectures, networks and
  batches for property tests.

The checks raise AssertionError naming what disagrees.
"""

from fnn.testing.grads import check_grads, check_layer_grads, to_float64
from fnn.testing.properties import PROPERTIES, check_layer_kind

__all__ = ["PROPERTIES", "check_grads", "check_layer_grads", "check_layer_kind", "to_float64"]
