"""The symbolic update ``Δx`` of each rule of the chapter, as a function of the problem.

Each function takes a :class:`~scaleinv.symbolic.Problem` and a step size ``eta`` (a number or
a SymPy symbol) and returns SymPy matrices in the input symbols — nothing numeric happens here.
The compiled counterparts live in :mod:`scaleinv.numeric.rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TypeVar

import sympy as sp

from scaleinv.errors import BudgetExceeded, NumericOnlyError, ProblemError
from scaleinv.symbolic.budget import cheap_simplify, with_budget
from scaleinv.symbolic.problem import Problem

__all__ = ["y_step", "gd_delta", "newton_delta", "ig_delta", "pg_deltas", "exact_eta"]
__all__ += ["SOLVE_BUDGET"]

T = TypeVar("T")

#: Work limit (counted steps, :mod:`scaleinv.symbolic.budget`) of the symbolic linear solve
#: of Newton's and IG's update; past it the rule's step is left to its compiled kernel.
SOLVE_BUDGET = 2_000_000


def _bounded(rule: str, solve: Callable[[], T]) -> T:
    """``solve()`` within :data:`SOLVE_BUDGET`; past it, :class:`NumericOnlyError`."""
    try:
        return with_budget(solve, SOLVE_BUDGET, f"the symbolic {rule} step")
    except BudgetExceeded as err:
        raise NumericOnlyError(rule.lower(), f"{err}; its kernel solves numerically") from None


def exact_eta(eta: sp.Expr | float) -> sp.Expr:
    """``eta`` as an exact SymPy number when a float is a short fraction (0.3 -> 3/10).

    Examples
    --------
    >>> exact_eta(0.3), exact_eta(1 / 3), exact_eta(sp.Symbol("eta"))
    (3/10, 1/3, eta)
    """
    if isinstance(eta, float):
        frac = Fraction(eta).limit_denominator(10**6)
        if float(frac) == eta:
            return sp.Rational(frac.numerator, frac.denominator)
    return sp.sympify(eta)


def y_step(problem: Problem, eta: sp.Expr | float) -> sp.Matrix:
    r"""The step in y-space that IG and PG take, at ``y = P(x)``.

    .. math:: \Delta y = -\eta \, (\partial^2 L/\partial y^2)^{-1} \, \partial L/\partial y

    Examples
    --------
    >>> p = Problem.from_strings(["x"], ["x**2"], target=[4])
    >>> y_step(p, sp.Rational(1, 2)).T
    Matrix([[2 - x**2/2]])
    """
    return cheap_simplify(exact_eta(eta) * problem.newton_dy.subs(problem.at_P))


def gd_delta(problem: Problem, eta: sp.Expr | float) -> sp.Matrix:
    r"""Gradient descent (eq. 21).

    .. math:: \Delta x_{GD} = -\eta \, \partial L/\partial x

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], params={"alpha": 10})
    >>> gd_delta(p, sp.Symbol("eta")).T
    Matrix([[-eta*x0, -alpha**2*eta*x1]])
    """
    return cheap_simplify(-exact_eta(eta) * problem.gradient)


def newton_delta(problem: Problem, eta: sp.Expr | float) -> sp.Matrix:
    r"""Newton's method (eq. 22); raises :class:`ProblemError` when the Hessian is singular.

    .. math:: \Delta x_{QN} = -\eta \, (\partial^2 L/\partial x^2)^{-1} \, \partial L/\partial x

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], params={"alpha": 10})
    >>> newton_delta(p, sp.Symbol("eta")).T
    Matrix([[-eta*x0, -eta*x1]])
    """
    hessian, gradient = problem.hessian, problem.gradient  # derived here, kept by the problem

    def solve() -> sp.Matrix:
        if hessian.det() == 0:
            raise ProblemError(f"the Hessian of L(P(x)) is singular everywhere: {hessian.tolist()}")
        return cheap_simplify(-exact_eta(eta) * hessian.LUsolve(gradient))

    return _bounded("Newton", solve)


def ig_delta(problem: Problem, eta: sp.Expr | float) -> sp.Matrix:
    r"""Inverse gradients (eq. 23); the pseudo-inverse (Gauss–Newton) when ``J`` is not square.

    .. math:: \Delta x_{IG} = (\partial y/\partial x)^{-1} \, \Delta y

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], params={"alpha": 10})
    >>> ig_delta(p, sp.Symbol("eta")).T
    Matrix([[-eta*x0, -eta*x1]])
    """
    jac, dy = problem.jacobian, y_step(problem, eta)

    def solve() -> sp.Matrix:
        if jac.rows != jac.cols:
            return cheap_simplify(jac.pinv() * dy)
        if jac.det() == 0:
            raise ProblemError(f"the Jacobian of P is singular everywhere: {jac.tolist()}")
        return cheap_simplify(jac.LUsolve(dy))

    return _bounded("IG", solve)


def pg_deltas(problem: Problem, eta: sp.Expr | float) -> tuple[sp.Matrix, ...]:
    r"""Inverse-simulator (physical) gradients (eq. 24), one ``Δx`` per inverse branch.

    .. math:: \Delta x_{PG} = \mathcal P^{-1}(y_0 + \Delta y; x_0) - x_0

    Periodic branches are given for the principal period; the compiled rule shifts them to
    the period nearest the current ``x``.

    Examples
    --------
    >>> p = Problem.from_strings(["x"], ["x**2"], loss="y0**2")
    >>> [d[0] for d in pg_deltas(p, sp.Symbol("eta"))]
    [-x - sqrt(1 - eta)*Abs(x), -x + sqrt(1 - eta)*Abs(x)]
    """
    inverse = problem.local_inverse()
    if inverse.numeric or not inverse.branches:
        raise NumericOnlyError("pg", f"P has no closed-form inverse ({inverse.reason})")
    y_new = problem.P + y_step(problem, eta)
    at_new = dict(zip(problem.output_symbols, y_new))
    x = sp.Matrix(problem.inputs)
    return tuple(
        cheap_simplify(sp.Matrix(branch.solution).subs(at_new) - x) for branch in inverse.branches
    )
