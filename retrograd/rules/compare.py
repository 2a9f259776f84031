"""Train the same network with each learning rule on the same data and budget, and compare.

    >>> result = compare_rules(datasets=("xor", "moons"), out_dir="runs/compare-rules")
    >>> print(result.table())          # accuracy, steps to a target loss, time, cosines
    >>> result.paths["figure"]         # learning curves, one panel per dataset

For every (dataset, rule) pair: the same initial weights (the rule's `build_model` with one seed;
Forward-Forward's network takes the label as extra inputs and has no output layer), the same
mini-batches in the same order, Adam at the rule's learning rate, the same number of steps.
Measured: test accuracy at the end; the step at which the training cross-entropy (of the rule's
class scores: the logits, or for Forward-Forward the goodness per label) first reaches the
target; the wall time of a step (the rule's update and the optimizer); and, at regular points
during training, the cosine similarity between each layer's update and backprop's gradient of the
same objective, averaged over those points.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from retrograd import optim
from retrograd.autograd.grad_mode import no_grad
from retrograd.backend import Generator
from retrograd.creation import from_numpy
from retrograd.nn import functional as F
from retrograd.rules.backprop import Backprop
from retrograd.rules.base import LearningRule
from retrograd.rules.feedback_alignment import DirectFeedbackAlignment, FeedbackAlignment
from retrograd.rules.forward_forward import ForwardForward
from retrograd.rules.forward_gradient import ForwardGradient
from retrograd.rules.hebbian import Hebbian
from retrograd.rules.predictive_coding import PredictiveCoding

__all__ = [
    "compare_rules",
    "default_rules",
    "load_task",
    "Task",
    "RuleResult",
    "Comparison",
    "RULE_NAMES",
    "TASKS",
    "train_rule",
    "write_comparison",
    "plot_learning_curves",
]

#: per dataset: training steps, the training cross-entropy counted as "reached", and Adam's
#: learning rate for every rule (None: each rule's `lr`, 1e-2); 784 inputs want a smaller step
TASKS = {
    "xor": {"steps": 300, "target_loss": 0.1, "lr": None},
    "moons": {"steps": 500, "target_loss": 0.1, "lr": None},
    "digits": {"steps": 800, "target_loss": 0.3, "lr": None},
    "fashion-mnist": {"steps": 1500, "target_loss": 0.6, "lr": 1e-3},
}

RULE_NAMES = ("backprop", "fa", "dfa", "pc", "hebbian", "forward-gradient", "ff")


def default_rules(
    n_classes: int, seed: int = 0, names: Sequence[str] = RULE_NAMES
) -> list[LearningRule]:
    """One of each rule (by short name), random ones seeded from `seed`."""
    makers: dict[str, Callable[[Generator], LearningRule]] = {
        "backprop": lambda g: Backprop(),
        "fa": lambda g: FeedbackAlignment(generator=g),
        "dfa": lambda g: DirectFeedbackAlignment(generator=g),
        "pc": lambda g: PredictiveCoding(),
        "hebbian": lambda g: Hebbian(),
        "forward-gradient": lambda g: ForwardGradient(generator=g),
        "ff": lambda g: ForwardForward(n_classes, generator=g),
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"unknown rules {unknown}; expected some of {list(makers)}")
    return [makers[n](Generator().manual_seed(seed + 1)) for n in names]


# -- data ------------------------------------------------------------------------------------------
@dataclass
class Task:
    """A classification task as standardised float32 arrays, scaled by the train split's
    statistics: per feature (for Fashion-MNIST one mean and std for all pixels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def load_task(name: str, seed: int = 0, data_root: str | None = None) -> Task:
    """xor, moons, digits or fashion-mnist as a `Task` (FileNotFoundError if absent)."""
    from retrograd.data import datasets

    if name in ("xor", "moons"):
        maker = datasets.xor if name == "xor" else datasets.two_moons
        x, y = (
            t.numpy() for t in maker(n_samples=400 if name == "xor" else 1000, seed=seed).tensors
        )
        order = np.random.default_rng(seed).permutation(len(x))
        cut = int(0.8 * len(x))
        train, test = order[:cut], order[cut:]
        x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    elif name == "digits":
        train, test = datasets.load_digits(seed=seed)
        (x_train, y_train), (x_test, y_test) = (
            tuple(t.numpy() for t in d.tensors) for d in (train, test)
        )
    elif name == "fashion-mnist":
        sets = [datasets.FashionMNIST(root=data_root, train=t, flatten=True) for t in (True, False)]
        (x_train, y_train), (x_test, y_test) = (
            tuple(t.numpy() for t in s.as_tensor_dataset().tensors) for s in sets
        )
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(TASKS)}")
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32)
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32)
    if name != "fashion-mnist":
        mean, std = x_train.mean(0), x_train.std(0)
        std[std == 0] = 1.0
    else:  # per-pixel scaling would blow up the nearly constant border pixels (to ~185)
        mean, std = x_train.mean(), x_train.std()
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return Task(
        name,
        (x_train - mean) / std,
        y_train.astype(np.int64),
        (x_test - mean) / std,
        y_test.astype(np.int64),
        n_classes,
    )


# -- results ---------------------------------------------------------------------------------------
@dataclass
class RuleResult:
    """One rule trained on one dataset."""

    dataset: str
    rule: str
    accuracy: float  # test accuracy at the end
    train_loss: float  # training cross-entropy at the end
    target_loss: float
    steps_to_target: int | None  # first evaluated step with train_loss <= target (None: never)
    steps: int
    lr: float  # Adam's learning rate
    ms_per_step: float
    layer_cosines: list = field(default_factory=list)  # per Linear layer, vs backprop
    curve: list = field(default_factory=list)  # [{"step", "loss", "accuracy"}]


@dataclass
class Comparison:
    """All results, where they were written, and datasets skipped (with why)."""

    results: list
    paths: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def caption(self) -> str:
        """One line saying how every rule was trained."""
        s = self.settings
        if not s:
            return ""
        hidden = "-".join(str(h) for h in s["hidden"])
        return (
            f"Same budget for every rule: MLP hidden {hidden} ({s['activation']}), Adam, "
            f"batch {s['batch_size']}, seed {s['seed']}; steps to target = first evaluation "
            f"(every ~{s['eval_every']} steps) with training cross-entropy <= target."
        )

    def table(self) -> str:
        """A Markdown table: one row per (dataset, rule)."""
        head = (
            "| dataset | rule | test acc | steps to loss <= target | ms/step | Adam lr "
            "| grad cosine vs backprop (per layer) |\n|---|---|---:|---:|---:|---:|---|"
        )
        rows = [head]
        for r in self.results:
            reached = "-" if r.steps_to_target is None else str(r.steps_to_target)
            cosines = " / ".join(f"{c:.2f}" for c in r.layer_cosines)
            rows.append(
                f"| {r.dataset} | {r.rule} | {100 * r.accuracy:.1f}% | {reached} "
                f"(target {r.target_loss:g}, {r.steps} steps) | {r.ms_per_step:.2f} | {r.lr:g} "
                f"| {cosines} |"
            )
        for name, why in self.skipped.items():
            rows.append(f"| {name} | (skipped: {why}) | | | | | |")
        return "\n".join(rows)

    def to_dict(self) -> dict:
        return {
            "results": [asdict(r) for r in self.results],
            "paths": dict(self.paths),
            "skipped": dict(self.skipped),
        }


# -- the runner ------------------------------------------------------------------------------------
def _cross_entropy_and_accuracy(rule, model, x, y) -> tuple[float, float]:
    with no_grad():
        scores = rule.logits(model, from_numpy(x))
        loss = float(F.cross_entropy(scores, from_numpy(y)).item())
        acc = float((scores.argmax(dim=-1).numpy() == y).mean())
    return loss, acc


def train_rule(
    rule: LearningRule,
    task: Task,
    steps: int,
    target_loss: float,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
    n_evals: int = 50,
    n_cosine_points: int = 5,
) -> RuleResult:
    """Train one rule on one task; see the module docstring for what is measured."""
    model = rule.build_model(
        task.x_train.shape[1],
        list(hidden),
        task.n_classes,
        activation,
        Generator().manual_seed(seed),
    )
    optimizer = optim.Adam(model.parameters(), lr=rule.lr if lr is None else lr)
    batches = np.random.default_rng(seed)
    n_train = len(task.x_train)
    eval_idx = np.random.default_rng(seed + 7).permutation(n_train)[:2000]
    x_eval, y_eval = task.x_train[eval_idx], task.y_train[eval_idx]
    eval_steps = set(np.linspace(0, steps, n_evals + 1).round().astype(int).tolist())
    cosine_steps = set(np.linspace(0, steps - 1, n_cosine_points).round().astype(int).tolist())
    curve, cosines = [], []
    elapsed = 0.0
    reached = None
    for step in range(steps + 1):
        if step in eval_steps:
            train_loss, _ = _cross_entropy_and_accuracy(rule, model, x_eval, y_eval)
            _, test_acc = _cross_entropy_and_accuracy(rule, model, task.x_test, task.y_test)
            curve.append({"step": step, "loss": train_loss, "accuracy": test_acc})
            if reached is None and train_loss <= target_loss:
                reached = step
        if step == steps:
            break
        idx = batches.integers(0, n_train, size=min(batch_size, n_train))
        xb, yb = from_numpy(task.x_train[idx]), from_numpy(task.y_train[idx])
        if step in cosine_steps:
            cosines.append(rule.gradient_cosines(model, xb, yb, F.cross_entropy))
        start = time.perf_counter()
        optimizer.zero_grad()
        rule.compute_grads(model, xb, yb, F.cross_entropy)
        optimizer.step()
        elapsed += time.perf_counter() - start
    layer_cosines = [float(v) for v in np.mean(np.array(cosines), axis=0)] if cosines else []
    return RuleResult(
        dataset=task.name,
        rule=rule.name,
        accuracy=curve[-1]["accuracy"],
        train_loss=curve[-1]["loss"],
        target_loss=target_loss,
        steps_to_target=reached,
        steps=steps,
        lr=optimizer.param_groups[0]["lr"],
        ms_per_step=1000 * elapsed / max(steps, 1),
        layer_cosines=layer_cosines,
        curve=curve,
    )


def compare_rules(
    datasets: Sequence[str] = ("xor", "moons", "digits"),
    rules: Sequence[str] | Callable[[int], list] | None = None,
    steps: int | dict | None = None,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    data_root: str | None = None,
    n_evals: int = 50,
    on_result: Callable[[RuleResult], None] | None = None,
) -> Comparison:
    """Train each rule on each dataset with the same budget; return (and write) the comparison.

    `rules`: short names (see `RULE_NAMES`), or a function n_classes -> list of rule objects;
    all of them by default. `steps`: one budget for every dataset, a {dataset: steps} dict, or
    None for `TASKS`'s defaults. With `out_dir`, writes rules.md (the table), rules.json (every
    number and curve) and rules.png (learning curves). A dataset whose files are absent
    (Fashion-MNIST) is skipped and listed in `Comparison.skipped`. `on_result(result)` is called
    as each (dataset, rule) pair finishes (the command line prints progress with it).
    """
    results, skipped = [], {}
    for name in datasets:
        try:
            task = load_task(name, seed, data_root)
        except (FileNotFoundError, OSError, ImportError) as e:
            skipped[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
            continue
        if callable(rules):
            rule_list = rules(task.n_classes)
        else:
            rule_list = default_rules(task.n_classes, seed, RULE_NAMES if rules is None else rules)
        budget = TASKS.get(name, {"steps": 500, "target_loss": 0.3, "lr": None})
        n_steps = budget["steps"] if steps is None else steps
        if isinstance(n_steps, dict):
            n_steps = n_steps.get(name, budget["steps"])
        for rule in rule_list:
            result = train_rule(
                rule,
                task,
                int(n_steps),
                budget["target_loss"],
                hidden=hidden,
                activation=activation,
                batch_size=batch_size,
                lr=budget["lr"] if lr is None else lr,
                seed=seed,
                n_evals=n_evals,
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
    settings = {
        "hidden": list(hidden),
        "activation": activation,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "eval_every": max(1, round(max(r.steps for r in results) / n_evals)) if results else 0,
    }
    comparison = Comparison(results, skipped=skipped, settings=settings)
    if out_dir is not None:
        write_comparison(comparison, out_dir)
    return comparison


def write_comparison(comparison: Comparison, out_dir) -> dict:
    """rules.md, rules.json and rules.png in out_dir; returns (and records) their paths."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "table": os.path.join(out_dir, "rules.md"),
        "json": os.path.join(out_dir, "rules.json"),
        "figure": os.path.join(out_dir, "rules.png"),
    }
    comparison.paths.update(paths)
    caption = comparison.caption()
    _atomic_write(paths["table"], comparison.table() + ("\n\n" + caption if caption else "") + "\n")
    _atomic_write(paths["json"], json.dumps(comparison.to_dict(), indent=1))
    plot_learning_curves(comparison.results, paths["figure"])
    return paths


def plot_learning_curves(results: Sequence[RuleResult], path) -> None:
    """One PNG: per dataset, training cross-entropy (top) and test accuracy (bottom) per rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.dataset for r in results)) or ["(none)"]
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.4), squeeze=False)
    for col, name in enumerate(names):
        for r in (r for r in results if r.dataset == name):
            steps = [p["step"] for p in r.curve]
            losses = [max(p["loss"], 1e-4) if math.isfinite(p["loss"]) else np.nan for p in r.curve]
            axes[0, col].plot(steps, losses, label=r.rule)
            axes[1, col].plot(steps, [100 * p["accuracy"] for p in r.curve], label=r.rule)
        axes[0, col].set_title(name)
        axes[0, col].set_yscale("log")
        axes[0, col].set_ylabel("train cross-entropy")
        axes[1, col].set_ylabel("test accuracy (%)")
        axes[1, col].set_xlabel("step")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    tmp = os.fspath(path) + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
