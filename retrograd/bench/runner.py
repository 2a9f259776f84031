"""The benchmark runner: retrograd next to PyTorch eager (CPU) on the workloads W1-W6.

The parent process only orchestrates; every measurement runs in a child process whose
environment it controls, because OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE once, when
it loads. A pass is the whole table under one environment: "as-is" (as the runner was started,
plus any --env) and "unset" (the same with both variables removed, for the children only). In
each pass:

* one child reports the machine: NumPy's BLAS (threadpoolctl: internal_api, version,
  architecture), its thread count (PyTorch is set to the same with torch.set_num_threads), and
  the float32 matrix-product peak, timed on the spot (best of several 2048^3 sgemm, at the
  start of the pass and again at its end; the better one counts).
* per workload, one timing child per library (a `Worker`) builds the model from the seeded
  NumPy arrays (bit-identical in both: their CRC is compared). The parent checks that both
  compute the same loss on the first step and again after one SGD update (rtol 1e-4: a fast
  wrong answer cannot pass), has each warm up, then alternates blocks of steps between them
  (ABBA order), each block lasting about --block-ms and at least 5 steps, pausing --settle-ms
  after each so that the idle library's BLAS/OpenMP threads stop spinning (measured here: with
  both libraries in one process and no pause, their spinning worker threads slowed each other
  2-4x on 2 cores). A block is a short training run, never one lone step after the pause:
  the first step after an idle pause runs slower in both libraries (on this 2-vCPU virtual
  machine W6's ran 113 vs 102 ms in retrograd, 85 vs 84 ms in PyTorch, whose OpenMP threads
  spin), and W3 and W6, at ~100-250 ms a step, had one-step blocks. Each block starts with
  --lead-ms of untimed steps (at least one): the machine's way back from the idle pause lasts
  50-90 ms, so a 100 ms block timed from its first step measured mostly that ramp. W4's 12
  steps after a 250 ms pause ran 12.1 falling to 8.3 ms in retrograd and 10.0 to 8.3 in
  PyTorch; with 6 untimed steps first, 8.0-8.3 and 7.0-7.7 throughout. (Ours falls further:
  for the first ~50 ms the kernel places the pool's worker on the caller's CPU, see
  benchmarks/NOTES.md, "Eleventh round".)
  Every step is timed on its own: ms/step is the median over all timed steps (robust to the
  pauses a shared machine inflicts), the spread is the min and max of the blocks' medians; the
  JSON also keeps the mean (garbage collection and pauses included) and the median process CPU
  time per step.
* per workload and library, a memory child measures peak memory: it runs the workload once
  (pages in code, lazy initialisation), frees everything, trims the heap and notes the RSS and
  the allocator's count; builds the model again, trims again and runs 10 steps. The headline
  figure is the allocator's: a counter preloaded into the child (alloc_count.c, built with the
  system's C compiler) adds every block's usable size on allocation and takes it off on free,
  and the figure is its peak over the steps minus its count before the model was built: the
  bytes both libraries' arrays and Python objects (PYTHONMALLOC=malloc) held at once, exact
  to the byte and the same in every run. The resident figure beside it moves in
  4 KB pages, and only when the heap runs out of pages it already has: W1's few tens of KB read
  0-20 KB in either library, by where its blocks fall. Where the counter cannot be built, the
  resident figure is the headline. For that figure the child's allocator keeps every page it gets
  below 32 MB (HEAP_KEPT_ENV: glibc never trims, Python's objects come from the same heap;
  blocks of 32 MB and up are mapped and returned, as glibc does for them at its steady state),
  so the RSS falls only by such a block, and the figure is exact: the largest VmRSS read after a
  step minus that baseline (VmHWM's where it shows a returned block). It counts parameters,
  gradients, activations, temporaries and the holes each library's pattern of allocations leaves
  in the heap, but not the transients of building the model (each library's own initialisation,
  which the workload overwrites). Both libraries run with the same settings (so without
  retrograd's own malloc tuning). Why not the kernel's peak mark, VmHWM: it is taken from
  per-CPU counters that fold in batches of 32 pages, and here it read 51 pages for 100 to 126
  faulted, and less than a VmRSS read earlier in the same window (benchmarks/NOTES.md, "Twelfth
  round"): hundreds of KB off, where W2's whole figure is 2-4 MB. The JSON also keeps the
  earlier figure, `returned_peak_mb`: a second child where blocks of 64 KB and up are unmapped
  on free (RETURNED_ENV), so the RSS follows the live arrays, read from VmHWM; and retrograd's
  live peak from tracemalloc (`traced_mb`, NumPy reports its buffers to it). Before the passes
  the runner writes retrograd's bytecode, as pip does when it installs a package (`_bytecode`):
  the children import both libraries from bytecode, so no compiler's buffers are left in the
  heap.

`--in-process` runs the same measurements in this process (one pass, the environment as it is;
memory: tracemalloc for retrograd only). `--quick` uses tiny step counts and only checks that
everything runs. Nothing here asserts a timing.

    python benchmarks/run.py [--quick] [--workloads W1,W2] [--json PATH]

This module declares its options on a parser it is given (`add_arguments`) and runs them
(`run`); retrograd/cli.py owns argument parsing (DESIGN.md section 1).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import gc
import json
import math
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from retrograd.bench import alloc_count
from retrograd.bench.workloads import (
    LR,
    WORKLOADS,
    Lib,
    attention_kind,
    make_arrays,
    missing,
    prepare,
)

__all__ = ["add_arguments", "run", "Settings", "BLAS_ENV", "LOSS_RTOL"]

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LOSS_RTOL = 1e-4
JSON_DEFAULT = os.path.join("benchmarks", "results.json")


@dataclass
class Settings:
    """How long to measure: step counts, block length, warm-up, memory steps, sgemm size."""

    quick: bool = False
    rounds: int = 15
    block_ms: float = 100.0
    warmup_s: float = 0.5
    # steps the memory children run: PyTorch's resident memory grows over its first steps (W2,
    # heap kept: 3.0, 3.6, 3.7 MB ... 4.3 at step 9), ours is flat from the first
    mem_steps: int = 10
    sgemm_n: int = 2048
    sgemm_reps: int = 7
    settle_ms: float = 250.0  # pause between blocks: idle worker threads stop spinning
    lead_ms: float = 60.0  # untimed steps at a block's start: the ramp back from the pause
    min_block_steps: int = 5  # a block is a short run of training steps, never a lone one
    attention: str = "auto"
    no_torch: bool = False
    threads: int | None = None  # None: as many as NumPy's BLAS uses

    @classmethod
    def for_run(cls, quick: bool, **overrides) -> Settings:
        """The defaults, or --quick's tiny counts; then the options given (None: not given)."""
        tiny = {"rounds": 2, "block_ms": 0.0, "warmup_s": 0.0, "mem_steps": 1, "sgemm_n": 256}
        tiny.update(sgemm_reps=2, settle_ms=0.0, lead_ms=0.0, min_block_steps=1)
        s = cls(quick=True, **tiny) if quick else cls()
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s


# -- the options -----------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    """Declare the benchmark's options on an argparse parser (`retrograd bench`)."""
    parser.add_argument("--quick", action="store_true", help="tiny step counts: only check it runs")
    parser.add_argument(
        "--json",
        default=JSON_DEFAULT,
        metavar="PATH",
        help=f"results file ({JSON_DEFAULT}; '' writes none)",
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated ids (W1,...,W6)"
    )
    parser.add_argument("--no-torch", action="store_true", help="measure retrograd alone")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process: one pass, the environment as it is, no child processes",
    )
    parser.add_argument(
        "--blas-env",
        choices=("auto", "both", "as-is", "unset"),
        default="auto",
        help="passes: as the environment is and/or with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE "
        "unset for the children (auto: both when either is set, else as-is alone)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add to the children's environment in the as-is pass (repeatable)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit NumPy's BLAS and PyTorch to N threads (default: as many as the BLAS uses)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="timed blocks per library")
    parser.add_argument("--block-ms", type=float, default=None, help="length of a timed block")
    parser.add_argument("--warmup-s", type=float, default=None, help="warm-up per library")
    parser.add_argument(
        "--settle-ms", type=float, default=None, help="pause after each block (250; quick: 0)"
    )
    parser.add_argument(
        "--lead-ms",
        type=float,
        default=None,
        help="untimed steps at each block's start, at least one (60; quick: 0, none)",
    )
    parser.add_argument(
        "--min-block-steps",
        type=int,
        default=None,
        help="fewest steps in a timed block (5; quick: 1)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument(
        "--attention",
        choices=("auto", "mha", "manual"),
        default="auto",
        help="W6 attention: nn.MultiheadAttention (mha), written out (manual), or mha when "
        "retrograd has it (auto)",
    )


# -- measurements (run in a child, or in-process) --------------------------------------------------
def blas_info() -> dict:
    """NumPy's BLAS as threadpoolctl sees it (the kernel actually loaded), else NumPy's build
    configuration."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info = {"source": "numpy.show_config (threadpoolctl not installed)"}
        try:
            cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info.update(internal_api=cfg.get("name"), version=cfg.get("version"))
        except Exception:  # older NumPy: no dict mode
            pass
        info["num_threads"] = _cpu_count()
        return info
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
            info = {k: lib.get(k) for k in keep}
            info["source"] = "threadpoolctl"
            info["filepath"] = os.path.basename(lib.get("filepath", ""))
            return info
    return {"source": "threadpoolctl (no BLAS found)", "num_threads": _cpu_count()}


@contextlib.contextmanager
def _limit_threads(n: int | None):
    """Hold NumPy's BLAS to n threads (threadpoolctl; children also get OPENBLAS_NUM_THREADS)."""
    if not n:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _threads(settings: Settings) -> int:
    return int(settings.threads or blas_info().get("num_threads") or _cpu_count())


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_libs(no_torch: bool) -> tuple[list[Lib], str | None]:
    """retrograd, and torch when installed and wanted; the note says why torch is absent."""
    libs = [Lib.load("retrograd")]
    if no_torch:
        return libs, "torch not measured (--no-torch)"
    try:
        libs.append(Lib.load("torch"))
    except ImportError:
        return libs, "torch not installed"
    return libs, None


def sgemm_peak(n: int, reps: int) -> dict:
    """The float32 matrix-product rate NumPy reaches: best and median of `reps` n^3 products."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return {
        "n": n,
        "reps": reps,
        "gflops": flops / min(times) / 1e9,
        "gflops_median": flops / statistics.median(times) / 1e9,
    }


def env_info(settings: Settings) -> dict:
    """The machine as this process sees it: BLAS, threads, sgemm peak, library versions."""
    blas = blas_info()
    threads = _threads(settings)
    libs, torch_note = _load_libs(settings.no_torch)
    torch_info = None
    if len(libs) > 1:
        torch = libs[1].mod
        torch.set_num_threads(threads)
        torch_info = {
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "mkl": bool(torch.backends.mkl.is_available()),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
        }
    return {
        "env": {k: os.environ.get(k) for k in BLAS_ENV},
        "loadavg_start": _loadavg(),
        "blas": blas,
        "threads": threads,
        "sgemm": sgemm_peak(settings.sgemm_n, settings.sgemm_reps),
        "numpy": np.__version__,
        "retrograd": libs[0].version,
        "torch": torch_info,
        "torch_note": torch_note,
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpus": _cpu_count(),
    }


def _loss_check(first: dict, second: dict) -> dict:
    """Same loss in both libraries on the first step and after one update (rtol LOSS_RTOL)."""
    out = {"rtol": LOSS_RTOL}
    for key, losses in (("first_step", first), ("after_update", second)):
        entry = dict(losses)
        if "torch" in losses:
            a, b = losses["retrograd"], losses["torch"]
            entry["ok"] = bool(
                math.isfinite(a) and math.isfinite(b) and abs(a - b) <= LOSS_RTOL * abs(b)
            )
        else:
            entry["ok"] = None  # nothing to compare with
        out[key] = entry
    return out


class Worker:
    """One library's side of a timing run: the workload built from the seeded NumPy data, stepped
    on request. It lives in its own child process (or in this one with --in-process)."""

    def __init__(self, wid: str, lib_name: str, settings: Settings) -> None:
        w = WORKLOADS[wid]
        self.settings = settings
        self.lib = Lib.load(lib_name)
        self.lib.set_threads(_threads(settings))
        opts = {"attention": settings.attention} if wid == "W6" else {}
        data = make_arrays(w)  # seeded: bit-identical in every process (checked: data_crc)
        self.data_crc = _checksum(data)
        self.run = prepare(w, self.lib, data, **opts)

    def losses(self) -> dict:
        """The loss of the first step, and of the second (after one SGD update)."""
        r = self.run
        first = r.value(r.step())
        return {"first": first, "second": r.value(r.step()), "data_crc": self.data_crc}

    def warmup(self) -> float:
        """Run at least 3 steps and warmup_s seconds; return the seconds per step."""
        n, t0 = 0, time.perf_counter()
        while True:
            self.run.step()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= self.settings.warmup_s and n >= 3:
                return elapsed / n

    def block(self, k: int, lead_ms: float = 0.0) -> dict:
        """Run untimed steps for lead_ms (at least one, when it is not 0), then k steps, timing
        each: wall-clock and process CPU milliseconds."""
        step, wall, clock = self.run.step, time.perf_counter, time.process_time
        if lead_ms > 0:
            t0 = wall()
            step()
            while (wall() - t0) * 1e3 < lead_ms:
                step()
        ts, cs = [], []
        for _ in range(k):
            c0, t0 = clock(), wall()
            step()
            t1, c1 = wall(), clock()
            ts.append((t1 - t0) * 1e3)
            cs.append((c1 - c0) * 1e3)
        return {"wall": ts, "cpu": cs}


def _checksum(data: dict) -> int:
    crc = zlib.crc32(data["x"].tobytes())
    crc = zlib.crc32(data["y"].tobytes(), crc)
    for name in sorted(data["params"]):
        crc = zlib.crc32(data["params"][name].tobytes(), zlib.crc32(name.encode(), crc))
    return crc


class _LocalWorker:
    """A Worker in this process, behind the same call interface as a child's."""

    def __init__(self, wid: str, lib_name: str, settings: Settings) -> None:
        self.worker = Worker(wid, lib_name, settings)

    def call(self, cmd: str, **kw):
        return getattr(self.worker, cmd)(**kw)

    def close(self) -> None:
        self.worker = None


def time_workload(wid: str, settings: Settings, torch_note: str | None, spawn) -> dict:
    """Time one workload in retrograd and PyTorch: check the losses, warm up, then alternate
    blocks of steps between the libraries (ABBA order), pausing `settle_ms` between blocks so
    that one library's idle BLAS/OpenMP threads stop spinning before the other one runs."""
    w = WORKLOADS[wid]
    absent = missing(w)
    if absent:
        return {"status": "n/a", "note": "needs " + ", ".join(absent)}
    names = ["retrograd"] if settings.no_torch else ["retrograd", "torch"]
    workers = {}
    try:
        for name in names:
            workers[name] = spawn(wid, name)
        losses = {name: h.call("losses") for name, h in workers.items()}
        if len({v["data_crc"] for v in losses.values()}) > 1:
            return {"status": "error", "note": "the libraries were not handed the same data"}
        check = _loss_check(
            {n: v["first"] for n, v in losses.items()}, {n: v["second"] for n, v in losses.items()}
        )
        block = {name: 1 for name in names}
        if not settings.quick:
            for name, h in workers.items():
                per_step = h.call("warmup")
                block[name] = max(
                    settings.min_block_steps, round(settings.block_ms / 1e3 / per_step)
                )
        steps = {name: [] for name in names}  # every timed step, ms
        cpu = {name: [] for name in names}  # the process's CPU time of every timed step, ms
        rounds = {name: [] for name in names}  # the median step of each block, ms
        for i in range(settings.rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                res = workers[name].call("block", k=block[name], lead_ms=settings.lead_ms)
                steps[name] += res["wall"]
                cpu[name] += res["cpu"]
                rounds[name].append(statistics.median(res["wall"]))
                if settings.settle_ms and len(names) > 1:
                    time.sleep(settings.settle_ms / 1e3)
    finally:
        for h in workers.values():
            h.close()

    result = {"status": "ok", "note": torch_note or "", "libs": {}}
    for name in names:
        result["libs"][name] = {
            "ms_median": statistics.median(steps[name]),
            "ms_min": min(rounds[name]),
            "ms_max": max(rounds[name]),
            "ms_mean": statistics.fmean(steps[name]),
            "cpu_ms_median": statistics.median(cpu[name]),
            "rounds": len(rounds[name]),
            "steps_per_round": block[name],
        }
    result["loss_check"] = check
    if any(check[k]["ok"] is False for k in ("first_step", "after_update")):
        result["status"] = "mismatch"
        result["note"] = "retrograd and PyTorch disagree on the loss"
    if wid == "W6":
        result["attention"] = attention_kind(settings.attention)
    return result


def _rss_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _trim() -> None:
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# The memory children's allocator, as glibc runs at its steady state: blocks of 32 MB and up
# (the ceiling of its dynamic mmap threshold) in mappings of their own, returned on free, and
# everything smaller from the heap, which here keeps every page it gets (no trim; Python's
# objects from the same heap). The RSS then falls only by a returned block of 32 MB or more, so
# the largest exact VmRSS read after a step is the peak unless the kernel's mark, VmHWM, shows
# such a fall, and the mark's error (32-page batches a CPU; see the module's docstring) is far
# below one. (MALLOC_MMAP_MAX_=0 instead, every block in the heap, put W3's 64 MB weights in
# it too, and PyTorch's W3 read up to 421 MB where it reads 275 with the ceiling.)
HEAP_KEPT_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    "PYTHONMALLOC": "malloc",
}
_RETURNED_FALL_MB = 1.0  # VmHWM above every read by more than this: a block was returned

# the earlier figure, kept in the JSON for comparison: blocks of 64 KB and up in mappings of
# their own, unmapped on free, so the RSS follows the live arrays; peak from VmHWM
RETURNED_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _heap_kept() -> bool:
    return all(os.environ.get(k) == v for k, v in HEAP_KEPT_ENV.items())


def memory_workload(wid: str, lib_name: str, settings: Settings) -> dict:
    """Peak memory (MB) of one library's model and `mem_steps` training steps, measured in this
    (child) process: the resident model plus the steps' high-water mark, not the transients of
    building the model (each library's own initialisation, overwritten by the workload's).
    Exact where the process runs with HEAP_KEPT_ENV (the RSS falls only by a returned block of
    32 MB or more; the largest VmRSS read after a step), else the kernel's VmHWM."""
    w = WORKLOADS[wid]
    lib = Lib.load(lib_name)
    lib.set_threads(_threads(settings))
    opts = {"attention": settings.attention} if wid == "W6" else {}
    data = make_arrays(w)

    r = prepare(w, lib, data, **opts)
    for _ in range(settings.mem_steps):  # pages in the code and any lazy initialisation
        r.step()
    del r
    _trim()
    result = {"lib": lib_name}
    base = _rss_kb("VmRSS")
    counter = alloc_count.Counter.loaded()
    alloc_base = counter.current() if counter else 0
    r = prepare(w, lib, data, **opts)
    _trim()
    if counter:  # the allocator's bytes: the model, then the steps' peak, from the same base
        result["alloc_model_mb"] = (counter.current() - alloc_base) / 2**20
        counter.reset_peak()
    if base is not None and _reset_peak():
        result["model_mb"] = (_rss_kb("VmRSS") - base) / 1024
        reads = []
        for _ in range(settings.mem_steps):
            r.step()
            reads.append(_rss_kb("VmRSS"))
        hwm = _rss_kb("VmHWM")
        result["rss_mb"] = [(v - base) / 1024 for v in reads]
        result["hwm_mb"] = (hwm - base) / 1024
        # with the heap kept, VmHWM above every read by more than its error means a block of
        # 32 MB or more was returned between two reads: then the mark is the better figure
        if _heap_kept() and (hwm - max(reads)) / 1024 <= _RETURNED_FALL_MB:
            result["peak_mb"] = (max(reads) - base) / 1024
            result["method"] = (
                "exact: the largest VmRSS after a step - VmRSS before building the model, the "
                "heap keeping every page (blocks of 32 MB and up mapped, no trim, "
                "PYTHONMALLOC=malloc)"
            )
        else:
            result["peak_mb"] = (max(hwm, *reads) - base) / 1024
            result["method"] = (
                "VmHWM over the steps - VmRSS before building the model (the kernel's mark: "
                "a few hundred KB off at most)"
            )
    else:  # no /proc: growth of the lifetime peak, a lower bound
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(settings.mem_steps):
            r.step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["peak_mb"] = (peak - before) / 1024  # KB on Linux
        result["method"] = "ru_maxrss growth over the steps (lower bound)"
    if counter:
        result["alloc_peak_mb"] = (counter.peak() - alloc_base) / 2**20
    del r
    if lib_name == "retrograd" and not _heap_kept():  # (once: the other child traces it)
        _trim()
        result["traced_mb"] = traced_peak(w, lib, data, settings.mem_steps, opts)
    return result


def traced_peak(w, lib: Lib, data: dict, steps: int, opts: dict) -> float:
    """tracemalloc's peak (Python objects and NumPy buffers) over the steps, model included, in
    MB; building the model is traced but its transient peak is not counted."""
    import tracemalloc

    tracemalloc.start()
    try:
        r = prepare(w, lib, data, **opts)
        tracemalloc.reset_peak()
        for _ in range(steps):
            r.step()
        del r
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _child() -> None:
    """A child process: sys.argv[1] is a JSON spec; the result goes to the file spec['out']."""
    spec = json.loads(sys.argv[1])
    settings = Settings(**spec["settings"])
    try:
        with _limit_threads(settings.threads):
            if spec["mode"] == "env":
                result = env_info(settings)
            elif spec["mode"] == "sgemm":
                result = sgemm_peak(settings.sgemm_n, settings.sgemm_reps)
            else:
                result = memory_workload(spec["workload"], spec["lib"], settings)
    except Exception as e:
        result = {"status": "error", "note": f"{type(e).__name__}: {e}", "trace": _tail()}
    with open(spec["out"], "w") as f:
        json.dump(result, f)


def _worker() -> None:
    """A timing child: builds a Worker (sys.argv[1]: JSON spec), then answers requests, one JSON
    line in on stdin, one JSON line out ({"ok": result} or {"error": message})."""
    spec = json.loads(sys.argv[1])
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else written to stdout goes to stderr, off the protocol
    sys.stdout = sys.stderr
    settings = Settings(**spec["settings"])
    with _limit_threads(settings.threads):
        try:
            worker = Worker(spec["workload"], spec["lib"], settings)
            reply.write(json.dumps({"ok": True}) + "\n")
        except Exception as e:
            reply.write(json.dumps({"error": f"{type(e).__name__}: {e}", "trace": _tail()}) + "\n")
            return
        for line in sys.stdin:
            request = json.loads(line)
            if request["cmd"] == "exit":
                break
            try:
                answer = {"ok": getattr(worker, request["cmd"])(**request["kw"])}
            except Exception as e:
                answer = {"error": f"{type(e).__name__}: {e}", "trace": _tail()}
            reply.write(json.dumps(answer) + "\n")


def _tail() -> str:
    return "".join(traceback.format_exc().splitlines(keepends=True)[-8:])


# -- orchestration ---------------------------------------------------------------------------------
class _Children:
    """Runs measurements in child processes with a given environment."""

    def __init__(self, env: dict, settings: Settings, timeout: float) -> None:
        self.env = env
        self.settings = settings
        self.timeout = timeout

    def environ(self, extra_env: dict | None = None) -> dict:
        env = dict(self.env)
        env.update(extra_env or {})
        if self.settings.threads:
            env["OPENBLAS_NUM_THREADS"] = str(self.settings.threads)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def call(self, mode: str, extra_env: dict | None = None, **spec) -> dict:
        """Run one measurement in a fresh child; its result."""
        env = self.environ(extra_env)
        fd, out = tempfile.mkstemp(prefix="retrograd-bench-", suffix=".json")
        os.close(fd)
        spec = {"mode": mode, "settings": asdict(self.settings), "out": out, **spec}
        code = "from retrograd.bench.runner import _child; _child()"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code, json.dumps(spec)],
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
            try:
                with open(out) as f:
                    return json.load(f)
            except (OSError, ValueError):
                msg = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                return {"status": "error", "note": f"child failed: {msg[0]}"}
        except subprocess.TimeoutExpired:
            return {"status": "error", "note": f"child timed out after {self.timeout:.0f} s"}
        finally:
            os.unlink(out)


class _ChildWorker:
    """A Worker in a child process, driven over its stdin/stdout."""

    def __init__(self, children: _Children, wid: str, lib_name: str) -> None:
        spec = {"workload": wid, "lib": lib_name, "settings": asdict(children.settings)}
        self.timeout = children.timeout
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from retrograd.bench.runner import _worker; _worker()"]
            + [json.dumps(spec)],
            # PyTorch as users run it: without retrograd's malloc tuning (backend.py), which
            # importing this module would apply to its process too
            env=children.environ(
                None if lib_name == "retrograd" else {"RETROGRAD_MALLOC_TUNING": "0"}
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self._read()  # ready

    def call(self, cmd: str, **kw):
        self.proc.stdin.write(json.dumps({"cmd": cmd, "kw": kw}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.stderr.seek(0)
            last = self.stderr.read().strip().splitlines()[-1:]
            why = last[0] if last else f"no answer within {self.timeout:.0f} s"
            raise RuntimeError(f"timing child failed: {why}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ok"]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        finally:
            self.stderr.close()


def _bytecode() -> str:
    """Write retrograd's bytecode (__pycache__, as pip does when it installs a package), so that
    the children import it from bytecode as they import PyTorch and NumPy; a line saying so.

    An editable install is not compiled, and with PYTHONDONTWRITEBYTECODE set (as on these
    machines) every child then compiles each module from source. The compiler's transient
    buffers leave free chunks in glibc's heap that a step's arrays land in later, which the
    memory figure counts: W2 2.55 MB from source against 2.19-2.38 from bytecode (PyTorch
    2.08-2.09)."""
    import compileall

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        ok = compileall.compile_dir(root, quiet=2)  # (quiet=2: prints nothing)
    except OSError as e:
        return f"retrograd imported from source ({type(e).__name__}: {e})"
    return "retrograd imported from bytecode" if ok else "retrograd partly from source"


def _pass_envs(args) -> list[tuple[str, dict | None, str]]:
    """[(pass name, environment for the children or None for in-process, note)]."""
    if args.in_process:
        return [("as-is (in-process)", None, "")]
    base = dict(os.environ)
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--env wants KEY=VALUE, got {item!r}")
        base[key] = value
    unset = {k: v for k, v in base.items() if k not in BLAS_ENV}
    any_set = any(k in base for k in BLAS_ENV)
    want = args.blas_env
    passes = []
    if want in ("auto", "both", "as-is"):
        passes.append(("as-is", base, ""))
    if want in ("both", "unset") or (want == "auto" and any_set):
        passes.append(("unset", unset, ""))
    elif want == "auto":
        passes[0] = ("as-is", base, "neither variable is set: this pass is the unset one too")
    return passes


def _measure_pass(name, env, note, wids, settings, memory, log) -> dict:
    """One table: machine info, then every workload's timing and memory."""
    if env is None:
        info = env_info(settings)
        children = None
    else:
        children = _Children(env, settings, timeout=300 if settings.quick else 1800)
        info = children.call("env")
        if info.get("status") == "error":
            return {"name": name, "note": note, "error": info["note"], "workloads": {}}
    settings.no_torch = settings.no_torch or info.get("torch") is None
    result = {"name": name, "note": note, **info, "workloads": {}}
    for wid in wids:
        log(f"[{name}] {wid}: timing")
        if children is None:
            spawn = functools.partial(_LocalWorker, settings=settings)
        else:
            spawn = functools.partial(_ChildWorker, children)
        try:
            res = time_workload(wid, settings, info.get("torch_note"), spawn)
        except Exception as e:
            res = {"status": "error", "note": f"{type(e).__name__}: {e}", "trace": _tail()}
        res["title"] = WORKLOADS[wid].title
        if res.get("status") in ("ok", "mismatch") and memory:
            log(f"[{name}] {wid}: memory")
            _add_memory(res, wid, settings, children)
        result["workloads"][wid] = res
    # the peak again at the end, keeping the better: a busy machine drags either one down
    if children is None:
        end = sgemm_peak(settings.sgemm_n, settings.sgemm_reps)
    else:
        end = children.call("sgemm")
    result["sgemm_start"] = info["sgemm"]
    result["sgemm_end"] = end
    if end.get("gflops", 0) > info["sgemm"]["gflops"]:
        result["sgemm"] = end
    for wid, res in result["workloads"].items():
        if res.get("status") in ("ok", "mismatch"):
            _add_derived(res, WORKLOADS[wid], result)
    result["loadavg_end"] = _loadavg()
    return result


def _add_derived(res: dict, w, info: dict) -> None:
    libs = res["libs"]
    rg, th = libs.get("retrograd"), libs.get("torch")
    res["ratio"] = rg["ms_median"] / th["ms_median"] if rg and th else None
    both = rg and th and rg["cpu_ms_median"] > 0 and th["cpu_ms_median"] > 0
    res["cpu_ratio"] = rg["cpu_ms_median"] / th["cpu_ms_median"] if both else None
    if w.flops:
        peak = info["sgemm"]["gflops"]
        res["flops_per_step"] = w.flops
        for entry in libs.values():
            entry["gflops"] = w.flops / (entry["ms_median"] / 1e3) / 1e9
            entry["pct_of_peak"] = 100.0 * entry["gflops"] / peak


ALLOC_METHOD = (
    "exact: the allocator's peak of bytes handed out over the steps - its count before building "
    "the model (alloc_count.c preloaded; Python's objects through malloc)"
)


@functools.cache
def _alloc_counter() -> str | None:
    """The allocation counter, built once per run in a directory removed at exit; None where it
    cannot be built here."""
    directory = tempfile.mkdtemp(prefix="retrograd-bench-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return alloc_count.build(directory)


def _add_memory(res: dict, wid: str, settings: Settings, children) -> None:
    for name, entry in res["libs"].items():
        if children is None:
            if name != "retrograd":
                entry["peak_mb"] = None
                entry["mem_method"] = "n/a in-process (needs child processes)"
                continue
            w = WORKLOADS[wid]
            opts = {"attention": settings.attention} if wid == "W6" else {}
            lib = Lib.load("retrograd")
            mb = traced_peak(w, lib, make_arrays(w), settings.mem_steps, opts)
            entry["peak_mb"], entry["mem_method"] = mb, "tracemalloc"
            continue
        extra = dict(HEAP_KEPT_ENV)
        counter = _alloc_counter()
        if counter:
            extra.update(alloc_count.preload_env(counter, children.env))
        mem = children.call("memory", extra_env=extra, workload=wid, lib=name)
        # the headline: the allocator's exact peak where the counter ran, else the resident one
        rss_method = mem.get("method", mem.get("note"))
        if mem.get("alloc_peak_mb") is not None:
            entry["peak_mb"] = mem["alloc_peak_mb"]
            entry["mem_method"] = ALLOC_METHOD
        else:
            entry["peak_mb"] = mem.get("peak_mb")
            entry["mem_method"] = rss_method
        entry["alloc_model_mb"] = mem.get("alloc_model_mb")
        entry["rss_peak_mb"] = mem.get("peak_mb")
        entry["rss_method"] = rss_method
        entry["rss_mb"] = mem.get("rss_mb")
        # the earlier figure (RETURNED_ENV, VmHWM) and, for retrograd, tracemalloc's live peak
        old = children.call("memory", extra_env=RETURNED_ENV, workload=wid, lib=name)
        entry["returned_peak_mb"] = old.get("peak_mb")
        entry["returned_method"] = old.get("method", old.get("note"))
        if "traced_mb" in old:
            entry["traced_mb"] = old["traced_mb"]


# -- output ----------------------------------------------------------------------------------------
def _fmt(v, spec=".3g", na="n/a") -> str:
    return na if v is None else format(v, spec)


def _mb(v) -> str:
    if v is None:
        return "n/a"
    if abs(v) < 0.1:  # W1: a few pages
        return f"{v:.3f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}"


def _ms(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def format_pass(p: dict) -> str:
    """The table of one pass, as printed."""
    lines = [f"== pass: {p['name']}" + (f"  ({p['note']})" if p.get("note") else "")]
    if "error" in p:
        lines.append(f"   error: {p['error']}")
        return "\n".join(lines)
    env = " ".join(f"{k}={v if v is not None else '<unset>'}" for k, v in p["env"].items())
    b = p["blas"]
    arch = b.get("architecture") or "?"
    lines.append(f"   {env}")
    lines.append(
        f"   NumPy {p['numpy']} BLAS: {b.get('internal_api')} {b.get('version')}, kernel {arch}, "
        f"{p['threads']} threads ({b.get('source')}); CPU: {p['cpu']} x{p['cpus']}"
    )
    t = p.get("torch")
    torch_line = (
        f"torch {t['version']}, {t['threads']} threads (eager, CPU)" if t else p.get("torch_note")
    )
    s = p["sgemm"]
    lines.append(
        f"   {torch_line}; retrograd {p['retrograd']}; sgemm peak "
        f"{s['gflops']:.0f} GFLOP/s (n={s['n']}, best of {s['reps']})"
    )
    load = max(v for v in (p.get("loadavg_start"), p.get("loadavg_end"), 0.0) if v is not None)
    if load > 0.5 * p["cpus"]:
        lines.append(
            f"   WARNING: the machine is busy (load average up to {load:.1f} on {p['cpus']} CPUs): "
            "wall-clock figures are unreliable; the CPU-time ratio (cpu) suffers less"
        )
    head = (
        f"{'id':<4}{'retrograd ms/step [min-max]':>30}{'torch ms/step [min-max]':>28}{'ratio':>7}"
        f"{'cpu':>6}{'GFLOP/s rg | torch (% peak)':>31}{'peak MB rg | torch':>21}"
        f"{'RSS MB rg | torch':>20}  loss check"
    )
    lines += [head, "-" * len(head)]
    for wid, r in p["workloads"].items():
        status = r.get("status")
        if status not in ("ok", "mismatch"):
            lines.append(f"{wid:<4}  {status}: {r.get('note', '')}")
            continue
        cells = []
        for name in ("retrograd", "torch"):
            e = r["libs"].get(name)
            cells.append(
                f"{_ms(e['ms_median'])} [{_ms(e['ms_min'])}-{_ms(e['ms_max'])}]" if e else "n/a"
            )
        rg, th = r["libs"]["retrograd"], r["libs"].get("torch")
        if "gflops" in rg:
            pct = f"{rg['pct_of_peak']:.0f}%"
            tg = f"{th['gflops']:.0f} ({th['pct_of_peak']:.0f}%)" if th else "n/a"
            gf = f"{rg['gflops']:.0f} ({pct}) | {tg}"
        else:
            gf = "-"
        mem = f"{_mb(rg.get('peak_mb'))} | {_mb(th.get('peak_mb')) if th else 'n/a'}"
        rss = f"{_mb(rg.get('rss_peak_mb'))} | {_mb(th.get('rss_peak_mb')) if th else 'n/a'}"
        chk = r["loss_check"]
        oks = [chk["first_step"]["ok"], chk["after_update"]["ok"]]
        check = "n/a" if oks[0] is None else ("ok" if all(oks) else "MISMATCH")
        lines.append(
            f"{wid:<4}{cells[0]:>30}{cells[1]:>28}{_fmt(r.get('ratio'), '.2f'):>7}"
            f"{_fmt(r.get('cpu_ratio'), '.2f'):>6}{gf:>31}{mem:>21}{rss:>20}  {check}"
        )
    lines.append("")
    lines.append(
        "   ms/step: median of every timed step (each block after its untimed lead-in), "
        "[min-max] of the blocks' medians; ratio: retrograd/torch; cpu: the same ratio in "
        "process CPU time"
    )
    lines.append(
        "   peak MB: the allocator's peak of bytes handed out over the steps, model included, "
        "counted exactly in a child (alloc_count.c preloaded; where it cannot be built, the RSS "
        "figure); RSS MB: the resident peak in the same child, read exactly, its heap keeping "
        "every page below 32 MB (the JSON also has `returned_peak_mb`: VmHWM with blocks of 64 "
        "KB and up unmapped on free)"
    )
    for wid, r in p["workloads"].items():
        extra = f" [attention: {r['attention']}]" if r.get("attention") else ""
        lines.append(f"   {wid}: {r['title']}{extra}")
    return "\n".join(lines)


def _print(*a) -> None:
    print(*a, flush=True)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args, out=_print, log=_log) -> int:
    """Measure, print the tables, write the JSON; 0 when every workload that ran agrees with
    PyTorch, 1 when one errs or disagrees."""
    wids = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in wids if w not in WORKLOADS]
    if unknown:
        out(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
        return 2
    settings = Settings.for_run(
        args.quick,
        rounds=args.rounds,
        block_ms=args.block_ms,
        warmup_s=args.warmup_s,
        settle_ms=args.settle_ms,
        lead_ms=args.lead_ms,
        min_block_steps=args.min_block_steps,
        attention=args.attention,
        no_torch=args.no_torch,
        threads=args.threads,
    )
    report = {
        "version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "lr": LR,
        "loss_rtol": LOSS_RTOL,
        "settings": asdict(settings),
        "platform": platform.platform(),
        "passes": [],
    }
    if not args.in_process:
        report["bytecode"] = _bytecode()
        out(report["bytecode"])
    for name, env, note in _pass_envs(args):
        s = Settings(**asdict(settings))
        with _limit_threads(s.threads if env is None else None):
            p = _measure_pass(name, env, note, wids, s, not args.no_memory, log)
        report["passes"].append(p)
        out(format_pass(p))
        out("")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        out(f"results: {args.json}")
    failed = [
        f"{p['name']}:{wid}"
        for p in report["passes"]
        for wid, r in p["workloads"].items()
        if r.get("status") in ("error", "mismatch")
    ] + [p["name"] for p in report["passes"] if "error" in p]
    if failed:
        out(f"FAILED: {', '.join(failed)}")
        return 1
    return 0
