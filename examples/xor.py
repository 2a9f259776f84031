"""Train a 2-layer network on XOR with retrograd's autograd engine, plain gradient descent.

python examples/xor.py
"""

from __future__ import annotations

import retrograd as rg


def main(steps: int = 2000, lr: float = 1.0, seed: int = 0) -> float:
    g = rg.Generator().manual_seed(seed)
    x = rg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = rg.tensor([[0.0], [1.0], [1.0], [0.0]])

    # 2 -> 8 -> 1, sigmoid units; weights drawn from the generator (no hidden global RNG)
    w1 = rg.randn(2, 8, generator=g, requires_grad=True)
    b1 = rg.zeros(8, requires_grad=True)
    w2 = rg.randn(8, 1, generator=g, requires_grad=True)
    b2 = rg.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]

    print(f"training 2-8-1 sigmoid network on XOR: {steps} steps, lr={lr}")
    for step in range(steps + 1):
        hidden = rg.sigmoid(x @ w1 + b1)
        pred = rg.sigmoid(hidden @ w2 + b2)
        loss = ((pred - y) * (pred - y)).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with rg.no_grad():
            for p in params:
                p -= p.grad * lr
        if step % (steps // 10) == 0:
            print(f"  step {step:5d}  loss {loss.item():.6f}")

    print("predictions:")
    for inputs, target, p in zip(x.tolist(), y.tolist(), pred.tolist()):
        print(f"  {inputs[0]:.0f} xor {inputs[1]:.0f} = {target[0]:.0f}   predicted {p[0]:.4f}")
    final = loss.item()
    print(f"final loss {final:.6f} ({'learned' if final < 0.01 else 'NOT learned'})")
    return final


if __name__ == "__main__":
    main()
