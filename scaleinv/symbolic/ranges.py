"""Enclosures of the range of ``P``: certificates that ``P(x) = y`` has no real solution.

For every output ``P_k`` an interval ``[lo_k, hi_k]`` that contains ``P_k(x)`` for every real
``x`` (interval arithmetic with SymPy's ``AccumBounds``: ``x**2 ∈ [0, ∞)``, ``exp ∈ [0, ∞)``,
``sin ∈ [-1, 1]``, ...). A target with ``y_k`` outside it has no real solution — that is
what lets the numeric local inverse say ``no_inverse`` rather than ``not_found``. The
enclosure may be loose (``[-∞, ∞]`` when nothing is known), never too tight; the numeric
layer also checks it against samples of ``P`` before trusting it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from scaleinv.errors import BudgetExceeded
from scaleinv.symbolic.budget import with_budget

if TYPE_CHECKING:
    from scaleinv.symbolic.problem import Problem

__all__ = ["output_bounds"]


def output_bounds(problem: Problem, budget: int = 400_000) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
    """Per output, ``(lo, hi)`` with ``lo <= P_k(x) <= hi`` for every real ``x``.

    Bounds may depend on the problem's params; ``(-oo, oo)`` where nothing is known or the
    work limit (``budget`` counted steps for all outputs together, see
    :mod:`scaleinv.symbolic.budget`) runs out.

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> p = Problem.from_strings(["x0", "x1"], ["x0**2 + exp(x1)", "2*sin(x0) - 1", "x0*x1"])
    >>> output_bounds(p)
    ((0, oo), (-3, 1), (-oo, oo))
    """
    unknown = (-sp.oo, sp.oo)
    whole = sp.AccumBounds(-sp.oo, sp.oo)
    at = {x: whole for x in problem.inputs}
    try:
        found = with_budget(
            lambda: [_bounds(p.xreplace(at)) for p in problem.outputs], budget, "output bounds"
        )
    except BudgetExceeded:
        return (unknown,) * problem.m
    return tuple(b if b is not None else unknown for b in found)


def _bounds(enclosure: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    value = sp.sympify(enclosure)
    if isinstance(value, sp.AccumBounds):
        lo, hi = value.min, value.max
    elif value.is_extended_real and not value.has(sp.AccumBounds):
        lo = hi = value  # P_k does not depend on x
    else:
        return None
    if lo.has(sp.AccumBounds, sp.nan, sp.zoo) or hi.has(sp.AccumBounds, sp.nan, sp.zoo):
        return None
    return lo, hi
