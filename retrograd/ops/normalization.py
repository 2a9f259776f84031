"""Fused normalization primitives (filled in by the training issue)."""

from __future__ import annotations

__all__: list[str] = []
