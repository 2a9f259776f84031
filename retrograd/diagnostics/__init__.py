"""Seeing backprop: step-by-step explanations and graph drawings.

>>> from retrograd.diagnostics import explain, textbook_network, draw_graph
>>> net = textbook_network()
>>> print(explain(net.loss, params=net.params, lr=net.lr, names=net.names).to_text())
"""

from retrograd.diagnostics.explain import (
    Explanation,
    WorkedExample,
    explain,
    expression,
    network,
    textbook_network,
)
from retrograd.diagnostics.graph import Graph, ModuleScopes, draw_graph, record_modules

__all__ = [
    "Explanation",
    "WorkedExample",
    "explain",
    "expression",
    "network",
    "textbook_network",
    "Graph",
    "ModuleScopes",
    "draw_graph",
    "record_modules",
]
