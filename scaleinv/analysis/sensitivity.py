"""Function sensitivity and convergence near an optimum, derived exactly (the chapter's 🔍 and 💎).

:func:`sensitivity` takes a 1-D loss of a scale ``alpha`` (the chapter's ``L = αx`` and the
quadratic ``L = (αx)²``) and gives, per rule, the update ``Δx``, its first-order loss change
``ΔL₁ = (∂L/∂x) Δx`` and the power of ``alpha`` in each. The loss itself is the output of the
"simulator" (``P = L(x)``, ``L(y) = y``): a loss linear in ``y`` has no Newton step in y-space, so
IG and PG take a *requested loss step* ``ΔL`` (the symbol ``Delta_L``, independent of ``alpha``),
``Δx_IG = (∂x/∂L) ΔL`` and ``Δx_PG = L⁻¹(L(x) + ΔL; x) − x``, as the chapter's section
"Integrating a loss function" does.

:func:`near_optimum` takes the flat landscape ``L = x**k`` (``P = x**(k/2)``, ``L(y) = y²``,
minimum ``x* = 0``) and gives the limit of ``|Δx| / |x − x*|`` as ``x → x*`` per rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from scaleinv.errors import ProblemError, ScaleinvError
from scaleinv.numeric import rules
from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import cheap_simplify

__all__ = ["power_of", "SensitivityReport", "sensitivity", "NearOptimumReport", "near_optimum"]

#: The requested step in the loss that IG and PG take when ``L`` is linear in ``y``.
LOSS_STEP = sp.Symbol("Delta_L", real=True)
#: The step size symbol of GD and Newton.
ETA = sp.Symbol("eta", positive=True)
_RULES = ("gd", "newton", "ig", "pg")


def power_of(expr: sp.Expr, symbol: sp.Symbol) -> sp.Expr | None:
    r"""The exponent ``k`` when ``expr = c · symbol**k`` (``c`` free of ``symbol``), else None.

    .. math:: k = \partial \log|f| / \partial \log \alpha = \alpha f'(\alpha) / f(\alpha)

    Examples
    --------
    >>> a, x = sp.symbols("alpha x", positive=True)
    >>> power_of(-3 * x / a**2, a), power_of(a * x + a**2, a), power_of(sp.Integer(0), a)
    (-2, None, None)
    """
    expr = sp.sympify(expr)
    if expr == 0:
        return None
    k = cheap_simplify(symbol * sp.diff(expr, symbol) / expr)
    return None if k.has(symbol) or k.has(sp.nan, sp.zoo) else k


@dataclass(frozen=True)
class SensitivityReport:
    """One rule's update on a loss ``L(x; alpha)``, and how it scales with ``alpha``.

    Attributes
    ----------
    rule : str
    loss : Expr
        ``L(x)``.
    exists : bool
        False when the rule has no update here (``reason`` says why).
    delta : Expr or None
        ``Δx`` (for PG, on ``x > 0``: the branch through ``x``).
    delta_power : Expr or None
        The power of ``alpha`` in ``Δx`` (None: not a power of ``alpha``).
    loss_change : Expr or None
        ``ΔL₁ = (∂L/∂x) Δx``, the first-order change of the loss.
    loss_change_power : Expr or None
    preconditioner : Expr or None
        ``s`` with ``Δx = s · ∂L/∂x`` (GD ``−η``, Newton ``−η H⁻¹``, IG ``ΔL/(∂L/∂x)²``).
    preconditioner_power : Expr or None
    reason : str
    """

    rule: str
    loss: sp.Expr
    exists: bool
    delta: sp.Expr | None = None
    delta_power: sp.Expr | None = None
    loss_change: sp.Expr | None = None
    loss_change_power: sp.Expr | None = None
    preconditioner: sp.Expr | None = None
    preconditioner_power: sp.Expr | None = None
    reason: str = ""


def sensitivity(
    loss: str = "alpha*x", *, rule_names: Sequence[str] = _RULES
) -> tuple[SensitivityReport, ...]:
    """How GD, Newton, IG and PG steps on a 1-D loss ``L(x; alpha)`` scale with ``alpha``.

    Parameters
    ----------
    loss : str
        ``L`` in ``x`` and the positive scale ``alpha``, e.g. ``"alpha*x"`` or
        ``"(alpha*x)**2"`` (parsed by the allow-list parser).
    rule_names : sequence of str
        Any of ``"gd"``, ``"newton"``, ``"ig"``, ``"pg"``.

    Returns
    -------
    tuple of SensitivityReport
        One per rule, in the order asked.

    Examples
    --------
    >>> gd, newton, ig, pg = sensitivity("alpha*x")
    >>> gd.delta, gd.delta_power, gd.loss_change_power
    (-alpha*eta, 1, 2)
    >>> newton.exists, newton.reason
    (False, "L'' = 0 for every x, so Newton's step 1/L'' does not exist")
    >>> ig.delta, ig.delta_power, pg.delta_power
    (Delta_L/alpha, -1, -1)
    >>> [r.delta_power for r in sensitivity("(alpha*x)**2", rule_names=["gd", "newton"])]
    [2, 0]
    """
    problem = Problem.from_strings(["x"], [loss], loss="y0", params={"alpha": 1})
    alpha = next(s for s in problem.param_symbols if s.name == "alpha")
    return tuple(_report(problem, alpha, name) for name in rule_names)


def _report(problem: Problem, alpha: sp.Symbol, name: str) -> SensitivityReport:
    x, loss = problem.inputs[0], problem.outputs[0]
    slope = problem.gradient[0]
    try:
        delta, scale = _delta(problem, name, slope)
    except ScaleinvError as err:
        flat = name == "newton" and sp.simplify(problem.hessian[0, 0]) == 0
        why = "L'' = 0 for every x, so Newton's step 1/L'' does not exist" if flat else str(err)
        return SensitivityReport(name, loss, False, reason=why)
    if name == "pg":  # the branch through x is chosen on x > 0; report in x again
        delta = delta.subs(_POSITIVE_X, x)
    change = cheap_simplify(slope * delta)
    return SensitivityReport(
        rule=name,
        loss=loss,
        exists=True,
        delta=delta,
        delta_power=power_of(delta, alpha),
        loss_change=change,
        loss_change_power=power_of(change, alpha),
        preconditioner=scale,
        preconditioner_power=None if scale is None else power_of(scale, alpha),
        reason="PG: the branch of L⁻¹ through x, on x > 0" if name == "pg" else "",
    )


_POSITIVE_X = sp.Symbol("x", positive=True)


def _delta(problem: Problem, name: str, slope: sp.Expr) -> tuple[sp.Expr, sp.Expr | None]:
    if name in ("gd", "newton"):
        delta = rules.REGISTRY[name](ETA).delta(problem)[0]
        scale = -ETA if name == "gd" else cheap_simplify(-ETA / problem.hessian[0])
        return delta, scale
    if slope == 0:
        raise ProblemError("∂L/∂x vanishes identically: no inverse gradient")
    if name == "ig":
        return cheap_simplify(LOSS_STEP / slope), cheap_simplify(LOSS_STEP / slope**2)
    if name == "pg":
        x, loss = problem.inputs[0], problem.outputs[0]
        inverse = problem.local_inverse()
        at = {x: _POSITIVE_X}
        for branch in inverse.branches:
            back = branch.solution[0].subs(problem.output_symbols[0], loss.subs(at))
            if cheap_simplify(back - _POSITIVE_X) == 0:
                y_new = loss.subs(at) + LOSS_STEP
                step = branch.solution[0].subs(problem.output_symbols[0], y_new) - _POSITIVE_X
                return cheap_simplify(step), None
        raise ProblemError(f"no closed-form branch of L⁻¹ passes through x ({inverse.reason})")
    raise ProblemError(f"unknown rule {name!r}; known: {', '.join(_RULES)}")


@dataclass(frozen=True)
class NearOptimumReport:
    """How one rule's step compares with the distance to the optimum ``x* = 0``.

    Attributes
    ----------
    rule : str
    power : int
        ``k`` in ``L = x**k``.
    eta : Expr
    delta : Expr
        ``Δx`` in ``x`` (for PG, the branch nearest ``x`` for small ``x > 0``).
    ratio : Expr
        ``|Δx| / |x − x*|`` on ``x > 0`` (in the positive symbol ``x``).
    limit : Expr
        Its limit as ``x → x*`` from above.
    limit_below : Expr
        The limit from below.
    """

    rule: str
    power: int
    eta: sp.Expr
    delta: sp.Expr
    ratio: sp.Expr
    limit: sp.Expr
    limit_below: sp.Expr

    @property
    def stalls(self) -> bool:
        """True when the step vanishes faster than the distance (GD's slow convergence)."""
        return bool(self.limit == 0 and self.limit_below == 0)

    @property
    def progresses(self) -> bool:
        """True when the step stays a finite nonzero fraction of the distance on both sides."""
        return all(v.is_finite and v.is_positive for v in (self.limit, self.limit_below))


def near_optimum(
    power: int = 4, eta: Any = 1, *, rule_names: Sequence[str] = _RULES
) -> tuple[NearOptimumReport, ...]:
    """``lim |Δx|/|x − x*|`` as ``x → x* = 0`` on the flat landscape ``L = x**power``.

    The problem is ``P = x**(power/2)``, ``L(y) = y²`` (so ``L(P(x)) = x**power``); GD and
    Newton see only ``L(P(x))``, IG and PG also the split into ``P`` and ``L``.

    Parameters
    ----------
    power : int
        An even ``k ≥ 2``.
    eta : number
        The step size of every rule.
    rule_names : sequence of str

    Examples
    --------
    >>> [(r.rule, r.limit) for r in near_optimum(4, 1)]
    [('gd', 0), ('newton', 1/3), ('ig', 1/2), ('pg', 1)]
    >>> [r.limit for r in near_optimum(6, sp.Rational(1, 2), rule_names=["newton", "pg"])]
    [1/10, 1 - 2**(2/3)/2]
    """
    if power < 2 or power % 2:
        raise ProblemError(f"near_optimum needs an even power >= 2, got {power}")
    eta = sp.nsimplify(eta)
    x = sp.Symbol("x", real=True)
    problem = Problem((x,), (x ** (power // 2),), loss=sp.Symbol("y0", real=True) ** 2)
    t = sp.Symbol("x", positive=True)
    reports = []
    for name in rule_names:
        found = rules.REGISTRY[name](eta).delta(problem)
        rows = []  # per branch: (limit above, limit below, step, ratio above)
        for delta in found if isinstance(found, tuple) else (found,):
            step = cheap_simplify(delta[0])
            above = cheap_simplify(sp.Abs(step.subs(x, t)) / t)
            below = cheap_simplify(sp.Abs(step.subs(x, -t)) / t)
            rows.append((sp.limit(above, t, 0, "+"), sp.limit(below, t, 0, "+"), step, above))
        # the local inverse takes the branch nearest x, on each side of x* on its own
        lim_above, _, step, above = min(rows, key=lambda r: float(r[0]))
        lim_below = min((r[1] for r in rows), key=float)
        reports.append(NearOptimumReport(name, power, eta, step, above, lim_above, lim_below))
    return tuple(reports)
