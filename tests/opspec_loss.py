"""Op-table rows: fused loss primitives (retrograd/ops/loss.py)."""

from __future__ import annotations

ROWS: list = []
