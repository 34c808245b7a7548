"""Verdicts and the procedure behind them: prove an identity, refute it, or say "undecided".

:func:`decide_equal` compares two updates (SymPy matrices, or tuples of them for a rule with several
branches). It first tries to *prove* them equal by simplifying their difference under a work limit
(counted steps, the same on every machine); failing that it *searches* random points for a clear
difference, evaluated with 30 significant digits, and reports the worst point found as a
:class:`Counterexample`. With neither, the verdict is ``UNDECIDED``. The points come from a seeded
generator and are drawn before anything is simplified, and the search has no work limit, so a
refutation is the same on every run; the budget can only leave a proof unfound (``UNDECIDED``),
never turn a proof into a refutation or back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import sympy as sp
from sympy.polys.polyerrors import PolynomialError

from scaleinv.analysis.hyperbolic_identity import is_hyperbolic_identity
from scaleinv.errors import BudgetExceeded
from scaleinv.symbolic.budget import steps_spent, with_budget

__all__ = ["Verdict", "Step", "Counterexample", "Decision", "decide_equal", "sample_values"]

_DIGITS = 30
_CLEAR = 1e-9  # a relative difference above this, at 30 digits, is no round-off
_MAX_OPS = 300  # sympy.simplify beyond this size is slow and rarely decisive


class Verdict(StrEnum):
    """The outcome of a check: ``proved``, ``refuted`` (with a counterexample) or ``undecided``."""

    PROVED = "proved"
    REFUTED = "refuted"
    UNDECIDED = "undecided"


class Step(NamedTuple):
    """One line of a derivation: what it is (``label``) and the SymPy object (or text)."""

    label: str
    expr: Any


@dataclass(frozen=True)
class Counterexample:
    """A point where two updates differ, with both updates evaluated in floats.

    Attributes
    ----------
    point : mapping of str to float
        Values of the variables the updates are written in.
    params : mapping of str to float
        Values of every other symbol (params, scales, a symbolic ``eta``).
    lhs, rhs : tuple of float
        The two updates at that point (for branch sets: the ``lhs`` branch and the nearest
        ``rhs`` branch).
    """

    point: Mapping[str, float]
    params: Mapping[str, float]
    lhs: tuple[float, ...]
    rhs: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "point", MappingProxyType(dict(self.point)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as plain dicts (a report built in a worker process carries its verdicts)."""
        return (Counterexample, (dict(self.point), dict(self.params), self.lhs, self.rhs))

    @property
    def difference(self) -> float:
        """``max |lhs − rhs|``."""
        return float(np.max(np.abs(np.subtract(self.lhs, self.rhs))))

    def values(self) -> dict[str, float]:
        """``point`` and ``params`` in one dict (by symbol name)."""
        return {**self.point, **self.params}


@dataclass(frozen=True)
class Decision:
    """What :func:`decide_equal` found: the verdict, the simplified difference, a counterexample."""

    verdict: Verdict
    difference: tuple[sp.Expr, ...]
    counterexample: Counterexample | None
    note: str


def sample_values(
    symbols: Sequence[sp.Symbol],
    rng: np.random.Generator,
    domains: Mapping[sp.Symbol, tuple[float, float]] | None = None,
) -> dict[sp.Symbol, float]:
    """Random values: ``domains[s]`` if given, log-uniform in [1/4, 4] for positive symbols,
    else uniform in [-2, 2].

    Examples
    --------
    >>> a, x = sp.Symbol("a", positive=True), sp.Symbol("x", real=True)
    >>> v = sample_values([a, x], np.random.default_rng(0))
    >>> 0.25 <= v[a] <= 4 and -2 <= v[x] <= 2
    True
    """
    domains = domains or {}
    out = {}
    for s in symbols:
        if s in domains:
            out[s] = float(rng.uniform(*domains[s]))
        elif s.is_positive:
            out[s] = float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))
        else:
            out[s] = float(rng.uniform(-2.0, 2.0))
    return out


def decide_equal(
    lhs: sp.Matrix | Sequence[sp.Matrix],
    rhs: sp.Matrix | Sequence[sp.Matrix],
    variables: Sequence[sp.Symbol],
    *,
    budget: float = 2_000_000,
    rng: np.random.Generator | int | None = None,
    domains: Mapping[sp.Symbol, tuple[float, float]] | None = None,
    samples: int = 24,
    first: Sequence[Mapping[sp.Symbol, float]] = (),
) -> Decision:
    """Decide whether ``lhs == rhs`` identically (as branch sets when given tuples).

    Parameters
    ----------
    lhs, rhs : Matrix or sequence of Matrix
        Two column vectors, or two sets of branches (equal as sets: every branch of one
        side has an identical branch on the other).
    variables : sequence of Symbol
        The variables (reported as the counterexample's ``point``); every other free symbol
        is a parameter.
    budget : float
        Work limit of simplification (proving), in counted steps (see
        :mod:`scaleinv.symbolic.budget`), so a verdict is the same on every machine. It never
        changes a refutation: the search evaluates a fixed number of points drawn up front.
    rng : Generator or int, optional
        Random source of the search (default: seed 0, so a verdict is the same on every run).
    domains : mapping of Symbol to (low, high), optional
        Sampling intervals overriding the defaults of :func:`sample_values`.
    first : sequence of mappings of Symbol to float
        Points searched before the random ones (a user's start, say); symbols they leave
        out are sampled.

    Examples
    --------
    >>> x, s = sp.Symbol("x", real=True), sp.Symbol("s", positive=True)
    >>> decide_equal(sp.Matrix([sp.sqrt(s**2 * x**2)]), sp.Matrix([s * abs(x)]), [x]).verdict
    <Verdict.PROVED: 'proved'>
    >>> d = decide_equal(sp.Matrix([s**2 * x]), sp.Matrix([x]), [x], rng=0)
    >>> d.verdict, d.difference
    (<Verdict.REFUTED: 'refuted'>, (x*(s**2 - 1),))
    """
    start = steps_spent()
    rng = np.random.default_rng(0 if rng is None else rng)
    left = (lhs,) if isinstance(lhs, sp.MatrixBase) else tuple(lhs)
    right = (rhs,) if isinstance(rhs, sp.MatrixBase) else tuple(rhs)
    free = set().union(*(e.free_symbols for m in left + right for e in m))
    variables = list(variables)
    others = sorted(free - set(variables), key=str)
    # Every point is drawn before any simplification: the search is the same on every run.
    points = [sample_values(variables + others, rng, domains) for _ in range(samples)]
    points[:0] = [{**sample_values(variables + others, rng, domains), **p} for p in first]
    quick = min(6, samples) + len(first)

    def search(chosen: list[dict[sp.Symbol, float]]) -> Counterexample | None:
        return _search(left, right, variables, others, chosen)

    found = search(points[:quick])  # cheap: spares simplifying a nonzero difference
    if found is None:
        difference, proved = _match(left, right, start + 0.8 * budget)
        if proved:
            return Decision(Verdict.PROVED, difference, None, "the difference simplifies to 0")
        found = search(points[quick:])
    else:
        difference = _shown(left, right, start + budget)
    if found is not None:
        return Decision(Verdict.REFUTED, difference, found, "a counterexample differs clearly")
    why = "the difference did not simplify to 0" if difference else "simplification ran out"
    note = f"{why}, and no counterexample at {samples} random points"
    return Decision(Verdict.UNDECIDED, difference, None, note)


def _budgeted(fn: Any, deadline: float) -> Any:
    remaining = deadline - steps_spent()
    if remaining <= 0:
        return None
    try:
        return with_budget(fn, remaining, "simplify")
    except BudgetExceeded:
        return None


def _trig_zero(expr: sp.Expr) -> bool:
    """Whether a polynomial identity in ``sin``/``cos`` holds, reducing by ``cos² + sin² = 1``."""
    expr = sp.expand_trig(expr.rewrite(sp.cos, sp.sin) if expr.has(sp.tan) else expr)
    angles = sorted({f.args[0] for f in expr.atoms(sp.sin, sp.cos)}, key=str)
    table, relations, gens = {}, [], []
    for a in angles:
        c, s = sp.Dummy("c"), sp.Dummy("s")
        table.update({sp.cos(a): c, sp.sin(a): s})
        relations.append(c**2 + s**2 - 1)
        gens += [c, s]
    plain = expr.xreplace(table)
    if not gens or plain.has(sp.sin, sp.cos, sp.tan):
        return False
    numerator = sp.expand(sp.fraction(sp.cancel(sp.together(plain)))[0])
    if numerator == 0:
        return True
    try:
        _, remainder = sp.reduced(numerator, relations, *gens)
    except PolynomialError:  # e.g. a root of a trig expression: not a polynomial identity
        return False
    return sp.expand(remainder) == 0


def _zero(expr: sp.Expr, deadline: float) -> bool:
    """Try, cheapest first, to show that ``expr`` is identically 0."""
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    if expr.has(sp.sin, sp.cos, sp.tan) and _budgeted(lambda: _trig_zero(expr), deadline):
        return True
    hyperbolic = expr.has(sp.cosh, sp.sinh, sp.tanh)
    if hyperbolic and _budgeted(lambda: is_hyperbolic_identity(expr), deadline):
        return True
    if _budgeted(lambda: sp.cancel(sp.together(expr)), deadline) == 0:
        return True
    if sp.count_ops(expr) > _MAX_OPS:
        return False
    simple = _budgeted(lambda: sp.simplify(expr), deadline)
    if simple is None or simple == 0:
        return simple == 0
    # |b**e| = |b|**e for real e (principal powers): real odd roots of inverses need it
    plain = simple.replace(
        lambda t: isinstance(t, sp.Abs) and t.args[0].is_Pow and t.args[0].exp.is_real,
        lambda t: sp.Abs(t.args[0].base) ** t.args[0].exp,
    )
    if plain != simple:
        simple = _budgeted(lambda: sp.simplify(plain), deadline)
    if isinstance(simple, sp.Piecewise):
        return all(_piece_zero(e, c, deadline) for e, c in simple.args)
    return simple == 0


def _piece_zero(expr: sp.Expr, cond: sp.Basic, deadline: float) -> bool:
    """Whether a piece vanishes where it applies: identically, or as a multiple of ``l − r``
    under a condition ``Eq(l, r)``."""
    if _zero(expr, deadline):
        return True
    if not isinstance(cond, sp.Eq):
        return False

    def divides() -> bool:
        numerator = sp.fraction(sp.cancel(sp.together(expr)))[0]
        gens = sorted(numerator.free_symbols | cond.free_symbols, key=str)
        _, remainder = sp.reduced(numerator, [cond.lhs - cond.rhs], *gens)
        return sp.expand(remainder) == 0

    try:
        return bool(_budgeted(divides, deadline))
    except PolynomialError:
        return False


def _tidy(expr: sp.Expr, deadline: float) -> sp.Expr:
    """``expr`` simplified for display if that is cheap, else as it is."""
    if sp.count_ops(expr) > _MAX_OPS:
        return expr
    tidy = _budgeted(
        lambda: sp.factor_terms(sp.simplify(expr)), min(deadline, steps_spent() + 400_000)
    )
    return expr if tidy is None else tidy


def _shown(left: tuple, right: tuple, deadline: float) -> tuple[sp.Expr, ...]:
    """The (tidied) difference of single updates; nothing for branch sets."""
    if len(left) != 1 or len(right) != 1:
        return ()
    return tuple(_tidy(e, deadline) for e in left[0] - right[0])


def _match(
    left: tuple[sp.Matrix, ...], right: tuple[sp.Matrix, ...], deadline: float
) -> tuple[tuple[sp.Expr, ...], bool]:
    """Whether the two branch sets are equal: each branch has an identical one on the other side.

    Branches may repeat (two x-branches can give the same change of an intermediate space).
    """
    same: dict[tuple[int, int], bool] = {}

    def equal(i: int, j: int) -> bool:
        if (i, j) not in same:
            same[i, j] = all(_zero(e, deadline) for e in left[i] - right[j])
        return same[i, j]

    matched: set[int] = set()
    for i in range(len(left)):
        hit = next(
            (j for j in sorted(range(len(right)), key=matched.__contains__) if equal(i, j)), None
        )
        if hit is None:
            return _shown(left, right, deadline), False
        matched.add(hit)
    for j in set(range(len(right))) - matched:
        if not any(equal(i, j) for i in range(len(left))):
            return _shown(left, right, deadline), False
    return tuple(sp.Integer(0) for _ in left[0]), True


def _evaluate(matrix: sp.Matrix, values: dict[sp.Symbol, sp.Float]) -> np.ndarray | None:
    """The entries of ``matrix`` at ``values`` as floats, or ``None`` if any is not real."""
    out = []
    for e in matrix:
        v = sp.N(e.xreplace(values), _DIGITS)
        if not v.is_number or v.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            return None
        re, im = v.as_real_imag()
        if abs(im) > 1e-20 * (1 + abs(re)):
            return None
        out.append(float(re))
    return np.array(out)


def _search(
    left: tuple[sp.Matrix, ...],
    right: tuple[sp.Matrix, ...],
    variables: list[sp.Symbol],
    others: list[sp.Symbol],
    points: list[dict[sp.Symbol, float]],
) -> Counterexample | None:
    """The point with the largest clear relative difference, or ``None`` (no time limit: the
    same points give the same answer on every run)."""
    best, best_gap = None, _CLEAR
    for values in points:
        exact = {s: sp.Float(v, _DIGITS) for s, v in values.items()}
        ls = [v for v in (_evaluate(m, exact) for m in left) if v is not None]
        rs = [v for v in (_evaluate(m, exact) for m in right) if v is not None]
        if not ls or not rs:
            continue
        pairs = [(a, _nearest(a, rs)) for a in ls] + [(_nearest(b, ls), b) for b in rs]
        for a, b in pairs:
            scale = max(1.0, float(np.max(np.abs(a))), float(np.max(np.abs(b))))
            gap = float(np.max(np.abs(a - b))) / scale
            if gap > best_gap:
                point = MappingProxyType({str(s): values[s] for s in variables})
                params = MappingProxyType({str(s): values[s] for s in others})
                best, best_gap = Counterexample(point, params, tuple(a), tuple(b)), gap
        if best_gap > 1e-3:
            break
    return best


def _nearest(a: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    return min(candidates, key=lambda c: float(np.max(np.abs(a - c))))
