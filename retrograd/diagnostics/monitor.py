"""Gradient-flow diagnostics: what every layer's gradient, weights and activations do while a
model trains, with vanishing and exploding gradients flagged and explained.

    >>> monitor = GradientMonitor(model)            # every=k records one step in k
    >>> for x, y in loader:
    ...     loss = F.cross_entropy(model(x), y)
    ...     optimizer.zero_grad()
    ...     loss.backward()
    ...     optimizer.step()
    ...     monitor.step(loss)                      # after optimizer.step(): grads + the update
    >>> print(monitor.report())                     # Markdown: per-layer table and a diagnosis
    >>> monitor.plot("gradient_flow.png")

A *layer* is a module that owns parameters itself (a Linear, a Conv2d, a LayerNorm, an RNN),
named by its dotted path in the model, in the order `named_modules` gives (the order of
construction, the forward order for a Sequential). Per layer and recorded step it keeps

- the gradient norm: the 2-norm of all its parameters' `.grad` taken together (as the optimizer
  used them, so after any clipping);
- the weight norm, and the update/weight ratio ||W_after - W_before|| / ||W_before|| of the
  optimizer step (a snapshot of the weights is taken before each recorded step);

per ReLU / Sigmoid / Tanh module (forward hooks, training-mode forward passes with gradients on):

- ReLU: the fraction of dead units, units (all dimensions but the batch one) whose output is 0
  for every sample of the batch;
- Sigmoid / Tanh: the fraction of saturated outputs (sigmoid < 0.01 or > 0.99, |tanh| > 0.99),
  over all units and samples;

and per recurrent layer (RNN, LSTM, GRU) the gradient norm per time step, two ways: `input`,
||d loss / d input[t]||, the gradient that backpropagation through time carries back to step t
(it shows vanishing over time), and `output`, ||d loss / d output[t]||, the gradient each step's
output receives directly from the layers above. Activations that are plain functions inside a
custom forward (F.relu) are not seen; use the modules to have them counted.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from retrograd.autograd.grad_mode import is_grad_enabled
from retrograd.backend import get_xp, to_numpy
from retrograd.creation import zeros
from retrograd.nn.layers.activation import ReLU, ReLU6, Sigmoid, Tanh
from retrograd.tensor import Tensor

try:  # recurrent layers are optional: support them when they exist
    from retrograd.nn.layers.recurrent import RNNBase
except ImportError:  # pragma: no cover - depends on the installed layers
    RNNBase = None

__all__ = ["GradientMonitor", "GradientMonitorCallback", "Finding", "REMEDIES"]

REMEDIES = {
    "vanishing": (
        "Each layer multiplies the backward signal by its weights and by its activation's "
        "derivative; with saturating activations (the sigmoid's derivative is at most 0.25) or "
        "too-small weights the product shrinks geometrically with depth, so the first layers "
        "barely learn. Remedies: ReLU-family activations; He (Kaiming) initialisation for ReLU, "
        "Xavier (Glorot) for tanh/sigmoid; normalisation (BatchNorm, LayerNorm); residual "
        "(skip) connections."
    ),
    "exploding": (
        "The backward signal grows geometrically (weights too large for the depth, or a too-high "
        "learning rate feeding back on itself), so steps overshoot and values overflow. "
        "Remedies: gradient clipping (nn.utils.clip_grad_norm_, `retrograd train --clip`); a "
        "lower learning rate; He/Xavier initialisation; normalisation; residual connections."
    ),
    "bptt_vanishing": (
        "Backpropagation through time multiplies by the recurrent Jacobian once per step, so the "
        "gradient reaching early time steps fades and long-range dependencies are not learnt. "
        "Remedies: LSTM or GRU cells (a gated, additive memory path; a forget-gate bias of 1); "
        "orthogonal recurrent weights; shorter sequences or truncated BPTT."
    ),
    "bptt_exploding": (
        "The recurrent Jacobian's norm exceeds 1, so the gradient grows with every step back in "
        "time. Remedies: gradient clipping; orthogonal or scaled-down recurrent weights; LSTM or "
        "GRU cells; a lower learning rate."
    ),
    "dead_relu": (
        "Units whose ReLU output is 0 for every sample get no gradient and never recover "
        "('dying ReLU'), often after a too-large step pushed their bias negative. Remedies: a "
        "lower learning rate; He initialisation; LeakyReLU/ELU/GELU; normalisation before the "
        "activation."
    ),
    "saturation": (
        "Saturated sigmoid/tanh units sit where the derivative is almost 0, so little gradient "
        "passes through them. Remedies: Xavier initialisation and inputs scaled to unit variance; "
        "normalisation before the activation; ReLU-family activations."
    ),
    "large_updates": (
        "Each step changes the weights by more than a tenth of their size (about 1e-3 is the "
        "usual healthy ratio): the learning rate is probably too high. Remedies: a lower "
        "learning rate, a warm-up, clipping."
    ),
}

_TITLES = {
    "vanishing": "Vanishing gradients",
    "exploding": "Exploding gradients",
    "bptt_vanishing": "Vanishing gradients through time",
    "bptt_exploding": "Exploding gradients through time",
    "dead_relu": "Dead ReLUs",
    "saturation": "Saturated activations",
    "large_updates": "Large updates",
}


@dataclass
class Finding:
    """One problem the monitor saw: its kind, the layer (or module), the recorded steps where it
    showed, the worst value and a one-line message; `REMEDIES[kind]` explains it."""

    kind: str
    layer: str | None
    steps: list = field(default_factory=list)
    value: float = float("nan")
    message: str = ""
    worst_step: int | None = None

    @property
    def title(self) -> str:
        return _TITLES.get(self.kind, self.kind)

    @property
    def remedy(self) -> str:
        return REMEDIES.get(self.kind, "")


def _sq_sum(array) -> float:
    """Sum of squares in float64 (float32 sums lose digits on big layers)."""
    a = to_numpy(array)
    return float(np.sum(np.square(a, dtype=np.float64)))


def _norm(arrays) -> float:
    return math.sqrt(sum(_sq_sum(a) for a in arrays)) if arrays else float("nan")


def _activation_kind(module) -> str | None:
    if isinstance(module, (ReLU, ReLU6)):
        return "relu"
    if isinstance(module, Sigmoid):
        return "sigmoid"
    if isinstance(module, Tanh):
        return "tanh"
    return None


def dead_fraction(output) -> float:
    """Fraction of units (all dimensions but the first, the batch) that are 0 for every sample."""
    a = to_numpy(output.data if isinstance(output, Tensor) else output)
    if a.ndim <= 1:
        return float(np.mean(a == 0)) if a.size else float("nan")
    if a.shape[0] == 0 or a[0].size == 0:
        return float("nan")
    alive = np.any(a != 0, axis=0)
    return float(1.0 - np.mean(alive))


def saturated_fraction(output, kind: str) -> float:
    """Fraction of outputs in the flat tails: sigmoid < 0.01 or > 0.99, |tanh| > 0.99."""
    a = to_numpy(output.data if isinstance(output, Tensor) else output)
    if a.size == 0:
        return float("nan")
    if kind == "sigmoid":
        return float(np.mean((a < 0.01) | (a > 0.99)))
    return float(np.mean(np.abs(a) > 0.99))


def _per_step_norms(g, time_axis: int) -> np.ndarray:
    a = to_numpy(g.data if isinstance(g, Tensor) else g).astype(np.float64)
    a = np.moveaxis(a, time_axis, 0).reshape(a.shape[time_axis], -1)
    return np.sqrt(np.sum(a * a, axis=1))


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3g}"


def _nanmean(values) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


class GradientMonitor:
    """Records per-layer gradient norms, weight norms, update/weight ratios, dead-ReLU and
    saturation fractions, and per-time-step gradient norms of recurrent layers; flags vanishing
    and exploding gradients. Call `step()` after every `optimizer.step()`.

    >>> monitor = GradientMonitor(model, every=10)
    >>> ...; loss.backward(); optimizer.step(); monitor.step(loss)
    >>> print(monitor.report()); monitor.plot("flow.png")

    Thresholds: vanishing when the first layer's gradient norm is below `vanish_ratio` times the
    last layer's or below `vanish_abs`; exploding when a norm is not finite, above `explode_abs`,
    or the first layer's is above `explode_ratio` times the last layer's. For recurrent layers
    the same ratios compare the gradient reaching the first time step with the last one's.
    """

    def __init__(
        self,
        model,
        every: int = 1,
        vanish_ratio: float = 1e-3,
        vanish_abs: float = 1e-7,
        explode_ratio: float = 1e3,
        explode_abs: float = 1e3,
        dead_threshold: float = 0.5,
        saturation_threshold: float = 0.5,
        update_threshold: float = 0.1,
    ) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be a positive integer, got {every}")
        self.model = model
        self.every = int(every)
        self.vanish_ratio, self.vanish_abs = vanish_ratio, vanish_abs
        self.explode_ratio, self.explode_abs = explode_ratio, explode_abs
        self.dead_threshold = dead_threshold
        self.saturation_threshold = saturation_threshold
        self.update_threshold = update_threshold

        self.layers: list[str] = []  # modules owning parameters, by dotted name
        self.layer_types: dict[str, str] = {}
        self._params: dict[str, list] = {}
        self.activations: dict[str, str] = {}  # module name -> relu | sigmoid | tanh
        self.recurrent: list[str] = []
        for name, module in model.named_modules():
            own = [p for _, p in module.named_parameters(recurse=False)]
            label = name or "(model)"
            if own:
                self.layers.append(label)
                self.layer_types[label] = type(module).__name__
                self._params[label] = own
            kind = _activation_kind(module)
            if kind is not None:
                self.activations[label] = kind
            if RNNBase is not None and isinstance(module, RNNBase):
                self.recurrent.append(label)
        self.num_params = {k: sum(int(p.numel()) for p in v) for k, v in self._params.items()}

        self.steps: list[int] = []  # the step index of each record
        self.losses: list[float] = []
        self.grad_norms: dict[str, list] = {k: [] for k in self.layers}
        self.weight_norms: dict[str, list] = {k: [] for k in self.layers}
        self.update_ratios: dict[str, list] = {k: [] for k in self.layers}
        self.dead_fractions: dict[str, list] = {
            k: [] for k, kind in self.activations.items() if kind == "relu"
        }
        self.saturated_fractions: dict[str, list] = {
            k: [] for k, kind in self.activations.items() if kind != "relu"
        }
        # recurrent layer -> {"input": [per-step norms per record], "output": [...]}
        self.time_grad_norms: dict[str, dict] = {
            k: {"input": [], "output": []} for k in self.recurrent
        }

        self._step = 0
        self._pending_act: dict[str, list] = {}
        self._pending_time: dict[str, dict] = {}
        self._snapshot: dict | None = None
        self._handles: list = []
        self.attach()
        self._take_snapshot()

    # -- hooks -----------------------------------------------------------------------------------
    def attach(self) -> None:
        """Put the forward hooks on the model (done by the constructor; again after remove())."""
        if self._handles:
            return
        modules = dict(self.model.named_modules())
        for label, kind in self.activations.items():
            module = modules["" if label == "(model)" else label]
            self._handles.append(module.register_forward_hook(self._activation_hook(label, kind)))
        for label in self.recurrent:
            module = modules["" if label == "(model)" else label]
            self._handles.append(module.register_forward_pre_hook(self._rnn_input_hook(label)))
            self._handles.append(module.register_forward_hook(self._rnn_output_hook(label)))

    def remove(self) -> None:
        """Take the forward hooks off the model (the records stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> GradientMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def _recording(self, module) -> bool:
        return module.training and is_grad_enabled() and self._step % self.every == 0

    def _activation_hook(self, label: str, kind: str):
        def hook(module, args, output):
            if not isinstance(output, Tensor) or not self._recording(module):
                return None
            value = dead_fraction(output) if kind == "relu" else saturated_fraction(output, kind)
            self._pending_act.setdefault(label, []).append(value)
            return None

        return hook

    def _time_axis(self, module, ndim: int) -> int:
        return 1 if (ndim == 3 and getattr(module, "batch_first", False)) else 0

    def _rnn_input_hook(self, label: str):
        def hook(module, args):
            if not args or not isinstance(args[0], Tensor) or not self._recording(module):
                return None
            x = args[0]
            if x.dtype.kind not in "fc":
                return None
            # x + 0 with a fresh leaf: a node whose gradient is d loss / d input, whether or not
            # the input itself requires grad (the values are unchanged)
            zero = zeros(dtype=x.dtype, device=x.device, requires_grad=True)
            tapped = x + zero
            axis = self._time_axis(module, x.ndim)

            def on_grad(g):
                self._pending_time.setdefault(label, {})["input"] = _per_step_norms(g, axis)

            tapped.register_hook(on_grad)
            return (tapped, *args[1:])

        return hook

    def _rnn_output_hook(self, label: str):
        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            if not isinstance(out, Tensor) or not out.requires_grad:
                return None
            if not self._recording(module):
                return None
            axis = self._time_axis(module, out.ndim)

            def on_grad(g):
                self._pending_time.setdefault(label, {})["output"] = _per_step_norms(g, axis)

            out.register_hook(on_grad)
            return None

        return hook

    # -- recording -------------------------------------------------------------------------------
    def _take_snapshot(self) -> None:
        self._snapshot = {
            label: [get_xp(p.data).array(p.data, copy=True) for p in params]
            for label, params in self._params.items()
        }

    def step(self, loss=None) -> bool:
        """Record this step (when it is one in `every`); call after `optimizer.step()`, while
        the parameters' `.grad` still hold this step's gradients. Returns whether it recorded."""
        recorded = self._step % self.every == 0
        if recorded:
            self._record(loss)
        self._step += 1
        self._pending_act, self._pending_time = {}, {}
        if self._step % self.every == 0:
            self._take_snapshot()
        else:
            self._snapshot = None
        return recorded

    def _record(self, loss) -> None:
        self.steps.append(self._step)
        if loss is not None:
            self.losses.append(float(loss.item() if isinstance(loss, Tensor) else loss))
        for label, params in self._params.items():
            grads = [p.grad.data for p in params if p.grad is not None]
            self.grad_norms[label].append(_norm(grads) if grads else float("nan"))
            weight = _norm([p.data for p in params])
            self.weight_norms[label].append(weight)
            before = self._snapshot.get(label) if self._snapshot is not None else None
            if before is None:
                ratio = float("nan")
            else:
                old = _norm(before)
                delta = _norm([to_numpy(p.data) - to_numpy(b) for p, b in zip(params, before)])
                ratio = delta / old if old > 0 else float("nan")
            self.update_ratios[label].append(ratio)
        for label in self.dead_fractions:
            self.dead_fractions[label].append(_nanmean(self._pending_act.get(label, [])))
        for label in self.saturated_fractions:
            self.saturated_fractions[label].append(_nanmean(self._pending_act.get(label, [])))
        for label in self.recurrent:
            pending = self._pending_time.get(label, {})
            for key in ("input", "output"):
                self.time_grad_norms[label][key].append(pending.get(key))

    # -- diagnosis -------------------------------------------------------------------------------
    def _layer_profile(self, index: int) -> list[float]:
        return [self.grad_norms[k][index] for k in self.layers]

    def findings(self) -> list[Finding]:
        """Everything flagged over the recorded steps, one Finding per kind and layer (with the
        steps where it showed and the message of its worst occurrence)."""
        found: dict[tuple, Finding] = {}

        def flag(kind: str, layer: str, step: int, value: float, message: str) -> None:
            f = found.get((kind, layer))
            if f is None:
                found[(kind, layer)] = Finding(kind, layer, [step], value, message, step)
                return
            f.steps.append(step)
            if kind in ("vanishing", "bptt_vanishing"):
                worse = value < f.value
            else:
                worse = not math.isfinite(value) or value > f.value
            if worse:
                f.value, f.message, f.worst_step = value, message, step

        for i, step in enumerate(self.steps):
            self._gradient_findings(i, step, flag)
        for k, values in self.dead_fractions.items():
            for step, v in zip(self.steps, values):
                if v > self.dead_threshold:  # NaN (no forward seen) compares False
                    flag("dead_relu", k, step, v, f"{v:.0%} of the units after `{k}` are dead")
        for k, values in self.saturated_fractions.items():
            for step, v in zip(self.steps, values):
                if v > self.saturation_threshold:
                    flag("saturation", k, step, v, f"{v:.0%} of the outputs of `{k}` saturate")
        for k in self.recurrent:
            for step, norms in zip(self.steps, self.time_grad_norms[k]["input"]):
                if norms is not None and len(norms) > 1:
                    self._time_findings(k, step, norms, flag)
        order = list(_TITLES)
        return sorted(found.values(), key=lambda f: (order.index(f.kind), f.steps[0]))

    def _gradient_findings(self, i: int, step: int, flag) -> None:
        norms = {k: self.grad_norms[k][i] for k in self.layers}
        norms = {k: v for k, v in norms.items() if not math.isnan(v)}  # NaN: no .grad
        if not norms:
            return
        names = list(norms)
        first, last = names[0], names[-1]
        g_first, g_last = norms[first], norms[last]
        bad = [k for k, v in norms.items() if not math.isfinite(v)]
        if bad:
            flag("exploding", bad[0], step, math.inf, f"the gradient of `{bad[0]}` is not finite")
            return
        big = max(norms, key=norms.get)
        if norms[big] > self.explode_abs:
            flag(
                "exploding",
                big,
                step,
                norms[big],
                f"`{big}` has gradient norm {norms[big]:.3g} (> {self.explode_abs:g})",
            )
        ratio = g_first / g_last if g_last > 0 else math.nan
        versus = f"the first layer `{first}` gets {ratio:.3g}x the gradient norm of the last"
        versus += f" layer `{last}` ({g_first:.3g} vs {g_last:.3g})"
        if len(names) > 1 and ratio > self.explode_ratio:
            flag("exploding", first, step, ratio, versus)
        if len(names) > 1 and ratio < self.vanish_ratio:
            flag("vanishing", first, step, ratio, versus)
        elif g_first < self.vanish_abs and g_last > 0:
            flag(
                "vanishing",
                first,
                step,
                g_first,
                f"the first layer `{first}` has gradient norm {g_first:.3g} "
                f"(< {self.vanish_abs:g})",
            )
        for k in self.layers:
            r = self.update_ratios[k][i]
            if math.isfinite(r) and r > self.update_threshold:
                flag("large_updates", k, step, r, f"`{k}`'s update is {r:.3g} of its weight norm")

    def _time_findings(self, k: str, step: int, norms, flag) -> None:
        early, late = float(norms[0]), float(norms[-1])
        if not np.all(np.isfinite(norms)):
            flag(
                "bptt_exploding",
                k,
                step,
                math.inf,
                f"the gradient through time of `{k}` is not finite",
            )
            return
        if late <= 0:
            return
        ratio = early / late
        message = f"the gradient reaching time step 0 is {ratio:.3g}x the last time step's"
        if ratio > self.explode_ratio:
            flag("bptt_exploding", k, step, ratio, message)
        elif ratio < self.vanish_ratio:
            flag("bptt_vanishing", k, step, ratio, message)

    # -- output ----------------------------------------------------------------------------------
    def _require_records(self) -> None:
        if not self.steps:
            raise RuntimeError(
                "GradientMonitor has recorded nothing yet: call monitor.step() after each "
                "optimizer.step()"
            )

    def summary(self) -> dict:
        """Everything recorded, as plain JSON-serialisable Python values."""

        def lst(values):
            return [None if v is None else [float(x) for x in v] for v in values]

        return {
            "every": self.every,
            "steps": list(self.steps),
            "losses": list(self.losses),
            "layers": [
                {
                    "name": k,
                    "type": self.layer_types[k],
                    "params": self.num_params[k],
                    "grad_norm": list(self.grad_norms[k]),
                    "weight_norm": list(self.weight_norms[k]),
                    "update_ratio": list(self.update_ratios[k]),
                }
                for k in self.layers
            ],
            "dead_relu_fraction": {k: list(v) for k, v in self.dead_fractions.items()},
            "saturated_fraction": {k: list(v) for k, v in self.saturated_fractions.items()},
            "time_grad_norms": {
                k: {key: lst(v[key]) for key in ("input", "output")}
                for k, v in self.time_grad_norms.items()
            },
            "findings": [
                {
                    "kind": f.kind,
                    "layer": f.layer,
                    "steps": f.steps,
                    "worst_step": f.worst_step,
                    "value": f.value,
                    "message": f.message,
                }
                for f in self.findings()
            ],
        }

    def save_json(self, path) -> None:
        text = json.dumps(self.summary(), indent=1, allow_nan=True)
        with open(path, "w") as f:
            f.write(text + "\n")

    def report(self) -> str:
        """A Markdown report: per-layer statistics, activations, recurrent layers, diagnosis."""
        self._require_records()
        n = len(self.steps)
        lines = [
            "# Gradient flow",
            "",
            f"{n} recorded step{'s' if n != 1 else ''} (one in {self.every}, steps "
            f"{self.steps[0]}..{self.steps[-1]}); {len(self.layers)} layers with parameters, "
            "first to last. Gradient norms are those the optimizer used (after any clipping); "
            "update/weight is ||W_after - W_before|| / ||W_before|| per step (around 1e-3 is "
            "healthy).",
            "",
        ]
        if self.losses:
            lines += [
                f"Loss: {self.losses[0]:.4g} at the first record, {self.losses[-1]:.4g} "
                "at the last.",
                "",
            ]
        lines += [
            "| # | layer | type | params | grad norm (first) | grad norm (last) | grad norm "
            "(mean) | weight norm | update/weight (mean) |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for i, k in enumerate(self.layers, 1):
            g = self.grad_norms[k]
            lines.append(
                f"| {i} | `{k}` | {self.layer_types[k]} | {self.num_params[k]} | {_fmt(g[0])} | "
                f"{_fmt(g[-1])} | {_fmt(_nanmean(g))} | {_fmt(self.weight_norms[k][-1])} | "
                f"{_fmt(_nanmean(self.update_ratios[k]))} |"
            )
        if self.activations:
            lines += [
                "",
                "## Activations",
                "",
                "Dead ReLU: units that output 0 for a whole batch. Saturated: sigmoid outputs "
                "< 0.01 or > 0.99, |tanh| > 0.99, as a fraction of all outputs.",
                "",
                "| module | kind | measure | first | last | mean |",
                "|---|---|---|---:|---:|---:|",
            ]
            for k, kind in self.activations.items():
                values = self.dead_fractions[k] if kind == "relu" else self.saturated_fractions[k]
                what = "dead units" if kind == "relu" else "saturated"
                lines.append(
                    f"| `{k}` | {kind} | {what} | {_fmt(values[0])} | {_fmt(values[-1])} | "
                    f"{_fmt(_nanmean(values))} |"
                )
        if self.recurrent:
            lines += [
                "",
                "## Recurrent layers: gradient norm per time step",
                "",
                "||d loss / d input[t]||: the gradient backpropagation through time carries back "
                "to step t (first and last recorded step).",
                "",
                "| layer | record | t = 0 | t = L/4 | t = L/2 | t = 3L/4 | t = L-1 | first/last |",
                "|---|---|---:|---:|---:|---:|---:|---:|",
            ]
            for k in self.recurrent:
                records = self.time_grad_norms[k]["input"]
                for which, idx in (("first", 0), ("last", len(records) - 1)):
                    norms = records[idx]
                    if norms is None or len(norms) == 0:
                        continue
                    length = len(norms)
                    picks = [norms[int(round(f * (length - 1)))] for f in (0, 0.25, 0.5, 0.75, 1)]
                    ratio = norms[0] / norms[-1] if norms[-1] > 0 else float("nan")
                    lines.append(
                        f"| `{k}` | {which} (step {self.steps[idx]}) | "
                        + " | ".join(_fmt(float(v)) for v in picks)
                        + f" | {_fmt(float(ratio))} |"
                    )
                    if len(records) == 1:
                        break
        lines += ["", "## Diagnosis", ""]
        findings = self.findings()
        if not findings:
            lines.append(
                "No vanishing or exploding gradients, dead ReLUs or saturation detected "
                f"(vanishing: first layer < {self.vanish_ratio:g}x the last or < "
                f"{self.vanish_abs:g}; exploding: not finite, > {self.explode_abs:g}, or first "
                f"layer > {self.explode_ratio:g}x the last)."
            )
        seen_kinds = []
        for f in findings:
            steps = f.steps
            when = (
                f"step {steps[0]}"
                if len(steps) == 1
                else f"{len(steps)} of {n} recorded steps ({steps[0]}..{steps[-1]})"
            )
            worst = f" (the worst, at step {f.worst_step})" if len(steps) > 1 else ""
            lines.append(f"- **{f.title}** (`{f.layer}`, {when}): {f.message}{worst}.")
            if f.kind not in seen_kinds:
                seen_kinds.append(f.kind)
        for kind in seen_kinds:
            lines += ["", f"*{_TITLES[kind]}.* {REMEDIES[kind]}"]
        return "\n".join(lines) + "\n"

    def plot(self, path, dpi: int = 100):
        """Write a PNG: gradient norm per layer over steps, the per-layer profile (first, mean,
        last record), update/weight ratios over steps, and, with recurrent layers, the gradient
        norm per time step. Size: 4.5 x 3.8 inches per panel at `dpi`."""
        self._require_records()
        plt = _pyplot()
        from matplotlib.ticker import MaxNLocator

        panels = 4 if self.recurrent else 3
        fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.8))
        cmap = plt.get_cmap("viridis")
        count = max(len(self.layers) - 1, 1)
        colors = {k: cmap(i / count) for i, k in enumerate(self.layers)}
        label_all = len(self.layers) <= 8

        ax = axes[0]
        for k in self.layers:
            ax.plot(
                self.steps,
                _positive(self.grad_norms[k]),
                color=colors[k],
                label=k if label_all else None,
            )
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title("gradient norm per layer")
        _legend(ax, label_all, "dark: first layer, light: last")

        ax = axes[1]
        x = list(range(1, len(self.layers) + 1))
        grid = np.array([self.grad_norms[k] for k in self.layers], dtype=np.float64)
        ax.plot(x, _positive(grid[:, 0]), "o-", ms=3, label=f"step {self.steps[0]}")
        if len(self.steps) > 1:
            with np.errstate(all="ignore"):
                ax.plot(x, _positive(np.nanmean(grid, axis=1)), "s--", ms=3, label="mean")
            ax.plot(x, _positive(grid[:, -1]), "^-", ms=3, label=f"step {self.steps[-1]}")
        ax.set_yscale("log")
        ax.set_xlabel("layer (first to last)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("gradient norm by depth")
        ax.legend(fontsize=7)

        ax = axes[2]
        for k in self.layers:
            ax.plot(
                self.steps,
                _positive(self.update_ratios[k]),
                color=colors[k],
                label=k if label_all else None,
            )
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title("update / weight norm")
        _legend(ax, label_all, "dark: first layer, light: last")

        if self.recurrent:
            ax = axes[3]
            for k in self.recurrent:
                records = [r for r in self.time_grad_norms[k]["input"] if r is not None]
                if records:
                    ax.plot(_positive(records[0]), label=f"{k}, step {self.steps[0]}")
                    if len(records) > 1:
                        ax.plot(_positive(records[-1]), "--", label=f"{k}, last")
            ax.set_yscale("log")
            ax.set_xlabel("time step t")
            ax.set_title("||d loss / d input[t]||")
            ax.legend(fontsize=7)
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.tight_layout()
        _save(fig, path, dpi)
        return path


def _positive(values):
    """Non-positive or missing values become NaN so log axes skip them."""
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    a[~(a > 0)] = np.nan
    return a


def _legend(ax, label_all: bool, note: str) -> None:
    if label_all:
        ax.legend(fontsize=7)
    else:
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=7)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - matplotlib is an extra
        raise ImportError("plotting needs matplotlib: pip install 'retrograd[plot]'") from e
    return plt


def _save(fig, path, dpi: int) -> None:
    """Save atomically (a temporary file, then a rename); the canvas keeps figsize * dpi."""
    import matplotlib.pyplot as plt

    path = os.fspath(path)
    tmp = path + ".tmp.png"
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


class GradientMonitorCallback:
    """The monitor as a training callback (retrograd.train.Callback's hooks): records every
    `every`-th batch; writes `gradient_report.md` and `gradient_stats.json` into `directory` after
    each epoch and `gradient_flow.png` at the end of training.

    >>> Trainer(model, opt, F.cross_entropy, callbacks=[GradientMonitorCallback("runs/x")])
    """

    report_name = "gradient_report.md"
    stats_name = "gradient_stats.json"
    plot_name = "gradient_flow.png"

    def __init__(self, directory, every: int = 1, **thresholds) -> None:
        self.directory = os.fspath(directory)
        self.every = every
        self.thresholds = thresholds
        self.monitor: GradientMonitor | None = None

    @property
    def report_path(self) -> str:
        return os.path.join(self.directory, self.report_name)

    @property
    def plot_path(self) -> str:
        return os.path.join(self.directory, self.plot_name)

    @property
    def stats_path(self) -> str:
        return os.path.join(self.directory, self.stats_name)

    def on_train_begin(self, trainer) -> None:
        if self.monitor is None or self.monitor.model is not trainer.model:
            self.monitor = GradientMonitor(trainer.model, every=self.every, **self.thresholds)
        else:
            self.monitor.attach()
            self.monitor._take_snapshot()

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        pass

    def on_batch_end(self, trainer, batch: int, logs: dict) -> None:
        self.monitor.step(logs.get("loss"))

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        self._write(plot=False)

    def on_train_end(self, trainer) -> None:
        self._write(plot=True)
        self.monitor.remove()

    def _write(self, plot: bool) -> None:
        if self.monitor is None or not self.monitor.steps:
            return
        os.makedirs(self.directory, exist_ok=True)
        tmp = self.report_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.monitor.report())
        os.replace(tmp, self.report_path)
        self.monitor.save_json(self.stats_path)
        if plot:
            self.monitor.plot(self.plot_path)
