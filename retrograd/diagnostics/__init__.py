"""Seeing backprop: step-by-step explanations, graph drawings and gradient-flow diagnostics.

>>> from retrograd.diagnostics import explain, textbook_network, draw_graph, GradientMonitor
>>> net = textbook_network()
>>> print(explain(net.loss, params=net.params, lr=net.lr, names=net.names).to_text())
>>> with keep_values():                 # record a forward whose every value explain shows
...     loss = model(x).sum()
>>> monitor = GradientMonitor(model)      # then monitor.step() after each optimizer.step()
"""

from retrograd.autograd.function import keep_values
from retrograd.diagnostics import vanishing
from retrograd.diagnostics.explain import (
    Explanation,
    WorkedExample,
    explain,
    expression,
    network,
    textbook_network,
)
from retrograd.diagnostics.graph import Graph, ModuleScopes, draw_graph, record_modules
from retrograd.diagnostics.monitor import Finding, GradientMonitor, GradientMonitorCallback

__all__ = [
    "Explanation",
    "WorkedExample",
    "explain",
    "expression",
    "network",
    "textbook_network",
    "keep_values",
    "Graph",
    "ModuleScopes",
    "draw_graph",
    "record_modules",
    "Finding",
    "GradientMonitor",
    "GradientMonitorCallback",
    "vanishing",
]
