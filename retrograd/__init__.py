"""retrograd: backpropagation made real, fast and visible.

>>> import retrograd as rg
>>> x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
tensor([2., 4., 6.])
"""

from retrograd import (
    autograd,
    data,
    diagnostics,
    func,
    interpret,
    io,
    linalg,
    nn,
    optim,
    rules,
    utils,
    viz,
)
from retrograd.autograd.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from retrograd.autograd.tape import GradientTape, UnconnectedGradients
from retrograd.backend import (
    Generator,
    bool_,
    default_generator,
    float16,
    float32,
    float64,
    get_default_dtype,
    int8,
    int16,
    int32,
    int64,
    manual_seed,
    set_default_dtype,
    uint8,
)
from retrograd.creation import *  # noqa: F403
from retrograd.diagnostics import explain
from retrograd.io import load, save
from retrograd.ops import *  # noqa: F403
from retrograd.parallel import get_num_threads, set_num_threads
from retrograd.tensor import Tensor

bool = bool_  # noqa: A001  (retrograd.bool, as torch.bool)
half, double, long = float16, float64, int64
float = float32  # noqa: A001

__version__ = "0.1.0"
