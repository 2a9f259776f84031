"""retrograd.diagnostics.draw_graph: DOT text that parses, names every op and parameter, shows
gradient norms, and collapses modules."""

from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest

import retrograd as rg
import retrograd.viz
from retrograd import nn
from retrograd.diagnostics import draw_graph, record_modules
from retrograd.diagnostics.graph import Graph

# -- a small DOT checker ---------------------------------------------------------------------------
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|->|[{}\[\];=,]|[A-Za-z_][A-Za-z_0-9.]*|-?[0-9.]+|\S')


def parse_dot(text: str) -> dict:
    """Parse the subset of DOT that draw_graph writes: fails on unbalanced braces or brackets,
    unterminated strings, and edges between undeclared nodes. Returns nodes (id -> attributes),
    edges and cluster labels."""
    tokens = _TOKEN.findall(text)
    for t in tokens:
        assert t != '"', "unterminated string"
    assert tokens[:3] == ["digraph", "retrograd", "{"], tokens[:3]
    depth = 0
    for t in tokens:
        if t in "{[":
            depth += 1
        elif t in "}]":
            depth -= 1
            assert depth >= 0, "unbalanced braces"
    assert depth == 0, "unbalanced braces"
    assert tokens[-1] == "}"
    nodes, edges, clusters = {}, [], []
    body = tokens[3:-1]
    statements, current = [], []
    for t in body:  # split on ';' and braces at the statement level
        if t == ";" and not _open_bracket(current):
            statements.append(current)
            current = []
        elif t in "{}" and not _open_bracket(current):
            if current:
                statements.append(current + [t])
            else:
                statements.append([t])
            current = []
        else:
            current.append(t)
    assert not current, f"statement without ';': {current}"
    for st in statements:
        if st in (["{"], ["}"]) or st[-1] == "{":
            continue
        if st[0] in ("graph", "node", "edge"):
            _attrs(st[1:])
        elif st[0] == "label" and st[1] == "=":
            clusters.append(_unquote(st[2]))
        elif st[0] in ("style", "color") and st[1] == "=":
            pass
        elif len(st) >= 3 and st[1] == "->":
            assert len(st) == 3, st
            edges.append((st[0], st[2]))
        else:
            nodes.setdefault(st[0], {}).update(_attrs(st[1:]))
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} references an undeclared node"
    return {"nodes": nodes, "edges": edges, "clusters": clusters}


def _open_bracket(tokens) -> bool:
    return tokens.count("[") > tokens.count("]")


def _attrs(tokens) -> dict:
    if not tokens:
        return {}
    assert tokens[0] == "[" and tokens[-1] == "]", tokens
    inner = [t for t in tokens[1:-1] if t != ","]
    assert len(inner) % 3 == 0, inner
    out = {}
    for k in range(0, len(inner), 3):
        key, eq, value = inner[k : k + 3]
        assert eq == "=", inner
        out[key] = _unquote(value)
    return out


def _unquote(t: str) -> str:
    if t.startswith('"'):
        return t[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    return t


def _labels(parsed) -> list[str]:
    return [a.get("label", "") for a in parsed["nodes"].values()]


# -- graphs ----------------------------------------------------------------------------------------
def _sample():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = rg.tensor([3.0, -1.0], requires_grad=True)
    return x, y, (x * y + x.exp()).sum()


def test_dot_parses_and_names_every_op():
    x, y, loss = _sample()
    g = draw_graph(loss, params={"x": x, "y": y})
    parsed = parse_dot(g.to_dot())
    labels = _labels(parsed)
    ops = sorted(label.split("\n")[0] for label in labels if not label.startswith(("x", "y")))
    assert ops == ["Add", "Exp", "Mul", "Sum"]
    assert "x\n(2,)" in labels and "y\n(2,)" in labels
    assert "Mul\n(2,)" in labels and "Sum\n()" in labels
    assert len(parsed["nodes"]) == 6 and len(g) == 6
    assert len(parsed["edges"]) == 6  # x->Mul, y->Mul, x->Exp, Mul->Add, Exp->Add, Add->Sum


def test_every_node_of_the_engine_graph_is_drawn():
    x, y, loss = _sample()
    seen, stack, n_ops = set(), [loss.grad_fn], 0
    while stack:
        n = stack.pop()
        if id(n) in seen or isinstance(n, rg.Tensor):
            continue
        seen.add(id(n))
        n_ops += 1
        stack.extend(v for v in n.next_functions if v is not None)
    g = draw_graph(loss)
    assert sum(node.kind == "op" for node in g.nodes) == n_ops
    assert sum(node.root for node in g.nodes) == 1


def test_parameters_are_labelled_by_module_names():
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    out = model(rg.randn(5, 3)).sum()
    labels = _labels(parse_dot(draw_graph(out, model=model).to_dot()))
    for name, shape in (("0.weight", "(4, 3)"), ("0.bias", "(4,)"), ("2.weight", "(2, 4)")):
        assert f"{name}\n{shape}" in labels
    assert "ReLU\n(5, 4)" in labels and "Linear\n(5, 2)" in labels
    same = _labels(parse_dot(draw_graph(out, params=dict(model.named_parameters())).to_dot()))
    assert sorted(same) == sorted(labels)


def _norm_of(label: str) -> float:
    return float(label.split("|grad| = ")[1].split("\n")[0])


def test_gradient_norms_before_and_after_backward():
    rg.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = rg.randn(6, 3, dtype=rg.float64)
    hidden = model[1](model[0](x))
    hidden.retain_grad()
    loss = (model[2](hidden) ** 2).mean()
    g = draw_graph(loss, model=model, show_grad=True)  # graph intact: hooks on every node
    assert model[0].weight.grad is None and hidden.grad is None  # .grad untouched
    labels = {n.label.split("\n")[0]: n.label for n in g.nodes}
    loss.backward()
    for name, p in model.named_parameters():
        expected = float(np.linalg.norm(p.grad.numpy()))
        assert _norm_of(labels[name]) == pytest.approx(expected, rel=1e-2)
    tanh = [n.label for n in g.nodes if n.label.startswith("Tanh")][0]
    assert _norm_of(tanh) == pytest.approx(float(np.linalg.norm(hidden.grad.numpy())), rel=1e-2)
    # after backward the graph is freed: norms come from .grad and retained grads
    after = draw_graph(loss, model=model, show_grad=True)
    labels_after = {n.label.split("\n")[0]: n.label for n in after.nodes}
    for name in ("0.weight", "2.bias"):
        assert _norm_of(labels_after[name]) == pytest.approx(_norm_of(labels[name]), rel=1e-2)
    tanh_after = [n.label for n in after.nodes if n.label.startswith("Tanh")][0]
    assert "|grad|" in tanh_after
    assert "|grad|" not in [n.label for n in after.nodes if n.label.startswith("Mean")][0]


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = nn.Linear(n, n)
        self.norm = nn.LayerNorm(n)

    def forward(self, x):
        return x + self.norm(self.fc(x)).relu()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(3, 8)
        self.body = nn.Sequential(Block(8), Block(8))
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.body(self.stem(x).tanh()))


def test_collapsing_modules_reduces_the_node_count():
    rg.manual_seed(2)
    model = Net()
    x = rg.randn(4, 3)
    with record_modules(model):
        loss = model(x).pow(2).mean()
    full = draw_graph(loss, model=model)
    collapsed = draw_graph(loss, collapse_modules=model, show_grad=True)
    p_full, p_col = parse_dot(full.to_dot()), parse_dot(collapsed.to_dot())
    assert len(p_col["nodes"]) < len(p_full["nodes"]) / 2
    heads = [label.split("\n")[0] for label in _labels(p_col)]
    for name in ("stem: Linear", "body: Sequential", "head: Linear"):
        assert name in heads
    assert "Tanh" in heads  # made by Net.forward itself, outside any child: kept as an op
    body = [label for label in _labels(p_col) if label.startswith("body")][0]
    assert "body.0.fc.weight (8, 8)" in body and "|grad|" in body
    deeper = draw_graph(loss, collapse_modules=model, depth=2)
    deeper_heads = [n.label.split("\n")[0] for n in deeper.nodes]
    assert "body.0: Block" in deeper_heads and "body.1: Block" in deeper_heads
    assert len(collapsed) < len(deeper) < len(full)
    # modules are chained in the order they ran
    ids = {n.label.split("\n")[0]: n.id for n in collapsed.nodes}
    assert (ids["stem: Linear"], ids["Tanh"]) in collapsed.edges
    assert (ids["Tanh"], ids["body: Sequential"]) in collapsed.edges
    assert (ids["body: Sequential"], ids["head: Linear"]) in collapsed.edges


def test_clusters_keep_every_op_and_name_the_modules():
    rg.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with draw_graph.record(model) as scopes:
        loss = nn.functional.mse_loss(model(rg.randn(5, 3)), rg.randn(5, 2))
    g = draw_graph(loss, model=model, cluster_modules=scopes)
    collapsed = draw_graph(loss, collapse_modules=scopes)  # names come from the recording
    first = [n.label for n in collapsed.nodes if n.label.startswith("0: Linear")][0]
    assert "0.weight (4, 3)" in first and "0.bias (4,)" in first
    parsed = parse_dot(g.to_dot())
    assert parsed["clusters"] == ["0: Linear", "1: Sigmoid", "2: Linear"]
    assert len(parsed["nodes"]) == len(draw_graph(loss, model=model))
    assert "subgraph cluster_0" in g.to_dot()


def test_collapse_needs_a_recording():
    model = nn.Sequential(nn.Linear(2, 2))
    out = model(rg.randn(1, 2)).sum()
    with pytest.raises(ValueError, match="record_modules"):
        draw_graph(out, collapse_modules=model)


def test_module_called_twice_and_hooks_removed():
    rg.manual_seed(4)
    shared = nn.Linear(2, 2)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = shared

        def forward(self, x):
            return self.shared(self.shared(x) * 2)

    model = Twice()
    with record_modules(model):
        out = model(rg.randn(3, 2)).sum()
    assert shared._forward_hooks == [] and shared._forward_pre_hooks == []
    g = draw_graph(out, collapse_modules=model)
    heads = sorted(n.label.split("\n")[0] for n in g.nodes)
    assert heads == ["Mul", "Sum", "shared: Linear"]
    parse_dot(g.to_dot())


def test_save_and_render(tmp_path, monkeypatch):
    x, y, loss = _sample()
    g = draw_graph(loss)
    path = g.save(tmp_path / "g.dot")
    assert path.read_text() == g.to_dot()
    with pytest.raises(ValueError, match="svg"):
        g.render(tmp_path / "g.txt")
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="install"):
        g.render(tmp_path / "g.svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_render_with_graphviz(tmp_path):
    _, _, loss = _sample()
    svg = draw_graph(loss).render(tmp_path / "g.svg")
    assert b"<svg" in svg.read_bytes()
    png = draw_graph(loss).render(tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pydot_parses_the_output_when_installed():
    pydot = pytest.importorskip("pydot")
    x, y, loss = _sample()
    (graph,) = pydot.graph_from_dot_data(draw_graph(loss, params={"x": x}).to_dot())
    assert len(graph.get_nodes()) >= 6


def test_labels_with_quotes_are_escaped():
    w = rg.tensor([1.0], requires_grad=True)
    g = draw_graph((w * 2).sum(), params={'the "w"\\': w})
    parsed = parse_dot(g.to_dot())
    assert 'the "w"\\\n(1,)' in _labels(parsed)


def test_leaf_and_deep_graphs():
    w = rg.tensor([1.0], requires_grad=True)
    g = draw_graph(w, params={"w": w})
    assert len(g) == 1 and g.nodes[0].root
    x = rg.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(3000):  # no recursion: a long chain draws
        y = y * 1.0001
    deep = draw_graph(y)
    assert len(deep) == 3001
    parse_dot(deep.to_dot())
    with pytest.raises(TypeError):
        draw_graph(np.ones(2))


def test_viz_reexports_draw_graph():
    assert retrograd.viz.draw_graph is draw_graph
    assert isinstance(draw_graph(_sample()[2]), Graph)
