"""Fashion-MNIST from the standard IDX files, and a reader for the IDX format itself.

The four files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte`, each raw or `.gz`) are looked for in `root` (and `root/FashionMNIST/raw`,
torchvision's layout), then where Debian's `dataset-fashion-mnist` package puts them. Nothing is
downloaded.

>>> train = FashionMNIST(train=True)                 # 60000 images (1, 28, 28) in [0, 1]
>>> x, y = train[0]; FashionMNIST.classes[y]
'Ankle boot'
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from retrograd import backend
from retrograd.creation import from_numpy
from retrograd.data.dataset import Dataset, TensorDataset, _apply_batch
from retrograd.tensor import Tensor

__all__ = ["FashionMNIST", "FASHION_MNIST_CLASSES", "IDXError", "read_idx", "DEBIAN_DIR"]

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# IDX type codes -> big-endian NumPy dtypes
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """A file is not a well-formed IDX file."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array of native byte order.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each size as a big-endian
    uint32; the data follows, big-endian, and must fill the rest of the file exactly.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip's magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXError(f"{path}: corrupt or truncated gzip data ({e})") from e
    if len(raw) < 4:
        raise IDXError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic")
    if raw[0] != 0 or raw[1] != 0:
        magic = struct.unpack(">I", raw[:4])[0]
        raise IDXError(
            f"{path}: not an IDX file: bad magic number 0x{magic:08x} "
            "(an IDX file starts with two zero bytes, a type code and the number of dimensions)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise IDXError(f"{path}: unknown IDX data type code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise IDXError(f"{path}: IDX header gives 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"file has {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    count = math.prod(dims)
    expected = count * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "trailing bytes after the data"
        raise IDXError(
            f"{path}: {what}: header gives shape {dims} of {dtype.name} ({expected} bytes of "
            f"data), the file holds {found}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _find(name: str, root) -> Path:
    folders = []
    if root is not None:
        folders += [Path(root), Path(root) / "FashionMNIST" / "raw"]
    folders.append(Path(DEBIAN_DIR))
    for folder in folders:
        for candidate in (name, name + ".gz"):
            if (folder / candidate).is_file():
                return folder / candidate
    where = f"root={os.fspath(root)!r}" if root is not None else "root (not given)"
    raise FileNotFoundError(
        f"Fashion-MNIST file {name}[.gz] not found in {where} nor in {DEBIAN_DIR} (Debian's "
        "location). Install the files with `apt-get install dataset-fashion-mnist`, or download "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        "t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist into a "
        "folder and pass it as root."
    )


class FashionMNIST(Dataset):
    """Zalando's Fashion-MNIST: 28x28 grayscale clothes in 10 classes (60000 train, 10000 test).

    Samples are (image, label): the image float32 in [0, 1] of shape (1, 28, 28), or (784,)
    with `flatten=True`; `transform` runs on the (1, 28, 28) image before flattening (and on
    whole batches at once through the DataLoader). `data` holds the uint8 images (N, 28, 28),
    `targets` the int64 labels.
    """

    classes = list(FASHION_MNIST_CLASSES)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform=None,
        flatten: bool = False,
        target_transform=None,
    ) -> None:
        prefix = "train" if train else "t10k"
        images_path = _find(f"{prefix}-images-idx3-ubyte", root)
        labels_path = _find(f"{prefix}-labels-idx1-ubyte", root)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXError(
                f"{images_path}: expected uint8 images (N, H, W), got {images.dtype.name} "
                f"{images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise IDXError(
                f"{labels_path}: expected {len(images)} labels for {images_path.name}, got shape "
                f"{labels.shape}"
            )
        if labels.size and labels.max() >= len(self.classes):
            raise IDXError(f"{labels_path}: label {labels.max()} out of range for 10 classes")
        self.root = root
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self.flatten = flatten
        self.data = images
        self.targets = labels.astype(np.int64)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def _images(self, index) -> np.ndarray:
        x = self.data[index].astype(backend.get_default_dtype()) / 255
        return x.reshape(*x.shape[:-2], 1, *x.shape[-2:])  # add the channel axis

    def __getitem__(self, index: int):
        image = self._images(int(index))
        if self.transform is not None:
            image = self.transform(image)
        image = image if isinstance(image, Tensor) else from_numpy(np.ascontiguousarray(image))
        if self.flatten:
            image = from_numpy(np.ascontiguousarray(backend.to_numpy(image.data)).reshape(-1))
        target = int(self.targets[index])
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def get_batch(self, indices) -> list[Tensor] | None:
        """The collated batch of `indices`: images (B, 1, 28, 28) or (B, 784), int64 labels."""
        if self.target_transform is not None:
            return None  # target transforms work on single labels: let the loader go sample-wise
        idx = np.asarray(indices, dtype=np.int64)
        images = from_numpy(self._images(idx))
        if self.transform is not None:
            images = _apply_batch(self.transform, images)
        if self.flatten:
            images = from_numpy(images.data.reshape(len(idx), -1))
        return [images, from_numpy(self.targets[idx])]

    def as_tensor_dataset(self) -> TensorDataset:
        """All samples as one TensorDataset (float32 images, int64 labels), no transform."""
        images = self._images(slice(None))
        if self.flatten:
            images = images.reshape(len(images), -1)
        return TensorDataset(from_numpy(images), from_numpy(self.targets.copy()))

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"FashionMNIST({split}, {len(self)} samples, flatten={self.flatten})"
