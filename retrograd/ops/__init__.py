"""The primitives, by family. Each family module lists its public ops in `__all__`."""

from retrograd.ops import (
    activation,
    attention,
    conv,
    elementwise,
    indexing,
    linalg,
    loss,
    movement,
    mutation,
    normalization,
    pooling,
    recurrent,
    reduce,
)
from retrograd.ops._util import canonical_dim
from retrograd.ops.activation import *  # noqa: F403
from retrograd.ops.attention import *  # noqa: F403
from retrograd.ops.conv import *  # noqa: F403
from retrograd.ops.elementwise import *  # noqa: F403
from retrograd.ops.indexing import *  # noqa: F403
from retrograd.ops.linalg import *  # noqa: F403
from retrograd.ops.loss import *  # noqa: F403
from retrograd.ops.movement import *  # noqa: F403
from retrograd.ops.mutation import *  # noqa: F403
from retrograd.ops.normalization import *  # noqa: F403
from retrograd.ops.pooling import *  # noqa: F403
from retrograd.ops.recurrent import *  # noqa: F403
from retrograd.ops.reduce import *  # noqa: F403

__all__ = [
    "canonical_dim",
    *elementwise.__all__,
    *activation.__all__,
    *attention.__all__,
    *reduce.__all__,
    *linalg.__all__,
    *movement.__all__,
    *indexing.__all__,
    *mutation.__all__,
    *normalization.__all__,
    *loss.__all__,
    *pooling.__all__,
    *conv.__all__,
    *recurrent.__all__,
]
