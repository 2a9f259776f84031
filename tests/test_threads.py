"""Threads: grad mode and anomaly mode are thread-local, as in PyTorch, and two threads training
two models concurrently get bitwise the same results as running them one after the other.

Each model draws its dropout masks and data order from its own Generator: the default generator
is shared by all threads (as torch's is), so concurrent users of it would race by design.
"""

from __future__ import annotations

import hashlib
import threading
import traceback

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.autograd import detect_anomaly, is_anomaly_enabled
from retrograd.data import DataLoader, TensorDataset
from retrograd.nn import functional as F

COUNTS = {"concurrent runs matching sequential ones": 0}


def teardown_module(module):
    print(
        f"\nthreads: {COUNTS['concurrent runs matching sequential ones']} concurrent runs matched"
    )


def _in_threads(*targets, timeout: float = 300):
    """Run each target in its own thread, released together; re-raise the first failure."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)
    errors: list = []

    def wrap(i, fn):
        try:
            barrier.wait(10)
            results[i] = fn()
        except BaseException:  # noqa: BLE001 - reported in the main thread
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors[0]
    return results


# -- thread-local modes ---------------------------------------------------------------------
def test_grad_mode_is_thread_local():
    inside, entered, release = {}, threading.Event(), threading.Event()

    def other():
        inside["start"] = rg.is_grad_enabled()
        with rg.no_grad():
            entered.set()
            release.wait(10)
            x = rg.ones(2, requires_grad=True)
            inside["recorded_in_no_grad"] = (x * 2).requires_grad
        inside["end"] = rg.is_grad_enabled()

    t = threading.Thread(target=other)
    with rg.no_grad():
        t.start()
        entered.wait(10)
        assert not rg.is_grad_enabled()  # ours, still off
        with rg.enable_grad():
            x = rg.ones(2, requires_grad=True)
            assert (x * 2).requires_grad  # the other thread's no_grad does not reach us
        release.set()
        t.join(10)
    assert rg.is_grad_enabled()
    assert inside == {"start": True, "recorded_in_no_grad": False, "end": True}


def test_inference_mode_and_set_grad_enabled_are_thread_local():
    seen = {}

    def other():
        seen["grad"] = rg.is_grad_enabled()
        seen["inference"] = rg.is_inference_mode_enabled()

    with rg.inference_mode():
        t = threading.Thread(target=other)
        t.start()
        t.join(10)
    assert seen == {"grad": True, "inference": False}
    rg.set_grad_enabled(False)
    try:
        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        assert seen["grad"] is True
    finally:
        rg.set_grad_enabled(True)


def test_anomaly_mode_is_thread_local_and_records_traces_only_where_on():
    def with_anomaly():
        with detect_anomaly():
            assert is_anomaly_enabled()
            y = rg.exp(rg.ones(3, requires_grad=True))
            for _ in range(200):
                y = y * 1.0
            return y.grad_fn._trace is not None

    def without():
        traced = False
        for _ in range(200):
            assert not is_anomaly_enabled()
            y = rg.exp(rg.ones(3, requires_grad=True)) * 1.0
            traced |= y.grad_fn._trace is not None
        return traced

    assert _in_threads(with_anomaly, without) == [True, False]
    assert not is_anomaly_enabled()


# -- concurrent training --------------------------------------------------------------------
def _digest(model, losses) -> str:
    h = hashlib.sha256(np.array(losses, np.float64).tobytes())
    for k, v in model.state_dict().items():
        h.update(k.encode() + np.ascontiguousarray(v.numpy()).tobytes())
    return h.hexdigest()


def _job(seed: int, steps: int = 300, evaluate_every: int = 0, double_backward: bool = False):
    """Build a model (own generators for init, dropout and shuffling) and a function that trains
    it and returns the digest of its losses and weights."""
    gen = rg.Generator().manual_seed(seed)
    data_gen = rg.Generator().manual_seed(seed + 100)
    x = rg.randn(256, 12, generator=gen)
    y = rg.tensor((x.numpy()[:, :4].sum(1) > 0).astype(np.int64))
    lin1, lin2 = nn.Linear(12, 48), nn.Linear(48, 2)
    with rg.no_grad():
        for p in (*lin1.parameters(), *lin2.parameters()):
            p.data[...] = rg.randn(*p.shape, generator=gen).numpy() * 0.2
    model = nn.Sequential(lin1, nn.ReLU(), nn.Dropout(0.25, generator=gen), lin2)
    opt = optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=data_gen)

    def train() -> str:
        losses = []
        while len(losses) < steps:
            for xb, yb in loader:
                model.train()
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                if double_backward:  # a gradient penalty: backward with create_graph=True
                    (g,) = rg.autograd.grad(loss, lin1.weight, create_graph=True)
                    loss = loss + 0.01 * (g * g).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                if evaluate_every and len(losses) % evaluate_every == 0:
                    model.eval()
                    with rg.no_grad():  # this thread's no_grad must not reach the other one
                        losses.append(F.cross_entropy(model(x), y).item())
                if len(losses) >= steps:
                    break
        return _digest(model, losses)

    return train


@pytest.mark.parametrize(
    "variant",
    [
        "two trainers",
        "one evaluates under no_grad meanwhile",
    ],
)
def test_two_threads_train_bitwise_like_sequential_runs(variant):
    kwargs = [{}, {"evaluate_every": 3}] if variant != "two trainers" else [{}, {}]
    sequential = [_job(seed, **kw)() for seed, kw in zip((1, 2), kwargs)]
    assert sequential[0] != sequential[1]
    for _ in range(2):
        concurrent = _in_threads(*(_job(seed, **kw) for seed, kw in zip((1, 2), kwargs)))
        assert concurrent == sequential
        COUNTS["concurrent runs matching sequential ones"] += 2


def _backward_state_is_thread_local() -> bool:
    from retrograd.autograd.function import _bstate

    return isinstance(_bstate, threading.local)


def test_a_plain_backward_during_another_threads_double_backward():
    """Deterministic: thread B pauses inside a plain backward (in a hook); thread A then pauses
    inside a create_graph=True backward; B resumes while A's is in flight. B must still compute
    on plain arrays and get the right gradient."""
    b_inside, a_inside, b_done = threading.Event(), threading.Event(), threading.Event()

    def double():
        b_inside.wait(10)
        x = rg.tensor([1.0, 2.0], requires_grad=True)
        y = x * x

        def pause(g):
            a_inside.set()
            b_done.wait(10)
            return g

        y.register_hook(pause)
        (g,) = rg.autograd.grad(y.sum(), x, create_graph=True)
        return g.requires_grad

    def plain():
        try:
            w = rg.tensor([3.0], requires_grad=True)
            v = w * w

            def pause(g):
                b_inside.set()
                a_inside.wait(10)
                return g

            v.register_hook(pause)
            v.sum().backward()
            return w.grad.numpy().tolist(), type(w.grad.data).__name__
        finally:
            b_done.set()

    assert _in_threads(double, plain) == [True, ([6.0], "ndarray")]


def test_backward_state_is_thread_local():
    assert _backward_state_is_thread_local()


def test_double_backward_in_one_thread_while_another_trains():
    kwargs = [{}, {"double_backward": True}]
    sequential = [_job(seed, **kw)() for seed, kw in zip((1, 2), kwargs)]
    concurrent = _in_threads(*(_job(seed, **kw) for seed, kw in zip((1, 2), kwargs)))
    assert concurrent == sequential
    COUNTS["concurrent runs matching sequential ones"] += 2


def test_four_threads_of_small_graphs_agree_with_one():
    """Many short graphs interleaved at fine grain (the GIL switches between every few ops)."""

    def work(seed):
        def run():
            gen = rg.Generator().manual_seed(seed)
            x = rg.randn(8, 8, generator=gen, requires_grad=True)
            total = 0.0
            for _ in range(400):
                y = rg.tanh(x @ x.T).sum(1).softmax(0).log().sum()
                x.grad = None
                y.backward()
                total += float(x.grad.numpy().sum())
            return total

        return run

    expected = [work(s)() for s in range(4)]
    assert _in_threads(*(work(s) for s in range(4))) == expected
