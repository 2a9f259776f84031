"""Neural-network building blocks, PyTorch's names: Module, Parameter, containers, layers,
losses, `functional` (as F), `init` and `utils`.

>>> from retrograd import nn
>>> import retrograd.nn.functional as F
>>> net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
"""

from retrograd.nn import functional, init, layers, losses, utils
from retrograd.nn.containers import ModuleDict, ModuleList, Sequential
from retrograd.nn.layers import *  # noqa: F403
from retrograd.nn.losses import *  # noqa: F403
from retrograd.nn.module import Module
from retrograd.nn.parameter import Parameter

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "functional",
    "init",
    "utils",
    *layers.__all__,
    *[name for name in losses.__all__ if name[0].isupper()],  # the loss modules
]
