"""The 1-D identities of the inverse-simulator gradient, and the helpers both PG modules share.

- :func:`average_gradient`: ``Δx_PG/Δy = (1/Δy) ∫ ∂x/∂y dy`` over ``[y₀, y₀ + Δy]``.
- :func:`quotient_remainder`: the order in ``Δy`` of ``Δx_PG/Δy − ∂x/∂y``.
- :func:`local_inverse_limit`: ``(P⁻¹(y; x₀) − P⁻¹(y))/|y − y₀| → 0`` as ``y → y₀``.

Symbolic work happens on the branch of ``P⁻¹`` through the current point: by default the input
is taken positive (``point=None``), which is where a branch such as ``+√y`` of ``x²`` passes
through ``x``; a ``point`` (exact numbers) fixes it instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from scaleinv.analysis.verdict import Decision, Step, Verdict, decide_equal
from scaleinv.errors import ProblemError
from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import cheap_simplify

__all__ = ["ETA", "DELTA_Y", "AverageGradientReport", "average_gradient", "RemainderReport"]
__all__ += ["quotient_remainder", "LocalInverseLimitReport", "local_inverse_limit"]

#: The step size of IG and PG (``Δy = η · (Newton step of L in y)``).
ETA = sp.Symbol("eta", positive=True)
#: The y-step of the 1-D identities.
DELTA_Y = sp.Symbol("Delta_y", real=True)
_ETA_DOMAIN = {ETA: (0.05, 0.95)}


def _frame(problem: Problem, point: Sequence[Any] | None) -> dict[sp.Symbol, sp.Expr]:
    """Inputs -> positive symbols of the same names, or -> the exact numbers of ``point``."""
    if point is None:
        return {x: sp.Symbol(x.name, positive=True) for x in problem.inputs}
    if len(point) != problem.n:
        raise ProblemError(f"point has {len(point)} entries, the problem {problem.n} inputs")
    return {x: sp.nsimplify(v, rational=True) for x, v in zip(problem.inputs, point)}


def _variables(frame: dict[sp.Symbol, sp.Expr]) -> list[sp.Symbol]:
    return [v for v in frame.values() if isinstance(v, sp.Symbol)]


def _nonzero(exprs: Any, frame: dict[sp.Symbol, sp.Expr]) -> bool:
    """True when some entry is clearly nonzero at a fixed sample point (η = 1/3, inputs 0.7)."""
    at = {**{v: sp.Rational(7, 10) for v in _variables(frame)}, ETA: sp.Rational(1, 3)}
    for e in exprs:
        value = sp.N(sp.sympify(e).subs(at), 30)
        if value.is_number and value.is_real and abs(value) > 1e-20:
            return True
    return False


def _localize(expr: sp.Expr, var: sp.Symbol, at: sp.Expr) -> sp.Expr:
    """``expr`` for ``var`` near ``at``: ``sign(e)``, ``|e|`` resolved where ``e(at)`` has a sign.

    The real odd roots of closed-form branches (``sign(y) |y|^(1/3)``) are smooth away from 0,
    but limits and series do not see that through ``sign`` and ``Abs``.
    """

    def sign_at(e: sp.Expr) -> int | None:
        value = sp.sign(e.subs(var, at))
        return int(value) if value in (1, -1) else None

    def resolve(node: sp.Expr) -> sp.Expr:
        s = sign_at(node.args[0])
        if s is None:
            return node
        return sp.Integer(s) if isinstance(node, sp.sign) else s * node.args[0]

    return expr.replace(lambda n: isinstance(n, (sp.sign, sp.Abs)), resolve)


def _through_branch(problem: Problem, frame: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    """The 1-D closed-form branch ``x(y)`` with ``x(P(x₀)) = x₀`` in the given frame."""
    if problem.n != 1 or problem.m != 1:
        raise ProblemError(f"a 1-D identity needs n = m = 1, got n = {problem.n}, m = {problem.m}")
    y, x0 = problem.output_symbols[0], frame[problem.inputs[0]]
    y0 = problem.outputs[0].subs(frame)
    inverse = problem.local_inverse()
    for branch in inverse.branches:
        if cheap_simplify(branch.solution[0].subs(y, y0) - x0) == 0:
            return branch.solution[0]
    raise ProblemError(f"no closed-form branch of P⁻¹ passes through x0 ({inverse.reason})")


@dataclass(frozen=True)
class AverageGradientReport:
    """The 1-D fundamental-theorem identity of ``Δx_PG / Δy``, and two readings of it.

    Attributes
    ----------
    verdict : Verdict
        Of ``Δx_PG/Δy = (1/Δy) ∫_{y₀}^{y₀+Δy} ∂x/∂y dy``.
    ratio : Expr
        ``Δx_PG / Δy``.
    average : Expr
        ``(1/Δy) ∫ ∂x/∂y dy`` as integrated by SymPy.
    mean_slope_of_P : Expr
        ``(1/Δx) ∫_{x₀}^{x₀+Δx} ∂P/∂x dx``: the average gradient of ``P`` itself.
    reciprocal : Verdict
        Of ``ratio · mean_slope_of_P = 1`` (the ratio is the *reciprocal* of P's mean slope).
    decision : Decision
    steps : tuple of Step
    """

    verdict: Verdict
    ratio: sp.Expr
    average: sp.Expr
    mean_slope_of_P: sp.Expr
    reciprocal: Verdict
    decision: Decision
    steps: tuple[Step, ...]


def average_gradient(
    problem: Problem, *, point: Sequence[Any] | None = None, budget: float = 2_000_000
) -> AverageGradientReport:
    r"""``Δx_PG/Δy`` is the average of ``∂x/∂y`` over ``[y₀, y₀ + Δy]`` (1-D).

    .. math:: \frac{\Delta x_{PG}}{\Delta y}
              = \frac{1}{\Delta y} \int_{y_0}^{y_0 + \Delta y} \frac{\partial x}{\partial y} dy

    Examples
    --------
    >>> r = average_gradient(Problem.from_strings(["x"], ["exp(x)"], target=[2]))
    >>> r.verdict, r.reciprocal
    (<Verdict.PROVED: 'proved'>, <Verdict.PROVED: 'proved'>)
    """
    frame = _frame(problem, point)
    solution, x, y = _through_branch(problem, frame), problem.inputs[0], problem.output_symbols[0]
    x0, y0 = frame[x], problem.outputs[0].subs(frame)
    dy = cheap_simplify(ETA * problem.newton_dy.subs(problem.at_P)[0].subs(frame))
    dx = cheap_simplify(solution.subs(y, y0 + dy) - x0)
    w = sp.Dummy("w", real=True)
    integral = sp.integrate(sp.diff(solution, y).subs(y, w), (w, y0, y0 + dy))
    ratio, average = dx / dy, integral / dy
    variables = _variables(frame)
    decision = decide_equal(
        sp.Matrix([average]), sp.Matrix([ratio]), variables, budget=budget, domains=_ETA_DOMAIN
    )
    slope = problem.jacobian[0].subs(x, w)
    mean = sp.integrate(slope, (w, x0, x0 + dx)) / dx
    reciprocal = decide_equal(
        sp.Matrix([ratio * mean]), sp.Matrix([1]), variables, budget=budget, domains=_ETA_DOMAIN
    ).verdict
    steps = (
        Step("Δy", dy),
        Step("Δx_PG", dx),
        Step("(1/Δy) ∫ ∂x/∂y dy", cheap_simplify(average)),
        Step("mean of ∂P/∂x over [x0, x0 + Δx_PG]", cheap_simplify(mean)),
    )
    return AverageGradientReport(
        decision.verdict, ratio, average, mean, reciprocal, decision, steps
    )


@dataclass(frozen=True)
class RemainderReport:
    """The Taylor coefficients in ``Δy`` of ``r = Δx_PG/Δy − ∂x/∂y`` (1-D).

    Attributes
    ----------
    verdict : Verdict
        Of the chapter's "``r = O(Δy²)``": PROVED when the ``Δy⁰`` and ``Δy¹`` coefficients
        vanish, REFUTED when the ``Δy¹`` coefficient is clearly nonzero.
    remainder : Expr
        ``r`` in ``Delta_y`` (see :data:`DELTA_Y`).
    coefficients : tuple of Expr
        The coefficients of ``Δy⁰, Δy¹, ...``.
    order : int or None
        The first ``k`` with a nonzero coefficient (None: all checked vanish).
    steps : tuple of Step
    """

    verdict: Verdict
    remainder: sp.Expr
    coefficients: tuple[sp.Expr, ...]
    order: int | None
    steps: tuple[Step, ...]


def quotient_remainder(
    problem: Problem, *, point: Sequence[Any] | None = None, terms: int = 3
) -> RemainderReport:
    r"""The order of ``Δx_PG/Δy − ∂x/∂y`` in ``Δy`` (the chapter claims two; it is one).

    .. math:: \frac{\Delta x_{PG}}{\Delta y} - \frac{\partial x}{\partial y}
              = \tfrac12 \frac{\partial^2 x}{\partial y^2} \Delta y + O(\Delta y^2)

    Examples
    --------
    >>> r = quotient_remainder(Problem.from_strings(["x"], ["x**2"]))
    >>> r.verdict, r.order, r.coefficients[:2]
    (<Verdict.REFUTED: 'refuted'>, 1, (0, -1/(8*x**3)))
    """
    frame = _frame(problem, point)
    solution, x, y = _through_branch(problem, frame), problem.inputs[0], problem.output_symbols[0]
    x0, y0 = frame[x], problem.outputs[0].subs(frame)
    inverse_slope = 1 / problem.jacobian[0].subs(frame)
    solution = _localize(solution, y, y0)
    remainder = (solution.subs(y, y0 + DELTA_Y) - x0) / DELTA_Y - inverse_slope
    series = sp.series(remainder, DELTA_Y, 0, terms).removeO()
    coefficients = tuple(cheap_simplify(series.coeff(DELTA_Y, k)) for k in range(terms))
    order = next((k for k, c in enumerate(coefficients) if c != 0), None)
    if coefficients[0] == 0 and coefficients[1] == 0:
        verdict = Verdict.PROVED
    elif _nonzero(coefficients[:2], frame):
        verdict = Verdict.REFUTED
    else:
        verdict = Verdict.UNDECIDED
    steps = (
        Step("∂x/∂y at y0", inverse_slope),
        Step("Δx_PG/Δy − ∂x/∂y", remainder),
        Step(f"series to Δy^{terms - 1}", series),
    )
    return RemainderReport(verdict, remainder, coefficients, order, steps)


@dataclass(frozen=True)
class LocalInverseLimitReport:
    """``(P⁻¹(y; x₀) − P⁻¹(y))/|y − y₀|`` as ``y → y₀`` (1-D).

    Attributes
    ----------
    verdict : Verdict
        PROVED when a global inverse exists, the nearest-branch local inverse equals it near
        ``y₀`` and the first-order local inverse's ratio tends to 0 from both sides.
    global_inverse : Expr or None
        The single non-periodic branch, when there is one.
    nearest : Expr
        The branch through ``x₀``: the local inverse near ``y₀``.
    branch_difference : Expr or None
        ``nearest − global_inverse`` (0: the chapter's limit holds trivially).
    first_order : Expr
        The first-order local inverse ``x₀ + (y − y₀)/P'(x₀)`` (the IG).
    limit_above, limit_below : Expr
        Of ``(first_order − P⁻¹(y))/|y − y₀|`` as ``y → y₀±``.
    slope : Expr
        The ``|y − y₀|`` coefficient of that ratio from above: it vanishes linearly.
    steps : tuple of Step
    """

    verdict: Verdict
    global_inverse: sp.Expr | None
    nearest: sp.Expr
    branch_difference: sp.Expr | None
    first_order: sp.Expr
    limit_above: sp.Expr
    limit_below: sp.Expr
    slope: sp.Expr
    steps: tuple[Step, ...]


def local_inverse_limit(problem: Problem, x0: Any) -> LocalInverseLimitReport:
    r"""The local inverse matches the global one to first order at ``y₀ = P(x₀)`` (1-D).

    .. math:: \lim_{y \to y_0} \frac{\mathcal P^{-1}(y; x_0) - \mathcal P^{-1}(y)}{|y - y_0|} = 0

    Examples
    --------
    >>> r = local_inverse_limit(Problem.from_strings(["x"], ["x**3"]), 2)
    >>> r.verdict, r.global_inverse, r.limit_above, r.slope
    (<Verdict.PROVED: 'proved'>, Abs(y0)**(1/3)*sign(y0), 0, 1/288)
    """
    x, y = problem.inputs[0], problem.output_symbols[0]
    frame = {x: sp.nsimplify(x0, rational=True)}
    nearest = _through_branch(problem, frame)
    x0, y0 = frame[x], problem.outputs[0].subs(frame)
    branches = problem.local_inverse().branches
    single = len(branches) == 1 and all(t is None for t in branches[0].period)
    global_inverse = branches[0].solution[0] if single else None
    difference = None if global_inverse is None else cheap_simplify(nearest - global_inverse)
    reference = nearest if global_inverse is None else global_inverse
    first = x0 + (y - y0) / problem.jacobian[0].subs(frame)
    t = sp.Dummy("t", positive=True)
    reference = _localize(reference, y, y0)
    above = cheap_simplify((first - reference).subs(y, y0 + t) / t)
    below = cheap_simplify((first - reference).subs(y, y0 - t) / t)
    limits = sp.limit(above, t, 0, "+"), sp.limit(below, t, 0, "+")
    slope = cheap_simplify(sp.series(above, t, 0, 2).removeO().coeff(t, 1))
    ok = global_inverse is not None and difference == 0 and limits == (0, 0)
    steps = (
        Step("P⁻¹(y; x0): the branch through x0", nearest),
        Step("first-order local inverse x0 + (y − y0)/P'(x0)", first),
        Step("(first order − P⁻¹(y))/|y − y0|, y = y0 + t", above),
    )
    return LocalInverseLimitReport(
        Verdict.PROVED if ok else Verdict.UNDECIDED,
        global_inverse,
        nearest,
        difference,
        first,
        *limits,
        slope,
        steps,
    )
