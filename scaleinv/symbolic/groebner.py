"""A reduced lex Gröbner basis under a deterministic work limit (Buchberger's algorithm).

``sympy.groebner`` cannot be stopped except by a clock, and a clock makes the outcome depend
on the load of the machine. :func:`reduced_basis` runs Buchberger's algorithm with the
Gebauer–Möller criteria (Becker & Weispfenning, *Gröbner Bases*, 1993, p. 232) on SymPy's
sparse polynomials and counts its work: every cancellation of a leading term is one
*reduction step*, no coefficient may grow past a number of terms, and no step may multiply
out coefficients whose sizes multiply past a limit (checked before the step). Past any limit
it raises :class:`WorkLimit`, on every machine at the same step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Work", "WorkLimit", "coefficient_terms", "reduced_basis"]


class WorkLimit(Exception):
    """The elimination needed more work than its limit; the message says which limit."""


@dataclass
class Work:
    """The work counter of one elimination.

    Attributes
    ----------
    steps : int
        Reduction steps (leading-term cancellations) taken so far.
    max_steps : int
        Past this many steps :class:`WorkLimit` is raised.
    max_terms : int
        The largest coefficient allowed: terms of its numerator and denominator together
        (coefficients are rational functions of the params and outputs).
    max_product : int
        The largest product of coefficient sizes one step may multiply out (the dividend's
        coefficient, the divisor's leading one, its largest one): checked before the step,
        since a single step with large coefficients can cost minutes of GCDs.
    """

    max_steps: int = 4000
    max_terms: int = 200
    max_product: int = 2000
    steps: int = 0

    def guard(self, coeff: Any, divisor: Any) -> None:
        """Raise before dividing ``coeff`` by ``divisor``'s leading coefficient and
        multiplying ``divisor`` by the quotient (``coeff = 1``: making ``divisor`` monic),
        when the sizes involved are too large."""
        size = coefficient_terms(coeff) * coefficient_terms(divisor.LC)
        size *= max(coefficient_terms(c) for c in divisor.values())
        if size > self.max_product:
            raise WorkLimit(
                f"a reduction step would multiply out coefficients of {size} terms "
                f"(limit {self.max_product})"
            )

    def step(self, poly: Any) -> None:
        """Count one reduction step that produced ``poly``; raise past a limit."""
        self.steps += 1
        if self.steps > self.max_steps:
            raise WorkLimit(f"the Gröbner basis needed more than {self.max_steps} reduction steps")
        self.check(poly)

    def check(self, poly: Any) -> None:
        """Raise if a coefficient of ``poly`` has more than ``max_terms`` terms."""
        for coeff in poly.values():
            if coefficient_terms(coeff) > self.max_terms:
                raise WorkLimit(
                    f"a coefficient of the Gröbner basis grew past {self.max_terms} terms"
                )


def coefficient_terms(coeff: Any) -> int:
    """Terms of a coefficient: of its numerator and denominator for a rational function."""
    if not hasattr(coeff, "numer"):
        return 1
    return len(coeff.numer) + len(coeff.denom)


def reduced_basis(polys: list[Any], work: Work) -> list[Any]:
    """The reduced Gröbner basis of ``polys`` (one SymPy ring over a field, its order).

    Monic, sorted by leading monomial, largest first: for a zero-dimensional ideal in lex
    order the last elements involve only the last variables.

    Examples
    --------
    >>> from sympy import QQ
    >>> from sympy.polys.rings import ring
    >>> from sympy.polys.orderings import lex
    >>> R, x, y = ring("x, y", QQ, lex)
    >>> work = Work()
    >>> reduced_basis([x**2 + y**2 - 1, x - y], work)
    [x - y, y**2 - 1/2]
    >>> work.steps > 0
    True
    """
    basis = _interreduced([p for p in polys if p], work)
    if not basis:
        return []
    ring = basis[0].ring
    order = ring.order
    pairs: set[tuple[int, int]] = set()
    current: set[int] = set()
    for index in sorted(range(len(basis)), key=lambda i: order(basis[i].LM)):
        current, pairs = _update(basis, current, pairs, index)
    while pairs:
        pair = min(pairs, key=lambda ij: (order(_lcm(basis, *ij)), ij))
        pairs.remove(pair)
        divisors = sorted(current, key=lambda i: order(basis[i].LM))
        h = _reduce(_spoly(basis[pair[0]], basis[pair[1]]), [basis[i] for i in divisors], work)
        if h:
            work.guard(1, h)
            basis.append(h.monic())
            current, pairs = _update(basis, current, pairs, len(basis) - 1)
    result = []
    for i in current:
        h = _reduce(basis[i], [basis[j] for j in current if j != i], work)
        if h:
            work.guard(1, h)
            result.append(h.monic())
    return sorted(result, key=lambda p: order(p.LM), reverse=True)


def _interreduced(polys: list[Any], work: Work) -> list[Any]:
    """Reduce each input by the ones before it until nothing changes ([BW] p. 203)."""
    for p in polys:
        work.check(p)
    while True:
        reduced = []
        for i, p in enumerate(polys):
            r = _reduce(p, polys[:i], work)
            if r:
                work.guard(1, r)
                reduced.append(r.monic())
        if reduced == polys:
            return reduced
        polys = reduced


def _reduce(p: Any, divisors: list[Any], work: Work) -> Any:
    """The full remainder of ``p`` by ``divisors``, each cancellation counted."""
    ring = p.ring
    quo = ring.domain.quo
    p, remainder = p.copy(), ring.zero.copy()
    while p:
        monom, coeff = p.LM, p.LC
        for g in divisors:
            quotient = ring.monomial_div(monom, g.LM)
            if quotient is not None:
                work.guard(coeff, g)
                p = p - g.mul_term((quotient, quo(coeff, g.LC)))
                work.step(p)
                break
        else:
            remainder[monom] = coeff
            del p[monom]
    return remainder


def _spoly(p: Any, q: Any) -> Any:
    ring = p.ring
    lcm = ring.monomial_lcm(p.LM, q.LM)
    return p.mul_monom(ring.monomial_div(lcm, p.LM)) - q.mul_monom(ring.monomial_div(lcm, q.LM))


def _lcm(basis: list[Any], i: int, j: int) -> Any:
    return basis[0].ring.monomial_lcm(basis[i].LM, basis[j].LM)


def _update(
    basis: list[Any], current: set[int], pairs: set[tuple[int, int]], new: int
) -> tuple[set[int], set[tuple[int, int]]]:
    """Add ``basis[new]`` to ``current``, keeping only the pairs the criteria cannot skip."""
    ring = basis[0].ring
    mul, div, lcm = ring.monomial_mul, ring.monomial_div, ring.monomial_lcm
    mh = basis[new].LM

    def coprime(i: int) -> bool:  # the product criterion: such a pair reduces to zero
        return mul(mh, basis[i].LM) == lcm(mh, basis[i].LM)

    # new pairs (new, g): drop those whose lcm another pair's lcm divides (the chain criterion)
    candidates = sorted(current)
    kept: list[int] = []
    for k, g in enumerate(candidates):
        lcm_g = lcm(mh, basis[g].LM)
        others = candidates[k + 1 :] + kept
        if coprime(g) or not any(div(lcm_g, lcm(mh, basis[o].LM)) for o in others):
            kept.append(g)
    fresh = {(new, g) for g in kept if not coprime(g)}
    # old pairs (a, b): drop those the new leading monomial makes redundant
    old = set()
    for a, b in pairs:
        lcm_ab = lcm(basis[a].LM, basis[b].LM)
        if (
            div(lcm_ab, mh) is None
            or lcm(basis[a].LM, mh) == lcm_ab
            or lcm(basis[b].LM, mh) == lcm_ab
        ):
            old.add((a, b))
    survivors = {g for g in current if div(basis[g].LM, mh) is None}
    return survivors | {new}, old | fresh
