"""The figure of a study over many starts: a basin map (2-D inputs) or outcome bars.

For two inputs, one panel per rule shows every start of the grid coloured by the minimum its
run reached (grey: did not converge), lighter where it took more steps. For other input
counts, stacked bars give each rule's fractions per minimum and per failure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from scaleinv.reports.colors import styled
from scaleinv.reports.landscapes import legend_columns
from scaleinv.reports.study import Study

__all__ = ["study_figure"]

#: Colours of the minima (colour-blind safe, Okabe-Ito), then grey for "not converged".
_MINIMA = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
_FAILED = "#BBBBBB"


def _colour(k: int) -> str:
    return _MINIMA[k % len(_MINIMA)] if k >= 0 else _FAILED


@styled
def study_figure(study: Study, x_names: Sequence[str]) -> tuple[Figure, str]:
    """The basin map (2-D) or the outcome bars, and its LaTeX caption."""
    if study.grid is not None:
        return _basins(study, x_names)
    return _bars(study)


def _basins(study: Study, x_names: Sequence[str]) -> tuple[Figure, str]:
    count = len(study.rules)
    fig = Figure(figsize=(7.5, 2.9 if count > 2 else 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, count, sharey=True))
    (x0, x1), (y0, y1) = study.options.region
    assert study.grid is not None  # a basin map needs the grid of a 2-D study
    side = study.grid
    steps = study.options.steps
    taken = [r.steps_taken[r.outcome >= 0] for r in study.rules]
    pooled = np.concatenate(taken) if any(t.size for t in taken) else np.zeros(1)
    fewest, most = float(pooled.min()), float(max(pooled.max(), pooled.min() + 1))
    for ax, rule in zip(axes, study.rules):
        rgb = np.array([to_rgb(_colour(int(k))) for k in rule.outcome])
        done = rule.outcome >= 0
        share = np.clip((rule.steps_taken - fewest) / (most - fewest), 0, 1)
        light = np.where(done, share, 0.0)[:, None]
        rgb = rgb * (1 - 0.65 * light) + 0.65 * light  # more steps: lighter
        ax.imshow(
            rgb.reshape(side[1], side[0], 3), origin="lower", extent=(x0, x1, y0, y1),
            aspect="auto", interpolation="nearest",
        )  # fmt: skip
        ax.set_title(rule.label, fontsize=9)
        ax.set_xlabel(x_names[0])
    axes[0].set_ylabel(x_names[1])
    handles = [Patch(color=_colour(k), label=study.name(k)) for k in range(len(study.minima))]
    handles.append(Patch(color=_FAILED, label="not converged"))
    fig.legend(handles=handles, loc="outside lower center", ncols=legend_columns(len(handles)),
               fontsize=8)  # fmt: skip
    caption = (
        f"Basin map: each of the {len(study.starts)} starts on a grid over the study region, "
        "coloured by the minimum its run converged to (grey: not converged within "
        f"{steps} steps); the lighter the colour, the more steps the run needed (from "
        f"{fewest:g} steps, darkest, to {most:g}, lightest)."
    )
    return fig, caption


def _bars(study: Study) -> tuple[Figure, str]:
    fig = Figure(figsize=(6.5, 0.6 + 0.45 * len(study.rules)), layout="constrained")
    ax = fig.subplots()
    labels = [r.label for r in study.rules]
    left = np.zeros(len(study.rules))
    for k in range(len(study.minima)):
        widths = np.array([r.fractions[k] for r in study.rules])
        ax.barh(labels, widths, left=left, color=_colour(k), label=study.name(k))
        left += widths
    ax.barh(labels, 1 - left, left=left, color=_FAILED, label="not converged")
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of starts")
    ax.invert_yaxis()
    fig.legend(loc="outside lower center", ncols=legend_columns(len(study.minima) + 1), fontsize=8)
    caption = (
        f"Outcome of {len(study.starts)} random starts in the study region per rule: the "
        "fraction converged to each minimum, and the rest (grey)."
    )
    return fig, caption
