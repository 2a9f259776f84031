"""Counters for the op-table summary line printed at the end of the run."""

from __future__ import annotations

import collections
import os

import pytest
from hypothesis import settings

# CI replays the same Hypothesis examples every run (a random find must not block a landing);
# `make fuzz` and local runs explore
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

COUNTS: collections.Counter = collections.Counter()

try:  # PyTorch's multi-threaded kernels stall on a loaded 2-core machine; references need one
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a test dependency
    pass


@pytest.fixture
def counts():
    return COUNTS


@pytest.fixture
def gemm_batch_calls(monkeypatch):
    """The pieces each call of OpenBLAS's gemm_batch runs (one count a call, in order); skips
    where NumPy's BLAS has no gemm_batch."""
    from retrograd import parallel

    if not parallel._blas_funcs().gemm_batch:
        pytest.skip("NumPy's BLAS has no gemm_batch here")
    calls = []
    real = parallel._GemmBatch.__call__

    def spy(self, count):
        calls.append(count)
        real(self, count)

    monkeypatch.setattr(parallel._GemmBatch, "__call__", spy)
    return calls


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        terminalreporter.write_line(
            f"op table: {COUNTS['ops']} ops, {COUNTS['gradcheck']} gradchecks passed, "
            f"{COUNTS['gradgradcheck']} gradgradchecks passed, {COUNTS['torch']} PyTorch "
            f"comparisons passed, {COUNTS['numpy']} NumPy forward comparisons passed"
        )


def pytest_addoption(parser):
    parser.addoption(
        "--op",
        action="append",
        default=[],
        help="run only the op-table rows of this op (repeatable), e.g. --op sum --op norm",
    )


def pytest_collection_modifyitems(config, items):
    ops = set(config.getoption("--op"))
    if not ops:
        return
    keep, drop = [], []
    for item in items:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("spec")
        (keep if spec is None or spec.name in ops else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
