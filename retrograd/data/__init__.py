"""Datasets and batching with torch.utils.data's interface, plus offline datasets and transforms.

>>> from retrograd.data import DataLoader, random_split
>>> from retrograd.data.datasets import load_digits
>>> train, test = load_digits(seed=0)
>>> for x, y in DataLoader(train, batch_size=64, shuffle=True, generator=g):
...     ...

This package imports nothing from retrograd beyond tensors, their creation and the Generator.
"""

from retrograd.data import datasets, transforms
from retrograd.data.dataset import (
    ConcatDataset,
    Dataset,
    Subset,
    TensorDataset,
    TransformedDataset,
    random_split,
)
from retrograd.data.loader import DataLoader, default_collate, default_convert

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "ConcatDataset",
    "TransformedDataset",
    "random_split",
    "DataLoader",
    "default_collate",
    "default_convert",
    "datasets",
    "transforms",
]
