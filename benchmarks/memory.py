"""Memory-efficient backprop, measured: bytes held for backward and step time.

    python benchmarks/memory.py [--quick] [--json PATH] [--repeats N] [--threads N]

Two workloads, each run plainly, checkpointed and reversibly:

* MLP: 32 x (Linear(256, 256) + ReLU), batch 128. Reversible: 16 RevNet blocks whose F and G are
  Linear(128, 128) + ReLU (32 layers on half the width: 1/2 the parameters and FLOPs of the MLP,
  so compare its time with its own stored version).
* Transformer: 8 TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=256, dropout=0.1),
  sequence 64, batch 8. Reversible (Reformer-style): 8 blocks with F = LayerNorm + attention and
  G = LayerNorm + feed-forward, each on 32 of the 64 features.

Rows: plain; checkpoint_sequential with round(sqrt(n)) segments (PyTorch's layout: the last
segment is not recomputed); the same segments all checkpointed; the planner's plan for a budget
of a quarter of plain's peak (two-level when no one-level plan fits); its smallest-peak plan;
the reversible network stored (plain backprop) and reversible.

Columns: "after fwd" is what the graph holds for backward when the forward ends ("graph keeps":
that plus the output arrays nodes still hold: only where a rule reads its output, or under
retrograd.diagnostics.keep_values); "peak" also
samples every recomputation inside the backward (held inputs + the recomputed segment's graph),
i.e. the peak of bytes held for backward over the whole step (retrograd.autograd.memory). Step
time: the fastest of `--repeats` steps (forward + backward, float32, CPU), the variants taking
turns; the median is in the JSON. BLAS runs on one thread unless --threads says otherwise
(threadpoolctl; many threads on a busy machine make the timings meaningless).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import retrograd as rg
from retrograd import nn
from retrograd.autograd.memory import saved_tensors_bytes, track_saved_memory
from retrograd.nn.layers.reversible import ReversibleBlock, ReversibleSequence
from retrograd.utils import checkpoint_sequential, plan_segments
from retrograd.utils.checkpoint import _as_plan


class _SelfAttention(nn.Module):
    """LayerNorm then self-attention: the F of a reversible Transformer block."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        h = self.norm(x)
        return self.drop(self.attn(h, h, h, need_weights=False)[0])


def _feed_forward(dim: int, hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, dim),
        nn.Dropout(dropout),
    )


def mlp_workload(quick: bool):
    depth, width, batch = (8, 64, 32) if quick else (32, 256, 128)
    rg.manual_seed(0)
    plain = nn.Sequential(
        *[nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(depth)]
    )
    half = width // 2
    rev = ReversibleSequence(
        [
            ReversibleBlock(
                nn.Sequential(nn.Linear(half, half), nn.ReLU()),
                nn.Sequential(nn.Linear(half, half), nn.ReLU()),
            )
            for _ in range(depth // 2)
        ]
    )
    x = rg.randn(batch, width)
    return f"MLP {depth}x{width}, batch {batch}", plain, rev, x


def transformer_workload(quick: bool):
    layers, d, heads, ff, seq, batch = (2, 32, 4, 64, 16, 4) if quick else (8, 64, 4, 256, 64, 8)
    rg.manual_seed(0)
    plain = nn.Sequential(
        *[
            nn.TransformerEncoderLayer(d, heads, dim_feedforward=ff, dropout=0.1)
            for _ in range(layers)
        ]
    )
    rev = ReversibleSequence(
        [
            ReversibleBlock(_SelfAttention(d // 2, heads, 0.1), _feed_forward(d // 2, ff // 2, 0.1))
            for _ in range(layers)
        ]
    )
    x = rg.randn(seq, batch, d)
    return f"Transformer {layers} layers, d={d}, seq {seq}, batch {batch}", plain, rev, x


def _step(run, x, params) -> tuple:
    for p in params:
        p.grad = None
    with track_saved_memory() as mem:
        y = run(x)
        after = mem.sample(y)
        alive = saved_tensors_bytes(y, include_outputs=True)
        (y * y).mean().backward()
    return after, mem.peak, alive


def _one_step(run, x, params) -> float:
    for p in params:
        p.grad = None
    t0 = time.perf_counter()
    y = run(x)
    (y * y).mean().backward()
    return time.perf_counter() - t0


def measure(name, plain, rev, x, repeats: int) -> list[dict]:
    n = len(plain)
    k = max(1, round(math.sqrt(n)))
    pytorch_layout = _as_plan(n, k)
    all_segments = [(s, e, True) for s, e, _ in _as_plan(n, k)]
    smallest, quarter = _planner_rows(plain, x)
    rows = []
    variants = [
        ("plain", plain, lambda h: plain(h)),
        (
            f"checkpoint, {k} segments (last plain)",
            plain,
            lambda h: checkpoint_sequential(plain, pytorch_layout, h),
        ),
        (
            f"checkpoint, {k} segments (all)",
            plain,
            lambda h: checkpoint_sequential(plain, all_segments, h),
        ),
        (
            f"checkpoint, planner, peak/4 budget ({_describe(quarter)})",
            plain,
            lambda h: checkpoint_sequential(plain, quarter, h),
        ),
        (
            f"checkpoint, planner min peak ({_describe(smallest)})",
            plain,
            lambda h: checkpoint_sequential(plain, smallest, h),
        ),
        ("reversible net, stored", rev, None),
        ("reversible net, reversible", rev, None),
    ]
    runs = []
    for label, model, run in variants:
        if model is rev:
            reversible = label.endswith("reversible")
            run = _rev_runner(rev, reversible)  # noqa: PLW2901
        params = list(model.parameters())
        after, peak, alive = _step(run, x, params)
        runs.append((run, params))
        rows.append(
            {
                "workload": name,
                "variant": label,
                "parameters": sum(p.numel() for p in params),
                "saved_after_forward_bytes": after,
                "peak_saved_bytes": peak,
                "graph_keeps_after_forward_bytes": alive,
            }
        )
    # timing: the variants take turns, so that a busy machine slows them alike; the first round
    # warms up; the minimum is the least disturbed step (the median is kept in the JSON)
    times = [[] for _ in runs]
    for r in range(repeats + 1):
        for i, (run, params) in enumerate(runs):
            t = _one_step(run, x, params)
            if r:
                times[i].append(t)
    for row, ts in zip(rows, times):
        ts.sort()
        row["step_seconds"] = ts[0]
        row["step_seconds_median"] = ts[len(ts) // 2]
    base = rows[0]
    rev_base = next(r for r in rows if r["variant"] == "reversible net, stored")
    for r in rows:
        ref = rev_base if r["variant"].startswith("reversible") else base
        r["peak_vs_plain"] = base["peak_saved_bytes"] / max(1, r["peak_saved_bytes"])
        r["after_forward_vs_plain"] = base["saved_after_forward_bytes"] / max(
            1, r["saved_after_forward_bytes"]
        )
        r["time_vs_reference"] = r["step_seconds"] / ref["step_seconds"]
    return rows


def _rev_runner(rev, reversible: bool):
    def run(h):
        rev.reversible = reversible
        return rev(h)

    return run


def _planner_rows(model, x):
    """The planner's plans for the smallest peak it reaches and for a quarter of plain's."""
    from retrograd.utils.checkpoint import _layers, _measure, _Model, _smallest_budget

    n = len(_layers(model))
    counted = not (x.grad_fn is None and x.requires_grad)
    model_ = _Model(_measure(_layers(model), x), counted)
    lowest = _smallest_budget(model_, n)
    smallest = plan_segments(model, x, budget_bytes=lowest)
    plain_peak = model_.simulate([(0, n, False)])[0]
    # a small model may not fit a quarter at all: then the smallest peak it reaches
    return smallest, plan_segments(model, x, budget_bytes=max(plain_peak // 4, lowest))


def _describe(plan) -> str:
    nested = any(isinstance(c, list) for _, _, c in plan.segments)
    return f"{len(plan.segments)} seg., two-level" if nested else f"{len(plan.segments)} seg."


def _mib(b: int) -> str:
    return f"{b / 2**20:8.2f}"


def table(rows: list[dict]) -> str:
    head = (
        f"| {'workload':<44} | {'variant':<56} | {'params':>8} | after fwd MiB | "
        f"{'x less':>6} | peak MiB | {'x less':>6} | graph keeps MiB | step ms | time x |"
    )
    sep = "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"
    lines = [head, sep]
    for r in rows:
        lines.append(
            f"| {r['workload']:<44} | {r['variant']:<56} | {r['parameters']:>8} | "
            f"{_mib(r['saved_after_forward_bytes']):>12} | {r['after_forward_vs_plain']:>6.1f} | "
            f"{_mib(r['peak_saved_bytes'])} | {r['peak_vs_plain']:>6.1f} | "
            f"{_mib(r['graph_keeps_after_forward_bytes']):>15} | "
            f"{r['step_seconds'] * 1e3:>7.1f} | {r['time_vs_reference']:>6.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/memory.py", description="bytes held for backward and step time"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per variant")
    parser.add_argument(
        "--json", default="runs/memory.json", help="where the rows go as JSON ('' for nowhere)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1: steadier on a shared machine; 0 leaves them as they are)",
    )
    args = parser.parse_args(argv)
    limiter = None
    if args.threads:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: without it, set OPENBLAS_NUM_THREADS yourself
            print("threadpoolctl is not installed: BLAS threads left as they are")
        else:
            limiter = threadpool_limits(args.threads)
    rows = []
    for workload in (mlp_workload, transformer_workload):
        name, plain, rev, x = workload(args.quick)
        rows += measure(name, plain, rev, x, args.repeats)
    if limiter is not None:
        limiter.restore_original_limits()
    print(table(rows))
    print(
        "\n'x less': plain's bytes / the variant's (reversible rows too: against the plain "
        "network). 'graph keeps': the saved arrays plus the outputs nodes still hold\n"
        "(node._out, kept where a rule reads it). 'time x': step time / plain's (reversible: / "
        "its stored version's)."
    )
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        meta = {"python": platform.python_version(), "machine": platform.machine()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
