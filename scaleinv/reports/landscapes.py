"""Loss landscapes with trajectories and update arrows (the figures in x- and y-space).

Two-dimensional spaces get filled contour plots of the loss (levels spaced logarithmically
when the loss is non-negative), one-dimensional spaces a line plot of the loss, and larger
spaces a 2-D slice through the first start point over the two components the runs move most
(trajectories are projected onto it; the caption says so). Every rule run is drawn with its
:class:`~scaleinv.reports.colors.RuleStyle`, so a rule has one colour in every figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import sympy as sp
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.mathtext import MathTextParser
from matplotlib.ticker import MaxNLocator

from scaleinv.numeric import compile_problem
from scaleinv.reports.colors import styled
from scaleinv.reports.content import ReportOptions, RuleRun
from scaleinv.reports.latex import tex
from scaleinv.symbolic import Problem

__all__ = ["window_around", "plane_of", "draw_landscape", "trajectory_figure", "nested"]
__all__ += ["legend_columns", "NESTED_NOTE", "math_label", "plain_label", "mark_off_scale"]
__all__ += ["OFF_SCALE_NOTE", "tame_paths", "wrapped"]

_GRID = 161
_CONTOUR_CMAP = "Greys"

Loss = Callable[[np.ndarray], np.ndarray]
#: What a figure draws of a path (``(k, d)`` to ``(k', d)``), None: the path itself.
Shown = Callable[[np.ndarray], np.ndarray] | None


def window_around(
    points: np.ndarray, pad: float = 0.15, always: np.ndarray | None = None
) -> tuple[tuple[float, float], ...]:
    """Per component, a padded range around the finite points (shape ``(k, d)``).

    The range is robust: points beyond the quartiles by more than three interquartile ranges
    (one rule's excursion) are left out, so that one run does not squash the others into a
    blob; ``always`` (e.g. start and end points) are kept in any case. Figures mark the
    points left out at the border (:func:`mark_off_scale`).
    """
    points = np.asarray(points, dtype=float).reshape(-1, np.shape(points)[-1])
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        points = np.zeros((1, np.shape(points)[-1]))
    q1, q3 = np.quantile(points, 0.25, axis=0), np.quantile(points, 0.75, axis=0)
    reach = 3.0 * np.maximum(q3 - q1, 1e-12 * (1.0 + np.abs(q3)))
    keep = ((points >= q1 - reach) & (points <= q3 + reach)).all(axis=1)
    points = points[keep]
    if always is not None:
        extra = np.asarray(always, dtype=float).reshape(-1, points.shape[1])
        points = np.concatenate([points, extra[np.isfinite(extra).all(axis=1)]])
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.maximum(high - low, 0.1 * (1.0 + np.abs(high) + np.abs(low)))
    return tuple((float(lo - pad * s), float(hi + pad * s)) for lo, hi, s in zip(low, high, span))


def tame_paths(paths: Sequence[np.ndarray], factor: float = 100.0) -> list[np.ndarray]:
    """The paths (``(steps+1, d)``) that set a figure's window: all but the excursions.

    A path is an excursion when it leaves for infinity or moves more than ``factor`` times
    the typical move of the paths (the lower median of their largest distance from their
    start, plus the size of the start) away from its start: a rule that diverges to 1e58
    would otherwise squash every other rule into a dot. All paths when none is tame.
    """
    reach = np.array([_reach(p) for p in paths])
    finite = reach[np.isfinite(reach) & (reach > 0)]
    if finite.size == 0:
        return list(paths)
    typical = float(np.percentile(finite, 50, method="lower"))
    kept = [
        p for p, r in zip(paths, reach)
        if r <= factor * (typical + float(np.abs(p[0][np.isfinite(p[0])]).max(initial=0.0)))
    ]  # fmt: skip
    return kept or list(paths)


def wrapped(path: np.ndarray, periods: Sequence[float | None], centre: np.ndarray) -> np.ndarray:
    """``path`` (``(k, d)``) as drawn: each periodic component wrapped into one period around
    ``centre``, with a row of NaN wherever a wrapped component jumps (a line breaks there
    instead of crossing the plot).

    Examples
    --------
    >>> path = np.array([[0.0, 3.0], [1.0, 4.0], [2.0, 9.0]])
    >>> wrapped(path, [None, 2 * np.pi], np.zeros(2)).round(3)  # 3 to 4 crosses π: a break
    array([[ 0.   ,  3.   ],
           [   nan,    nan],
           [ 1.   , -2.283],
           [ 2.   ,  2.717]])
    """
    out = np.array(path, dtype=float)
    jumps = np.zeros(len(out), dtype=bool)
    for k, period in enumerate(periods):
        if period is None:
            continue
        turns = np.floor((out[:, k] - centre[k]) / period + 0.5)
        out[:, k] -= turns * period
        jumps[1:] |= np.diff(turns) != 0
    return np.insert(out, np.flatnonzero(jumps), np.nan, axis=0)


def _reach(path: np.ndarray) -> float:
    """The largest distance (max-norm) of a path's iterates from its start; inf when one is
    not finite."""
    if not np.isfinite(path).all():
        return float("inf")
    return float(np.abs(path - path[0]).max(initial=0.0))


def plane_of(paths: Sequence[np.ndarray], d: int) -> tuple[int, int]:
    """The two components (of ``d``) along which the paths (``(steps+1, d)``) move most."""
    if d <= 2:
        return (0, min(1, d - 1))
    travel = np.zeros(d)
    for path in paths:
        finite = path[np.isfinite(path).all(axis=1)]
        if len(finite):
            travel += finite.max(axis=0) - finite.min(axis=0)
    first, second = np.argsort(-travel, kind="stable")[:2]
    return (int(min(first, second)), int(max(first, second)))


def _levels(values: np.ndarray, count: int = 14) -> tuple[np.ndarray, bool]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.linspace(0.0, 1.0, count), False
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.linspace(low - 1.0, high + 1.0, count), False
    if low >= 0:
        floor = max(np.quantile(finite, 0.002), high * 1e-8, np.finfo(float).tiny)
        return np.geomspace(floor, high, count), True
    return np.linspace(low, high, count), False


def draw_landscape(
    ax: Axes,
    loss: Loss,
    window: Sequence[tuple[float, float]],
    names: Sequence[str],
    base: np.ndarray | None = None,
    plane: tuple[int, int] = (0, 1),
) -> bool:
    """Draw ``loss`` over ``window`` on ``ax``: contours in 2-D, a curve in 1-D.

    ``loss`` maps points ``(..., d)`` to values ``(...)``. For ``d > 2`` the plot is the slice
    through ``base`` over the components ``plane``. Returns whether contour levels are
    logarithmic.
    """
    d = len(window)
    if d == 1:
        xs = np.linspace(*window[0], 400)
        values = loss(xs[:, None])
        ax.plot(xs, values, color="0.35", lw=1.2, zorder=1)
        ax.set_xlim(*window[0])
        ax.set_xlabel(names[0])
        ax.set_ylabel("$L$")
        finite = values[np.isfinite(values)]
        positive = finite[finite > 0]
        if (
            finite.size
            and finite.min() >= 0
            and positive.size
            and positive.max() > 1e3 * np.quantile(positive, 0.05)
        ):
            ax.set_yscale("log")  # a wide range: show the valley as well as the walls
            ax.set_ylim(max(positive.min(), positive.max() * 1e-9) / 2, positive.max() * 2)
            return True
        return False
    i, j = plane
    gx = np.linspace(*window[i], _GRID)
    gy = np.linspace(*window[j], _GRID)
    mesh = np.meshgrid(gx, gy)
    points = np.broadcast_to(
        np.zeros(d) if base is None else np.asarray(base, float), mesh[0].shape + (d,)
    ).copy()
    points[..., i], points[..., j] = mesh
    values = loss(points)
    levels, log = _levels(values)
    clipped = np.clip(values, levels[0], levels[-1])
    ax.contourf(*mesh, clipped, levels=levels, cmap=_CONTOUR_CMAP, alpha=0.35, zorder=0)
    ax.contour(*mesh, clipped, levels=levels, colors="0.45", linewidths=0.5, zorder=1)
    ax.set_xlim(*window[i])
    ax.set_ylim(*window[j])
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    spans = (window[i][1] - window[i][0], window[j][1] - window[j][0])
    if max(spans) <= 1.5 * min(spans):  # comparable ranges: keep circles round
        ax.set_aspect("equal", adjustable="box")
    return log


def legend_columns(count: int) -> int:
    """Columns of a figure legend below the plots: one row up to five entries."""
    return max(1, count if count <= 5 else (count + 1) // 2)


def nested(k: int, total: int) -> dict[str, Any]:
    """Line width and marker size of the ``k``-th of ``total`` runs: earlier runs are drawn
    wider and underneath, so runs that coincide stay visible as nested stripes."""
    wider = (total - 1 - k) / max(total - 1, 1)
    return {"lw": 1.2 + 1.8 * wider, "ms": 3.5 + 3.0 * wider, "zorder": 3 + k / total}


NESTED_NOTE = "Where rules coincide, their lines nest (earlier rules wider and underneath)."


def mark_off_scale(
    ax: Axes, runs: Sequence[RuleRun], which: str, plane: tuple[int, int], shown: Shown = None
) -> int:
    """Mark iterates outside the axes' window at the border (a hollow marker in the rule's
    colour, where the path leaves); returns how many iterates are off the scale. ``shown``
    maps a path to what is drawn (:func:`wrapped`)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    count = 0
    for run in runs:
        if run.trajectory is None:
            continue
        data = getattr(run.trajectory, which)
        for b in range(data.shape[1]):
            path = data[:, b, :] if shown is None else shown(data[:, b, :])
            xs, ys = (
                (np.arange(len(path)), path[:, 0])
                if path.shape[1] == 1
                else (path[:, plane[0]], path[:, plane[1]])
            )
            finite = np.isfinite(xs) & np.isfinite(ys)
            out = finite & ((xs < x0) | (xs > x1) | (ys < y0) | (ys > y1))
            count += int(out.sum())
            if out.any():
                ax.plot(
                    np.clip(xs[out], x0, x1), np.clip(ys[out], y0, y1), ls="none", marker="o",
                    mfc="none", mec=run.style.color, ms=7, mew=1.5, clip_on=False, zorder=7,
                )  # fmt: skip
    return count


OFF_SCALE_NOTE = (
    "Hollow circles on the border mark iterates beyond the plot window (one rule's "
    "excursion would otherwise squash the others)."
)


def _draw_paths(
    ax: Axes, runs: Sequence[RuleRun], which: str, plane: tuple[int, int], shown: Shown = None
) -> None:
    """Each run's iterates: a path in the plane, or (1-D) the value against the iteration."""
    for k, run in enumerate(runs):
        if run.trajectory is None:
            continue
        data = getattr(run.trajectory, which)  # (steps+1, batch, d)
        for b in range(data.shape[1]):
            path = data[:, b, :] if shown is None else shown(data[:, b, :])
            if path.shape[1] == 1:
                xs, ys = np.arange(len(path)), path[:, 0]
            else:
                xs, ys = path[:, plane[0]], path[:, plane[1]]
            ax.plot(
                xs, ys, **run.style.line_kwargs(), **nested(k, len(runs)),
                label=plain_label(run.label) if b == 0 else None,
            )  # fmt: skip
            ax.plot(xs[:1], ys[:1], marker="*", color="black", ms=10, ls="none", zorder=4)


def _iterations_axes(ax: Axes, name: str) -> None:
    ax.set_xlabel("iteration $k$")
    ax.set_ylabel(name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)


@styled
def trajectory_figure(
    problem: Problem,
    runs: Sequence[RuleRun],
    options: ReportOptions,
    x_names: Sequence[str] | None = None,
    y_names: Sequence[str] | None = None,
) -> tuple[Figure, str]:
    """Every run's iterates in x-space (left) and y-space (right) over the loss; and a caption.

    A 2-D space shows the paths over contours of the loss, a larger one a 2-D slice, a 1-D
    space the iterate against the iteration. The caption (LaTeX) says which.
    """
    kernels = compile_problem(problem)
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax_x, ax_y = fig.subplots(1, 2)
    x_paths = [r.trajectory.x[:, b, :] for r in runs if r.trajectory is not None
               for b in range(r.trajectory.x.shape[1])]  # fmt: skip
    y_paths = [r.trajectory.y[:, b, :] for r in runs if r.trajectory is not None
               for b in range(r.trajectory.y.shape[1])]  # fmt: skip
    starts = np.array([p[0] for p in x_paths]) if x_paths else np.zeros((1, problem.n))
    x_tame, y_tame = tame_paths(x_paths), tame_paths(y_paths)
    periods = options.periods or (None,) * problem.n
    shown = None
    if any(p is not None for p in periods):
        shown = partial(wrapped, periods=periods, centre=starts[0])
        x_tame = [shown(p) for p in x_tame]
        x_paths = [shown(p) for p in x_paths]
    # the bulk of the iterates sets the window (an end far from it is marked at the border)
    x_window = options.window or _one_period(
        window_around(np.concatenate([*x_tame, starts]), always=starts), periods, starts[0]
    )
    y_points = np.concatenate(y_paths) if y_paths else kernels.P(starts)
    y_ends = np.array([p[[0, -1]] for p in y_tame]).reshape(-1, problem.m) if y_tame else None
    y_window = window_around(np.concatenate(y_tame) if y_tame else y_points, always=y_ends)
    x_names = list(x_names or [math_label(s) for s in problem.inputs])
    y_names = list(y_names or [math_label(s) for s in problem.output_symbols])
    x_plane, y_plane = plane_of(x_paths, problem.n), plane_of(y_paths, problem.m)
    y_base = np.asarray(y_points[0]) if len(y_points) else np.zeros(problem.m)
    log_x = log_y = False
    if problem.n > 1:
        log_x = draw_landscape(ax_x, kernels.loss, x_window, x_names, starts[0], x_plane)
    else:
        _iterations_axes(ax_x, x_names[0])
    if problem.m > 1:
        log_y = draw_landscape(ax_y, kernels.loss_of_y, y_window, y_names, y_base, y_plane)
    else:
        _iterations_axes(ax_y, y_names[0])
    _draw_paths(ax_x, runs, "x", x_plane, shown)
    _draw_paths(ax_y, runs, "y", y_plane)
    for ax, window in ((ax_x, x_window), (ax_y, y_window)):
        if len(window) == 1:  # iterate against iteration: robust limits of the values
            ax.set_ylim(*window[0])
    off = mark_off_scale(ax_x, runs, "x", x_plane, shown)
    off += mark_off_scale(ax_y, runs, "y", y_plane)
    ax_x.set_title("parameter space $x$", fontsize=10)
    ax_y.set_title("output space $y = \\mathcal{P}(x)$", fontsize=10)
    handles, labels = ax_x.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=legend_columns(len(labels)), fontsize=8
    )
    caption = (
        "Iterates of every rule from the start point(s) (black stars) in parameter space "
        + _space_words(problem.n, x_plane, problem.inputs, "L(\\mathcal{P}(x))", log_x)
        + " and in output space "
        + _space_words(problem.m, y_plane, problem.output_symbols, "L(y)", log_y)
        + ". "
        + NESTED_NOTE
        + (" " + OFF_SCALE_NOTE if off else "")
        + _wrap_note(problem.inputs, periods)
    )
    return fig, caption


def _one_period(
    window: tuple[tuple[float, float], ...], periods: Sequence[float | None], centre: np.ndarray
) -> tuple[tuple[float, float], ...]:
    """``window`` with each periodic component cut to the one period it is wrapped into."""
    return tuple(
        (lo, hi) if p is None else (max(lo, c - p / 2), min(hi, c + p / 2))
        for (lo, hi), p, c in zip(window, periods, centre)
    )


def _wrap_note(inputs: Sequence, periods: Sequence[float | None]) -> str:
    """The caption's sentence on the wrapped inputs ("" when none is)."""
    parts = [
        f"${tex(x)}$ modulo ${tex(_period_expr(p))}$"
        for x, p in zip(inputs, periods)
        if p is not None
    ]
    if not parts:
        return ""
    return (
        f" In parameter space {', '.join(parts)} (wrapped around the first start; a path "
        "breaks where it wraps)."
    )


def _period_expr(period: float) -> Any:
    """``2π`` for a period that is a rational multiple of π, else the number."""
    ratio = Fraction(period / np.pi).limit_denominator(12)
    if abs(float(ratio) * np.pi - period) <= 1e-12 * period:
        return sp.Rational(ratio.numerator, ratio.denominator) * sp.pi
    return sp.Float(period, 6)


_MATHTEXT = MathTextParser("path")
#: The longest rule label a figure shows in full.
LABEL_LENGTH = 60


def math_label(symbol: object) -> str:
    """``$<latex>$`` for a symbol when matplotlib's mathtext can typeset it, else its name."""
    text = f"${tex(symbol)}$"
    try:
        _MATHTEXT.parse(text)
    except ValueError:
        return str(symbol)
    return text


def plain_label(text: str) -> str:
    r"""User text (a rule's label) as matplotlib shows it literally: the one way it gets there.

    Every ``$`` is escaped, so no mathtext is parsed (``$\frac{$`` cannot break a figure);
    characters that are not printable become ``?``; a leading ``_`` (which would hide a legend
    entry) gets a space before it; past :data:`LABEL_LENGTH` characters the text is cut
    (``…``), so that a legend cannot squeeze the axes away.

    Examples
    --------
    >>> plain_label("GD $\\frac{$ 50%\x00")
    'GD \\$\\frac{\\$ 50%?'
    """
    if len(text) > LABEL_LENGTH:
        text = text[: LABEL_LENGTH - 1] + "…"
    text = "".join(ch if ch.isprintable() else "?" for ch in text).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _space_words(d: int, plane: tuple[int, int], names: Sequence, what: str, log: bool) -> str:
    if d == 1:
        return f"(one-dimensional: ${tex(names[0])}$ against the iteration $k$)"
    spacing = "logarithmically spaced contours" if log else "contours"
    if d == 2:
        return f"(over {spacing} of ${what}$)"
    a, b = (f"${tex(names[k])}$" for k in plane)
    return (
        f"(a {d}-dimensional space: {spacing} of ${what}$ on the 2-D slice through the first "
        f"point over {a} and {b}, the components the runs move most; iterates are projected "
        "onto that plane)"
    )
