"""The training loop: learning, callbacks, history files, checkpoints (atomic), bitwise resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.data import DataLoader, TensorDataset
from retrograd.nn import functional as F
from retrograd.train import (
    Callback,
    CurvePlotter,
    EarlyStopping,
    HistoryWriter,
    ModelCheckpoint,
    NonFiniteError,
    Trainer,
    load_checkpoint,
)


def _xor_data():
    x = rg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 8)
    y = rg.tensor([0, 1, 1, 0] * 8)
    return TensorDataset(x, y)


def _mlp(seed=0, dropout=0.0):
    rg.manual_seed(seed)
    layers = [nn.Linear(2, 16), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(16, 2))


def test_trainer_learns_xor():
    model = _mlp()
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.05), F.cross_entropy)
    data = _xor_data()
    history = trainer.fit(
        DataLoader(data, batch_size=8), DataLoader(data, batch_size=32), epochs=60
    )
    assert history[-1]["val_acc"] == 1.0
    assert history[-1]["loss"] < history[0]["loss"]
    assert [h["epoch"] for h in history] == list(range(1, 61))


def test_early_stopping_stops_and_restores_best_weights():
    class Record(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            logs["val_loss"] = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.3][epoch - 1]
            if epoch == 2:
                self.best = {k: v.data.copy() for k, v in trainer.model.state_dict().items()}

    model = _mlp()
    record = Record()
    stopper = EarlyStopping("val_loss", patience=3, restore_best_weights=True)
    trainer = Trainer(
        model, optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, callbacks=[record, stopper]
    )
    trainer.fit(DataLoader(_xor_data(), batch_size=8), epochs=7)
    assert trainer.epoch == 5 and stopper.stopped_epoch == 5 and stopper.best_epoch == 2
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.data, record.best[k])


def test_early_stopping_min_delta_and_missing_metric():
    stopper = EarlyStopping("val_loss", patience=1, min_delta=0.1)
    stopper.best = 1.0
    assert not stopper._improved(0.95) and stopper._improved(0.85)
    model = _mlp()
    trainer = Trainer(
        model, optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, callbacks=[EarlyStopping()]
    )
    with pytest.raises(KeyError, match="pass validation data"):
        trainer.fit(DataLoader(_xor_data(), batch_size=8), epochs=1)


def test_history_files_and_curves(tmp_path):
    model = _mlp()
    trainer = Trainer(
        model,
        optim.Adam(model.parameters(), lr=0.01),
        F.cross_entropy,
        callbacks=[HistoryWriter(tmp_path), CurvePlotter(tmp_path)],
    )
    data = _xor_data()
    trainer.fit(DataLoader(data, batch_size=8), DataLoader(data, batch_size=32), epochs=3)
    rows = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "val_acc" in rows[0]
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[0] == "epoch" and len(csv_lines) == 4
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (900, 350)


def test_non_finite_loss_stops_with_the_parameter_name():
    model = _mlp()
    with rg.no_grad():
        model[0].weight.data[0, 0] = np.nan
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), F.cross_entropy)
    with pytest.raises(NonFiniteError, match="loss is nan"):
        trainer.fit(DataLoader(_xor_data(), batch_size=8), epochs=1)


def _run(epochs, path=None, resume_from=None, seed=0):
    """Train with shuffling and dropout; optionally checkpoint each epoch or resume."""
    model = _mlp(seed, dropout=0.2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    loader = DataLoader(
        _xor_data(), batch_size=8, shuffle=True, generator=rg.Generator().manual_seed(seed + 1)
    )
    callbacks = [ModelCheckpoint(path)] if path else []
    trainer = Trainer(model, opt, F.cross_entropy, scheduler=sched, callbacks=callbacks)
    if resume_from:
        trainer.load_checkpoint(resume_from, loaders=[loader])
    trainer.fit(loader, epochs=epochs)
    return model, trainer


def test_resume_gives_bitwise_the_same_weights(tmp_path):
    full, _ = _run(6)
    path = tmp_path / "ckpt.safetensors"
    _run(3, path=path)
    rg.manual_seed(12345)  # disturb the global generator: the checkpoint must restore it
    resumed, trainer = _run(6, resume_from=path)
    assert trainer.epoch == 6 and len(trainer.history) == 6
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=k)


def test_checkpoint_round_trip_and_errors(tmp_path):
    model, trainer = _run(2, path=tmp_path / "c.safetensors")
    fresh = _mlp(seed=99, dropout=0.2)
    extra = load_checkpoint(tmp_path / "c.safetensors", fresh)
    assert extra["epoch"] == 2
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=k)
    wrong = nn.Sequential(nn.Linear(2, 3))
    with pytest.raises(RuntimeError, match="Error\\(s\\) in loading state_dict"):
        load_checkpoint(tmp_path / "c.safetensors", wrong)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import retrograd as rg
    from retrograd import nn
    from retrograd.train import save_checkpoint

    path = sys.argv[1]
    model = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024))
    i = 0
    while True:
        with rg.no_grad():
            for p in model.parameters():
                p.data[...] = i
        save_checkpoint(path, model, step=i)
        i += 1
        print(i, flush=True)
    """
)


def test_killing_the_writer_mid_save_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for delay in (0.05, 0.13, 0.21):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
        )
        proc.stdout.readline()  # one checkpoint exists
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        model = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024))
        extra = load_checkpoint(path, model, restore_rng=False)
        step = extra["step"]
        for p in model.parameters():  # the weights of exactly one completed save
            assert float(p.data.min()) == float(p.data.max()) == step
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) <= 3  # a killed writer may leave its temp file, never a torn target
