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
def restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """fnn's thread setting as it was before the test (set or defaulted)."""
    from fnn import threads

    threads.get_num_threads()  # read the environment first
    for name in ("_setting", "_read_env"):
        monkeypatch.setattr(threads, name, getattr(threads, name))
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _strict_floating_point() -> Iterator[None]:
    with np.errstate(all="raise", under="ignore"):
        yield


# CI installs the optional extras (PyTorch, MPI, ONNX) over the 'test' extra (which has
# scikit-learn and matplotlib) and runs the suite again with FNN_REQUIRE_EXTRAS=1: then a
# test skipped for want of one of them is a failure, so every comparison with PyTorch and
# scikit-learn, every plot and every data-parallel check really runs. (Matched in the
# lower-cased skip reason; "torch" also matches "PyTorch".)
_EXTRA_WORDS = ("torch", "mpi4py", "mpiexec", "onnx", "scikit-learn", "sklearn", "matplotlib")


def _fail_if_skipped_for_an_extra(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under FNN_REQUIRE_EXTRAS, turn a skip whose reason names an extra into a failure."""
    if not os.environ.get("FNN_REQUIRE_EXTRAS") or not report.skipped:
        return
    if hasattr(report, "wasxfail"):  # an expected failure, reported as skipped: no skip
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    if any(word in reason.lower() for word in _EXTRA_WORDS):
        report.outcome = "failed"
        report.longrepr = f"skipped although FNN_REQUIRE_EXTRAS is set: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_if_skipped_for_an_extra(outcome.get_result())  # type: ignore[attr-defined]


# A module-level pytest.importorskip skips the whole module at collection, which
# pytest_runtest_makereport never sees: the same conversion for collection reports.
@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_if_skipped_for_an_extra(outcome.get_result())  # type: ignore[attr-defined]
