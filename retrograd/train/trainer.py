"""A small training loop with callbacks: `Trainer(model, optimizer, loss_fn).fit(train, val)`."""

from __future__ import annotations

import math
import time

from retrograd.autograd.grad_mode import no_grad
from retrograd.train.callbacks import Callback
from retrograd.train.checkpoint import load_checkpoint, save_checkpoint
from retrograd.train.metrics import RunningMean, accuracy


class NonFiniteError(RuntimeError):
    """Training stopped: a loss or gradient was NaN or infinite."""


class Trainer:
    """Runs epochs of forward, loss, backward and optimizer step, with validation and callbacks.

    >>> trainer = Trainer(model, optim.Adam(model.parameters()), F.cross_entropy)
    >>> history = trainer.fit(train_loader, val_loader, epochs=10)
    """

    def __init__(
        self,
        model,
        optimizer,
        loss_fn,
        scheduler=None,
        scheduler_step: str = "epoch",
        clip_grad_norm: float | None = None,
        metrics: tuple = ("acc",),
        callbacks: list | None = None,
        check_finite: bool = True,
    ) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.scheduler, self.scheduler_step = scheduler, scheduler_step
        self.clip_grad_norm = clip_grad_norm
        self.metrics = tuple(metrics)
        self.callbacks: list[Callback] = list(callbacks or [])
        self.check_finite = check_finite
        self.history: list[dict] = []
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken, over all epochs
        self.stop_training = False
        self.config: dict = {}
        self._loaders: list = []
        self._progress: dict | None = None  # where the running epoch stands (for checkpoints)
        self._resumed_progress: dict | None = None

    # -- one step --------------------------------------------------------------------------------
    def train_step(self, inputs, targets) -> tuple[float, float | None]:
        self.model.train()
        output = self.model(inputs)
        loss = self.loss_fn(output, targets)
        if self.check_finite and not math.isfinite(loss.item()):
            from retrograd.train.finite import find_nonfinite

            cause = find_nonfinite(self.model, grads=False)  # a weight or buffer gone non-finite
            raise NonFiniteError(
                f"loss is {loss.item()} at epoch {self.epoch + 1}" + (f"; {cause}" if cause else "")
            )
        self.optimizer.zero_grad()
        loss.backward()
        if self.clip_grad_norm is not None:
            from retrograd.nn.utils import clip_grad_norm_

            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        if self.check_finite:
            self._check_gradients()
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_step == "batch":
            self.scheduler.step()
        acc = accuracy(output, targets) if "acc" in self.metrics else None
        return loss.item(), acc

    def _check_gradients(self) -> None:
        from retrograd.train.finite import find_nonfinite

        problem = find_nonfinite(self.model, values=False, buffers=False)
        if problem is not None:
            raise NonFiniteError(f"{problem}, at epoch {self.epoch + 1}")

    def evaluate(self, loader) -> dict:
        """Mean loss (and accuracy) over a loader, in eval mode, without a graph."""
        self.model.eval()
        loss_m, acc_m = RunningMean(), RunningMean()
        with no_grad():
            for inputs, targets in loader:
                output = self.model(inputs)
                n = len(targets)
                loss_m.add(self.loss_fn(output, targets).item(), n)
                if "acc" in self.metrics:
                    acc_m.add(accuracy(output, targets), n)
        out = {"loss": loss_m.value}
        if "acc" in self.metrics:
            out["acc"] = acc_m.value
        return out

    def predict(self, inputs):
        self.model.eval()
        with no_grad():
            return self.model(inputs)

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, train_loader, val_loader=None, epochs: int = 1) -> list[dict]:
        """Train until `epochs` epochs are complete (counting resumed ones) or a callback stops."""
        self._loaders = [train_loader]
        self.stop_training = False
        for cb in self.callbacks:
            cb.on_train_begin(self)
        while self.epoch < epochs and not self.stop_training:
            epoch = self.epoch + 1
            for cb in self.callbacks:
                cb.on_epoch_begin(self, epoch)
            start = time.perf_counter()
            loss_m, acc_m = RunningMean(), RunningMean()
            first = 0
            resumed, self._resumed_progress = self._resumed_progress, None
            if resumed is not None:  # a checkpoint taken mid-epoch: continue its running means
                loss_m.total, loss_m.count = resumed["loss"]
                acc_m.total, acc_m.count = resumed["acc"]
                first = resumed["batches"]
            # saved after the epoch's last batch: the loader has moved on to the next epoch
            batches = () if resumed and first >= len(train_loader) else train_loader
            for batch, (inputs, targets) in enumerate(batches, start=first):
                loss, acc = self.train_step(inputs, targets)
                self.global_step += 1
                n = len(targets)
                loss_m.add(loss, n)
                if acc is not None:
                    acc_m.add(acc, n)
                self._progress = {
                    "batches": batch + 1,
                    "loss": [loss_m.total, loss_m.count],
                    "acc": [acc_m.total, acc_m.count],
                }
                logs = {"loss": loss, "acc": acc}
                for cb in self.callbacks:
                    cb.on_batch_end(self, batch, logs)
            self._progress = None
            logs = {"epoch": epoch, "loss": loss_m.value}
            if "acc" in self.metrics:
                logs["acc"] = acc_m.value
            if val_loader is not None:
                for k, v in self.evaluate(val_loader).items():
                    logs["val_" + k] = v
            logs["lr"] = self.optimizer.param_groups[0]["lr"]
            logs["time"] = time.perf_counter() - start
            if self.scheduler is not None and self.scheduler_step == "epoch":
                if type(self.scheduler).__name__ == "ReduceLROnPlateau":
                    self.scheduler.step(logs.get("val_loss", logs["loss"]))
                else:
                    self.scheduler.step()
            self.history.append(logs)
            self.epoch = epoch
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, path, **extra) -> None:
        """Everything needed to resume bitwise: weights, optimizer/scheduler state, history,
        the default generator and every loader's position and generator."""
        loaders = [
            loader.state_dict() if hasattr(loader, "state_dict") else None
            for loader in self._loaders
        ]
        callbacks = [
            cb.state_dict() if hasattr(cb, "state_dict") else None for cb in self.callbacks
        ]
        save_checkpoint(
            path,
            self.model,
            self.optimizer,
            self.scheduler,
            epoch=self.epoch,
            global_step=self.global_step,
            progress=self._progress,
            history=self.history,
            config=self.config,
            loaders=loaders,
            callbacks=callbacks,
            **extra,
        )

    def load_checkpoint(self, path, loaders=()) -> dict:
        """Restore a checkpoint written by `save_checkpoint`; training continues after it."""
        extra = load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.epoch = int(extra.get("epoch", 0))
        self.global_step = int(extra.get("global_step", 0))
        self._resumed_progress = extra.get("progress")
        self.history = list(extra.get("history", []))
        for loader, state in zip(loaders, extra.get("loaders", [])):
            if state is not None and hasattr(loader, "load_state_dict"):
                loader.load_state_dict(state)
        for cb, state in zip(self.callbacks, extra.get("callbacks", [])):
            if state is not None and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(state)
        return extra
