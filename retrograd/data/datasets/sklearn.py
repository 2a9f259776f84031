"""scikit-learn's bundled datasets (no download): 8x8 digits and iris, as stratified splits.

scikit-learn is an optional extra (`pip install retrograd[data]`), imported only when a loader
is called.

>>> train, test = load_digits(seed=0)          # 1437 / 360 samples, x in [0, 1], shape (N, 64)
>>> x, y = train.tensors
"""

from __future__ import annotations

import numpy as np

from retrograd import backend
from retrograd.creation import from_numpy
from retrograd.data.dataset import TensorDataset

__all__ = ["load_digits", "load_iris", "DIGITS_CLASSES", "IRIS_CLASSES"]

DIGITS_CLASSES = tuple(str(d) for d in range(10))
IRIS_CLASSES = ("setosa", "versicolor", "virginica")


def _sklearn():
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as e:
        raise ImportError(
            "the digits and iris datasets need scikit-learn, an optional extra: "
            "pip install retrograd[data]  (or: pip install scikit-learn)"
        ) from e
    return sklearn


def _split(x, y, test_size: float, seed: int, standardize: bool):
    sk = _sklearn()
    x_train, x_test, y_train, y_test = sk.model_selection.train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    if standardize:  # per feature (pixel), with the training split's statistics
        flat = x_train.reshape(len(x_train), -1)
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        std[std == 0] = 1.0  # constant features (the digits' blank corners) stay 0
        x_train = ((flat - mean) / std).reshape(x_train.shape)
        x_test = ((x_test.reshape(len(x_test), -1) - mean) / std).reshape(x_test.shape)
    dtype = backend.get_default_dtype()

    def dataset(x, y):
        x = np.ascontiguousarray(x, dtype=dtype)
        return TensorDataset(from_numpy(x), from_numpy(np.asarray(y, dtype=np.int64)))

    return dataset(x_train, y_train), dataset(x_test, y_test)


def load_digits(
    test_size: float = 0.2,
    seed: int = 0,
    flatten: bool = True,
    standardize: bool = False,
) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 1797 8x8 handwritten digits as (train, test) TensorDatasets.

    Split stratified by class with `seed`; pixels scaled from 0..16 to [0, 1] (float32); x of
    shape (N, 64), or (N, 1, 8, 8) with `flatten=False`; `standardize` rescales each pixel by
    the training split's mean and std. Labels int64 in 0..9.
    """
    sk = _sklearn()
    bunch = sk.datasets.load_digits()
    x = bunch.data.astype(np.float64) / 16.0
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return _split(x, bunch.target, test_size, seed, standardize)


def load_iris(
    test_size: float = 0.2,
    seed: int = 0,
    standardize: bool = False,
) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's iris (150 flowers, 4 features in cm, 3 classes) as (train, test)
    TensorDatasets, split stratified by class with `seed`; `standardize` rescales each feature
    by the training split's mean and std."""
    sk = _sklearn()
    bunch = sk.datasets.load_iris()
    return _split(bunch.data.astype(np.float64), bunch.target, test_size, seed, standardize)
