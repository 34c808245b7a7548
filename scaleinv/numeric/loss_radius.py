"""A box in which the loss certainly cannot diverge, so the loop need not evaluate it every step.

:func:`scaleinv.minimize` stops a sample as diverged when its point is not finite or its loss
``|L(P(x))|`` reaches :data:`~scaleinv.numeric.runtime.DIVERGED_LOSS` (1e150). Evaluating the
loss every step only for that check costs as much as the step of a small problem. Where
interval arithmetic over the box ``max_i |x_i| <= R`` bounds the loss by :data:`BOUND` (1e100),
every point of the box passes the check, and the loop (:func:`~scaleinv.numeric.runtime.iterate`)
skips the loss for steps whose new points all lie in it: the statuses and recorded values stay
those of the check every step. The margin of 1e50 between the bound and the threshold covers
the rounding of the floating-point evaluation, whatever form the kernel computes.

Only expressions whose every node is defined and finite on the whole real line are bounded:
sums, products, powers with non-negative integer exponents, and ``sin``, ``cos``, ``exp``,
``sinh``, ``cosh``, ``tanh``, ``atan``, ``Abs`` (no division, roots or logarithms: a box
around a pole or outside a domain has no bound); otherwise there is no radius and the loss is
evaluated every step, as before. The walk visits each distinct node once per radius tried
(at most :data:`MAX_NODES` nodes, 9 radii): bounded work, the same on every machine.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping

import sympy as sp

from scaleinv.symbolic import Problem

__all__ = ["loss_radius", "loss_enclosure", "BOUND", "MAX_NODES"]

#: The bound on ``|L(P(x))|`` the box must certify (the divergence threshold is 1e150).
BOUND = 1e100
#: Larger loss expressions (distinct nodes) get no radius: the loss is checked every step.
MAX_NODES = 20_000
#: Radii tried: 10**k for integer k in [0, 100], by bisection on k (at most 9 walks).
_LOW, _HIGH = 0, 100

Interval = tuple[float, float]

_RADII: weakref.WeakKeyDictionary[Problem, float | None] = weakref.WeakKeyDictionary()


_WHOLE = (-math.inf, math.inf)


def _checked(lo: float, hi: float) -> Interval:
    """``(lo, hi)``, or the whole line where ``inf - inf`` or ``0 * inf`` made a NaN."""
    return _WHOLE if math.isnan(lo) or math.isnan(hi) else (lo, hi)


def _mul(a: Interval, b: Interval) -> Interval:
    products = [x * y for x in a for y in b]
    return _checked(min(products), max(products)) if not any(map(math.isnan, products)) else _WHOLE


def _power(v: float, k: int) -> float:
    try:
        return abs(v) ** k
    except OverflowError:
        return math.inf


def _pow(a: Interval, k: int) -> Interval:
    lo, hi = a
    ends = (_power(lo, k), _power(hi, k))
    if k % 2 == 1:
        return (-ends[0] if lo < 0 else ends[0]), (-ends[1] if hi < 0 else ends[1])
    return (0.0 if lo <= 0 <= hi else min(ends)), max(ends)


def _safe_exp(v: float) -> float:
    return math.exp(v) if v < 709 else math.inf


_MONOTONE: Mapping[type, Callable[[float], float]] = {
    sp.exp: _safe_exp,
    sp.sinh: lambda v: math.sinh(v) if abs(v) < 709 else math.copysign(math.inf, v),
    sp.tanh: math.tanh,
    sp.atan: math.atan,
}


def loss_enclosure(expr: sp.Expr, inputs: Mapping[sp.Symbol, Interval]) -> Interval | None:
    """An interval containing ``expr`` for every input in its interval, or None where a node
    is not one this module bounds (see the module docstring) or there are too many nodes.

    Examples
    --------
    >>> x, y = sp.symbols("x y")
    >>> loss_enclosure((x - 2) ** 2 / 2 + sp.sin(y), {x: (-1.0, 1.0), y: (-1.0, 1.0)})
    (-0.5, 5.5)
    >>> loss_enclosure(1 / x, {x: (-1.0, 1.0)}) is None
    True
    """
    memo: dict[sp.Basic, Interval] = {}

    def walk(e: sp.Basic) -> Interval:
        if e in memo:
            return memo[e]
        if len(memo) >= MAX_NODES:
            raise _Unbounded
        if e in inputs:
            out = inputs[e]
        elif e.is_number and e.is_real and e.is_finite:  # 3, 1/2, 0.3, pi
            v = float(e)
            out = (v, v)
        elif e.is_Add:
            parts = [walk(a) for a in e.args]
            out = _checked(sum(p[0] for p in parts), sum(p[1] for p in parts))
        elif e.is_Mul:
            out = (1.0, 1.0)
            for a in e.args:
                out = _mul(out, walk(a))
        elif e.is_Pow and e.exp.is_Integer and e.exp >= 0:
            out = _pow(walk(e.base), int(e.exp))
        elif isinstance(e, (sp.sin, sp.cos)):
            walk(e.args[0])
            out = (-1.0, 1.0)
        elif type(e) in _MONOTONE:
            f, (lo, hi) = _MONOTONE[type(e)], walk(e.args[0])
            out = (f(lo), f(hi))
        elif isinstance(e, sp.cosh):
            lo, hi = _pow(walk(e.args[0]), 2)  # cosh is even and grows with |v|
            out = (1.0, math.cosh(math.sqrt(hi)) if hi < 709**2 else math.inf)
        elif isinstance(e, sp.Abs):
            lo, hi = walk(e.args[0])
            out = (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
        else:
            raise _Unbounded
        memo[e] = out
        return out

    try:
        return walk(expr)
    except _Unbounded:
        return None


class _Unbounded(Exception):
    """A node :func:`loss_enclosure` does not bound."""


def loss_radius(problem: Problem) -> float | None:
    """The largest ``R = 10**k`` (k in 0..100) such that ``|L(P(x))| <= BOUND`` for every ``x``
    with ``max_i |x_i| <= R`` (params at their values), or None where none is certified.
    ``L`` is bounded at the enclosures of the outputs ``P_k``, as the loss kernel evaluates
    it. Computed once per problem.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], target=[2.0, 3.0])
    >>> loss_radius(p)  # |L| <= R**4 (about): R = 1e25
    1e+25
    >>> loss_radius(Problem.from_strings(["x0"], ["1/x0"])) is None
    True
    """
    if problem not in _RADII:
        _RADII[problem] = _radius(problem)
    return _RADII[problem]


def _radius(problem: Problem) -> float | None:
    params = {s: (float(v), float(v)) for s, v in problem.params.items()}

    def fits(k: int) -> bool | None:
        # as the kernel computes it: L at the enclosures of the outputs (L(P(x)) written out
        # may be simpler than that, e.g. sqrt(x0)**2 = x0, which is NaN below 0 numerically)
        box = {x: (-(10.0**k), 10.0**k) for x in problem.inputs}
        outputs = [loss_enclosure(p, {**box, **params}) for p in problem.outputs]
        if any(y is None for y in outputs):
            return None
        at = dict(zip(problem.output_symbols, outputs))
        found = loss_enclosure(problem.loss, {**at, **params})
        if found is None:
            return None
        return max(abs(found[0]), abs(found[1])) <= BOUND

    first = fits(_LOW)
    if not first:  # None: not bounded anywhere; False: not even the unit box
        return None
    low, high = _LOW, _HIGH  # fits(low); high: bisect below it
    if fits(high):
        return 10.0**high
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return 10.0**low
