"""The six training-step workloads of the benchmark, each defined once for both libraries.

A workload is data plus one builder. The data (inputs, targets and every parameter's initial
value) comes from NumPy with a fixed seed; the builder is written once against PyTorch's API
names, which retrograd mirrors, and is called with either library (`Lib`). A step is
forward + loss + backward + SGD update (lr 0.01) on a fixed batch, float32 throughout.

    >>> from retrograd.bench.workloads import WORKLOADS, Lib, make_arrays, prepare
    >>> w1 = WORKLOADS["W1"]
    >>> run = prepare(w1, Lib.load("retrograd"), make_arrays(w1))
    >>> loss = run.step()          # one training step; run.value(loss) is its float

Parameters get their values by name, not by position: `param_array(seed, name, shape, kind)` is
a pure function of those, so both libraries' models receive identical arrays as long as their
parameter names and shapes agree (`prepare` checks both against the data).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LR",
    "SEED",
    "WORKLOADS",
    "Workload",
    "Lib",
    "Prepared",
    "make_arrays",
    "param_array",
    "prepare",
    "missing",
    "check_layouts",
    "attention_kind",
    "mlp_flops",
]

LR = 0.01
SEED = 0
VOCAB = 65


# -- the libraries ---------------------------------------------------------------------------------
class Lib:
    """One library behind PyTorch's names: `mod` (torch or retrograd), `nn`, `F`, `optim`."""

    def __init__(self, name: str, mod) -> None:
        self.name = name
        self.mod = mod
        self.nn = mod.nn
        self.F = mod.nn.functional
        self.optim = mod.optim

    @classmethod
    def load(cls, name: str) -> Lib:
        """Import retrograd or torch (raises ImportError when it is not installed)."""
        if name == "torch":
            import torch

            return cls("torch", torch)
        if name == "retrograd":
            import retrograd
            import retrograd.nn.functional  # noqa: F401
            import retrograd.optim  # noqa: F401

            return cls("retrograd", retrograd)
        raise ValueError(f"unknown library {name!r}")

    @property
    def version(self) -> str:
        return str(getattr(self.mod, "__version__", "?"))

    def const(self, a: np.ndarray):
        """A tensor that needs no gradient, sharing the NumPy array's memory where it can."""
        return self.mod.from_numpy(np.ascontiguousarray(a))

    def assign(self, param, a: np.ndarray) -> None:
        """Copy `a` into a parameter in place, outside the graph."""
        with self.mod.no_grad():
            param.copy_(self.mod.from_numpy(np.ascontiguousarray(a)))

    @staticmethod
    def value(loss) -> float:
        return float(loss.item())

    def set_threads(self, n: int) -> None:
        if self.name == "torch":
            self.mod.set_num_threads(n)


# -- workloads -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """One benchmark row: data (`inputs`), the model (`build`) and the loss, for any `Lib`."""

    id: str
    title: str
    inputs: Callable[[np.random.Generator], dict]  # {"x": array, "y": array}
    build: Callable[..., object]  # build(lib, **options) -> Module
    loss: Callable[..., object]  # loss(lib, out, y) -> scalar Tensor
    needs: tuple[str, ...] = ()  # attributes of retrograd the builder uses ("nn.Conv2d")
    flops: int | None = None  # matrix-product FLOPs of one step (W2, W3)
    init: dict = field(default_factory=dict)  # parameter name -> ("normal", std) override


def mlp_flops(batch: int, sizes: tuple[int, ...]) -> int:
    """Matrix-product FLOPs of one MLP training step: 2*B*in*out per layer forward, as much
    again for the weight gradient, and once more for the input gradient of every layer but the
    first (the input needs none). Elementwise work is not counted."""
    total = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mm = 2 * batch * a * b
        total += mm * (2 if i == 0 else 3)
    return total


def _mlp(sizes: tuple[int, ...], act: str):
    def build(lib: Lib, **_):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(lib.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(getattr(lib.nn, act)())
        return lib.nn.Sequential(*layers)

    return build


def _mse(lib: Lib, out, y):
    return lib.F.mse_loss(out, y)


def _cross_entropy(lib: Lib, out, y):
    return lib.F.cross_entropy(out, y)


def _cross_entropy_every_step(lib: Lib, out, y):
    return lib.F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def _w1_inputs(rng):
    x = rng.standard_normal((32, 2)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) * np.cos(x[:, 1:])).astype(np.float32)
    return {"x": x, "y": y}


def _w2_inputs(rng):
    return {
        "x": rng.random((128, 784), dtype=np.float32),
        "y": rng.integers(0, 10, size=128, dtype=np.int64),
    }


def _w3_inputs(rng):
    return {
        "x": rng.standard_normal((256, 1024), dtype=np.float32),
        "y": rng.standard_normal((256, 1024), dtype=np.float32),
    }


def _w4_inputs(rng):
    return {
        "x": rng.standard_normal((64, 1, 28, 28), dtype=np.float32),
        "y": rng.integers(0, 10, size=64, dtype=np.int64),
    }


def _w4_build(lib: Lib, **_):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(512, 10),
    )


def _tokens(shape):
    def inputs(rng):
        seq = rng.integers(0, VOCAB, size=(shape[0] * shape[1] + 1,), dtype=np.int64)
        x = seq[:-1].reshape(shape)
        y = seq[1:].reshape(shape)  # next character: a language-modelling target
        return {"x": x, "y": y}

    return inputs


def _w5_build(lib: Lib, **_):
    """Embedding 65->64, LSTM 64->256 (sequence-first input), linear head to the vocabulary."""
    nn = lib.nn

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, 64)
            self.lstm = nn.LSTM(64, 256)
            self.head = nn.Linear(256, VOCAB)

        def forward(self, idx):
            h, _ = self.lstm(self.embed(idx))
            return self.head(h)

    return CharLSTM()


W6_SEQ, W6_BATCH, W6_DIM, W6_HEADS, W6_MLP = 128, 16, 256, 4, 1024


def attention_kind(requested: str = "auto") -> str:
    """'mha' (nn.MultiheadAttention) when retrograd has it, else 'manual' (written out here)."""
    if requested in ("mha", "manual"):
        return requested
    import retrograd.nn

    return "mha" if hasattr(retrograd.nn, "MultiheadAttention") else "manual"


def _w6_build(lib: Lib, attention: str = "auto", **_):
    """A pre-LayerNorm Transformer block on tokens: learned positions, causal self-attention,
    a GELU MLP, a final LayerNorm and a head to the vocabulary.

    The attention is nn.MultiheadAttention when retrograd has one; otherwise the same
    computation written out (fused q/k/v projection named as in MultiheadAttention:
    in_proj_weight, in_proj_bias, out_proj), in both libraries alike.
    """
    nn, F, mod = lib.nn, lib.F, lib.mod
    d, heads, seq = W6_DIM, W6_HEADS, W6_SEQ
    kind = attention_kind(attention)
    mask = lib.const(np.triu(np.ones((seq, seq), dtype=bool), 1))  # True: may not attend

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_proj_weight = nn.Parameter(mod.empty(3 * d, d))
            self.in_proj_bias = nn.Parameter(mod.empty(3 * d))
            self.out_proj = nn.Linear(d, d)

        def forward(self, x):
            b, t, c = x.shape
            hd = c // heads
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
            q, k, v = qkv.split(c, dim=-1)
            q = q.reshape(b, t, heads, hd).transpose(1, 2)
            k = k.reshape(b, t, heads, hd).transpose(1, 2)
            v = v.reshape(b, t, heads, hd).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, c)
            return self.out_proj(y)

    class MHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, d)
            self.pos = nn.Parameter(mod.empty(seq, d))
            self.ln1 = nn.LayerNorm(d)
            self.attn = MHA() if kind == "mha" else CausalSelfAttention()
            self.ln2 = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, W6_MLP)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(W6_MLP, d)
            self.ln_f = nn.LayerNorm(d)
            self.head = nn.Linear(d, VOCAB)

        def forward(self, idx):
            x = self.tok(idx) + self.pos
            x = x + self.attn(self.ln1(x))
            x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
            return self.head(self.ln_f(x))

    return Block()


WORKLOADS: dict[str, Workload] = {
    w.id: w
    for w in (
        Workload(
            "W1",
            "MLP 2-16-16-1, tanh, batch 32, MSE",
            _w1_inputs,
            _mlp((2, 16, 16, 1), "Tanh"),
            _mse,
            needs=("nn.Linear", "nn.Tanh", "nn.Sequential", "nn.functional.mse_loss"),
        ),
        Workload(
            "W2",
            "MLP 784-256-256-10, ReLU, batch 128, cross-entropy",
            _w2_inputs,
            _mlp((784, 256, 256, 10), "ReLU"),
            _cross_entropy,
            needs=("nn.Linear", "nn.ReLU", "nn.Sequential", "nn.functional.cross_entropy"),
            flops=mlp_flops(128, (784, 256, 256, 10)),
        ),
        Workload(
            "W3",
            "MLP 1024-4096-4096-1024, ReLU, batch 256, MSE",
            _w3_inputs,
            _mlp((1024, 4096, 4096, 1024), "ReLU"),
            _mse,
            needs=("nn.Linear", "nn.ReLU", "nn.Sequential", "nn.functional.mse_loss"),
            flops=mlp_flops(256, (1024, 4096, 4096, 1024)),
        ),
        Workload(
            "W4",
            "CNN 64x1x28x28: conv5 1-16, pool, conv5 16-32, pool, linear 512-10, CE",
            _w4_inputs,
            _w4_build,
            _cross_entropy,
            needs=("nn.Conv2d", "nn.MaxPool2d", "nn.ReLU", "nn.Flatten", "nn.Linear"),
        ),
        Workload(
            "W5",
            "char LSTM: vocab 65, emb 64, hidden 256, seq 64, batch 32, CE every step",
            _tokens((64, 32)),
            _w5_build,
            _cross_entropy_every_step,
            needs=("nn.LSTM", "nn.Embedding", "nn.Linear"),
        ),
        Workload(
            "W6",
            "Transformer block: seq 128, batch 16, d 256, 4 heads, MLP 1024, causal, CE",
            _tokens((W6_BATCH, W6_SEQ)),
            _w6_build,
            _cross_entropy_every_step,
            needs=("nn.Embedding", "nn.LayerNorm", "nn.GELU", "nn.Linear", "nn.Parameter"),
            init={"pos": ("normal", 0.02)},
        ),
    )
}


def missing(workload: Workload) -> list[str]:
    """The names the workload needs that retrograd does not have yet ("retrograd.nn.Conv2d")."""
    import importlib

    import retrograd

    absent = []
    for path in workload.needs:
        obj, prefix = retrograd, "retrograd"
        for part in path.split("."):
            prefix += "." + part
            if hasattr(obj, part):
                obj = getattr(obj, part)
                continue
            try:  # a submodule its package does not import
                obj = importlib.import_module(prefix)
            except ImportError:
                absent.append("retrograd." + path)
                break
    return absent


# -- data ------------------------------------------------------------------------------------------
def param_array(seed: int, name: str, shape: tuple, kind: tuple) -> np.ndarray:
    """A parameter's initial value, a pure function of (seed, name, shape, kind).

    kind: ("uniform", bound) | ("normal", std) | ("ones",) | ("zeros",)
    """
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if kind[0] == "uniform":
        return rng.uniform(-kind[1], kind[1], size=shape).astype(np.float32)
    if kind[0] == "normal":
        return (rng.standard_normal(size=shape) * kind[1]).astype(np.float32)
    if kind[0] == "ones":
        return np.ones(shape, dtype=np.float32)
    return np.zeros(shape, dtype=np.float32)


def _layout(model) -> list[tuple[str, tuple, str]]:
    """(name, shape, owning module's class name) of every parameter, in registration order."""
    owners = {}
    for mname, module in model.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            owners[f"{mname}.{pname}" if mname else pname] = type(module).__name__
    return [(n, tuple(p.shape), owners.get(n, "")) for n, p in model.named_parameters()]


def _kind(workload: Workload, name: str, shape: tuple, owner: str, shapes: dict) -> tuple:
    """The default initialisation of a parameter (PyTorch-like scales)."""
    if name in workload.init:
        return workload.init[name]
    leaf = name.rsplit(".", 1)[-1]
    if owner in ("LayerNorm", "BatchNorm1d", "BatchNorm2d"):
        return ("ones",) if leaf == "weight" else ("zeros",)
    if owner == "Embedding":
        return ("normal", 1.0)
    if len(shape) >= 2:
        return ("uniform", 1.0 / math.sqrt(math.prod(shape[1:])))
    sibling = shapes.get(name[: len(name) - len(leaf)] + leaf.replace("bias", "weight"))
    fan_in = math.prod(sibling[1:]) if sibling and len(sibling) >= 2 else shape[0]
    return ("uniform", 1.0 / math.sqrt(fan_in))


def make_arrays(workload: Workload, model=None, seed: int = SEED) -> dict:
    """The NumPy data of a workload: {"x", "y", "params": {name: array}}.

    The parameter names and shapes come from `model` (retrograd's, built when None).
    """
    data = workload.inputs(np.random.default_rng(seed))
    if model is None:
        model = workload.build(Lib.load("retrograd"))
    layout = _layout(model)
    shapes = {n: s for n, s, _ in layout}
    data["params"] = {
        n: param_array(seed, n, s, _kind(workload, n, s, owner, shapes)) for n, s, owner in layout
    }
    return data


def check_layouts(a, b) -> str | None:
    """None when two models have the same parameter names and shapes, else what differs."""
    la = [(n, s) for n, s, _ in _layout(a)]
    lb = [(n, s) for n, s, _ in _layout(b)]
    if la == lb:
        return None
    da, db = dict(la), dict(lb)
    diff = sorted(set(da) ^ set(db)) or [n for n in da if da[n] != db.get(n)]
    return f"parameter layouts differ: {diff[:6]}"


# -- a prepared run --------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A model with its data and optimizer; `step()` runs one training step, returns the loss."""

    lib: Lib
    model: object
    optimizer: object
    step: Callable[[], object]

    def value(self, loss) -> float:
        return self.lib.value(loss)


def prepare(workload: Workload, lib: Lib, data: dict, model=None, **options) -> Prepared:
    """Build the workload in `lib`, load the parameters from `data`, make the step function."""
    if model is None:
        model = workload.build(lib, **options)
    params = dict(model.named_parameters())
    if set(params) != set(data["params"]):
        extra = sorted(set(params) - set(data["params"]))
        lacking = sorted(set(data["params"]) - set(params))
        raise RuntimeError(
            f"{lib.name}'s parameter names differ: unexpected {extra[:6]}, missing {lacking[:6]}"
        )
    for name, p in params.items():
        a = data["params"][name]
        if tuple(p.shape) != a.shape:
            raise RuntimeError(f"{name}: shape {tuple(p.shape)} in {lib.name}, {a.shape} in data")
        lib.assign(p, a)
    model.train()
    x, y = lib.const(data["x"]), lib.const(data["y"])
    opt = lib.optim.SGD(model.parameters(), lr=LR)
    loss_fn = workload.loss

    def step():
        opt.zero_grad()
        loss = loss_fn(lib, model(x), y)
        loss.backward()
        opt.step()
        return loss

    return Prepared(lib, model, opt, step)
