"""A study over many starts: how often each rule reaches which minimum, and how fast.

The spec names the region in a ``[study]`` table (its keys: ``STUDY_KEYS`` in the spec module)::

    [study]
    region = [[-3, 3], [-3, 3]]   # [low, high] per input
    starts = 400                  # how many starts (a grid for 2-D inputs, else random)
    steps = 100                   # step limit (default: the spec's [run] steps)
    tol = 1e-6                    # |∂L/∂x| at which a run has converged (default 1e-6)

:func:`run_study` runs every rule of the spec from every start (one batched
:func:`scaleinv.minimize` per rule) and returns a frozen :class:`Study`: per rule the fraction
of starts converged to each minimum found, the steps to reach the tolerance (median and
quartiles) and the failures by status; for 2-D inputs also the outcome and steps on the
grid, which :func:`basin_figure` draws as a basin map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaleinv.errors import ScaleinvError, SpecError
from scaleinv.numeric import Status, minimize
from scaleinv.numeric.rules import make_rule
from scaleinv.symbolic import Spec
from scaleinv.symbolic.spec import STUDY_KEYS, check_keys

__all__ = ["StudyOptions", "study_options", "RuleStudy", "Study", "run_study"]

#: Runs that end closer than this fraction of the region (per input) reach the same minimum:
#: near a flat minimum runs stop wherever |∂L/∂x| first falls below the tolerance.
_SAME = 0.02


@dataclass(frozen=True)
class StudyOptions:
    """The spec's ``[study]`` table, validated."""

    region: tuple[tuple[float, float], ...]
    starts: int
    steps: int
    tol: float


def study_options(spec: Spec, starts: int | None = None) -> StudyOptions:
    """Validate ``[study]``; ``starts`` (from the CLI) overrides the table's count."""
    table = dict(getattr(spec, "study", None) or {})
    src, n = spec.source, spec.problem.n
    if not table:
        raise SpecError(src, "study", "the spec names no [study] region = [[low, high], ...]")
    check_keys(table, STUDY_KEYS, src, "study")
    region = table.get("region")
    if (
        not isinstance(region, list)
        or len(region) != n
        or not all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
            and p[0] < p[1]
            for p in region
        )
    ):
        raise SpecError(src, "study.region", f"needs {n} pairs [low, high] with low < high")
    count = starts if starts is not None else table.get("starts", 400)
    steps = table.get("steps", spec.steps)
    tol = table.get("tol", spec.tol or 1e-6)
    for key, value in (("starts", count), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(src, f"study.{key}", f"must be a positive integer, got {value!r}")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol > 0:
        raise SpecError(src, "study.tol", f"must be a positive number, got {tol!r}")
    return StudyOptions(tuple((float(a), float(b)) for a, b in region), count, steps, float(tol))


@dataclass(frozen=True)
class RuleStudy:
    """One rule over all starts.

    Attributes
    ----------
    label : str
    fractions : tuple of float
        Fraction of starts converged to each minimum of :attr:`Study.minima`.
    statuses : dict of Status to int
        How many runs ended with each status.
    steps : tuple of float
        Steps to reach the tolerance over the converged runs: 25 %, 50 %, 75 % quantiles
        (NaN when none converged).
    outcome : ndarray of int
        Per start: index of the minimum reached, ``-1`` when the run did not converge.
    steps_taken : ndarray of int
        Per start: steps until the run converged or stopped.
    """

    label: str
    fractions: tuple[float, ...]
    statuses: dict[Status, int]
    steps: tuple[float, float, float]
    outcome: np.ndarray
    steps_taken: np.ndarray


@dataclass(frozen=True)
class Study:
    """Every rule of a spec run from many starts in a region."""

    options: StudyOptions
    starts: np.ndarray
    grid: tuple[int, int] | None
    minima: tuple[tuple[float, ...], ...]
    rules: tuple[RuleStudy, ...]
    names: tuple[str, ...] = ()

    def name(self, k: int) -> str:
        """``minimum 1``, …, or ``stationary point 3`` (where the Hessian is not positive
        semi-definite: a run stopped at a saddle or a maximum)."""
        return self.names[k] if k < len(self.names) else f"minimum {k + 1}"


def _starts(options: StudyOptions) -> tuple[np.ndarray, tuple[int, int] | None]:
    n = len(options.region)
    if n <= 2:
        side = max(2, int(round(options.starts ** (1 / n))))
        axes = [np.linspace(lo, hi, side) for lo, hi in options.region]
        mesh = np.meshgrid(*axes, indexing="xy")
        points = np.stack([m.ravel() for m in mesh], axis=-1)
        return points, ((side, side) if n == 2 else None)
    rng = np.random.default_rng(0)
    low, high = np.array(options.region).T
    return rng.uniform(low, high, size=(options.starts, n)), None


def _run(spec: Spec, rule: Any, x0: np.ndarray, options: StudyOptions) -> tuple[Any, Any, Any]:
    """Final points, statuses and steps taken of one rule from every start.

    The one place the study calls the driver; only the last point is recorded.
    """
    t = minimize(spec.problem, rule, x0, options.steps, options.tol, record="last")
    return t.x[-1], np.asarray(t.status).ravel(), np.asarray(t.steps_taken).ravel()


def run_study(spec: Spec, starts: int | None = None) -> Study:
    """Run every rule of ``spec`` from the starts of its ``[study]`` region."""
    options = study_options(spec, starts)
    x0, grid = _starts(options)
    finals = []
    for rule_spec in spec.rules:
        rule = make_rule(rule_spec)
        try:
            finals.append((rule_spec, rule, *_run(spec, rule, x0, options)))
        except ScaleinvError as err:
            raise ScaleinvError(f"study: {rule.label}: {err}") from None
    span = np.array([hi - lo for lo, hi in options.region])
    converged = [final[status == Status.CONVERGED] for _, _, final, status, _ in finals]
    kernels = spec.problem.compile()
    labels, minima = _cluster(np.concatenate(converged), span, kernels.loss)
    curved = [float(np.linalg.eigvalsh(kernels.hessian(m)).min()) for m in minima]
    order = sorted(range(len(minima)), key=lambda k: curved[k] < -1e-9)  # minima first
    minima = [minima[k] for k in order]
    labels = np.array([order.index(k) for k in labels], dtype=int)
    names = tuple(
        ("stationary point" if curved[k] < -1e-9 else "minimum") + f" {i + 1}"
        for i, k in enumerate(order)
    )
    offsets = np.cumsum([0] + [len(c) for c in converged])
    results = []
    for k, (rule_spec, rule, _, status, taken) in enumerate(finals):
        outcome = np.full(len(x0), -1)
        outcome[status == Status.CONVERGED] = labels[offsets[k] : offsets[k + 1]]
        counts = {Status(c): int(np.sum(status == c)) for c in np.unique(status)}
        done = taken[status == Status.CONVERGED]
        quart = tuple(float(v) for v in np.quantile(done, [0.25, 0.5, 0.75])) if done.size else (
            float("nan"),) * 3  # fmt: skip
        label = str(rule_spec.settings.get("label", rule.label))
        results.append((label, outcome, counts, quart, taken))
    rules = tuple(
        RuleStudy(
            label,
            tuple(float(np.mean(outcome == k)) for k in range(len(minima))),
            counts,
            quart,  # type: ignore[arg-type]
            outcome,
            taken,
        )
        for label, outcome, counts, quart, taken in results
    )
    points = tuple(tuple(float(v) for v in m) for m in minima)
    return Study(options, x0, grid, points, rules, names)


def _cluster(points: np.ndarray, span: np.ndarray, loss: Any) -> tuple[np.ndarray, list]:
    """Group end points about ``_SAME · span`` apart or closer; each group's minimum is its
    point of lowest loss. Groups are numbered by size, largest first.

    Points are binned into cells of that size; occupied cells that touch are one group
    (single linkage on the cells, linear in the number of points).
    """
    if len(points) == 0:
        return np.zeros(0, dtype=int), []
    reach = _SAME * np.where(span > 0, span, 1.0)
    cells = [tuple(c) for c in np.floor(points / reach).astype(np.int64)]
    index = {c: k for k, c in enumerate(dict.fromkeys(cells))}
    parent = list(range(len(index)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    n = points.shape[1]
    # touching cells: all 3^n neighbours in few dimensions, the 2n face neighbours beyond
    shifts = (
        np.stack(np.meshgrid(*[[-1, 0, 1]] * n), -1).reshape(-1, n)
        if n <= 4
        else np.concatenate([np.eye(n, dtype=int), -np.eye(n, dtype=int)])
    )
    for cell, k in index.items():
        for shift in shifts:
            other = index.get(tuple(np.add(cell, shift)))
            if other is not None:
                parent[root(k)] = root(other)
    roots = np.array([root(index[c]) for c in cells])
    groups = sorted(set(roots.tolist()), key=lambda r: -int(np.sum(roots == r)))
    labels = np.array([groups.index(r) for r in roots], dtype=int)
    values = loss(points)
    minima = [points[labels == k][np.argmin(values[labels == k])] for k in range(len(groups))]
    return labels, minima


def study_rows(study: Study) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the study table (plain text; the caller escapes or prints)."""
    heads = ["rule"] + [f"→ {study.name(k)}" for k in range(len(study.minima))]
    heads += ["steps (25/50/75 %)", "not converged"]
    rows = []
    for r in study.rules:
        failed = ", ".join(
            f"{n} {_WORDS[s]}" for s, n in sorted(r.statuses.items()) if s != Status.CONVERGED
        )
        q = r.steps
        steps = "--" if np.isnan(q[1]) else f"{q[0]:g} / {q[1]:g} / {q[2]:g}"
        rows.append([r.label, *(f"{f:.0%}" for f in r.fractions), steps, failed or "none"])
    return heads, rows


_WORDS = {
    Status.MAX_STEPS: "at the step limit",
    Status.DIVERGED: "diverged",
    Status.NO_INVERSE: "without a real inverse",
    Status.SINGULAR: "singular",
    Status.CONVERGED: "converged",
    Status.RUNNING: "running",
}


def minimum_values(study: Study) -> list[tuple[float, ...]]:
    """Each minimum's coordinates, with values below the resolution of the study set to 0."""
    span = np.array([hi - lo for lo, hi in study.options.region])
    return [
        tuple(0.0 if abs(v) < 1e-3 * s else float(v) for v, s in zip(m, span)) for m in study.minima
    ]


def describe_minima(study: Study, names: Sequence[str]) -> list[str]:
    """``minimum 1: (x0, x1) = (0, 0)`` lines (``stationary point k`` where it is none)."""
    return [
        f"{study.name(k)}: ({', '.join(names)}) = ({', '.join(f'{v:.4g}' for v in m)})"
        for k, m in enumerate(minimum_values(study))
    ]


def study_tex(study: Study, spec: Spec, figure: str = "") -> str:
    """The report section of a study: region, minima, the table (LaTeX)."""
    from scaleinv.reports.latex import escape, number, table, tex, text_vector

    o = study.options
    xs = ", ".join(tex(x) for x in spec.problem.inputs)
    region = r" \times ".join(f"[{lo:g}, {hi:g}]" for lo, hi in o.region)
    where = "on a grid" if study.grid is not None else "at random"
    out = [
        "\\needlines{12}\\section{Many starts}\n",
        f"Every rule run from {len(study.starts)} starts {where} in $({xs}) \\in {region}$, for "
        f"up to {o.steps} steps; a run has converged when $|\\partial L/\\partial x| \\le "
        f"{number(o.tol)}$. Runs that end within 2\\,\\% of the region of each other count as "
        "reaching the same minimum.",
    ]
    if figure:
        out.append(f" Figure~\\ref{{{figure}}} shows where each start ends.")
    found = minimum_values(study)
    if found:
        listed = "; ".join(f"{study.name(k)} at {text_vector(m, 4)}" for k, m in enumerate(found))
        out.append(f" Minima found: {listed}.\n")
    else:
        out.append(" No run converged.\n")
    heads, rows = study_rows(study)
    cells = [[escape(c) for c in row] for row in rows]
    spec_cols = "l " + "r " * len(study.minima) + "l >{\\raggedright\\arraybackslash}p{4cm}"
    out.append(table(heads, cells, spec_cols))
    return "".join(out)
