"""Test configuration: hidden overflows fail tests; hypothesis profiles for CI."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Softmax and sigmoid underflow legitimately; every other floating-point event is a bug.
np.seterr(all="raise", under="ignore")

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _strict_floating_point() -> Iterator[None]:
    with np.errstate(all="raise", under="ignore"):
        yield
