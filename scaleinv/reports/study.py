"""A study over many starts: how often each rule reaches which minimum, and how fast.

The spec names the region in a ``[study]`` table (its keys: ``STUDY_KEYS`` in the spec module)::

    [study]
    region = [[-3, 3], [-3, 3]]   # [low, high] per input
    starts = 400                  # how many starts (a grid for 1 or 2 inputs, else random)
    steps = 100                   # step limit (default: the spec's [run] steps)
    tol = 1e-6                    # |∂L/∂x| at which a run has converged (default 1e-6)

:func:`run_study` runs every rule of the spec from every start (one batched
:func:`scaleinv.minimize` per rule) and returns a frozen :class:`Study`: the minima the runs
reached (:mod:`~scaleinv.reports.study_ends`: modulo the periods of ``P``, each with its
loss), per rule where each start ended, the steps to reach the tolerance (quartiles) and the
runs that reached no minimum, by status; for 2-D inputs the starts are a grid, drawn as a
basin map by :func:`~scaleinv.reports.study_figure.study_figure`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.errors import NumericInverseWarning, ScaleinvError, SpecError
from scaleinv.numeric import Status, compile_problem, minimize
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.content import rule_labels
from scaleinv.reports.study_ends import Minimum, classify_ends
from scaleinv.symbolic import Spec, input_periods
from scaleinv.symbolic.budget import start_server
from scaleinv.symbolic.spec import STUDY_KEYS, check_keys, check_run_limits

__all__ = ["StudyOptions", "study_options", "RuleStudy", "Study", "run_study", "periods_of"]
__all__ += ["LISTED", "rule_studies"]

#: How many minima (the most visited) the tables and the figure show one by one.
LISTED = 5


@dataclass(frozen=True)
class StudyOptions:
    """The spec's ``[study]`` table, validated, and the starts it lays out.

    ``asked`` starts were asked for; ``starts`` are run: the same number at random (3 or
    more inputs) or on a line (1 input), the nearest square grid ``grid`` for 2 inputs.
    """

    region: tuple[tuple[float, float], ...]
    asked: int
    steps: int
    tol: float
    starts: int
    grid: tuple[int, int] | None

    def layout(self) -> str:
        """How the starts are laid out, the grid rounding said up front."""
        if self.grid is None:
            where = "at random" if len(self.region) > 2 else "evenly spaced"
            return f"{self.starts} starts {where}"
        grid = f"a {self.grid[0]} x {self.grid[1]} grid of {self.starts} starts"
        return grid if self.starts == self.asked else f"{self.asked} starts asked for: {grid}"


def study_options(spec: Spec, starts: int | None = None) -> StudyOptions:
    """Validate ``[study]``; ``starts`` (from the CLI's ``--starts``) overrides its count."""
    table = dict(getattr(spec, "study", None) or {})
    src, n = spec.source, spec.problem.n
    if not table:
        raise SpecError(src, "study", "the spec names no [study] region = [[low, high], ...]")
    check_keys(table, STUDY_KEYS, src, "study")
    if not spec.rules:
        raise SpecError(src, "rules", 'a study compares rules; add one, e.g. [[rules]] name = "gd"')
    region = table.get("region")
    if (
        not isinstance(region, list)
        or len(region) != n
        or not all(
            isinstance(p, list)
            and len(p) == 2
            and all(_real(v) and math.isfinite(v) for v in p)
            and p[0] < p[1]
            for p in region
        )
    ):
        raise SpecError(src, "study.region", f"needs {n} pairs [low, high] with low < high")
    count = starts if starts is not None else table.get("starts", 400)
    steps = table.get("steps", spec.steps)
    given = ("", "--starts") if starts is not None else (src, "study.starts")
    for (where, key), value in ((given, count), ((src, "study.steps"), steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(where, key, f"must be a positive integer, got {value!r}")
    check_run_limits(steps, count, src, "study")
    tol = table.get("tol", spec.tol or 1e-6)
    if not (_real(tol) and math.isfinite(tol) and tol > 0):
        raise SpecError(src, "study.tol", f"must be a finite positive number, got {tol!r}")
    side = max(2, round(math.sqrt(count))) if n == 2 else None
    return StudyOptions(
        tuple((float(a), float(b)) for a, b in region), count, steps, float(tol),
        side * side if side else count, (side, side) if side else None,
    )  # fmt: skip


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RuleStudy:
    """One rule over all starts.

    Attributes
    ----------
    label : str
    outcome : ndarray of int
        Per start: the index of the minimum of :attr:`Study.minima` its run ended at, or a
        negative code of :mod:`~scaleinv.reports.study_ends` (not converged, converged at no
        minimum, converged far outside the region).
    statuses : dict of Status to int
        How many runs ended with each status of the driver.
    steps : tuple of float
        Steps to reach the tolerance over the runs that ended at a minimum: 25 %, 50 %, 75 %
        quantiles (NaN when none did).
    steps_taken : ndarray of int
        Per start: steps until the run converged or stopped.
    engine : str
        What ran the rule's loop (``Trajectory.engine``: ``"numpy"`` or ``"jax"``).
    """

    label: str
    outcome: np.ndarray
    statuses: dict[Status, int]
    steps: tuple[float, float, float]
    steps_taken: np.ndarray
    engine: str = "numpy"

    def share(self, k: int) -> float:
        """Fraction of the starts whose run ended at minimum ``k`` (or with code ``k`` < 0)."""
        return float(np.mean(self.outcome == k))


@dataclass(frozen=True)
class Study:
    """Every rule of a spec run from many starts in a region.

    Attributes
    ----------
    options : StudyOptions
    starts : ndarray, shape (starts, n)
    minima : tuple of Minimum
        Every minimum reached, the most visited first.
    rules : tuple of RuleStudy
    periods : tuple of (float or None)
        Per input, the period of ``P`` modulo which the minima are taken.
    """

    options: StudyOptions
    starts: np.ndarray
    minima: tuple[Minimum, ...]
    rules: tuple[RuleStudy, ...]
    periods: tuple[float | None, ...]

    @property
    def grid(self) -> tuple[int, int] | None:
        """``(columns, rows)`` of the grid of starts (2 inputs), else None."""
        return self.options.grid

    @property
    def listed(self) -> int:
        """How many minima are shown one by one (the rest are summed as "other minima")."""
        return min(LISTED, len(self.minima))


def _starts(options: StudyOptions) -> np.ndarray:
    n = len(options.region)
    if n <= 2:
        side = options.grid[0] if options.grid else options.starts
        axes = [np.linspace(lo, hi, side) for lo, hi in options.region]
        mesh = np.meshgrid(*axes, indexing="xy")
        return np.stack([m.ravel() for m in mesh], axis=-1)
    rng = np.random.default_rng(0)
    low, high = np.array(options.region).T
    return rng.uniform(low, high, size=(options.starts, n))


def _run(
    spec: Spec, rule: Any, x0: np.ndarray, options: StudyOptions, engine: str | None = None
) -> tuple[Any, Any, Any, str]:
    """Final points, statuses, steps taken and the engine of one rule from every start.

    The one place the study calls the driver; only the last point is recorded. The driver's
    warning that PG solves ``P(x) = y`` numerically is not repeated per rule: the commands
    say it once (:func:`~scaleinv.reports.text.numeric_inverse_line`).
    """
    problem = spec.expression_problem("run_study")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericInverseWarning)
        t = minimize(problem, rule, x0, options.steps, options.tol, record="last", engine=engine)
    return t.x[-1], np.asarray(t.status).ravel(), np.asarray(t.steps_taken).ravel(), t.engine


def periods_of(spec: Spec) -> tuple[float | None, ...]:
    """Per input, the period of ``P`` as a number (params substituted), or None."""
    problem = spec.expression_problem("run_study")
    values = dict(problem.params)
    out: list[float | None] = []
    for period in input_periods(problem):
        number = sp.sympify(period).evalf(subs=values) if period is not None else sp.nan
        out.append(float(number) if number.is_real and number.is_finite and number > 0 else None)
    return tuple(out)


def run_study(spec: Spec, starts: int | None = None, engine: str | None = None) -> Study:
    """Run every rule of ``spec`` from the starts of its ``[study]`` region (``engine``: what
    runs :func:`scaleinv.minimize`'s loop, see :mod:`scaleinv.numeric.engines`)."""
    options = study_options(spec, starts)
    x0 = _starts(options)
    rules = [make_rule(r) for r in spec.rules]
    if any(rule.uses_inverse for rule in rules):  # PG derives its inverse under a budget: the
        start_server()  # budgets' server starts while the rules before it run
    ends, statuses, taken, engines = [], [], [], []
    for rule in rules:
        try:
            end, status, steps, ran_on = _run(spec, rule, x0, options, engine)
        except ScaleinvError as err:
            raise ScaleinvError(f"study: {rule.label}: {err}") from None
        ends.append(end)
        statuses.append(status)
        taken.append(steps)
        engines.append(ran_on)
    kernels = compile_problem(spec.expression_problem("run_study"))
    periods = periods_of(spec)
    status = np.concatenate(statuses)
    outcome, minima = classify_ends(
        np.concatenate(ends), status == Status.CONVERGED, options.region, periods,
        kernels.loss, kernels.hessian,
    )  # fmt: skip
    found = rule_studies(rule_labels(spec.rules, rules), outcome, statuses, taken, engines)
    return Study(options, x0, minima, found, periods)


def rule_studies(
    labels: list[str],
    outcome: np.ndarray,
    statuses: list[np.ndarray],
    taken: list[np.ndarray],
    engines: list[str],
) -> tuple[RuleStudy, ...]:
    """Per rule (``outcome`` holds every rule's starts in turn): where its starts ended, its
    statuses, the quartiles of the steps of the runs that reached a minimum and the engine that
    ran it."""
    found = []
    for k, label in enumerate(labels):
        count = len(statuses[k])
        mine = outcome[k * count : (k + 1) * count]
        counts = {Status(int(c)): int(np.sum(statuses[k] == c)) for c in np.unique(statuses[k])}
        done = taken[k][mine >= 0]
        q1, q2, q3 = np.quantile(done, [0.25, 0.5, 0.75]) if done.size else (np.nan,) * 3
        quart = (float(q1), float(q2), float(q3))
        found.append(RuleStudy(label, mine, counts, quart, taken[k], engines[k]))
    return tuple(found)
