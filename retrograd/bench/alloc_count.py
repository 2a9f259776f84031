"""The memory children's allocation counter: a small C library (alloc_count.c) preloaded into
them, counting the bytes the allocator has handed out, exactly, and their peak.

Why: the resident figure (VmRSS) moves in 4 KB pages and only when the heap runs out of pages
it already has, so a workload whose arrays take a few tens of KB (W1) reads 0-20 KB in either
library, by where its blocks happen to fall; PyTorch's even read below its own baseline. The
counter sees every block, so it resolves bytes and reads the same in every run. It needs Linux's
glibc and a C compiler; without them the runner keeps the resident figure alone.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "alloc_count.c")
LIB_NAME = "libretrograd_alloc_count.so"


def build(directory: str) -> str | None:
    """Compile the counter into `directory`; its path, or None where it cannot be built here
    (not Linux, no compiler, or the compiler failed)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not sys.platform.startswith("linux") or cc is None:
        return None
    out = os.path.join(directory, LIB_NAME)
    try:
        proc = subprocess.run(
            # -z defs: a libc without glibc's __libc_* entry points fails here, not in the child
            [cc, "-O2", "-shared", "-fPIC", "-Wl,-z,defs", "-o", out, SOURCE],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out if proc.returncode == 0 and os.path.exists(out) else None


def preload_env(path: str, env: dict) -> dict:
    """The variables that preload the counter at `path` into a child started with `env`."""
    prior = env.get("LD_PRELOAD")
    return {"LD_PRELOAD": f"{path} {prior}" if prior else path}


class Counter:
    """The counter preloaded into this process, read through ctypes."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._current, self._peak = lib.alloc_count_current, lib.alloc_count_peak
        self._current.restype = self._peak.restype = ctypes.c_longlong
        self._reset = lib.alloc_count_reset_peak

    @classmethod
    def loaded(cls) -> Counter | None:
        """The counter when this process runs with it preloaded, else None."""
        try:
            lib = ctypes.CDLL(None)
            lib.alloc_count_current  # noqa: B018 (present only when preloaded)
        except (OSError, AttributeError):
            return None
        return cls(lib)

    def current(self) -> int:
        """Bytes handed out and not freed."""
        return self._current()

    def peak(self) -> int:
        """The largest `current` since the last `reset_peak`."""
        return self._peak()

    def reset_peak(self) -> None:
        self._reset()
