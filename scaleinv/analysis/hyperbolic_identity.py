"""Identities in ``cosh``/``sinh`` of inputs, of ``atanh`` of formulas, and square roots.

A hyperbolic local inverse writes a rapidity as the half-angle ``t = 2 atanh(a)`` (see
:mod:`scaleinv.symbolic.elimination`); composing ``P`` with it gives ``cosh(2 atanh(a))``,
``a`` holding square roots of expressions in ``cosh(w)`` and ``sinh(w)``. ``sympy.simplify``
does not see such a difference vanish. :func:`is_hyperbolic_identity` decides it as a
polynomial identity: ``cosh(k atanh a)`` and ``sinh(k atanh a)`` (even ``k``) are rational in
``a`` (``exp(2 atanh a) = (1 + a)/(1 − a)``); every ``cosh(w)``, ``sinh(w)`` becomes a pair
``c, s`` with ``c² − s² = 1``, every square root ``√b`` a symbol ``q`` with ``q² = b``, and
the numerator must reduce to 0 modulo these relations. A zero remainder proves the identity
for either sign of each root (where the denominators do not vanish); a nonzero one decides
nothing.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.polys.orderings import lex
from sympy.polys.polyerrors import CoercionFailed, PolynomialError
from sympy.polys.rings import ring

__all__ = ["is_hyperbolic_identity"]

_HYPERBOLIC = (sp.cosh, sp.sinh, sp.tanh)


def is_hyperbolic_identity(expr: sp.Expr) -> bool:
    """Whether ``expr`` vanishes identically by the reductions above (False: not shown).

    Examples
    --------
    >>> y0, y1 = sp.symbols("y0 y1", positive=True)
    >>> r = sp.sqrt(y0**2 - y1**2)
    >>> t = 2 * sp.atanh(y1 / (y0 + r))
    >>> is_hyperbolic_identity(r * sp.cosh(t) - y0), is_hyperbolic_identity(r * sp.sinh(t) - y0)
    (True, False)
    """
    expr = _without_atanh(sp.sympify(expr).rewrite(sp.cosh, sp.sinh) if expr.has(sp.tanh) else expr)
    expr = sp.expand_trig(expr)
    gens: list[sp.Dummy] = []
    relations: list[sp.Expr] = []
    table: dict[sp.Expr, sp.Dummy] = {}
    for arg in sorted({f.args[0] for f in expr.atoms(*_HYPERBOLIC)}, key=sp.default_sort_key):
        c, s = sp.Dummy("c"), sp.Dummy("s")
        table.update({sp.cosh(arg): c, sp.sinh(arg): s})
        relations.append(c**2 - s**2 - 1)
        gens += [s, c]
    plain = expr.xreplace(table)
    if plain.has(*_HYPERBOLIC, sp.atanh, sp.exp):
        return False
    roots: list[sp.Dummy] = []
    while True:  # innermost square roots first: their symbols appear in the outer radicands
        inner = next((p.base for p in _square_roots(plain) if not _square_roots(p.base)), None)
        if inner is None:
            break
        q = sp.Dummy("q")
        numer, denom = sp.fraction(sp.together(inner))
        relations.append(sp.expand(q**2 * denom - numer))
        roots.insert(0, q)
        plain = plain.replace(
            lambda p, b=inner: isinstance(p, sp.Pow) and p.base == b and p.exp.q == 2,
            lambda p, q=q: q**p.exp.p,
        )
    others = sorted(plain.free_symbols - {*roots, *gens}, key=sp.default_sort_key)
    R = ring([*roots, *gens, *others], sp.QQ, lex)[0]
    try:
        numerator = _fraction(plain, R)[0]
        remainder = numerator.rem([R(sp.expand(r)) for r in relations])
    except (PolynomialError, ValueError, CoercionFailed):  # not rational in the generators
        return False
    return remainder == 0


def _fraction(expr: sp.Expr, R: Any) -> tuple[Any, Any]:
    """``expr`` as numerator and denominator in the polynomial ring ``R`` (no cancelling)."""
    if isinstance(expr, sp.Add):
        num, den = R(0), R(1)
        for term in expr.args:
            n, d = _fraction(term, R)
            num, den = num * d + n * den, den * d
        return num, den
    if isinstance(expr, sp.Mul):
        num, den = R(1), R(1)
        for factor in expr.args:
            n, d = _fraction(factor, R)
            num, den = num * n, den * d
        return num, den
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer:
        n, d = _fraction(expr.base, R)
        k = int(expr.exp)
        return (n**k, d**k) if k >= 0 else (d**-k, n**-k)
    return R(expr), R(1)  # a number or a generator; anything else cannot be coerced


def _without_atanh(expr: sp.Expr) -> sp.Expr:
    """``cosh``/``sinh`` of ``k atanh(a)`` (``k`` even) as rational functions of ``a``, by the
    double-angle formulas in ``tanh((k/2) atanh a)``."""

    def even_atanh(f: sp.Expr) -> bool:
        if not isinstance(f, (sp.cosh, sp.sinh)):
            return False
        k, rest = f.args[0].as_coeff_Mul()
        return isinstance(rest, sp.atanh) and k.is_Integer and k % 2 == 0

    def rational(f: sp.Expr) -> sp.Expr:
        k, rest = f.args[0].as_coeff_Mul()
        a, half = rest.args[0], int(k) // 2
        power = ((1 + a) / (1 - a)) ** half  # exp(k atanh a)^(1/2)
        tanh = a if half == 1 else (power - 1) / (power + 1)  # tanh of (k/2) atanh a
        return (1 + tanh**2 if isinstance(f, sp.cosh) else 2 * tanh) / (1 - tanh**2)

    return expr.replace(even_atanh, rational)


def _square_roots(expr: sp.Expr) -> list[sp.Pow]:
    return sorted(
        (p for p in expr.atoms(sp.Pow) if p.exp.is_Rational and p.exp.q == 2),
        key=sp.default_sort_key,
    )
