"""The side-by-side benchmark: retrograd next to PyTorch eager on six training-step workloads.

`workloads` defines W1-W6 once (NumPy data + one builder for both libraries); `runner` measures
them in child processes and prints the table (`retrograd bench`, `python benchmarks/run.py`).
"""

from retrograd.bench.runner import add_arguments, run
from retrograd.bench.workloads import WORKLOADS

__all__ = ["WORKLOADS", "add_arguments", "run"]
