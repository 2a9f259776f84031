"""Reversible residual blocks (RevNet, Gomez et al. 2017): activations rebuilt, not stored.

A block splits its input in two halves along `dim` and couples them:

    y1 = x1 + F(x2)        y2 = x2 + G(y1)          (forward)
    x2 = y2 - G(y1)        x1 = y1 - F(x2)          (inverse)

so a stack of blocks can recompute every block's input from its output. `ReversibleSequence`
records a single node for the whole stack that keeps only the final output; its backward walks the
blocks in reverse, rebuilding each block's input, re-running F and G with grad on to get the local
gradients, and accumulating the parameters' gradients. The memory held for backward does not grow
with depth (one output plus one block's F or G graph at a time, during backward).

    >>> mlp = lambda: Sequential(Linear(8, 8), ReLU())
    >>> blocks = [ReversibleBlock(mlp(), mlp()) for _ in range(16)]
    >>> net = ReversibleSequence(blocks)
    >>> y = net(retrograd.randn(32, 16))          # the features split 8 + 8

Dropout inside F or G: the random state of retrograd's default generator, and of every Generator
held by a module inside the blocks (`Dropout(generator=g)`), is recorded before each F and G call
and restored when they are re-run, so the masks match the forward's. A generator reached any
other way is not restored. F and G run twice in training, so state they change besides
randomness (BatchNorm's running statistics) changes twice. Gradients equal the stored version's
within float64 round-off (the rebuilt inputs differ from the originals by rounding). Double
backward (create_graph=True) is not supported: use `reversible=False` (the stored version).
"""

from __future__ import annotations

from retrograd.autograd import grad as autograd_grad
from retrograd.autograd import memory
from retrograd.autograd.function import Function
from retrograd.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from retrograd.backend import Generator, default_generator, get_xp
from retrograd.nn.containers import ModuleList
from retrograd.nn.module import Module
from retrograd.ops import cat, chunk
from retrograd.tensor import Tensor

__all__ = ["ReversibleBlock", "ReversibleSequence"]


class ReversibleBlock(Module):
    """y1 = x1 + F(x2), y2 = x2 + G(y1) on the two halves of the input along `dim`.

    >>> block = ReversibleBlock(Linear(4, 4), Linear(4, 4))
    >>> block(retrograd.randn(2, 8)).shape
    (2, 8)
    """

    def __init__(self, F: Module, G: Module, dim: int = -1) -> None:
        super().__init__()
        self.F = F
        self.G = G
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = chunk(x, 2, self.dim)
        y1 = x1 + self.F(x2)
        y2 = x2 + self.G(y1)
        return cat([y1, y2], self.dim)

    def inverse(self, y: Tensor) -> Tensor:
        """The input that gives output y: x2 = y2 - G(y1), x1 = y1 - F(x2)."""
        with no_grad():
            y1, y2 = chunk(y, 2, self.dim)
            x2 = y2 - self.G(y1)
            x1 = y1 - self.F(x2)
            return cat([x1, x2], self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ReversibleSequence(Module):
    """Reversible blocks applied in turn; backward rebuilds activations instead of storing them.

    reversible=False runs the same blocks as a plain stack (every activation stored): the
    reference the reversible backward is checked against.

    >>> net = ReversibleSequence([ReversibleBlock(Linear(4, 4), Linear(4, 4)) for _ in range(8)])
    >>> net(retrograd.randn(2, 8)).shape
    (2, 8)
    """

    def __init__(self, blocks, reversible: bool = True) -> None:
        super().__init__()
        self.blocks = ModuleList(blocks)
        self.reversible = reversible
        for b in self.blocks:
            if not isinstance(b, ReversibleBlock):
                raise TypeError(
                    f"ReversibleSequence takes ReversibleBlocks, got {type(b).__name__}"
                )

    def forward(self, x: Tensor) -> Tensor:
        params = [p for p in self.parameters() if p.requires_grad]
        if (
            not self.reversible
            or not is_grad_enabled()
            or not (x.requires_grad or params)
            or len(self.blocks) == 0
        ):
            for block in self.blocks:
                x = block(x)
            return x
        return _ReversibleFunction.apply(_Spec(list(self.blocks), params), x, *params)

    def extra_repr(self) -> str:
        return f"reversible={self.reversible}"


class _Spec:
    __slots__ = ("blocks", "params", "gens", "states")

    def __init__(self, blocks, params) -> None:
        self.blocks = blocks
        self.params = params
        gens = {id(default_generator): default_generator}
        for b in blocks:
            for m in b.modules():
                for v in vars(m).values():
                    if isinstance(v, Generator):
                        gens[id(v)] = v
        self.gens = list(gens.values())
        self.states = []  # per block: (states before F, states before G)


def _states(gens) -> list:
    return [g.get_state() for g in gens]


def _restore(gens, states) -> None:
    for g, s in zip(gens, states):
        g.set_state(s)


def _halves(a, dim: int):
    axis = dim % a.ndim
    h = a.shape[axis] // 2
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis] = slice(0, h)
    hi[axis] = slice(h, None)
    return a[tuple(lo)], a[tuple(hi)]


def _leaf(a) -> Tensor:
    return Tensor._make(a, True, None, 0)


class _ReversibleFunction(Function):
    """The whole stack as one node: saves the output only; backward inverts block by block."""

    tangents_from_forward = True  # forward mode: the forward's own ops carry the tangents

    @staticmethod
    def forward(ctx, spec, x, *params):
        ctx.spec = spec
        spec.states = []
        gens = spec.gens
        for block in spec.blocks:
            if x.shape[block.dim] % 2:
                raise ValueError(
                    f"ReversibleBlock splits dim {block.dim} in two halves, but it has size "
                    f"{x.shape[block.dim]}"
                )
            x1, x2 = chunk(x, 2, block.dim)
            before_f = _states(gens)
            y1 = x1 + block.F(x2)
            before_g = _states(gens)
            y2 = x2 + block.G(y1)
            spec.states.append((before_f, before_g))
            x = cat([y1, y2], block.dim)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, g):
        if is_grad_enabled():
            raise RuntimeError(
                "ReversibleSequence does not support double backward (create_graph=True); use "
                "ReversibleSequence(..., reversible=False) for it"
            )
        spec = ctx.spec
        (y,) = ctx.saved_tensors
        y, g = y.data, g.data
        xp = get_xp(y)
        gens = spec.gens
        index = {id(p): i for i, p in enumerate(spec.params)}
        pgrads = [None] * len(spec.params)
        current = _states(gens)

        def local(module, inp, grad_out, states, label):
            """Re-run module on a leaf copy of inp: (output array, d inp, parameter grads)."""
            _restore(gens, states)
            leaf = _leaf(inp)
            with enable_grad():
                out = module(leaf)
            memory.note_recomputation(label, [out])
            ps = [p for p in module.parameters() if id(p) in index]
            seed = Tensor._make(grad_out, False, None, 0)
            grads = autograd_grad(out, [leaf] + ps, grad_outputs=seed, allow_unused=True)
            for p, gp in zip(ps, grads[1:]):
                if gp is not None:
                    k = index[id(p)]
                    pgrads[k] = gp.data if pgrads[k] is None else pgrads[k] + gp.data
            gin = grads[0]
            return out.data, (gin.data if gin is not None else None)

        try:
            for block, (before_f, before_g) in zip(reversed(spec.blocks), reversed(spec.states)):
                y1, y2 = _halves(y, block.dim)
                g1, g2 = _halves(g, block.dim)
                gy, dy1 = local(block.G, y1, g2, before_g, "reversible G")
                x2 = y2 - gy
                if dy1 is not None:
                    g1 = g1 + dy1  # y2 depends on y1 through G
                fx, dx2 = local(block.F, x2, g1, before_f, "reversible F")
                x1 = y1 - fx
                if dx2 is not None:
                    g2 = g2 + dx2
                y = xp.concatenate([x1, x2], axis=block.dim)
                g = xp.concatenate([g1, g2], axis=block.dim)
        finally:
            _restore(gens, current)
        return (None, g, *pgrads)

    def name(self) -> str:
        return "ReversibleSequenceBackward"
