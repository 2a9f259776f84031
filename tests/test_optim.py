"""Optimizers against torch.optim: 50-step trajectories, param groups, state_dict, errors."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest
import torch

import retrograd as rg
import retrograd.optim as optim
from retrograd.nn.parameter import Parameter

RNG = np.random.default_rng(1234)
W0 = RNG.normal(size=(3, 4))
B0 = RNG.normal(size=(5,))
S0 = np.array(0.7)
C = RNG.normal(size=(3, 4))
STEPS = 50


def loss_fn(w, b, s, c, sign=1.0):
    """A coupled quartic (the same expression in both libraries); sign=-1 for maximize."""
    quartic = ((w**4) * 0.25 - w * c).sum() * (1 + 0.1 * s * s) + (w * w).sum() * 0.5
    return (quartic + ((b - 0.3) ** 4).sum() * 0.5 + (b * s).sum() + (s - 0.5) ** 4 * 0.25) * sign


def _groups(params, group_opts):
    if group_opts is None:
        return params
    # one group per option dict, params split in order (w | b, s)
    split = [params[:1], params[1:]]
    return [dict(opts, params=ps) for opts, ps in zip(group_opts, split)]


def rg_params(dtype=np.float64):
    return [Parameter(rg.tensor(a.astype(dtype))) for a in (W0, B0, S0)]


def torch_params(dtype=torch.float64):
    return [torch.tensor(a, dtype=dtype, requires_grad=True) for a in (W0, B0, S0)]


def run_rg(name, kwargs, steps=STEPS, group_opts=None, dtype=np.float64, sign=1.0):
    params = rg_params(dtype)
    c = rg.tensor(C.astype(dtype))
    opt = getattr(optim, name)(_groups(params, group_opts), **kwargs)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(*params, c, sign).backward()
        opt.step()
        trajectory.append([p.data.copy() for p in params])
    return trajectory, opt, params


def run_torch(name, kwargs, steps=STEPS, group_opts=None, dtype=torch.float64, sign=1.0):
    params = torch_params(dtype)
    c = torch.tensor(C, dtype=dtype)
    opt = getattr(torch.optim, name)(_groups(params, group_opts), **kwargs)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(*params, c, sign).backward()
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory, opt, params


def assert_trajectories_close(ours, theirs, rtol=1e-5, atol=1e-9):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            assert x.dtype == y.dtype
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {step + 1}")


def _grid(**axes):
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


CASES = []
for kw in _grid(
    momentum=[0, 0.9], dampening=[0, 0.3], nesterov=[False, True], weight_decay=[0, 0.1]
):
    if kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0):
        continue
    CASES.append(("SGD", dict(lr=0.01, **kw)))
CASES += [
    ("Adam", dict(lr=0.02, **kw)) for kw in _grid(amsgrad=[False, True], weight_decay=[0, 0.1])
]
CASES += [("Adam", dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True))]
CASES += [("Adam", dict(lr=0.01, betas=(0.3, 0.8), eps=1e-6))]
CASES += [
    ("AdamW", dict(lr=0.02, **kw)) for kw in _grid(amsgrad=[False, True], weight_decay=[0, 0.1])
]
CASES += [
    ("RMSprop", dict(lr=0.005, **kw))
    for kw in _grid(centered=[False, True], momentum=[0, 0.8], weight_decay=[0, 0.1])
]
CASES += [("RMSprop", dict(lr=0.005, alpha=0.9, eps=1e-6))]
CASES += [
    ("Adagrad", dict(lr=0.05, **kw))
    for kw in _grid(lr_decay=[0, 0.05], initial_accumulator_value=[0, 0.1], weight_decay=[0, 0.1])
]
CASES += [("Adagrad", dict(lr=0.05, eps=1e-6))]
CASES += [("Adamax", dict(lr=0.02, **kw)) for kw in _grid(weight_decay=[0, 0.1])]
CASES += [("Adamax", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-4))]
CASES += [
    ("NAdam", dict(lr=0.02, **kw))
    for kw in _grid(weight_decay=[0, 0.1], decoupled_weight_decay=[False, True])
]
CASES += [("NAdam", dict(lr=0.02, momentum_decay=0.01, betas=(0.8, 0.99)))]


def _case_id(case):
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_trajectory_matches_torch(case, maximize):
    name, kwargs = case
    kwargs = dict(kwargs, maximize=maximize)
    sign = -1.0 if maximize else 1.0  # ascend -loss: the same stable trajectory
    ours, opt, _ = run_rg(name, kwargs, sign=sign)
    theirs, topt, _ = run_torch(name, kwargs, sign=sign)
    assert_trajectories_close(ours, theirs)
    # the state has PyTorch's keys and values
    ours_sd, theirs_sd = opt.state_dict(), topt.state_dict()
    assert sorted(ours_sd["state"]) == sorted(theirs_sd["state"])
    for i, st in theirs_sd["state"].items():
        assert sorted(ours_sd["state"][i]) == sorted(st)
        for key, value in st.items():
            np.testing.assert_allclose(
                ours_sd["state"][i][key].data, value.numpy(), rtol=1e-5, atol=1e-9
            )
    for ours_g, theirs_g in zip(ours_sd["param_groups"], theirs_sd["param_groups"]):
        for key, value in ours_g.items():
            assert theirs_g[key] == value, key


GROUP_CASES = [
    ("SGD", dict(lr=0.01), [dict(momentum=0.9, nesterov=True), dict(lr=0.02, weight_decay=0.1)]),
    ("Adam", dict(lr=0.01), [dict(amsgrad=True), dict(lr=0.03, betas=(0.8, 0.99))]),
    ("AdamW", dict(lr=0.01), [dict(weight_decay=0.2), dict(lr=0.03, amsgrad=True)]),
    ("RMSprop", dict(lr=0.005), [dict(centered=True), dict(momentum=0.5, alpha=0.9)]),
    ("Adagrad", dict(lr=0.05), [dict(lr_decay=0.1), dict(initial_accumulator_value=0.5)]),
    ("Adamax", dict(lr=0.02), [dict(weight_decay=0.1), dict(lr=0.01, eps=1e-3)]),
    ("NAdam", dict(lr=0.02), [dict(decoupled_weight_decay=True, weight_decay=0.1), dict()]),
]


@pytest.mark.parametrize("name,kwargs,group_opts", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_param_groups_with_different_options(name, kwargs, group_opts):
    ours, opt, _ = run_rg(name, kwargs, group_opts=group_opts)
    theirs, _, _ = run_torch(name, kwargs, group_opts=group_opts)
    assert_trajectories_close(ours, theirs)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 2]
    assert opt.param_groups[1]["lr"] == group_opts[1].get("lr", kwargs["lr"])


ALL = [
    ("SGD", dict(lr=0.01, momentum=0.9)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01)),
    ("Adamax", dict(lr=0.02)),
    ("NAdam", dict(lr=0.02)),
]
ALL_IDS = [c[0] for c in ALL]


def _steps(opt, params, n):
    c = rg.tensor(C.astype(params[0].dtype))
    for _ in range(n):
        opt.zero_grad()
        loss_fn(*params, c).backward()
        opt.step()


def _fresh(name, kwargs, values, group_opts=None):
    params = [Parameter(rg.tensor(v.copy())) for v in values]
    return getattr(optim, name)(_groups(params, group_opts), **kwargs), params


def _to_files(sd):
    """What a checkpoint keeps: arrays, and the rest through JSON (int keys become strings)."""
    state = {
        i: {k: (None if v is None else rg.tensor(np.array(v.data))) for k, v in st.items()}
        for i, st in sd["state"].items()
    }
    groups = json.loads(json.dumps(sd["param_groups"]))
    return {"state": {str(i): st for i, st in state.items()}, "param_groups": groups}


@pytest.mark.parametrize("through_files", [False, True])
@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_state_dict_round_trip_is_bitwise(name, kwargs, through_files):
    group_opts = [dict(), dict(lr=kwargs["lr"] * 0.5)]
    opt, params = _fresh(name, kwargs, [W0, B0, S0], group_opts)
    _steps(opt, params, 20)
    uninterrupted = [p.data.copy() for p in params]

    opt, params = _fresh(name, kwargs, [W0, B0, S0], group_opts)
    _steps(opt, params, 10)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1, 2]
    if through_files:
        sd = _to_files(sd)
    resumed_opt, resumed = _fresh(name, kwargs, [p.data for p in params], group_opts)
    resumed_opt.load_state_dict(sd)
    del opt, sd  # the loaded optimizer owns copies, not the saved tensors
    _steps(resumed_opt, resumed, 10)
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(a.data, b)


def test_loaded_state_is_a_copy():
    opt, params = _fresh("Adam", dict(lr=0.01), [W0, B0, S0])
    _steps(opt, params, 3)
    sd = opt.state_dict()
    other, other_params = _fresh("Adam", dict(lr=0.01), [W0, B0, S0])
    other.load_state_dict(sd)
    before = sd["state"][0]["exp_avg"].data.copy()
    _steps(other, other_params, 2)
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"].data, before)
    assert other.state[other_params[0]]["exp_avg"].data is not sd["state"][0]["exp_avg"].data


def _snapshot(opt):
    sd = opt.state_dict()
    state = {i: {k: np.array(v.data) for k, v in st.items()} for i, st in sd["state"].items()}
    return state, json.dumps(sd["param_groups"])


@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_load_state_dict_rejects_mismatches_without_changing_anything(name, kwargs):
    opt, params = _fresh(name, kwargs, [W0, B0, S0], [dict(), dict()])
    _steps(opt, params, 3)
    donor, donor_params = _fresh(name, dict(kwargs, lr=0.0123), [W0, B0, S0], [dict(), dict()])
    _steps(donor, donor_params, 5)
    good = donor.state_dict()
    before = _snapshot(opt)

    one_group, _ = _fresh(name, kwargs, [W0, B0, S0])
    _steps(one_group, one_group.param_groups[0]["params"], 1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(one_group.state_dict())

    wrong_size = {
        "state": {},
        "param_groups": [dict(good["param_groups"][0], params=[0, 1]), good["param_groups"][1]],
    }
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        opt.load_state_dict(wrong_size)

    # state 2 (the 0-d parameter) given the (5,) state of parameter 1: caught before any change
    misshaped = {"state": dict(good["state"]), "param_groups": good["param_groups"]}
    misshaped["state"][2] = good["state"][1]
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(misshaped)

    after = _snapshot(opt)
    assert after[1] == before[1]
    assert sorted(after[0]) == sorted(before[0])
    for i in before[0]:
        for k in before[0][i]:
            np.testing.assert_array_equal(after[0][i][k], before[0][i][k])
    opt.load_state_dict(good)  # and a good one still loads
    assert opt.param_groups[0]["lr"] == 0.0123


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    params = rg_params()
    opt = optim.SGD(params, lr=0.1)
    loss_fn(*params, rg.tensor(C)).backward()
    grads = [p.grad for p in params]
    versions = [g._version[0] for g in grads]
    opt.zero_grad(set_to_none=set_to_none)
    for p, g, v in zip(params, grads, versions):
        if set_to_none:
            assert p.grad is None
        else:
            assert p.grad is g and not g.requires_grad
            assert g._version[0] == v + 1
            np.testing.assert_array_equal(g.data, np.zeros_like(p.data))
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_closure_reevaluates_with_grad_enabled_and_returns_loss():
    params = rg_params()
    tparams = torch_params()
    c, tc = rg.tensor(C), torch.tensor(C)
    opt = optim.SGD(params, lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(tparams, lr=0.01, momentum=0.9)
    calls = []

    def closure():
        calls.append(rg.is_grad_enabled())
        opt.zero_grad()
        loss = loss_fn(*params, c)
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = loss_fn(*tparams, tc)
        loss.backward()
        return loss

    for _ in range(10):
        with rg.no_grad():
            loss = opt.step(closure)
        tloss = topt.step(tclosure)
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    assert calls == [True] * 10
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)
    assert opt.step() is None


@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_float32_stays_float32(name, kwargs):
    ours, opt, params = run_rg(name, kwargs, steps=20, dtype=np.float32)
    theirs, _, _ = run_torch(name, kwargs, steps=20, dtype=torch.float32)
    for p in params:
        assert p.dtype == np.float32 and p.grad.dtype == np.float32
    for st in opt.state.values():
        for key, value in st.items():
            assert value.dtype == np.float32, key  # step counters are float32 too, as PyTorch
    assert_trajectories_close(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_update_is_in_place_and_builds_no_graph(name, kwargs):
    params = rg_params()
    arrays = [p.data for p in params]
    opt = getattr(optim, name)(params, **kwargs)
    loss_fn(*params, rg.tensor(C)).backward()
    params[1].grad = None  # no gradient: skipped, its state untouched
    opt.step()
    for p, a in zip(params, arrays):
        assert p.data is a and p.grad_fn is None and p.requires_grad
    assert [p._version[0] for p in params] == [1, 0, 1]
    assert params[1].data.tolist() == B0.tolist()
    if name != "Adagrad":  # Adagrad creates all its state at construction, as PyTorch
        assert params[1] not in opt.state or not opt.state[params[1]]


def test_adagrad_state_exists_from_construction():
    params = rg_params()
    opt = optim.Adagrad(params, initial_accumulator_value=0.25)
    topt = torch.optim.Adagrad(torch_params(), initial_accumulator_value=0.25)
    ours, theirs = opt.state_dict()["state"], topt.state_dict()["state"]
    assert sorted(ours) == sorted(theirs) == [0, 1, 2]
    np.testing.assert_array_equal(ours[1]["sum"].data, theirs[1]["sum"].numpy())
    assert float(ours[1]["step"].data) == 0.0


def test_sgd_without_momentum_keeps_no_state():
    ours, opt, _ = run_rg("SGD", dict(lr=0.01), steps=3)
    assert opt.state_dict()["state"] == {}


def test_add_param_group():
    params = rg_params()
    tparams = torch_params()
    opt = optim.Adam(params[:2], lr=0.01)
    topt = torch.optim.Adam(tparams[:2], lr=0.01)
    opt.add_param_group({"params": params[2], "lr": 0.05, "amsgrad": True})
    topt.add_param_group({"params": tparams[2], "lr": 0.05, "amsgrad": True})
    assert opt.param_groups[1]["params"] == [params[2]]
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    c, tc = rg.tensor(C), torch.tensor(C)
    for _ in range(20):
        opt.zero_grad()
        topt.zero_grad()
        loss_fn(*params, c).backward()
        loss_fn(*tparams, tc).backward()
        opt.step()
        topt.step()
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [params[0]]})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([params[0]])


def test_named_parameters_are_accepted():
    params = rg_params()
    opt = optim.SGD([("w", params[0]), ("b", params[1])], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]


def test_constructor_errors():
    params = rg_params()
    with pytest.raises(ValueError, match="^optimizer got an empty parameter list$"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="^Nesterov momentum requires a momentum and zero"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="^Nesterov momentum requires a momentum and zero"):
        optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="^Invalid learning rate: -1$"):
        optim.SGD(params, lr=-1)
    with pytest.raises(ValueError, match="^Invalid learning rate: -0.1$"):
        optim.Adam(params, lr=-0.1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        optim.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid momentum value: -0.5"):
        optim.RMSprop(params, momentum=-0.5)
    with pytest.raises(ValueError, match="Invalid lr_decay value: -1"):
        optim.Adagrad(params, lr_decay=-1)
    with pytest.raises(ValueError, match="Invalid momentum_decay value: -1"):
        optim.NAdam(params, momentum_decay=-1)
    with pytest.raises(ValueError, match="^can't optimize a non-leaf Tensor$"):
        optim.SGD([params[0] * 2], lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        optim.SGD([{"params": [params[0]]}, {"params": [params[0], params[1]]}], lr=0.1)
    with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts"):
        optim.SGD(params[0], lr=0.1)
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="ordering of tensors in sets"):
        optim.SGD([{"params": set(params)}], lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optim.SGD([params[0], params[0]], lr=0.1)
    assert any("duplicate parameters" in str(w.message) for w in caught)


def test_defaults_and_repr_follow_torch():
    params = rg_params()
    for name, extra in [("AdamW", {}), ("Adamax", {}), ("NAdam", {}), ("RMSprop", {})]:
        ours = getattr(optim, name)(params, **extra).defaults
        theirs = getattr(torch.optim, name)(torch_params(), **extra).defaults
        for key, value in ours.items():
            assert theirs[key] == value, (name, key)
    assert optim.AdamW(params).defaults["weight_decay"] == 1e-2
    assert optim.SGD(params).defaults["lr"] == 1e-3
    text = repr(optim.SGD(params, lr=0.1))
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1\n" in text


def test_retrograd_module_parameters_train():
    """A least-squares fit through a Parameter converges (the optimizer works end to end)."""
    gen = np.random.default_rng(0)
    x = gen.normal(size=(64, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    w = Parameter(rg.zeros(3, dtype=rg.float64))
    b = Parameter(rg.zeros((), dtype=rg.float64))
    opt = optim.Adam([w, b], lr=0.1)
    xt, yt = rg.tensor(x), rg.tensor(y)
    for _ in range(300):
        opt.zero_grad()
        loss = ((xt @ w + b - yt) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-6
    np.testing.assert_allclose(w.data, [1.0, -2.0, 0.5], atol=1e-3)


def _large_run(name, kwargs, shape, dtype, steps=3):
    """Parameters big enough for the chunked update (and a small one), fixed gradients."""
    rng = np.random.default_rng(7)
    params = [Parameter(rg.tensor(rng.standard_normal(s).astype(dtype))) for s in (shape, (5,))]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(steps)]
    opt = getattr(optim, name)(params, **kwargs)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = rg.tensor(g)
        opt.step()
    return [p.data for p in params], opt.state_dict()


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_chunked_update_of_large_parameters_is_bitwise_the_whole_array_update(case, monkeypatch):
    """Large parameters are updated in flat chunks (no full-size temporaries); the bits equal the
    whole-array form, which small parameters keep. 600x701: not a multiple of the chunk."""
    import retrograd.optim.optimizer as base
    import retrograd.optim.sgd as sgd

    name, kwargs = case
    assert 600 * 701 >= base._LARGE
    chunked, state = _large_run(name, kwargs, (600, 701), np.float64)
    monkeypatch.setattr(base, "_LARGE", 1 << 62)
    monkeypatch.setattr(sgd, "_LARGE", 1 << 62)
    whole, state_whole = _large_run(name, kwargs, (600, 701), np.float64)
    for a, b in zip(chunked, whole):
        np.testing.assert_array_equal(a, b)
    for key, s in state["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(state_whole["state"][key][k]))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)),
        ("Adam", dict(lr=0.01, amsgrad=True)),
        ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ],
)
def test_chunked_update_with_the_large_chunk_size(name, kwargs, monkeypatch):
    import retrograd.optim.optimizer as base
    import retrograd.optim.sgd as sgd

    shape = (2048, 1025)  # >= 8 chunks of the large size, in float32
    assert base._chunk_size(2048 * 1025) == base._CHUNK
    chunked, _ = _large_run(name, kwargs, shape, np.float32, steps=2)
    monkeypatch.setattr(base, "_LARGE", 1 << 62)
    monkeypatch.setattr(sgd, "_LARGE", 1 << 62)
    whole, _ = _large_run(name, kwargs, shape, np.float32, steps=2)
    for a, b in zip(chunked, whole):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_sgd_on_large_parameters_gives_pytorchs_bits(threads, dtype, monkeypatch):
    """From sgd._AXPY_FROM elements the momentum-free step is one BLAS axpy, p + (-lr) g
    rounded once: PyTorch's add_(g, alpha=-lr) bit for bit, split over threads or whole."""
    from retrograd import parallel

    if np.dtype(dtype) not in parallel._blas_funcs().axpy:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 1 << 12)  # the pool splits it on 2
    before = parallel.get_num_threads()
    parallel.set_num_threads(threads)
    try:
        rng = np.random.default_rng(11)
        p0 = rng.standard_normal((70, 73)).astype(dtype)  # 5110 elements: not a multiple of 16
        grads = [rng.standard_normal(p0.shape).astype(dtype) for _ in range(3)]
        p = Parameter(rg.tensor(p0.copy()))
        tp = torch.tensor(p0.copy(), requires_grad=True)
        opt, topt = optim.SGD([p], lr=0.0123), torch.optim.SGD([tp], lr=0.0123)
        for g in grads:
            p.grad, tp.grad = rg.tensor(g), torch.tensor(g)
            opt.step()
            topt.step()
        np.testing.assert_array_equal(p.data, tp.detach().numpy())
    finally:
        parallel.set_num_threads(before)
