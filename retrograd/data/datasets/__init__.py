"""Offline datasets: synthetic toy problems, scikit-learn's digits and iris, Fashion-MNIST."""

from retrograd.data.datasets.fashion_mnist import (
    DEBIAN_DIR,
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    IDXError,
    read_idx,
)
from retrograd.data.datasets.sklearn import DIGITS_CLASSES, IRIS_CLASSES, load_digits, load_iris
from retrograd.data.datasets.synthetic import (
    circles,
    gaussian_blobs,
    regression_curve,
    spirals,
    two_moons,
    xor,
)
from retrograd.data.datasets.text import (
    CharCorpus,
    CharSequences,
    clean_text,
    read_stdlib_text,
    stdlib_dir,
    stdlib_source_files,
)

__all__ = [
    "xor",
    "two_moons",
    "circles",
    "spirals",
    "gaussian_blobs",
    "regression_curve",
    "load_digits",
    "load_iris",
    "DIGITS_CLASSES",
    "IRIS_CLASSES",
    "FashionMNIST",
    "FASHION_MNIST_CLASSES",
    "read_idx",
    "IDXError",
    "DEBIAN_DIR",
    "CharCorpus",
    "CharSequences",
    "clean_text",
    "read_stdlib_text",
    "stdlib_dir",
    "stdlib_source_files",
]
