"""retrograd.parallel: the thread count (BLAS's, as torch.get/set_num_threads), the loop over
independent pieces (every piece once, errors and NumPy's error state carried over, one loop at a
time, BLAS at one thread inside), and the ops that split their work over it giving the same bits
on one thread and on two.

The ops are run with `MIN_PARALLEL_BYTES` lowered, so that small arrays take the threaded path.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim, parallel
from retrograd.nn import functional as F

COUNTS = {"ops bitwise equal on 1 and 2 threads": 0}


def teardown_module(module):
    print(f"\nparallel: {COUNTS['ops bitwise equal on 1 and 2 threads']} ops bitwise equal")


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    before = parallel.get_num_threads()
    yield
    parallel.set_num_threads(before)


def test_set_num_threads_round_trip(threads):
    parallel.set_num_threads(1)
    assert parallel.get_num_threads() == 1
    parallel.set_num_threads(2)
    assert parallel.get_num_threads() == 2
    assert rg.get_num_threads() == 2  # the public names


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects(bad, threads):
    with pytest.raises(RuntimeError, match="set_num_threads expects a positive integer"):
        parallel.set_num_threads(bad)


def test_set_num_threads_sets_blas():
    blas = parallel._blas_funcs()
    if blas.get is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    before = blas.get()
    try:
        parallel.set_num_threads(1)
        assert blas.get() == 1
    finally:
        parallel.set_num_threads(before)


def _pieces_run(count: int) -> list:
    """The indices parallel_for(count, ...) ran on two threads, sorted."""
    seen = []
    lock = threading.Lock()

    def body(i):
        with lock:
            seen.append(i)

    parallel.parallel_for(count, body, 2)
    return sorted(seen)


def test_every_piece_runs_once():
    assert _pieces_run(100) == list(range(100))


def test_pieces_run_on_two_threads_at_once():
    """Each of two pieces waits for the other: only two threads together finish them."""
    barrier = threading.Barrier(2, timeout=20)
    idents = set()

    def body(i):
        idents.add(threading.get_ident())
        barrier.wait()

    parallel.parallel_for(2, body, 2)
    assert len(idents) == 2


def test_ranges_cover_once():
    hits = np.zeros(1003, dtype=int)

    def body(lo, hi):
        hits[lo:hi] += 1

    parallel.parallel_ranges(hits.size, body, 2, grain=8)
    assert (hits == 1).all()
    parallel.parallel_ranges(hits.size, body, 1)
    assert (hits == 2).all()


def test_error_in_a_piece_is_raised_and_the_pool_recovers():
    def body(i):
        if i == 3:
            raise ValueError("piece 3 failed")

    with pytest.raises(ValueError, match="piece 3 failed"):
        parallel.parallel_for(8, body, 2)
    assert _pieces_run(4) == [0, 1, 2, 3]


class _Interrupt(Exception):
    pass


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGUSR1"), reason="needs SIGUSR1")
def test_an_interrupted_loop_leaves_a_working_pool():
    """A signal (Ctrl-C) while the caller waits for a worker: the loop raises, the worker
    still running is never handed another loop, and the next loop runs every piece once."""
    import signal
    import time

    started = threading.Event()
    busy = []

    def body(i):
        if threading.current_thread() is threading.main_thread():
            started.wait(5)  # leave the other piece to the worker
        else:
            busy.append(threading.get_ident())
            started.set()
            time.sleep(0.3)  # still running when the caller is interrupted

    def handler(signum, frame):
        raise _Interrupt

    old = signal.signal(signal.SIGUSR1, handler)
    try:

        def interrupt():  # once the caller is past its own piece, waiting for the worker
            started.wait(5)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGUSR1)

        timer = threading.Thread(target=interrupt)
        timer.start()
        with pytest.raises(_Interrupt):
            parallel.parallel_for(2, body, 2)
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert busy and all(w.thread.ident not in busy for w in parallel._pool.workers)
    assert _pieces_run(6) == list(range(6))


def test_workers_see_the_callers_numpy_error_state():
    barrier = threading.Barrier(2, timeout=20)

    def body(i):
        barrier.wait()  # both threads run a piece
        np.divide(np.ones(4, dtype=np.float32), 0)

    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            parallel.parallel_for(2, body, 2)
    with np.errstate(divide="ignore"):
        barrier.reset()
        parallel.parallel_for(2, body, 2)  # no warning, no error


def test_a_loop_inside_a_piece_runs_in_its_thread():
    inner = []

    def body(i):
        inner.append(parallel.threads_for(np.empty(1 << 22, dtype=np.uint8), 1 << 30))

    parallel.parallel_for(2, body, 2)
    assert inner == [1, 1]


def test_blas_runs_one_thread_inside_and_is_restored(threads):
    blas = parallel._blas_funcs()
    if blas.get is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    parallel.set_num_threads(2)
    inside = []
    parallel.parallel_for(2, lambda i: inside.append(blas.get()), 2)
    assert inside == [1, 1]
    assert blas.get() == 2


def test_threads_for_small_work_and_other_arrays(threads):
    parallel.set_num_threads(2)
    a = np.empty(10, dtype=np.float32)
    assert parallel.threads_for(a, 100) == 1
    assert parallel.threads_for(a, 64 * parallel.MIN_PARALLEL_BYTES) == 2
    assert parallel.threads_for([1.0], 64 * parallel.MIN_PARALLEL_BYTES) == 1  # not NumPy's


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_pool():
    parallel.parallel_for(2, lambda i: None, 2)  # the parent's worker exists
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os._exit(0 if _pieces_run(4) == [0, 1, 2, 3] else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- matrix products split over the pool ----------------------------------------------------------
def _splits(monkeypatch) -> list:
    """Records the loops parallel.matmul hands to the pool (their piece counts); it splits
    only when it can hold OpenBLAS to one thread a part."""
    if parallel._blas_funcs().get is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    loops = []
    real = parallel.parallel_for

    def spy(count, body, threads):
        loops.append(count)
        real(count, body, threads)

    monkeypatch.setattr(parallel, "parallel_for", spy)
    monkeypatch.setattr(parallel, "_blas_spinning_until", 0.0)
    return loops


LAYOUTS = {
    "C order": lambda a: a,
    "F order": np.asfortranarray,
    "transposed view": lambda a: np.ascontiguousarray(a.T).T,
    "strided rows": lambda a: np.repeat(a, 2, axis=0)[::2],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(
    "m, k, n, dtype",
    [(1024, 256, 160, np.float32), (96, 512, 1000, np.float32), (700, 300, 260, np.float64)],
)
def test_matmul_splits_large_products_into_the_same_bits(
    m, k, n, dtype, layout, monkeypatch, threads
):
    """Rows (m >= n) or columns of the result, one part a thread: the bits of the one-thread
    product, whatever the operands' memory layout."""
    rng = np.random.default_rng(0)
    a = LAYOUTS[layout](rng.standard_normal((m, k)).astype(dtype))
    b = LAYOUTS[layout](rng.standard_normal((k, n)).astype(dtype))
    assert m * k * n >= parallel.SPLIT_MACS
    loops = _splits(monkeypatch)
    parallel.set_num_threads(1)
    one = parallel.matmul(a, b)
    assert loops == []
    parallel.set_num_threads(2)
    two = parallel.matmul(a, b)
    assert loops == [2]
    assert two.dtype == dtype and two.shape == (m, n) and two.flags.c_contiguous
    _assert_product_close(two, one)
    out = np.full((m, n), np.nan, dtype=dtype)  # into a given array: the same parts
    assert parallel.matmul(a, b, out) is out
    assert loops == [2, 2]
    np.testing.assert_array_equal(out, two)


def _assert_product_close(actual, desired):
    """Equal but for the last bits: each part is the BLAS's product of its rows, whose kernels
    may take a block at the parts' edge in another order (as OpenBLAS's and PyTorch's own
    threaded products may)."""
    scale = np.abs(desired).max()
    eps = np.finfo(desired.dtype).eps
    np.testing.assert_allclose(actual, desired, rtol=64 * eps, atol=64 * eps * scale)


def _mirror_here(monkeypatch) -> list:
    """Lets `matmul` mirror on this machine's OpenBLAS kernels whatever they are (it does so
    by itself on SkylakeX's, where it measured faster), recording the loops it splits."""
    loops = _splits(monkeypatch)
    blas = parallel._blas_funcs()
    if np.dtype(np.float32) not in blas.omatcopy:
        pytest.skip("this OpenBLAS has no omatcopy")
    monkeypatch.setattr(parallel, "_MIRROR_CORES", (blas.core,))
    return loops


@pytest.mark.parametrize(
    "m, k, n, parts",
    [(8, 256, 256, 0), (64, 512, 300, 0), (32, 1024, 1024, 2), (200, 512, 900, 2)],
)
def test_matmul_mirrors_few_rows_times_a_transposed_matrix(m, k, n, parts, monkeypatch, threads):
    """x @ w^T with few rows of x (a Linear layer's forward on a small batch) runs as
    (w @ x^T)^T, transposed back into a C-contiguous result: the product's values but for the
    last bits, split over the pool as large products are, into a given array too."""
    loops = _mirror_here(monkeypatch)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    assert parallel._mirrors(a, w.T, m, k, n, None)
    exact = a.astype(np.float64) @ w.T.astype(np.float64)
    for count in (1, 2):
        parallel.set_num_threads(count)
        got = parallel.matmul(a, w.T)
        assert got.dtype == np.float32 and got.shape == (m, n) and got.flags.c_contiguous
        _assert_product_close(got, exact.astype(np.float32))
        out = np.full((m, n), np.nan, dtype=np.float32)
        assert parallel.matmul(a, w.T, out) is out
        np.testing.assert_array_equal(out, got)
    assert loops == [parts] * 2 if parts else loops == []


def test_matmul_mirrors_only_where_it_measured_faster(monkeypatch, threads):
    _mirror_here(monkeypatch)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((1024, 1024)).astype(np.float32)
    x = rng.standard_normal((32, 1024)).astype(np.float32)
    ok = np.empty((32, 1024), np.float32)
    declined = {
        "a vector's row": (x[:1], w.T, None),
        "512 rows": (np.ones((512, 1024), np.float32), w.T, None),
        "float64": (x.astype(np.float64), w.T.astype(np.float64), None),
        "b not transposed": (x, w, None),
        "a not C-contiguous": (np.asfortranarray(x), w.T, None),
        "too few columns": (x, w.T[:, :200], None),
        "too short a sum": (x[:, :128], w.T[:128], None),
        "an F-ordered out": (x, w.T, np.empty((32, 1024), np.float32, order="F")),
        "out overlaps a": (np.ones((32, 1024), np.float32), w.T, None),
    }
    a_out = declined["out overlaps a"][0]
    declined["out overlaps a"] = (a_out, w.T, a_out)
    for name, (a, b, out) in declined.items():
        m, k = a.shape
        assert not parallel._mirrors(a, b, m, k, b.shape[1], out), name
    assert parallel._mirrors(x, w.T, 32, 1024, 1024, ok)
    monkeypatch.setattr(parallel, "_MIRROR_CORES", ("no such core",))
    assert not parallel._mirrors(x, w.T, 32, 1024, 1024, ok)  # other kernels: never


def test_linear_on_a_small_batch_mirrors_and_matches_float64(monkeypatch, threads):
    loops = _mirror_here(monkeypatch)
    parallel.set_num_threads(2)
    rng = np.random.default_rng(2)
    layer = nn.Linear(1024, 1024)
    x = rg.tensor(rng.standard_normal((32, 1024)).astype(np.float32), requires_grad=True)
    out = layer(x)
    assert out.is_contiguous() and loops == [2]
    w, b = (p.detach().numpy().astype(np.float64) for p in (layer.weight, layer.bias))
    exact = x.detach().numpy().astype(np.float64) @ w.T + b
    np.testing.assert_allclose(out.detach().numpy(), exact, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones((32, 1024)) @ w, rtol=1e-5, atol=1e-4)


def test_matmul_leaves_the_rest_to_numpy(monkeypatch, threads):
    loops = _splits(monkeypatch)
    parallel.set_num_threads(2)
    rng = np.random.default_rng(1)
    big = rng.standard_normal((512, 512)).astype(np.float32)
    small = big[:64, :64]
    cases = [
        (small, small),  # below SPLIT_MACS
        (big.astype(np.int64), big.astype(np.int64)),  # not floating point
        (big, big.astype(np.float64)),  # mixed dtypes: NumPy's promotion
        (big[None], big),  # a stack of matrices
        (big, big[0]),  # a vector
    ]
    for a, b in cases:
        np.testing.assert_array_equal(parallel.matmul(a, b), a @ b)
    with pytest.raises(ValueError, match="mismatch"):
        parallel.matmul(big, big[:10])
    for out in (np.empty((32, 32), np.float32), np.empty((512, 512), np.float32, order="F")):
        a = big[: len(out), : len(out)]  # too small, or an output NumPy must write by columns
        assert parallel.matmul(a, a, out) is out
        np.testing.assert_array_equal(out, a @ a)
    assert loops == []
    t = rg.tensor(big)  # not an array: the operator, whose op splits the arrays' product
    np.testing.assert_allclose(parallel.matmul(t, t).numpy(), big @ big, rtol=1e-5, atol=1e-4)
    assert loops == [2]


def test_matmul_leaves_large_products_to_openblas_while_its_threads_spin(monkeypatch, threads):
    """After products OpenBLAS threaded (a recurrent loop's steps), its threads spin for about
    0.1 s: a split would fight them for the cores, so large products go to OpenBLAS meanwhile;
    those do not extend the wait, which ends with the spinning."""
    loops = _splits(monkeypatch)
    parallel.set_num_threads(2)
    big = np.ones((1024, 256), dtype=np.float32)
    medium = np.ones((128, 128), dtype=np.float32)  # OpenBLAS threads it
    parallel.matmul(medium, medium)
    parallel.matmul(big, big.T)
    assert loops == []
    monkeypatch.setattr(parallel, "_blas_spinning_until", 0.0)
    parallel.matmul(big, big.T)
    assert loops == [2]
    gru = nn.GRU(8, 16)
    gru(rg.zeros(5, 3, 8))  # the loop says OpenBLAS ran its steps
    parallel.matmul(big, big.T)
    assert loops == [2]


def _needs_gemm_batch(dtype=np.float32) -> None:
    if np.dtype(dtype) not in parallel._blas_funcs().gemm_batch:
        pytest.skip(f"NumPy's BLAS has no {np.dtype(dtype)} gemm_batch here")


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(
    "m, k, n, dtype",
    [
        (128, 784, 256, np.float32),  # W2's first layer: by columns
        (256, 128, 784, np.float32),  # its weight gradient, read transposed: by rows
        (1024, 321, 32, np.float32),  # the LSTM's step product at W5's sizes
        (64, 512, 700, np.float32),  # one tile of rows: by columns, a transposed or not
        (200, 300, 130, np.float64),  # uneven pieces
    ],
)
def test_medium_products_run_as_one_piece_a_thread(
    m, k, n, dtype, layout, monkeypatch, threads, gemm_batch_calls
):
    """Between ~4M multiply-adds and SPLIT_MACS, on two threads, a product runs as two
    one-thread pieces of whole 64-row (or column) tiles, handed to OpenBLAS's gemm_batch at
    once: the product's values but for the last bits, into a given array too; the pool is
    not used, and on one thread the BLAS's own product runs."""
    _needs_gemm_batch(dtype)
    calls = gemm_batch_calls
    loops = _splits(monkeypatch)
    rng = np.random.default_rng(0)
    a = LAYOUTS[layout](rng.standard_normal((m, k)).astype(dtype))
    b = LAYOUTS[layout](rng.standard_normal((k, n)).astype(dtype))
    parallel.set_num_threads(1)
    one = parallel.matmul(a, b)
    assert calls == []
    parallel.set_num_threads(2)
    two = parallel.matmul(a, b)
    assert calls == [2] and loops == []  # (rows of unit stride read in place, any spacing)
    assert two.dtype == dtype and two.shape == (m, n) and two.flags.c_contiguous
    _assert_product_close(two, one)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(two, want, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-3)
    out = np.full((m, n), np.nan, dtype=dtype)
    assert parallel.matmul(a, b, out) is out
    np.testing.assert_array_equal(out, two)


def test_small_pieces_never_reach_gemm_batch(monkeypatch, threads, gemm_batch_calls):
    """OpenBLAS's gemm_batch runs pieces of at most 100^3 multiply-adds on small-matrix
    kernels that crash in NumPy's builds: a product whose pieces would be that small, or
    that has one piece only, goes to the BLAS's own product, and so does a product into a
    Fortran-order or overlapping array."""
    _needs_gemm_batch()
    calls = gemm_batch_calls
    parallel.set_num_threads(2)
    rng = np.random.default_rng(2)
    for m, k, n in ((64, 256, 256), (128, 100, 100), (60, 4000, 64), (2048, 64, 16)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        _assert_product_close(parallel.matmul(a, b), a @ b)
        assert parallel._batched(a, b, m, k, n, None, 2) is None
        run = parallel.add_matmul_into(a, n)
        c = np.zeros((m, n), np.float32)
        run(b.ctypes.data, c.ctypes.data)
        _assert_product_close(c, a @ b)
    assert calls == []
    a = rng.standard_normal((256, 512)).astype(np.float32)
    out = np.empty((256, 256), np.float32, order="F")
    assert parallel._batched(a, a.T, 256, 512, 256, out, 2) is None
    square = np.ones((256, 256), np.float32)
    assert parallel._batched(square, square, 256, 256, 256, square, 2) is None
    assert calls == []


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_prepared_products_in_pieces_write_or_add(beta, threads, gemm_batch_calls):
    """add_matmul_into on two threads, at the LSTM's sizes: its pieces (one a thread) write
    (beta 0) or add (beta 1) a @ b into blocks given by address, and leave the rest alone."""
    _needs_gemm_batch()
    calls = gemm_batch_calls
    parallel.set_num_threads(2)
    rng = np.random.default_rng(5)
    for a in (
        rng.standard_normal((1024, 321)).astype(np.float32),
        np.asfortranarray(rng.standard_normal((256, 1024)).astype(np.float32)),
    ):
        m, k = a.shape
        bs = rng.standard_normal((3, k, 32)).astype(np.float32)
        cs = rng.standard_normal((3, m, 32)).astype(np.float32)
        before = cs.copy()
        run = parallel.add_matmul_into(a, 32, beta=beta)
        calls.clear()
        run(bs.ctypes.data + bs.strides[0], cs.ctypes.data + 2 * cs.strides[0])
        assert calls == [2]
        want = beta * before[2].astype(np.float64) + a.astype(np.float64) @ bs[1]
        np.testing.assert_allclose(cs[2], want, rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(cs[:2], before[:2])


@pytest.mark.parametrize("count", [1, 2])
def test_gemm_group_runs_several_products_in_one_call(count, threads, gemm_batch_calls):
    """gemm_group: products of other shapes, layouts and betas in one gemm_batch call, each
    at the addresses it is given; a product large enough for two threads in one piece a
    thread, by rows. None for products gemm_batch's crashing small path could take, for
    operands the BLAS cannot read in place, and for anything but NumPy arrays."""
    _needs_gemm_batch()
    calls = gemm_batch_calls
    parallel.set_num_threads(count)
    rng = np.random.default_rng(7)
    w = rng.standard_normal((256, 1024)).astype(np.float32)  # the LSTM's step product
    gz = rng.standard_normal((3, 1024, 32)).astype(np.float32)
    rhs = rng.standard_normal((3, 321, 32)).astype(np.float32)  # read transposed
    dh = rng.standard_normal((3, 256, 32)).astype(np.float32)
    total = rng.standard_normal((1024, 321)).astype(np.float32)
    w_in = rng.standard_normal((1024, 64)).astype(np.float32)
    gx = np.full((3, 32, 64), np.nan, np.float32)
    run = parallel.gemm_group([(w, gz[0], 1.0), (gz[0], rhs[0].T, 1.0), (gz[0].T, w_in, 0.0)])
    want_dh = dh[1].astype(np.float64) + w.astype(np.float64) @ gz[2]
    want_total = total.astype(np.float64) + gz[2].astype(np.float64) @ rhs[0].T
    before = dh.copy()
    run(
        (w.ctypes.data, gz[2].ctypes.data, dh[1].ctypes.data),
        (gz[2].ctypes.data, rhs[0].ctypes.data, total.ctypes.data),
        (gz[1].ctypes.data, w_in.ctypes.data, gx[2].ctypes.data),
    )
    assert calls == [5 if count == 2 else 3]  # 2 + 2 pieces and the last product whole
    np.testing.assert_allclose(dh[1], want_dh, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(dh[[0, 2]], before[[0, 2]])
    np.testing.assert_allclose(total, want_total, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(gx[2], gz[1].T.astype(np.float64) @ w_in, rtol=1e-4, atol=1e-3)
    assert np.isnan(gx[:2]).all()
    calls.clear()
    run((w.ctypes.data, gz[0].ctypes.data, dh[0].ctypes.data))  # the first products only
    assert calls == [2 if count == 2 else 1]
    small = rng.standard_normal((64, 100)).astype(np.float32)
    assert parallel.gemm_group([(small, small.T, 0.0)]) is None
    assert parallel.gemm_group([(w, gz[0][:, ::2], 0.0)]) is None  # no unit stride
    assert parallel.gemm_group([(w.tolist(), gz[0], 0.0)]) is None
    assert parallel.gemm_group([(w, gz[0].astype(np.float64), 0.0)]) is None
    assert parallel.gemm_group([]) is None


# -- axpy ---------------------------------------------------------------------------------------
def _axpy_or_skip(dtype):
    if np.dtype(dtype) not in parallel._blas_funcs().axpy:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")


@pytest.mark.parametrize("n", [1, 17, 10_007, 100_003])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_adds_in_place_rounding_once(n, dtype, threads):
    """y + alpha * x rounded once: the fused multiply-add, computed exactly in a wider type
    (float32: float64 holds the product exactly and rounds the sum once more in ~1 case in
    2^29, far fewer than these sizes); the BLAS's thread count is left as it was."""
    _axpy_or_skip(dtype)
    parallel.set_num_threads(2)
    rng = np.random.default_rng(n)
    x, y0 = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    y = y0.copy()
    assert parallel.axpy(-0.37, x, y)
    assert parallel.get_num_threads() == 2
    if dtype == np.float32:
        alpha = np.float64(np.float32(-0.37))
        exact = (y0.astype(np.float64) + alpha * x.astype(np.float64)).astype(np.float32)
        np.testing.assert_array_equal(y, exact)
    scale = (np.abs(y0) + 0.37 * np.abs(x)).max()
    np.testing.assert_allclose(y, y0 - 0.37 * x, rtol=0, atol=2 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("spinning", [True, False])
def test_axpy_shares_a_large_vector_with_threads_still_spinning(spinning, monkeypatch, threads):
    """From AXPY_SHARE_FROM elements, while OpenBLAS's threads still spin from a product, the
    axpy runs on them (no one-thread setting around it) and they spin on; else on one thread.
    The bits are the fused multiply-add's either way."""
    _axpy_or_skip(np.float32)
    parallel.set_num_threads(2)
    blas = parallel._blas_funcs()
    calls, real_set = [], blas.set
    monkeypatch.setattr(blas, "set", lambda n: (calls.append(n), real_set(n))[1])
    until = parallel._clock() + 60.0 if spinning else 0.0
    monkeypatch.setattr(parallel, "_blas_spinning_until", until)
    rng = np.random.default_rng(5)
    x, y0 = (rng.standard_normal(parallel.AXPY_SHARE_FROM + 3).astype(np.float32) for _ in "xy")
    y = y0.copy()
    assert parallel.axpy(-0.37, x, y)
    assert calls == ([] if spinning else [1, 2])
    if spinning:
        assert parallel._clock() < parallel._blas_spinning_until  # they spin on
    alpha = np.float64(np.float32(-0.37))
    exact = (y0.astype(np.float64) + alpha * x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(y, exact)


def test_axpy_declines_what_it_cannot_do():
    _axpy_or_skip(np.float32)
    a = np.ones((8, 8), dtype=np.float32)
    cases = [
        (a, a.T.copy()[:, ::2]),  # not contiguous
        (a, np.ones((8, 8))),  # dtypes differ
        (a.astype(np.int64), np.ones((8, 8), dtype=np.int64)),  # not floating point
        (a, np.ones(64, dtype=np.float32)),  # shapes differ
        (a, a),  # the same memory
        (a[:4], a[2:6]),  # overlapping memory
        ([1.0], [2.0]),  # not arrays
    ]
    for x, y in cases:
        before = np.array(y, copy=True)
        assert parallel.axpy(2.0, x, y) is False
        np.testing.assert_array_equal(np.asarray(y), before)
    frozen = np.ones(4, dtype=np.float32)
    frozen.flags.writeable = False
    assert parallel.axpy(1.0, np.ones(4, dtype=np.float32), frozen) is False


def _gemm_or_skip(dtype):
    if np.dtype(dtype) not in parallel._blas_funcs().gemm:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_matmul_into_adds_at_the_given_addresses(dtype):
    """The prepared product adds a @ b[j] into c[i] for blocks of larger arrays given by address
    (the LSTM's loop), and leaves every other block as it was; a stored transposed too;
    declined where it cannot."""
    _gemm_or_skip(dtype)
    rng = np.random.default_rng(7)
    a = rng.standard_normal((5, 7)).astype(dtype)
    bs = rng.standard_normal((3, 7, 4)).astype(dtype)
    cs = rng.standard_normal((4, 5, 4)).astype(dtype)
    before = cs.copy()
    run = parallel.add_matmul_into(a, 4)
    assert run is not None
    for i, j in ((2, 1), (0, 2), (2, 0)):
        run(bs.ctypes.data + j * bs.strides[0], cs.ctypes.data + i * cs.strides[0])
    want = before.astype(np.float64)
    for i, j in ((2, 1), (0, 2), (2, 0)):
        want[i] += a.astype(np.float64) @ bs[j].astype(np.float64)
    tol = 64 * np.finfo(dtype).eps * (1 + np.abs(want))
    assert (np.abs(cs - want) <= tol).all()
    np.testing.assert_array_equal(cs[[1, 3]], before[[1, 3]])
    at = np.asfortranarray(a)  # the same matrix stored transposed
    c = np.zeros((5, 4), dtype=dtype)
    parallel.add_matmul_into(at, 4)(bs.ctypes.data, c.ctypes.data)
    assert (np.abs(c - a.astype(np.float64) @ bs[0]) <= tol[0]).all()
    assert parallel.add_matmul_into(a[:, ::2], 4) is None  # no unit stride either way
    assert parallel.add_matmul_into(a.astype(np.int64), 4) is None
    assert parallel.add_matmul_into(a[None], 4) is None
    assert parallel.add_matmul_into([[1.0]], 1) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_into_writes_the_transpose(dtype):
    """a.T into an array or a column slice of a wider one (the rest untouched); declined where
    the BLAS cannot, out untouched."""
    if np.dtype(dtype) not in parallel._blas_funcs().omatcopy:
        pytest.skip("NumPy's BLAS has no omatcopy here")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 4)).astype(dtype)
    wide = rng.standard_normal((4, 9)).astype(dtype)
    before = wide.copy()
    assert parallel.transpose_into(a, wide[:, 2:8])
    np.testing.assert_array_equal(wide[:, 2:8], a.T)
    np.testing.assert_array_equal(wide[:, :2], before[:, :2])
    np.testing.assert_array_equal(wide[:, 8:], before[:, 8:])
    src = rng.standard_normal((8, 5)).astype(dtype)
    out = np.zeros((5, 3), dtype=dtype)
    assert parallel.transpose_into(src[1:7:2], out)  # rows of a strided selection
    np.testing.assert_array_equal(out, src[1:7:2].T)
    assert parallel.transpose_into(np.ones((0, 3), dtype), np.ones((3, 0), dtype))
    out = np.zeros((4, 6), dtype=dtype)
    for x, y in (
        (a[:, ::2], out[:2]),
        (a, out.astype(np.float16)),
        (a, out[:3]),
        (a, np.zeros((6, 4), dtype).T),
    ):
        before = np.array(y, copy=True)
        assert parallel.transpose_into(x, y) is False
        np.testing.assert_array_equal(y, before)


# -- ops: the same bits on one thread and on two ------------------------------------------------
def _run(fn, nthreads, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 1 << 10)
    monkeypatch.setattr(parallel, "_blas_spinning_until", 0.0)
    parallel.set_num_threads(nthreads)
    return fn()


def _grads(model, x, y, loss_fn):
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    return [loss.detach().numpy().copy()] + [p.grad.numpy().copy() for p in model.parameters()]


def _cnn_step():
    rg.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.GELU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 10),
    )
    rng = np.random.default_rng(1)
    x = rg.tensor(rng.standard_normal((20, 1, 28, 28)).astype(np.float32))
    y = rg.tensor(rng.integers(0, 10, 20))
    return _grads(model, x, y, F.cross_entropy)


def _optimizer_steps(make):
    rng = np.random.default_rng(2)
    p = nn.Parameter(rg.tensor(rng.standard_normal((600, 700)).astype(np.float32)))
    opt = make([p])
    for _ in range(3):
        p.grad = rg.tensor(rng.standard_normal((600, 700)).astype(np.float32))
        opt.step()
    return [p.detach().numpy().copy()]


def _causal_attention():
    rng = np.random.default_rng(3)
    q, k, v = (
        rg.tensor(rng.standard_normal((6, 3, 70, 8)).astype(np.float32), requires_grad=True)
        for _ in range(3)
    )
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    (out * rg.tensor(rng.standard_normal(out.shape).astype(np.float32))).sum().backward()
    return [out.detach().numpy().copy()] + [t.grad.numpy().copy() for t in (q, k, v)]


def _linear_and_matmul():
    """Linear on a batch of sequences and a 2-D matmul, each product large enough to split."""
    rg.manual_seed(0)
    rng = np.random.default_rng(4)
    x = rg.tensor(rng.standard_normal((4, 128, 256)).astype(np.float32), requires_grad=True)
    layer = nn.Linear(256, 300)
    m = rg.tensor(rng.standard_normal((300, 400)).astype(np.float32), requires_grad=True)
    out = layer(x).reshape(-1, 300) @ m
    (out * rg.tensor(rng.standard_normal(out.shape).astype(np.float32))).sum().backward()
    grads = [t.grad.numpy().copy() for t in (x, m, layer.weight, layer.bias)]
    return [out.detach().numpy().copy()] + grads


def test_linear_and_matmul_on_one_and_two_threads(monkeypatch, threads):
    loops = _splits(monkeypatch)
    one = _run(_linear_and_matmul, 1, monkeypatch)
    assert loops == []
    two = _run(_linear_and_matmul, 2, monkeypatch)
    assert len(loops) == 6  # forward, and both gradients, of each
    for a, b in zip(two, one, strict=True):
        _assert_product_close(a, b)


CASES = {
    "causal attention: output and the three gradients": _causal_attention,
    "conv, relu, maxpool, gelu, linear: loss and every gradient": _cnn_step,
    "SGD": lambda: _optimizer_steps(lambda ps: optim.SGD(ps, lr=0.1)),
    "SGD momentum nesterov weight decay": lambda: _optimizer_steps(
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    ),
    "Adam amsgrad": lambda: _optimizer_steps(lambda ps: optim.Adam(ps, amsgrad=True)),
    "AdamW": lambda: _optimizer_steps(lambda ps: optim.AdamW(ps)),
    "RMSprop centered momentum": lambda: _optimizer_steps(
        lambda ps: optim.RMSprop(ps, centered=True, momentum=0.5)
    ),
    "Adagrad": lambda: _optimizer_steps(lambda ps: optim.Adagrad(ps)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ops_give_the_same_bits_on_one_and_two_threads(case, monkeypatch, threads):
    one = _run(CASES[case], 1, monkeypatch)
    two = _run(CASES[case], 2, monkeypatch)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    COUNTS["ops bitwise equal on 1 and 2 threads"] += 1
