"""Training: the loop, callbacks, checkpoints and metrics."""

from retrograd.train.callbacks import (
    Callback,
    CSVLogger,
    CurvePlotter,
    EarlyStopping,
    HistoryWriter,
    ModelCheckpoint,
    plot_history,
)
from retrograd.train.checkpoint import load_checkpoint, save_checkpoint
from retrograd.train.metrics import RunningMean, accuracy
from retrograd.train.trainer import NonFiniteError, Trainer
