"""Learning-rate schedulers against torch.optim.lr_scheduler: 100-step lr (and momentum)
sequences, composition, ReduceLROnPlateau on a fixed metric sequence, state_dict round trips."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.optim.lr_scheduler as tsched

import retrograd as rg
import retrograd.optim as optim
import retrograd.optim.lr_scheduler as rsched
from retrograd.nn.parameter import Parameter

STEPS = 100
# a metric that improves, plateaus, wiggles and improves again (for ReduceLROnPlateau)
METRICS = [
    float(v)
    for v in np.concatenate(
        [
            np.linspace(1.0, 0.5, 15),
            np.full(12, 0.5),
            0.5 + 0.01 * np.sin(np.arange(20)),
            np.linspace(0.49, 0.3, 10),
            np.full(25, 0.3) - 1e-6 * np.arange(25),
            np.linspace(0.3, 0.1, 19),
        ]
    )
]
assert len(METRICS) >= STEPS + 1


class Halve:
    """A callable object: LambdaLR keeps its __dict__ in the state (functions are not kept)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, epoch: int) -> float:
        return 0.5 ** (epoch // self.every)


def warm(epoch):
    return min(1.0, (epoch + 1) / 10)


def make_optimizer(lib, kind="SGD"):
    """Two param groups with different lrs, as each library builds them."""
    if lib is torch:
        params = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
        module = torch.optim
    else:
        params = [Parameter(rg.zeros(3)), Parameter(rg.zeros(2))]
        module = optim
    groups = [{"params": params[:1]}, {"params": params[1:], "lr": 0.05}]
    if kind == "SGD":
        return module.SGD(groups, lr=0.1, momentum=0.9)
    if kind == "Adam":
        return module.Adam(groups, lr=0.1, betas=(0.9, 0.99))
    return module.Adagrad(groups, lr=0.1)


# name -> (optimizer kind, factory(optimizer, scheduler module) -> list of schedulers to step)
CASES = {
    "StepLR": ("SGD", lambda o, m: [m.StepLR(o, step_size=7, gamma=0.5)]),
    "MultiStepLR": ("SGD", lambda o, m: [m.MultiStepLR(o, milestones=[10, 25, 25, 60], gamma=0.3)]),
    "ExponentialLR": ("SGD", lambda o, m: [m.ExponentialLR(o, gamma=0.95)]),
    "CosineAnnealingLR": ("SGD", lambda o, m: [m.CosineAnnealingLR(o, T_max=100)]),
    "CosineAnnealingLR-periods": (
        "SGD",
        lambda o, m: [m.CosineAnnealingLR(o, T_max=30, eta_min=0.001)],
    ),
    "LinearLR-warmup": (
        "SGD",
        lambda o, m: [m.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=20)],
    ),
    "LinearLR-decay": (
        "SGD",
        lambda o, m: [m.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=60)],
    ),
    "ConstantLR": ("SGD", lambda o, m: [m.ConstantLR(o, factor=0.5, total_iters=10)]),
    "LambdaLR": ("SGD", lambda o, m: [m.LambdaLR(o, lr_lambda=lambda e: 0.97**e)]),
    "LambdaLR-per-group": ("SGD", lambda o, m: [m.LambdaLR(o, lr_lambda=[warm, Halve(15)])]),
    "MultiplicativeLR": ("SGD", lambda o, m: [m.MultiplicativeLR(o, lr_lambda=lambda e: 0.98)]),
    "OneCycleLR-cos": ("SGD", lambda o, m: [m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=100)]),
    "OneCycleLR-linear": (
        "SGD",
        lambda o, m: [
            m.OneCycleLR(
                o,
                max_lr=0.8,
                total_steps=100,
                anneal_strategy="linear",
                pct_start=0.25,
                base_momentum=[0.8, 0.7],
            )
        ],
    ),
    "OneCycleLR-three-phase": (
        "SGD",
        lambda o, m: [m.OneCycleLR(o, max_lr=1.0, epochs=10, steps_per_epoch=10, three_phase=True)],
    ),
    "OneCycleLR-adam-beta1": (
        "Adam",
        lambda o, m: [m.OneCycleLR(o, max_lr=0.01, total_steps=100, div_factor=10.0)],
    ),
    "OneCycleLR-no-momentum": (
        "Adagrad",
        lambda o, m: [m.OneCycleLR(o, max_lr=0.3, total_steps=100, cycle_momentum=False)],
    ),
    "SequentialLR-warmup-cosine": (
        "SGD",
        lambda o, m: [
            m.SequentialLR(
                o,
                [m.LinearLR(o, start_factor=0.1, total_iters=10), m.CosineAnnealingLR(o, T_max=90)],
                milestones=[10],
            )
        ],
    ),
    "SequentialLR-three": (
        "Adam",
        lambda o, m: [
            m.SequentialLR(
                o,
                [
                    m.ConstantLR(o, factor=0.25, total_iters=3),
                    m.ExponentialLR(o, gamma=0.9),
                    m.StepLR(o, step_size=10, gamma=0.5),
                ],
                milestones=[5, 40],
            )
        ],
    ),
    "ChainedScheduler": (
        "SGD",
        lambda o, m: [
            m.ChainedScheduler(
                [m.ConstantLR(o, factor=0.1, total_iters=5), m.ExponentialLR(o, gamma=0.97)]
            )
        ],
    ),
    "two-schedulers-one-optimizer": (
        "SGD",
        lambda o, m: [
            m.CosineAnnealingLR(o, T_max=40, eta_min=0.01),
            m.MultiStepLR(o, milestones=[30, 70], gamma=0.5),
        ],
    ),
    "ReduceLROnPlateau": ("SGD", lambda o, m: [m.ReduceLROnPlateau(o, patience=3)]),
    "ReduceLROnPlateau-abs-cooldown": (
        "SGD",
        lambda o, m: [
            m.ReduceLROnPlateau(
                o,
                factor=0.5,
                patience=2,
                threshold=1e-3,
                threshold_mode="abs",
                cooldown=4,
                min_lr=[0.01, 0.02],
            )
        ],
    ),
    "ReduceLROnPlateau-max": (
        "Adam",
        lambda o, m: [m.ReduceLROnPlateau(o, mode="max", factor=0.7, patience=1, min_lr=0.03)],
    ),
    "ReduceLROnPlateau-max-abs": (
        "SGD",
        lambda o, m: [
            m.ReduceLROnPlateau(o, mode="max", threshold_mode="abs", threshold=0.01, patience=0)
        ],
    ),
}


def _record(opt):
    row = []
    for g in opt.param_groups:
        row.append(g["lr"])
        if "momentum" in g:
            row.append(g["momentum"])
        if "betas" in g:
            row.extend(g["betas"])
    return row


def _step(opt, schedulers, epoch):
    opt.step()
    for s in schedulers:
        if isinstance(s, (rsched.ReduceLROnPlateau, tsched.ReduceLROnPlateau)):
            s.step(METRICS[epoch])
        else:
            s.step()


def run(name, lib, steps=STEPS):
    kind, factory = CASES[name]
    opt = make_optimizer(lib, kind)
    schedulers = factory(opt, tsched if lib is torch else rsched)
    rows = [_record(opt)]
    last = [list(schedulers[-1].get_last_lr())]
    for epoch in range(steps):
        _step(opt, schedulers, epoch)
        rows.append(_record(opt))
        last.append(list(schedulers[-1].get_last_lr()))
    return rows, last, opt, schedulers


@pytest.mark.parametrize("name", list(CASES))
def test_sequence_matches_torch(name):
    ours, ours_last, opt, _ = run(name, rg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, theirs_last, topt, _ = run(name, torch)
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-10, atol=0)
    np.testing.assert_allclose(np.array(ours_last), np.array(theirs_last), rtol=1e-10, atol=0)
    # the keys schedulers add to param groups (initial_lr, max_lr, ...) are PyTorch's
    for ours_g, theirs_g in zip(opt.param_groups, topt.param_groups):
        for key in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
            assert (key in ours_g) == (key in theirs_g), key
            if key in ours_g:
                assert math.isclose(ours_g[key], theirs_g[key], rel_tol=1e-12)
    assert len(set(map(tuple, ours))) > 1 or name.startswith("ReduceLROnPlateau-max")


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip_through_json(name):
    uninterrupted, _, _, _ = run(name, rg)

    kind, factory = CASES[name]
    opt = make_optimizer(rg, kind)
    schedulers = factory(opt, rsched)
    rows = [_record(opt)]
    for epoch in range(40):
        _step(opt, schedulers, epoch)
        rows.append(_record(opt))
    opt_state = opt.state_dict()
    saved = json.loads(json.dumps([s.state_dict() for s in schedulers]))
    for s in saved:
        assert "optimizer" not in s
    del opt, schedulers

    # as PyTorch recommends: build the scheduler, then load the optimizer, then the scheduler
    opt = make_optimizer(rg, kind)
    schedulers = factory(opt, rsched)
    opt.load_state_dict(opt_state)
    for s, state in zip(schedulers, saved):
        s.load_state_dict(state)
    for epoch in range(40, STEPS):
        _step(opt, schedulers, epoch)
        rows.append(_record(opt))
    assert rows == uninterrupted


def test_initial_lr_is_recorded_and_required_to_resume():
    opt = make_optimizer(rg)
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified in param_groups"):
        rsched.StepLR(opt, step_size=3, last_epoch=5)
    sched = rsched.StepLR(opt, step_size=3)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]
    assert sched.base_lrs == [0.1, 0.05] and sched.last_epoch == 0
    assert sched.get_last_lr() == [0.1, 0.05]
    other = rsched.ExponentialLR(opt, gamma=0.5)  # a second scheduler keeps the first initial_lr
    assert other.base_lrs == [0.1, 0.05]


def test_resume_with_last_epoch_matches_torch():
    ours, theirs = make_optimizer(rg), make_optimizer(torch)
    for o in (ours, theirs):
        for g in o.param_groups:
            g["initial_lr"] = g["lr"]
    a = rsched.CosineAnnealingLR(ours, T_max=20, last_epoch=7)
    b = tsched.CosineAnnealingLR(theirs, T_max=20, last_epoch=7)
    for _ in range(10):
        ours.step()
        theirs.step()
        a.step()
        b.step()
        np.testing.assert_allclose(a.get_last_lr(), b.get_last_lr(), rtol=1e-12)


def test_deprecated_epoch_argument_uses_the_closed_form():
    ours, theirs = make_optimizer(rg), make_optimizer(torch)
    a = rsched.MultiStepLR(ours, milestones=[3, 6], gamma=0.5)
    b = tsched.MultiStepLR(theirs, milestones=[3, 6], gamma=0.5)
    with pytest.warns(UserWarning, match="The epoch parameter"):
        a.step(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b.step(7)
    assert a.get_last_lr() == b.get_last_lr() == [0.025, 0.0125]


def test_lambda_state_keeps_no_functions():
    opt = make_optimizer(rg)
    sched = rsched.LambdaLR(opt, lr_lambda=[warm, Halve(15)])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"every": 15}]
    json.dumps(state)
    other = rsched.LambdaLR(make_optimizer(rg), lr_lambda=[warm, Halve(3)])
    other.load_state_dict(state)
    assert other.lr_lambdas[1].every == 15 and other.lr_lambdas[0] is warm
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        rsched.LambdaLR(opt, lr_lambda=[warm])


def test_multistep_state_survives_json():
    opt = make_optimizer(rg)
    sched = rsched.MultiStepLR(opt, milestones=[5, 5, 8])
    state = json.loads(json.dumps(sched.state_dict()))
    other = rsched.MultiStepLR(make_optimizer(rg), milestones=[1])
    other.load_state_dict(state)
    assert other.milestones == sched.milestones


def test_errors():
    opt = make_optimizer(rg)
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        rsched.StepLR([], step_size=1)
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        rsched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode middle is unknown!"):
        rsched.ReduceLROnPlateau(opt, mode="middle")
    with pytest.raises(ValueError, match="threshold mode both is unknown!"):
        rsched.ReduceLROnPlateau(opt, threshold_mode="both")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 3"):
        rsched.ReduceLROnPlateau(opt, min_lr=[0, 0, 0])
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        rsched.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="Expected positive integer total_steps, but got 0"):
        rsched.OneCycleLR(opt, max_lr=0.1, total_steps=0)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
        rsched.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr must have the same length as"):
        rsched.OneCycleLR(opt, max_lr=[0.1], total_steps=10)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        rsched.OneCycleLR(make_optimizer(rg, "Adagrad"), max_lr=0.1, total_steps=10)
    one_cycle = rsched.OneCycleLR(make_optimizer(rg), max_lr=0.1, total_steps=3)
    for _ in range(3):
        one_cycle.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total"):
        one_cycle.step()
    with pytest.raises(ValueError, match="Starting multiplicative factor expected to be greater"):
        rsched.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="Constant multiplicative factor expected to be between"):
        rsched.ConstantLR(opt, factor=2)
    step = rsched.StepLR(opt, step_size=2)
    with pytest.raises(ValueError, match="number of schedulers 1 and the number of milestones"):
        rsched.SequentialLR(opt, [step], milestones=[3])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        rsched.SequentialLR(opt, [step, rsched.ReduceLROnPlateau(opt)], milestones=[3])
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        rsched.SequentialLR(opt, [rsched.StepLR(make_optimizer(rg), 2)], milestones=[])
    with pytest.raises(ValueError, match="expects at least one scheduler"):
        rsched.ChainedScheduler([])


def test_scheduled_lr_drives_the_optimizer():
    """The optimizer reads group['lr'] each step: a scheduled SGD run matches torch's."""
    values = np.array([1.0, -0.8, 0.5])
    p, t = Parameter(rg.tensor(values)), torch.tensor(values, requires_grad=True)
    opt, topt = optim.SGD([p], lr=0.1, momentum=0.5), torch.optim.SGD([t], lr=0.1, momentum=0.5)
    sched = rsched.OneCycleLR(opt, max_lr=0.05, total_steps=30)
    tsch = tsched.OneCycleLR(topt, max_lr=0.05, total_steps=30)
    for _ in range(30):
        opt.zero_grad()
        topt.zero_grad()
        (p**4).sum().backward()
        (t**4).sum().backward()
        opt.step()
        topt.step()
        sched.step()
        tsch.step()
    assert np.all(np.isfinite(p.data)) and np.all(np.abs(p.data) < np.abs(values))
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10)


def test_public_names():
    for name in rsched.__all__:
        assert hasattr(tsched, name), name
    for name in optim.__all__:
        assert hasattr(torch.optim, name), name
