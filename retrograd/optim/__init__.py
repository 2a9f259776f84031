"""Optimizers and learning-rate schedulers with PyTorch's names and semantics.

>>> opt = retrograd.optim.Adam(model.parameters(), lr=1e-3)
>>> sched = retrograd.optim.lr_scheduler.StepLR(opt, step_size=10)
"""

from retrograd.optim import lr_scheduler
from retrograd.optim.adagrad import Adagrad
from retrograd.optim.adam import Adam, Adamax, AdamW, NAdam
from retrograd.optim.optimizer import Optimizer
from retrograd.optim.rmsprop import RMSprop
from retrograd.optim.sgd import SGD

__all__ = [
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Optimizer",
    "RMSprop",
    "SGD",
    "lr_scheduler",
]
