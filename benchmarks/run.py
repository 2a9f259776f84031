"""Run the benchmark (retrograd/bench): retrograd next to PyTorch eager on W1-W6.

    python benchmarks/run.py [--quick] [--workloads W1,W2,W3] [--json PATH] [--in-process]

The same as `retrograd bench`; see `--help` and retrograd/bench/runner.py for what is measured.
"""

from __future__ import annotations

import argparse
import sys

from retrograd.bench import runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description="retrograd next to PyTorch eager on W1-W6"
    )
    runner.add_arguments(parser)
    return runner.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
