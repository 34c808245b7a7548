"""Train one small MLP (y* -> x) on the comparison problem three ways, then with an output
scaled by 10**3: Adam on the physics loss, SIP with PG, SIP with HIG.

The problem is the chapter's comparison ``P = (x0, x1**2)``, ``L = |P(x) - y*|²``; the network
maps a target ``y*`` to inputs ``x``. Adam back-propagates ``L(P(NN(y*)))``; SIP trains on
``½|x_pred - sg(x_pred + Δx)|²`` with ``Δx`` the PG or HIG step of :mod:`scaleinv.numeric.training`
(PyTorch flavour), the network updated by Adam as well. In the second run the second output is
measured in units 10**3 smaller (``P = (x0, 1000 x1**2)``, targets scaled alike; the network
still sees the targets in the first units). Every curve is the physics loss in the first units,
so the two runs are comparable. (Scaling *every* output by one constant only multiplies the
loss by a constant, which Adam's normalisation undoes; scaling one output changes the shape of
the loss.)

Usage::

    python examples/sip_training.py                 # writes docs/sip-training.png
    python examples/sip_training.py --steps 200 --out /tmp/sip.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from scaleinv import Problem, rules
from scaleinv.numeric.training import sip

METHODS = ("Adam", "SIP (PG)", "SIP (HIG)")
SCALE = 1e3


def comparison(scale: float) -> Problem:
    """``P = (x0, scale * x1**2)``, ``L = (y0 - y0*)² + (y1 - y1*)²`` (targets per sample)."""
    return Problem.from_strings(
        ["x0", "x1"], ["x0", "s*x1**2"], loss="y0**2 + y1**2", params={"s": scale}
    )


def data(samples: int, seed: int) -> torch.Tensor:
    """Targets ``y* = P(x)`` (first units) of points with ``x0 in [-2, 2]``, ``x1 in [0.5, 3]``."""
    rng = np.random.default_rng(seed)
    x = np.stack([rng.uniform(-2, 2, samples), rng.uniform(0.5, 3, samples)], axis=-1)
    return torch.tensor(np.stack([x[:, 0], x[:, 1] ** 2], axis=-1), dtype=torch.float64)


def network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(2, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 2),
    ).double()


def train(
    method: str, scale: float, steps: int, seed: int = 0, samples: int = 256, lr: float = 1e-2
) -> np.ndarray:
    """The physics loss (first units, batch mean) after each of ``steps`` full-batch updates."""
    y_star = data(samples, seed)
    units = torch.tensor([1.0, scale], dtype=torch.float64)
    rule = {"Adam": rules.pg(1.0), "SIP (PG)": rules.pg(1.0), "SIP (HIG)": rules.hig(1.0)}
    trainer = sip(comparison(scale), rule[method])
    reference = sip(comparison(1.0), rules.pg(1.0))  # measures the loss in the first units
    net = network(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    curve = []
    for _ in range(steps):
        x_pred = net(y_star)
        if method == "Adam":
            loss = trainer.physics_loss(x_pred, y_star * units)
        else:
            loss = trainer.proxy_loss(x_pred, y_star * units)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            curve.append(float(reference.physics_loss(net(y_star), y_star)))
    return np.array(curve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent.parent / "docs" / "sip-training.png"
    )
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, scale in zip(axes, (1.0, SCALE)):
        for method in METHODS:
            curve = train(method, scale, args.steps)
            ax.semilogy(curve, label=method)
            print(f"scale {scale:g}  {method:<10} loss after {args.steps} steps: {curve[-1]:.3e}")
        ax.set_title("P = (x0, x1²)" if scale == 1 else f"P = (x0, {scale:g}·x1²)")
        ax.set_xlabel("training step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("physics loss |P(x) − y*|² (first units)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
