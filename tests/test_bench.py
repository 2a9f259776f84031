"""The benchmark harness (retrograd/bench): it runs, its JSON has the expected keys, the loss
check catches a wrong step, and it works without PyTorch. No timing is asserted."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

import retrograd
import retrograd.nn.functional as F
from retrograd.bench import alloc_count, runner
from retrograd.bench.workloads import WORKLOADS, make_arrays, missing, mlp_flops

READY = [wid for wid, w in WORKLOADS.items() if not missing(w)]


def _bench(tmp_path, *argv, in_process=True):
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    path = tmp_path / "results.json"
    args = ["--quick", "--threads", "1", "--json", str(path), *argv] + (
        ["--in-process"] if in_process else []
    )
    lines = []
    code = runner.run(parser.parse_args(args), out=lines.append, log=lambda msg: None)
    return code, "\n".join(lines), json.loads(path.read_text())


def test_quick_runs_every_workload_whose_layers_exist(tmp_path):
    pytest.importorskip("torch")
    assert {"W1", "W2", "W3"} <= set(READY)
    code, text, report = _bench(tmp_path, "--workloads", ",".join(WORKLOADS))
    assert code == 0, text
    assert {"version", "created", "quick", "lr", "loss_rtol", "settings", "passes"} <= set(report)
    assert report["quick"] is True and report["lr"] == 0.01
    (p,) = report["passes"]
    assert {"name", "env", "blas", "threads", "sgemm", "numpy", "torch", "workloads"} <= set(p)
    assert set(p["env"]) == {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    assert {"internal_api", "version", "num_threads"} <= set(p["blas"])
    assert p["sgemm"]["gflops"] > 0 and p["torch"]["threads"] == p["threads"]
    for wid in WORKLOADS:
        r = p["workloads"][wid]
        assert r["title"] == WORKLOADS[wid].title
        if wid not in READY:
            assert r["status"] == "n/a" and r["note"].startswith("needs retrograd.nn.")
            assert f"{wid}    n/a: needs retrograd." in text
            continue
        assert r["status"] == "ok", r
        assert r["ratio"] > 0
        assert r["loss_check"]["first_step"]["ok"] and r["loss_check"]["after_update"]["ok"]
        for lib in ("retrograd", "torch"):
            e = r["libs"][lib]
            assert {"ms_median", "ms_min", "ms_max", "ms_mean", "rounds", "peak_mb"} <= set(e)
            assert e["ms_min"] <= e["ms_max"]
        assert r["libs"]["retrograd"]["peak_mb"] > 0  # tracemalloc in-process
        if wid in ("W2", "W3"):
            assert r["flops_per_step"] == WORKLOADS[wid].flops
            assert r["libs"]["retrograd"]["gflops"] > 0 and "pct_of_peak" in r["libs"]["torch"]
    assert "sgemm peak" in text and "loss check" in text


def test_loss_check_catches_a_wrong_forward(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    real = F.mse_loss
    monkeypatch.setattr(F, "mse_loss", lambda input, target: real(input, target) * 1.001)
    code, text, report = _bench(tmp_path, "--workloads", "W1", "--no-memory")
    r = report["passes"][0]["workloads"]["W1"]
    assert code == 1 and r["status"] == "mismatch"
    assert r["loss_check"]["first_step"]["ok"] is False
    assert "MISMATCH" in text and "FAILED" in text


def test_loss_check_catches_a_wrong_update(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(retrograd.optim.SGD, "step", lambda self, closure=None: None)
    code, _, report = _bench(tmp_path, "--workloads", "W1", "--no-memory")
    check = report["passes"][0]["workloads"]["W1"]["loss_check"]
    assert code == 1
    assert check["first_step"]["ok"] is True and check["after_update"]["ok"] is False


def test_runs_without_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    code, text, report = _bench(tmp_path, "--workloads", "W1,W2")
    p = report["passes"][0]
    assert code == 0, text
    assert p["torch"] is None and p["torch_note"] == "torch not installed"
    for wid in ("W1", "W2"):
        r = p["workloads"][wid]
        assert r["status"] == "ok" and r["ratio"] is None and set(r["libs"]) == {"retrograd"}
        assert r["loss_check"]["first_step"]["ok"] is None
    rows = [line for line in text.splitlines() if line.startswith(("W1 ", "W2 "))]
    assert len(rows) == 2 and all(line.count("n/a") >= 3 for line in rows)  # torch, ratio, memory


def test_child_processes(tmp_path):
    # the worker protocol and the pass machinery; the alternation itself is the in-process code
    code, text, report = _bench(
        tmp_path,
        "--workloads",
        "W1",
        "--blas-env",
        "as-is",
        "--no-memory",
        "--no-torch",
        in_process=False,
    )
    assert code == 0, text
    (p,) = report["passes"]
    r = p["workloads"]["W1"]
    assert p["name"] == "as-is" and p["torch_note"] == "torch not measured (--no-torch)"
    assert r["status"] == "ok" and r["libs"]["retrograd"]["ms_median"] > 0
    assert p["sgemm_start"]["gflops"] > 0 and p["sgemm_end"]["gflops"] > 0
    # the children import retrograd from bytecode written as pip would (or the report says not)
    assert report["bytecode"].startswith("retrograd ") and report["bytecode"] in text


def test_a_block_leads_in_with_untimed_steps():
    worker = runner.Worker("W1", "retrograd", runner.Settings.for_run(quick=True))
    calls = []
    step = worker.run.step
    worker.run.step = lambda: calls.append(1) or step()
    assert len(worker.block(2)["wall"]) == 2 and len(calls) == 2  # no lead-in
    calls.clear()
    res = worker.block(2, lead_ms=1e-9)  # at least one untimed step, however short the lead
    assert len(res["wall"]) == len(res["cpu"]) == 2 and len(calls) == 3
    calls.clear()
    worker.block(1, lead_ms=30.0)  # steps until 30 ms have passed (W1: well under 1 ms each)
    assert len(calls) > 3
    assert runner.Settings().lead_ms > 0 and runner.Settings.for_run(quick=True).lead_ms == 0


def test_memory_measurement():
    settings = runner.Settings.for_run(quick=True)
    m = runner.memory_workload("W1", "retrograd", settings)
    assert m["peak_mb"] is not None and m["traced_mb"] > 0
    if sys.platform == "linux":
        assert "VmHWM" in m["method"]  # this process's heap gives pages back: the kernel's mark


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_the_memory_child_keeps_its_heap_and_reads_the_exact_rss():
    settings = runner.Settings.for_run(quick=True, mem_steps=3)
    children = runner._Children(dict(os.environ), settings, timeout=120)
    m = children.call("memory", extra_env=runner.HEAP_KEPT_ENV, workload="W2", lib="retrograd")
    assert m["method"].startswith("exact"), m
    reads = m["rss_mb"]
    assert len(reads) == 3 and reads == sorted(reads)  # the RSS never fell
    assert m["peak_mb"] == max(reads) > 2.0  # W2's parameters and gradients alone are 2.05 MB
    assert "traced_mb" not in m  # (the other child traces it)
    old = children.call("memory", extra_env=runner.RETURNED_ENV, workload="W2", lib="retrograd")
    assert "VmHWM" in old["method"] and old["traced_mb"] > 2.0


@pytest.fixture(scope="module")
def alloc_counter(tmp_path_factory):
    path = alloc_count.build(str(tmp_path_factory.mktemp("alloc")))
    if path is None:
        pytest.skip("the allocation counter needs Linux's glibc and a C compiler")
    return path


_COUNT_PROBE = """
import json
import numpy as np
import torch
from retrograd.bench.alloc_count import Counter
c = Counter.loaded()
out = {}
base = c.current()
a = np.ones(1 << 18, dtype=np.float32)  # 1 MB through malloc
out["numpy"] = c.current() - base
del a
out["numpy_freed"] = c.current() - base
torch.ones(1 << 18).sum()  # (torch's lazy set-up)
base = c.current()
c.reset_peak()
t = torch.ones(1 << 18)  # 1 MB through posix_memalign
del t
out["torch_peak"] = c.peak() - base
b = bytearray(100)
before = c.current()
b.extend(bytes(1 << 20))  # realloc to 1 MB and more
out["realloc"] = c.current() - before
print(json.dumps(out))
"""


def test_the_allocation_counter_counts_every_block_exactly(alloc_counter):
    pytest.importorskip("torch")
    env = dict(os.environ, PYTHONMALLOC="malloc", LD_PRELOAD=alloc_counter)
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    mb = 1 << 20
    assert mb <= got["numpy"] < mb + 4096 and abs(got["numpy_freed"]) < 4096
    assert mb <= got["torch_peak"] < mb + 4096
    assert abs(got["realloc"] - mb) < 4096  # the old block off, the new one on
    assert alloc_count.Counter.loaded() is None  # not preloaded into the test process


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_the_memory_child_counts_the_allocators_bytes(alloc_counter):
    settings = runner.Settings.for_run(quick=True, mem_steps=3)
    children = runner._Children(dict(os.environ), settings, timeout=120)
    env = dict(runner.HEAP_KEPT_ENV, **alloc_count.preload_env(alloc_counter, children.env))
    figures = []
    for _ in range(2):
        m = children.call("memory", extra_env=env, workload="W2", lib="retrograd")
        # W2's parameters: 269,322 float32 (1.03 MB); with their gradients 2.05 MB
        assert 1.02 < m["alloc_model_mb"] < 1.1, m
        assert 2.05 < m["alloc_peak_mb"] < 2.5
        figures.append(m["alloc_peak_mb"])
    assert abs(figures[0] - figures[1]) < 0.01  # bytes, not pages: the same in every run


def test_passes_unset_the_blas_variables_for_the_children_only():
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    args = parser.parse_args(["--env", "OPENBLAS_CORETYPE=Haswell", "--env", "OPENBLAS_L2_SIZE=1"])
    (a, env_a, _), (u, env_u, _) = runner._pass_envs(args)
    assert (a, u) == ("as-is", "unset")
    assert env_a["OPENBLAS_CORETYPE"] == "Haswell" and env_a["OPENBLAS_L2_SIZE"] == "1"
    assert "OPENBLAS_CORETYPE" not in env_u and "OPENBLAS_L2_SIZE" not in env_u
    args = parser.parse_args(["--in-process"])
    assert [name for name, _, _ in runner._pass_envs(args)] == ["as-is (in-process)"]


def test_workload_data_is_deterministic_and_float32():
    a, b = make_arrays(WORKLOADS["W2"]), make_arrays(WORKLOADS["W2"])
    assert a["x"].dtype == "float32" and a["y"].dtype == "int64"
    assert list(a["params"]) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    for name, value in a["params"].items():
        assert value.dtype == "float32" and (value == b["params"][name]).all()


def test_mlp_flops():
    # forward 2*B*in*out per layer; backward twice that, but the first layer has no input grad
    assert mlp_flops(256, (1024, 4096)) == 2 * 2 * 256 * 1024 * 4096
    assert mlp_flops(2, (3, 4, 5)) == 2 * 2 * 3 * 4 * 2 + 3 * 2 * 2 * 4 * 5


def test_memory_benchmark_quick(tmp_path, capsys):
    """benchmarks/memory.py --quick runs every variant and writes its rows."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"
    spec = importlib.util.spec_from_file_location("memory_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "memory.json"
    assert module.main(["--quick", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    variants = {r["variant"].split(" (")[0] for r in rows}
    assert (
        "checkpoint, planner, peak/4 budget" in variants
        and "reversible net, reversible" in variants
    )
    plain = {r["workload"]: r["peak_saved_bytes"] for r in rows if r["variant"] == "plain"}
    for r in rows:
        if r["variant"].startswith("checkpoint, planner"):
            assert r["peak_saved_bytes"] < plain[r["workload"]]
    assert "x less" in capsys.readouterr().out
