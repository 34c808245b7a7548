"""Matrix-level invariance theorems, the route that applies them, and their numeric twins.

Each theorem is checked against the expression route on small problems (same verdict where
both decide), against compiled steps at random points on a larger problem, and the 256-input
diffusion step gets all its verdicts from theorems.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from scaleinv import Problem, rules
from scaleinv.analysis.invariance import (
    InputScaling,
    OutputScaling,
    Reparametrization,
    scale_invariance,
)
from scaleinv.analysis.pointwise import derivatives_at
from scaleinv.analysis.theorems import THEOREM_IDS, theorem
from scaleinv.analysis.verdict import Verdict
from scaleinv.errors import ProblemError

ETA = sp.Symbol("eta", positive=True)
P, R, U = Verdict.PROVED, Verdict.REFUTED, Verdict.UNDECIDED


def diffusion(n: int) -> Problem:
    """The periodic diffusion step P_i = x_i + 0.1((x_{i+1} − 2x_i + x_{i−1}) + 0.5 x_i³)."""
    xs = [f"x{i}" for i in range(n)]
    outs = [
        f"x{i} + 0.1*((x{(i + 1) % n} - 2*x{i} + x{(i - 1) % n}) + 0.5*x{i}**3)" for i in range(n)
    ]
    return Problem.from_strings(xs, outs, target=[str(0.1 * (i % 3)) for i in range(n)])


@pytest.mark.parametrize("theorem_id", THEOREM_IDS)
def test_every_theorem_is_derived_not_asserted(theorem_id: str) -> None:
    t = theorem(theorem_id)
    assert t.rule == theorem_id.split("-")[0] and t.hypotheses and t.derivation
    if t.rule == "gd":  # invariant only where the condition vanishes
        assert not t.unconditional and t.condition is not None
        assert t.residual != 0
    else:
        assert t.unconditional, t.residual


def test_gd_residual_is_eta_times_the_condition_at_random_matrices() -> None:
    """Numeric twin of gd-input-linear: A Δu − Δx = −η (A Aᵀ − I) g with random A, g."""
    t = theorem("gd-input-linear")
    rng = np.random.default_rng(3)
    a, g, eta = rng.normal(size=(4, 4)), rng.normal(size=(4, 1)), 0.3
    mapped = a @ (-eta * a.T @ g)
    assert np.allclose(mapped - (-eta * g), -eta * (a @ a.T - np.eye(4)) @ g)
    values = {sp.Symbol("n", integer=True, positive=True): 4}
    shown = t.residual.subs(values)
    a_s, g_s = sp.MatrixSymbol("A", 4, 4), sp.MatrixSymbol("g", 4, 1)
    numeric = sp.lambdify([a_s, g_s, ETA], shown.as_explicit(), "numpy")(a, g, eta)
    assert np.allclose(numeric, mapped + eta * g)


TOY = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], "y0**2 + y1**2", params={"alpha": 3})
COUPLED = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0*x1"], target=[1, -2])
CUBIC = Problem.from_strings(["x0", "x1"], ["x0 + x1**3", "x0*x1"], target=[1, 2])
SMALL = {"toy": TOY, "coupled": COUPLED, "cubic": CUBIC}
TRANSFORMS = {
    "diag": InputScaling(["s0", "s1"]),
    "uniform": InputScaling(["s", "s"]),
    "output": OutputScaling("c"),
    "rotation": Reparametrization.rotation(1 / 2),
    "shear": Reparametrization(["u0 + a*u1", "u1"]),
}


# Left out where the expression route only spends its budget: the cubic's PG branches are
# Cardano roots, and its rotated Newton step is a rational function too large to simplify.
ROUTE_CASES = [
    (problem, transform, rule)
    for problem in SMALL
    for transform in TRANSFORMS
    for rule in ("gd", "newton", "ig", "pg")
    if (problem, rule) != ("cubic", "pg") and (problem, transform) != ("cubic", "rotation")
]


@pytest.mark.parametrize(("problem", "transform", "rule"), ROUTE_CASES)
def test_theorem_route_agrees_with_the_expression_route(
    problem: str, transform: str, rule: str
) -> None:
    p, t = SMALL[problem], TRANSFORMS[transform]
    by_theorem = scale_invariance(p, rules.REGISTRY[rule](ETA), t, rng=0, route="theorem")
    assert by_theorem.route.startswith("theorem ") and by_theorem.verdict is not U
    by_expression = scale_invariance(
        p, rules.REGISTRY[rule](ETA), t, rng=0, route="expression", budget=1_000_000
    )
    assert by_expression.route == "expression"
    if by_expression.verdict is not U:
        assert by_theorem.verdict is by_expression.verdict, by_expression.note


@pytest.mark.parametrize(
    "transform",
    [
        Reparametrization.rotation("t"),
        Reparametrization(["cos(th)*u0 - sin(th)*u1", "sin(th)*u0 + cos(th)*u1"]),
    ],
    ids=["half-angle", "cos-sin"],
)
def test_symbolic_angle_is_decided_by_theorems(transform: Reparametrization) -> None:
    want = {"gd": P, "newton": P, "ig": P, "pg": P}  # rotations are orthogonal: even GD
    for rule, verdict in want.items():
        r = scale_invariance(COUPLED, rules.REGISTRY[rule](ETA), transform, rng=0)
        assert (r.verdict, r.route) == (verdict, f"theorem {rule}-input-linear"), r.note


def test_general_linear_map_with_symbolic_entries() -> None:
    general = Reparametrization(["a*u0 + b*u1", "c*u0 + d*u1"])
    for rule in ("newton", "ig", "pg"):
        r = scale_invariance(CUBIC, rules.REGISTRY[rule](ETA), general, rng=0)
        assert r.verdict is P and "det A = a*d - b*c" in str(r.derivation[3].expr), r.note
    r = scale_invariance(CUBIC, rules.gd(ETA), general, rng=0)
    assert r.verdict is R and r.route == "theorem gd-input-linear"
    ce = r.counterexample
    values = ce.values()
    a = np.array([[values["a"], values["b"]], [values["c"], values["d"]]])
    u = np.array([ce.point["u0"], ce.point["u1"]])
    x = a @ u  # the twin: compiled gradients of both problems at the point
    g = CUBIC.compile().gradient(x)
    setup = general.apply(CUBIC)
    named = {k: values[k] for k in "abcd"}
    g_u = setup.problem.compile().gradient(u, **named)
    assert np.allclose(ce.lhs, -values["eta"] * g) and np.allclose(ce.rhs, -values["eta"] * a @ g_u)


def test_nonlinear_map_falls_back_to_the_expression_route() -> None:
    cubic_map = Reparametrization(["u0 + u1**3", "u1"])
    r = scale_invariance(COUPLED, rules.newton(ETA), cubic_map, rng=0)
    assert r.route == "expression" and r.verdict is R
    r = scale_invariance(COUPLED, rules.newton(ETA), cubic_map, rng=0, route="theorem")
    assert r.verdict is U and "no theorem applies" in r.note
    with pytest.raises(ProblemError, match="route must be"):
        scale_invariance(COUPLED, rules.newton(ETA), cubic_map, route="fast")


def test_singular_hessian_hypothesis_falls_back() -> None:
    """P = (x0 + x1, x0 + x1): J and H are singular, so no theorem applies to IG or Newton."""
    flat = Problem.from_strings(["x0", "x1"], ["x0 + x1", "2*x0 + 2*x1"], target=[1, 2])
    r = scale_invariance(flat, rules.ig(ETA), InputScaling(["s0", "s1"]), rng=0, route="theorem")
    assert r.verdict is U


#: Issue 17: x0 + |x0| + x1 is 2 x0 + x1 for x0 > 0 and x1 for x0 < 0.
KINKED = Problem.from_strings(["x0", "x1"], ["x0 + Abs(x0) + x1", "x1**3 + x1"])


@pytest.mark.parametrize("rule", ["newton", "ig", "pg"])
def test_a_non_smooth_problem_gets_no_theorem(rule: str) -> None:
    """Newton, IG and PG's theorems need P and L analytic: "proved (theorem pg-input-linear)"
    was printed for KINKED although PG's step was found on one side only."""
    scaling = InputScaling(["3", "1/2"])
    r = scale_invariance(KINKED, rules.REGISTRY[rule](ETA), scaling, rng=0, route="theorem")
    assert r.verdict is U and "no theorem applies" in r.note
    assert any("analytic" in h for h in theorem(f"{rule}-input-linear").hypotheses)
    # the numeric reason: J is regular at a sample point with x0 > 0 and singular for x0 < 0,
    # so "nonsingular at a sample point, hence generically" does not hold
    jacobian = KINKED.compile().jacobian
    dets = [np.linalg.det(jacobian(np.array([x0, 0.7])).reshape(2, 2)) for x0 in (1.0, -1.0)]
    assert abs(dets[0]) > 1 and dets[1] == 0


def test_gd_theorem_still_applies_to_a_non_smooth_problem() -> None:
    """GD's theorem uses the gradient alone (the chain rule holds for |x| as for any P)."""
    r = scale_invariance(KINKED, rules.gd(ETA), InputScaling(["3", "1/2"]), rng=0)
    assert r.route == "theorem gd-input-linear" and r.verdict is R


def test_pointwise_derivatives_match_the_dense_symbolic_ones() -> None:
    p = diffusion(6)
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 6)
    d = derivatives_at(p, dict(zip(p.inputs, x)))
    kernels = p.compile()
    assert np.allclose(d.J, kernels.jacobian(x)) and np.allclose(d.g, kernels.gradient(x))
    assert np.allclose(d.H, kernels.hessian(x))


@pytest.mark.parametrize("rule", ["newton", "ig"])  # PG's twins: tests/test_invariance.py
def test_diffusion_twin_compiled_steps_agree_after_scaling(rule: str) -> None:
    """n = 12: the theorem's PROVED against compiled steps of both problems at random points."""
    p, n = diffusion(12), 12
    scaling = InputScaling([f"s{i}" for i in range(n)])
    assert scale_invariance(p, rules.REGISTRY[rule](ETA), scaling, rng=0).verdict is P
    rng = np.random.default_rng(11)
    scales = {f"s{i}": float(v) for i, v in enumerate(rng.uniform(0.5, 2.0, n))}
    s = np.array(list(scales.values()))
    u = rng.uniform(-0.6, 0.6, (4, n))
    setup = scaling.apply(p)
    step = rules.REGISTRY[rule](0.5)
    dx, _, ok = step.compile(p).step(u * s, None)
    du, _, ok_u = step.compile(setup.problem.with_params(**scales)).step(u, None)
    assert np.array_equal(ok, ok_u)
    np.testing.assert_allclose(dx, s * du, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_256_input_diffusion_verdicts_come_from_theorems() -> None:
    p, n = diffusion(256), 256
    want = {"newton": P, "ig": P, "pg": P, "gd": R}
    for transform in (InputScaling([f"s{i}" for i in range(n)]), OutputScaling("c")):
        for rule, verdict in want.items():
            r = scale_invariance(p, rules.REGISTRY[rule](ETA), transform, rng=0)
            assert r.verdict is verdict and r.route.startswith("theorem"), r.note
            if verdict is R:
                lhs, rhs = np.array(r.counterexample.lhs), np.array(r.counterexample.rhs)
                assert lhs.shape == (n,) and np.max(np.abs(lhs - rhs)) > 1e-6

