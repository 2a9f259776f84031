"""Utilities on top of the library: gradient checkpointing (`retrograd.utils.checkpoint`)."""

from retrograd.utils.checkpoint import (
    SegmentPlan,
    checkpoint,
    checkpoint_sequential,
    plan_segments,
)

__all__ = ["checkpoint", "checkpoint_sequential", "plan_segments", "SegmentPlan"]
