"""The checks behind the claims ledger: units, sensitivity, flat optima, the scaling toy.

Each ``check_*`` function computes, from scratch, whether the chapter's statement holds and —
where the chapter is wrong — whether the corrected statement does, and returns a
:class:`Finding`; :mod:`scaleinv.analysis.claims` turns findings into verdicts. Shared setups
(the mechanics example, the scaling toy, the sensitivity and flat-landscape studies) are
cached, so a ledger run derives each of them once.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

import sympy as sp

from scaleinv.analysis.claims.statement import Statement, sym
from scaleinv.analysis.invariance import InputScaling, InvarianceReport, scale_invariance
from scaleinv.analysis.sensitivity import (
    NearOptimumReport,
    SensitivityReport,
    near_optimum,
    power_of,
    sensitivity,
)
from scaleinv.analysis.units import (
    UnitsReport,
    UnitsVerdict,
    check_units,
    dimension_of,
    format_dimension,
    problem_dimensions,
    same_dimension,
)
from scaleinv.analysis.verdict import Step, Verdict, decide_equal
from scaleinv.numeric import rules
from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import cheap_simplify

__all__ = ["Finding", "truth", "all_of", "ETA", "MECHANICS_UNITS", "mechanics", "toy"]

#: A symbolic step size: verdicts then hold for every ``η > 0``.
ETA = sp.Symbol("eta", positive=True)
#: Dimensions of the mechanics example: a distance, a fall time, gravity.
MECHANICS_UNITS = {"x0": "length", "x1": "time", "g": "length/time**2"}
_RULES = ("gd", "newton", "ig", "pg")


class Finding(NamedTuple):
    """What a check found: does the text hold, does the correction hold, and why.

    ``text`` and ``corrected`` are True, False or None (undecided).
    """

    text: bool | None
    steps: tuple[Step, ...]
    detail: str | Statement
    corrected: bool | None = None


def truth(verdict: Verdict) -> bool | None:
    """PROVED -> True, REFUTED -> False, UNDECIDED -> None."""
    return {Verdict.PROVED: True, Verdict.REFUTED: False}.get(verdict)


def all_of(values: Any) -> bool | None:
    """Three-valued AND: False if any is False, None if any is None, else True."""
    values = list(values)
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def mechanics() -> Problem:
    """``P = (x0, g x1²/2)``: a distance and the fall distance after time ``x1``."""
    return Problem.from_strings(["x0", "x1"], ["x0", "g*x1**2/2"], params={"g": 9.81})


def toy(alpha: float = 3) -> Problem:
    """The chapter's scaling toy ``P = (x1, α x2)``, ``L = |P|²``."""
    return Problem.from_strings(
        ["x1", "x2"], ["x1", "alpha*x2"], loss="y0**2 + y1**2", params={"alpha": alpha}
    )


@cache
def _units(rule: str) -> UnitsReport:
    return check_units(mechanics(), rules.REGISTRY[rule](ETA), MECHANICS_UNITS)


@cache
def _toy_invariance(rule: str, budget: float) -> InvarianceReport:
    transform = InputScaling({"x2": "1/alpha"})
    return scale_invariance(toy(), rules.REGISTRY[rule](ETA), transform, budget=budget, rng=0)


@cache
def _sensitivity(loss: str) -> dict[str, SensitivityReport]:
    return {r.rule: r for r in sensitivity(loss)}


@cache
def _near(power: int) -> dict[str, NearOptimumReport]:
    return {r.rule: r for r in near_optimum(power, sp.Rational(1, 2))}


def _units_steps(report: UnitsReport) -> tuple[Step, ...]:
    needs = [
        f"{x}: {format_dimension(d) if d is not None else 'any'}"
        for x, d in zip(report.inputs, report.required_eta)
    ]
    return (
        Step(f"[η] each component of Δx_{report.rule} needs", ", ".join(needs)),
        Step("verdict of check_units", report.verdict.value),
    )


def _dimension_expr(dim: Any) -> sp.Expr:
    """A dimension as an expression in upright base-dimension names (for statements)."""
    name = getattr(dim, "name", dim)
    return name.subs({s: sym(str(s), rf"\mathrm{{{s}}}") for s in name.free_symbols})


def check_gd_units(budget: float) -> Finding:
    r = _units("gd")
    return Finding(r.verdict is UnitsVerdict.INCONSISTENT, _units_steps(r), r.derivation[-1])


def _units_consistent(rule: str) -> Finding:
    r = _units(rule)
    ok = r.verdict is UnitsVerdict.CONSISTENT and r.eta_dimension is not None
    ok = ok and same_dimension(r.eta_dimension, 1)
    return Finding(ok, _units_steps(r), r.derivation[-1])


def check_newton_units(budget: float) -> Finding:
    return _units_consistent("newton")


def check_ig_units(budget: float) -> Finding:
    return _units_consistent("ig")


def check_pg_units(budget: float) -> Finding:
    return _units_consistent("pg")


def check_newton_loss_units(budget: float) -> Finding:
    p = mechanics()
    change = (p.gradient.T * rules.newton(ETA).delta(p))[0]
    dims = problem_dimensions(p, MECHANICS_UNITS)
    table = {**dims.symbols, ETA: 1}
    have = dimension_of(change, table)
    steps = (
        Step("first-order ΔL = (∂L/∂x)ᵀ Δx_QN", cheap_simplify(change)),
        Step("its dimension (η dimensionless)", format_dimension(have)),
        Step("[L]", format_dimension(dims.loss)),
    )
    return Finding(
        same_dimension(have, dims.loss), steps, Statement.of("[ΔL] = {d}", d=_dimension_expr(have))
    )


def check_crux_direction(budget: float) -> Finding:
    p = toy()
    alpha = p.param_symbols[0]
    x1, x2 = p.inputs
    d = rules.gd(ETA).delta(p)
    cross = cheap_simplify(d[0] * x2 - d[1] * x1)
    along = cheap_simplify((d[0] * x1 + d[1] * x2).subs(alpha, 1))
    at_one = cheap_simplify(cross.subs(alpha, 1))
    ok = at_one == 0 and bool(along.subs({x1: 1, x2: 1}) < 0) and cross.subs(alpha, 2) != 0
    steps = (
        Step("Δx_GD", d),
        Step("Δx1·x2 − Δx2·x1 (0 ⇔ Δx ∥ x)", cross),
        Step("Δx_GD · x at α = 1", along),
    )
    return Finding(ok, steps, "−∇L ∥ −x exactly when α = 1")


def check_crux_eta_bound(budget: float) -> Finding:
    p = toy()
    alpha = p.param_symbols[0]
    step_map = sp.eye(2) + rules.gd(ETA).delta(p).jacobian(p.inputs)
    factors = [cheap_simplify(step_map[i, i]) for i in range(2)]
    stable = [sp.solve_univariate_inequality(sp.Abs(f) < 1, ETA, relational=False) for f in factors]
    region = stable[0].intersect(stable[1])
    big = region.subs(alpha, 3)
    progress = sp.limit(sp.Abs(factors[0]).subs(ETA, 1 / alpha**2), alpha, sp.oo)
    ok = stable[1] == sp.Interval.open(0, alpha**-2) and progress == 1
    ok = ok and big == sp.Interval.open(0, sp.Rational(1, 9))
    steps = (
        Step("per-component factors of x ↦ x + Δx_GD", tuple(factors)),
        Step("stable η", region),
        Step("x1 factor at η = 1/α², α → ∞", progress),
    )
    detail = Statement.of(
        "{x1} needs {in1}, {x2} needs {in2}; at the bound {x1} keeps |1 − 2/α²| → 1",
        x1=p.inputs[0], x2=p.inputs[1], in1=sp.Contains(ETA, stable[0]),
        in2=sp.Contains(ETA, stable[1]),
    )  # fmt: skip
    return Finding(ok, steps, detail)


def check_crux_squared(budget: float) -> Finding:
    p = toy()
    alpha = p.param_symbols[0]
    y1 = sp.Symbol("y1", real=True)
    dy = (p.jacobian * rules.gd(ETA).delta(p))[1].subs(p.inputs[1], y1 / alpha)
    k = power_of(dy, alpha)
    steps = (Step("Δy2 = α Δx2 at fixed y2", cheap_simplify(dy)), Step("power of α", k))
    detail = Statement.of("{dy} ∝ {power}", dy=sp.Symbol("Δy2"), power=alpha**k)
    return Finding(k == 2, steps, detail)


def check_crux_invariance(budget: float) -> Finding:
    found = {r: _toy_invariance(r, budget) for r in _RULES}
    want = {
        "gd": Verdict.REFUTED,
        "newton": Verdict.PROVED,
        "ig": Verdict.PROVED,
        "pg": Verdict.PROVED,
    }
    steps = tuple(
        Step(f"{r}: x2 = u2/α", f"{found[r].verdict.value} ({found[r].note})") for r in _RULES
    )
    ok = all_of(
        None if found[r].verdict is Verdict.UNDECIDED else found[r].verdict is want[r]
        for r in _RULES
    )
    return Finding(ok, steps, ", ".join(f"{r} {found[r].verdict.value}" for r in _RULES))


def check_chain_rule(budget: float) -> Finding:
    problems = (
        Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2"),
        Problem.from_strings(["u", "v"], ["u**3*v", "exp(v) + u"], target=[8, 2]),
    )
    results, steps = [], []
    for p in problems:
        direct = sp.Matrix([sp.diff(p.loss_x, x) for x in p.inputs])
        d = decide_equal(p.gradient, direct, list(p.inputs), budget=budget / 2, rng=0)
        results.append(truth(d.verdict))
        steps.append(Step(f"Jᵀ ∂L/∂y for P = {list(p.outputs)}", p.gradient.T))
    return Finding(all_of(results), tuple(steps), "Jᵀ ∂L/∂y equals ∂(L∘P)/∂x")


def check_gd_step(budget: float) -> Finding:
    r = _sensitivity("alpha*x")["gd"]
    alpha = sp.Symbol("alpha", positive=True)
    ok = cheap_simplify(r.delta + ETA * alpha) == 0 and r.delta_power == 1
    return Finding(ok, (Step("Δx_GD", r.delta), Step("power of α", r.delta_power)), "Δx ∝ α¹")


def check_gd_loss_alpha2(budget: float) -> Finding:
    r = _sensitivity("alpha*x")["gd"]
    x, alpha = sp.Symbol("x", real=True), sp.Symbol("alpha", positive=True)
    exact = cheap_simplify(r.loss.subs(x, x + r.delta) - r.loss)
    k = power_of(exact, alpha)
    steps = (
        Step("L(x + Δx_GD) − L(x)", exact),
        Step("power of α", k),
        Step("first-order ΔL", r.loss_change),
    )
    detail = Statement.of("{eq} ∝ α²", eq=sp.Eq(sp.Symbol("ΔL"), exact))
    return Finding(k == 2 and r.loss_change_power == 2, steps, detail)


def check_gd_loss_sign(budget: float) -> Finding:
    x, h = sp.Symbol("x", real=True), sp.Symbol("h", positive=True)
    f = sp.Function("L")
    slope = sp.diff(f(x), x)
    drop = f(x) - f(x - h * slope)  # L(x) − L(x + Δx_GD) with η = h
    first = cheap_simplify(sp.series(drop, h, 0, 2).removeO().doit().coeff(h, 1))
    p = toy()
    dx = rules.gd(h).delta(p)
    drop2 = p.loss_x - p.loss_x.subs(
        dict(zip(p.inputs, sp.Matrix(p.inputs) + dx)), simultaneous=True
    )
    first2 = cheap_simplify(sp.diff(drop2, h).subs(h, 0) - (p.gradient.T * p.gradient)[0])
    text = cheap_simplify(first + slope**2) == 0
    corrected = cheap_simplify(first - slope**2) == 0 and first2 == 0
    steps = (
        Step("L(x) − L(x + Δx_GD), η¹ coefficient (generic L)", first),
        Step("toy: η¹ coefficient − |∇L|²", first2),
    )
    detail = Statement.of("the η¹ term is {term}", term=first)
    return Finding(text, steps, detail, corrected)


def check_gd_near_optimum(budget: float) -> Finding:
    found = [_near(k)["gd"] for k in (4, 6)]
    steps = tuple(Step(f"L = x^{r.power}: |Δx_GD|/|x|", r.ratio) for r in found)
    return Finding(all(r.stalls for r in found), steps, "ratio → 0 for x⁴ and x⁶")


def _progress(rule: str) -> Finding:
    found = [_near(k)[rule] for k in (4, 6)]
    steps = tuple(Step(f"L = x^{r.power}, η = 1/2: lim |Δx|/|x − x*|", r.limit) for r in found)
    x = sp.Symbol("x")
    detail = Statement(())
    for r in found:
        detail += Statement.of("{L}: {limit}" + ("" if r is found[-1] else ", "),
                               L=sp.Eq(sp.Symbol("L"), x**r.power), limit=r.limit)  # fmt: skip
    return Finding(all(r.progresses for r in found), steps, detail)


def check_newton_near_optimum(budget: float) -> Finding:
    found = _progress("newton")
    x = sp.Symbol("x", positive=True)
    inverse_curvature = sp.limit(1 / sp.diff(x**4, x, 2), x, 0, "+")
    steps = found.steps + (Step("lim 1/L''(x) at x* for L = x⁴", inverse_curvature),)
    return Finding(found.text and inverse_curvature == sp.oo, steps, found.detail)


def check_ig_near_optimum(budget: float) -> Finding:
    return _progress("ig")


def check_pg_near_optimum(budget: float) -> Finding:
    return _progress("pg")


def check_newton_alpha(budget: float) -> Finding:
    linear, square = _sensitivity("alpha*x")["newton"], _sensitivity("(alpha*x)**2")["newton"]
    text = linear.exists and linear.preconditioner_power == -2
    corrected = square.exists and square.preconditioner_power == -2 and square.delta_power == 0
    steps = (
        Step("L = αx", linear.reason or linear.delta),
        Step("L = (αx)²: −η H⁻¹", square.preconditioner),
        Step("Δx_QN", square.delta),
    )
    return Finding(text, steps, "L = αx: " + linear.reason, corrected)


def _inverse_alpha(rule: str) -> Finding:
    r = _sensitivity("alpha*x")[rule]
    ok = r.delta_power == -1 and r.loss_change_power == 0
    steps = (Step(f"Δx_{rule.upper()} for L = αx", r.delta), Step("power of α", r.delta_power))
    alpha = sp.Symbol("alpha", positive=True)
    detail = Statement.of(
        "Δx ∝ {dx}, first-order ΔL ∝ {dl}", dx=alpha**r.delta_power, dl=alpha**r.loss_change_power
    )
    return Finding(ok, steps, detail)


def check_ig_sensitivity(budget: float) -> Finding:
    return _inverse_alpha("ig")


def check_pg_sensitivity(budget: float) -> Finding:
    return _inverse_alpha("pg")
