"""The CPU's threads: how many the work may use, and a loop over independent pieces that
spreads them over that many threads.

NumPy's BLAS already runs a matrix product on several threads, but every other NumPy operation
(a ufunc, a copy, a reduction) runs on one. Where an op's work splits into independent pieces
(chunks of a flat array, groups of images in a convolution, batch entries in attention),
`parallel_for` runs the pieces on a small pool of threads: NumPy releases the GIL inside its
loops, so the pieces really run at once. The BLAS runs one thread per piece meanwhile, so the
threads never oversubscribe the cores.

The thread count is BLAS's (OpenBLAS's `openblas_get_num_threads`, which `OPENBLAS_NUM_THREADS`
and threadpoolctl set), or the one `set_num_threads` gave; the pool follows it live. A loop
whose pieces are too small to pay for a thread's wake-up (tens of microseconds on a virtual
machine) runs in the caller: ops pass the work they are about to do and the loop decides.
The pool's splits of elementwise work, convolutions and attention never change the bits: every
piece writes its own part of the output, and pieces that add into one array hand back partial
results that the caller sums in order. Large matrix products are split here too (`matmul`);
those, like OpenBLAS's and PyTorch's own threaded products, may differ from the one-thread
product in the last bit. Only NumPy arrays are split; CuPy's work goes as it is.

The module also owns the few OpenBLAS routines called directly (found with its thread
functions): the thread count, `axpy` (y += a x in one pass, for the optimizer), gemm with its
arguments prepared once for a recurrent loop (`add_matmul_into`: c += a @ b, or c = a @ b, at
given addresses; `gemm_group`: several products in one gemm_batch call), and omatcopy (a
blocked transpose: `transpose_into`, and the products `matmul` runs mirrored).
"""

from __future__ import annotations

import contextvars
import ctypes
import os
import threading
import time
from collections.abc import Callable

import numpy as _np

_ndarray = _np.ndarray
_clock = time.monotonic

__all__ = [
    "get_num_threads",
    "set_num_threads",
    "parallel_for",
    "parallel_ranges",
    "threads_for",
    "matmul",
    "axpy",
    "add_matmul_into",
    "gemm_group",
    "transpose_into",
    "transpose_into_at",
]

# work of less than twice this many bytes of memory traffic (or its equivalent in arithmetic)
# runs in the caller, and each thread gets at least this much: waking a sleeping thread and
# handing the GIL between threads costs tens of microseconds on a virtual machine, against
# about 100 us for a 1 MB pass (W6's optimizer steps over 1 MB parameters ran 8 ms slower a
# step split over two threads at 1 MB a thread)
MIN_PARALLEL_BYTES = 2 << 20

# a matrix product of at least this many multiply-adds (about 0.7 ms on one core) runs as one
# product per thread on the pool (`matmul`); smaller ones stay with the BLAS as they are
SPLIT_MACS = 1 << 25
# OpenBLAS threads a product from about 64^3 multiply-adds; its idle threads then spin for
# about 2^28 cycles (~0.1 s) before they sleep
_BLAS_THREADS_FROM = 1 << 18
BLAS_SPIN_S = 0.1
_blas_spinning_until = 0.0


class _Blas:
    """OpenBLAS's thread-count functions, found among the loaded libraries (Linux: in
    /proc/self/maps); absent when NumPy runs another BLAS."""

    def __init__(self) -> None:
        self.get = self.set = None
        self.axpy: dict = {}  # dtype -> cblas_?axpy(n, alpha, x, incx, y, incy)
        # dtype -> cblas_?gemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        self.gemm: dict = {}
        # dtype -> cblas_?omatcopy(order, trans, rows, cols, alpha, a, lda, b, ldb)
        self.omatcopy: dict = {}
        # dtype -> (cblas_?gemm_batch, its real and index types): independent products at once,
        # one a thread (see _GemmBatch)
        self.gemm_batch: dict = {}
        self.core = ""  # the kernels' CPU, as openblas_get_corename names it ("SkylakeX")
        for path in _loaded_openblas():
            try:
                lib = ctypes.CDLL(path)
            except OSError:  # pragma: no cover - listed but not loadable
                continue
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", "_64", ""):
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and put is not None:
                        get.restype, get.argtypes = ctypes.c_int, []
                        put.restype, put.argtypes = None, [ctypes.c_int]
                        self.get, self.set = get, put
                        core = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                        if core is not None:
                            core.restype, core.argtypes = ctypes.c_char_p, []
                            self.core = (core() or b"").decode("ascii", "replace").strip()
                        cblas = "scipy_cblas" if prefix == "scipy_openblas" else "cblas"
                        index = ctypes.c_int64 if suffix else ctypes.c_int  # ILP64 or LP64
                        for dtype, letter, real in (
                            ("float32", "s", ctypes.c_float),
                            ("float64", "d", ctypes.c_double),
                        ):
                            ptr, enum = ctypes.c_void_p, ctypes.c_int
                            f = getattr(lib, f"{cblas}_{letter}axpy{suffix}", None)
                            if f is not None:
                                f.restype = None
                                f.argtypes = [index, real, ptr, index, ptr, index]
                                self.axpy[_np.dtype(dtype)] = f
                            f = getattr(lib, f"{cblas}_{letter}gemm{suffix}", None)
                            if f is not None:
                                f.restype = None
                                f.argtypes = [enum, enum, enum, index, index, index, real]
                                f.argtypes += [ptr, index, ptr, index, real, ptr, index]
                                self.gemm[_np.dtype(dtype)] = f
                            f = getattr(lib, f"{cblas}_{letter}omatcopy{suffix}", None)
                            if f is not None:
                                f.restype = None
                                f.argtypes = [enum, enum, index, index, real, ptr, index, ptr]
                                f.argtypes += [index]
                                self.omatcopy[_np.dtype(dtype)] = f
                            f = getattr(lib, f"{cblas}_{letter}gemm_batch{suffix}", None)
                            if f is not None:
                                f.restype = None
                                f.argtypes = [enum] + [ptr] * 13 + [index, ptr]
                                self.gemm_batch[_np.dtype(dtype)] = (f, real, index)
                        return


def _loaded_openblas() -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split(None, 5)[-1].strip() for line in f if "openblas" in line.lower()}
    except OSError:  # pragma: no cover - not Linux
        return []
    return sorted(p for p in paths if p.startswith("/") and ".so" in p)


_blas: _Blas | None = None
_set_count: int | None = None  # set_num_threads's, when it was called and BLAS is not OpenBLAS


def _blas_funcs() -> _Blas:
    global _blas
    if _blas is None:
        import numpy  # noqa: F401  (loads the BLAS, so the search finds it)

        _blas = _Blas()
    return _blas


def _default_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """The number of threads retrograd's CPU work uses: BLAS's, or what set_num_threads set."""
    blas = _blas_funcs()
    if blas.get is not None:
        return max(1, int(blas.get()))
    return _set_count if _set_count is not None else _default_count()


def set_num_threads(n: int) -> None:
    """Use n threads for CPU work: matrix products (NumPy's BLAS) and the ops that split
    their work (torch.set_num_threads)."""
    global _set_count
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, but got {n!r}")
    blas = _blas_funcs()
    if blas.set is not None:
        blas.set(n)
    _set_count = n


def threads_for(array, nbytes: int) -> int:
    """How many threads work of about nbytes on array (a NumPy array: the pool never runs
    another array library's work) may use: 1 when it is too small to share."""
    if nbytes < 2 * MIN_PARALLEL_BYTES or type(array).__module__ != "numpy":
        return 1
    if _pool.busy:  # a loop inside a piece runs in its thread
        return 1
    return min(get_num_threads(), nbytes // MIN_PARALLEL_BYTES)


class _Worker:
    __slots__ = ("go", "done", "job", "thread")

    def __init__(self) -> None:
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.job: Callable[[], None] | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True, name="retrograd-worker")
        self.thread.start()

    def _serve(self) -> None:
        while True:
            self.go.acquire()
            try:
                self.job()
            finally:
                self.done.release()


class _Pool:
    """Persistent daemon threads, each waiting on its own lock; one loop at a time (a loop
    that finds the pool busy runs in its caller)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy = False
        self.workers: list[_Worker] = []

    def run(self, count: int, body: Callable[[int], None], threads: int) -> None:
        if not self.lock.acquire(blocking=False):
            for i in range(count):
                body(i)
            return
        try:
            self.busy = True
            self._run(count, body, threads)
        finally:
            self.busy = False
            self.lock.release()

    def _run(self, count: int, body: Callable[[int], None], threads: int) -> None:
        while len(self.workers) < threads - 1:
            self.workers.append(_Worker())
        todo = iter(range(count))  # shared: next() on it is atomic under the GIL
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                for i in todo:
                    if errors:
                        return
                    body(i)
            except BaseException as e:  # handed to the caller below
                errors.append(e)

        context = contextvars.copy_context()  # NumPy's error state, grad mode: the caller's
        job = lambda: context.copy().run(loop)  # noqa: E731
        blas = _blas_funcs()
        blas_threads = None if blas.get is None else blas.get()
        if blas_threads is not None:
            blas.set(1)  # one BLAS thread per piece while the pieces run side by side
        workers = self.workers[: threads - 1]
        joined = 0
        try:
            for w in workers:
                w.job = job
                w.go.release()
            loop()
            for w in workers:
                w.done.acquire()
                w.job = None
                joined += 1
        finally:
            if joined < len(workers):  # interrupted (Ctrl-C) while they ran: never reuse them
                self.workers = [w for w in self.workers if w not in workers[joined:]]
            if blas_threads is not None:
                blas.set(blas_threads)
        if errors:
            raise errors[0]


_pool = _Pool()


def _after_fork() -> None:  # the child has none of the parent's threads
    global _pool
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def parallel_for(count: int, body: Callable[[int], None], threads: int) -> None:
    """body(i) for every i in range(count), on up to `threads` threads (`threads_for` says how
    many the work may use). The pieces must be independent: each writes only its own part of
    any output. The first exception a piece raises is raised here once all threads stopped."""
    if threads <= 1 or count <= 1:
        for i in range(count):
            body(i)
        return
    _pool.run(count, body, min(threads, count))


def parallel_ranges(n: int, body: Callable[[int, int], None], threads: int, grain: int = 1) -> None:
    """body(lo, hi) over contiguous ranges that cover range(n): all of it at once in the caller
    when threads is 1, else two ranges a thread (multiples of grain), taken in turn as threads
    free up, so a thread that wakes late takes fewer. (More, smaller ranges measured slower:
    their Python calls contend for the GIL.)"""
    if threads <= 1 or n <= grain:
        body(0, n)
        return
    size = -(-n // (2 * threads))
    size = -(-size // grain) * grain
    starts = range(0, n, size)
    parallel_for(len(starts), lambda i: body(starts[i], min(starts[i] + size, n)), threads)


def blas_threads_ran() -> None:
    """Say that OpenBLAS has just run threaded products (a recurrent loop's steps): its idle
    threads spin for a while now, and `matmul` leaves large products to them meanwhile."""
    global _blas_spinning_until
    _blas_spinning_until = _clock() + BLAS_SPIN_S


def matmul(a, b, out=None):
    """a @ b (into out, a C-contiguous 2-D NumPy array of the result's shape and dtype, when
    given). A 2-D NumPy product of at least SPLIT_MACS multiply-adds runs on the pool as one
    product per thread, each of whole rows (or columns) of the result on one BLAS thread;
    anything else goes to `a @ b` as it is.

    Why not leave the threads to OpenBLAS: after a threaded product its idle threads spin for
    about 0.1 s (2^28 cycles) before they sleep, holding a core, so the pool's loops that follow
    a product (ReLU, GELU, attention, the optimizer) found no second core. Split here, a large
    product runs as fast as OpenBLAS's own split and leaves nothing spinning (A/B on two
    threads: W6 94.6 against 99.2 ms a step, W3 218 against 226). Each part is OpenBLAS's
    one-thread product of its rows; its kernels may take the tiles at a part's edge in another
    order than the whole product's, so the last bit may differ from one thread's. While
    OpenBLAS's threads still spin from products it threaded (smaller ones, or a recurrent
    loop's steps), a split would fight them for the core (W5's output layer after its LSTM
    loop: 38.1 against 36.6 ms), so large products go to OpenBLAS then too."""
    if type(a) is not _ndarray or type(b) is not _ndarray or a.ndim != 2 or b.ndim != 2:
        return a @ b if out is None else _np.matmul(a, b, out=out)
    m, k = a.shape
    n = b.shape[1]
    if n >= 256 and 8 <= m <= MIRROR_MAX_ROWS and _mirrors(a, b, m, k, n, out):
        return _mirrored(a, b, m, k, n, out)  # (the first tests: small products pass fast)
    threads = _split_threads(a, b, m * k * n, out)
    if threads < 2:
        # (not the large products left to OpenBLAS while its threads spin: W5's output layer,
        # 2048 x 256 x 65, ran 4% slower in pieces)
        if 2 * _BATCH_PIECE_MACS < m * k * n < SPLIT_MACS and not _pool.busy:
            blas = _blas_funcs()
            count = 1 if blas.get is None else blas.get()
            done = _batched(a, b, m, k, n, out, count) if count > 1 else None
            if done is not None:
                blas_threads_ran()  # (its threads spin now, as after a threaded product)
                return done
        return a @ b if out is None else _np.matmul(a, b, out=out)
    if out is None:
        out = _np.empty((m, n), dtype=a.dtype)
    # parts of whole 64-row (or column) tiles: in every shape tried here, float32 and float64,
    # that gave the one-thread product's bits (parts of 16 did not always, in float64)
    by_rows = m >= n
    step = (-(-(m if by_rows else n) // threads) + 63) // 64 * 64
    starts = range(0, m if by_rows else n, step)

    def part(i: int) -> None:
        s = slice(starts[i], starts[i] + step)
        if by_rows:
            _np.matmul(a[s], b, out=out[s])
        else:
            _np.matmul(a, b[:, s], out=out[:, s])

    parallel_for(len(starts), part, threads)
    return out


# OpenBLAS's SkylakeX sgemm runs x @ w^T (a transposed operand: a Linear layer's forward) slowly
# when x has few rows and w many: at m = 32, k = n = 1024, 104 GFLOP/s against 164 for the same
# product mirrored, (w @ x^T)^T; at W3's m = 256, 184-185 against 190-196 (two threads; one
# thread alike, 92 against 99). So such products run mirrored, into a scratch array that
# omatcopy, the BLAS's blocked transpose, writes out (4 MB in 0.24 ms, where NumPy's strided
# copy takes 2.2). Measured in float32 only: float64 mirrored ran slower, 0.69-0.97 of the
# plain product, and so did OpenBLAS's Haswell kernels (0.94-1.10), which run it at 150-214.
_MIRROR_CORES = ("SkylakeX",)
MIRROR_MAX_ROWS = 256


def _mirrors(a, b, m: int, k: int, n: int, out) -> bool:
    """Whether `matmul` computes a @ b as (b^T @ a^T)^T: a C-contiguous float32 a of 8 to
    MIRROR_MAX_ROWS rows, b a transposed C-contiguous matrix, n >= max(256, 4m) and k >= 2m,
    k >= 256 (512 from m = 64): the shapes where it measured faster, 1.06-2.7x on two threads.
    Outside them it lost: a vector (m = 1: 0.4-0.9x), m = 4 at n = 256, m = 64-128 at k = 256
    and n = 4096 (0.82-0.92x), and from m = 512 on."""
    if not 8 <= m <= MIRROR_MAX_ROWS or n < max(256, 4 * m):
        return False
    if k < max(256 if m < 64 else 512, 2 * m):
        return False
    if a.dtype != _np.float32 or b.dtype != a.dtype or b.shape[0] != k:
        return False
    if not (a.flags.c_contiguous and b.flags.f_contiguous) or b.flags.c_contiguous:
        return False
    if out is not None and (
        out.shape != (m, n)
        or out.dtype != a.dtype
        or not out.flags.c_contiguous
        or _np.may_share_memory(out, a)
        or _np.may_share_memory(out, b)
    ):
        return False
    blas = _blas_funcs()
    return blas.core in _MIRROR_CORES and a.dtype in blas.omatcopy


def _mirrored(a, b, m: int, k: int, n: int, out):
    """a @ b as (b^T @ a^T)^T: the product into a scratch (n, m) array, then transposed into
    out by the BLAS's omatcopy. Split as `matmul` splits, one block of rows of b^T (columns of
    the result) a thread, each transposing its own block."""
    copy = _blas_funcs().omatcopy[a.dtype]
    bt, at = b.T, a.T
    t = _np.empty((n, m), dtype=a.dtype)
    if out is None:
        out = _np.empty((m, n), dtype=a.dtype)
    size, src, dst = a.itemsize, t.ctypes.data, out.ctypes.data

    def block(lo: int, hi: int) -> None:
        _np.matmul(bt[lo:hi], at, out=t[lo:hi])  # rows lo:hi of the result's transpose
        copy(_ROW_MAJOR, _TRANS, hi - lo, m, 1.0, src + lo * m * size, m, dst + lo * size, n)

    threads = _split_threads(bt, at, m * k * n, None)
    if threads < 2:
        block(0, n)
        return out
    step = (-(-n // threads) + 63) // 64 * 64
    starts = range(0, n, step)
    parallel_for(len(starts), lambda i: block(starts[i], min(starts[i] + step, n)), threads)
    return out


# OpenBLAS's gemm_batch gives a product of at most 100^3 multiply-adds to its small-matrix
# kernels, and in the DYNAMIC_ARCH builds NumPy ships (0.3.31) that path calls a table offset as
# a function: a segfault. Every piece handed to it here is well above that
_BATCH_PIECE_MACS = 1 << 21


class _GemmBatch:
    """cblas_?gemm_batch's arguments in arrays allocated once: `cap` groups of one product
    each (the pieces of one product, `_pieces`, or of several, `gemm_group`), all but the
    addresses filled once (`_fill`)."""

    def __init__(self, f, real, index, cap: int) -> None:
        self.f = f
        enums = ctypes.c_int * cap
        ints, reals, ptrs = index * cap, real * cap, ctypes.c_void_p * cap
        self.ta, self.tb = enums(), enums()
        self.m, self.n, self.k = ints(), ints(), ints()
        self.alpha, self.beta = reals(), reals()
        self.a, self.b, self.c = ptrs(), ptrs(), ptrs()
        self.lda, self.ldb, self.ldc = ints(), ints(), ints()
        self.size = ints(*([1] * cap))
        fields = (self.ta, self.tb, self.m, self.n, self.k, self.alpha, self.a, self.lda)
        fields += (self.b, self.ldb, self.beta, self.c, self.ldc)
        self.addresses = [ctypes.addressof(x) for x in fields]
        self.size_at = ctypes.addressof(self.size)

    def __call__(self, count: int) -> None:
        """Run the first `count` groups, on OpenBLAS's threads (one product a thread)."""
        self.f(_ROW_MAJOR, *self.addresses, count, self.size_at)


_batch_local = threading.local()


def _piece_list(m: int, k: int, n: int, la, lb, threads: int, by_rows: bool, itemsize: int):
    """The split of a product op(a) (m, k) @ op(b) (k, n) into an out (m, n) with rows n
    apart: one piece a thread, of whole 64-row (or column) tiles, as (rows, columns, byte
    offsets into (a, b, out)) each; None where it is not split (one piece, pieces too small)."""
    (ta, lda), (tb, ldb) = la, lb
    size, other = (m, n) if by_rows else (n, m)
    step = (-(-size // max(threads, 1)) + 63) // 64 * 64
    starts = range(0, size, step) if size else range(0)
    if len(starts) < 2 or (size - starts[-1]) * other * k <= _BATCH_PIECE_MACS:
        return None
    pieces = []
    for lo in starts:
        width = min(step, size - lo)
        if by_rows:
            offsets = (lo * (lda if ta == _NO_TRANS else 1) * itemsize, 0, lo * n * itemsize)
            pieces.append((width, n, offsets))
        else:
            offsets = (0, lo * (1 if tb == _NO_TRANS else ldb) * itemsize, lo * itemsize)
            pieces.append((m, width, offsets))
    return pieces


def _fill(batch: _GemmBatch, i: int, m: int, n: int, k: int, la, lb, ldc: int, beta) -> None:
    """Group i of the batch: every field but the addresses."""
    (batch.ta[i], batch.lda[i]), (batch.tb[i], batch.ldb[i]) = la, lb
    batch.m[i], batch.n[i], batch.k[i], batch.ldc[i] = m, n, k, ldc
    batch.alpha[i], batch.beta[i] = 1.0, beta


def _pieces(dtype, m: int, k: int, n: int, la, lb, threads: int, by_rows: bool, beta=0.0):
    """`_piece_list` as a _GemmBatch for gemm_batch with every field but the addresses filled,
    and each piece's byte offsets into (a, b, out); False where it is not split (one piece,
    pieces too small, no gemm_batch)."""
    entry = _blas_funcs().gemm_batch.get(dtype)
    pieces = _piece_list(m, k, n, la, lb, threads, by_rows, dtype.itemsize)
    if entry is None or pieces is None:
        return False
    batch = _GemmBatch(*entry, cap=len(pieces))
    for i, (rows, cols, _) in enumerate(pieces):
        _fill(batch, i, rows, cols, k, la, lb, n, beta)
    return batch, tuple(enumerate(offsets for _, _, offsets in pieces))


def gemm_group(specs):
    """A function `run(*addresses)` that runs several products at once, in one call of
    OpenBLAS's gemm_batch on its threads. specs: one (a, b, beta) a product c = a @ b + beta c,
    a and b 2-D NumPy arrays of one dtype (float32 or float64) shaped and laid out as that
    product's operands will be (rows or columns of unit stride), c C-contiguous; addresses:
    one (a, b, c) data address triple a product, for the first len(addresses) products. A
    product large enough for two threads is split into one piece a thread, by rows of its
    result, as `matmul`'s pieces are; the rest go whole, one a thread. None where it cannot:
    no gemm_batch, another layout, or a product smaller than gemm_batch's pieces may be (its
    small products crash it, see _BATCH_PIECE_MACS). The caller owns the addresses.

    It serves a loop whose products are independent of each other: a recurrent layer's step
    product next to the step's share of its weights' gradient sums."""
    if not specs or any(type(a) is not _ndarray or type(b) is not _ndarray for a, b, _ in specs):
        return None
    dtype = specs[0][0].dtype
    blas = _blas_funcs()
    entry = blas.gemm_batch.get(dtype)
    if entry is None or any(a.dtype != dtype or b.dtype != dtype for a, b, _ in specs):
        return None
    threads = 1 if blas.get is None or _pool.busy else min(blas.get(), 16)
    plans = []
    for a, b, beta in specs:
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            return None
        (m, k), n = a.shape, b.shape[1]
        la, lb = _gemm_operand(a, m, k, a.itemsize), _gemm_operand(b, k, n, a.itemsize)
        if la is None or lb is None or m * k * n < _BATCH_PIECE_MACS:
            return None
        pieces = _piece_list(m, k, n, la, lb, threads, True, a.itemsize)
        plans.append((k, n, la, lb, beta, pieces or [(m, n, (0, 0, 0))]))
    batch = _GemmBatch(*entry, cap=sum(len(plan[-1]) for plan in plans))
    groups, i = [], 0
    for k, n, la, lb, beta, pieces in plans:
        for rows, cols, _ in pieces:
            _fill(batch, i, rows, cols, k, la, lb, n, beta)
            i += 1
        groups.append(tuple(offsets for _, _, offsets in pieces))
    a_, b_, c_ = batch.a, batch.b, batch.c

    def run(*addresses) -> None:
        i = 0
        for (pa, pb, pc), offsets in zip(addresses, groups):
            for oa, ob, oc in offsets:
                a_[i], b_[i], c_[i] = pa + oa, pb + ob, pc + oc
                i += 1
        batch(i)

    return run


def _batch_plan(dtype, m: int, k: int, n: int, la, lb, threads: int):
    """`_pieces` of a product of this shape and layout, prepared once per thread."""
    plans = _batch_local.__dict__.setdefault("plans", {})
    key = (dtype, m, k, n, la, lb, threads)
    plan = plans.get(key)
    if plan is None:
        if len(plans) >= 64:  # (shapes seen once: a bound, not a cache policy)
            plans.clear()
        # by rows where a is read transposed and has rows for two tiles (a weight gradient
        # g^T x: at W2's first layer 315 against 425 us by columns, in the host's slow
        # regime), else along the longer side
        by_rows = (la[0] == _TRANS and m > 64) or m >= n
        plan = plans[key] = _pieces(dtype, m, k, n, la, lb, threads, by_rows)
    return plan


def _batched(a, b, m: int, k: int, n: int, out, threads: int):
    """a @ b as `threads` one-thread products of whole 64-row (or column) tiles of the result,
    run at once by OpenBLAS's gemm_batch on its own threads; None where it cannot (then
    OpenBLAS threads the product itself).

    Why: OpenBLAS's threaded gemm has its threads share the packed operand and wait on each
    other a block at a time; at the sizes between ~4M multiply-adds and SPLIT_MACS, pieces that
    share nothing ran faster (2 threads, us, alone; W2's products: x @ W1^T 329 against 341,
    g^T x 283 against 297, h @ W2^T 113 against 123, g^T h 95 against 116, g @ W2 99 against
    109; the LSTM's step products 128 against 134 and 106 against 110). The pool splits the
    same way, but its threads cost ~40 us a round trip; OpenBLAS's spin. The pieces of each
    shape are prepared once (`_batch_plan`): a call fills in three addresses a piece."""
    dtype = a.dtype
    if b.dtype != dtype or dtype not in (_np.float32, _np.float64) or threads > 16:
        return None
    it = dtype.itemsize
    la, lb = _gemm_operand(a, m, k, it), _gemm_operand(b, k, n, it)
    if la is None or lb is None:
        return None
    plan = _batch_plan(dtype, m, k, n, la, lb, threads)
    if not plan:
        return None
    if out is None:
        out = _np.empty((m, n), dtype=dtype)
    elif out.shape != (m, n) or out.dtype != dtype or not out.flags.c_contiguous:
        return None
    elif not out.flags.writeable or _np.may_share_memory(out, a) or _np.may_share_memory(out, b):
        return None
    batch, pieces = plan
    pa, pb, pc = a.ctypes.data, b.ctypes.data, out.ctypes.data
    pas, pbs, pcs = batch.a, batch.b, batch.c
    for i, (oa, ob, oc) in pieces:
        pas[i] = pa + oa
        pbs[i] = pb + ob
        pcs[i] = pc + oc
    batch(len(pieces))
    return out


def _split_threads(a, b, macs: int, out) -> int:
    """Over how many threads `matmul` splits the product a @ b of 2-D NumPy arrays (1: none)."""
    if macs < SPLIT_MACS or _pool.busy:
        if macs >= _BLAS_THREADS_FROM and not _pool.busy:
            blas_threads_ran()
        return 1
    if _clock() < _blas_spinning_until:  # (not counted as a run: the window must close)
        return 1
    blas = _blas_funcs()
    if blas.get is None:  # another BLAS (MKL, Accelerate): its threads are its own to run
        return 1
    if a.dtype != b.dtype or a.dtype.kind not in "fc" or a.shape[1] != b.shape[0]:
        return 1
    if out is not None and (
        out.shape != (a.shape[0], b.shape[1]) or out.dtype != a.dtype or not out.flags.c_contiguous
    ):
        return 1
    return blas.get()


# OpenBLAS threads an axpy from 10,000 elements (and its threads then spin, see matmul)
_AXPY_THREADS_FROM = 10_000
# `axpy` lets OpenBLAS's threads share a vector of at least this many elements while they still
# spin from a product. A/B in one process, alternating blocks, 2 threads: W2 (its first layer's
# 200,704 weights) 0.988 of the time a step, faster in 34 of 40 blocks; W5 and W6 0.999-1.002.
# From 2^16 (W2's second layer and W5's W_ih too): W2 0.980, but W5 1.006-1.014 (7-14 of 16-30
# blocks faster). From 10,000, W4 (a 12,800-element weight) lost 1.3-3 ms a step; on threads
# woken from sleep too (no spin condition), W6 lost 13%
AXPY_SHARE_FROM = 1 << 17


def axpy(alpha: float, x, y) -> bool:
    """y += alpha * x in place with the BLAS's axpy, for C-contiguous NumPy arrays of one
    shape and dtype (float32 or float64) when NumPy runs OpenBLAS; False (y untouched) where
    it cannot. One pass and no temporary where NumPy's `y -= lr * x` makes two and a
    full-size array (W2's SGD step: 47 against 86 us; PyTorch's 46), and each element is
    rounded once, fma(alpha, x, y): the bits of PyTorch's `y.add_(x, alpha=alpha)`, however it
    is split. OpenBLAS runs it on one thread (the pool splits large ones), or on its threads
    while they still spin from a product and the vector has AXPY_SHARE_FROM elements: no
    wake-up then (and, we guess, the next step's products find each half in the cache of the
    core that wrote it). Woken from sleep for it, they cost more than they save."""
    if type(x) is not _ndarray or type(y) is not _ndarray or x.dtype != y.dtype:
        return False
    blas = _blas_funcs()
    f = blas.axpy.get(y.dtype)
    if f is None or x.shape != y.shape or not (x.flags.c_contiguous and y.flags.c_contiguous):
        return False
    if not y.flags.writeable or _np.may_share_memory(x, y):
        return False
    n = y.size
    threads = 1 if n < _AXPY_THREADS_FROM or _pool.busy else blas.get()
    shared = threads > 1 and n >= AXPY_SHARE_FROM and _clock() < _blas_spinning_until
    if threads > 1 and not shared:
        blas.set(1)
    try:
        f(n, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
    finally:
        if threads > 1 and not shared:
            blas.set(threads)
    if shared:
        blas_threads_ran()
    return True


_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS's enums


def _gemm_operand(a, rows: int, cols: int, itemsize: int):
    """(transposed, leading dimension) of a 2-D operand the BLAS can read in place, or None:
    rows with unit stride between elements (C layout) or columns with it (a transpose)."""
    s0, s1 = a.strides
    if s1 == itemsize and s0 % itemsize == 0 and s0 // itemsize >= max(cols, 1):
        return _NO_TRANS, s0 // itemsize
    if s0 == itemsize and s1 % itemsize == 0 and s1 // itemsize >= max(rows, 1):
        return _TRANS, s1 // itemsize
    return None


def _transpose_layout(a, out):
    """(omatcopy, rows, cols, lda, ldo) for out = a.T with the BLAS's omatcopy: 2-D NumPy
    arrays of one dtype whose rows have unit stride, out of a's transposed shape; None where
    the BLAS cannot."""
    if type(a) is not _ndarray or type(out) is not _ndarray or a.ndim != 2 or out.ndim != 2:
        return None
    copy = _blas_funcs().omatcopy.get(a.dtype)
    if copy is None or out.dtype != a.dtype or out.shape != a.shape[::-1]:
        return None
    rows, cols = a.shape
    la, lo = _gemm_operand(a, rows, cols, a.itemsize), _gemm_operand(out, cols, rows, a.itemsize)
    if la is None or lo is None or la[0] != _NO_TRANS or lo[0] != _NO_TRANS:
        return None  # (rows of unit stride only)
    return copy, rows, cols, la[1], lo[1]


def transpose_into(a, out) -> bool:
    """out[...] = a.T with the BLAS's omatcopy (a blocked transpose), for 2-D NumPy arrays of
    one dtype (float32 or float64) whose rows have unit stride (a column slice of a wider
    array serves too) when NumPy runs OpenBLAS; False (out untouched) where it cannot. A 1 MB
    transpose: 65 us, NumPy's strided copy 287."""
    if type(a) is _ndarray and type(out) is _ndarray and a.ndim == 2 and not a.size:
        same = out.shape == a.shape[::-1] and out.dtype == a.dtype
        return same and _blas_funcs().omatcopy.get(a.dtype) is not None
    layout = _transpose_layout(a, out)
    if layout is None or not out.flags.writeable or _np.may_share_memory(a, out):
        return False
    copy, rows, cols, lda, ldo = layout
    copy(_ROW_MAJOR, _TRANS, rows, cols, 1.0, a.ctypes.data, lda, out.ctypes.data, ldo)
    return True


def transpose_into_at(a, out):
    """A function `run(a_address, out_address)` that writes one block out = a.T, for a loop
    over many blocks shaped and laid out as the samples a and out (2-D NumPy arrays of one
    dtype, float32 or float64, rows of unit stride), each block given by its data address.
    The BLAS's omatcopy with its arguments prepared once, as `add_matmul_into` does for gemm;
    the caller owns the addresses. None where it cannot (another BLAS, CuPy, empty blocks).

    It serves a recurrent loop that keeps its states as (H, N) blocks and hands them on as
    (N, H): each block goes while it is still in the cache (the LSTM's 64 states at W5's
    sizes: ~2 us a step, against 0.45 ms for one strided copy of all of them after the loop)."""
    layout = _transpose_layout(a, out)
    if layout is None or not a.size:
        return None
    copy, rows, cols, lda, ldo = layout

    def run(pa: int, pout: int) -> None:
        copy(_ROW_MAJOR, _TRANS, rows, cols, 1.0, pa, lda, pout, ldo)

    return run


def add_matmul_into(a, n: int, beta: float = 1.0):
    """A function `run(b_address, c_address)` that adds a @ b into c in place (beta = 0:
    writes it), for a loop that multiplies one fixed 2-D NumPy array a (m, k), float32 or
    float64, with rows or columns of unit stride (a transpose is read as it is), by many
    C-contiguous (k, n) arrays b into C-contiguous (m, n) arrays c of its dtype, each given by
    its data address (`arr.ctypes.data` plus a byte offset, found once before the loop). The
    BLAS's gemm with its arguments prepared once: the product and the add of `c += a @ b` in
    one call, with no NumPy dispatch. None where NumPy runs no OpenBLAS.

    Where OpenBLAS runs several threads and each would get a large enough piece, the rows of
    a are split into one piece a thread, run at once by gemm_batch (see `_batched`): the
    LSTM's step products at W5's sizes 128 against 134 us forward, 106 against 110 backward.

    The caller owns the addresses: run never checks them. It serves a recurrent loop whose
    step adds the incoming gradient to its product (the LSTM's backward: 104 us a step at W5's
    sizes, against 110 + 3 for `np.matmul(a, b, out=c)` after `c += g`)."""
    if type(a) is not _ndarray or a.ndim != 2:
        return None
    blas = _blas_funcs()
    f = blas.gemm.get(a.dtype)
    if f is None:
        return None
    m, k = a.shape
    op = _gemm_operand(a, m, k, a.itemsize)
    if op is None:
        return None
    ta, lda = op
    pa = a.ctypes.data
    threads = 1 if blas.get is None or _pool.busy else min(blas.get(), 16)
    plan = _pieces(a.dtype, m, k, n, op, (_NO_TRANS, n), threads, True, beta)
    if plan:
        batch, pieces = plan
        for i, (offset, _, _) in pieces:
            batch.a[i] = pa + offset
        pieces = [(i, offset) for i, (_, _, offset) in pieces]
        bs, cs, count = batch.b, batch.c, len(pieces)

        def run(pb: int, pc: int) -> None:
            for i, offset in pieces:
                bs[i] = pb
                cs[i] = pc + offset
            batch(count)

    else:

        def run(pb: int, pc: int) -> None:
            f(_ROW_MAJOR, ta, _NO_TRANS, m, n, k, 1.0, pa, lda, pb, n, beta, pc, n)

    run.a = a  # holds a: its memory outlives every call
    return run
