"""The op table: one row per public op, gathered from the family files.

A test (test_ops.py::test_every_public_op_has_a_row) fails when a public op has no row here.
"""

from __future__ import annotations

from tests import (
    opspec_activation,
    opspec_attention,
    opspec_conv,
    opspec_elementwise,
    opspec_indexing,
    opspec_linalg,
    opspec_loss,
    opspec_movement,
    opspec_normalization,
    opspec_pooling,
    opspec_recurrent,
    opspec_reduce,
)

ROWS = [
    *opspec_elementwise.ROWS,
    *opspec_activation.ROWS,
    *opspec_reduce.ROWS,
    *opspec_linalg.ROWS,
    *opspec_movement.ROWS,
    *opspec_indexing.ROWS,
    *opspec_normalization.ROWS,
    *opspec_loss.ROWS,
    *opspec_attention.ROWS,
    *opspec_pooling.ROWS,
    *opspec_conv.ROWS,
    *opspec_recurrent.ROWS,
]

# Public names that are not ops with a gradient rule of their own (helpers, in-place writers):
# each family file's NOT_ROWS says where such a name is covered instead.
NOT_ROWS = {
    "canonical_dim": "helper: dim validation, covered by tests/test_engine.py error tests",
}
for _family in (
    opspec_elementwise,
    opspec_activation,
    opspec_reduce,
    opspec_linalg,
    opspec_movement,
    opspec_indexing,
    opspec_normalization,
    opspec_loss,
    opspec_attention,
    opspec_pooling,
    opspec_conv,
    opspec_recurrent,
):
    NOT_ROWS.update(getattr(_family, "NOT_ROWS", {}))
