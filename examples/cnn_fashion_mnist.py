"""A small CNN on Fashion-MNIST (Debian's `dataset-fashion-mnist` files, or --data-root):
conv 1->16 5x5, BatchNorm, ReLU, max-pool, conv 16->32 5x5, BatchNorm, ReLU, max-pool, linear
512->10; Adam with a cosine learning-rate schedule, batch 128.

python examples/cnn_fashion_mnist.py                      # 3 epochs, ~89% test accuracy
python examples/cnn_fashion_mnist.py --epochs 1 --subset 10000
"""

from __future__ import annotations

import argparse
import time

import retrograd as rg
from retrograd import optim
from retrograd.data import DataLoader, Subset
from retrograd.data.datasets import FashionMNIST
from retrograd.models import cnn
from retrograd.nn import functional as F


def accuracy(model, dataset, batch_size: int = 1000) -> float:
    """Fraction of a dataset's samples the model classifies right (eval mode, no graph)."""
    model.eval()
    correct = 0
    with rg.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            correct += int((model(x).argmax(-1) == y).sum().item())
    model.train()
    return correct / len(dataset)


def main(
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    root: str | None = None,
    verbose: bool = True,
) -> dict:
    """Train and return {'test_acc', 'epoch_seconds' (a list), 'params'}; `subset` and
    `test_subset` use the first n training / test images."""
    rg.manual_seed(seed)
    train = FashionMNIST(root=root, train=True)  # images (1, 28, 28) in [0, 1]
    test = FashionMNIST(root=root, train=False)
    if subset:
        train = Subset(train, range(min(subset, len(train))))
    if test_subset:
        test = Subset(test, range(min(test_subset, len(test))))
    model = cnn(in_channels=1, n_classes=10, image_size=28)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loader = DataLoader(
        train, batch_size=batch_size, shuffle=True, generator=rg.Generator().manual_seed(seed)
    )
    n_params = sum(p.numel() for p in model.parameters())
    if verbose:
        print(
            f"Fashion-MNIST CNN, {n_params} parameters, {len(train)} train / {len(test)} test "
            f"images, batch {batch_size}, {len(loader)} steps per epoch"
        )
    times = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        total, steps = 0.0, 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        schedule.step()
        times.append(time.perf_counter() - start)
        if verbose:
            acc = accuracy(model, test)
            print(
                f"epoch {epoch}  train loss {total / steps:.4f}  test acc {acc:.4f}  "
                f"{times[-1]:.1f}s"
            )
    result = {"test_acc": accuracy(model, test), "epoch_seconds": times, "params": n_params}
    if verbose:
        print(
            f"test accuracy {result['test_acc'] * 100:.2f}% after {epochs} epochs  "
            f"({sum(times) / len(times):.1f}s per epoch)"
        )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--subset", type=int, default=None, help="train on the first n images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="folder with the IDX files")
    args = parser.parse_args()
    main(args.epochs, args.batch_size, args.lr, args.subset, None, args.seed, args.data_root)
