"""The vanishing-gradient demonstration: one deep network trained four ways, and backpropagation
through time in a vanilla RNN and an LSTM, with gradient norms measured by GradientMonitor.

    >>> from retrograd.diagnostics import vanishing
    >>> result = vanishing.run(depth=20)            # about half a minute on two cores
    >>> print(result.table())
    >>> result.plot("vanishing.png")

The four networks have the same depth, width, data (two moons), optimizer and number of steps:

1. `sigmoid-naive`: sigmoid units with the "standard" initialisation Glorot & Bengio (2010)
   studied, weights from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and biases 0, naive for a sigmoid
   because it ignores the activation's slope of at most 1/4: every layer multiplies the backward
   signal by about 0.25 * sqrt(width) * std(W) = 0.14, so it shrinks geometrically with depth;
2. `relu-he`: ReLU units, He (Kaiming) normal initialisation, which keeps the signal's variance
   constant from layer to layer;
3. `relu-he-layernorm`: the same, with LayerNorm before each activation;
4. `residual`: the same blocks wrapped in skip connections, x + relu(norm(linear(x))), which give
   the gradient an identity path to every layer (and a LayerNorm before the head, as in
   pre-norm Transformers, since the residual stream grows with depth).

The through-time part trains a tanh RNN and an LSTM (forget-gate bias 1) to recall the first
input of a sequence at its end, and records ||d loss / d input[t]|| for every time step t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from retrograd.autograd.grad_mode import no_grad
from retrograd.backend import Generator
from retrograd.creation import randn
from retrograd.diagnostics.monitor import GradientMonitor, _pyplot, _save
from retrograd.nn import functional as F
from retrograd.nn import init
from retrograd.nn.layers.linear import Linear
from retrograd.nn.layers.normalization import LayerNorm
from retrograd.nn.module import Module

__all__ = [
    "CONFIGS",
    "DeepNet",
    "ConfigResult",
    "BpttResult",
    "VanishingResult",
    "build",
    "run",
    "run_bptt",
]

CONFIGS = {
    "sigmoid-naive": "sigmoid, U(±1/√fan_in) init",
    "relu-he": "ReLU, He init",
    "relu-he-layernorm": "ReLU, He init, LayerNorm",
    "residual": "ReLU, He init, LayerNorm, residual",
}


class _Block(Module):
    """linear -> [LayerNorm] -> activation, optionally added to its input."""

    def __init__(self, fan_in, width, activation, norm, residual, generator=None):
        super().__init__()
        self.linear = Linear(fan_in, width, generator=generator)
        self.norm = LayerNorm(width) if norm else None
        self.activation = activation
        self.residual = residual

    def forward(self, x):
        h = self.linear(x)
        if self.norm is not None:
            h = self.norm(h)
        h = h.sigmoid() if self.activation == "sigmoid" else h.relu()
        return x + h if self.residual else h


class DeepNet(Module):
    """`depth` blocks of `width` units (the first maps the input to `width`) and a linear head."""

    def __init__(
        self, in_features: int, n_classes: int, depth: int, width: int, config: str, generator=None
    ):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"unknown configuration {config!r}; choose one of {list(CONFIGS)}")
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        act = "sigmoid" if config == "sigmoid-naive" else "relu"
        norm = config in ("relu-he-layernorm", "residual")
        self.config = config
        self.blocks = [
            _Block(
                in_features if i == 0 else width,
                width,
                act,
                norm,
                config == "residual" and i > 0,
                generator,
            )
            for i in range(depth)
        ]
        # the residual stream grows with depth (each block adds a non-negative branch): a final
        # LayerNorm, as in pre-norm Transformers, keeps the logits in range
        self.final_norm = LayerNorm(width) if config == "residual" else None
        self.head = Linear(width, n_classes, generator=generator)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.head(x)

    @property
    def layer_names(self) -> list[str]:
        """The monitor's names of the blocks' linear layers, first to last."""
        return [f"blocks.{i}.linear" for i in range(len(self.blocks))]


def build(
    config: str, depth: int, width: int, in_features: int, n_classes: int, generator: Generator
) -> DeepNet:
    """A DeepNet initialised the configuration's way, drawing from `generator`."""
    net = DeepNet(in_features, n_classes, depth, width, config, generator)
    with no_grad():
        for block in net.blocks + [net.head]:
            linear = block.linear if isinstance(block, _Block) else block
            if config == "sigmoid-naive":
                bound = 1.0 / math.sqrt(linear.in_features)
                init.uniform_(linear.weight, -bound, bound, generator=generator)
            else:
                init.kaiming_normal_(linear.weight, nonlinearity="relu", generator=generator)
            init.zeros_(linear.bias)
    return net


@dataclass
class ConfigResult:
    """One configuration's run: per-layer gradient norms of the blocks' linear layers at the
    first step and averaged over all steps, the loss per step and the final training accuracy."""

    name: str
    label: str
    grad_norms_first: list
    grad_norms_mean: list
    losses: list
    accuracy: float

    @property
    def first_to_last(self) -> float:
        """Layer 1's gradient norm over the last block's, at the first step."""
        return self.grad_norms_first[0] / self.grad_norms_first[-1]


@dataclass
class BpttResult:
    """Gradient norm per time step, ||d loss / d input[t]||, at the first step and averaged over
    training, and the loss per step, for each recurrent model."""

    seq_len: int
    norms_first: dict = field(default_factory=dict)
    norms_mean: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)


@dataclass
class VanishingResult:
    depth: int
    width: int
    steps: int
    configs: dict  # name -> ConfigResult
    bptt: BpttResult | None = None
    note: str = ""

    def table(self) -> str:
        """The numbers as a text table: per-layer gradient norms (first step), loss, accuracy."""
        names = list(self.configs)
        depth = self.depth
        picks = sorted({0, 1, depth // 4, depth // 2, (3 * depth) // 4, depth - 1})
        col = 12
        lines = [
            f"Gradient norm of each linear layer at step 0 ({depth} layers of {self.width} "
            f"units, two moons, {self.steps} SGD steps):",
            "",
            f"{'layer':>7s}" + "".join(f"{n:>{max(col, len(n) + 2)}s}" for n in names),
        ]
        for i in picks:
            row = f"{i + 1:>7d}"
            for n in names:
                row += f"{self.configs[n].grad_norms_first[i]:>{max(col, len(n) + 2)}.3e}"
            lines.append(row)
        lines.append("")
        lines.append(f"{'':>7s}" + "".join(f"{n:>{max(col, len(n) + 2)}s}" for n in names))
        rows = {
            "1/last": [c.first_to_last for c in self.configs.values()],
            "mean L1": [c.grad_norms_mean[0] for c in self.configs.values()],
            "loss 0": [c.losses[0] for c in self.configs.values()],
            "loss end": [_tail_mean(c.losses) for c in self.configs.values()],
            "acc": [c.accuracy for c in self.configs.values()],
        }
        for key, values in rows.items():
            fmt = ".3e" if key in ("1/last", "mean L1") else ".3f"
            lines.append(
                f"{key:>7s}"
                + "".join(f"{v:>{max(col, len(n) + 2)}{fmt}}" for n, v in zip(names, values))
            )
        lines.append(
            "  (1/last: layer 1's gradient norm over the last layer's at step 0; mean L1: "
            "layer 1's norm averaged over training; loss end: mean of the last 10% of steps)"
        )
        if self.bptt is not None:
            b = self.bptt
            lines += [
                "",
                f"Backpropagation through time ({b.seq_len} steps, loss at the last step): "
                "||d loss / d input[t]|| at training step 0",
                "",
                f"{'t':>7s}" + "".join(f"{n:>12s}" for n in b.norms_first),
            ]
            length = b.seq_len
            for t in sorted({0, length // 4, length // 2, (3 * length) // 4, length - 1}):
                lines.append(f"{t:>7d}" + "".join(f"{v[t]:>12.3e}" for v in b.norms_first.values()))
            lines.append(
                f"{'0/last':>7s}"
                + "".join(f"{v[0] / v[-1]:>12.3e}" for v in b.norms_first.values())
            )
            lines.append(
                f"{'mean 0':>7s}" + "".join(f"{v[0]:>12.3e}" for v in b.norms_mean.values())
            )
            lines.append(
                "  (0/last: the gradient reaching the first time step over the last one's; "
                f"mean 0: t = 0 averaged over {len(next(iter(b.losses.values())))} SGD steps)"
            )
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def plot(self, path, dpi: int = 100):
        """One figure: per-layer gradient norms (first step and mean) and loss curves of the four
        networks, and (when run) the through-time gradient norms. 5 x 4 inches per panel."""
        plt = _pyplot()
        from matplotlib.ticker import MaxNLocator

        panels = 3 if self.bptt is not None else 2
        fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
        layers = np.arange(1, self.depth + 1)
        for i, c in enumerate(self.configs.values()):
            color = f"C{i}"
            axes[0].plot(layers, c.grad_norms_first, "o-", ms=3, color=color, label=c.label)
            axes[0].plot(layers, c.grad_norms_mean, "--", color=color, alpha=0.6)
            steps = np.arange(len(c.losses))
            axes[1].plot(steps, c.losses, color=color, alpha=0.25, lw=0.8)
            axes[1].plot(steps, _smooth(c.losses), color=color, label=c.label)
        axes[0].set_yscale("log")
        axes[0].set_xlabel("layer (input to output)")
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_title("gradient norm per layer (solid: step 0, dashed: mean)")
        axes[0].legend(fontsize=7)
        axes[1].set_xlabel("step")
        axes[1].set_title("training loss (faint: per step, bold: moving average)")
        axes[1].legend(fontsize=7)
        if self.bptt is not None:
            ax = axes[2]
            for i, (name, norms) in enumerate(self.bptt.norms_first.items()):
                ax.plot(norms, "-", color=f"C{i + 4}", label=f"{name}, step 0")
                ax.plot(
                    self.bptt.norms_mean[name],
                    "--",
                    color=f"C{i + 4}",
                    alpha=0.6,
                    label=f"{name}, mean",
                )
            ax.set_yscale("log")
            ax.set_xlabel("time step t (loss at the last)")
            ax.set_title("through time: ||d loss / d input[t]||")
            ax.legend(fontsize=7)
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.tight_layout()
        _save(fig, path, dpi)
        return path

    def to_dict(self) -> dict:
        out = {
            "depth": self.depth,
            "width": self.width,
            "steps": self.steps,
            "configs": {
                n: {
                    "label": c.label,
                    "grad_norms_first": c.grad_norms_first,
                    "grad_norms_mean": c.grad_norms_mean,
                    "losses": c.losses,
                    "accuracy": c.accuracy,
                }
                for n, c in self.configs.items()
            },
            "note": self.note,
        }
        if self.bptt is not None:
            out["bptt"] = {
                "seq_len": self.bptt.seq_len,
                "norms_first": {k: list(map(float, v)) for k, v in self.bptt.norms_first.items()},
                "norms_mean": {k: list(map(float, v)) for k, v in self.bptt.norms_mean.items()},
                "losses": self.bptt.losses,
                "accuracy": self.bptt.accuracy,
            }
        return out


def _smooth(values: list) -> np.ndarray:
    """Trailing moving average over about 1/30 of the run (the start keeps shorter windows)."""
    a = np.asarray(values, dtype=np.float64)
    k = max(1, len(a) // 30)
    c = np.cumsum(np.insert(a, 0, 0.0))
    out = np.empty_like(a)
    for i in range(len(a)):
        lo = max(0, i + 1 - k)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def _tail_mean(values: list) -> float:
    k = max(1, len(values) // 10)
    return float(np.mean(values[-k:]))


def _moons(n_samples: int, seed: int):
    from retrograd.data.datasets import two_moons

    x, y = two_moons(n_samples=n_samples, noise=0.1, seed=seed).tensors
    return x, y


def _train(model, x, y, steps: int, lr: float, batch_size: int, seed: int):
    """SGD with momentum on minibatches; returns (monitor, losses, training accuracy)."""
    from retrograd.optim import SGD

    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    monitor = GradientMonitor(model)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    losses = []
    for _ in range(steps):
        idx = rng.choice(n, size=min(batch_size, n), replace=False)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.step(loss)
        losses.append(float(loss.item()))
    monitor.remove()
    with no_grad():
        acc = float((model(x).argmax(-1) == y).float().mean().item())
    return monitor, losses, acc


def run(
    depth: int = 20,
    width: int = 32,
    steps: int = 300,
    lr: float = 0.005,
    batch_size: int = 64,
    n_samples: int = 1000,
    seed: int = 0,
    configs=tuple(CONFIGS),
    bptt: bool = True,
    seq_len: int = 40,
    bptt_steps: int = 50,
) -> VanishingResult:
    """Train the deep network the four ways (same data, seed, optimizer and steps) and, with
    `bptt`, the RNN and LSTM; return their gradient norms and loss curves."""
    x, y = _moons(n_samples, seed)
    results = {}
    for name in configs:
        model = build(name, depth, width, x.shape[1], 2, Generator().manual_seed(seed))
        monitor, losses, acc = _train(model, x, y, steps, lr, batch_size, seed)
        first, mean = [], []
        for layer in model.layer_names:
            norms = monitor.grad_norms[layer]
            first.append(float(norms[0]))
            mean.append(float(np.mean(norms)))
        results[name] = ConfigResult(name, CONFIGS[name], first, mean, losses, acc)
    result = VanishingResult(depth, width, steps, results)
    if bptt:
        result.bptt, result.note = run_bptt(seq_len, steps=bptt_steps, seed=seed)
    return result


# -- backpropagation through time -----------------------------------------------------------------
def _recurrent_classes():
    """(RNN, LSTM) when the recurrent layers exist, else None."""
    from retrograd import nn

    rnn, lstm = getattr(nn, "RNN", None), getattr(nn, "LSTM", None)
    if rnn is None or lstm is None:
        try:
            from retrograd.nn.layers.recurrent import LSTM, RNN
        except ImportError:
            return None
        rnn, lstm = RNN, LSTM
    return rnn, lstm


class _SequenceClassifier(Module):
    def __init__(self, cell, input_size: int, hidden: int, n_classes: int, generator=None):
        super().__init__()
        self.rnn = cell(input_size, hidden, batch_first=True, generator=generator)
        self.head = Linear(hidden, n_classes, generator=generator)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def _recall_task(n: int, seq_len: int, generator: Generator):
    """Sequences of noise whose first element carries a sign; the label is that sign, read at
    the end, so the gradient that matters must travel back through every step."""
    from retrograd.creation import tensor

    x = randn(n, seq_len, 1, generator=generator) * 0.5
    labels = (generator.numpy.random(n) < 0.5).astype(np.int64)
    first = (labels * 2.0 - 1.0).astype(np.float32)
    data = x.data.copy()
    data[:, 0, 0] = first
    return tensor(data), tensor(labels)


def run_bptt(
    seq_len: int = 40,
    hidden: int = 32,
    steps: int = 50,
    lr: float = 0.05,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[BpttResult | None, str]:
    """Vanilla (tanh) RNN vs LSTM (forget-gate bias 1) on the recall task: gradient norm per time
    step. Returns (None, note) when the recurrent layers are not available."""
    classes = _recurrent_classes()
    if classes is None:
        return None, "Backprop through time skipped: retrograd.nn.LSTM is not available."
    from retrograd.optim import SGD

    rnn_cls, lstm_cls = classes
    result = BpttResult(seq_len)
    for name, cls in (("RNN", rnn_cls), ("LSTM", lstm_cls)):
        gen = Generator().manual_seed(seed)
        x, y = _recall_task(512, seq_len, gen)
        model = _SequenceClassifier(cls, 1, hidden, 2, gen)
        if name == "LSTM":
            with no_grad():  # forget-gate bias 1 (gates i, f, g, o), as Jozefowicz et al.
                model.rnn.bias_ih_l0.data[hidden : 2 * hidden] = 1.0
                model.rnn.bias_hh_l0.data[hidden : 2 * hidden] = 0.0
        optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
        monitor = GradientMonitor(model)
        rng = np.random.default_rng(seed)
        losses = []
        for _ in range(steps):
            idx = rng.choice(x.shape[0], size=batch_size, replace=False)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step(loss)
            losses.append(float(loss.item()))
        monitor.remove()
        records = [r for r in monitor.time_grad_norms["rnn"]["input"] if r is not None]
        result.norms_first[name] = [float(v) for v in records[0]]
        result.norms_mean[name] = [float(v) for v in np.mean(np.stack(records), axis=0)]
        result.losses[name] = losses
        with no_grad():
            result.accuracy[name] = float((model(x).argmax(-1) == y).float().mean().item())
    return result, ""
