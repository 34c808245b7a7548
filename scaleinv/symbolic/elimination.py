"""Closed-form branches of ``P(x) = y`` by elimination, where ``sympy.solve`` does not get there.

:func:`eliminate` writes ``P(x) = y`` as polynomial equations (the cos and sin of each angle
as unknowns on the unit circle, :mod:`~scaleinv.symbolic.polynomial_system`), computes their
lex Gröbner basis under a counted work limit (:mod:`~scaleinv.symbolic.groebner`), solves the
triangular basis from its last variable up (degree one: a quotient; degree two: both roots)
and maps each angle back: ``±acos(c)`` where ``sin`` is ``±√(1 − c²)``, ``atan2(s, c)``
otherwise (a hyperbolic angle: ``±acosh(c)``, ``asinh(s)`` or ``2 atanh(s/(1 + c))``).
Every root is kept, so the branches are complete for generic ``y`` (the caller checks them
against probes); each repeats with the periods of its angles.

All work is counted (reduction steps, coefficient and formula sizes), never timed: the same
problem gives the same branches, or the same reason for none, on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sympy as sp
from sympy.polys.orderings import lex
from sympy.polys.rings import ring

from scaleinv.symbolic.groebner import Work, WorkLimit, coefficient_terms, reduced_basis
from scaleinv.symbolic.polynomial_system import (
    Angle,
    NotPolynomial,
    PolynomialSystem,
    polynomial_system,
)

if TYPE_CHECKING:
    from scaleinv.symbolic.problem import Problem

__all__ = ["Elimination", "NoElimination", "eliminate"]

#: Largest formula (``sympy.count_ops``) the back substitution may build.
MAX_OPS = 1500
#: Largest number of branches (combinations of roots) followed.
MAX_BRANCHES = 64


class NoElimination(Exception):
    """No closed form by elimination; the message says why in plain words."""


@dataclass(frozen=True)
class Elimination:
    """Closed-form solutions of ``P(x) = y`` found by elimination.

    Attributes
    ----------
    solutions : tuple of tuple of Expr
        Each a value of every input in the output symbols and params (complex ones included:
        the caller keeps the real branches).
    period : tuple of (Expr or None)
        Per input, the period of its solutions when it shifts alone.
    joint : tuple of tuple of Expr
        Shifts of all inputs together that map solutions to solutions.
    steps : int
        Reduction steps the Gröbner basis took.
    """

    solutions: tuple[tuple[sp.Expr, ...], ...]
    period: tuple[sp.Expr | None, ...]
    joint: tuple[tuple[sp.Expr, ...], ...]
    steps: int


def eliminate(problem: Problem, work: Work | None = None) -> Elimination:
    """Solve ``P(x) = y`` by a lex Gröbner basis; raises :class:`NoElimination` saying why not.

    Several variable orders are tried (all within one work limit); the smallest closed form
    wins.

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> arm = Problem.from_strings(["q0", "q1"], ["cos(q0) + cos(q0 + q1)",
    ...                                           "sin(q0) + sin(q0 + q1)"])
    >>> found = eliminate(arm)
    >>> [q1 for q0, q1 in found.solutions]
    [-acos(y0**2/2 + y1**2/2 - 1), acos(y0**2/2 + y1**2/2 - 1)]
    >>> found.period
    (2*pi, 2*pi)
    """
    work = work or Work()
    try:
        system = polynomial_system(problem)
    except NotPolynomial as exc:
        raise NoElimination(f"P(x) = y is not a polynomial system: {exc}") from None
    bases, failures = [], []
    for order in _orders(system):
        try:
            bases.append((order, _basis(system, order, work)))
        except WorkLimit as exc:
            failures.append(f"the elimination exceeded its work limit: {exc}")
            break
    for order, basis in sorted(bases, key=lambda ob: _rank(system, *ob)):
        try:
            solutions = _back_substitute(system, order, [p.as_expr() for p in basis])
        except WorkLimit as exc:
            failures.append(f"the elimination exceeded its work limit: {exc}")
        except NoElimination as exc:
            failures.append(str(exc))
        else:
            return Elimination(tuple(solutions), system.period, system.joint, work.steps)
    raise NoElimination(failures[0])


def _orders(system: PolynomialSystem) -> list[list[sp.Symbol]]:
    """Lex orders to try, largest variable first. The other inputs come last (solved first);
    the angles in the given order or reversed, and for each its sine before its cosine
    (``sin = ±√(1 − cos²)`` maps back to ``±acos``) or the other way round."""
    circle = {s for a in system.angles for s in (a.cos, a.sin)}
    plain = [u for u in system.unknowns if u not in circle]
    orders = []
    for angles in (system.angles, system.angles[::-1]):
        for cos_last in (True, False):
            pairs = [(a.sin, a.cos) if cos_last else (a.cos, a.sin) for a in angles]
            order = [u for pair in pairs for u in pair] + plain
            if order not in orders:
                orders.append(order)
    return orders


def _basis(system: PolynomialSystem, order: list[sp.Symbol], work: Work) -> list[Any]:
    """The reduced lex basis (SymPy ring elements) of the equations in ``order``."""
    names = _coefficient_symbols(system)
    field = sp.QQ.frac_field(*names) if names else sp.QQ
    R = ring(order, field, lex)[0]
    return reduced_basis([R(e) for e in system.equations], work)


def _coefficient_symbols(system: PolynomialSystem) -> list[sp.Symbol]:
    found = set().union(*(e.free_symbols for e in system.equations)) - set(system.unknowns)
    return sorted(found, key=sp.default_sort_key)


def _rank(system: PolynomialSystem, order: list[sp.Symbol], basis: list[Any]) -> tuple:
    """Bases solvable by square roots first (no element of degree above 2 in its main
    variable), then those with fewer quadratics in a cos or sin that its partner is then
    computed from (a sign and a division that make the partner singular where the root is
    0), then the smaller ones (terms of all coefficients)."""
    main = [next((i, d) for i, d in enumerate(p.degrees()) if d) for p in basis]
    steep = any(d > 2 for _, d in main)
    loose = 0
    for i, d in main:
        angle = _angle_of(order[i], system)
        if d == 2 and angle is not None:
            j = order.index(_partner(order[i], angle))
            loose += any(k == j and q.degree(i) > 0 for (k, _), q in zip(main, basis))
    return steep, loose, sum(coefficient_terms(c) for p in basis for c in p.values())


def _back_substitute(system: PolynomialSystem, order: list[sp.Symbol], basis: list) -> list:
    """Every solution of the triangular ``basis``, as values of the inputs."""
    if basis == [1]:
        raise NoElimination("P(x) = y has no solution for generic y (the basis is {1})")
    roots = _Roots(system, _coefficient_symbols(system))
    by_main: dict[sp.Symbol, list[sp.Expr]] = {v: [] for v in order}
    for p in basis:
        by_main[next(v for v in order if p.has(v))].append(p)
    loose = [str(v) for v in order if not by_main[v]]
    if loose:
        raise NoElimination(
            f"the solutions of P(x) = y form a continuum (nothing fixes {', '.join(loose)})"
        )
    partial: list[tuple[dict, dict]] = [({}, {})]
    for v in reversed(order):
        grown = []
        for values, sign in partial:
            for root, on_circle in roots.of(v, by_main[v], values):
                grown.append(({**values, v: root}, {**sign, v: on_circle}))
        if len(grown) > MAX_BRANCHES:
            raise WorkLimit(f"more than {MAX_BRANCHES} branches")
        partial = grown
    return [
        tuple(
            roots.expanded(e).xreplace(system.knowns)
            for e in _inputs(system, values, sign, roots.compact)
        )
        for values, sign in partial
    ]


class _Roots:
    """The roots of the triangular basis, one variable at a time. Square roots are kept as
    symbols while solving (the formulas stay small) and expanded at the end; zero tests
    evaluate at a generic point (pseudo-random rationals for the params and outputs)."""

    def __init__(self, system: PolynomialSystem, names: list[sp.Symbol]) -> None:
        self.system = system
        self.definitions: dict[sp.Symbol, sp.Expr] = {}
        rng = random.Random(20240516)
        symbols = set(names).union(*(e.free_symbols for e in system.knowns.values()))
        ordered = sorted(symbols, key=sp.default_sort_key)
        point = {s: sp.Rational(rng.randint(300, 1700), 1000) for s in ordered}
        for k, e in system.knowns.items():  # what a known stands for there: cos(y2) at y2
            point[k] = e.xreplace(point)
        self.point = {s: sp.N(v, 60) for s, v in point.items()}

    def is_zero(self, expr: sp.Expr) -> bool:
        """Whether ``expr`` vanishes identically: exactly, or to 40 digits at the point."""
        if expr == 0:
            return True
        value = sp.N(expr.xreplace(self.point), 50)
        return bool(abs(value) < sp.Float(10) ** -40)

    def root(self, radicand: sp.Expr) -> sp.Symbol:
        """A symbol for ``sqrt(radicand)``."""
        symbol = sp.Dummy(f"r{len(self.definitions)}", nonnegative=True)  # as sqrt
        self.definitions[symbol] = sp.sqrt(radicand)
        self.point[symbol] = sp.N(sp.sqrt(radicand.xreplace(self.point)), 60)
        return symbol

    def compact(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with each root's radicand written as the root squared, cancelled:
        ``y0 r/(y0² − y1²)`` is ``y0/r`` where ``r = √(y0² − y1²)``."""
        squares = {d.base: r**2 for r, d in self.definitions.items() if d.is_Pow}
        return _checked(sp.cancel(expr.subs(squares))) if squares else expr

    def expanded(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every root symbol replaced by its square root."""
        for symbol in reversed(list(self.definitions)):
            expr = expr.xreplace({symbol: self.definitions[symbol]})
        return expr

    def of(self, v: sp.Symbol, polys: list[sp.Expr], values: dict) -> list[tuple[sp.Expr, int]]:
        """The roots in ``v`` of the lowest-degree basis element that does not degenerate at
        ``values``, each with ``±1`` where it is ``±√(1 − other²)`` of a circle pair, else 0."""
        candidates = []
        for p in polys:
            coeffs = [c.xreplace(values) for c in sp.Poly(p, v).all_coeffs()]
            while coeffs and self.is_zero(coeffs[0]):
                coeffs = coeffs[1:]
            if len(coeffs) > 1:
                candidates.append(coeffs)
        if not candidates:
            raise NoElimination(f"the solutions form a continuum on some branch ({v} is free)")
        coeffs = min(candidates, key=len)
        if len(coeffs) == 2:
            return [(_checked(sp.cancel(-coeffs[1] / coeffs[0])), 0)]
        if len(coeffs) != 3:
            raise NoElimination(f"eliminating leaves an equation of degree {len(coeffs) - 1}")
        a, b, c = coeffs
        angle = _angle_of(v, self.system)
        if self.is_zero(b):
            partner = None if angle is None else _partner(v, angle)
            square = None
            if angle is not None and partner in values:
                square = angle.square(v, values[partner])
            if square is not None and self.is_zero(c / a + square):
                r = self.root(square)
                return [(-r, -1), (r, 1)]
            r = self.root(_checked(sp.cancel(-c / a)))
            return [(-r, 0), (r, 0)]
        r = self.root(_checked(sp.cancel(b**2 - 4 * a * c)))
        return [(_checked((-b - r) / (2 * a)), 0), (_checked((-b + r) / (2 * a)), 0)]


def _angle_of(v: sp.Symbol, system: PolynomialSystem) -> Angle | None:
    """The angle whose cos or sin unknown ``v`` is (None for other unknowns)."""
    return next((a for a in system.angles if v in (a.cos, a.sin)), None)


def _partner(v: sp.Symbol, angle: Angle) -> sp.Symbol:
    return angle.sin if v == angle.cos else angle.cos


def _checked(expr: sp.Expr) -> sp.Expr:
    if sp.count_ops(expr) > MAX_OPS:
        raise WorkLimit(f"a closed form grew past {MAX_OPS} operations")
    return expr


def _inputs(
    system: PolynomialSystem, values: dict, sign: dict, compact: Callable[[sp.Expr], sp.Expr]
) -> tuple[sp.Expr, ...]:
    """The inputs at one solution of the unknowns (``compact`` tidies a hyperbolic angle's
    ``cosh`` and ``sinh`` before they are combined)."""
    circle = {s for a in system.angles for s in (a.cos, a.sin)}
    at = {u: values[u] for u in system.unknowns if u not in circle}
    for a in system.angles:
        c, s = values[a.cos], values[a.sin]
        if a.hyperbolic:
            t = _rapidity(compact(c), compact(s), sign[a.sin], sign[a.cos])
        elif sign[a.sin]:
            t = sign[a.sin] * sp.acos(c)
        elif sign[a.cos]:
            t = sp.asin(s) if sign[a.cos] > 0 else sp.pi - sp.asin(s)
        else:
            t = _atan2(s, c)
        at[a.input] = t / a.unit
    at.update({p: v.xreplace(at) for p, v in system.pivots.items()})
    return tuple(at[x] for x in system.inputs)


def _rapidity(c: sp.Expr, s: sp.Expr, s_sign: int, c_sign: int) -> sp.Expr:
    """``t`` with ``cosh t = c`` and ``sinh t = s``, by a formula that is real exactly where
    ``(c, s)`` is on the hyperbola's branch ``c ≥ 1`` (a real formula is a real solution):
    ``±acosh(c)`` where ``s = ±√(c² − 1)``; ``asinh(s)`` where ``c = √(1 + s²)`` (where
    ``c = −√(1 + s²)`` the complex ``iπ − asinh(s)``); else the half-angle
    ``2 atanh(s/(1 + c))``, whose argument is in ``(−1, 1)`` only for ``c > 0`` (``atanh(s/c)``
    is also real for ``c < 0``, where ``t`` is not, and loses digits where ``|t|`` is large)."""
    if s_sign:
        return s_sign * sp.acosh(c)
    if c_sign:
        return sp.asinh(s) if c_sign > 0 else sp.I * sp.pi - sp.asinh(s)
    return 2 * sp.atanh(sp.cancel(s / (1 + c)))


def _atan2(s: sp.Expr, c: sp.Expr) -> sp.Expr:
    """``atan2(s, c)`` without the factors common to ``s`` and ``c`` that are positive."""
    s_num, s_den = sp.fraction(sp.together(s))
    c_num, c_den = sp.fraction(sp.together(c))
    if not _positive(s_den * c_den):
        return sp.atan2(s, c)
    s, c = sp.factor_terms(s_num * c_den), sp.factor_terms(c_num * s_den)
    s_coeff, s_rest = s.as_coeff_Mul()
    c_coeff, c_rest = c.as_coeff_Mul()
    common = set(sp.Mul.make_args(s_rest)) & set(sp.Mul.make_args(c_rest))
    drop = sp.Mul(*(f for f in common if _positive(f)))
    scale = drop * abs(sp.gcd(s_coeff, c_coeff) if s_coeff and c_coeff else 1)
    return sp.atan2(sp.factor_terms(s / scale), sp.factor_terms(c / scale))


def _positive(expr: sp.Expr) -> bool:
    """Known ``>= 0`` (where it is 0 the branch formula is singular anyway)."""
    return bool(expr.is_nonnegative)
