"""A character corpus that ships with every Python install: the standard library's own source.

The public top-level modules of the standard library (`sysconfig.get_paths()["stdlib"]`, files
`*.py` not starting with `_`) are read in sorted order until `max_chars` characters, cleaned to
printable ASCII (tabs become four spaces, other characters outside printable ASCII and newline
are dropped), and split into training text and held-out text (the last `val_fraction` of the
characters, so the held-out files are ones the model never reads). Nothing is downloaded; the
same Python install gives the same corpus byte for byte.

>>> corpus = CharCorpus.from_stdlib(max_chars=200_000)
>>> corpus.vocab_size, len(corpus.train_ids), len(corpus.val_ids)
(96, 180000, 20000)
>>> x, y = corpus.dataset("train", seq_len=64)[0]    # y is x shifted by one character
>>> corpus.decode(x[:20].tolist())
'# Copyright 2007 Goo'
"""

from __future__ import annotations

import math
import os
import sysconfig
from pathlib import Path

import numpy as np

from retrograd.creation import from_numpy
from retrograd.data.dataset import Dataset
from retrograd.tensor import Tensor

__all__ = [
    "stdlib_dir",
    "stdlib_source_files",
    "clean_text",
    "read_stdlib_text",
    "CharCorpus",
    "CharSequences",
]

# newline and the 95 printable ASCII characters are kept; everything else is dropped
_KEEP = "\n" + "".join(chr(c) for c in range(32, 127))
_DROP = {c: None for c in range(128) if chr(c) not in _KEEP}


def stdlib_dir() -> Path:
    """Where this Python's standard library lives (`sysconfig.get_paths()["stdlib"]`)."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_source_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The public top-level `*.py` files of `root` (default: the standard library), sorted by
    name; private modules (`_*.py`, e.g. the install-specific `_sysconfigdata_*`) are left out."""
    folder = Path(root) if root is not None else stdlib_dir()
    files = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_") and p.is_file())
    if not files:
        raise FileNotFoundError(
            f"no Python source files (*.py) in {folder}: this Python install ships its standard "
            "library without sources; pass root= a folder of .py files, or build a CharCorpus "
            "from any text"
        )
    return files


def clean_text(text: str) -> str:
    """Newlines normalised to '\\n', tabs to four spaces, non-printable and non-ASCII dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return text.encode("ascii", "ignore").decode("ascii").translate(_DROP)


def read_stdlib_text(max_chars: int = 1_000_000, root: str | os.PathLike | None = None) -> str:
    """The cleaned text of the sorted source files, concatenated, cut at `max_chars`."""
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    parts, total = [], 0
    for path in stdlib_source_files(root):
        text = clean_text(path.read_text(encoding="utf-8", errors="replace"))
        if not text.endswith("\n"):
            text += "\n"
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


class CharSequences(Dataset):
    """Windows of a character sequence: sample i is (ids[s : s + seq_len], ids[s + 1 : s + 1 +
    seq_len]) with s = i * stride, both int64: the input and the next-character target."""

    def __init__(self, ids: np.ndarray, seq_len: int, stride: int | None = None) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.seq_len = seq_len
        self.stride = stride or seq_len
        if self.stride < 1:
            raise ValueError(f"stride must be positive, got {self.stride}")
        n = len(self.ids) - 1 - seq_len
        self._len = n // self.stride + 1 if n >= 0 else 0

    def __len__(self) -> int:
        return self._len

    def _windows(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            raise IndexError(f"index out of range for {self._len} windows")
        starts = (idx % max(self._len, 1)) * self.stride
        pos = starts[..., None] + np.arange(self.seq_len)
        return self.ids[pos], self.ids[pos + 1]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = self._windows(int(index))
        return from_numpy(x), from_numpy(y)

    def get_batch(self, indices) -> list[Tensor]:
        """The collated batch: inputs and targets, each (B, seq_len) int64."""
        x, y = self._windows(indices)
        return [from_numpy(x), from_numpy(y)]

    def __repr__(self) -> str:
        return f"CharSequences({self._len} windows of {self.seq_len}, stride {self.stride})"


class CharCorpus:
    """A text as character indices: the vocabulary (sorted characters), the training and held-out
    index arrays, and the unigram baseline in bits per character.

    >>> corpus = CharCorpus("hello world\\n" * 100, val_fraction=0.1)
    >>> corpus.decode(corpus.encode("hello"))
    'hello'
    """

    def __init__(self, text: str, val_fraction: float = 0.1) -> None:
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if len(text) < 2:
            raise ValueError("the text needs at least two characters")
        self.text = text
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        ids = self.encode(text)
        n_val = int(round(len(ids) * val_fraction))
        self.train_ids = ids[: len(ids) - n_val]
        self.val_ids = ids[len(ids) - n_val :]

    @classmethod
    def from_stdlib(
        cls,
        max_chars: int = 1_000_000,
        val_fraction: float = 0.1,
        root: str | os.PathLike | None = None,
    ) -> CharCorpus:
        """The corpus of `read_stdlib_text(max_chars, root)`."""
        return cls(read_stdlib_text(max_chars, root), val_fraction)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int64 indices of the characters of `text` (KeyError for one outside the vocabulary)."""
        return np.array([self.stoi[ch] for ch in text], dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of a sequence of indices (a list, array or Tensor)."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))

    def counts(self, split: str = "train") -> np.ndarray:
        """How often each vocabulary character occurs in a split."""
        return np.bincount(self._split(split), minlength=self.vocab_size)

    def entropy_bits(self, split: str = "train") -> float:
        """The entropy of a split's character distribution, in bits per character."""
        p = self.counts(split) / max(len(self._split(split)), 1)
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    def unigram_bits_per_char(self, split: str = "val") -> float:
        """Bits per character of a split under the training split's character frequencies
        (add-one smoothed): the baseline a language model must beat."""
        counts = self.counts("train") + 1.0
        logp = np.log2(counts / counts.sum())
        ids = self._split(split)
        return float(-logp[ids].mean()) if len(ids) else math.nan

    def dataset(self, split: str = "train", seq_len: int = 64, stride=None) -> CharSequences:
        """Input/target windows of a split (non-overlapping unless `stride` < seq_len)."""
        return CharSequences(self._split(split), seq_len, stride)

    def _split(self, split: str) -> np.ndarray:
        if split == "train":
            return self.train_ids
        if split in ("val", "test"):
            return self.val_ids
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")

    def __repr__(self) -> str:
        return (
            f"CharCorpus({len(self.text)} characters, vocabulary {self.vocab_size}, "
            f"{len(self.train_ids)} train / {len(self.val_ids)} held out)"
        )
