"""Local inverses of ``P``: the closed-form real branches of ``P(x) = y``.

:func:`local_inverse` solves ``P(x) = y`` for ``x`` (linear maps by an exact matrix solve;
trigonometric systems by elimination, :mod:`~scaleinv.symbolic.elimination`, before
``sympy.solve``; other systems the other way round) within a work limit (counted steps, see
:mod:`scaleinv.symbolic.budget`) and keeps the real
branches, each with the condition on ``y`` under which its formula is real and the period of
every input along which the whole family repeats (or joint periods, for inputs that only
repeat together). The local inverse ``P⁻¹(y; x₀)`` of the chapter is then the valid solution
nearest to ``x₀``; evaluating it is the numeric layer's job (:func:`scaleinv.numeric.invert`).
When no usable closed form exists the result says so (``numeric=True``) and the evaluator solves
``P(x) = y`` numerically, warm-started at ``x₀``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import sympy as sp
from sympy.calculus.util import lcim, periodicity
from sympy.solvers.solveset import NonlinearError

from scaleinv.errors import BudgetExceeded
from scaleinv.symbolic.budget import MAX_EXPANDED_POWER, huge_power, steps_spent, with_budget
from scaleinv.symbolic.elimination import NoElimination, eliminate
from scaleinv.symbolic.polynomial_system import has_angles

if TYPE_CHECKING:
    from scaleinv.symbolic.problem import Problem

__all__ = ["Branch", "LocalInverse", "local_inverse", "input_periods", "INVERSE_BUDGET"]

T = TypeVar("T")

#: Work limit of a local inverse (counted steps, :mod:`scaleinv.symbolic.budget`): an arm with
#: a lateral offset needs about 5,000,000; a problem with no closed form spends at most this
#: (about 10 s) before the numeric inverse takes over.
INVERSE_BUDGET = 6_000_000

#: Functions a closed form may use: each has a real NumPy counterpart in the kernel printer.
_KERNEL_FUNCTIONS = (
    *(sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.asin, sp.acos, sp.atan, sp.atan2),
    *(sp.sinh, sp.cosh, sp.tanh, sp.asinh, sp.acosh, sp.atanh, sp.Abs, sp.sign),
)
#: Probe inputs for the completeness check (exact, so ``P(x*)`` is evaluated precisely).
_PROBES = tuple(sp.Rational(p, 20) for p in (6, -14, 26, -38, 11, -134, 17, 82, -8))
#: Inverses of periodic functions: their 2 pi k families are lost unless x_j has a period.
_INVERSE_PERIODIC = (sp.asin, sp.acos, sp.atan, sp.acot, sp.asec, sp.acsc, sp.atan2)


@dataclass(frozen=True)
class Branch:
    """One closed-form real solution family of ``P(x) = y``.

    Attributes
    ----------
    solution : tuple of Expr
        ``x`` (one expression per input) in the output symbols ``y0..`` and the params.
    condition : Boolean
        Where the formula is real (arguments of even roots ≥ 0, of logs > 0, of ``asin`` and
        ``acos`` in ``[-1, 1]``, denominators ≠ 0) and, when a cheap check can tell, where it
        actually solves ``P(x) = y``. The numeric evaluator checks the residual regardless.
    period : tuple of (Expr or None)
        ``T_j`` such that ``x_j + k T_j`` (integer ``k``) solves ``P(x) = y`` as well;
        ``None`` where ``P`` is not periodic in ``x_j``.
    joint_period : tuple of tuple of Expr
        Shifts ``v`` of all inputs (numbers) such that ``x + k v`` solves ``P(x) = y`` as
        well, where inputs only repeat together (an arm's end orientation ``q0 + q1 + q2``:
        ``(2π, 0, −2π)``); on inputs other than those with a ``period``.
    """

    solution: tuple[sp.Expr, ...]
    condition: sp.Basic
    period: tuple[sp.Expr | None, ...]
    joint_period: tuple[tuple[sp.Expr, ...], ...] = ()


@dataclass(frozen=True, eq=False)
class LocalInverse:
    """The branches of ``P(x) = y`` and the nearest-branch local inverse ``P⁻¹(y; x₀)``.

    Attributes
    ----------
    problem : Problem
        Whose ``P`` is inverted.
    branches : tuple of Branch
        The real closed-form branches (empty when ``numeric``).
    numeric : bool
        True when no complete closed form was found (or the work limit ran out): then
        :meth:`inv` solves ``P(x) = y`` numerically, warm-started at ``x0``.
    reason : str
        How the branches were found, or why there are none.
    """

    problem: Problem
    branches: tuple[Branch, ...]
    numeric: bool
    reason: str

    def compile(self, *, numeric: bool = False) -> Any:
        """The batched evaluator (:class:`scaleinv.numeric.inverse.InverseEvaluator`), cached;
        ``numeric=True`` solves numerically even where a closed form exists.

        A convenience for :func:`scaleinv.numeric.compile_inverse` (the entry the package's
        own code uses), imported here, inside the method, so that the symbolic layer imports
        nothing above it (``tests/test_layers.py`` allows this one import).
        """
        from scaleinv.numeric.inverse import compile_inverse

        return compile_inverse(self, numeric=numeric)

    def inv(self, y: Any, x0: Any, *, fallback: str = "raise") -> np.ndarray:
        """``P⁻¹(y; x0)``: the solution of ``P(x) = y`` nearest to ``x0``, batched.

        ``y`` has shape ``(..., m)`` and ``x0`` ``(..., n)``; leading axes broadcast. Where
        no real solution exists: ``fallback="raise"`` raises
        :class:`~scaleinv.errors.NoInverseError`, ``"keep"`` returns ``x0``, ``"ig"`` the
        inverse-gradient step ``x0 + J(x0)⁺ (y − P(x0))``.

        A convenience for :func:`scaleinv.numeric.invert` (imported here, inside the method,
        like :meth:`compile`).
        """
        from scaleinv.numeric.inverse import invert

        return invert(self, y, x0, fallback=fallback)


class _Clock:
    """One overall work limit (counted steps) for a derivation, run as a sequence of budgets."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.deadline = steps_spent() + steps

    def _expired(self) -> BudgetExceeded:
        return BudgetExceeded("the local inverse (sympy.solve and checks)", self.steps)

    def run(self, fn: Callable[[], T], what: str, cap: int | None = None) -> T:
        """``fn()`` within ``cap`` steps and the steps left; over the cap raises ``_CapHit``."""
        left = self.deadline - steps_spent()
        if left <= 0:
            raise self._expired()
        try:
            result = with_budget(fn, left if cap is None else min(cap, left), what)
        except BudgetExceeded:
            raise (self._expired() if self.deadline <= steps_spent() else _CapHit()) from None
        return result

    def attempt(self, fn: Callable[[], T], what: str, cap: int) -> T | None:
        """Like :meth:`run`, but None when the step gives up or runs over its cap."""
        try:
            return self.run(fn, what, cap)
        except BudgetExceeded:
            raise
        except Exception:  # _CapHit, or SymPy giving up (NotImplementedError, ...)
            return None

    def tidy(self, expr: T, cap: int = 200_000) -> T:
        """``sympy.simplify`` of a small expression within ``cap`` steps, else ``expr``."""
        if not isinstance(expr, sp.Basic) or sp.count_ops(expr) > 150:
            return expr
        try:
            return self.run(lambda: sp.simplify(expr), "simplify", cap)
        except _CapHit:
            return expr


class _CapHit(Exception):
    """A capped step ran out of its own cap (the overall budget is not yet spent)."""


def local_inverse(problem: Problem, budget: int = INVERSE_BUDGET) -> LocalInverse:
    """Closed-form real branches of ``P(x) = y``, or a flagged numeric local inverse.

    Parameters
    ----------
    problem : Problem
        The problem whose ``P`` to invert.
    budget : int
        Work limit of the whole derivation (solve, simplifications, checks) in counted steps
        (Python calls; some 20 s of counted work on the CI machine, see
        :mod:`scaleinv.symbolic.budget`).
        Past it the result is numeric with the reason; the verdict is the same on every
        machine under any load.

    Returns
    -------
    LocalInverse

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> inverse = local_inverse(Problem.from_strings("x", "x**2"))
    >>> [(b.solution, b.condition) for b in inverse.branches]
    [((-sqrt(y0),), y0 >= 0), ((sqrt(y0),), y0 >= 0)]
    >>> inverse.inv([9.0], [-2.0])
    array([-3.])
    >>> local_inverse(Problem.from_strings("x", "x + sin(x)")).numeric
    True
    """
    blowup = huge_power(list(problem.outputs))
    if blowup is not None:  # expanding it loops over huge integers, unseen by the step count
        why = f"P has {blowup}, a power of a sum beyond {MAX_EXPANDED_POWER}: too large to solve"
        return LocalInverse(problem, (), True, f"{why}; solving numerically")
    try:
        # One worker process for the whole derivation; the clock's steps count inside it.
        branches, reason = with_budget(
            lambda: _derive(problem, _Clock(budget)), budget, "the local inverse"
        )
    except BudgetExceeded as exc:
        return LocalInverse(problem, (), True, f"{exc}; solving numerically instead")
    except Exception as exc:  # a SymPy failure outside solve: the numeric inverse still works
        detail = f": {exc}" if str(exc) else ""
        reason = (
            f"no closed form found (SymPy failed while deriving it{detail}); solving numerically"
        )
        return LocalInverse(problem, (), True, reason)
    return LocalInverse(problem, branches, not branches, reason)


def input_periods(problem: Problem, budget: int = 1_000_000) -> tuple[sp.Expr | None, ...]:
    """Per input ``x_j``, a period ``T_j`` of ``P`` (``P(x + T_j e_j) = P(x)``), or None.

    The same periods as :attr:`Branch.period`, found from ``P`` alone (so also when the
    inverse is numeric); None where ``P`` is not periodic in ``x_j`` or SymPy cannot tell
    within ``budget`` counted steps.

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> input_periods(Problem.from_strings(["a", "r"], ["r*cos(a)", "r*sin(a)"]))
    (2*pi, None)
    """
    try:
        return with_budget(lambda: _periods(problem, _Clock(budget)), budget, "periods")
    except BudgetExceeded:
        return (None,) * problem.n


def _derive(problem: Problem, clock: _Clock) -> tuple[tuple[Branch, ...], str]:
    ys, xs = problem.output_symbols, list(problem.inputs)
    eqs = [p - y for p, y in zip(problem.outputs, ys)]
    try:
        A, b = clock.run(lambda: sp.linear_eq_to_matrix(eqs, xs), "linear_eq_to_matrix")
    except NonlinearError:
        return _nonlinear(problem, eqs, clock)
    if A.rows != A.cols:
        return (), f"P is linear but {A.rows}x{A.cols}: no unique inverse; solving numerically"
    det = clock.tidy(A.det())
    if det == 0:
        return (), "P is linear with a singular matrix (det = 0); solving numerically"
    solution = tuple(clock.tidy(e) for e in clock.run(lambda: A.LUsolve(b), "LUsolve"))
    branch = Branch(solution, _reality(solution, clock, [sp.Ne(det, 0)]), (None,) * len(xs))
    return (branch,), "P is linear: exact matrix solve x = A^-1 (y - b), valid where det A != 0"


def _nonlinear(problem: Problem, eqs: list, clock: _Clock) -> tuple[tuple[Branch, ...], str]:
    """Elimination first for a system with angles (its atan2/acos/atanh forms are complete
    and cheap), else ``sympy.solve`` first (it inverts one trigonometric equation in one input with
    the least period, ``tan``'s π); the reasons of both when neither finds a closed form."""
    attempts = (_by_elimination, _by_solve)
    if problem.n == 1 or not has_angles(problem):
        attempts = attempts[::-1]
    why = []
    for attempt in attempts:
        found = attempt(problem, eqs, clock)
        if not isinstance(found, str):
            return found
        why.append(found)
    return (), f"no closed form found ({'; '.join(why)}); solving numerically"


def _by_elimination(problem: Problem, eqs: list, clock: _Clock) -> tuple | str:
    try:
        found = clock.run(lambda: eliminate(problem), "elimination")
    except NoElimination as exc:
        return f"elimination: {exc}"
    how = f"elimination (lex Gröbner basis, {found.steps} reduction steps)"
    return _accepted(problem, found.solutions, found.period, found.joint, clock, how)


def _by_solve(problem: Problem, eqs: list, clock: _Clock) -> tuple | str:
    xs = list(problem.inputs)
    try:
        raw = clock.run(lambda: sp.solve(eqs, xs, dict=True), "sympy.solve")
    except BudgetExceeded:
        raise
    except Exception:  # SymPy raises many types for "cannot solve"; a capped step is one more
        return "sympy.solve found none"
    if not raw:
        return "sympy.solve found none"
    allowed = set(problem.output_symbols) | set(problem.params)
    solutions: dict[tuple[sp.Expr, ...], None] = {}
    for sol in raw:
        if set(sol) != set(xs) or any(sol[x].free_symbols - allowed for x in xs):
            return f"sympy.solve: a parametric answer {sol}"
        solutions[tuple(_real_roots(sp.sympify(sol[x])) for x in xs)] = None
    periods = _periods(problem, clock)
    return _accepted(problem, list(solutions), periods, (), clock, "sympy.solve")


def _accepted(
    problem: Problem, found: Any, periods: tuple, joint: tuple, clock: _Clock, how: str
) -> tuple[tuple[Branch, ...], str] | str:
    """The real branches of the closed-form ``found`` solutions, or why they are not usable."""
    xs = list(problem.inputs)
    solutions = []
    for exprs in found:
        foreign = {f.func for e in exprs for f in e.atoms(sp.Function)} - set(_KERNEL_FUNCTIONS)
        if foreign or any(e.has(sp.RootOf, sp.Integral, sp.Subs, sp.Piecewise) for e in exprs):
            what = ", ".join(sorted(map(str, foreign))) or "implicit roots or integrals"
            return f"{how}: the closed form uses {what} (no NumPy kernel)"
        if not any(e.has(sp.I, sp.zoo, sp.nan, sp.oo, -sp.oo) for e in exprs):
            solutions.append(exprs)  # else complex for every real y (odd roots are real now)
    if not solutions:
        return f"{how}: only complex solutions"
    for exprs in solutions:
        for j, (x, expr, period) in enumerate(zip(xs, exprs, periods)):
            shifts = period is not None or any(v[j] != 0 for v in joint)
            if not shifts and expr.has(*_INVERSE_PERIODIC):
                return (
                    f"{how}: {x} = {expr} inverts a periodic function but P is not periodic in "
                    f"{x}, so infinitely many solution families exist"
                )
    missed = _missed_probe(problem, solutions, periods, joint, clock)
    if missed:
        return f"{how}: the closed form misses real solutions ({missed})"
    branches = []
    for exprs in sorted(solutions, key=sp.default_sort_key):
        condition = _reality(exprs, clock, _residual_conditions(problem, exprs, clock))
        if condition is not sp.false:
            branches.append(Branch(exprs, condition, periods, joint))
    reason = f"{how}: {len(branches)} real branch(es)"
    if joint:
        shown = " and ".join(str(tuple(v)) for v in joint)
        reason += f"; {tuple(xs)} repeat jointly by integer multiples of {shown}"
    return tuple(branches), reason


def _real_roots(expr: sp.Expr) -> sp.Expr:
    """Make odd roots real for negative bases: ``b**(p/q)`` -> ``sign(b)**p |b|**(p/q)``."""

    def odd_root(e: Any) -> bool:
        return (
            isinstance(e, sp.Pow)
            and e.exp.is_Rational
            and not e.exp.is_Integer
            and e.exp.q % 2 == 1
            and not e.base.is_nonnegative
        )

    def real(e: sp.Pow) -> sp.Expr:
        root = sp.Abs(e.base) ** e.exp
        return sp.sign(e.base) * root if e.exp.p % 2 else root

    return expr.replace(odd_root, real)


def _reality(exprs: tuple[sp.Expr, ...], clock: _Clock, extra: list[Any]) -> sp.Basic:
    """Where every expression is real: walk for roots, logs, inverse trig and denominators."""
    conds = list(extra)
    for expr in exprs:
        for node in sp.preorder_traversal(expr):
            args = node.args
            if isinstance(node, sp.Pow) and node.exp.is_Rational and node.exp.is_negative:
                conds.append(sp.Ne(node.base, 0))
            if isinstance(node, sp.Pow) and node.exp.is_Rational and node.exp.q % 2 == 0:
                conds.append(node.base > 0 if node.exp.is_negative else node.base >= 0)
            elif isinstance(node, sp.log):
                conds.append(args[0] > 0)
            elif isinstance(node, (sp.asin, sp.acos)):
                conds += [args[0] >= -1, args[0] <= 1]
            elif isinstance(node, sp.acosh):
                conds.append(args[0] >= 1)
            elif isinstance(node, sp.atanh):
                conds += [args[0] > -1, args[0] < 1]
    return clock.tidy(sp.And(*conds))


def _residual_conditions(problem: Problem, exprs: tuple[sp.Expr, ...], clock: _Clock) -> list[Any]:
    """Where ``P(solution) = y`` holds, for residuals small enough to decide in one ``y``."""
    at = dict(zip(problem.inputs, exprs))
    conds = []
    for p, y in zip(problem.outputs, problem.output_symbols):
        residual = p.xreplace(at) - y
        residual = residual if residual == 0 else clock.tidy(residual)
        if residual == 0 or residual.free_symbols != {y} or sp.count_ops(residual) > 12:
            continue
        where = clock.attempt(partial(sp.solveset, residual, y, sp.S.Reals), "solveset", 200_000)
        if isinstance(where, sp.Set) and not isinstance(where, sp.ConditionSet):
            conds.append(where.as_relational(y))
    return conds


def _periods(problem: Problem, clock: _Clock) -> tuple[sp.Expr | None, ...]:
    """Per input, a common period of every output that depends on it (or None)."""
    result: list[sp.Expr | None] = []
    for x in problem.inputs:
        found = [
            clock.attempt(partial(periodicity, p, x), "periodicity", 400_000)
            for p in problem.outputs
            if p.has(x)
        ]
        period = None
        if found and all(t is not None for t in found):
            distinct = list(dict.fromkeys(found))
            period = distinct[0] if len(distinct) == 1 else lcim(distinct)
        result.append(None if period is None else clock.tidy(period))
    return tuple(result)


def _missed_probe(
    problem: Problem,
    solutions: list[tuple[sp.Expr, ...]],
    periods: tuple,
    joint: tuple,
    clock: _Clock,
) -> str | None:
    """A real ``x*`` that no branch (with its period shifts) recovers from ``P(x*)``, if any.

    Guards against closed forms that are complete only over the complex numbers (the three
    real roots of a cubic written with ``I``) or that SymPy returned incompletely.
    """
    params = {s: sp.Float(v, 30) for s, v in problem.params.items()}
    values = [None if t is None else _number(t, params, clock) for t in periods]
    lattice = [[float(sp.N(v)) for v in vector] for vector in joint]
    for k in range(6):
        x_star = [_PROBES[(k + 2 * j) % len(_PROBES)] for j in range(problem.n)]
        at = {**params, **dict(zip(problem.inputs, x_star))}
        values_y = [_number(p, at, clock) for p in problem.outputs]
        y_star = [v.real for v in values_y if v is not None and abs(v.imag) <= 1e-12 * (abs(v) + 1)]
        if len(y_star) < len(values_y):
            continue  # P is not real at this probe
        at_y = {**params, **{s: sp.Float(v, 30) for s, v in zip(problem.output_symbols, y_star)}}
        if not any(_recovers(sol, at_y, x_star, values, lattice, clock) for sol in solutions):
            return f"x = {tuple(float(v) for v in x_star)} is not recovered"
    return None


def _recovers(
    solution: tuple, at: dict, x_star: list, periods: list, lattice: list, clock: _Clock
) -> bool:
    """Whether ``solution`` at ``at`` is ``x_star`` up to periods and joint periods."""
    gaps = []
    for expr, target, period in zip(solution, x_star, periods):
        value = _number(expr, at, clock)
        if value is None or abs(value.imag) > 1e-9 * (1 + abs(value)):
            return False
        gap = value.real - float(target)
        if period is not None and period.real != 0:
            gap -= round(gap / period.real) * period.real
        gaps.append(gap)
    if lattice:  # the gap must be an integer combination of the joint periods
        basis = np.array(lattice).T
        k = np.round(np.linalg.lstsq(basis, np.array(gaps), rcond=None)[0])
        gaps = list(np.array(gaps) - basis @ k)
    return all(abs(g) <= 1e-7 * (1 + abs(float(t))) for g, t in zip(gaps, x_star))


def _number(expr: sp.Expr, at: dict, clock: _Clock) -> complex | None:
    """``expr`` at ``at`` (30-digit Floats) as a finite complex number, or None.

    The values are substituted first and the result evaluated in 30-digit arithmetic:
    ``evalf(subs=...)`` re-evaluates adaptively and takes seconds on an arm's branches."""
    try:
        value = complex(
            clock.run(lambda: sp.sympify(expr).xreplace(at).evalf(30), "evalf", 400_000)
        )
    except (_CapHit, TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None
