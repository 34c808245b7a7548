"""Match a problem-level invariance question to a theorem of :mod:`scaleinv.analysis.theorems`.

:func:`decide_by_theorem` classifies the transform (a linear or affine input map ``x = A u + b``,
read off ``g`` entry by entry; an output scaling ``P -> c P`` with its loss factor ``κ``), checks
the theorem's hypotheses on the problem (``A`` invertible; ``H``, ``J`` or ``L_yy`` invertible
at a sample point, hence generically, see :mod:`scaleinv.analysis.pointwise`; for Newton, IG
and PG also ``P`` and ``L`` analytic, see :data:`NOT_SMOOTH`) and returns the
verdict the theorem implies. GD's theorem says exactly when it is invariant (``A Aᵀ = I``,
``κ = 1``); when the concrete map violates that, a counterexample point is found and checked
numerically by evaluating the gradients of *both* problems there. ``None`` means no theorem
applies; the caller then simplifies the concrete updates instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import scipy.linalg
import sympy as sp

from scaleinv.analysis.pointwise import derivatives_at
from scaleinv.analysis.theorems import Theorem, theorem
from scaleinv.analysis.transforms import OutputScaling, Transformed
from scaleinv.analysis.verdict import Counterexample, Step, Verdict, sample_values
from scaleinv.errors import ProblemError
from scaleinv.symbolic import Problem

__all__ = ["LinearMap", "TheoremDecision", "linear_map", "decide_by_theorem", "NOT_SMOOTH"]

_ETA_DOMAIN = (0.05, 0.95)
_COND = 1e10  # a sample matrix with a larger condition number counts as singular
_CLEAR = 1e-6  # relative gap of a numeric counterexample
_SYMBOLIC_DET = 6  # largest n whose det A is simplified symbolically (else sampled)
#: Functions that make ``P`` or ``L`` non-analytic (kinks, jumps, case splits).
NOT_SMOOTH = (
    sp.Abs, sp.sign, sp.Max, sp.Min, sp.floor, sp.ceiling, sp.frac, sp.Mod, sp.Piecewise,
    sp.Heaviside, sp.DiracDelta, sp.re, sp.im, sp.arg,
)  # fmt: skip


@dataclass(frozen=True)
class LinearMap:
    """The transform as the theorems see it.

    ``side`` is ``"input"`` (``x = A u + b``, ``matrix`` = A as a sparse matrix) or
    ``"output"`` (``P -> c P``: ``matrix`` = ``c`` times the identity, ``kappa`` the factor of
    the loss, ``L'(c y) = κ L(y)``).
    """

    side: str
    matrix: sp.ImmutableSparseMatrix
    kappa: sp.Expr = sp.Integer(1)

    def shown(self) -> Any:
        """``A`` itself when small, else a short description."""
        a = self.matrix
        if a.rows <= 6:
            return sp.ImmutableMatrix(a)
        if all(i == j for i, j in a.todok()):
            return f"diag({a[0, 0]}, {a[1, 1]}, …, {a[a.rows - 1, a.rows - 1]})"
        return f"{a.rows}×{a.cols} with {len(a.todok())} nonzero entries"


def linear_map(problem: Problem, transform: Any, setup: Transformed) -> LinearMap | None:
    """The linear part of ``transform``, or ``None`` when it is not linear (or affine)."""
    if isinstance(transform, OutputScaling):
        scaled = next((k for k, e in enumerate(problem.outputs) if e != 0), None)
        if scaled is None:
            return None
        c = sp.cancel(setup.problem.outputs[scaled] / problem.outputs[scaled])
        kappa = _loss_factor(problem, setup.problem, c)
        if kappa is None:
            return None
        return LinearMap("output", sp.ImmutableSparseMatrix(sp.eye(problem.m) * c), kappa)
    inputs = set(setup.inputs)
    column = {u: j for j, u in enumerate(setup.inputs)}
    entries: dict[tuple[int, int], sp.Expr] = {}
    for i, expr in enumerate(setup.forward):
        for u in expr.free_symbols & inputs:
            coefficient = sp.diff(expr, u)
            if coefficient.free_symbols & inputs:
                return None  # not linear in u
            entries[i, column[u]] = coefficient
    n = problem.n
    return LinearMap("input", sp.ImmutableSparseMatrix(n, n, entries))


def _loss_factor(original: Problem, scaled: Problem, c: sp.Expr) -> sp.Expr | None:
    """``κ`` with ``L'(c y) = κ L(y)`` (the output scaling's loss), or ``None``."""
    at = {y: c * y for y in scaled.output_symbols}
    for kappa in (c**2, *(c**k for k in (1, 3, 4)), sp.Integer(1)):
        if sp.expand(scaled.loss.xreplace(at) - kappa * original.loss) == 0:
            return kappa
    return None


@dataclass(frozen=True)
class TheoremDecision:
    """What a theorem implies for one problem and transform."""

    verdict: Verdict
    theorem: Theorem
    derivation: tuple[Step, ...]
    counterexample: Counterexample | None
    note: str


def decide_by_theorem(
    problem: Problem,
    rule: Any,
    transform: Any,
    setup: Transformed,
    rng: Any,
    at: Mapping[sp.Symbol, float] | None = None,
    point: Mapping[sp.Symbol, float] | None = None,
) -> TheoremDecision | None:
    """The verdict of the matching theorem, or ``None`` when none applies.

    A refutation's counterexample keeps the values ``at`` fixes (a user's params and step
    size) and samples every other param, so it is one of *their* problem where asked.
    ``point`` (values of the inputs ``x``) is tried first, for the hypotheses and for a
    counterexample (at the ``u`` that the map sends there); sample points follow, and a
    point where ``P`` or its derivatives are not finite is skipped.
    """
    if rule.name not in ("gd", "newton", "ig", "pg"):
        return None
    found = linear_map(problem, transform, setup)
    if found is None:
        return None
    rng = np.random.default_rng(rng)
    chosen = _theorem_for(rule.name, found, problem)
    if chosen is None:
        return None
    checked = _hypotheses(problem, rule.name, found, chosen, rng, point)
    if checked is None:
        return None
    steps = (
        Step(f"theorem {chosen.id}", chosen.statement),
        Step("hypotheses", chosen.hypotheses),
        Step("the map" if found.side == "input" else "B, κ", (found.shown(), found.kappa)),
        Step("hypotheses checked", checked),
        *chosen.derivation,
    )
    head = f"theorem {chosen.id}"
    zero = Step("difference on this problem, by the theorem", (sp.Integer(0),) * problem.n)
    if rule.name != "gd":
        scope = "branch by branch, " if rule.name == "pg" else ""
        note = f"{head}: invariant {scope}for every map and point meeting {'; '.join(checked)}"
        return TheoremDecision(Verdict.PROVED, chosen, (*steps, zero), None, note)
    condition = _gd_condition(found)
    steps += (Step("condition on this map, simplified", condition),)
    if all(e == 0 for e in condition):
        note = f"{head}: the condition (A Aᵀ = I or κ = 1) holds for this map"
        return TheoremDecision(Verdict.PROVED, chosen, (*steps, zero), None, note)
    if problem.n <= _SYMBOLIC_DET:
        steps += (Step("difference Δx − mapped Δu on this problem: η · condition · g", _gd_residual(
            problem, rule, found, setup)),)  # fmt: skip
    example = _gd_counterexample(problem, rule, found, setup, rng, at or {}, point)
    if example is None:
        note = f"{head}: the condition fails symbolically, but no sample point shows it"
        return TheoremDecision(Verdict.UNDECIDED, chosen, steps, None, note)
    note = f"{head}: the condition fails for this map; the two gradients, evaluated numerically"
    note += " at the point, differ"
    return TheoremDecision(Verdict.REFUTED, chosen, steps, example, note)


def _theorem_for(rule: str, found: LinearMap, problem: Problem) -> Theorem | None:
    if found.side == "input":
        return theorem(f"{rule}-input-linear")
    if rule == "ig":
        return theorem("ig-output-scalar")  # OutputScaling is c I
    return theorem(f"{rule}-output-linear")


def _hypotheses(
    problem: Problem,
    rule: str,
    found: LinearMap,
    chosen: Theorem,
    rng: np.random.Generator,
    point: Mapping[sp.Symbol, float] | None,
) -> tuple[str, ...] | None:
    """The hypotheses as checked on this problem, or ``None`` when one fails."""
    checked = [_invertible(found, rng)]
    if checked[0] is None:
        return None
    if rule == "gd":
        return tuple(c for c in checked if c)
    if any(e.has(*NOT_SMOOTH) for e in (*problem.outputs, problem.loss)):
        return None  # the theorem needs P and L analytic: decided on the expressions instead
    checked.append("P and L analytic")
    if rule == "ig" and problem.m < problem.n:
        return None  # the minimum-norm pseudo-inverse is not invariant
    # the given point, then two sample points (in case one is special)
    points = [*([dict(point)] if point else []), *(_sample_point(problem, rng) for _ in range(2))]
    for where in points:
        try:
            d = derivatives_at(problem, where)
        except ProblemError:  # not finite there
            continue
        need: dict[str, Any] = {"L_yy": d.L_yy} if rule in ("ig", "pg") else {}
        if rule == "newton":
            need["H"] = d.H
        if rule == "ig":
            need["JᵀJ"] = d.J.T @ d.J
        if all(_regular(a) for a in need.values()):
            which = ", ".join(f"{k} nonsingular" for k in need)
            if which:
                checked.append(f"{which} at a sample point, hence at generic points")
            return tuple(c for c in checked if c)
    return None


def _regular(matrix: np.ndarray) -> bool:
    """Whether a square matrix is clearly nonsingular (LAPACK's 1-norm condition estimate)."""
    with warnings.catch_warnings():  # an exactly singular matrix is an answer, not a warning
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        lu, _ = scipy.linalg.lu_factor(matrix, check_finite=False)
    anorm = float(np.max(np.sum(np.abs(matrix), axis=0)))
    rcond, info = scipy.linalg.lapack.dgecon(lu, anorm, norm="1")
    return bool(info == 0 and rcond * _COND > 1 and np.all(np.isfinite(lu)))


def _invertible(found: LinearMap, rng: np.random.Generator) -> str | None:
    """Why the map is invertible ('' for a scaling by positive symbols), or ``None``."""
    a = found.matrix
    keys = a.todok()
    if found.side == "output":
        return "c > 0" if found.kappa != 0 else None
    if all(i == j for i, j in keys) and len(keys) == a.rows:
        if all(v.is_positive or (v.is_number and v != 0) for v in keys.values()):
            return "A diagonal with nonzero entries"
    if a.rows <= _SYMBOLIC_DET:
        det = _simplified(sp.Matrix(a).det())
        if det == 0:
            return None
        return f"det A = {det}" + ("" if det.is_number else " (invertible where nonzero)")
    symbols = sorted(set().union(*(v.free_symbols for v in keys.values())), key=str)
    values = {s: sp.Float(v, 20) for s, v in sample_values(symbols, rng).items()}
    if _regular(_numeric(a, values)):
        return "A nonsingular at sample values of its symbols, hence generically"
    return None


def _numeric(a: sp.ImmutableSparseMatrix, at: dict) -> np.ndarray:
    out = np.zeros(a.shape)
    for (i, j), v in a.todok().items():
        out[i, j] = float(v.xreplace(at))
    return out


def _gd_condition(found: LinearMap) -> list[sp.Expr]:
    """The entries of ``A Aᵀ − I`` (input maps) or ``κ − 1`` (output maps), simplified."""
    if found.side == "output":
        return [sp.simplify(found.kappa - 1)]
    a = found.matrix
    gram = (a * a.T - sp.eye(a.rows)).todok()
    return [_simplified(e) for e in gram.values()]


def _simplified(expr: sp.Expr) -> sp.Expr:
    """``cancel``, then ``trigsimp`` and ``simplify`` only for small trigonometric remainders."""
    expr = sp.cancel(expr)
    if expr != 0 and expr.has(sp.sin, sp.cos, sp.tan) and sp.count_ops(expr) < 200:
        expr = sp.simplify(sp.trigsimp(expr))
    return expr


def _gd_residual(problem: Problem, rule: Any, found: LinearMap, setup: Transformed) -> tuple:
    """``Δx − mapped Δu = η (A Aᵀ − I) g`` or ``η (κ − 1) g`` on this problem, in u."""
    eta = sp.nsimplify(getattr(rule, "eta", 1), rational=True)
    g = problem.gradient.xreplace(dict(zip(problem.inputs, setup.forward)))
    if found.side == "input":
        a = sp.Matrix(found.matrix)
        residual = eta * (a * a.T - sp.eye(a.rows)) * g
    else:
        residual = eta * (found.kappa - 1) * g
    return tuple(sp.factor_terms(sp.simplify(e)) for e in residual)


def _preimage(
    problem: Problem,
    found: LinearMap,
    setup: Transformed,
    values: Mapping[sp.Symbol, float],
    point: Mapping[sp.Symbol, float],
) -> dict[sp.Symbol, float]:
    """The ``u`` with ``A u + b = x`` for ``x = point`` (``u = x`` for an output scaling)."""
    x = np.array([float(point[s]) for s in problem.inputs])
    if found.side == "output":
        return dict(zip(setup.inputs, x))
    exact = {s: sp.Float(v, 20) for s, v in values.items()}
    zero = {**exact, **{u: 0 for u in setup.inputs}}
    offset = np.array([float(e.xreplace(zero)) for e in setup.forward])
    u = np.linalg.solve(_numeric(found.matrix, exact), x - offset)
    return {s: float(v) for s, v in zip(setup.inputs, u)}


def _sample_point(problem: Problem, rng: np.random.Generator) -> dict[sp.Symbol, float]:
    return {x: float(v) for x, v in zip(problem.inputs, rng.uniform(-2.0, 2.0, problem.n))}


def _gd_counterexample(
    problem: Problem,
    rule: Any,
    found: LinearMap,
    setup: Transformed,
    rng: np.random.Generator,
    at: Mapping[sp.Symbol, float],
    point: Mapping[sp.Symbol, float] | None = None,
) -> Counterexample | None:
    """A point where ``Δx_GD`` and the mapped ``Δu_GD`` differ, both evaluated numerically;
    params are ``at``'s values where it gives them, else sampled (the verdict is for all).
    The first candidate is the ``u`` the map sends to ``point`` (when given)."""
    fixed = {s: float(v) for s, v in at.items()}
    free = sorted({*setup.new_params, *problem.params} - set(fixed), key=str)
    eta = getattr(rule, "eta", 0.01)
    for attempt in range(7 if point else 6):
        values = {**sample_values(free, rng), **fixed}
        if isinstance(eta, sp.Symbol):
            step = values.pop(eta, None) or float(rng.uniform(*_ETA_DOMAIN))
        else:
            step = float(eta)
        if attempt == 0 and point:
            u = _preimage(problem, found, setup, values, point)
        else:
            u = _sample_point(setup.problem, rng)
        point_values = {s: sp.Float(v, 20) for s, v in {**values, **u}.items()}
        x = {xi: float(e.xreplace(point_values)) for xi, e in zip(problem.inputs, setup.forward)}
        own = {s: v for s, v in values.items() if s in problem.params}
        try:
            lhs = -step * derivatives_at(problem, {**x, **own}, second=False).g
            du = -step * derivatives_at(setup.problem, {**u, **values}, second=False).g
        except ProblemError:  # not finite at this point: try the next
            continue
        rhs = _numeric(found.matrix, point_values) @ du if found.side == "input" else du
        scale = max(1.0, float(np.max(np.abs(lhs))), float(np.max(np.abs(rhs))))
        if float(np.max(np.abs(lhs - rhs))) / scale > _CLEAR:
            params = {str(s): v for s, v in values.items()}
            if isinstance(eta, sp.Symbol):
                params[str(eta)] = step
            point = MappingProxyType({str(s): v for s, v in u.items()})
            return Counterexample(point, MappingProxyType(params), tuple(lhs), tuple(rhs))
    return None
