r"""Does the nearest-branch rule of PG commute with a reparametrization ``x = A u``?

PG's update is invariant *branch by branch* under every invertible map (theorem
``pg-input-linear``): the solutions of ``P(x) = y + Δy`` correspond one to one. The local
inverse ``P⁻¹(y; x₀)`` then picks the solution *nearest* to the current point, and distance
is measured in the current coordinates. In ``u`` it is

.. math:: |\tilde u - u_0| = |A^{-1} (\tilde x - x_0)|,

so the choice is the same for every configuration of branches iff ``AᵀA = λ I`` (isotropic
scalings, rotations, orthogonal maps). Under a diagonal ``A`` a *separable* branch set (a
Cartesian product of per-coordinate candidates, such as ``(±√y0, ±√y1)``) is still chosen
coordinate by coordinate, so the choice does not change either. Otherwise
:func:`branch_selection` looks for a point where the selection differs and names the two
branches.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.analysis.theorem_route import linear_map
from scaleinv.analysis.verdict import Step, Verdict, sample_values
from scaleinv.errors import ProblemError
from scaleinv.numeric import compile_kernel
from scaleinv.symbolic import Problem

__all__ = ["SelectionCounterexample", "SelectionReport", "branch_selection", "nearest_branches"]

_TIE = 1e-9  # relative margin below which two distances count as a tie


@dataclass(frozen=True)
class SelectionCounterexample:
    """A point where two coordinate systems pick different nearest branches.

    Attributes
    ----------
    x0, y : tuple of float
        The current point (in x) and the output the step aims at.
    values : mapping of str to float
        The transform's symbols (scales, map entries) of the coordinates ``u``.
    versus : mapping of str to float
        The symbols of the coordinates compared with; empty: x itself.
    in_x, in_u : int
        The branch nearest in the compared coordinates (x, or ``versus``) and in u (index
        into ``solutions``).
    solutions : tuple of tuple of float
        Every real solution of ``P(x) = y`` (the branches, evaluated).
    distances_x, distances_u : tuple of float
        Their distances from the current point in the two coordinate systems.
    """

    x0: tuple[float, ...]
    y: tuple[float, ...]
    values: Mapping[str, float]
    versus: Mapping[str, float]
    in_x: int
    in_u: int
    solutions: tuple[tuple[float, ...], ...]
    distances_x: tuple[float, ...]
    distances_u: tuple[float, ...]

    def describe(self) -> str:
        """One line: the two branches and where."""

        def vec(v: Sequence[float]) -> str:
            return "(" + ", ".join(f"{c:.4g}" for c in v) + ")"

        def where(values: Mapping[str, float]) -> str:
            shown = ", ".join(f"{k} = {v:.4g}" for k, v in values.items())
            return f"u with {shown}" if shown else "u"

        other = where(self.versus) if self.versus else "x"
        return (
            f"P(x) = {vec(self.y)} from x0 = {vec(self.x0)}: nearest in {other} is "
            f"{vec(self.solutions[self.in_x])}, nearest in {where(self.values)} is "
            f"{vec(self.solutions[self.in_u])}"
        )


@dataclass(frozen=True)
class SelectionReport:
    """Whether the nearest-branch choice commutes with the map.

    ``verdict`` is ``PROVED`` (the choice never changes, ``reason`` says why), ``REFUTED``
    (``counterexample`` names the two branches) or ``UNDECIDED``.
    """

    transform: str
    verdict: Verdict
    reason: str
    derivation: tuple[Step, ...]
    counterexample: SelectionCounterexample | None = None


def nearest_branches(
    problem: Problem, y: Sequence[float], x0: Any, metric: Any = None
) -> tuple[tuple[tuple[float, ...], ...], np.ndarray]:
    """Every real closed-form solution of ``P(x) = y`` and its distance from ``x0``.

    ``metric`` is a matrix ``M`` (distance ``|M (x̃ − x0)|``; default the identity).

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0*x1"])
    >>> sols, dist = nearest_branches(p, [5, 6], [2.1, 2.1], np.diag([0.1, 1.0]))
    >>> sols, dist.round(4)
    (((2.0, 3.0), (3.0, 2.0)), array([0.9001, 0.1345]))
    """
    solutions = _solutions(problem, np.asarray(y, float))
    start = np.asarray(x0, float)
    metric = np.eye(problem.n) if metric is None else np.asarray(metric, float)
    dist = np.array([np.linalg.norm(metric @ (np.array(s) - start)) for s in solutions])
    return solutions, dist


def _solutions(problem: Problem, y: np.ndarray) -> tuple[tuple[float, ...], ...]:
    inverse = problem.local_inverse()
    if inverse.numeric:
        raise ProblemError(f"P has no closed-form branches to select from ({inverse.reason})")
    out: list[tuple[float, ...]] = []
    ys = problem.output_symbols
    for k, branch in enumerate(inverse.branches):
        kernel = compile_kernel(f"branch_{k}", list(branch.solution), [("y", ys)], problem.params)
        with np.errstate(all="ignore"):
            x = np.asarray(kernel(y), float)
        if not np.all(np.isfinite(x)):
            continue
        at = {**dict(zip(problem.inputs, x)), **problem.params}
        residual = [float(e.xreplace(at)) - v for e, v in zip(problem.outputs, y)]
        if max(abs(r) for r in residual) <= 1e-8 * (1 + float(np.max(np.abs(y)))):
            out.append(tuple(float(v) for v in x))
    return tuple(out)


def branch_selection(
    problem: Problem,
    transform: Any,
    *,
    y: Sequence[float] | None = None,
    x0: Sequence[float] | None = None,
    values: Mapping[str, float] | None = None,
    versus: Mapping[str, float] | None = None,
    rng: np.random.Generator | int | None = 0,
    tries: int = 200,
) -> SelectionReport:
    """Decide whether nearest-branch selection commutes with a linear input map.

    Parameters
    ----------
    problem : Problem
        With closed-form branches (unless the map is isotropic or orthogonal, which is
        decided without them).
    transform : InputScaling or Reparametrization
        A linear map ``x = A u``.
    y, x0, values, versus : optional
        Where to look first: a target output, the current point, values of the map's
        symbols, and (``versus``) other values to compare with instead of x itself. Without
        them (or when they show no difference) seeded random points and map values are
        compared with x (``tries`` of them), so the verdict is the same on every run.

    Examples
    --------
    >>> from scaleinv.analysis.transforms import InputScaling, Reparametrization
    >>> p = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0*x1"])
    >>> branch_selection(p, Reparametrization.rotation("t")).verdict
    <Verdict.PROVED: 'proved'>
    >>> r = branch_selection(p, InputScaling(["s0", "s1"]), y=[5, 6], x0=[2.1, 2.1],
    ...                      values={"s0": 10, "s1": 1}, versus={"s0": 1, "s1": 10})
    >>> ce = r.counterexample
    >>> r.verdict, ce.solutions[ce.in_u], ce.solutions[ce.in_x]
    (<Verdict.REFUTED: 'refuted'>, (3.0, 2.0), (2.0, 3.0))
    """
    setup = transform.apply(problem)
    describe = transform.describe()
    found = linear_map(problem, transform, setup)
    if found is None or found.side != "input":
        why = "only linear input maps are decided (the choice for nonlinear maps is local)"
        return SelectionReport(describe, Verdict.UNDECIDED, why, ())
    a = sp.Matrix(found.matrix)
    gram = (a.T * a).applyfunc(lambda e: sp.simplify(sp.trigsimp(e)))
    steps = [Step("A", a), Step("Aᵀ A, simplified", gram)]
    if gram == gram[0, 0] * sp.eye(a.rows):
        reason = "Aᵀ A = λ I: every distance in u is the distance in x times 1/√λ"
        return SelectionReport(describe, Verdict.PROVED, reason, tuple(steps))
    diagonal = a.is_diagonal()
    if diagonal and _separable(problem):
        reason = (
            "A is diagonal and the branch set is a product of per-coordinate candidates: "
            "the nearest branch is chosen coordinate by coordinate in any diagonal metric"
        )
        steps.append(Step("branches", tuple(b.solution for b in problem.local_inverse().branches)))
        return SelectionReport(describe, Verdict.PROVED, reason, tuple(steps))
    example = _search(problem, a, setup, (y, x0, values, versus), np.random.default_rng(rng), tries)
    if example is None:
        reason = f"Aᵀ A is not a multiple of I, but no point of {tries} seeded tries shows it"
        return SelectionReport(describe, Verdict.UNDECIDED, reason, tuple(steps))
    steps.append(Step("counterexample", example.describe()))
    reason = "Aᵀ A is not a multiple of I and the nearest branch changes: " + example.describe()
    return SelectionReport(describe, Verdict.REFUTED, reason, tuple(steps), example)


def _separable(problem: Problem) -> bool:
    """Whether the branch solutions are exactly the product of their per-coordinate sets."""
    inverse = problem.local_inverse()
    if inverse.numeric or any(t is not None for b in inverse.branches for t in b.period):
        return False
    tuples = {tuple(b.solution) for b in inverse.branches}
    columns = [dict.fromkeys(t[i] for t in tuples) for i in range(problem.n)]
    return set(itertools.product(*columns)) == tuples


def _search(
    problem: Problem,
    a: sp.Matrix,
    setup: Any,
    given: tuple[Any, Any, Any, Any],
    rng: np.random.Generator,
    tries: int,
) -> SelectionCounterexample | None:
    new = sorted(setup.new_params, key=str)
    y, x0, values, versus = given

    def metric(at: Mapping[sp.Symbol, float]) -> np.ndarray:
        return np.linalg.inv(np.array(a.xreplace({s: sp.Float(v) for s, v in at.items()}), float))

    def named(at: Mapping[str, float] | None) -> dict[sp.Symbol, float]:
        return {s: float((at or {}).get(str(s), 1.0)) for s in new}

    for k in range(tries + 1):
        if k == 0 and (y is None or x0 is None):
            continue
        if k == 0:
            target, start = list(map(float, y)), np.asarray(x0, float)
            at, other = named(values), (named(versus) if versus else None)
        else:
            at, other = sample_values(new, rng), None
            star = rng.uniform(-2.0, 2.0, problem.n)
            params = {**problem.params, **dict(zip(problem.inputs, star))}
            try:
                target = [float(e.xreplace(params)) for e in problem.outputs]
            except TypeError:  # P is not real there (e.g. sqrt of a negative input): next point
                continue
            start = star + rng.normal(0.0, 0.7, problem.n)
        reference = None if other is None else metric(other)
        found = _compare(problem, target, start, metric(at), reference)
        if found is not None:
            shown = {str(s): v for s, v in at.items()}
            against = {} if other is None else {str(s): v for s, v in other.items()}
            return SelectionCounterexample(tuple(start), tuple(target), shown, against, *found)
    return None


def _compare(
    problem: Problem, y: list[float], x0: np.ndarray, inverse: np.ndarray, reference: Any
) -> Any:
    solutions, in_x = nearest_branches(problem, y, x0, reference)
    if len(solutions) < 2:
        return None
    _, in_u = nearest_branches(problem, y, x0, inverse)
    i, j = int(np.argmin(in_x)), int(np.argmin(in_u))
    if i == j or _tied(in_x) or _tied(in_u):
        return None
    return i, j, solutions, tuple(map(float, in_x)), tuple(map(float, in_u))


def _tied(distances: np.ndarray) -> bool:
    first, second = np.sort(distances)[:2]
    return bool(second - first <= _TIE * (1 + second))
