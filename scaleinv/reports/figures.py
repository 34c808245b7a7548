"""The figures of a report, as matplotlib :class:`~matplotlib.figure.Figure` objects.

* :func:`landscape_family` — the loss landscape in ``x`` for several values of a param, one
  update arrow per rule at a sample point (Fig. 20 of the chapter);
* :func:`~scaleinv.reports.landscapes.trajectory_figure` — every rule's iterates in x- and
  y-space over the loss;
* :func:`loss_figure` — the loss per iteration, log scale;
* :func:`graph_figure` — the function graph of a composition.

Figures are made without pyplot (no global state) and saved by :func:`save_plot` as vector
PDF (for LaTeX) and PNG (for viewing). Each rule run keeps its
:class:`~scaleinv.reports.colors.RuleStyle` in every figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.offsetbox import AnchoredOffsetbox, TextArea, VPacker
from matplotlib.ticker import MaxNLocator

from scaleinv.errors import ScaleinvError
from scaleinv.numeric import compile_problem
from scaleinv.reports.axis_units import axis_names, si_unit
from scaleinv.reports.colors import styled
from scaleinv.reports.content import ReportOptions, RuleRun
from scaleinv.reports.derivations import FEW
from scaleinv.reports.landscapes import (
    NESTED_NOTE,
    draw_landscape,
    legend_columns,
    math_label,
    nested,
    plain_label,
    tame_paths,
    trajectory_figure,
    window_around,
)
from scaleinv.reports.latex import escape, number, tex, vector
from scaleinv.reports.pattern_figure import pattern_figure, profile_figure
from scaleinv.symbolic import Problem

__all__ = ["Plot", "landscape_family", "loss_figure", "graph_figure", "make_figures"]
__all__ += ["save_plot", "trajectory_figure", "axis_names", "si_unit"]


@dataclass(frozen=True, eq=False)
class Plot:
    """A figure with its file stem and its LaTeX caption."""

    name: str
    figure: Figure
    caption: str


def _step_at(problem: Problem, run: RuleRun, point: np.ndarray) -> np.ndarray | None:
    """One step ``Δx`` of ``run``'s rule at ``point`` for ``problem``, or None if it fails."""
    try:
        compiled = run.rule.compile(problem)
        state = compiled.init(point[None], 1)
        dx, _, status = compiled.step(point[None], state)
    except ScaleinvError:
        return None
    dx = np.asarray(dx[0], dtype=float)
    return dx if np.isfinite(dx).all() and int(status[0]) == 0 else None


@styled
def landscape_family(
    problem: Problem, runs: Sequence[RuleRun], options: ReportOptions
) -> Plot | None:
    """Fig. 20 of the chapter: the landscape in ``x`` for each value in ``options.alphas``.

    One panel per value of ``options.param``; in each, one update of every rule from
    ``options.sample``. In 2-D the arrows show the direction of ``Δx`` at equal length (the
    legend gives ``|Δx|``); in 1-D they have their true length (clipped at the window).
    Returns None when the spec asks for no such figure or ``n > 2``.
    """
    if options.param is None or not options.alphas or problem.n > 2:
        return None
    sample = np.asarray(options.sample, dtype=float)
    paths = [r.trajectory.x[:, 0, :] for r in runs if r.trajectory is not None]
    window = options.window or window_around(np.concatenate([*tame_paths(paths), sample[None]]))
    names = [math_label(s) for s in problem.inputs]
    count = len(options.alphas)
    fig = Figure(figsize=(7.5, 3.1 if problem.n == 2 else 3.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, count, sharey=problem.n == 2))
    failed: set[str] = set()
    log_axis = False
    for ax, alpha in zip(axes, options.alphas):
        variant = problem.with_params(**{str(options.param): alpha})
        log_axis = draw_landscape(ax, compile_problem(variant).loss, window, names) or log_axis
        ax.set_title(f"${tex(options.param)} = {alpha:g}$", fontsize=10)
        sizes = []
        for k, run in enumerate(runs):
            dx = _step_at(variant, run, sample)
            if dx is None:
                failed.add(run.label)
                continue
            _arrow(ax, sample, dx, k, len(runs), run)
            sizes.append((run, float(np.linalg.norm(dx))))
        if problem.n == 2:
            ax.plot(sample[0], sample[1], marker="o", color="black", ms=4, zorder=6)
        else:
            loss = compile_problem(variant).loss(sample)
            ax.plot(sample[0], loss, "o", color="black", ms=4, zorder=6)
            ax.axvline(sample[0], color="0.5", ls=":", lw=0.8, zorder=1)
        _size_box(ax, sizes, sample)
        if ax is not axes[0] and problem.n == 2:
            ax.set_ylabel("")
    handles = [
        Line2D([], [], color=r.style.color, lw=2.5, label=plain_label(r.label)) for r in runs
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=legend_columns(len(runs)), fontsize=8
    )
    p = tex(options.param)
    values = ", ".join(f"{a:g}" for a in options.alphas)
    at = vector(sample.tolist(), 4)
    caption = (
        f"Loss landscape $L(\\mathcal{{P}}(x))$ in $x$ for ${p} \\in \\{{{values}\\}}$ "
        f"(cf.\\ Fig.~20 of the chapter), with one update $\\Delta x$ of each rule from "
        f"$x = {at}$ (black dot). "
    )
    if problem.n == 2:
        caption += "Arrows show the direction of $\\Delta x$ at equal length; the boxes give "
        caption += "its true length $|\\Delta x|$ per rule."
    else:
        caption += "Arrows start above the sample point (dotted line) and have their true "
        caption += "length (clipped at the plot window); the boxes give $|\\Delta x|$ per rule."
        if log_axis:
            caption += " The loss axis is logarithmic where the loss spans many orders."
    if failed:
        caption += " No arrow: " + escape(", ".join(sorted(failed))) + " (the step failed)."
    return Plot("landscape", fig, caption)


def _arrow(ax: Any, sample: np.ndarray, dx: np.ndarray, k: int, total: int, run: RuleRun) -> None:
    """One rule's arrow from the sample point.

    2-D: the direction at equal length (coinciding arrows nest, earlier ones wider). 1-D: the
    true length (clipped at the window), one row per rule near the top of the panel.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    coords: Any = "data"
    if len(sample) == 2:
        width = 4.5 - 3.2 * k / max(total - 1, 1)
        frac = np.array([dx[0] / (x1 - x0), dx[1] / (y1 - y0)])
        norm = np.linalg.norm(frac)
        frac = frac / norm * 0.3 if norm > 0 else frac
        start = (sample[0], sample[1])
        end = (sample[0] + frac[0] * (x1 - x0), sample[1] + frac[1] * (y1 - y0))
    else:
        width, coords = 2.5, ("data", "axes fraction")
        height = 0.93 - 0.08 * k
        start, end = (sample[0], height), (float(np.clip(sample[0] + dx[0], x0, x1)), height)
    ax.annotate(
        "", xy=end, xytext=start, xycoords=coords, textcoords=coords, zorder=5 + k,
        arrowprops={"arrowstyle": "-|>", "color": run.style.color, "lw": width,
                    "mutation_scale": 10 + 3 * width, "shrinkA": 0, "shrinkB": 0},
    )  # fmt: skip


def _size_box(ax: Any, sizes: Sequence[tuple[RuleRun, float]], sample: np.ndarray) -> None:
    """``|Δx|`` per rule, in the rule's colour, in the lower corner away from the sample."""
    if not sizes:
        return
    rows: list[Artist] = [
        TextArea(
            f"{run.rule.label}: $|\\Delta x| = {number(size, 3)}$",
            textprops={"color": run.style.color, "size": 7},
        )
        for run, size in sizes
    ]
    x0, x1 = ax.get_xlim()
    corner = "lower left" if sample[0] > (x0 + x1) / 2 else "lower right"
    box = AnchoredOffsetbox(
        loc=corner, child=VPacker(children=rows, align="left", pad=0, sep=1),
        pad=0.3, borderpad=0.4, frameon=True,
    )  # fmt: skip
    box.patch.set_alpha(0.85)
    box.patch.set_edgecolor("0.6")
    ax.add_artist(box)


@styled
def loss_figure(runs: Sequence[RuleRun]) -> Plot:
    """The loss of every run per iteration (log scale when the loss is non-negative)."""
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    losses = [r.trajectory.loss for r in runs if r.trajectory is not None]
    values = np.concatenate([v.ravel() for v in losses]) if losses else np.zeros(1)
    values = values[np.isfinite(values)]
    log = bool(values.size) and values.min() >= 0 and values.max() > 0
    floor = 0.0
    if log:
        positive = values[values > 0]
        floor = positive.min() / 10  # where exact zeros are drawn; every positive loss as it is
    for k, run in enumerate(runs):
        if run.trajectory is None:
            continue
        loss = run.trajectory.loss.reshape(run.trajectory.loss.shape[0], -1)
        steps = np.arange(loss.shape[0])
        for b in range(loss.shape[1]):
            ys = np.maximum(loss[:, b], floor) if log else loss[:, b]
            ax.plot(
                steps, ys, **run.style.line_kwargs(), **nested(k, len(runs)),
                label=plain_label(run.label) if b == 0 else None,
            )  # fmt: skip
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration $k$")
    ax.set_ylabel("loss $L(\\mathcal{P}(x_k))$")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    caption = "Loss per iteration for every rule" + (
        ", logarithmic scale (a loss of exactly 0 is drawn at the bottom of the axis)."
        if log
        else ", linear scale (the loss takes negative values)."
    )
    caption += " " + NESTED_NOTE
    return Plot("loss", fig, caption)


@styled
def graph_figure(graph: Any, caption: str = "") -> Plot:
    """The function graph of a composition (drawn by ``FunctionGraph.draw``)."""
    fig = Figure(figsize=(7.5, 1.9), layout="constrained")
    graph.draw(fig.subplots())
    text = caption or (
        "The composition as a function graph: spaces are nodes (with their sizes), each edge "
        "a map, labelled with its Jacobian."
    )
    return Plot("graph", fig, text)


def make_figures(
    problem: Problem,
    runs: Sequence[RuleRun],
    options: ReportOptions,
    graph: Any = None,
    units: dict[str, Any] | None = None,
) -> list[Plot]:
    """Every figure the report shows, in order."""
    plots = []
    family = landscape_family(problem, runs, options)
    if family is not None:
        plots.append(family)
    x_names, y_names = axis_names(problem, units or {})
    fig, caption = trajectory_figure(problem, runs, options, x_names, y_names)
    plots.append(Plot("trajectories", fig, caption))
    plots.append(loss_figure(runs))
    if problem.n > FEW:
        fig, caption = profile_figure(runs, _common(x_names))
        plots.append(Plot("profile", fig, caption))
        fig, caption = pattern_figure(problem)
        plots.append(Plot("sparsity", fig, caption))
    if graph is not None:
        plots.append(graph_figure(graph))
    return plots


def _common(labels: Sequence[str]) -> str:
    """``$x_i$`` with the unit the inputs share (``$x_i$ [$\\mathrm{K}$]``), if they do."""
    units = {label.partition(" [")[2] for label in labels}
    return "$x_i$" + (f" [{units.pop()}" if len(units) == 1 and "" not in units else "")


def save_plot(plot: Plot, directory: Path) -> tuple[Path, Path]:
    """Write ``<name>.pdf`` (vector) and ``<name>.png`` (150 dpi) into ``directory``."""
    pdf, png = directory / f"{plot.name}.pdf", directory / f"{plot.name}.png"
    plot.figure.savefig(pdf)
    plot.figure.savefig(png, dpi=150)
    return pdf, png
