"""An MLP on scikit-learn's 8x8 digits with the building blocks a PyTorch user knows.

python examples/digits_mlp.py
"""

from __future__ import annotations

import retrograd as rg
from retrograd import nn, optim
from retrograd.data import DataLoader
from retrograd.data.datasets import load_digits
from retrograd.nn import functional as F


def main(epochs: int = 15, seed: int = 0) -> float:
    rg.manual_seed(seed)
    train, test = load_digits(seed=seed)
    loader = DataLoader(
        train, batch_size=32, shuffle=True, generator=rg.Generator().manual_seed(seed)
    )
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with rg.no_grad():
            x, y = test.tensors
            accuracy = (model(x).argmax(-1) == y).float().mean().item()
        print(f"epoch {epoch:2d}  last batch loss {loss.item():.4f}  test accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
