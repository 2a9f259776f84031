"""Op-table rows: fused normalization primitives (retrograd/ops/normalization.py)."""

from __future__ import annotations

ROWS: list = []
