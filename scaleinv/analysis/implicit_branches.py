r"""PG identities decided on the defining equations of a branch, not on its radical formula.

A branch of ``P⁻¹`` is the solution ``x̃`` of ``P(x̃) = y + Δy``. Its closed form may be a
Cardano root that no simplifier tames (``y = x³ + x``), or not exist (``y = x⁵ + x``). The
identities PG is built on hold *on the equations*: a polynomial that vanishes wherever they
hold is in the ideal they generate, which a Gröbner basis decides exactly:

.. math:: y(\tilde x) - y(x) - \Delta y
   \in \big\langle z(y(\tilde x)) - (z_0 + \Delta z) \big\rangle.

:func:`implicit_y_step` proves PG's exact step of an intermediate space ``y`` through an inner
map ``y(x)`` this way (outer maps ``z = M y + b`` with ``M`` invertible, polynomial inner maps),
and checks the first-order step ``J Δx`` against the same ``Δy`` at a sample point, with ``x̃``
the real root of the defining polynomial nearest ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.analysis.verdict import Counterexample, Step, Verdict
from scaleinv.symbolic import Problem

__all__ = ["ImplicitReport", "implicit_y_step"]

_ETA_VALUE = sp.Rational(1, 2)


@dataclass(frozen=True)
class ImplicitReport:
    """PG's change of ``y`` against the direct ``Δy``, decided on the defining equations.

    Attributes
    ----------
    exact : Verdict
        ``y(x̃) − y(x) = Δy`` on every solution ``x̃`` of the defining system.
    first_order : Verdict
        ``J Δx = Δy`` (refuted at a sample point unless it holds there).
    derivation : tuple of Step
    counterexample : Counterexample or None
        Of ``first_order``: the point, ``J Δx`` (``lhs``) and ``Δy`` (``rhs``).
    note : str
    """

    exact: Verdict
    first_order: Verdict
    derivation: tuple[Step, ...]
    counterexample: Counterexample | None
    note: str


def _linear_outer(outer: Problem) -> tuple[sp.Matrix, sp.Matrix] | None:
    """``(M, b)`` with ``z = M y + b``, ``M`` invertible, or ``None``."""
    try:
        m, b = sp.linear_eq_to_matrix(list(outer.outputs), list(outer.inputs))
    except (sp.PolynomialError, ValueError, NotImplementedError):
        return None
    if m.rows != m.cols or sp.simplify(m.det()) == 0:
        return None
    return m, -b


def implicit_y_step(
    inner: Problem, outer: Problem, chain: Problem, eta: Any
) -> ImplicitReport | None:
    r"""PG's exact y-step through ``y(x)``, proved by ideal membership; ``None`` if not applicable.

    ``chain`` is ``L(z(y(x)))`` (:func:`~scaleinv.analysis.composition.compose`).

    .. math:: y(\tilde x) - \hat y = M^{-1}\big(z(y(\tilde x)) - z_{new}\big) \equiv 0

    Examples
    --------
    >>> inner = Problem.from_strings(["x"], ["x**5 + x"])
    >>> outer = Problem.from_strings(["y"], ["y"], target=[2])
    >>> from scaleinv.analysis.composition import compose
    >>> eta = sp.Symbol("eta", positive=True)
    >>> r = implicit_y_step(inner, outer, compose(inner, outer), eta)
    >>> r.exact, r.first_order, r.derivation[-1].expr
    (<Verdict.PROVED: 'proved'>, <Verdict.REFUTED: 'refuted'>, [0])
    """
    linear = _linear_outer(outer)
    xs = inner.inputs
    if linear is None or not all(e.is_polynomial(*xs) for e in inner.outputs):
        return None
    matrix, offset = linear
    new = tuple(sp.Dummy(f"{x.name}_new", real=True) for x in xs)  # apart from any user name
    to_new = dict(zip(xs, new))
    dz = eta * chain.newton_dy.subs(chain.at_P)
    z_new = chain.P + dz
    y_new = inner.P.xreplace(to_new)
    defining = [sp.numer(sp.together(e)) for e in (matrix * y_new + offset - z_new)]
    y_hat = matrix.LUsolve(z_new - offset)
    direct = y_hat - inner.P
    target = [sp.numer(sp.together(e)) for e in (y_new - inner.P - direct)]
    basis = sp.groebner(defining, *new, order="lex")
    remainders = [sp.expand(basis.reduce(t)[1]) for t in target]
    exact = Verdict.PROVED if all(r == 0 for r in remainders) else Verdict.UNDECIDED
    first, example = _first_order(inner, defining, new, direct, eta)
    steps = (
        Step("the chain's branches x~ solve (defining polynomials)", defining),
        Step("Gröbner basis of the defining ideal", list(basis.exprs)),
        Step("direct Δy of the outer problem (ŷ − y(x))", direct),
        Step("y(x~) − y(x) − Δy, as polynomials", target),
        Step("remainder modulo the ideal", remainders),
    )
    note = (
        "implicit: y(x~) − y(x) − Δy reduces to 0 modulo the defining equations of x~"
        if exact is Verdict.PROVED
        else "implicit: the remainder modulo the defining equations is not 0"
    )
    return ImplicitReport(exact, first, steps, example, note)


def _first_order(
    inner: Problem, defining: list, new: tuple, direct: sp.Matrix, eta: Any
) -> tuple[Verdict, Counterexample | None]:
    """``J Δx`` against ``Δy``: exact for affine ``y(x)`` (``J Δx = y(x~) − y(x)``), else at
    ``x = 7/10`` with the real root nearest ``x`` (1-D)."""
    if not any(e.free_symbols & set(inner.inputs) for e in inner.jacobian):
        return Verdict.PROVED, None
    if inner.n != 1 or len(defining) != 1:
        return Verdict.UNDECIDED, None
    x = inner.inputs[0]
    at: dict[sp.Symbol, Any] = {x: sp.Rational(7, 10), **inner.params}
    if isinstance(eta, sp.Symbol):
        at[eta] = _ETA_VALUE
    poly = sp.Poly(defining[0].xreplace(at), new[0])
    roots = [r.real for r in np.roots([float(c) for c in poly.all_coeffs()]) if abs(r.imag) < 1e-9]
    if not roots:
        return Verdict.UNDECIDED, None
    x0 = float(at[x])
    x_new = min(roots, key=lambda r: abs(r - x0))
    induced = float(inner.jacobian[0, 0].xreplace(at)) * (x_new - x0)
    dy = float(direct[0].xreplace(at))
    if abs(induced - dy) <= 1e-9 * (1 + abs(dy)):
        return Verdict.UNDECIDED, None
    params = {str(k): float(v) for k, v in at.items() if k != x}
    point = MappingProxyType({str(x): x0})
    return Verdict.REFUTED, Counterexample(point, MappingProxyType(params), (induced,), (dy,))
