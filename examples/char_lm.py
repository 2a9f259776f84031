"""A character-level language model on the Python standard library's own source files, an LSTM
or a causal Transformer: bits per character on held-out files against the unigram baseline, and
a sample drawn with a seeded generator.

python examples/char_lm.py                      # LSTM: ~1.9 bits/char (unigram 4.4), ~3 min
python examples/char_lm.py --model transformer  # Transformer: ~1.8 bits/char, ~4 min
python examples/char_lm.py --model lstm --steps 100 --sample-chars 200 --temperature 0.5
"""

from __future__ import annotations

import argparse
import math
import time

import retrograd as rg
from retrograd import optim
from retrograd.data import DataLoader
from retrograd.data.datasets.text import CharCorpus, CharSequences
from retrograd.models import CharLSTM, CharTransformer
from retrograd.nn import functional as F
from retrograd.nn.utils import clip_grad_norm_

# per-model defaults: sizes and a learning rate that train well in a few minutes on 2 cores
CONFIGS = {
    "lstm": {"embed_dim": 32, "hidden_size": 256, "lr": 4e-3},
    "transformer": {"d_model": 128, "nhead": 4, "num_layers": 2, "lr": 4e-3},
}


def build(kind: str, vocab_size: int, seq_len: int, **sizes):
    """The model of a kind ('lstm' or 'transformer') with the sizes of CONFIGS, overridden by
    `sizes` (hidden_size, num_layers, ... as the model's constructor names them)."""
    cfg = {k: v for k, v in CONFIGS[kind].items() if k != "lr"}
    cfg.update({k: v for k, v in sizes.items() if v is not None})
    if kind == "lstm":
        return CharLSTM(vocab_size, **cfg)
    return CharTransformer(vocab_size, block_size=seq_len, **cfg)


def bits_per_char(model, dataset, batch_size: int = 64) -> float:
    """Mean next-character cross-entropy over a dataset's windows, in bits."""
    model.eval()
    total, count = 0.0, 0
    with rg.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            total += loss.item() * y.numel()
            count += y.numel()
    model.train()
    return total / count / math.log(2)


def main(
    model: str = "lstm",
    steps: int = 1500,
    seq_len: int = 64,
    batch_size: int = 32,
    lr: float | None = None,
    max_chars: int = 1_000_000,
    eval_chars: int = 20_000,
    sample_chars: int = 400,
    temperature: float = 0.7,
    prompt: str = "def ",
    seed: int = 0,
    verbose: bool = True,
    **sizes,
) -> dict:
    """Train for `steps` batches of random windows; return {'bpc', 'unigram_bpc', 'entropy',
    'sample', 'seconds', 'params'} (bits per character on the first `eval_chars` held-out
    characters). `sizes` override the model's CONFIGS entry (e.g. hidden_size=128)."""
    rg.manual_seed(seed)
    corpus = CharCorpus.from_stdlib(max_chars=max_chars, val_fraction=0.1)
    val = CharSequences(corpus.val_ids[: eval_chars + 1], seq_len)  # the evaluated slice
    net = build(model, corpus.vocab_size, seq_len, **sizes)
    lr = CONFIGS[model]["lr"] if lr is None else lr
    optimizer = optim.Adam(net.parameters(), lr=lr)
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loader = DataLoader(
        corpus.dataset("train", seq_len, stride=1),
        batch_size=batch_size,
        shuffle=True,
        generator=rg.Generator().manual_seed(seed),
    )
    n_params = sum(p.numel() for p in net.parameters())
    unigram = corpus.unigram_bits_per_char("val")
    if verbose:
        print(
            f"{corpus}\n{model}: {n_params} parameters, {steps} steps of {batch_size} x "
            f"{seq_len} characters, Adam lr {lr}\nunigram baseline {unigram:.3f} bits/char "
            f"(held out), character entropy {corpus.entropy_bits():.3f} bits (train)"
        )
    start = time.perf_counter()
    step, running = 0, None
    while step < steps:
        for x, y in loader:
            logits = net(x)
            loss = F.cross_entropy(logits.reshape(-1, corpus.vocab_size), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            value = loss.item() / math.log(2)
            running = value if running is None else 0.95 * running + 0.05 * value
            if verbose and (step % 50 == 0 or step == steps):
                elapsed = time.perf_counter() - start
                print(f"step {step:5d}  train {running:.3f} bits/char  {elapsed:.0f}s")
            if step == steps:
                break
    seconds = time.perf_counter() - start
    bpc = bits_per_char(net, val)
    ids = net.generate(
        corpus.encode(prompt), sample_chars, temperature, rg.Generator().manual_seed(seed)
    )
    sample = prompt + corpus.decode(ids)
    if verbose:
        print(
            f"held-out: {bpc:.3f} bits/char ({len(val) * seq_len} characters) against the "
            f"unigram {unigram:.3f}; trained in {seconds:.0f}s\n"
            f"--- sample (temperature {temperature}) ---\n{sample}"
        )
    return {
        "bpc": bpc,
        "unigram_bpc": unigram,
        "entropy": corpus.entropy_bits(),
        "sample": sample,
        "seconds": seconds,
        "params": n_params,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(CONFIGS), default="lstm")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: per model")
    parser.add_argument("--max-chars", type=int, default=1_000_000, help="corpus size")
    parser.add_argument("--eval-chars", type=int, default=20_000, help="held-out characters")
    parser.add_argument("--sample-chars", type=int, default=400)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--prompt", default="def ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=None, help="LSTM hidden size / d_model")
    parser.add_argument("--layers", type=int, default=None, help="LSTM or Transformer layers")
    a = parser.parse_args()
    width = "hidden_size" if a.model == "lstm" else "d_model"
    main(
        a.model,
        a.steps,
        a.seq_len,
        a.batch_size,
        a.lr,
        a.max_chars,
        a.eval_chars,
        a.sample_chars,
        a.temperature,
        a.prompt,
        a.seed,
        **{width: a.hidden, "num_layers": a.layers},
    )
