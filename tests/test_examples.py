"""The examples that learn, in small configurations (the full runs are commands in the README):
a CNN on digits and on Fashion-MNIST, character-level language models (LSTM and Transformer) on
the standard library's source, and the adding problem where an LSTM beats a tanh RNN. Also the
text corpus loader (deterministic, offline) and the shared model builders."""

from __future__ import annotations

import contextlib
import importlib.util
import math
import pathlib
import socket

import numpy as np
import pytest

import retrograd as rg
from retrograd.data import DataLoader
from retrograd.data.datasets import text
from retrograd.data.datasets.text import (
    CharCorpus,
    CharSequences,
    clean_text,
    read_stdlib_text,
    stdlib_source_files,
)
from retrograd.models import CharLSTM, CharTransformer, cnn, sample_next

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _example(name: str):
    """Import examples/<name>.py as a module (the examples folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Single-threaded BLAS for these tests: on a shared, oversubscribed machine OpenBLAS's
    spinning threads make small matrix products up to ten times slower (the learning tests
    measure learning, not speed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(limits=1, user_api="blas")
    with limit:
        yield


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the corpus loader tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# -- the text corpus -------------------------------------------------------------------------------
def test_stdlib_corpus_is_deterministic_and_offline(no_network):
    a = CharCorpus.from_stdlib(max_chars=50_000, val_fraction=0.1)
    b = CharCorpus.from_stdlib(max_chars=50_000, val_fraction=0.1)
    assert a.text == b.text and a.chars == b.chars
    np.testing.assert_array_equal(a.train_ids, b.train_ids)
    np.testing.assert_array_equal(a.val_ids, b.val_ids)
    assert len(a.text) == 50_000
    assert len(a.train_ids) == 45_000 and len(a.val_ids) == 5_000
    assert a.chars == sorted(a.chars)
    assert set(a.text) <= set("\n" + "".join(chr(c) for c in range(32, 127)))
    files = stdlib_source_files()
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert not any(f.name.startswith("_") for f in files)
    assert a.text.startswith(clean_text(files[0].read_text(encoding="utf-8"))[:1000])


def test_corpus_from_a_folder_reads_sorted_files_up_to_the_limit(tmp_path):
    (tmp_path / "b.py").write_text("bbbb\n")
    (tmp_path / "a.py").write_text("a\ta\r\nx\u00e9y\x0c\n")
    (tmp_path / "_private.py").write_text("never read\n")
    (tmp_path / "c.txt").write_text("not python\n")
    assert read_stdlib_text(100, root=tmp_path) == "a    a\nxy\nbbbb\n"
    assert read_stdlib_text(5, root=tmp_path) == "a    "
    with pytest.raises(ValueError, match="max_chars"):
        read_stdlib_text(0, root=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no Python source files"):
        CharCorpus.from_stdlib(root=empty)


def test_corpus_encoding_splits_and_unigram_baseline():
    corpus = CharCorpus("abcab" * 20, val_fraction=0.2)
    assert corpus.chars == ["a", "b", "c"] and corpus.vocab_size == 3
    assert corpus.decode(corpus.encode("cab")) == "cab"
    assert corpus.decode(rg.tensor([2, 0])) == "ca"
    assert len(corpus.train_ids) == 80 and len(corpus.val_ids) == 20
    np.testing.assert_array_equal(corpus.counts("train"), [32, 32, 16])
    p = np.array([0.4, 0.4, 0.2])
    assert corpus.entropy_bits() == pytest.approx(-(p * np.log2(p)).sum())
    # held-out bits under add-one-smoothed training frequencies: never below the entropy here
    assert corpus.unigram_bits_per_char() >= corpus.entropy_bits("val") - 1e-9
    with pytest.raises(ValueError, match="split"):
        corpus.counts("dev")
    with pytest.raises(ValueError, match="val_fraction"):
        CharCorpus("abc", val_fraction=1.0)


def test_char_sequences_are_inputs_and_next_character_targets():
    ids = np.arange(20)
    ds = CharSequences(ids, seq_len=5)
    assert len(ds) == 3  # windows start at 0, 5, 10 (each needs seq_len + 1 characters)
    x, y = ds[1]
    assert x.tolist() == [5, 6, 7, 8, 9] and y.tolist() == [6, 7, 8, 9, 10]
    xb, yb = ds.get_batch([2, 0])
    assert xb.shape == (2, 5) and xb.dtype == rg.int64
    assert xb.tolist()[0] == list(range(10, 15)) and yb.tolist()[1] == list(range(1, 6))
    assert len(CharSequences(ids, seq_len=5, stride=1)) == 15
    assert len(CharSequences(ids, seq_len=19)) == 1 and len(CharSequences(ids, seq_len=20)) == 0
    with pytest.raises(IndexError):
        ds[3]
    batches = list(DataLoader(ds, batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 5), (1, 5)]


# -- model builders --------------------------------------------------------------------------------
@pytest.mark.parametrize("size,batch_norm", [(8, False), (28, False), (28, True), (16, True)])
def test_cnn_shapes(size, batch_norm):
    net = cnn(3, 7, size, batch_norm=batch_norm)
    assert net(rg.zeros(2, 3, size, size)).shape == (2, 7)


def test_cnn_rejects_tiny_images():
    with pytest.raises(ValueError, match="too small"):
        cnn(1, 10, 2)


def test_sample_next():
    logits = rg.tensor([0.0, 5.0, 1.0])
    assert sample_next(logits, temperature=0) == 1
    g = rg.Generator().manual_seed(3)
    draws = [sample_next(logits, 1.0, g) for _ in range(200)]
    assert draws.count(1) > 150  # p(1) = 0.976
    cold = [sample_next(logits, 0.1, rg.Generator().manual_seed(i)) for i in range(20)]
    assert set(cold) == {1}


@pytest.mark.parametrize(
    "model",
    [
        lambda: CharLSTM(11, embed_dim=8, hidden_size=16),
        lambda: CharTransformer(11, d_model=16, nhead=2, num_layers=1, block_size=8),
    ],
    ids=["lstm", "transformer"],
)
def test_char_models_logits_and_seeded_generation(model):
    rg.manual_seed(0)
    net = model()
    assert net(rg.zeros(3, 8, dtype=rg.int64)).shape == (3, 8, 11)
    net.train()
    a = net.generate([1, 2, 3], 12, 1.0, rg.Generator().manual_seed(5))
    b = net.generate([1, 2, 3], 12, 1.0, rg.Generator().manual_seed(5))
    assert a == b and len(a) == 12 and all(0 <= i < 11 for i in a)
    assert net.training  # generate restores the mode


def test_char_transformer_is_causal():
    rg.manual_seed(0)
    net = CharTransformer(11, d_model=16, nhead=2, num_layers=2, block_size=8)
    x = rg.tensor([[1, 2, 3, 4, 5, 6]])
    y = rg.tensor([[1, 2, 3, 9, 9, 9]])
    with rg.no_grad():
        np.testing.assert_allclose(net(x).data[0, :3], net(y).data[0, :3], atol=1e-5)


# -- examples that learn ---------------------------------------------------------------------------
def test_cnn_digits_reaches_97_percent():
    result = _example("cnn_digits").main(verbose=False)  # the full run: 12 epochs, a few seconds
    assert result["test_acc"] >= 0.97


def test_cnn_fashion_mnist_short_epoch():
    example = _example("cnn_fashion_mnist")
    try:
        result = example.main(epochs=1, subset=10_000, test_subset=2_000, verbose=False)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files are not installed (apt-get install dataset-fashion-mnist)")
    assert result["test_acc"] >= 0.78  # typically 80-84% after these 79 steps


@pytest.mark.parametrize(
    "model,sizes",
    [("lstm", {"hidden_size": 64}), ("transformer", {"d_model": 32, "num_layers": 1})],
)
def test_char_lm_beats_the_unigram_baseline(model, sizes):
    result = _example("char_lm").main(
        model,
        steps=300,
        seq_len=32,
        batch_size=16,
        max_chars=100_000,
        eval_chars=2_000,
        sample_chars=40,
        verbose=False,
        **sizes,
    )
    assert math.isfinite(result["bpc"])
    assert result["unigram_bpc"] > 4.0  # ~4.4 bits for Python source
    assert result["bpc"] < result["unigram_bpc"] - 0.8
    assert result["sample"].startswith("def ") and len(result["sample"]) == 44


def test_adding_problem_lstm_remembers_rnn_does_not():
    example = _example("copy_task")
    kw = dict(task="adding", seq_len=30, steps=1000, batch_size=32, hidden_size=32, lr=1e-2)
    lstm = example.train("lstm", verbose=False, **kw)
    rnn = example.train("rnn", verbose=False, **kw)
    baseline = example.baseline("adding", 30)
    assert lstm["loss"] < 0.05  # far below the baseline 1/6
    assert rnn["loss"] > 0.6 * baseline  # the tanh RNN stays near the baseline
    # the vanishing gradient: the RNN's first input gets orders of magnitude less than its last
    assert rnn["grad_first"] / rnn["grad_last"] < 1e-3
    assert lstm["grad_first"] / lstm["grad_last"] > 100 * rnn["grad_first"] / rnn["grad_last"]


def test_adding_and_copy_batches():
    example = _example("copy_task")
    x, y = example.adding_batch(4, 10, np.random.default_rng(0))
    assert x.shape == (4, 10, 2) and y.shape == (4, 1)
    marks = x.data[..., 1]
    np.testing.assert_array_equal(marks[:, :5].sum(1), 1)
    np.testing.assert_array_equal(marks[:, 5:].sum(1), 1)
    np.testing.assert_allclose(y.data[:, 0], (x.data[..., 0] * marks).sum(1), rtol=1e-6)
    x, y = example.copy_batch(3, 6, np.random.default_rng(0), k=2)
    assert x.shape == (3, 10, 10) and y.shape == (3, 10)
    seq = x.data.argmax(-1)
    np.testing.assert_array_equal(y.data[:, -2:], seq[:, :2])
    assert (seq[:, 7] == 9).all() and (y.data[:, :-2] == 0).all()
    assert example.baseline("copy", 6, k=2) == pytest.approx(2 * math.log(8) / 10)


def test_text_module_imports_only_tensor_conversion():
    # the data layer stands alone (DESIGN.md): only creation, tensor and data itself
    source = pathlib.Path(text.__file__).read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith("from retro")}
    assert imports <= {"retrograd.creation", "retrograd.data.dataset", "retrograd.tensor"}
