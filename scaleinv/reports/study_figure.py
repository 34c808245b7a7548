"""The figure of a study over many starts: a basin map (2-D inputs) or outcome bars.

For two inputs, one panel per rule shows every start of the grid coloured by the minimum its
run reached, lighter where it took more steps. For other input counts, stacked bars give each
rule's fractions per minimum. Either way the :data:`~scaleinv.reports.study.LISTED` most
visited minima have a colour each, the other minima share one, and runs that reached no
minimum are grey (light: not converged; dark: converged at a saddle or far outside).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from scaleinv.reports.colors import styled
from scaleinv.reports.landscapes import legend_columns
from scaleinv.reports.study import Study
from scaleinv.reports.study_ends import FAR, NOT_A_MINIMUM, NOT_CONVERGED

__all__ = ["study_figure", "tick_label_boxes"]

#: Colours of the listed minima (colour-blind safe, Okabe-Ito), then of the other minima.
_MINIMA = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9")
_OTHER = "#D55E00"
#: Grey for runs that did not converge, darker grey for those converged at no minimum.
_FAILED, _NO_MINIMUM = "#BBBBBB", "#555555"


def _colour(k: int, listed: int) -> str:
    if k < 0:
        return _FAILED if k == NOT_CONVERGED else _NO_MINIMUM
    return _MINIMA[k] if k < listed else _OTHER


def _group(outcome: np.ndarray, listed: int) -> np.ndarray:
    """Outcome codes as the legend groups them: other minima as ``listed``, no minimum as
    :data:`NOT_A_MINIMUM`."""
    return np.where(outcome >= listed, listed, np.where(outcome == FAR, NOT_A_MINIMUM, outcome))


def _legend(study: Study) -> list[tuple[int, str]]:
    """(code, label) of every outcome that occurs: listed minima, others, no minimum."""
    codes = set(np.concatenate([r.outcome for r in study.rules]).tolist())
    out = [(k, f"m{k + 1} (L = {m.loss:.2g})") for k, m in enumerate(study.minima[: study.listed])]
    if len(study.minima) > study.listed:
        out.append((study.listed, f"{len(study.minima) - study.listed} other minima"))
    if NOT_CONVERGED in codes:
        out.append((NOT_CONVERGED, "not converged"))
    if codes & {NOT_A_MINIMUM, FAR}:
        out.append((NOT_A_MINIMUM, "converged, no minimum"))
    return out


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
        rgb = np.array([to_rgb(_colour(int(k), study.listed)) for k in rule.outcome])
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
    handles = [Patch(color=_colour(k, study.listed), label=text) for k, text in _legend(study)]
    fig.legend(handles=handles, loc="outside lower center", ncols=legend_columns(len(handles)),
               fontsize=8)  # fmt: skip
    _spaced_ticks(fig, list(axes))
    caption = (
        f"Basin map: each of the {len(study.starts)} starts on a grid over the study region, "
        "coloured by the minimum its run ended at (light grey: not converged within "
        f"{steps} steps; dark grey: converged at a saddle or maximum, or far outside the "
        "region); the lighter the colour, the more steps the run needed (from "
        f"{fewest:g} steps, darkest, to {most:g}, lightest)."
    )
    return fig, caption


def _spaced_ticks(fig: Figure, axes: Sequence[Axes]) -> None:
    """Fewer x ticks on the panels until no tick label touches another (five panels side by
    side leave little room: ``0.075`` ran into ``0.100``, a panel's last label into the next
    panel's first)."""
    for bins in (None, 4, 3, 2, 1):  # matplotlib's own choice first
        for ax in axes if bins is not None else ():
            ax.xaxis.set_major_locator(MaxNLocator(nbins=bins))
        boxes = [b for ax in axes for b in tick_label_boxes(fig, ax)]
        if not any(a.overlaps(b) for k, a in enumerate(boxes) for b in boxes[k + 1 :]):
            return


def tick_label_boxes(fig: Figure, ax: Axes) -> list[Bbox]:
    """The drawn bounding boxes (display units, with a small gap) of ``ax``'s x tick labels
    that lie within its limits."""
    fig.draw_without_rendering()
    low, high = sorted(ax.get_xlim())
    locs = ax.xaxis.get_majorticklocs()
    ticks = ax.xaxis.get_major_ticks(len(locs))
    return [
        t.label1.get_window_extent().expanded(1.1, 1.0)
        for loc, t in zip(locs, ticks)
        if low <= loc <= high and t.label1.get_visible() and t.label1.get_text()
    ]


def _bars(study: Study) -> tuple[Figure, str]:
    fig = Figure(figsize=(6.5, 1.0 + 0.45 * len(study.rules)), layout="constrained")
    ax = fig.subplots()
    labels = [r.label for r in study.rules]
    left = np.zeros(len(study.rules))
    for code, text in _legend(study):
        widths = np.array([np.mean(_group(r.outcome, study.listed) == code) for r in study.rules])
        ax.barh(labels, widths, left=left, color=_colour(code, study.listed), label=text)
        left += widths
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of starts")
    ax.invert_yaxis()
    count = len(_legend(study))
    fig.legend(loc="outside lower center", ncols=legend_columns(count), fontsize=8)
    caption = (
        f"Outcome of {study.options.layout()} in the study region per rule: the "
        "fraction that ended at each minimum, and (grey) the runs that did not converge or "
        "converged at no minimum."
    )
    return fig, caption
