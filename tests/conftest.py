"""Counters for the op-table summary line printed at the end of the run."""

from __future__ import annotations

import collections

import pytest

COUNTS: collections.Counter = collections.Counter()


@pytest.fixture
def counts():
    return COUNTS


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        terminalreporter.write_line(
            f"op table: {COUNTS['ops']} ops, {COUNTS['gradcheck']} gradchecks passed, "
            f"{COUNTS['gradgradcheck']} gradgradchecks passed, {COUNTS['torch']} PyTorch "
            f"comparisons passed, {COUNTS['numpy']} NumPy forward comparisons passed"
        )
