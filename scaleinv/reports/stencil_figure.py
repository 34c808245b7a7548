"""The sparsity figure of an indexed problem: J and H as assembled from their stencils.

Top: the whole pattern at the spec's size (every entry drawn at least a dot wide); bottom: the
first and last few rows and columns side by side, where the boundary rows show what the boundary
rule does (a periodic stencil wraps into the corners, a dirichlet one loses entries, a neumann
one folds them onto the mirrored column).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from scaleinv.reports.colors import styled

__all__ = ["stencil_pattern_figure", "field_maps_figure", "CORNER"]

#: Rows and columns of the end panels (half from each end), and most from each end (a 2-D
#: stencil reaches a whole grid row away in the flat index).
CORNER = 24
MAX_HALF = 40
_PANEL_POINTS = 3.2 * 72
_MIN_MARK = 1.2


def _spy(ax: Any, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], title: str) -> None:
    side = max(_PANEL_POINTS / max(shape), _MIN_MARK)
    ax.scatter(cols, rows, s=side**2, marker="s", c="k", linewidths=0, rasterized=len(rows) > 5000)
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)


def _ends(
    ax: Any, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], name: str, reach: int
) -> None:
    """The entries whose row and column lie among the first or last ``half`` flat indices
    (enough for the stencil's ``reach`` in the flat index, at least ``CORNER/2``), the two
    ends side by side (a periodic stencil's wrapped entries land in the corners)."""
    wanted = min(max(CORNER // 2, reach + 2), MAX_HALF)
    half = [min(wanted, (size + 1) // 2) for size in shape]
    keep = [np.r_[0:h, size - h : size] for h, size in zip(half, shape)]
    where = [np.full(size, -1) for size in shape]
    for w, k in zip(where, keep):
        w[k] = np.arange(len(k))
    r, c = where[0][rows], where[1][cols]
    inside = (r >= 0) & (c >= 0)
    _spy(ax, r[inside], c[inside], (len(keep[0]), len(keep[1])),
         f"{name}: first and last {half[0]} rows and columns")  # fmt: skip
    for axis, k, h in ((ax.xaxis, keep[1], half[1]), (ax.yaxis, keep[0], half[0])):
        ticks = [0, h, len(k) - 1]
        axis.set_ticks(ticks, [str(k[t]) for t in ticks])
    ax.axvline(half[1] - 0.5, color="0.6", lw=0.8, ls="--")
    ax.axhline(half[0] - 0.5, color="0.6", lw=0.8, ls="--")


@styled
def stencil_pattern_figure(kernels: Any) -> tuple[Figure, str]:
    """J (left) and H (right), whole and their top-left corners, with a caption."""
    fig = Figure(figsize=(7.0, 6.6), layout="constrained")
    axes = fig.subplots(2, 2)
    pairs = (("Jacobian $J$", kernels.jacobian_pattern), ("Hessian $H$", kernels.hessian_pattern))
    p = kernels.problem
    strides = np.cumprod((1, *p.shape[:0:-1]))[::-1]  # C order: the last axis moves fastest
    reach = 2 * int(np.dot(p.width, strides))  # H reaches twice J's stencil
    for column, (name, placement) in enumerate(pairs):
        rows, cols = np.asarray(placement.rows), np.asarray(placement.cols)
        unique = np.unique(rows.astype(np.int64) * placement.shape[1] + cols)
        rows, cols = np.divmod(unique, placement.shape[1])
        m, n = placement.shape
        _spy(axes[0, column], rows, cols, placement.shape,
             f"{name}: {len(unique):,} of {m}×{n} nonzero")  # fmt: skip
        _ends(axes[1, column], rows, cols, placement.shape, name, reach)
        for ax in axes[:, column]:
            ax.set_xlabel("column (input index)")
            ax.set_ylabel("row (output index)" if column == 0 else "row (input index)")
    caption = (
        "Sparsity of the Jacobian and the Hessian, assembled from their stencils (black: "
        "structurally nonzero; every entry drawn at least a dot wide). Top: the whole matrices; "
        "bottom: the first and last rows and columns side by side (dashed: where the index jumps), "
        "so the boundary rows show what the boundary rule makes of the stencil."
    )
    return fig, caption


@styled
def field_maps_figure(problem: Any, runs: Any) -> tuple[Figure, str]:
    """A 2-D grid's fields as images: the start and the final state of the rule that ended
    with the lowest loss (one row per field, a colour bar each)."""
    done = [r for r in runs if r.trajectory is not None]
    best = min(done, key=lambda r: float(np.ravel(r.trajectory.loss[-1])[0]))
    first = np.asarray(best.trajectory.x[0]).reshape(-1, problem.n)[0]
    final = np.asarray(best.trajectory.x[-1]).reshape(-1, problem.n)[0]
    fields = len(problem.fields)
    fig = Figure(figsize=(7.0, 3.0 * fields), layout="constrained")
    axes = np.atleast_2d(fig.subplots(fields, 2))
    shape = (fields, *problem.shape)
    for b, name in enumerate(problem.fields):
        for ax, values, what in zip(axes[b], (first, final), ("start", f"final, {best.label}")):
            image = ax.imshow(values.reshape(shape)[b], origin="lower", cmap="viridis")
            ax.set_title(f"${name}$: {what}", fontsize=9)
            ax.set_xlabel(f"${problem.index[1]}$")
            ax.set_ylabel(f"${problem.index[0]}$")
            fig.colorbar(image, ax=ax, shrink=0.85)
    caption = (
        "Each field over the grid: the start (left) and the final state of the rule that ended "
        f"with the lowest loss ({best.label}, right)."
    )
    return fig, caption
