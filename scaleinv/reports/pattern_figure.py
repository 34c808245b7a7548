"""The sparsity pattern of a large problem: which entries of ``J`` and ``H`` are nonzero."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from scaleinv.reports.colors import styled
from scaleinv.reports.structure import sparsity_of
from scaleinv.symbolic import Problem

__all__ = ["pattern_figure"]


@styled
def pattern_figure(problem: Problem) -> tuple[Figure, str]:
    """``J`` (left) and the Hessian (right) as black-and-white spy plots, with a caption."""
    s = sparsity_of(problem)
    fig = Figure(figsize=(7.0, 3.4), layout="constrained")
    for ax, pairs, shape, name in zip(
        fig.subplots(1, 2),
        (s.jacobian, s.hessian),
        (s.jacobian_shape, s.hessian_shape),
        ("Jacobian $J$", "Hessian $H$"),
    ):
        grid = np.zeros(shape, dtype=bool)
        if pairs:
            rows, cols = np.array(pairs).T
            grid[rows, cols] = True
        ax.imshow(grid, cmap="Greys", interpolation="nearest", aspect="equal")
        ax.set_title(f"{name}: {len(pairs)} of {shape[0] * shape[1]} nonzero", fontsize=9)
        ax.set_xlabel("column (input index)")
        ax.set_ylabel("row (output index)" if name.startswith("J") else "row (input index)")
    caption = (
        "Sparsity pattern of the Jacobian and the Hessian (black: structurally nonzero). "
        "The derivations show representative entries only."
    )
    return fig, caption
