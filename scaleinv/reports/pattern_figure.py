"""Figures of a large problem: the sparsity pattern of ``J`` and ``H``, and the final iterates
component by component (a 256-point state is read as a profile over its index, not as a 2-D
slice)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from scaleinv.reports.colors import styled
from scaleinv.reports.content import RuleRun
from scaleinv.reports.landscapes import NESTED_NOTE, nested, plain_label
from scaleinv.reports.structure import sparsity_of
from scaleinv.symbolic import Problem

__all__ = ["pattern_figure", "profile_figure"]

#: Width of one pattern panel in points (7 in figure, two panels): a structurally nonzero
#: entry is drawn at least :data:`_MIN_MARK` points wide, so isolated entries (a periodic
#: stencil's corners) stay visible at any size.
_PANEL_POINTS = 3.2 * 72
_MIN_MARK = 1.6


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
        rows, cols = np.array(pairs).T if pairs else (np.zeros(0), np.zeros(0))
        side = max(_PANEL_POINTS / max(shape), _MIN_MARK)
        ax.scatter(cols, rows, s=side**2, marker="s", c="k", linewidths=0)
        ax.set_xlim(-0.5, shape[1] - 0.5)
        ax.set_ylim(shape[0] - 0.5, -0.5)
        ax.set_aspect("equal")
        ax.set_title(f"{name}: {len(pairs)} of {shape[0] * shape[1]} nonzero", fontsize=9)
        ax.set_xlabel("column (input index)")
        ax.set_ylabel("row (output index)" if name.startswith("J") else "row (input index)")
    caption = (
        "Sparsity pattern of the Jacobian and the Hessian (black: structurally nonzero; every "
        "entry is drawn at least a dot wide, so isolated entries stay visible). The derivations "
        "show representative entries only."
    )
    return fig, caption


@styled
def profile_figure(runs: Sequence[RuleRun], x_label: str = "$x_i$") -> tuple[Figure, str]:
    """The start and every rule's final iterate (first start) plotted over the input index."""
    fig = Figure(figsize=(7.0, 3.2), layout="constrained")
    ax = fig.subplots()
    done = [(r, r.trajectory) for r in runs if r.trajectory is not None]
    if done:
        first = done[0][1]
        start = np.asarray(first.x[0]).reshape(-1, first.x.shape[-1])
        index = np.arange(start.shape[1])
        ax.plot(index, start[0], color="k", lw=1.0, ls="--", label="start")
    for k, (run, trajectory) in enumerate(done):
        final = np.asarray(trajectory.x[-1]).reshape(-1, trajectory.x.shape[-1])[0]
        style = {**run.style.line_kwargs(), "marker": None}
        width = nested(k, len(done))["lw"]
        ax.plot(np.arange(final.size), final, **style, lw=width, label=plain_label(run.label))
    ax.set_xlabel("input index $i$")
    ax.set_ylabel(f"final {x_label}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    caption = (
        "The final iterate of every rule, component by component over the input index, with "
        "the start (dashed; the first start where there are several). " + NESTED_NOTE
    )
    return fig, caption
