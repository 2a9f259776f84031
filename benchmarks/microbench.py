"""Micro-benchmarks of per-op cost: op dispatch, and a W1-sized training step (2-16-16-1 MLP,
tanh, batch 32, MSE, SGD), retrograd next to PyTorch eager on the CPU.

    python benchmarks/microbench.py
"""

from __future__ import annotations

import time

import numpy as np

import retrograd as rg

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    torch = None


def _median_us(fn, repeat: int = 7, number: int = 2000) -> float:
    for _ in range(number // 10):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number * 1e6)
    return float(np.median(times))


def _w1(lib, data):
    """One W1 training step for `lib` (retrograd or torch) and its parameters."""
    x, y, params = data
    w1, b1, w2, b2, w3, b3 = params

    def step():
        h = lib.tanh(x @ w1 + b1)
        h = lib.tanh(h @ w2 + b2)
        out = h @ w3 + b3
        loss = ((out - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with lib.no_grad():
            for p in params:
                p -= 0.01 * p.grad
        return loss

    return step


def _w1_data(lib, rng):
    shapes = [(2, 16), (16,), (16, 16), (16,), (16, 1), (1,)]
    arrays = [rng.standard_normal(s).astype(np.float32) * 0.5 for s in shapes]
    x = rng.standard_normal((32, 2)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    params = [lib.tensor(a, requires_grad=True) for a in arrays]
    return lib.tensor(x), lib.tensor(y), params


def main() -> None:
    rng = np.random.default_rng(0)
    a = rg.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    b = rg.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    rows = [("add, 4x4, requires_grad", _median_us(lambda: a + b), None)]
    with rg.no_grad():
        rows.append(("add, 4x4, no_grad", _median_us(lambda: a + b), None))
    rows.append(("matmul, 4x4, requires_grad", _median_us(lambda: a @ b), None))

    def fwd_bwd():
        (a * b).sum().backward()

    rows.append(("mul+sum+backward, 4x4", _median_us(fwd_bwd, number=1000), None))
    rows.append(
        ("W1 step (2-16-16-1, batch 32)", _median_us(_w1(rg, _w1_data(rg, rng)), number=500), None)
    )

    if torch is not None:
        ta = torch.tensor(a.data, requires_grad=True)
        tb = torch.tensor(b.data, requires_grad=True)
        tvals = [_median_us(lambda: ta + tb)]
        with torch.no_grad():
            tvals.append(_median_us(lambda: ta + tb))
        tvals.append(_median_us(lambda: ta @ tb))

        def tfwd_bwd():
            (ta * tb).sum().backward()

        tvals.append(_median_us(tfwd_bwd, number=1000))
        tvals.append(_median_us(_w1(torch, _w1_data(torch, np.random.default_rng(0))), number=500))
        rows = [(n, r, t) for (n, r, _), t in zip(rows, tvals)]

    print(f"{'workload':36s} {'retrograd us':>13s} {'torch us':>10s} {'ratio':>7s}")
    for name, r, t in rows:
        ts = f"{t:10.1f}" if t is not None else f"{'n/a':>10s}"
        ratio = f"{r / t:7.2f}" if t else f"{'n/a':>7s}"
        print(f"{name:36s} {r:13.1f} {ts} {ratio}")


if __name__ == "__main__":
    main()
