"""The Module API vs PyTorch for the same architecture: names and order of parameters, buffers,
children and modules; state_dict keys and shapes; loading a PyTorch state_dict (as NumPy) gives
equal outputs; strict loading errors; train/eval, zero_grad, requires_grad_, apply, to(dtype),
hooks and repr."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as tnn

import retrograd as rg
from retrograd import nn


def build(lib):
    """One architecture, written once for either library (lib is torch.nn or retrograd.nn)."""
    ones = torch.ones if lib is tnn else rg.ones
    zeros = torch.zeros if lib is tnn else rg.zeros

    class Block(lib.Module):
        def __init__(self, n):
            super().__init__()
            self.fc = lib.Linear(n, n)
            self.norm = lib.LayerNorm(n)
            self.act = lib.GELU()

        def forward(self, x):
            return x + self.act(self.norm(self.fc(x)))

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.Embedding(10, 6, padding_idx=0)
            self.scale = lib.Parameter(ones(6))
            self.inp = lib.Linear(6, 8)
            self.bn = lib.BatchNorm1d(8)
            self.blocks = lib.ModuleList([Block(8), Block(8)])
            self.heads = lib.ModuleDict({"a": lib.Linear(8, 3), "b": lib.Linear(8, 2, bias=False)})
            self.seq = lib.Sequential(lib.Tanh(), lib.Dropout(0.1), lib.Identity())
            self.register_buffer("steps", zeros(1))
            self.register_buffer("scratch", zeros(2), persistent=False)

        def forward(self, idx):
            x = self.emb(idx).mean(1) * self.scale
            x = self.bn(self.inp(x))
            for block in self.blocks:
                x = block(x)
            x = self.seq(x)
            return self.heads["a"](x), self.heads["b"](x)

    return Net()


@pytest.fixture
def pair():
    torch.manual_seed(0)
    tnet = build(tnn)
    net = build(nn)
    net.load_state_dict({k: v.detach().numpy().copy() for k, v in tnet.state_dict().items()})
    return net, tnet


def test_names_and_order_match_torch(pair):
    net, tnet = pair
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in tnet.named_buffers()]
    assert [n for n, _ in net.named_children()] == [n for n, _ in tnet.named_children()]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in tnet.named_modules()]
    assert [type(m).__name__ for m in net.modules()] == [type(m).__name__ for m in tnet.modules()]
    assert [type(m).__name__ for m in net.children()] == [type(m).__name__ for m in tnet.children()]
    assert len(list(net.parameters())) == len(list(tnet.parameters()))
    assert [n for n, _ in net.named_parameters(recurse=False)] == [
        n for n, _ in tnet.named_parameters(recurse=False)
    ]
    assert [n for n, _ in net.named_buffers(recurse=False)] == [
        n for n, _ in tnet.named_buffers(recurse=False)
    ]
    assert [n for n, _ in net.named_parameters(prefix="m")] == [
        n for n, _ in tnet.named_parameters(prefix="m")
    ]
    assert [n for n, _ in net.blocks.named_modules()] == [n for n, _ in tnet.blocks.named_modules()]


def test_state_dict_keys_shapes_dtypes_match_torch(pair):
    net, tnet = pair
    sd, tsd = net.state_dict(), tnet.state_dict()
    assert list(sd) == list(tsd)  # persistent buffers only, PyTorch's order
    for k, v in sd.items():
        assert tuple(v.shape) == tuple(tsd[k].shape), k
        assert str(v.dtype) == str(tsd[k].dtype).removeprefix("torch."), k
        assert not v.requires_grad and v.grad_fn is None
        np.testing.assert_array_equal(v.data, tsd[k].numpy())
    assert all(v.requires_grad for k, v in net.state_dict(keep_vars=True).items() if "weight" in k)


def test_loaded_torch_weights_give_equal_outputs(pair):
    net, tnet = pair
    idx = np.random.default_rng(0).integers(0, 10, size=(5, 4))
    for mode in ("train", "eval"):
        getattr(net, mode)()
        getattr(tnet, mode)()
        if mode == "train":  # dropout masks differ between libraries: switch it off alone
            net.seq[1].eval()
            tnet.seq[1].eval()
        outs, touts = net(rg.tensor(idx)), tnet(torch.tensor(idx))
        for o, t in zip(outs, touts):
            np.testing.assert_allclose(o.data, t.detach().numpy(), atol=1e-5, rtol=1e-4)
        sum(o.sum() for o in outs).backward()
        sum(t.sum() for t in touts).backward()
        tp = dict(tnet.named_parameters())
        for name, p in net.named_parameters():
            np.testing.assert_allclose(
                p.grad.data, tp[name].grad.numpy(), atol=1e-4, rtol=1e-3, err_msg=name
            )
        net.zero_grad()
        tnet.zero_grad()
        _same_buffers(net, tnet)


def _same_buffers(net, tnet):
    tb = dict(tnet.named_buffers())
    for name, b in net.named_buffers():
        np.testing.assert_allclose(b.data, tb[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_state_dict_round_trip_between_retrograd_models(pair):
    net, _ = pair
    other = build(nn)
    result = other.load_state_dict(net.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, a), b in zip(net.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=k)
    # values are copied, not shared
    other.inp.weight.data[...] = 0
    assert np.any(net.inp.weight.data)


def _torch_error(tnet, sd, strict=True):
    with pytest.raises(RuntimeError) as info:
        tnet.load_state_dict(sd, strict=strict)
    return str(info.value).replace("torch.Size", "retrograd.Size")


def test_strict_loading_errors_have_torchs_layout(pair):
    net, tnet = pair
    tsd = tnet.state_dict()
    for case in ("missing", "unexpected", "shape", "all"):
        bad = OrderedDict((k, v.clone()) for k, v in tsd.items())
        if case in ("missing", "all"):
            del bad["inp.bias"]
            del bad["blocks.1.norm.weight"]
        if case in ("unexpected", "all"):
            bad["extra.weight"] = torch.zeros(2)
            bad["blocks.2.fc.bias"] = torch.zeros(8)
        if case in ("shape", "all"):
            bad["heads.a.weight"] = torch.zeros(4, 8)
        expected = _torch_error(tnet, bad)
        before = {k: v.data.copy() for k, v in net.state_dict().items()}
        with pytest.raises(RuntimeError) as info:
            net.load_state_dict({k: v.numpy() for k, v in bad.items()})
        assert str(info.value) == expected
        for k, v in net.state_dict().items():  # nothing was changed
            np.testing.assert_array_equal(v.data, before[k])


def test_non_strict_loading_reports_keys_like_torch(pair):
    net, tnet = pair
    sd = {k: v.clone() for k, v in tnet.state_dict().items() if k != "inp.bias"}
    sd["extra"] = torch.zeros(1)
    tres = tnet.load_state_dict(sd, strict=False)
    res = net.load_state_dict({k: v.numpy() for k, v in sd.items()}, strict=False)
    assert res.missing_keys == tres.missing_keys
    assert res.unexpected_keys == tres.unexpected_keys
    assert repr(res) == repr(tres)
    assert repr(net.load_state_dict(tnet.state_dict())) == "<All keys matched successfully>"
    sd["heads.a.weight"] = torch.zeros(4, 8)  # a wrong shape is an error even when not strict
    expected = _torch_error(tnet, sd, strict=False)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict({k: v.numpy() for k, v in sd.items()}, strict=False)
    assert str(info.value) == expected


def test_tied_weights_appear_under_every_name_like_torch():
    tlin = tnn.Linear(2, 2)
    lin = nn.Linear(2, 2)
    tseq, seq = tnn.Sequential(tlin, tlin), nn.Sequential(lin, lin)
    assert list(seq.state_dict()) == list(tseq.state_dict())
    assert [n for n, _ in seq.named_parameters()] == [n for n, _ in tseq.named_parameters()]
    seq.load_state_dict({k: v.detach().numpy() for k, v in tseq.state_dict().items()})

    def tied(lib):
        class Tied(lib.Module):
            def __init__(self):
                super().__init__()
                self.a = lib.Linear(2, 2)
                self.b = lib.Linear(2, 2)
                self.b.weight = self.a.weight

        return Tied()

    t, r = tied(tnn), tied(nn)
    assert list(r.state_dict()) == list(t.state_dict())
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    r.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    assert r.a.weight is r.b.weight


def test_train_eval_flags(pair):
    net, tnet = pair
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.blocks.train()
    tnet.eval()
    tnet.blocks.train()
    assert [m.training for m in net.modules()] == [m.training for m in tnet.modules()]


def test_zero_grad_and_requires_grad(pair):
    net, _ = pair
    out = net(rg.tensor([[1, 2, 3], [4, 5, 6]]))
    (out[0].sum() + out[1].sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not np.any(p.grad.data) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())
    net.heads.requires_grad_()
    assert [p.requires_grad for p in net.parameters()] == [
        n.startswith("heads") for n, _ in net.named_parameters()
    ]


def test_apply_visits_children_first_like_torch(pair):
    net, tnet = pair
    seen, tseen = [], []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    tnet.apply(lambda m: tseen.append(type(m).__name__))
    assert seen == tseen

    def reinit(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)

    net.apply(reinit)
    assert not np.any(net.heads["a"].weight.data) and not np.any(net.inp.weight.data)


def test_to_dtype_like_torch(pair):
    net, tnet = pair
    assert net.to(rg.float64) is net
    tnet.to(torch.float64)
    sd, tsd = net.state_dict(), tnet.state_dict()
    for k in sd:
        assert str(sd[k].dtype) == str(tsd[k].dtype).removeprefix("torch."), k
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    out = net(rg.tensor([[1, 2], [3, 4]]))
    assert out[0].dtype == rg.float64
    net.float()
    assert all(p.dtype == rg.float32 for p in net.parameters())
    assert net.bn.num_batches_tracked.dtype == rg.int64
    net.double()
    assert net.bn.running_mean.dtype == rg.float64


def test_forward_hooks_like_torch(pair):
    net, tnet = pair
    calls = []

    for lib_net, tag in ((net, "rg"), (tnet, "torch")):

        def pre(module, args, tag=tag):
            calls.append((tag, "pre", type(module).__name__, len(args)))
            return (args[0] * 2,)

        def post(module, args, output, tag=tag):
            calls.append((tag, "post", type(module).__name__))
            return output + 1

        h1 = lib_net.inp.register_forward_pre_hook(pre)
        h2 = lib_net.inp.register_forward_hook(post)
        x = np.ones((2, 6), np.float32)
        tensor = rg.tensor if tag == "rg" else torch.tensor
        out = lib_net.inp(tensor(x))
        w = lib_net.inp.weight.detach().numpy() if tag == "torch" else lib_net.inp.weight.data
        b = lib_net.inp.bias.detach().numpy() if tag == "torch" else lib_net.inp.bias.data
        value = out.detach().numpy() if tag == "torch" else out.data
        np.testing.assert_allclose(value, (2 * x) @ w.T + b + 1, rtol=1e-6)
        h1.remove()
        h2.remove()
        h2.remove()  # removing twice is harmless
        out = lib_net.inp(tensor(x))
        value = out.detach().numpy() if tag == "torch" else out.data
        np.testing.assert_allclose(value, x @ w.T + b, rtol=1e-6)
    assert [c[1:] for c in calls if c[0] == "rg"] == [c[1:] for c in calls if c[0] == "torch"]


def test_repr_equals_torchs(pair):
    net, tnet = pair
    assert repr(net) == repr(tnet)
    assert repr(nn.Sequential()) == repr(tnn.Sequential())
    assert repr(nn.ModuleDict()) == repr(tnn.ModuleDict())
    assert repr(nn.ModuleList()) == repr(tnn.ModuleList())
    mixed = [nn.ReLU(), nn.ReLU(), nn.Tanh(), nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 3)]
    tmixed = [
        tnn.ReLU(),
        tnn.ReLU(),
        tnn.Tanh(),
        tnn.Linear(2, 2),
        tnn.Linear(2, 2),
        tnn.Linear(2, 3),
    ]
    assert repr(nn.ModuleList(mixed)) == repr(tnn.ModuleList(tmixed))


def test_containers_like_torch():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert seq[0] is layers[0] and seq[-1] is layers[2] and len(seq) == 3
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    seq.append(nn.Sigmoid())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    tnamed = tnn.Sequential(OrderedDict([("fc", tnn.Linear(2, 2)), ("act", tnn.Tanh())]))
    assert list(named.state_dict()) == list(tnamed.state_dict())
    assert repr(named) == repr(tnamed)
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.extend([nn.Linear(1, 2), nn.Linear(2, 2)])
    assert [n for n, _ in ml.named_parameters()][-1] == "2.bias"


def test_module_errors_like_torch():
    class Early(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    class TEarly(tnn.Module):
        def __init__(self):
            self.fc = tnn.Linear(1, 1)

    with pytest.raises(AttributeError, match="cannot assign module before Module.__init__"):
        Early()
    with pytest.raises(AttributeError, match="cannot assign module before Module.__init__"):
        TEarly()

    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        NoForward()(rg.ones(1))
    for name, msg in (("a.b", 'contain "."'), ("", 'be empty string ""')):
        with pytest.raises(KeyError) as info:
            nn.Module().register_buffer(name, rg.zeros(1))
        with pytest.raises(KeyError) as tinfo:
            tnn.Module().register_buffer(name, torch.zeros(1))
        assert str(info.value) == str(tinfo.value) and msg in str(info.value)


def test_parameter_basics():
    p = nn.Parameter(rg.randn(2, 3))
    assert p.requires_grad and p.is_leaf and isinstance(p, rg.Tensor)
    assert not nn.Parameter(rg.randn(2), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
