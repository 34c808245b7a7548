"""The identities of the inverse-simulator (physical) gradient, checked exactly.

- :func:`pg_exactness`: ``P(x₀ + Δx_PG) = y₀ + Δy`` on every branch (eq. 24).
- :func:`pg_ig_agreement`: ``Δx_PG = Δx_IG + O(Δy²)``, by expanding both in the step size
  ``η`` (``Δy`` is proportional to it): the ``η⁰`` term of PG vanishes on the branch through
  ``x₀``, the ``η¹`` terms agree, and the remainder's ``η²`` coefficient is reported.

The 1-D identities live in :mod:`scaleinv.analysis.claims.pg_identities_1d` (re-exported here):

- :func:`average_gradient` (1-D): ``Δx_PG/Δy = (1/Δy) ∫ ∂x/∂y dy`` over ``[y₀, y₀ + Δy]``.
- :func:`quotient_remainder` (1-D): the order in ``Δy`` of ``Δx_PG/Δy − ∂x/∂y``.
- :func:`local_inverse_limit` (1-D): ``(P⁻¹(y; x₀) − P⁻¹(y))/|y − y₀| → 0`` as ``y → y₀``.

Symbolic work happens on the branch of ``P⁻¹`` through the current point: by default the inputs
are taken positive (``point=None``), which is where a branch such as ``+√y`` of ``x²`` passes
through ``x``; a ``point`` (exact numbers) fixes the inputs instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from scaleinv.analysis.claims.pg_identities_1d import (
    _ETA_DOMAIN,
    DELTA_Y,
    ETA,
    AverageGradientReport,
    LocalInverseLimitReport,
    RemainderReport,
    _frame,
    _localize,
    _nonzero,
    average_gradient,
    local_inverse_limit,
    quotient_remainder,
)
from scaleinv.analysis.verdict import Decision, Step, Verdict, decide_equal
from scaleinv.numeric import rules
from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import cheap_simplify
from scaleinv.symbolic.updates import y_step

__all__ = ["ETA", "DELTA_Y", "ExactnessReport", "pg_exactness", "AgreementReport"]
__all__ += ["pg_ig_agreement", "AverageGradientReport", "average_gradient", "RemainderReport"]
__all__ += ["quotient_remainder", "LocalInverseLimitReport", "local_inverse_limit"]


@dataclass(frozen=True)
class ExactnessReport:
    """Whether every PG branch lands exactly on ``y₀ + Δy``.

    Attributes
    ----------
    verdict : Verdict
        PROVED when every branch's residual simplifies to 0.
    residuals : tuple of tuple of Expr
        Per branch, the simplified ``P(x₀ + Δx_PG) − (y₀ + Δy)`` (or the unsimplified
        difference when the proof failed).
    decisions : tuple of Decision
    steps : tuple of Step
    """

    verdict: Verdict
    residuals: tuple[tuple[sp.Expr, ...], ...]
    decisions: tuple[Decision, ...]
    steps: tuple[Step, ...]


def pg_exactness(problem: Problem, *, eta: Any = ETA, budget: float = 2_000_000) -> ExactnessReport:
    r"""``P(x₀ + Δx_PG) = y₀ + Δy`` for every closed-form branch, with ``Δy = η ΔyNewton``.

    .. math:: \mathcal P\big(x_0 + \mathcal P^{-1}(y_0 + \Delta y; x_0) - x_0\big) = y_0 + \Delta y

    Examples
    --------
    >>> p = Problem.from_strings(["x"], ["x**2"], target=[4])
    >>> r = pg_exactness(p)
    >>> r.verdict, r.residuals
    (<Verdict.PROVED: 'proved'>, ((0,), (0,)))
    """
    eta = sp.sympify(eta)
    deltas = rules.pg(eta).delta(problem)
    target = (problem.P + eta * problem.newton_dy.subs(problem.at_P)).applyfunc(cheap_simplify)
    x = sp.Matrix(problem.inputs)
    steps = [Step("y0 + Δy", target)]
    decisions = []
    branches = problem.local_inverse().branches
    for i, delta in enumerate(deltas):
        landed = problem.P.subs(dict(zip(problem.inputs, x + delta)), simultaneous=True)
        steps.append(Step(f"P(x0 + Δx_PG), branch {i}", landed))
        share = budget / len(deltas)
        found = _on_defining_equation(problem, branches[i].solution, share / 2, i)
        if found.verdict is Verdict.PROVED:  # then it holds at y = y0 + Δy in particular
            steps.append(Step(f"P(x(y)) − y on branch {i}, y free", found.difference))
            decisions.append(found)
            continue
        found = decide_equal(
            landed, target, problem.inputs, budget=share, rng=i, domains=_ETA_DOMAIN
        )
        if found.verdict is not Verdict.PROVED:  # search again only where the branch is valid
            valid = problem.local_inverse().branches[i].condition
            valid = valid.subs(dict(zip(problem.output_symbols, target)), simultaneous=True)
            only = [sp.Piecewise((e, valid), (sp.nan, True)) for e in landed]
            again = decide_equal(
                sp.Matrix(only), target, problem.inputs, budget=share, rng=i, domains=_ETA_DOMAIN
            )
            if again.verdict is not Verdict.REFUTED:
                note = f"{found.note}; no counterexample where the branch is valid"
                found = Decision(Verdict.UNDECIDED, found.difference, None, note)
        decisions.append(found)
    verdict = _combine(d.verdict for d in decisions)
    residuals = tuple(d.difference for d in decisions)
    return ExactnessReport(verdict, residuals, tuple(decisions), tuple(steps))


def _on_defining_equation(
    problem: Problem, solution: tuple[sp.Expr, ...], budget: float, seed: int
) -> Decision:
    """``P(x(y)) = y`` for a branch ``x(y)``, with ``y`` free: the defining equation itself.

    Smaller than the identity at ``y = P(x₀) + Δy`` (no ``x₀``, no ``η``), so it is decided
    quickly where it holds; the identity at the new ``y`` then follows by substitution.
    """
    ys = problem.output_symbols
    at = dict(zip(problem.inputs, solution))
    landed = sp.Matrix([e.xreplace(at) for e in problem.outputs])
    return decide_equal(landed, sp.Matrix(ys), list(ys), budget=budget, rng=seed)


def _combine(verdicts: Any) -> Verdict:
    found = list(verdicts)
    if Verdict.REFUTED in found:
        return Verdict.REFUTED
    return (
        Verdict.PROVED if found and all(v is Verdict.PROVED for v in found) else Verdict.UNDECIDED
    )


@dataclass(frozen=True)
class AgreementReport:
    """``Δx_PG`` against ``Δx_IG`` as series in the step size ``η``.

    Attributes
    ----------
    verdict : Verdict
        PROVED when the branch through ``x₀`` exists and the ``η¹`` terms agree exactly.
    branch : int or None
        The PG branch through ``x₀`` (``Δx_PG = 0`` at ``η = 0``).
    ig_rate : Matrix or None
        ``∂Δx_IG/∂η`` (IG is linear in ``η``).
    first_order_gap : Matrix or None
        ``∂Δx_PG/∂η − ∂Δx_IG/∂η`` at ``η = 0`` (simplified; 0 when they agree).
    remainder : Matrix or None
        The ``η²`` coefficient of ``Δx_PG − Δx_IG``: where the remainder starts.
    steps : tuple of Step
    """

    verdict: Verdict
    branch: int | None
    ig_rate: sp.Matrix | None
    first_order_gap: sp.Matrix | None
    remainder: sp.Matrix | None
    steps: tuple[Step, ...]

    @property
    def second_order(self) -> bool:
        """True when the remainder's ``η²`` coefficient is not identically 0."""
        return self.remainder is not None and any(c != 0 for c in self.remainder)


def pg_ig_agreement(problem: Problem, *, point: Sequence[Any] | None = None) -> AgreementReport:
    r"""PG equals IG to first order in ``Δy``; the difference starts at ``Δy²``.

    .. math:: \Delta x_{PG} - \Delta x_{IG} = \tfrac12 \eta^2 \partial_\eta^2 \Delta x_{PG}|_0
              + O(\eta^3)

    Examples
    --------
    >>> r = pg_ig_agreement(Problem.from_strings(["x"], ["x**2"], target=[4]))
    >>> r.verdict, r.first_order_gap.T, r.remainder.T
    (<Verdict.PROVED: 'proved'>, Matrix([[0]]), Matrix([[-(x**2 - 4)**2/(8*x**3)]]))
    """
    frame = _frame(problem, point)
    ig = rules.ig(ETA).delta(problem).subs(frame)
    rate = ig.diff(ETA).applyfunc(cheap_simplify)
    steps = [Step("dΔx_IG/dη", rate)]
    inverse = problem.local_inverse()
    at_new = dict(zip(problem.output_symbols, problem.P + y_step(problem, ETA)))
    x = sp.Matrix(problem.inputs)
    for i, branch in enumerate(inverse.branches):  # eq. 24 on each branch, as pg_deltas
        delta = (sp.Matrix(branch.solution).subs(at_new) - x).subs(frame)
        delta = _localize(delta, ETA, sp.Integer(0))
        if any(cheap_simplify(c) != 0 for c in delta.subs(ETA, 0)):
            continue
        first = delta.diff(ETA).subs(ETA, 0).applyfunc(cheap_simplify)
        gap = (first - rate).applyfunc(cheap_simplify)
        second = (delta.diff(ETA, 2).subs(ETA, 0) / 2).applyfunc(cheap_simplify)
        steps += [Step(f"dΔx_PG/dη at η = 0 (branch {i})", first), Step("difference", gap)]
        steps.append(Step("η² coefficient of Δx_PG − Δx_IG", second))
        verdict = Verdict.PROVED if all(g == 0 for g in gap) else Verdict.UNDECIDED
        if verdict is Verdict.UNDECIDED and _nonzero(gap, frame):
            verdict = Verdict.REFUTED
        return AgreementReport(verdict, i, rate, gap, second, tuple(steps))
    steps.append(Step(f"no closed-form branch passes through x0 ({inverse.reason})", None))
    return AgreementReport(Verdict.UNDECIDED, None, rate, None, None, tuple(steps))
