"""Scale-invariance verdicts: reference problems × transforms × rules, each with a numeric twin.

A PROVED verdict is checked by evaluating both updates in floats with the *compiled* rules (a
second path, no symbolic deltas) at random points, and by trajectories for linear maps; a
REFUTED verdict by re-evaluating its counterexample with the compiled rules.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy as sp

from scaleinv import Problem, Status, minimize, rules
from scaleinv.analysis.invariance import (
    InputScaling,
    OutputScaling,
    Reparametrization,
    scale_invariance,
    trajectory_invariance,
)
from scaleinv.analysis.verdict import Verdict, decide_equal
from scaleinv.errors import ParseError, ProblemError, RuleError

ETA = sp.Symbol("eta", positive=True)
P, R, U = Verdict.PROVED, Verdict.REFUTED, Verdict.UNDECIDED

TOY = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], "y0**2 + y1**2", params={"alpha": 3})
SQUARE = Problem.from_strings(
    ["x0", "x1"], ["x0", "alpha*x1**2"], "y0**2 + y1**2", params={"alpha": 3}
)
COUPLED = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0*x1"], target=[1, -2])

SCALES = InputScaling(["s0", "s1"])
ROTATION = Reparametrization.rotation(1 / 2)  # cos = 3/5, sin = 4/5
CUBIC = Reparametrization(["u0 + u1**3", "u1"])

# (problem, transform, is g linear) -> expected verdict per rule, worked out by hand:
# Newton is invariant under every affine map, IG and PG under every invertible map (IG to
# first order: dg/du Δu = Δx exactly), GD only under orthogonal maps.
ALL_BUT_GD = dict(gd=R, newton=P, ig=P, pg=P)
CASES = {
    "toy/alpha": (TOY, InputScaling({"x1": "1/alpha"}), dict(gd=R, newton=P, ig=P, pg=P)),
    "toy/output": (TOY, OutputScaling("c"), dict(gd=R, newton=P, ig=P, pg=P)),
    "toy/diag": (TOY, SCALES, dict(gd=R, newton=P, ig=P, pg=P)),
    "toy/uniform": (TOY, InputScaling(["s", "s"]), dict(gd=R, newton=P, ig=P, pg=P)),
    "square/alpha": (
        SQUARE,
        InputScaling({"x1": "1/sqrt(alpha)"}),
        dict(gd=R, newton=P, ig=P, pg=P),
    ),
    "square/output": (SQUARE, OutputScaling("c"), dict(gd=R, newton=P, ig=P, pg=P)),
    "square/diag": (SQUARE, SCALES, dict(gd=R, newton=P, ig=P, pg=P)),
    "coupled/rotation": (COUPLED, ROTATION, dict(gd=P, newton=P, ig=P, pg=P)),
    "coupled/diag": (COUPLED, SCALES, dict(gd=R, newton=P, ig=P, pg=P)),
    "coupled/shear": (
        COUPLED,
        Reparametrization(["u0 + a*u1", "u1"]),
        dict(gd=R, newton=P, ig=P, pg=P),
    ),
    "coupled/cubic": (COUPLED, CUBIC, dict(gd=R, newton=R, ig=P, pg=P)),
}
TWIN_VALUES = {"s0": 0.5, "s1": 4.0, "s": 3.0, "c": 7.0, "a": -1.5, "alpha": 3.0}
ETAS = {"gd": 0.01, "newton": 0.5, "ig": 0.5, "pg": 0.5}
_CACHE: dict[tuple[str, str], object] = {}


def _report(case: str, rule: str):
    if (case, rule) not in _CACHE:
        problem, transform, _ = CASES[case]
        _CACHE[case, rule] = scale_invariance(
            problem, rules.REGISTRY[rule](ETA), transform, budget=20, rng=1
        )
    return _CACHE[case, rule]


def _floats(matrix: sp.Matrix, values: dict) -> np.ndarray:
    """Entries of a SymPy matrix at ``values`` (by name), by substitution."""
    table = {s: values[str(s)] for s in matrix.free_symbols}
    return np.array([float(e.xreplace(table)) for e in matrix])


def _steps(problem, transform, rule_name, u, values, eta):
    """Compiled Δx at x = g(u) and compiled Δu mapped back, in floats, for a batch of ``u``.

    Rows where neither side has a step (PG: no real solution) are dropped; one side without
    the other fails.
    """
    setup = transform.apply(problem)
    rule = rules.REGISTRY[rule_name](eta)
    own = {str(s): values[str(s)] for s in problem.params}
    new = {str(s): values[str(s)] for s in setup.problem.params}
    u = np.atleast_2d(u)
    ats = [{**values, **{str(s): v for s, v in zip(setup.inputs, row)}} for row in u]
    x = np.array([_floats(setup.forward, at) for at in ats])
    dx, _, status = rule.compile(problem.with_params(**own)).step(x, None)
    du, _, status_u = rule.compile(setup.problem.with_params(**new)).step(u, None)
    assert np.array_equal(status, status_u), "one side has a step, the other not"
    back = []
    for at, row, d in zip(ats, u, du):
        if rule_name == "pg":
            moved = {**at, **{str(s): v + e for s, v, e in zip(setup.inputs, row, d)}}
            back.append(_floats(setup.forward, moved) - _floats(setup.forward, at))
        else:
            back.append(_floats(setup.jacobian, at).reshape(problem.n, problem.n) @ d)
    ok = status == Status.RUNNING
    assert np.all(ok | (status == Status.NO_INVERSE))
    return dx[ok], np.array(back)[ok]


PAIRS = [(case, rule) for case, (_, _, want) in CASES.items() for rule in want]


@pytest.mark.parametrize(("case", "rule"), PAIRS)
def test_verdict_matches_the_hand_derivation(case: str, rule: str) -> None:
    report = _report(case, rule)
    assert report.verdict is CASES[case][2][rule], report.note
    assert report.rule == rule and report.transform == CASES[case][1].describe()
    if report.verdict is P:
        assert report.counterexample is None
        assert all(e == 0 for e in report.derivation[-1].expr)


@pytest.mark.parametrize(("case", "rule"), PAIRS)
def test_twin_compiled_steps_agree_exactly_or_differ_at_the_counterexample(
    case: str, rule: str
) -> None:
    problem, transform, _ = CASES[case]
    report = _report(case, rule)
    if report.verdict is R:
        ce = report.counterexample
        values = ce.values()
        u = list(ce.point.values())
        dx, back = _steps(problem, transform, rule, u, values, values["eta"])
        np.testing.assert_allclose(dx[0], ce.lhs, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(back[0], ce.rhs, rtol=1e-9, atol=1e-12)
        assert np.max(np.abs(dx - back)) > 1e-6 * max(1.0, np.max(np.abs(dx)))
        return
    rng = np.random.default_rng(7)
    u = rng.uniform(0.6, 1.6, size=(8, 2)) * np.array([1, -1])
    dx, back = _steps(problem, transform, rule, u, TWIN_VALUES, ETAS[rule])
    assert len(dx) >= 4  # PG: most points have a real solution
    np.testing.assert_allclose(back, dx, rtol=1e-10, atol=1e-13)


LINEAR = [c for c in CASES if c != "coupled/cubic"]


@pytest.mark.parametrize("case", LINEAR)
@pytest.mark.parametrize("rule", ["gd", "newton", "ig", "pg"])
def test_trajectories_agree_for_proved_and_differ_for_refuted(case: str, rule: str) -> None:
    problem, transform, want = CASES[case]
    x0 = [1.5, -0.7] if problem is COUPLED else [3.0, 3.0]
    comparison = trajectory_invariance(
        problem, rules.REGISTRY[rule](ETAS[rule]), transform, x0, 8, TWIN_VALUES
    )
    assert comparison.x.shape == comparison.mapped.shape == (9, 2)
    if want[rule] is P:
        assert comparison.max_rel < 1e-10
        assert np.array_equal(comparison.status, comparison.status_mapped)
    else:
        assert comparison.max_rel > 1e-4


def test_alpha_family_trajectories_are_identical_for_newton_ig_pg_not_gd() -> None:
    """The chapter's definition on its toy: in u = (x0, α x1) = P(x) the trajectory is the same
    for every α (start u = (3, 3)) — for Newton, IG and PG, not for GD."""
    runs: dict[str, list[np.ndarray]] = {}
    for alpha in (1.0, 3.0, 5.0):
        p = TOY.with_params(alpha=alpha)
        for name, eta in (("newton", 1 / 3), ("ig", 1 / 3), ("pg", 1 / 3), ("gd", 0.01)):
            t = minimize(p, rules.REGISTRY[name](eta), [3.0, 3.0 / alpha], 10, record="all")
            runs.setdefault(name, []).append(t.y)
    for name in ("newton", "ig", "pg"):
        np.testing.assert_allclose(runs[name][1], runs[name][0], rtol=1e-12)
        np.testing.assert_allclose(runs[name][2], runs[name][0], rtol=1e-12)
    assert np.max(np.abs(runs["gd"][2] - runs["gd"][0])) > 1e-2


def test_symbolic_rotation_angle_for_gd_and_ig() -> None:
    rotation = Reparametrization.rotation("t")
    for name in ("gd", "ig"):
        report = scale_invariance(COUPLED, rules.REGISTRY[name](ETA), rotation, rng=0)
        assert report.verdict is P, (name, report.note)


def test_gd_counterexample_is_the_alpha_squared_factor() -> None:
    """Independent closed form: Δx1 = −2ηα x1 on the toy, Δu1/α = −2η x1/α after x1 = u1/α."""
    report = _report("toy/alpha", "gd")
    ce = report.counterexample
    eta, alpha, u1 = ce.params["eta"], ce.params["alpha"], ce.point["u1"]
    assert ce.lhs[1] == pytest.approx(-2 * eta * alpha * u1, rel=1e-12)
    assert ce.rhs[1] == pytest.approx(-2 * eta * u1 / alpha, rel=1e-12)
    alpha_, u1_ = sp.Symbol("alpha", positive=True), sp.Symbol("u1", real=True)
    diff = report.derivation[-1].expr[1]
    assert sp.simplify(diff - 2 * ETA * u1_ * (1 - alpha_**2) / alpha_) == 0


def test_numeric_only_rules_are_refuted_by_compiled_steps() -> None:
    report = scale_invariance(TOY, rules.hig(0.5), SCALES, rng=0)
    assert report.verdict is R and "numeric-only" in report.note
    ce = report.counterexample
    values = ce.values()
    dx, back = _steps_numeric(TOY, SCALES, rules.hig(0.5), ce.point, values)
    np.testing.assert_allclose(dx, ce.lhs, rtol=1e-9)
    np.testing.assert_allclose(back, ce.rhs, rtol=1e-9)
    # beta = 1 is Gauss–Newton (= IG here): invariant, so no counterexample, but no proof either
    gauss_newton = scale_invariance(TOY, rules.hig(0.5, beta=1.0), SCALES, rng=0)
    assert gauss_newton.verdict is U and gauss_newton.counterexample is None


def _steps_numeric(problem, transform, rule, point, values):
    setup = transform.apply(problem)
    u = np.array(list(point.values()))
    own = {str(s): values[str(s)] for s in problem.params}
    new = {str(s): values[str(s)] for s in setup.problem.params}
    s = np.array([values["s0"], values["s1"]])
    x = s * u  # x = S u, by hand
    dx, _, _ = rule.compile(problem.with_params(**own)).step(x, None)
    du, _, _ = rule.compile(setup.problem.with_params(**new)).step(u, None)
    return dx, s * du


def test_transformed_problem_is_p_of_g_u() -> None:
    """The transformed problem evaluates to P(g(u)) (a check of apply itself)."""
    rng = np.random.default_rng(3)
    for problem, transform, _ in CASES.values():
        setup = transform.apply(problem)
        values = dict(TWIN_VALUES)
        u = rng.uniform(-2, 2, size=2)
        at = {**values, **{str(s): v for s, v in zip(setup.inputs, u)}}
        x = _floats(setup.forward, at)
        new = {str(s): values[str(s)] for s in setup.problem.params}
        own = {str(s): values[str(s)] for s in problem.params}
        q = setup.problem.with_params(**new).compile()
        p = problem.with_params(**own).compile()
        factor = values["c"] if isinstance(transform, OutputScaling) else 1.0
        np.testing.assert_allclose(q.P(u), factor * p.P(x), rtol=1e-12)
        np.testing.assert_allclose(q.loss(u), factor**2 * p.loss(x), rtol=1e-12)


def test_map_jacobian_is_the_dense_jacobian_and_finite_differences() -> None:
    """dg/du, built entry by entry from the symbols each entry contains, equals SymPy's dense
    jacobian and central differences of the map."""
    rng = np.random.default_rng(5)
    for problem, transform, _ in CASES.values():
        setup = transform.apply(problem)
        assert setup.jacobian == setup.forward.jacobian(setup.inputs)
        params = {s: TWIN_VALUES.get(str(s), 1.0) for s in setup.problem.params}
        g = sp.lambdify([setup.inputs], list(setup.forward.xreplace(params)), "numpy")
        u = rng.uniform(-2, 2, size=2)
        h = 1e-6
        columns = [(np.array(g(u + h * e)) - np.array(g(u - h * e))) / (2 * h) for e in np.eye(2)]
        exact = setup.jacobian.xreplace({**params, **dict(zip(setup.inputs, u))})
        np.testing.assert_allclose(np.array(exact, dtype=float), np.array(columns).T, atol=1e-7)


def test_apply_is_computed_once_per_problem_and_a_long_scaling_is_described_briefly() -> None:
    first = SCALES.apply(TOY)
    assert InputScaling(["s0", "s1"]).apply(TOY) is first  # equal transforms share it
    assert InputScaling(["s0", "s2"]).apply(TOY) is not first
    many = InputScaling([f"s{i}" for i in range(256)])
    assert many.describe() == "x = S u, S = diag(s0, s1, s2, …, s253, s254, s255)"
    assert SCALES.describe() == "x = S u, S = diag(s0, s1)"


def test_float_eta_is_made_exact_and_proofs_hold() -> None:
    report = scale_invariance(SQUARE, rules.newton(1 / 3), SCALES)
    assert report.verdict is P


def test_transform_errors_name_the_problem() -> None:
    with pytest.raises(ProblemError, match="unknown inputs"):
        InputScaling({"z": 2}).apply(TOY)
    with pytest.raises(ProblemError, match="3 scales for 2 inputs"):
        InputScaling(["s0", "s1", "s2"]).apply(TOY)
    with pytest.raises(ProblemError, match="positive"):
        InputScaling([1, -2]).apply(TOY)
    with pytest.raises(ProblemError, match="not invertible"):
        Reparametrization(["u0 + u1", "2*u0 + 2*u1"]).apply(TOY)
    with pytest.raises(ParseError, match="attribute access"):
        InputScaling([1, "a.b"]).apply(TOY)
    with pytest.raises(ProblemError, match=r"needs values for \['s0', 's1'\]"):
        trajectory_invariance(TOY, rules.ig(0.5), SCALES, [1.0, 1.0], 3, {})


def test_rule_without_a_hessian_is_undecided_with_the_reason() -> None:
    flat = Problem.from_strings(["x0", "x1"], ["x0 + x1"], target=[1])
    report = scale_invariance(flat, rules.newton(ETA), SCALES)
    assert report.verdict is U and "singular" in report.note


def test_decide_equal_proves_refutes_and_gives_up() -> None:
    x, t = sp.Symbol("x", real=True), sp.Symbol("t", real=True)
    trig = sp.Matrix([sp.sin(t) ** 2 * x + sp.cos(t) ** 2 * x])
    assert decide_equal(trig, sp.Matrix([x]), [x]).verdict is P
    assert decide_equal(trig, sp.Matrix([x]), [x], budget=0).verdict is U
    d = decide_equal(sp.Matrix([x**3]), sp.Matrix([x**3 + 1e-6 * x]), [x], rng=0)
    assert d.verdict is R and d.counterexample.difference > 0
    # branch sets: equal as sets even with a repeated branch
    a, b = sp.Matrix([x]), sp.Matrix([-x])
    assert decide_equal((a, b, a), (b, a), [x]).verdict is P
    assert decide_equal((a, b), (a,), [x], rng=0).verdict is R


def test_eta_symbol_cannot_run_trajectories() -> None:
    with pytest.raises(RuleError, match="numeric eta"):
        trajectory_invariance(TOY, rules.ig(ETA), SCALES, [1.0, 1.0], 3, TWIN_VALUES)


def test_reports_are_frozen() -> None:
    report = _report("toy/diag", "ig")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.verdict = R  # type: ignore[misc]


# -- a user's start point first; sample points where P is not finite are skipped ----------------
SPRING = Problem.from_strings(
    ["k", "v0"], ["v0*sqrt(m/k)", "2*pi*sqrt(m/k)"],
    "((y0 - A_star)/A_star)**2/2 + ((y1 - T_star)/T_star)**2/2",
    params={"m": 0.5, "A_star": 0.1, "T_star": 0.8},
)  # fmt: skip


@pytest.mark.parametrize(("transform", "route"), [
    (InputScaling(["s_0", "s_1"]), "auto"),         # the theorem route
    (InputScaling(["s_0", "s_1"]), "expression"),   # the concrete updates simplified
    (Reparametrization(["u0**3", "u1"]), "auto"),   # a nonlinear map: the expression route
])  # fmt: skip
def test_a_counterexample_is_sought_first_at_the_given_point(transform, route) -> None:
    """The spring: sqrt(m/k) is not real for most sample points k in (-2, 2); the start
    (10, 0.5) is where GD is refuted, and the compiled steps there confirm it (twin)."""
    k, v0 = SPRING.inputs
    at = {**SPRING.params, ETA: 0.3}
    r = scale_invariance(SPRING, rules.gd(ETA), transform, rng=0, at=at,
                         point={k: 10.0, v0: 0.5}, route=route)  # fmt: skip
    assert r.verdict is R
    ce = r.counterexample
    setup = transform.apply(SPRING)
    values = {s: ce.values()[str(s)] for s in (*setup.inputs, *setup.new_params)}
    x = [float(e.subs(values)) for e in setup.forward]
    assert x == pytest.approx([10.0, 0.5], rel=1e-9)  # the counterexample is the start
    assert ce.params["eta"] == 0.3 and ce.params["m"] == 0.5
    step = minimize(SPRING, rules.gd(0.3), np.array([x]), 1).x[-1, 0] - np.array(x)
    assert step == pytest.approx(ce.lhs, rel=1e-8)  # Δx at the start, by the compiled rule


def test_sample_points_where_p_is_not_finite_are_skipped() -> None:
    at = {**SPRING.params, ETA: 0.3}
    r = scale_invariance(SPRING, rules.gd(ETA), InputScaling(["s_0", "s_1"]), rng=0, at=at)
    assert r.verdict is R and r.counterexample.point["u0"] > 0  # k = s_0 u0 > 0: P is real
