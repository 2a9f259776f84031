"""Native forward-mode AD: every op-table row's forward-mode Jacobian (jacfwd) equals its
reverse-mode Jacobian (jacrev) in float64; native jvp equals the double-vjp jvp on random
functions; the forward_ad API (dual levels, make_dual, unpack_dual, user Functions)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import retrograd as rg
from retrograd import func
from retrograd.autograd import forward_ad as fwAD
from retrograd.autograd.grad_mode import _state
from tests.opspec import ROWS
from tests.test_ops import _noncontig

# var/std rows include a sample with one element per slice: PyTorch's warning, not ours to test
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")

MAX_SIZE = 150  # total float input elements of a sample checked (jacfwd: one pass per element)
RTOL, ATOL = 1e-9, 1e-12


def _float_arrays(sample) -> list:
    """The distinct float arrays of a sample (its differentiable inputs), in order."""
    seen, out = set(), []
    for a in sample.args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and id(a) not in seen:
            seen.add(id(a))
            out.append(a)
    return out


def _size(sample) -> int:
    return sum(a.size for a in _float_arrays(sample))


def _samples(spec) -> list:
    """The row's samples, with a seed of its own that does not change between runs."""
    return spec.samples(np.random.default_rng(zlib.crc32(spec.name.encode())))


def _chosen(spec) -> list:
    """The samples with 1..MAX_SIZE float input elements (the smallest sample with a float input
    when the row has none that small)."""
    floating = [s for s in _samples(spec) if _float_arrays(s)]
    small = [s for s in floating if 0 < _size(s) <= MAX_SIZE]
    return small or sorted(floating, key=_size)[:1]


CASES = []
for _spec in ROWS:
    if not _spec.differentiable:
        continue
    for _i, _sample in enumerate(_chosen(_spec)):
        CASES.append(pytest.param(_spec, _sample, id=f"{_spec.name}-{_i}-{_sample.desc}"))


def _as_function(spec, sample):
    """(f, primals): f takes the sample's float inputs (float64, as Tensors) and returns the
    floating outputs of the op as a tuple."""
    arrays = _float_arrays(sample)
    primals = []
    for a in arrays:
        arr = a.astype(np.float64)
        pos = next(i for i, b in enumerate(sample.args) if b is a)
        if pos in sample.noncontig:
            arr = _noncontig(arr)
        primals.append(rg.from_numpy(arr))
    slot = {id(a): k for k, a in enumerate(arrays)}

    def f(*diff):
        args = []
        for a in sample.args:
            if isinstance(a, np.ndarray):
                args.append(diff[slot[id(a)]] if id(a) in slot else rg.from_numpy(a))
            else:
                args.append(a)
        return tuple(_floating_outputs(spec.fn(*args, **sample.kwargs)))

    return f, primals


def _floating_outputs(res) -> list:
    if isinstance(res, rg.Tensor):
        return [res] if res.dtype.kind == "f" else []
    if isinstance(res, (tuple, list)):
        return [o for r in res for o in _floating_outputs(r)]
    return []


def _close(fwd, rev) -> None:
    if isinstance(rev, (tuple, list)):
        assert isinstance(fwd, (tuple, list)) and len(fwd) == len(rev)
        for a, b in zip(fwd, rev):
            _close(a, b)
        return
    assert fwd.shape == rev.shape
    np.testing.assert_allclose(
        fwd.detach().numpy(), rev.detach().numpy(), rtol=RTOL, atol=ATOL, equal_nan=True
    )


@pytest.mark.parametrize("spec,sample", CASES)
def test_jacfwd_equals_jacrev(spec, sample):
    f, primals = _as_function(spec, sample)
    argnums = tuple(range(len(primals)))
    _close(func.jacfwd(f, argnums)(*primals), func.jacrev(f, argnums)(*primals))


def test_every_differentiable_row_is_checked():
    """The counts of the test above: every differentiable row with a floating input."""
    rows = {p.values[0].name for p in CASES}
    expected = {
        spec.name
        for spec in ROWS
        if spec.differentiable and any(_float_arrays(s) for s in _samples(spec))
    }
    assert rows == expected
    print(f"forward mode vs reverse mode: {len(rows)} rows, {len(CASES)} samples")


# -- jacfwd == jacrev where the op table's samples do not reach -----------------------------------
def _jacobians_agree(f, *primals) -> None:
    argnums = tuple(range(len(primals)))
    _close(func.jacfwd(f, argnums)(*primals), func.jacrev(f, argnums)(*primals))


def _t(rng, *shape, lo=-2.0, hi=2.0):
    return rg.from_numpy(rng.uniform(lo, hi, size=shape))


def _seeded_sdpa(**kw):
    def f(q, k, v, *mask):
        gen = rg.Generator()
        gen.manual_seed(3)  # the same dropout mask in every pass
        return rg.scaled_dot_product_attention(q, k, v, *mask, generator=gen, **kw)

    return f


def _targeted(rng):
    F = rg.nn.functional
    idx = rg.tensor([[0, 2, 2], [1, 0, 3]])
    cls = rg.tensor([1, 0, 3, -100])
    lengths = [3, 1]
    yield (
        "embedding padding_idx, scale_grad_by_freq",
        (
            lambda w: F.embedding(idx, w, padding_idx=2, scale_grad_by_freq=True),
            _t(rng, 4, 3),
        ),
    )
    weight = _t(rng, 5, lo=0.5)
    yield (
        "cross_entropy weight, ignore_index, smoothing",
        (
            lambda x: rg.cross_entropy(x, cls, weight=weight, label_smoothing=0.2),
            _t(rng, 4, 5),
        ),
    )
    yield (
        "cross_entropy soft targets, weight, smoothing, none",
        (
            lambda x, p, w: rg.cross_entropy(x, p, weight=w, label_smoothing=0.1, reduction="none"),
            _t(rng, 3, 4),
            _t(rng, 3, 4, lo=0.0, hi=1.0),
            _t(rng, 4, lo=0.5),
        ),
    )
    yield (
        "nll_loss weight, ignore_index",
        (
            lambda x: rg.nll_loss(x, cls, weight=rg.tensor([1.0, 2.0, 0.5, 3.0, 1.0])),
            _t(rng, 4, 5),
        ),
    )
    yield (
        "binary_cross_entropy weight",
        (
            lambda x, t: F.binary_cross_entropy(x, t, weight=rg.tensor([0.5, 2.0, 1.0])),
            _t(rng, 2, 3, lo=0.1, hi=0.9),
            _t(rng, 2, 3, lo=0.0, hi=1.0),
        ),
    )
    yield (
        "binary_cross_entropy_with_logits pos_weight, weight",
        (
            lambda x, t: F.binary_cross_entropy_with_logits(
                x, t, weight=rg.tensor([0.5, 2.0, 1.0]), pos_weight=rg.tensor([3.0, 1.0, 0.2])
            ),
            _t(rng, 2, 3),
            _t(rng, 2, 3, lo=0.0, hi=1.0),
        ),
    )
    yield (
        "sdpa float mask (differentiable), dropout",
        (
            _seeded_sdpa(dropout_p=0.3),
            _t(rng, 2, 3, 2),
            _t(rng, 2, 4, 2),
            _t(rng, 2, 4, 2),
            _t(rng, 3, 4),
        ),
    )
    keep = rg.tensor([[True, False, True, True], [False] * 4, [True, True, False, False]])
    yield (
        "sdpa bool mask with a fully masked row",
        (
            lambda q, k, v: _seeded_sdpa()(q, k, v, keep),
            _t(rng, 3, 2),
            _t(rng, 4, 2),
            _t(rng, 4, 2),
        ),
    )
    yield "sdpa causal", (_seeded_sdpa(is_causal=True), _t(rng, 3, 2), _t(rng, 3, 2), _t(rng, 3, 2))
    for nl in ("tanh", "relu"):
        yield (
            f"rnn_layer {nl}, lengths, reverse, biases",
            (
                lambda x, h, wi, wh, bi, bh, nl=nl: rg.rnn_layer(
                    x, h, wi, wh, bi, bh, nonlinearity=nl, lengths=lengths, reverse=True
                ),
                _t(rng, 3, 2, 2),
                _t(rng, 2, 3),
                _t(rng, 3, 2),
                _t(rng, 3, 3),
                _t(rng, 3),
                _t(rng, 3),
            ),
        )
    for reverse in (False, True):
        yield (
            f"lstm_layer projection, lengths, reverse={reverse}",
            (
                lambda x, h, c, wi, wh, bi, bh, wr, reverse=reverse: rg.lstm_layer(
                    x, (h, c), wi, wh, bi, bh, wr, lengths=lengths, reverse=reverse
                ),
                _t(rng, 3, 2, 2),
                _t(rng, 2, 1),
                _t(rng, 2, 2),
                _t(rng, 8, 2),
                _t(rng, 8, 1),
                _t(rng, 8),
                _t(rng, 8),
                _t(rng, 1, 2),
            ),
        )
        yield (
            f"gru_layer lengths, reverse={reverse}",
            (
                lambda x, h, wi, wh, bi, bh, reverse=reverse: rg.gru_layer(
                    x, h, wi, wh, bi, bh, lengths=lengths, reverse=reverse
                ),
                _t(rng, 3, 2, 2),
                _t(rng, 2, 2),
                _t(rng, 6, 2),
                _t(rng, 6, 2),
                _t(rng, 6),
                _t(rng, 6),
            ),
        )


TARGETED = list(_targeted(np.random.default_rng(7)))


@pytest.mark.parametrize("case", [c for _, c in TARGETED], ids=[n for n, _ in TARGETED])
def test_jacfwd_equals_jacrev_targeted(case):
    f, *primals = case
    _jacobians_agree(lambda *a: tuple(_floating_outputs(f(*a))), *primals)


# -- every primitive has its rule; the ones no public op reaches in a forward pass ----------------
def _primitives() -> list:
    import importlib
    import inspect
    import pkgutil

    import retrograd.ops as ops
    from retrograd.autograd.function import Function

    found = []
    for m in pkgutil.iter_modules(ops.__path__):
        mod = importlib.import_module(f"retrograd.ops.{m.name}")
        for c in vars(mod).values():
            if inspect.isclass(c) and issubclass(c, Function) and c.__module__ == mod.__name__:
                found.append(c)
    return found


def test_every_primitive_has_a_jvp_rule():
    missing = [c.__name__ for c in _primitives() if c.raw and getattr(c, "jvp", None) is None]
    assert not missing, f"primitives without a jvp rule: {missing}"


def _internal(rng):
    """Primitives that serve gradient rules (create_graph=True) or internals: applied directly."""
    from retrograd.ops import (
        activation,
        conv,
        elementwise,
        indexing,
        linalg,
        movement,
        mutation,
        pooling,
    )

    yield "_Exp", (lambda x: activation._Exp.apply(x), _t(rng, 4, lo=-3, hi=0))
    yield "_NormalPdf", (lambda x: activation._NormalPdf.apply(x), _t(rng, 4))
    yield "_NormalCdf", (lambda x: activation._NormalCdf.apply(x), _t(rng, 4))
    yield "_AbsPow", (lambda x: linalg._AbsPow.apply(x, p=1.5), _t(rng, 4))
    yield "_Sign", (lambda x: linalg._Sign.apply(x), _t(rng, 4))
    yield "ToDevice", (lambda x: elementwise.ToDevice.apply(x, device="cpu"), _t(rng, 3))
    geom = dict(stride=(1,), pads=((1, 0),), dilation=(1,), groups=1)
    yield (
        "ConvWeight",
        (
            lambda x, g: conv.ConvWeight.apply(x, g, ksize=(2,), **geom),
            _t(rng, 1, 2, 4),
            _t(rng, 1, 3, 4),
        ),
    )
    yield (
        "IndexPutZeros",
        (
            lambda g: indexing.IndexPutZeros.apply(
                g, shape=(4, 3), index=(np.array([0, 2, 2]),), accumulate=True
            ),
            _t(rng, 3, 3),
        ),
    )
    yield (
        "SetItem",
        (
            lambda x, v: indexing.SetItem.apply(x, v, index=(slice(0, 2), 1)),
            _t(rng, 3, 2),
            _t(rng, 2),
        ),
    )
    idx = movement._edge_index(np, 3, 1, 2, "reflect")
    yield (
        "PadAlongGrad",
        (
            lambda g: movement.PadAlongGrad.apply(g, idx=idx, lo=1, n=3, dim=0),
            _t(rng, 6, 2),
        ),
    )
    yield (
        "DiagonalEmbed",
        (
            lambda d: movement.DiagonalEmbed.apply(d, shape=(2, 3, 3), args=(1, 1, 2)),
            _t(rng, 2, 2),
        ),
    )
    chain = ((movement.Slice, {"index": (slice(0, 2),)}),)
    yield (
        "CopySlices",
        (
            lambda base, src: mutation.CopySlices.apply(base, src, chain=chain),
            _t(rng, 3, 2),
            _t(rng, 2, 2),
        ),
    )
    flat = np.array([[[0, 3, 3], [1, 2, 0]]])
    yield (
        "PutAt",
        (
            lambda g: pooling.PutAt.apply(g, idx=flat, shape=(1, 2, 4), nsp=1, unique=False),
            _t(rng, 1, 2, 3),
        ),
    )
    windows = pooling._Windows((4,), (2,), (1,), (1,), (1,), False)
    yield (
        "AvgPoolAdjoint",
        (
            lambda g: pooling.AvgPoolAdjoint.apply(g, w=windows, divisor=2.0),
            _t(rng, 1, 2, windows.out[0]),
        ),
    )
    yield "FoldSum", (lambda g: pooling.FoldSum.apply(g, axis=1, k=2), _t(rng, 2, 4))


INTERNAL = list(_internal(np.random.default_rng(11)))


@pytest.mark.parametrize("case", [c for _, c in INTERNAL], ids=[n for n, _ in INTERNAL])
def test_jacfwd_equals_jacrev_internal_primitives(case):
    f, *primals = case
    _jacobians_agree(f, *primals)


def test_double_vjp_fallback_equals_the_closed_forms():
    """jvp_by_double_vjp (the rule-free fallback) on nodes that also have a closed form."""
    from retrograd.ops.elementwise import Mul
    from retrograd.ops.normalization import Linear
    from retrograd.ops.reduce import Softmax

    rng = np.random.default_rng(5)
    cases = [
        (Mul, (_t(rng, 3, 1), _t(rng, 4)), {}),
        (Softmax, (_t(rng, 2, 3),), {"dims": (1,)}),
        (Linear, (_t(rng, 2, 3), _t(rng, 4, 3), _t(rng, 4)), {}),
    ]
    for cls, inputs, params in cases:
        tangents = [rng.standard_normal(x.shape) for x in inputs]
        if len(inputs) > 1:
            tangents[0] = None  # an input without a tangent
        node = cls.__new__(cls)
        node._saved = None
        out = node.forward(*[x.data for x in inputs], **params)
        node._fw = ([x.data for x in inputs], params, out)
        expected = node.jvp(*tangents)
        got = fwAD.jvp_by_double_vjp(node, tangents)
        np.testing.assert_allclose(got, np.broadcast_to(expected, out.shape), rtol=1e-12)


def test_a_primitive_without_a_rule_gets_its_tangent_from_its_gradient_rule():
    from retrograd.autograd.function import Function

    class Cube(Function):
        """out = x^3;  gx = 3 g x^2"""

        raw = True

        def forward(self, x):
            self.save(x)
            return x**3

        def backward(self, g):
            (x,) = self.saved
            return 3 * g * x * x

    x, v = (
        rg.tensor([1.0, -2.0, 0.5], dtype=rg.float64),
        rg.tensor([1.0, 2.0, 3.0], dtype=rg.float64),
    )
    _, jv = func.jvp(Cube.apply, (x,), (v,))
    np.testing.assert_allclose(jv.numpy(), 3 * x.numpy() ** 2 * v.numpy())


# -- native jvp == double-vjp jvp on random functions and on networks ------------------------------
F = rg.nn.functional
# (name, step): step(h, y, w) -> a new (3, 4) tensor from h (3, 4), y (3, 4), w (4, 4)
STEPS = [
    ("sin", lambda h, y, w: rg.sin(h)),
    ("tanh", lambda h, y, w: rg.tanh(h)),
    ("sigmoid", lambda h, y, w: rg.sigmoid(h * y)),
    ("exp", lambda h, y, w: rg.exp(h * 0.3)),
    ("softplus", lambda h, y, w: F.softplus(h)),
    ("gelu", lambda h, y, w: F.gelu(h)),
    ("square", lambda h, y, w: h * h),
    ("log1p", lambda h, y, w: rg.log1p(h * h)),
    ("div", lambda h, y, w: h / (1 + y * y)),
    ("maximum", lambda h, y, w: rg.maximum(h, y)),
    ("atan2", lambda h, y, w: rg.atan2(h, y)),
    ("matmul", lambda h, y, w: h @ w),
    ("linear", lambda h, y, w: F.linear(h, w, y[0])),
    ("einsum", lambda h, y, w: rg.einsum("ij,jk,ik->ik", h, w, y)),
    ("softmax", lambda h, y, w: rg.softmax(h, -1)),
    ("log_softmax", lambda h, y, w: rg.log_softmax(h, 0)),
    ("layer_norm", lambda h, y, w: F.layer_norm(h, (4,), w[0], w[1])),
    ("cumsum", lambda h, y, w: rg.cumsum(h, 1)),
    ("cumprod", lambda h, y, w: rg.cumprod(h, 0)),
    ("flip_roll", lambda h, y, w: rg.roll(rg.flip(h, 0), 1, 1)),
    ("center", lambda h, y, w: h - h.mean(1, keepdim=True)),
    ("scale_by_sum", lambda h, y, w: h * h.sum(0, keepdim=True)),
    ("gram", lambda h, y, w: (h.t() @ h)[:3]),
    ("cat", lambda h, y, w: rg.cat([h[:, 2:], h[:, :2] * y[:, :2]], 1)),
    ("where", lambda h, y, w: rg.where(y > 0, h, y)),
    ("clamp", lambda h, y, w: rg.clamp(h, -1.0, 1.5)),
    ("pad", lambda h, y, w: F.pad(h, (1, 1), mode="reflect")[:, 1:-1]),
    ("logsumexp", lambda h, y, w: h - rg.logsumexp(h, 1, keepdim=True)),
    ("norm", lambda h, y, w: h / rg.norm(h, dim=1, keepdim=True)),
    ("var", lambda h, y, w: h * rg.var(h, 0, keepdim=True)),
    ("max", lambda h, y, w: h - rg.amax(h, 1, keepdim=True)),
    ("getitem", lambda h, y, w: h[[2, 0, 1]] + y),
    ("sdpa", lambda h, y, w: rg.scaled_dot_product_attention(h, y, h @ w)),
]


def _random_function(rng):
    picks = [STEPS[i] for i in rng.choice(len(STEPS), size=rng.integers(3, 7), replace=False)]

    def f(x, y, w):
        h = x
        for _, step in picks:
            h = step(h, y, w)
        return h, (h * h).sum()

    return f, "-".join(name for name, _ in picks)


RANDOM = [_random_function(np.random.default_rng(seed)) for seed in range(40)]


@pytest.mark.parametrize("f", [f for f, _ in RANDOM], ids=[name for _, name in RANDOM])
def test_native_jvp_equals_double_vjp_jvp(f):
    rng = np.random.default_rng(0)
    primals = (_t(rng, 3, 4), _t(rng, 3, 4), _t(rng, 4, 4))
    tangents = tuple(_t(rng, *p.shape) for p in primals)
    out, jv = func.jvp(f, primals, tangents)
    ref_out, ref_jv, _ = func._jvp_by_double_vjp(f, primals, list(tangents), False, "jvp")
    _close(out, ref_out)
    _close(jv, ref_jv)


def _networks():
    rg.manual_seed(0)
    nn = rg.nn
    yield "mlp", nn.Sequential(nn.Linear(5, 8), nn.GELU(), nn.Linear(8, 3)), (4, 5)
    yield (
        "cnn",
        nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(12, 2),
        ),
        (2, 2, 4, 4),
    )
    yield "lstm", nn.LSTM(3, 4, num_layers=2, bidirectional=True), (5, 2, 3)
    yield "gru", nn.GRU(3, 4), (5, 2, 3)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    yield "transformer layer", layer, (2, 3, 8)


NETWORKS = [(name, net.double(), shape) for name, net, shape in _networks()]


@pytest.mark.parametrize(
    "net,shape", [(n, s) for _, n, s in NETWORKS], ids=[name for name, _, _ in NETWORKS]
)
def test_native_jvp_equals_double_vjp_jvp_on_networks(net, shape):
    rng = np.random.default_rng(1)
    x, v = _t(rng, *shape), _t(rng, *shape)

    def f(x):
        out = net(x)
        return tuple(_floating_outputs(out))

    out, jv = func.jvp(f, (x,), (v,))
    ref_out, ref_jv, _ = func._jvp_by_double_vjp(f, (x,), [v], False, "jvp")
    _close(out, ref_out)
    _close(jv, ref_jv)


# -- the forward_ad API ---------------------------------------------------------------------------
def _f64(values, requires_grad=False):
    return rg.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def test_dual_level_make_and_unpack():
    x, v = _f64([0.5, -1.0, 2.0]), _f64([1.0, 2.0, -1.0])
    with fwAD.dual_level():
        d = fwAD.make_dual(x, v)
        y = rg.exp(d) * d
        primal, tangent = fwAD.unpack_dual(y)
        expected = (np.exp(x.numpy()) * (x.numpy() + 1)) * v.numpy()
        np.testing.assert_allclose(tangent.numpy(), expected)
        np.testing.assert_allclose(primal.numpy(), np.exp(x.numpy()) * x.numpy())
        assert fwAD.unpack_dual(x).tangent is None  # the primal itself carries none
        with rg.no_grad():  # tangents do not depend on grad mode
            assert fwAD.unpack_dual(d * 2).tangent is not None
    assert y._fw_tangent is None and d._fw_tangent is None  # dropped with the level
    assert (d * 2)._fw_tangent is None
    assert not _state.forward_ad


def test_make_dual_errors_and_casts():
    x = _f64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="no level exists"):
        fwAD.make_dual(x, x)
    with fwAD.dual_level():
        with pytest.raises(RuntimeError, match="Nested forward mode AD is not supported"):
            fwAD.enter_dual_level()
        with pytest.raises(RuntimeError, match="different size"):
            fwAD.make_dual(x, _f64([1.0]))
        with pytest.raises(ValueError, match="Expected primal to be floating point"):
            fwAD.make_dual(rg.tensor([1, 2]), x)
        d = fwAD.make_dual(x, rg.tensor([1.0, 1.0], dtype=rg.float32))
        assert fwAD.unpack_dual(d).tangent.dtype == np.float64
    assert not _state.forward_ad  # the failed nested enter left the level as it was


def test_reverse_mode_still_works_inside_a_dual_level():
    x, v = _f64([1.0, -2.0, 3.0], requires_grad=True), _f64([1.0, 0.0, 2.0])
    with fwAD.dual_level():
        d = fwAD.make_dual(x, v)
        y = (rg.sin(d) * d).sum()
        tangent = fwAD.unpack_dual(y).tangent
        y.backward()
    grad = np.sin(x.data) + x.data * np.cos(x.data)
    np.testing.assert_allclose(x.grad.numpy(), grad)
    np.testing.assert_allclose(tangent.numpy(), grad @ v.numpy())


def test_dual_levels_are_per_thread():
    import threading

    x, v = _f64([1.0, 2.0]), _f64([1.0, 1.0])
    seen = {}

    def other():
        seen["active"] = bool(_state.forward_ad)
        with fwAD.dual_level():  # its own level, while the main thread holds one
            seen["tangent"] = fwAD.unpack_dual(fwAD.make_dual(x, v) * 3).tangent.numpy()

    with fwAD.dual_level():
        d = fwAD.make_dual(x, v)
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        np.testing.assert_allclose(fwAD.unpack_dual(d * d).tangent.numpy(), [2.0, 4.0])
    assert seen["active"] is False
    np.testing.assert_allclose(seen["tangent"], [3.0, 3.0])


def test_user_function_tangents_from_its_jvp_or_its_backward():
    class StraightThrough(rg.autograd.Function):
        """sign(x) forward, identity gradient: forward mode follows the gradient rule."""

        @staticmethod
        def forward(ctx, x):
            return rg.sign(x)

        @staticmethod
        def backward(ctx, g):
            return g

    class Scaled(StraightThrough):
        @staticmethod
        def jvp(ctx, t):
            return t * 2

    x, v = _f64([0.5, -2.0]), _f64([1.0, 3.0])
    _, jv = func.jvp(StraightThrough.apply, (x,), (v,))
    np.testing.assert_allclose(jv.numpy(), v.numpy())
    _, jv = func.jvp(Scaled.apply, (x,), (v,))
    np.testing.assert_allclose(jv.numpy(), 2 * v.numpy())
    _close(func.jacfwd(StraightThrough.apply)(x), func.jacrev(StraightThrough.apply)(x))


def test_jvp_results_stay_differentiable_through_the_fallback():
    x, v = _f64([1.0, 2.0], requires_grad=True), _f64([1.0, -1.0])
    _, jv = func.jvp(lambda a: (a * a * a).sum(), (x,), (v,))
    assert jv.requires_grad  # grad mode on and x requires grad: the double-vjp path
    jv.backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.data * v.numpy())


def test_forward_over_forward_and_forward_over_reverse():
    x = _f64([0.3, -1.2, 2.0])

    def f(a):
        return (rg.sin(a) * a * a).sum()

    hess = func.jacfwd(func.jacrev(f))(x)
    _close(hess, func.hessian(f)(x))
    v = _f64([1.0, 0.5, -1.0])
    _, second = func.jvp(lambda a: func.jvp(f, (a,), (v,))[1], (x,), (v,))
    np.testing.assert_allclose(second.numpy(), v.numpy() @ hess.numpy() @ v.numpy())


def test_jacfwd_argnums_aux_and_tuple_outputs():
    x, w = _f64(np.arange(3.0)), _f64(np.arange(6.0).reshape(3, 2) / 5)

    def f(x, w):
        y = x @ w
        return (rg.tanh(y), y.sum() * x), y.detach()

    jf, aux = func.jacfwd(f, argnums=(1, 0), has_aux=True)(x, w)
    jr, _ = func.jacrev(f, argnums=(1, 0), has_aux=True)(x, w)
    _close(jf, jr)
    assert jf[0][0].shape == (2, 3, 2) and jf[1][1].shape == (3, 3)
    _close(aux, (x @ w).detach())
    only = func.jacfwd(lambda x: x * 2)(x)
    np.testing.assert_allclose(only.numpy(), 2 * np.eye(3))
    empty = func.jacfwd(lambda x: x.sum() * 1.0)(_f64(np.zeros((0,))))
    assert empty.shape == (0,)


def test_user_functions_from_the_library_checkpoint_and_reversible(monkeypatch):
    from retrograd.nn.layers import reversible
    from retrograd.utils import checkpoint

    rg.manual_seed(0)
    nn = rg.nn
    rng = np.random.default_rng(2)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    x, v = _t(rng, 2, 4), _t(rng, 2, 4)
    # checkpoint's backward supports create_graph: the double-vjp path
    _close(func.jvp(lambda a: checkpoint(net, a), (x,), (v,)), func.jvp(net, (x,), (v,)))

    blocks = [reversible.ReversibleBlock(nn.Linear(2, 2), nn.Linear(2, 2)) for _ in range(3)]
    rev = reversible.ReversibleSequence(blocks).double()
    plain = reversible.ReversibleSequence(blocks, reversible=False).double()
    # its backward cannot build a graph, but it is the exact derivative of its forward: the
    # forward's own tangents serve (tangents_from_forward); without the flag jvp says how to fix
    assert reversible._ReversibleFunction.tangents_from_forward
    _close(func.jvp(rev, (x,), (v,)), func.jvp(plain, (x,), (v,)))
    monkeypatch.setattr(reversible._ReversibleFunction, "tangents_from_forward", False)
    with pytest.raises(RuntimeError, match="tangents_from_forward"):
        func.jvp(rev, (x,), (v,))


def test_carry_tangent_for_in_place_writes():
    """The helper an in-place write calls: x takes result's tangent, and so does x's base over
    the region x views."""
    base = _f64(np.zeros((2, 3)))
    with fwAD.dual_level():
        base = fwAD.make_dual(base, _f64(np.ones((2, 3))))
        view = base[1]
        result = fwAD.make_dual(_f64([5.0, 6.0, 7.0]), _f64([2.0, 3.0, 4.0]))
        fwAD.carry_tangent(view, result)
        np.testing.assert_allclose(fwAD.unpack_dual(view).tangent.numpy(), [2.0, 3.0, 4.0])
        np.testing.assert_allclose(
            fwAD.unpack_dual(base).tangent.numpy(), [[1.0, 1.0, 1.0], [2.0, 3.0, 4.0]]
        )
