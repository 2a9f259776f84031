"""Callbacks: hooks into the training loop (early stopping, checkpoints, history files, curves).

Printing progress belongs to the command line (retrograd/cli.py), which passes its own callback.
"""

from __future__ import annotations

import json
import math
import os


class Callback:
    """Override any hook; `trainer` gives access to the model, optimizer and history."""

    def on_train_begin(self, trainer) -> None:
        pass

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        pass

    def on_batch_end(self, trainer, batch: int, logs: dict) -> None:
        pass

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, trainer) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; optionally
    put back the best weights at the end."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.mode = mode
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.best_state = None
        self.stopped_epoch = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors '{self.monitor}', but the epoch logs have only "
                f"{sorted(logs)}; pass validation data or monitor another metric"
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = {k: v.data.copy() for k, v in trainer.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.stop_training = True

    def on_train_end(self, trainer) -> None:
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]


class ModelCheckpoint(Callback):
    """Save a resumable checkpoint every epoch to `path` (and the best one to `best_path`);
    with `every_n_steps`, also every that many optimizer steps, mid-epoch (a resumed run
    continues with the next batch of the same epoch, bitwise as if never interrupted)."""

    def __init__(
        self,
        path,
        best_path=None,
        monitor: str = "val_loss",
        mode: str = "auto",
        every_n_steps: int | None = None,
    ) -> None:
        self.path, self.best_path, self.monitor = path, best_path, monitor
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps}")
        self.every_n_steps = every_n_steps

    def on_batch_end(self, trainer, batch: int, logs: dict) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.path)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        trainer.save_checkpoint(self.path)
        value = logs.get(self.monitor)
        if self.best_path is not None and value is not None:
            better = value < self.best if self.mode == "min" else value > self.best
            if better:
                self.best = value
                trainer.save_checkpoint(self.best_path)


class HistoryWriter(Callback):
    """Write the per-epoch history as CSV and JSON after every epoch (atomically)."""

    def __init__(self, directory) -> None:
        self.directory = os.fspath(directory)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        rows = trainer.history
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "epoch", k))
        _atomic_write(
            os.path.join(self.directory, "history.json"), json.dumps(rows, indent=1) + "\n"
        )
        lines = [",".join(keys)] + [",".join(_fmt(r.get(k, "")) for k in keys) for r in rows]
        _atomic_write(os.path.join(self.directory, "history.csv"), "\n".join(lines) + "\n")


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


class CurvePlotter(Callback):
    """Write loss and accuracy curves as PNG at the end of training (matplotlib, Agg)."""

    def __init__(self, directory) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, "curves.png")

    def on_train_end(self, trainer) -> None:
        plot_history(trainer.history, self.path)


def plot_history(history: list, path) -> None:
    """Loss (left) and accuracy (right) per epoch, train and validation."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - matplotlib is an extra
        raise ImportError("plotting needs matplotlib: pip install 'retrograd[plot]'") from e
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "acc")):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            values = [r.get(key) for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title("loss" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = os.fspath(path) + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CSVLogger(HistoryWriter):
    """Alias of HistoryWriter (Keras's name)."""
