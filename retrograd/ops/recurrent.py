"""Fused recurrent primitives: one node per layer and direction runs the whole time loop.

The input projection x W_ih^T + b_ih of every time step is one matrix product (`linear` over the
sequence) before the loop; each step then does ONE product h W_hh^T for all gates and the gate
math on arrays. The backward runs backprop through time in one reverse loop on arrays and
accumulates dW_hh (and dW_hr) with one matrix product over all steps at the end.

The LSTM goes further (it is the benchmark's W5): its node takes the layer's input itself, so
each step's one product is [W_hh | W_ih | b] [h_{t-1}; x_t; 1], written straight into the
gates' buffer (no projection before the loop, no sum after the product); the backward adds
each step's share of [dW_hh | dW_ih | db] (gz_t times that same [h_{t-1}; x_t; 1]) in the
step product's gemm_batch call, and dx a chunk of steps at a time; it runs transposed, a
step's gates a (4H, N) block with rows (o, i, f, g), so that each gate is contiguous and the
step's product is W h^T, the faster BLAS shape here; and its large buffers are reused from one
call to the next (`ops._buffers`). c_n is a second node (LSTMState) over the same saved
arrays, so the hidden states need no slicing out of a joint output.

Two versions of each loop: `_*_arrays` (LSTM, GRU) work in place in preallocated buffers, for
the forward and a plain backward; the others are written with operators, indexing and the
helpers below, so they run on arrays and on Tensors. Under `create_graph=True` a rule recomputes
the forward from its input Tensors with those and backpropagates through the composition, so
gradients of gradients are exact (slow, meant for small instances). The RNN's loop is short
enough that its generic version is also its fast path. The sigmoids are tanh(x/2)/2 + 1/2: one
tanh call for all four LSTM gates, and no overflow.

Gate order and formulas are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), RNN tanh or relu.

A `lengths` argument gives variable-length batches: past a sequence's length its state is
carried unchanged (so the last row holds each sequence's last valid state) and its output is
zero, as PyTorch's pack_padded_sequence / pad_packed_sequence give.
"""

from __future__ import annotations

from retrograd.autograd.forward_ad import add_tangents
from retrograd.autograd.function import Function
from retrograd.backend import get_xp
from retrograd.ops import dual
from retrograd.ops._buffers import buffers_of, only_held_by_caller
from retrograd.ops._util import quiet
from retrograd.ops.normalization import linear
from retrograd.parallel import (
    add_matmul_into,
    blas_threads_ran,
    gemm_group,
    transpose_into,
    transpose_into_at,
)
from retrograd.tensor import Tensor

__all__ = [
    "rnn_tanh_cell",
    "rnn_relu_cell",
    "lstm_cell",
    "gru_cell",
    "rnn_layer",
    "lstm_layer",
    "gru_layer",
]


_CHUNK_COLUMNS = 256  # the LSTM backward makes its gate derivatives in chunks of ~this many columns


# -- helpers that work on arrays and Tensors -------------------------------------------------------
def _ops():
    from retrograd import ops

    return ops


def _const(a, like):
    """A constant array next to `like`: itself for arrays, a constant Tensor in graph mode."""
    if a is None or not isinstance(like, Tensor):
        return a
    return Tensor._make(a, False, None, 0)


def _steps(x) -> list:
    """The slices of x along dim 0 (time)."""
    return list(_ops().unbind(x, 0)) if isinstance(x, Tensor) else list(x)


def _stack(xs):
    if isinstance(xs[0], Tensor):
        return _ops().stack(xs, 0)
    return get_xp(xs[0]).stack(xs, 0)


def _cat(xs):
    """Join along the last dim."""
    if any(isinstance(x, Tensor) for x in xs):
        return _ops().cat(xs, -1)
    return get_xp(xs[0]).concatenate(xs, -1)


def _sigmoid(x):
    # 1 / (1 + exp(-x)) written with tanh: one transcendental call and no overflow
    return dual.tanh(x * 0.5) * 0.5 + 0.5


def _outer_sum(gz, h):
    """sum_t gz_t^T h_t over all steps and batch rows: one matrix product, (G, P)."""
    g2 = dual.reshape(gz, (-1, gz.shape[-1]))
    h2 = dual.reshape(h, (-1, h.shape[-1]))
    return dual.swap_last(g2) @ h2


def _sum_rows(gz):
    return dual.sum(dual.reshape(gz, (-1, gz.shape[-1])), 0)


def _carry(new, prev, m, m1):
    """The state after a step: the new one where the mask is 1, the previous one elsewhere."""
    if m is None:
        return new
    return new * m + prev * m1


def _order(n: int, reverse: bool):
    """The steps in processing order (a backward pass walks them with reverse flipped). Once
    they are done, OpenBLAS's threads that ran the steps' products still spin for a while:
    the large products that follow go to them (parallel.matmul)."""
    yield from range(n - 1, -1, -1) if reverse else range(n)
    blas_threads_ran()


def _shift(xs, x0, reverse: bool):
    """The state each step started from, stacked in time order: [x0, xs_0 .. xs_{L-2}]
    (reverse: [xs_1 .. xs_{L-1}, x0])."""
    if isinstance(xs, Tensor) or isinstance(x0, Tensor):
        ops = _ops()
        xs = xs if isinstance(xs, Tensor) else Tensor._make(xs, False, None, 0)
        x0 = x0 if isinstance(x0, Tensor) else Tensor._make(x0, False, None, 0)
        head = ops.unsqueeze(x0, 0)
        return ops.cat([xs[1:], head] if reverse else [head, xs[:-1]], 0)
    xp = get_xp(xs)
    head = x0[None]
    return xp.concatenate([xs[1:], head] if reverse else [head, xs[:-1]], 0)


def _mask_steps(mask, like):
    """Per-step masks m_t (N, 1) and 1 - m_t as arrays or constant Tensors (None: no mask)."""
    if mask is None:
        return None, None
    return [_const(m, like) for m in mask], [_const(1 - m, like) for m in mask]


# -- RNN (tanh / relu) -----------------------------------------------------------------------------
def _rnn_forward(gx, h0, w_hh, b, nonlinearity, mask, reverse):
    xs = _steps(gx if b is None else gx + b)
    ms, m1s = _mask_steps(mask, gx)
    wt = dual.swap_last(w_hh)
    hs = [None] * len(xs)
    h = h0
    for t in _order(len(xs), reverse):
        z = xs[t] + h @ wt
        new = dual.tanh(z) if nonlinearity == "tanh" else _relu(z)
        h = hs[t] = _carry(new, h, ms and ms[t], m1s and m1s[t])
    return hs


def _relu(z):
    """max(z, 0) with nan kept, as PyTorch's relu (z * (z > 0) would turn -inf into nan)."""
    if isinstance(z, Tensor):
        return dual.where(z.data <= 0, 0.0, z)
    return get_xp(z).maximum(z, 0)


def _positive(x):
    """0 where x <= 0, else 1 (a constant: relu's derivative; 1 at nan, as PyTorch's)."""
    d = dual.data(x)
    return _const((~(d <= 0)).astype(d.dtype), x)


def _rnn_backward(g, h0, w_hh, hs, nonlinearity, mask, reverse, need):
    """hs: the states (L, N, H) stacked; returns (g gx, g h0, g W_hh, g b_hh)."""
    deriv = _steps(1 - hs * hs if nonlinearity == "tanh" else _positive(hs))
    gs = _steps(g)
    ms, m1s = _mask_steps(mask, g)
    gzs = [None] * len(gs)
    dh = None
    for t in _order(len(gs), not reverse):
        dh = gs[t] if dh is None else gs[t] + dh
        dnew = dh if ms is None else dh * ms[t]
        gz = gzs[t] = dnew * deriv[t]
        back = gz @ w_hh
        dh = back if ms is None else back + dh * m1s[t]
    gz = _stack(gzs)
    gw = _outer_sum(gz, _shift(hs, h0, reverse)) if need[2] else None
    gb = _sum_rows(gz) if need[3] else None
    return gz, dh, gw, gb


class RNNLayer(Function):
    """h_t = act(gx_t + h_{t-1} W_hh^T + b_hh), act tanh or relu, gx = x W_ih^T + b_ih;
    out = h_t for every t;  gz_t = (g_t + gz_{t+1} W_hh) * act'(z_t),  gx = gz,
    gh0 = gz_1 W_hh,  gW_hh = sum_t gz_t^T h_{t-1},  gb_hh = sum_t gz_t"""

    raw = True

    @quiet  # inf - inf, 0 * inf: nan without a warning, as in PyTorch
    def forward(self, gx, h0, w_hh, *b, nonlinearity, mask, reverse):
        self.nonlinearity, self.mask, self.reverse = nonlinearity, mask, reverse
        bias = b[0] if b else None
        hs = _rnn_forward(gx, h0, w_hh, bias, nonlinearity, mask, reverse)
        out = get_xp(gx).stack(hs, 0)
        self.save(gx, h0, w_hh, bias, out)
        return out

    def backward(self, g):
        gx, h0, w_hh, bias, out = self.saved
        need = list(self.needs_input_grad) + [False]
        if isinstance(g, Tensor):  # create_graph: recompute the loop with differentiable ops
            out = _stack(
                _rnn_forward(gx, h0, w_hh, bias, self.nonlinearity, self.mask, self.reverse)
            )
        gz, gh0, gw, gb = _rnn_backward(
            g, h0, w_hh, out, self.nonlinearity, self.mask, self.reverse, need
        )
        grads = (gz if need[0] else None, gh0 if need[1] else None, gw)
        return grads + ((gb,) if bias is not None else ())

    def jvp(self, tgx, th0, tw, *tb):
        # forward through time: dh_t = act'(z_t) (dgx_t + db + dh_{t-1} W^T + h_{t-1} dW^T)
        gx, h0, w_hh, bias, out = self.saved
        xp = get_xp(out)
        deriv = 1 - out * out if self.nonlinearity == "tanh" else (~(out <= 0)).astype(out.dtype)
        h_prev = _shift(out, h0, self.reverse)
        drive = add_tangents(
            tgx, tb[0] if tb else None, None if tw is None else h_prev @ tw.swapaxes(-1, -2)
        )
        steps, batch, hidden = out.shape
        dh = xp.zeros((batch, hidden), dtype=out.dtype) if th0 is None else th0
        dout = xp.empty_like(out)
        for t in _order(steps, self.reverse):
            dz = dh @ w_hh.T
            if drive is not None:
                dz = dz + drive[t] if drive.ndim == 3 else dz + drive
            dh_new = deriv[t] * dz
            if self.mask is not None:  # past a sequence's end its state (and tangent) is carried
                m = self.mask[t]
                dh_new = dh_new * m + dh * (1 - m)
            dh = dout[t] = dh_new
        return dout


# -- LSTM ------------------------------------------------------------------------------------------
def _lstm_consts(hidden: int, like):
    """Per-gate constants: act = tanh(z * s) * s + b gives sigmoid (s=1/2, b=1/2) for i, f, o and
    tanh (s=1, b=0) for g in one call; d act / dz = s^2 - (act - b)^2."""
    xp = get_xp(dual.data(like))
    dtype = dual.data(like).dtype
    s = xp.full((4, hidden), 0.5, dtype=dtype)
    s[2] = 1
    b = xp.full((4, hidden), 0.5, dtype=dtype)
    b[2] = 0
    s, b = s.reshape(-1), b.reshape(-1)
    return _const(s, like), _const(b, like), _const(s * s, like)


def _gates(a, hidden: int) -> tuple:
    return (
        a[..., :hidden],
        a[..., hidden : 2 * hidden],
        a[..., 2 * hidden : 3 * hidden],
        a[..., 3 * hidden :],
    )


def _lstm_forward(x, h0, c0, w_ih, w_hh, b, w_hr, mask, reverse):
    """The loop from the input x (b: b_ih + b_hh, or None); returns lists (one entry per step) of
    h, c, gate activations and o tanh c."""
    hidden = w_hh.shape[0] // 4
    s, off, _ = _lstm_consts(hidden, x)
    gx = x @ dual.swap_last(w_ih)
    xs = _steps(gx if b is None else gx + b)
    ms, m1s = _mask_steps(mask, x)
    wt = dual.swap_last(w_hh)
    wrt = None if w_hr is None else dual.swap_last(w_hr)
    n = len(xs)
    hs, cs, acts, rs = [None] * n, [None] * n, [None] * n, [None] * n
    h, c = h0, c0
    for t in _order(n, reverse):
        z = xs[t] + h @ wt
        a = dual.tanh(z * s) * s + off
        i, f, gg, o = _gates(a, hidden)
        c_new = f * c + i * gg
        r = o * dual.tanh(c_new)
        h_new = r if wrt is None else r @ wrt
        m, m1 = (ms[t], m1s[t]) if ms is not None else (None, None)
        h, c = _carry(h_new, h, m, m1), _carry(c_new, c, m, m1)
        hs[t], cs[t], acts[t], rs[t] = h, c, a, r
    return hs, cs, acts, (rs if w_hr is not None else None)


def _lstm_backward(gh, gcn, h0, c0, w_hh, w_hr, hs, cs, acts, rs, mask, reverse, need):
    """gh: the gradient of every h_t, gcn: of c_n; hs, cs, acts, rs stacked over time; returns
    the gradients of (z (the gates' pre-activations), h0, c0, W_hh, W_hr)."""
    hidden = cs.shape[-1]
    _, off, s2 = _lstm_consts(hidden, gh)
    gh_out = _steps(gh)
    # over the whole sequence at once: tanh(c_t) and each gate's derivative d act / dz
    tcs = _steps(dual.tanh(cs))
    u = acts - off
    derivs = _steps(s2 - u * u)
    acts = _steps(acts)
    c_prevs = _steps(_shift(cs, c0, reverse))
    ms, m1s = _mask_steps(mask, gh)
    n = len(gh_out)
    gzs, ghs = [None] * n, [None] * n
    dh, dc = None, gcn
    for t in _order(n, not reverse):
        # past a sequence's length dh_new and dc_new are 0: the step adds nothing, the state's
        # gradient is carried through unchanged
        dh = gh_out[t] if dh is None else gh_out[t] + dh
        m, m1 = (ms[t], m1s[t]) if ms is not None else (None, None)
        dh_new = dh if m is None else dh * m
        dc_new = dc if m is None else dc * m
        i, f, gg, o = _gates(acts[t], hidden)
        tc = tcs[t]
        ghs[t] = dh_new
        dr = dh_new if w_hr is None else dh_new @ w_hr
        dct = dc_new + dr * o * (1 - tc * tc)
        gz = gzs[t] = _cat([dct * gg, dct * c_prevs[t], dct * i, dr * tc]) * derivs[t]
        back_h, back_c = gz @ w_hh, dct * f
        dh = back_h if m is None else back_h + dh * m1
        dc = back_c if m is None else back_c + dc * m1
    gz = _stack(gzs)
    gw = _outer_sum(gz, _shift(hs, h0, reverse)) if need[4] else None
    gwr = _outer_sum(_stack(ghs), rs) if need[7] else None
    return gz, dh, dc, gw, gwr


# fast path: the loop on arrays, in place, in preallocated buffers (a plain backward never
# needs the Tensor version above, which serves create_graph=True)
def _partial_steps(mask):
    """Per step: whether some sequence has ended (its state must be carried), as host bools."""
    if mask is None:
        return None
    return [bool(v) for v in (mask == 0).any(axis=(1, 2)).tolist()]


def _rotate_in(w, hidden: int, scale=1, out=None):
    """Gate blocks (i, f, g, o) along dim 0 -> (o, i, f, g): the three sigmoids next to each
    other, and the three gates that dc_t scales too; the sigmoids' rows times scale."""
    sig = 3 * hidden
    if out is None:
        out = get_xp(w).empty(w.shape, dtype=w.dtype)
    get_xp(w).multiply(w[sig:], scale, out=out[:hidden])
    get_xp(w).multiply(w[: 2 * hidden], scale, out=out[hidden:sig])
    out[sig:] = w[2 * hidden : sig]
    return out


def _lstm_forward_arrays(x, h0, c0, w_ih, w_hh, b, w_hr, mask, reverse):
    """The loop in preallocated buffers, transposed: a step's gates are acts[t] (4H, N) with
    rows (o, i, f, g) (see _rotate_in), states (H, N), so that every gate is one contiguous
    block and each step's product is W [h; x_t; 1] (the faster BLAS shape here; at W5's sizes
    this loop ran 10.8 ms where W_hh h^T added to a projection of all steps' inputs made before
    the loop ran 11.8). Returns h_t (L, N, P), c_n (N, H) and, stacked over time, the activated
    gates, c_t, tanh c_t, (with W_hr) o tanh c_t and the products' right-hand sides
    [h_{t-1}; x_t; 1] (K, N) in processing order (with one more slot, for the last h)."""
    xp = get_xp(x)
    steps, batch, n_in = x.shape
    four_h, p = w_hh.shape
    hidden = four_h // 4
    sig = 3 * hidden
    dtype = x.dtype
    # sigmoid(v) = tanh(v / 2) / 2 + 1/2: the halving folded into the weights and bias once;
    # one product a step for the whole gate input, [W_hh | W_ih | b] [h_{t-1}; x_t; 1]
    k = p + n_in + (b is not None)
    w = xp.empty((four_h, k), dtype=dtype)
    _rotate_in(w_hh, hidden, 0.5, out=w[:, :p])
    _rotate_in(w_ih, hidden, 0.5, out=w[:, p : p + n_in])
    if b is not None:
        _rotate_in(b, hidden, 0.5, out=w[:, p + n_in])
    # the products' right-hand sides, in processing order: stack[j] = [h; x_t; 1] for the j-th
    # step processed, whose h (written by the step before) is the state it starts from
    buffers = buffers_of(w_hh)
    stack = buffers.empty((steps + 1, k, batch), dtype, x)  # (the backward's sums read it too)
    xt = x.transpose(0, 2, 1)
    stack[:steps, p : p + n_in] = xt[::-1] if reverse else xt
    if b is not None:
        stack[:steps, p + n_in] = 1
    stack[0, :p] = h0.T
    acts = buffers.empty((steps, four_h, batch), dtype, x)
    wrt = None if w_hr is None else xp.ascontiguousarray(w_hr)
    cs = buffers.empty((steps, hidden, batch), dtype, x)
    tcs = buffers.empty((steps, hidden, batch), dtype, x)
    rs = None if w_hr is None else xp.empty((steps, hidden, batch), dtype=dtype)
    ig = xp.empty((hidden, batch), dtype=dtype)
    partial = _partial_steps(mask)
    hs = buffers.empty((steps, batch, p), dtype, x)
    # each step's h goes to hs[t] as (N, P) while in the cache (omatcopy: W5's forward 0.3 ms
    # less than one strided copy of all steps after the loop)
    put = transpose_into_at(stack[1, :p], hs[0]) if steps else None
    # the step product by the BLAS's gemm, its arguments prepared once (split into one piece
    # a thread where that pays: `add_matmul_into`)
    product = add_matmul_into(w, batch, beta=0.0) if steps and batch else None
    if put is not None or product is not None:
        stack_at, stack_step = stack.ctypes.data, stack.strides[0]
        hs_at, hs_step = hs.ctypes.data, hs.strides[0]
        acts_at, acts_step = acts.ctypes.data, acts.strides[0]
    c = c0.T
    for j, t in enumerate(_order(steps, reverse)):
        a = acts[t]
        if product is not None:
            product(stack_at + j * stack_step, acts_at + t * acts_step)
        else:
            xp.matmul(w, stack[j], out=a)
        xp.tanh(a, out=a)
        s = a[:sig]
        s *= 0.5
        s += 0.5
        o, i, f, g = a[:hidden], a[hidden : 2 * hidden], a[2 * hidden : sig], a[sig:]
        ct, tc = cs[t], tcs[t]
        xp.multiply(f, c, out=ct)
        xp.multiply(i, g, out=ig)
        ct += ig
        xp.tanh(ct, out=tc)
        ht = stack[j + 1, :p]
        if w_hr is None:
            xp.multiply(o, tc, out=ht)
        else:
            xp.multiply(o, tc, out=rs[t])
            xp.matmul(wrt, rs[t], out=ht)
        if partial is not None and partial[t]:
            keep = (mask[t] == 0).T
            xp.copyto(ht, stack[j, :p], where=keep)
            xp.copyto(ct, c, where=keep)
        if put is not None:
            put(stack_at + (j + 1) * stack_step, hs_at + t * hs_step)
        c = ct
    if put is None:
        h_all = stack[1:, :p]
        xp.copyto(hs, (h_all[::-1] if reverse else h_all).transpose(0, 2, 1))
    return hs, xp.ascontiguousarray(c.T), acts, cs, tcs, rs, stack


def _lstm_backward_arrays(
    gh, gcn, x, h0, c0, w_ih, w_hh, w_hr, stack, acts, cs, tcs, rs, mask, reverse, need, over=False
):
    """The transposed layout of _lstm_forward_arrays (stack: its products' right-hand sides,
    [h_{t-1}; x_t; 1] for each step in processing order); need: (x, h0, c0, W_ih, W_hh, bias,
    W_hr); returns their gradients (None where not needed; one bias gradient, for b_ih and
    b_hh). over: nothing reads the activations acts after this, so each step's gate gradients
    are written over its own activations, still in the cache (W5: 35.1-35.2 against 35.6-36.0
    ms a step with a separate ring).

    The gate gradients are gz = D_t * (dr_t for the o rows, dc_t for i, f, g), where D_t
    (sigmoid' tanh c_t, sigmoid' g, sigmoid' c_{t-1}, tanh' i) and o (1 - tanh^2 c_t) depend on
    the activations alone: they are made a chunk of steps at a time before the chunk's steps
    run, in 13 array calls, and a step is left with 5 and its product (18 before), which also
    adds the outputs' gradient for the step before (`parallel.gemm_group`). The same elementwise
    passes, fewer calls: at W5's sizes the loop's elementwise work 2.9 against 3.1 ms, W5 33.9
    against 34.1 ms a step (alternating in one process).

    The weights' gradients [gW_hh | gW_ih | gb] = sum_t gz_t [h_{t-1}; x_t; 1]^T are added up
    a step at a time, gz_t times the forward's stack[j]^T, in the same gemm_batch call as the
    step's product (`parallel.gemm_group`), each thread adding into its own rows of the sum;
    gx = gz W_ih comes a chunk of steps at a time, one product a step in one call. Why not
    one product over a chunk's steps (as before): that needs the chunk's gate gradients
    copied into one (4H, C N) matrix and its [h; x; 1] rows into another, written by this
    thread into memory the other thread read a chunk before, and when the host puts the two
    vCPUs far apart (a cache line's round trip between them 750 ns instead of 50) every such
    write waits for the other core to let go of the line: the two copies ran 3.4 and 1.2 ms a
    step there against 0.5 and 0.3 (benchmarks/NOTES.md, "Sixteenth round")."""
    xp = get_xp(acts)
    steps, four_h, batch = acts.shape
    hidden, p = four_h // 4, w_hh.shape[1]
    n_in = x.shape[-1]
    sig = 3 * hidden
    dtype = acts.dtype
    k = stack.shape[1]  # p + n_in (+ 1 with a bias)
    # dh_{t-1} = W_hh^T gz_t: W_hh^T with its columns in the gates' row order, in C order, so
    # that the step product reads it untransposed (104 against 109 us a step in W5; a
    # concatenation of the transposes keeps their Fortran order); omatcopy writes it
    w_back = xp.empty((p, four_h), dtype=dtype)
    for src, dst in ((w_hh[sig:], w_back[:, :hidden]), (w_hh[:sig], w_back[:, hidden:])):
        if not transpose_into(src, dst):  # (another BLAS, CuPy)
            dst[...] = src.T
    ght = None
    if gh is not None:
        ght = buffers_of(w_hh).empty((steps, p, batch), dtype, acts)
        ght[...] = gh.transpose(0, 2, 1)
    # the chunks of steps whose D is made at once: C steps of N columns, ~256 columns
    size = max(1, -(-_CHUNK_COLUMNS // max(batch, 1)))
    ring = None if over else xp.empty((size, four_h, batch), dtype=dtype)
    scale = xp.empty((size, hidden, batch), dtype=dtype)  # o (1 - tanh^2 c_t)
    fs = xp.empty((size, hidden, batch), dtype=dtype) if over else None  # f, kept from D
    tmp = xp.empty((size, hidden, batch), dtype=dtype)
    sq = xp.empty((size, sig, batch), dtype=dtype)
    u, dcf = (xp.empty((hidden, batch), dtype=dtype) for _ in range(2))
    ghs = xp.empty((p, steps, batch), dtype=dtype) if w_hr is not None and need[6] else None
    partial = _partial_steps(mask)
    dh = dh0 = xp.zeros((p, batch), dtype=dtype)
    dc = xp.zeros((hidden, batch), dtype=dtype)
    if gcn is not None:
        dc[...] = gcn.T
    first = steps - 1 if reverse else 0  # the step that started from (h0, c0)
    # the weights' gradients, rows (o, i, f, g), columns [W_hh | W_ih | b]; gx and W_ih with
    # its rows in that order for it
    total = xp.zeros((four_h, k), dtype=dtype) if any(need[3:6]) else None
    gx = xp.empty((steps, batch, n_in), dtype=dtype) if need[0] else None
    w_in = _rotate_in(w_ih, hidden) if need[0] else None
    # the prepared products (None: another BLAS, CuPy, products too small for gemm_batch):
    # with the outputs' gradients, each step's product adds W_hh^T gz_t straight into the
    # gradient of the h it started from, ght[t -+ 1] (gemm with beta = 1), which is then the
    # next step's dh: no add a step (in W5 104 us a step, against 110 + 3 for the product and
    # the add with W_hh^T in Fortran order); the step's share of the sums goes in the same call
    into = both = add = inputs = None
    if steps and batch:
        gz0, rhs0 = acts[0], stack[0].T  # samples of the operands' layouts
        if total is not None:
            add = gemm_group([(gz0, rhs0, 1.0)])
            if ght is not None:
                both = gemm_group([(w_back, gz0, 1.0), (gz0, rhs0, 1.0)])
        if ght is not None and both is None:
            into = gemm_group([(w_back, gz0, 1.0)])
        if gx is not None:
            inputs = gemm_group([(gz0.T, w_in, 0.0)] * size)
    if into is not None or both is not None:
        dh = ght[0 if reverse else steps - 1]
        ght_at, ght_step = ght.ctypes.data, ght.strides[0]
    w_back_at, stack_at, stack_step = w_back.ctypes.data, stack.ctypes.data, stack.strides[0]
    total_at = None if total is None else total.ctypes.data
    if gx is not None:
        gx_at, gx_step, w_in_at = gx.ctypes.data, gx.strides[0], w_in.ctypes.data
    starts = range(0, steps, size)
    for t0 in starts if reverse else reversed(starts):
        t1 = min(t0 + size, steps)
        n = t1 - t0
        a, tc = acts[t0:t1], tcs[t0:t1]
        d = a if over else ring[:n]  # D, then the gate gradients
        o, i, f, g = a[:, :hidden], a[:, hidden : 2 * hidden], a[:, 2 * hidden : sig], a[:, sig:]
        sc, tm = scale[:n], tmp[:n]
        if over:
            xp.copyto(fs[:n], f)
        ff = fs[:n] if over else f
        xp.multiply(tc, tc, out=tm)
        xp.subtract(1, tm, out=tm)
        xp.multiply(o, tm, out=sc)
        xp.multiply(g, g, out=tm)
        xp.subtract(1, tm, out=tm)
        tm *= i  # (1 - g^2) i, for d's g rows once g is no longer read
        xp.multiply(a[:, :sig], a[:, :sig], out=sq[:n])
        xp.subtract(a[:, :sig], sq[:n], out=d[:, :sig])  # sigmoid' = s - s^2
        d[:, :hidden] *= tc
        d[:, hidden : 2 * hidden] *= g
        prev = d[:, 2 * hidden : sig]  # times c_{t-1}: cs of the step before, c0 for the first
        if reverse:
            hi = min(t1, steps - 1)
            prev[: hi - t0] *= cs[t0 + 1 : hi + 1]
            if t1 == steps:
                prev[n - 1] *= c0.T
        else:
            lo = max(t0, 1)
            prev[lo - t0 :] *= cs[lo - 1 : t1 - 1]
            if t0 == 0:
                prev[0] *= c0.T
        xp.copyto(d[:, sig:], tm)
        d_at, d_step = d.ctypes.data, d.strides[0]
        for t in range(t0, t1) if reverse else range(t1 - 1, t0 - 1, -1):
            j = t - t0
            gzt = d[j]
            if ght is not None and into is None and both is None:  # (another BLAS, CuPy)
                dh += ght[t]
            cut = partial is not None and partial[t]
            if cut:  # ended sequences: the gradient passes to the carried state unchanged
                m = mask[t].T
                carry_h, carry_c = dh * (1 - m), dc * (1 - m)
                dh *= m
                dc *= m
            if w_hr is None:
                dr = dh
            else:
                if ghs is not None:
                    ghs[:, t] = dh
                dr = w_hr.T @ dh
            # dc_t = dc + dr o (1 - tanh^2 c_t); the next step's dc_{t-1} = dc_t f
            xp.multiply(dr, sc[j], out=u)
            dc += u
            xp.multiply(dc, ff[j], out=dcf)
            gzt[:hidden] *= dr
            gz3 = gzt[hidden:].reshape(3, hidden, batch)  # the rows dc_t scales: i, f, g
            gz3 *= dc
            # this step's [h_{t-1}; x_t; 1]: the forward's right-hand side of its product
            rhs = stack_at + (steps - 1 - t if reverse else t) * stack_step
            summed = total is None
            if t == first:
                if need[1]:  # the last product only serves h0's gradient
                    dh = dh0
                    xp.matmul(w_back, gzt, out=dh)
            elif into is not None or both is not None:
                t_in = t + 1 if reverse else t - 1  # the step whose output h_t started from
                gz_at, to = d_at + j * d_step, ght_at + t_in * ght_step
                if both is not None:
                    both((w_back_at, gz_at, to), (gz_at, rhs, total_at))
                    summed = True
                else:
                    into((w_back_at, gz_at, to))
                dh = ght[t_in]
            else:
                xp.matmul(w_back, gzt, out=dh)
            if not summed:
                if add is not None:
                    add((d_at + j * d_step, rhs, total_at))
                else:  # (another BLAS, CuPy)
                    total += gzt @ stack[steps - 1 - t if reverse else t].T
            dc, dcf = dcf, dc
            if cut:
                dh += carry_h
                dc += carry_c
        if gx is not None:  # gx_t = gz_t^T W_ih (rows in the gates' order), a chunk at a time
            if inputs is not None:
                at = gx_at + t0 * gx_step
                inputs(*((d_at + q * d_step, w_in_at, at + q * gx_step) for q in range(n)))
            else:
                xp.matmul(d.transpose(0, 2, 1), w_in, out=gx[t0:t1])
    blas_threads_ran()  # (as _order says)
    gw_ih = gw_hh = gb = None
    if total is not None:
        # rows (o, i, f, g) -> (i, f, g, o); each gradient its own C-order array
        cols = ((4, 0, p), (3, p, p + n_in), (5, p + n_in, k))
        grads = []
        for which, lo, hi in cols:
            if not need[which] or lo == hi:
                grads.append(None)
                continue
            part = total[:, lo:hi]
            grad = xp.empty(part.shape, dtype=dtype)
            grad[:sig] = part[hidden:]
            grad[sig:] = part[:hidden]
            grads.append(grad.reshape(-1) if which == 5 else grad)
        gw_hh, gw_ih, gb = grads
    gw_hr = None
    if ghs is not None:
        gw_hr = ghs.reshape(p, -1) @ rs.transpose(0, 2, 1).reshape(-1, hidden)
    return gx, xp.ascontiguousarray(dh.T), xp.ascontiguousarray(dc.T), gw_ih, gw_hh, gb, gw_hr


def _combined_bias(b_ih, b_hh):
    if b_ih is None:
        return b_hh
    return b_ih if b_hh is None else b_ih + b_hh


class _LSTMNode(Function):
    """What LSTMLayer and LSTMState share: the saved arrays (the same ones in both nodes), the
    gradient rule for the gradients of (h_t for every t, c_n) and the forward-mode rule. Not
    a primitive itself (no forward): its two subclasses are."""

    def _need(self) -> list:
        """needs_input_grad as (x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr), False for the absent."""
        need = list(self.needs_input_grad)
        for k in (5, 6):
            if not self.has_bias[k - 5]:
                need.insert(k, False)
        if not self.has_proj:
            need.append(False)
        return need

    def _inputs(self, x, h0, c0, w_ih, w_hh, rest, has_bias, has_proj, mask, reverse) -> tuple:
        """Keep the settings; (b_ih, b_hh, W_hr) from the optional inputs."""
        self.has_bias, self.has_proj, self.mask, self.reverse = has_bias, has_proj, mask, reverse
        rest = list(rest)
        b_ih = rest.pop(0) if has_bias[0] else None
        b_hh = rest.pop(0) if has_bias[1] else None
        return b_ih, b_hh, rest[0] if has_proj else None

    def _grads(self, gh, gcn) -> tuple:
        """The gradients of the inputs from gh (every h_t) and gcn (c_n); None: zero."""
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, hs, acts, cs, tcs, rs, stack = self.saved
        need = self._need()
        g = gh if gh is not None else gcn
        if isinstance(g, Tensor):  # create_graph: recompute the loop with differentiable ops
            xp = get_xp(g.data)
            if gh is None:
                gh = _const(xp.zeros(hs.shape, dtype=g.dtype), g)
            if gcn is None:
                gcn = _const(xp.zeros(c0.shape, dtype=g.dtype), g)
            b = _combined_bias(b_ih, b_hh)
            lists = _lstm_forward(x, h0, c0, w_ih, w_hh, b, w_hr, self.mask, self.reverse)
            hs, cs, acts = _stack(lists[0]), _stack(lists[1]), _stack(lists[2])
            rs = None if lists[3] is None else _stack(lists[3])
            gz, gh0, gc0, gw_hh, gw_hr = _lstm_backward(
                gh, gcn, h0, c0, w_hh, w_hr, hs, cs, acts, rs, self.mask, self.reverse, need
            )
            gx = gz @ w_ih if need[0] else None
            gw_ih = _outer_sum(gz, x) if need[3] else None
            gb_ih = _sum_rows(gz) if need[5] else None
            gb_hh = _sum_rows(gz) if need[6] else None
        else:
            need_arr = need[:5] + [need[5] or need[6], need[7]]
            # a backward that frees the graph as it goes: once this node lets go of its saved
            # arrays, the activations may be written over, unless something else holds them
            # (c_n's node before its own backward, a graph kept for another backward)
            self.release_saved()
            over = only_held_by_caller(acts, 1, buffers_of(w_hh))
            gx, gh0, gc0, gw_ih, gw_hh, gb, gw_hr = _lstm_backward_arrays(
                gh,
                gcn,
                x,
                h0,
                c0,
                w_ih,
                w_hh,
                w_hr,
                stack,
                acts,
                cs,
                tcs,
                rs,
                self.mask,
                self.reverse,
                need_arr,
                over,
            )
            gb_ih = gb if need[5] else None
            gb_hh = None
            if need[6]:  # the same gradient: a second array, as each leaf may keep its own
                gb_hh = gb.copy() if need[5] else gb
        grads = [gx, gh0 if need[1] else None, gc0 if need[2] else None, gw_ih, gw_hh]
        if self.has_bias[0]:
            grads.append(gb_ih)
        if self.has_bias[1]:
            grads.append(gb_hh)
        if self.has_proj:
            grads.append(gw_hr)
        return tuple(grads)

    def _tangents(self, tx, th0, tc0, tw_ih, tw_hh, trest) -> tuple:
        """Forward mode, the tangents of (h_t for every t, c_n): forward through time,
        dz = dx W_ih^T + x dW_ih^T + db + dh_{t-1} W_hh^T + h_{t-1} dW_hh^T, da = act'(z) dz,
        dc = df c_{t-1} + f dc_{t-1} + di g + i dg, dr = do tanh c + o (1 - tanh^2 c) dc,
        dh = dr W_hr^T + r dW_hr^T (no W_hr: dr)."""
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = self.saved[:8]
        xp = get_xp(x)
        # the activations in PyTorch's layout, recomputed (the saved ones are transposed)
        b = _combined_bias(b_ih, b_hh)
        hs, cs, acts, rs = (
            None if v is None else _stack(v)
            for v in _lstm_forward(x, h0, c0, w_ih, w_hh, b, w_hr, self.mask, self.reverse)
        )
        tcs = xp.tanh(cs)
        trest = list(trest)
        tb_ih = trest.pop(0) if self.has_bias[0] else None
        tb_hh = trest.pop(0) if self.has_bias[1] else None
        twr = trest[0] if self.has_proj else None
        steps, batch, p = hs.shape
        hidden = acts.shape[-1] // 4
        _, off, s2 = _lstm_consts(hidden, hs)
        u = acts - off
        deriv = s2 - u * u
        h_prev, c_prev = _shift(hs, h0, self.reverse), _shift(cs, c0, self.reverse)
        drive = add_tangents(
            None if tx is None else tx @ w_ih.T,
            None if tw_ih is None else x @ tw_ih.swapaxes(-1, -2),
            tb_ih,
            tb_hh,
            None if tw_hh is None else h_prev @ tw_hh.swapaxes(-1, -2),
        )
        proj = None if twr is None else rs @ twr.swapaxes(-1, -2)
        dh = xp.zeros((batch, p), dtype=hs.dtype) if th0 is None else th0
        dc = xp.zeros((batch, hidden), dtype=hs.dtype) if tc0 is None else tc0
        dout = xp.empty_like(hs)
        for t in _order(steps, self.reverse):
            dz = dh @ w_hh.T
            if drive is not None:
                dz = dz + drive[t] if drive.ndim == 3 else dz + drive
            di, df, dg, do = _gates(deriv[t] * dz, hidden)
            i, f, g, o = _gates(acts[t], hidden)
            dc_new = df * c_prev[t] + f * dc + di * g + i * dg
            tc = tcs[t]
            dr = do * tc + o * (1 - tc * tc) * dc_new
            dh_new = dr if w_hr is None else dr @ w_hr.T
            if proj is not None:
                dh_new = dh_new + proj[t]
            if self.mask is not None:
                m = self.mask[t]
                dh_new, dc_new = dh_new * m + dh * (1 - m), dc_new * m + dc * (1 - m)
            dh, dc = dh_new, dc_new
            dout[t] = dh
        return dout, xp.broadcast_to(dc, (batch, hidden)).copy()


class LSTMLayer(_LSTMNode):
    """z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (gates i, f, g, o), c_t = f c_{t-1} + i g,
    h_t = (o tanh c_t) W_hr^T (no W_hr: o tanh c_t);  out = h_t for every t (c_n: LSTMState);
    backward: backprop through time in one reverse loop, then gW_hh = sum_t gz_t^T h_{t-1},
    gW_ih = sum_t gz_t^T x_t and gx = gz W_ih, each one matrix product over all steps"""

    raw = True

    @quiet  # inf - inf, 0 * inf: nan without a warning, as in PyTorch
    def forward(self, x, h0, c0, w_ih, w_hh, *rest, has_bias, has_proj, mask, reverse, box):
        # has_bias: (b_ih given, b_hh given); rest holds the given ones, then W_hr; box: a list
        # that receives (c_n, the saved arrays) for the LSTMState node of the same call
        b_ih, b_hh, w_hr = self._inputs(
            x, h0, c0, w_ih, w_hh, rest, has_bias, has_proj, mask, reverse
        )
        hs, c_n, acts, cs, tcs, rs, stack = _lstm_forward_arrays(
            x, h0, c0, w_ih, w_hh, _combined_bias(b_ih, b_hh), w_hr, mask, reverse
        )
        saved = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, hs, acts, cs, tcs, rs, stack)
        self.save(*saved)
        box.append((c_n, saved))
        return hs

    def backward(self, g):
        return self._grads(g, None)

    def jvp(self, tx, th0, tc0, tw_ih, tw_hh, *trest):
        return self._tangents(tx, th0, tc0, tw_ih, tw_hh, trest)[0]


class LSTMState(_LSTMNode):
    """c_n, the last cell state of the LSTMLayer call whose results `box` holds (nothing is
    recomputed);  backward: backprop through time from g(c_n) alone"""

    raw = True

    def forward(self, x, h0, c0, w_ih, w_hh, *rest, has_bias, has_proj, mask, reverse, box):
        self._inputs(x, h0, c0, w_ih, w_hh, rest, has_bias, has_proj, mask, reverse)
        c_n, saved = box.pop()
        self.save(*saved)
        return c_n

    def backward(self, g):
        return self._grads(None, g)

    def jvp(self, tx, th0, tc0, tw_ih, tw_hh, *trest):
        return self._tangents(tx, th0, tc0, tw_ih, tw_hh, trest)[1]


# -- GRU -------------------------------------------------------------------------------------------
def _gru_forward(gx, h0, w_hh, b, mask, reverse):
    """The loop; returns lists of h, (r, z), n and W_hn h + b_hn per step."""
    hidden = gx.shape[-1] // 3
    xs = _steps(gx)
    ms, m1s = _mask_steps(mask, gx)
    wt = dual.swap_last(w_hh)
    n = len(xs)
    hs, rzs, ns, hns = [None] * n, [None] * n, [None] * n, [None] * n
    h = h0
    for t in _order(n, reverse):
        gh = h @ wt if b is None else h @ wt + b
        x = xs[t]
        rz = _sigmoid(x[..., : 2 * hidden] + gh[..., : 2 * hidden])
        r, z = rz[..., :hidden], rz[..., hidden:]
        hn = gh[..., 2 * hidden :]
        nt = dual.tanh(x[..., 2 * hidden :] + r * hn)
        h_new = nt + z * (h - nt)
        h = hs[t] = _carry(h_new, h, ms and ms[t], m1s and m1s[t])
        rzs[t], ns[t], hns[t] = rz, nt, hn
    return hs, rzs, ns, hns


def _gru_backward(g, h0, w_hh, hs, rzs, ns, hns, mask, reverse, need):
    """hs, rzs, ns, hns stacked over time; returns the gradients of (gx, h0, W_hh, b_hh)."""
    hidden = hs.shape[-1]
    gs = _steps(g)
    d_rz = _steps(rzs * (1 - rzs))
    d_n = _steps(1 - ns * ns)
    h_prevs = _shift(hs, h0, reverse)
    rzs, ns, hns, steps_prev = _steps(rzs), _steps(ns), _steps(hns), _steps(h_prevs)
    ms, m1s = _mask_steps(mask, g)
    n = len(gs)
    gxs, gzs = [None] * n, [None] * n
    dh = None
    for t in _order(n, not reverse):
        dh = gs[t] if dh is None else gs[t] + dh
        m, m1 = (ms[t], m1s[t]) if ms is not None else (None, None)
        dnew = dh if m is None else dh * m
        r, z = rzs[t][..., :hidden], rzs[t][..., hidden:]
        dan = dnew * (1 - z) * d_n[t]
        drz = _cat([dan * hns[t], dnew * (steps_prev[t] - ns[t])]) * d_rz[t]
        gxs[t] = _cat([drz, dan])
        gz = gzs[t] = _cat([drz, dan * r])
        back = gz @ w_hh + dnew * z
        dh = back if m is None else back + dh * m1
    gz = _stack(gzs)
    gw = _outer_sum(gz, h_prevs) if need[2] else None
    gb = _sum_rows(gz) if need[3] else None
    return _stack(gxs), dh, gw, gb


def _gru_forward_arrays(gx, h0, w_hh, b, mask, reverse):
    """The fast loop; returns h, (r, z), n and h W_hh^T + b_hh (r, z parts halved) stacked."""
    xp = get_xp(gx)
    steps, batch, three_h = gx.shape
    hidden = three_h // 3
    # sigmoid(v) = tanh(v / 2) / 2 + 1/2: the halving folded into the r, z columns once
    scale = xp.ones(three_h, dtype=gx.dtype)
    scale[: 2 * hidden] = 0.5
    gxs = gx * scale
    wts = xp.ascontiguousarray(w_hh.T) * scale
    bs = None if b is None else b * scale
    dtype = gx.dtype
    hs = xp.empty((steps, batch, hidden), dtype=dtype)
    rzs = xp.empty((steps, batch, 2 * hidden), dtype=dtype)
    ns = xp.empty((steps, batch, hidden), dtype=dtype)
    ghs = xp.empty((steps, batch, three_h), dtype=dtype)
    partial = _partial_steps(mask)
    h = h0
    for t in _order(steps, reverse):
        gh, rz, nt, ht = ghs[t], rzs[t], ns[t], hs[t]
        xp.matmul(h, wts, out=gh)
        if bs is not None:
            gh += bs
        xp.add(gxs[t, :, : 2 * hidden], gh[:, : 2 * hidden], out=rz)
        xp.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        xp.multiply(rz[:, :hidden], gh[:, 2 * hidden :], out=nt)
        nt += gxs[t, :, 2 * hidden :]
        xp.tanh(nt, out=nt)
        xp.subtract(h, nt, out=ht)
        ht *= rz[:, hidden:]
        ht += nt
        if partial is not None and partial[t]:
            xp.copyto(ht, h, where=mask[t] == 0)
        h = ht
    return hs, rzs, ns, ghs[..., 2 * hidden :]


def _gru_backward_arrays(g, h0, w_hh, hs, rzs, ns, hns, mask, reverse, need):
    xp = get_xp(g)
    steps, batch, hidden = hs.shape
    h_prev = _shift(hs, h0, reverse)
    r_all, z_all = rzs[..., :hidden], rzs[..., hidden:]
    # over the whole sequence at once: dh/d(n's pre-activation), and dh/d(r's, z's
    # pre-activations) per unit of d(n's pre-activation) and of dh
    a_n = (1 - z_all) * (1 - ns * ns)
    k_r = hns * r_all * (1 - r_all)
    k_z = (h_prev - ns) * z_all * (1 - z_all)
    ggx = xp.empty((steps, batch, 3 * hidden), dtype=g.dtype)
    ggh = xp.empty_like(ggx)
    partial = _partial_steps(mask)
    dh = xp.zeros((batch, hidden), dtype=g.dtype)
    for t in _order(steps, not reverse):
        dnew = g[t] + dh
        cut = partial is not None and partial[t]
        if cut:  # ended sequences: the gradient passes to the carried state unchanged
            carry = dnew * (1 - mask[t])
            dnew *= mask[t]
        ght = ggh[t]
        dan = ggx[t, :, 2 * hidden :]
        xp.multiply(dnew, a_n[t], out=dan)
        xp.multiply(dan, k_r[t], out=ght[:, :hidden])
        xp.multiply(dnew, k_z[t], out=ght[:, hidden : 2 * hidden])
        xp.multiply(dan, r_all[t], out=ght[:, 2 * hidden :])
        dh = ght @ w_hh
        dnew *= z_all[t]
        dh += dnew
        if cut:
            dh += carry
    ggx[..., : 2 * hidden] = ggh[..., : 2 * hidden]
    gw = _outer_sum(ggh, h_prev) if need[2] else None
    gb = _sum_rows(ggh) if need[3] else None
    return ggx, dh, gw, gb


class GRULayer(Function):
    """gh_t = h_{t-1} W_hh^T + b_hh, r, z = sigmoid(gx_t + gh_t) (gx = x W_ih^T + b_ih),
    n = tanh(gx_n + r gh_n),  h_t = (1 - z) n + z h_{t-1};  out = h_t for every t;
    backward: backprop through time in one reverse loop, gW_hh = sum_t g(gh_t)^T h_{t-1}"""

    raw = True

    @quiet  # inf - inf, 0 * inf: nan without a warning, as in PyTorch
    def forward(self, gx, h0, w_hh, *b, mask, reverse):
        self.mask, self.reverse = mask, reverse
        bias = b[0] if b else None
        hs, rzs, ns, hns = _gru_forward_arrays(gx, h0, w_hh, bias, mask, reverse)
        self.save(gx, h0, w_hh, bias, hs, rzs, ns, hns)
        return hs

    def backward(self, g):
        gx, h0, w_hh, bias, out, rzs, ns, hns = self.saved
        need = list(self.needs_input_grad) + [False]
        if isinstance(g, Tensor):  # create_graph: recompute the loop with differentiable ops
            lists = _gru_forward(gx, h0, w_hh, bias, self.mask, self.reverse)
            out, rzs, ns, hns = (_stack(x) for x in lists)
            grads = _gru_backward(g, h0, w_hh, out, rzs, ns, hns, self.mask, self.reverse, need)
        else:
            grads = _gru_backward_arrays(
                g, h0, w_hh, out, rzs, ns, hns, self.mask, self.reverse, need
            )
        ggx, gh0, gw, gb = grads
        out = (ggx if need[0] else None, gh0 if need[1] else None, gw)
        return out + ((gb,) if bias is not None else ())

    def jvp(self, tgx, th0, tw, *tb):
        # forward through time: dgh = dh_{t-1} W^T + h_{t-1} dW^T + db, d(r, z) = rz (1 - rz)
        # (dgx + dgh), dn = (1 - n^2) (dgx_n + dr gh_n + r dgh_n),
        # dh = (1 - z) dn + dz (h_{t-1} - n) + z dh_{t-1}
        gx, h0, w_hh, bias, out, rzs, ns, hns = self.saved
        xp = get_xp(out)
        hidden = out.shape[-1]
        h_prev = _shift(out, h0, self.reverse)
        drive_h = add_tangents(
            tb[0] if tb else None, None if tw is None else h_prev @ tw.swapaxes(-1, -2)
        )
        steps, batch = out.shape[:2]
        dh = xp.zeros((batch, hidden), dtype=out.dtype) if th0 is None else th0
        dout = xp.empty_like(out)
        for t in _order(steps, self.reverse):
            dgh = dh @ w_hh.T
            if drive_h is not None:
                dgh = dgh + drive_h[t] if drive_h.ndim == 3 else dgh + drive_h
            d_in = dgh[..., : 2 * hidden]
            if tgx is not None:
                d_in = d_in + tgx[t, :, : 2 * hidden]
            rz = rzs[t]
            drz = rz * (1 - rz) * d_in
            r, z = rz[..., :hidden], rz[..., hidden:]
            dr, dz = drz[..., :hidden], drz[..., hidden:]
            n = ns[t]
            dn_in = dr * hns[t] + r * dgh[..., 2 * hidden :]
            if tgx is not None:
                dn_in = dn_in + tgx[t, :, 2 * hidden :]
            dn = (1 - n * n) * dn_in
            dh_new = (1 - z) * dn + dz * (h_prev[t] - n) + z * dh
            if self.mask is not None:
                m = self.mask[t]
                dh_new = dh_new * m + dh * (1 - m)
            dh = dout[t] = dh_new
        return dout


# -- argument handling -----------------------------------------------------------------------------
def _lengths_mask(lengths, steps: int, batch: int, like: Tensor):
    """(L, N, 1) 0/1 array of like's dtype: 1 where t < lengths[n]; None when lengths is None."""
    if lengths is None:
        return None
    xp = get_xp(like.data)
    if isinstance(lengths, Tensor):
        lengths = lengths.data
    lens = xp.asarray(lengths).reshape(-1)
    if lens.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {lens.dtype}")
    if lens.shape[0] != batch:
        raise ValueError(
            f"Expected `len(lengths)` to be equal to batch_size, but got {lens.shape[0]} "
            f"(batch_size={batch})"
        )
    if lens.size and (int(lens.max()) > steps or int(lens.min()) < 0):
        raise ValueError(
            f"lengths must lie in [0, {steps}] (the sequence length), got {[int(v) for v in lens]}"
        )
    mask = xp.arange(steps)[:, None] < lens[None, :]
    return mask.astype(like.data.dtype)[:, :, None]


def _check_layer_input(name: str, input: Tensor, weight_ih: Tensor) -> None:
    if input.data.ndim != 3:
        raise RuntimeError(f"{name}: expected input of shape (L, N, H_in), got {input.shape}")
    if input.data.shape[-1] != weight_ih.data.shape[1]:
        raise RuntimeError(
            f"input.size(-1) must be equal to input_size. Expected {weight_ih.data.shape[1]}, "
            f"got {input.data.shape[-1]}"
        )


def _zeros(batch: int, size: int, like: Tensor) -> Tensor:
    d = like.data
    return Tensor._make(get_xp(d).zeros((batch, size), dtype=d.dtype), False, None, 0)


def _apply_mask(out: Tensor, mask) -> Tensor:
    """Zero the outputs past each sequence's length."""
    return out if mask is None else out * Tensor._make(mask, False, None, 0)


def _rnn(input, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, mask, reverse):
    """One layer and direction, mask already built: (carried states (L, N, H), h_n)."""
    gx = linear(input, w_ih, b_ih)
    bias = (b_hh,) if b_hh is not None else ()
    states = RNNLayer.apply(
        gx, h0, w_hh, *bias, nonlinearity=nonlinearity, mask=mask, reverse=reverse
    )
    return states, states[0 if reverse else -1]


def _lstm(input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mask, reverse):
    """One layer and direction: (carried hidden states (L, N, P), h_n, c_n)."""
    args = [input, h0, c0, w_ih, w_hh] + [t for t in (b_ih, b_hh, w_hr) if t is not None]
    params = {
        "has_bias": (b_ih is not None, b_hh is not None),
        "has_proj": w_hr is not None,
        "mask": mask,
        "reverse": reverse,
        "box": [],
    }
    hs = LSTMLayer.apply(*args, **params)
    c_n = LSTMState.apply(*args, **params)
    node = c_n.grad_fn
    if node is not None:  # c_n's rule reads h_t too: changing h_t in place must fail it as well
        node._versions = [*(node._versions or ()), (hs._version, hs._version[0], hs)]
    return hs, hs[0 if reverse else -1], c_n


def _gru(input, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse):
    gx = linear(input, w_ih, b_ih)
    bias = (b_hh,) if b_hh is not None else ()
    states = GRULayer.apply(gx, h0, w_hh, *bias, mask=mask, reverse=reverse)
    return states, states[0 if reverse else -1]


# -- public: layers --------------------------------------------------------------------------------
def rnn_layer(
    input: Tensor,
    hx: Tensor | None,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
    lengths=None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """One Elman RNN layer over input (L, N, H_in) from hx (N, H): (output (L, N, H), h_n).

    lengths (N integers): outputs past a sequence's length are zero and h_n is its last valid
    state. reverse=True runs from the last valid step back to the first (the backward direction).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    _check_layer_input("rnn_layer", input, weight_ih)
    steps, batch = input.data.shape[:2]
    h0 = hx if hx is not None else _zeros(batch, weight_hh.data.shape[1], input)
    mask = _lengths_mask(lengths, steps, batch, input)
    states, h_n = _rnn(
        input, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, mask, reverse
    )
    return _apply_mask(states, mask), h_n


def lstm_layer(
    input: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    weight_hr: Tensor | None = None,
    lengths=None,
    reverse: bool = False,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM layer over input (L, N, H_in) from hx = (h0 (N, P), c0 (N, H)):
    (output (L, N, P), (h_n, c_n)); P = proj_size when weight_hr (P, H) is given, else H.

    lengths (N integers): outputs past a sequence's length are zero and (h_n, c_n) hold its last
    valid state. reverse=True runs from the last valid step back to the first.
    """
    _check_layer_input("lstm_layer", input, weight_ih)
    steps, batch = input.data.shape[:2]
    if hx is None:
        h0 = _zeros(batch, weight_hh.data.shape[1], input)
        c0 = _zeros(batch, weight_hh.data.shape[0] // 4, input)
    else:
        h0, c0 = hx
    mask = _lengths_mask(lengths, steps, batch, input)
    hs, h_n, c_n = _lstm(
        input, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, mask, reverse
    )
    return _apply_mask(hs, mask), (h_n, c_n)


def gru_layer(
    input: Tensor,
    hx: Tensor | None,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    lengths=None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """One GRU layer over input (L, N, H_in) from hx (N, H): (output (L, N, H), h_n).

    lengths (N integers): outputs past a sequence's length are zero and h_n is its last valid
    state. reverse=True runs from the last valid step back to the first.
    """
    _check_layer_input("gru_layer", input, weight_ih)
    steps, batch = input.data.shape[:2]
    h0 = hx if hx is not None else _zeros(batch, weight_hh.data.shape[1], input)
    mask = _lengths_mask(lengths, steps, batch, input)
    states, h_n = _gru(input, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reverse)
    return _apply_mask(states, mask), h_n


# -- public: cells (PyTorch's torch.rnn_tanh_cell, torch.lstm_cell, ...) ---------------------------
def _cell_input(input: Tensor, w_ih: Tensor) -> Tensor:
    if input.data.ndim != 2:
        raise RuntimeError(f"Expected input to be 2D, got {input.data.ndim}D instead")
    if input.data.shape[1] != w_ih.data.shape[1]:
        raise RuntimeError(
            f"input has inconsistent input_size: got {input.data.shape[1]} expected "
            f"{w_ih.data.shape[1]}"
        )
    return _ops().unsqueeze(input, 0)


def rnn_tanh_cell(
    input: Tensor,
    hx: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """One Elman RNN step: tanh(input W_ih^T + b_ih + hx W_hh^T + b_hh) for input (N, H_in)."""
    x = _cell_input(input, w_ih)
    return _rnn(x, hx, w_ih, w_hh, b_ih, b_hh, "tanh", None, False)[1]


def rnn_relu_cell(
    input: Tensor,
    hx: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """One Elman RNN step: relu(input W_ih^T + b_ih + hx W_hh^T + b_hh) for input (N, H_in)."""
    x = _cell_input(input, w_ih)
    return _rnn(x, hx, w_ih, w_hh, b_ih, b_hh, "relu", None, False)[1]


def lstm_cell(
    input: Tensor,
    hx,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step from hx = (h, c) for input (N, H_in): (h', c') (gates i, f, g, o)."""
    x = _cell_input(input, w_ih)
    h, c = hx
    _, h1, c1 = _lstm(x, h, c, w_ih, w_hh, b_ih, b_hh, None, None, False)
    return h1, c1


def gru_cell(
    input: Tensor,
    hx: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """One GRU step for input (N, H_in): h' = (1 - z) n + z hx (gates r, z, n)."""
    x = _cell_input(input, w_ih)
    return _gru(x, hx, w_ih, w_hh, b_ih, b_hh, None, False)[1]
