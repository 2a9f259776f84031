"""Fit a noisy sine curve with a small tanh network and mean-squared error.

python examples/regression.py
"""

from __future__ import annotations

import retrograd as rg
from retrograd import nn, optim
from retrograd.data import DataLoader
from retrograd.data.datasets import regression_curve


def main(epochs: int = 200, seed: int = 0) -> float:
    rg.manual_seed(seed)
    data = regression_curve(n_samples=256, noise=0.05, seed=seed)
    loader = DataLoader(
        data, batch_size=64, shuffle=True, generator=rg.Generator().manual_seed(seed)
    )
    model = nn.Sequential(
        nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)
    )
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()
    for epoch in range(1, epochs + 1):
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 40 == 0:
            print(f"epoch {epoch:3d}  mse {loss.item():.5f}")
    x, y = data.tensors
    with rg.no_grad():
        mse = ((model(x) - y) ** 2).mean().item()
    print(f"final mse over all samples {mse:.5f} (noise variance {0.05**2:.5f})")
    return mse


if __name__ == "__main__":
    main()
