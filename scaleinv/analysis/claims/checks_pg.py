"""The checks behind the claims ledger: compositions, inverse simulators (PG), local inverses.

Companion of :mod:`scaleinv.analysis.claims.checks` (same :class:`Finding` protocol).
:func:`intermediate_step` is also the composition check of ``scaleinv verify SPEC``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sympy as sp

from scaleinv.analysis.branch_selection import branch_selection
from scaleinv.analysis.claims.checks import ETA, Finding, all_of, truth
from scaleinv.analysis.claims.pg_identities import (
    AverageGradientReport,
    ExactnessReport,
    average_gradient,
    local_inverse_limit,
    pg_exactness,
    pg_ig_agreement,
    quotient_remainder,
)
from scaleinv.analysis.claims.statement import Statement, sym
from scaleinv.analysis.invariance import InputScaling, Reparametrization, scale_invariance
from scaleinv.analysis.verdict import Decision, Step, Verdict, decide_equal
from scaleinv.numeric import rules
from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import cheap_simplify
from scaleinv.symbolic.updates import y_step

_all_of__: list[str] = []


def _square() -> Problem:
    return Problem.from_strings(["x"], ["x**2"], target=[4])


def _cubic_exp() -> Problem:
    return Problem.from_strings(["u", "v"], ["u**3", "exp(v)"], target=[8, 2])


def _comparison() -> Problem:
    return Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")


@cache
def _exactness(which: str) -> ExactnessReport:
    problem = {"square": _square, "cubic_exp": _cubic_exp, "comparison": _comparison}[which]()
    return pg_exactness(problem)


def check_pg_exact(budget: float) -> Finding:
    found = {w: _exactness(w) for w in ("square", "cubic_exp", "comparison")}
    steps = tuple(Step(f"{w}: residuals per branch", r.residuals) for w, r in found.items())
    shown = {"square": "x²", "cubic_exp": "(u³, eᵛ)", "comparison": "(x0, x1²)"}
    verdicts = ", ".join(f"{shown[w]} {r.verdict.value}" for w, r in found.items())
    return Finding(all_of(truth(r.verdict) for r in found.values()), steps, verdicts)


def check_pg_composition(budget: float) -> Finding:
    """PG's step in the intermediate space is exactly Δy, whatever the (invertible) inner map."""
    inner = ("2*x + 1", "x**2", "x**3", "exp(x)")
    results, steps, maps = [], [], []
    for text in inner:
        p = Problem.from_strings(["x"], [text], target=[2])
        maps.append(p.outputs[0])
        r = pg_exactness(p, budget=budget / len(inner))
        results.append(truth(r.verdict))
        steps.append(Step(f"y = {text}: P(x + Δx_PG) − P(x) − Δy", r.residuals))
    detail = Statement.of("exact for y = {maps}", maps=sp.FiniteSet(*maps))
    return Finding(all_of(results), tuple(steps), detail)


def check_pg_scale_invariance(budget: float) -> Finding:
    p, scaling = _comparison(), InputScaling(["s0", "s1"])
    found = {
        r: scale_invariance(p, rules.REGISTRY[r](ETA), scaling, budget=budget, rng=0)
        for r in ("pg", "gd")
    }
    ok = all_of(
        [
            truth(found["pg"].verdict),
            None
            if found["gd"].verdict is Verdict.UNDECIDED
            else found["gd"].verdict is Verdict.REFUTED,
        ]
    )
    steps = tuple(Step(f"{r}: x = diag(s0, s1) u", v.verdict.value) for r, v in found.items())
    return Finding(
        ok, steps, f"P = (x0, x1²): pg {found['pg'].verdict.value}, gd {found['gd'].verdict.value}"
    )


def check_pg_ig_first_order(budget: float) -> Finding:
    cases = {
        "x²": (_square(), None),
        "(u³, eᵛ)": (_cubic_exp(), None),
        "(a+b, ab) at (2, 1/2)": (
            Problem.from_strings(["a", "b"], ["a + b", "a*b"], target=[4, 2]),
            (2, "1/2"),
        ),
    }
    results, steps = [], []
    for name, (p, point) in cases.items():
        r = pg_ig_agreement(p, point=None if point is None else [sp.Rational(v) for v in point])
        agrees = truth(r.verdict)
        results.append(None if agrees is None else agrees and r.second_order)
        steps.append(Step(f"{name}: η² coefficient of Δx_PG − Δx_IG", r.remainder))
    return Finding(all_of(results), tuple(steps), "η¹ terms agree; remainder starts at η² (∝ Δy²)")


def check_quotient_remainder(budget: float) -> Finding:
    r = quotient_remainder(Problem.from_strings(["x"], ["x**2"]))
    x = sp.Symbol("x", positive=True)
    y = sp.Symbol("y", positive=True)
    half_curvature = (sp.diff(sp.sqrt(y), y, 2) / 2).subs(y, x**2)  # ½ d²x/dy², x = √y
    agree = pg_ig_agreement(_square())
    corrected = cheap_simplify(r.coefficients[1] - half_curvature) == 0
    corrected = corrected and agree.verdict is Verdict.PROVED
    steps = (
        Step("Δx_PG/Δy − ∂x/∂y for P = x² (series in Δy)", r.steps[-1].expr),
        Step("½ ∂²x/∂y²", half_curvature),
    )
    detail = Statement.of("remainder of order {o}", o=sp.Symbol("Δy") ** r.order)
    return Finding(truth(r.verdict), steps, detail, corrected)


@cache
def _average(which: str) -> AverageGradientReport:
    text, target = {"square": ("x**2", 4), "exp": ("exp(x)", 2)}[which]
    return average_gradient(Problem.from_strings(["x"], [text], target=[target]))


def check_average_gradient(budget: float) -> Finding:
    found = {w: _average(w) for w in ("square", "exp")}
    steps = tuple(Step(f"{w}: (1/Δy) ∫ ∂x/∂y dy", r.steps[2].expr) for w, r in found.items())
    return Finding(all_of(truth(r.verdict) for r in found.values()), steps, "x² and eˣ, any η")


def check_average_of_P(budget: float) -> Finding:
    found = {w: _average(w) for w in ("square", "exp")}
    x = sp.Symbol("x", positive=True)
    literal = []
    for r in found.values():
        d = decide_equal(
            sp.Matrix([r.ratio]),
            sp.Matrix([r.mean_slope_of_P]),
            [x],
            rng=0,
            domains={ETA: (0.05, 0.95)},
            budget=budget / 4,
        )
        literal.append(truth(d.verdict))
    steps = tuple(
        Step(f"{w}: mean of ∂P/∂x over [x0, x0 + Δx]", r.steps[3].expr) for w, r in found.items()
    )
    corrected = all_of(truth(r.reciprocal) for r in found.values())
    return Finding(all_of(literal), steps, "Δx_PG/Δy · mean(∂P/∂x) = 1", corrected)


def check_local_inverse_limit(budget: float) -> Finding:
    cases = (("exp(x)", "1/2"), ("x**3", "2"), ("x**3", "-1"))
    results, steps = [], []
    for text, x0 in cases:
        r = local_inverse_limit(Problem.from_strings(["x"], [text]), sp.Rational(x0))
        results.append(truth(r.verdict))
        steps.append(Step(f"P = {text}, x0 = {x0}: nearest − global", r.branch_difference))
        steps.append(Step("first-order local inverse: ratio slope in |y − y0|", r.slope))
    return Finding(
        all_of(results),
        tuple(steps),
        "trivially 0 for the nearest branch; the "
        "first-order local inverse's ratio vanishes linearly",
    )


def check_local_inverse_x2(budget: float) -> Finding:
    p = Problem.from_strings(["x"], ["x**2"])
    y = p.output_symbols[0]
    branches = p.local_inverse().branches
    solutions = {b.solution[0] for b in branches}
    two = solutions == {sp.sqrt(y), -sp.sqrt(y)}
    picks = {}
    for x0 in (-2, sp.Rational(3, 2)):
        near = min(branches, key=lambda b: abs(float(b.solution[0].subs(y, x0**2 + 1)) - x0))
        picks[x0] = near.solution[0]
    ok = two and picks[-2] == -sp.sqrt(y) and picks[sp.Rational(3, 2)] == sp.sqrt(y)
    steps = (
        Step("branches of x² = y", tuple(b.solution[0] for b in branches)),
        Step("conditions", tuple(b.condition for b in branches)),
        Step("nearest branch at x0 = −2 and 3/2", tuple(picks.values())),
    )
    return Finding(ok, steps, "±√y for y > 0; the nearest branch follows the sign of x0")


def check_inverse_jacobian(budget: float) -> Finding:
    results, steps = [], []
    h = sp.Symbol("h", real=True)
    for p in (_square(), _cubic_exp()):
        pos = {x: sp.Symbol(x.name, positive=True) for x in p.inputs}
        d = sp.Matrix([sp.Symbol(f"d{i}", real=True) for i in range(p.m)])
        guess = sp.Matrix(p.inputs) + h * p.jacobian.LUsolve(d)
        residual = p.P.subs(dict(zip(p.inputs, guess)), simultaneous=True) - p.P - h * d
        residual = residual.subs(pos)
        first = residual.diff(h).subs(h, 0).applyfunc(cheap_simplify)
        second = (residual.diff(h, 2).subs(h, 0) / 2).applyfunc(cheap_simplify)
        results.append(all(c == 0 for c in first) and any(c != 0 for c in second))
        steps.append(Step(f"P = {list(p.outputs)}: h² coefficient of the residual", second))
    return Finding(all_of(results), tuple(steps), "P(x0 + J⁻¹ h d) − (y0 + h d) = O(h²), ≠ o(h²)")


def check_ig_dy(budget: float) -> Finding:
    p = Problem.from_strings(
        ["x0", "x1"], ["x0*x1", "x0 + x1"], target=["a", "b"], params={"a": 1, "b": 2}
    )
    want = sp.Matrix(p.target) - sp.Matrix(p.output_symbols)
    ok = (p.newton_dy - want).applyfunc(cheap_simplify) == sp.zeros(2, 1)
    return Finding(ok, (Step("−(∂²L/∂y²)⁻¹ ∂L/∂y", p.newton_dy),), "Δy = η (y* − y)")


def check_time_reversal(budget: float) -> Finding:
    t, k, dt, w = sp.symbols("t k Delta_t omega", positive=True)
    x = sp.Symbol("x", real=True)
    decay = x * sp.exp(-k * t)
    back = cheap_simplify(decay.subs(t, -t).subs(x, decay))  # flow(−t) after flow(t)
    rot = sp.Matrix([[sp.cos(w * t), sp.sin(w * t)], [-sp.sin(w * t), sp.cos(w * t)]])
    identity = (rot.subs(t, -t) * rot).applyfunc(sp.trigsimp) == sp.eye(2)
    euler = cheap_simplify((1 + k * dt) * (1 - k * dt))
    ok = back == x and identity and cheap_simplify(euler - 1) != 0
    steps = (
        Step("decay: flow(−t) ∘ flow(t)", back),
        Step("oscillator: R(−t) R(t)", "I"),
        Step("explicit Euler with −Δt after +Δt (factor)", euler),
    )
    shown = sp.expand(euler).subs(dt, sym("Δt", r"\Delta t"))
    detail = Statement.of("exact flows invert; Euler leaves the factor {f}", f=shown)
    return Finding(ok, steps, detail)


def check_gradient_length(budget: float) -> Finding:
    x = sp.Symbol("x", positive=True)
    quartic, saturating = sp.diff(x**4, x), sp.diff(1 - sp.exp(-(x**2)), x)  # |∇L|, x > 0
    distance = sp.Interval.open(0, sp.oo)
    grows = sp.solveset(sp.diff(quartic, x) > 0, x, distance)
    falls = sp.solveset(sp.diff(saturating, x) < 0, x, distance)
    text = grows != distance  # "anticorrelates" for every nonlinear loss: x⁴ refutes it
    corrected = falls == sp.Interval.open(sp.sqrt(2) / 2, sp.oo)
    steps = (
        Step("L = x⁴: |∇L| increases for x in", grows),
        Step("L = 1 − exp(−x²): |∇L| decreases for x in", falls),
    )
    detail = Statement.of(
        "{q}: grows with distance; {s}: shrinks past {x}",
        q=x**4, s=1 - sp.exp(-(x**2)), x=sp.sqrt(2) / 2,
    )  # fmt: skip
    return Finding(text, steps, detail, corrected)


def check_relu(budget: float) -> Finding:
    x = sp.Symbol("x", real=True)
    second = sp.diff(sp.Max(0, x), x, 2)
    points = [sp.Rational(v) for v in ("-3", "-1/7", "1/5", "4")]
    ok = all(second.subs(x, v) == 0 for v in points) and second.has(sp.DiracDelta)
    detail = Statement.of("{s}: 0 for x ≠ 0", s=sp.Eq(sp.Symbol("ReLU''"), second))
    return Finding(ok, (Step("d²/dx² max(0, x)", second),), detail)


def _composite() -> tuple[Problem, dict[str, sp.Symbol], dict[sp.Expr, sp.Symbol]]:
    """``L(y(x))`` with generic ``L`` and ``y``; derivatives renamed ``y1, y2, L1, L2``."""
    x, y0 = sp.Symbol("x", real=True), sp.Symbol("y0", real=True)
    g, f = sp.Function("y"), sp.Function("L")
    p = Problem((x,), (g(x),), loss=f(y0))
    names = {n: sp.Symbol(n, real=True) for n in ("y1", "y2", "L1", "L2")}
    rename = {
        sp.Derivative(g(x), (x, 2)): names["y2"],
        sp.Derivative(g(x), x): names["y1"],
        sp.Derivative(f(g(x)), (g(x), 2)): names["L2"],
        sp.Derivative(f(g(x)), g(x)): names["L1"],
    }
    return p, names, rename


def check_composite_hessian(budget: float) -> Finding:
    p, n, rename = _composite()
    hessian = p.hessian[0].subs(rename)
    formula = n["L2"] * n["y1"] ** 2 + n["L1"] * n["y2"]
    ok = cheap_simplify(hessian - formula) == 0
    return Finding(ok, (Step("d²L/dx² of L(y(x))", hessian),), "L''·y'² + L'·y''")


def _induced_dy(rule: str) -> tuple[sp.Expr, dict[str, sp.Symbol]]:
    p, n, rename = _composite()
    dx = rules.REGISTRY[rule](ETA).delta(p)
    return cheap_simplify((p.jacobian * dx)[0].subs(rename)), n


def intermediate_step(problem: Problem, rule: Any, *, budget: float = 2_000_000) -> Decision:
    r"""Is ``rule``'s change of ``y = P(x)`` the loss's own y-step, whatever the inner map ``P``?

    The chapter's "consistency in function compositions": the update of the intermediate space
    should be fixed by ``L`` alone, ``Δy = −η (∂²L/∂y²)⁻¹ ∂L/∂y``. First-order rules change
    ``y`` by ``J Δx`` (to first order); PG by ``P(x + Δx) − P(x)`` on each branch (exactly).
    ``rule`` needs a symbolic ``eta``.

    .. math:: \frac{\partial P}{\partial x} \Delta x \overset{?}{=} \Delta y

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> [intermediate_step(p, rules.REGISTRY[r](ETA)).verdict.value for r in ("newton", "ig")]
    ['refuted', 'proved']
    """
    eta = getattr(rule, "eta", None)
    target = y_step(problem, eta)
    dx = rule.delta(problem)
    if isinstance(dx, sp.MatrixBase):
        return decide_equal(
            problem.jacobian * dx,
            target,
            problem.inputs,
            budget=budget,
            rng=0,
            domains={eta: (0.05, 0.95)},
        )
    at = [dict(zip(problem.inputs, sp.Matrix(problem.inputs) + d)) for d in dx]
    moved = tuple(problem.P.subs(a, simultaneous=True) - problem.P for a in at)
    return decide_equal(
        moved,
        (target,) * len(moved),
        problem.inputs,
        budget=budget,
        rng=0,
        domains={eta: (0.05, 0.95)},
    )


def _concrete(rule: str, budget: float) -> Decision:
    p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    return intermediate_step(p, rules.REGISTRY[rule](ETA), budget=budget)


def check_composition_newton(budget: float) -> Finding:
    dy, n = _induced_dy("newton")
    concrete = _concrete("newton", budget)
    ok = cheap_simplify(sp.diff(dy, n["y2"])) != 0 and concrete.verdict is Verdict.REFUTED
    steps = (
        Step("y'·Δx_QN (generic L, y)", dy),
        Step("P = (x0, x1²): J Δx_QN − Δy", concrete.difference),
    )
    return Finding(ok, steps, "Newton's y-step depends on y'' (the inner map)")


def check_composition_ig(budget: float) -> Finding:
    dy, n = _induced_dy("ig")
    concrete = _concrete("ig", budget)
    ok = not dy.has(n["y1"], n["y2"]) and cheap_simplify(dy + ETA * n["L1"] / n["L2"]) == 0
    ok = ok and concrete.verdict is Verdict.PROVED
    steps = (
        Step("y'·Δx_IG (generic L, y)", dy),
        Step("P = (x0, x1²): J Δx_IG − Δy", concrete.difference),
    )
    return Finding(ok, steps, "IG's y-step is −η L'/L'', free of y(x)")


def check_pg_nearest_branch(budget: float) -> Finding:
    """PG with the nearest-branch rule under diagonal scalings: the issue's coupled map."""
    coupled = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0*x1"])
    squares = Problem.from_strings(["x0", "x1"], ["x0**2", "x1**2"])
    scaling = InputScaling(["s0", "s1"])
    by_branch = scale_invariance(coupled, rules.pg(ETA), scaling, budget=budget, rng=0)
    nearest = branch_selection(
        coupled, scaling, y=[5, 6], x0=[2.1, 2.1], values={"s0": 10, "s1": 1},
        versus={"s0": 1, "s1": 10},
    )  # fmt: skip
    holding = {
        "isotropic x = s u": branch_selection(coupled, InputScaling(["s", "s"])),
        "rotation": branch_selection(coupled, Reparametrization.rotation("t")),
        "(x0², x1²) under diag(s0, s1)": branch_selection(squares, scaling),
    }
    steps = (
        Step(f"branch by branch ({by_branch.route})", by_branch.verdict.value),
        Step("nearest branch, (x0 + x1, x0 x1) = (5, 6) from (2.1, 2.1)", nearest.reason),
        *(
            Step(f"nearest branch, {k}", f"{r.verdict.value}: {r.reason}")
            for k, r in holding.items()
        ),
    )
    corrected = all_of([truth(by_branch.verdict), *(truth(r.verdict) for r in holding.values())])
    detail = f"nearest-branch rule under diag(s0, s1): {nearest.verdict.value}"
    if nearest.counterexample is not None:
        detail += f"; {nearest.counterexample.describe()}"
    text = None if nearest.verdict is Verdict.UNDECIDED else nearest.verdict is Verdict.PROVED
    return Finding(text, steps, detail, corrected)
