from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from catalogue import CATALOGUE, evaluate, sample_points

from scaleinv import Problem, minimize, rules
from scaleinv.errors import NumericOnlyError, RuleError
from scaleinv.numeric.rules import make_rule
from scaleinv.symbolic import RuleSpec

SYMBOLIC = [rules.gd(0.05), rules.newton(0.5), rules.ig(0.5)]
NAMES = sorted(CATALOGUE)


def _step(rule, problem, x):
    dx, _, status = rule.compile(problem).step(x, None)
    return dx, status


@pytest.mark.parametrize("rule", SYMBOLIC, ids=lambda r: r.name)
@pytest.mark.parametrize("name", NAMES)
def test_compiled_step_equals_symbolic_delta(name: str, rule) -> None:
    problem = CATALOGUE[name]
    x = sample_points(name, np.random.default_rng(5), 4)
    dx, status = _step(rule, problem, x)
    delta = rule.delta(problem)
    for i, point in enumerate(x):
        np.testing.assert_allclose(
            dx[i], evaluate(delta, problem, point)[:, 0], rtol=1e-9, atol=1e-12
        )
    assert np.all(status == 0)


@pytest.mark.parametrize("name", sorted(set(NAMES) - {"overdetermined"}))
def test_pg_step_is_the_nearest_real_branch_of_its_symbolic_deltas(name: str) -> None:
    problem = CATALOGUE[name]
    rule = rules.pg(0.5)
    x = sample_points(name, np.random.default_rng(6), 4)
    dx, status = _step(rule, problem, x)
    deltas = rule.delta(problem)
    solved = 0
    for i, point in enumerate(x):
        candidates = []
        for d in deltas:
            value = np.array(
                d.subs(dict(zip(problem.inputs, point))).subs(problem.params).evalf(), dtype=complex
            )[:, 0]
            if np.all(np.abs(value.imag) < 1e-12):
                candidates.append(value.real)
        if not candidates:  # no real root pair for this step: the rule must say so
            assert status[i] == 4 and np.all(dx[i] == 0)
            continue
        solved += 1
        assert status[i] == 0
        nearest = min(candidates, key=np.linalg.norm)
        np.testing.assert_allclose(dx[i], nearest, rtol=1e-8, atol=1e-10)
        # exactness: P(x + Δx) = y + Δy
        y = evaluate(problem.P, problem, point)[:, 0]
        dy = 0.5 * evaluate(problem.newton_dy.subs(problem.at_P), problem, point)[:, 0]
        np.testing.assert_allclose(
            problem.compile().P(point + dx[i]), y + dy, rtol=1e-9, atol=1e-12
        )
    assert solved >= 2


@pytest.mark.parametrize("name", ["coupled", "trig", "cubic_exp", "overdetermined"])
def test_hig_with_beta_one_is_gauss_newton_and_minus_one_is_gd(name: str) -> None:
    problem = CATALOGUE[name]  # default loss ½|y − y*|², so the Gauss–Newton step is IG's
    x = sample_points(name, np.random.default_rng(7), 5)
    np.testing.assert_allclose(
        _step(rules.hig(0.7, beta=1), problem, x)[0],
        _step(rules.ig(0.7), problem, x)[0],
        rtol=1e-9,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        _step(rules.hig(0.7, beta=-1), problem, x)[0],
        _step(rules.gd(0.7), problem, x)[0],
        rtol=1e-9,
        atol=1e-12,
    )


def test_hig_half_inverse_and_rcond_cutoff() -> None:
    problem = Problem.from_strings(["x0", "x1"], ["2*x0", "8*x1"])
    x = np.array([[1.0, 1.0]])  # g = y = (2, 8), J = diag(2, 8)
    dx = _step(rules.hig(1.0, beta=0.5), problem, x)[0]
    np.testing.assert_allclose(dx, [[-2 / np.sqrt(2), -8 / np.sqrt(8)]])
    dropped = _step(rules.hig(1.0, beta=0.5, rcond=0.5), problem, x)[0]  # 2 < 0.5 * 8
    np.testing.assert_allclose(dropped, [[0.0, -8 / np.sqrt(8)]])


def test_hig_cutoff_uses_the_whole_batch() -> None:
    problem = Problem.from_strings(["x"], ["x**2"])  # J = 2x: σ = 2 alone, 2 and 200 together
    k = rules.hig(1.0, beta=1, rcond=0.05).compile(problem)
    alone = k.step(np.array([[1.0]]), None)[0]
    together = k.step(np.array([[1.0], [100.0]]), None)[0]
    np.testing.assert_allclose(alone, [[-0.5]])  # Gauss–Newton: −J⁻¹ y = −1/2
    np.testing.assert_allclose(together, [[0.0], [-50.0]])  # σ = 2 < 0.05 · 200 is dropped


def test_ig_uses_the_pseudo_inverse_for_non_square_jacobians() -> None:
    problem = CATALOGUE["overdetermined"]
    x = sample_points("overdetermined", np.random.default_rng(8), 3)
    k = problem.compile()
    want = np.stack(
        [
            np.linalg.lstsq(k.jacobian(p), 0.5 * (np.array([1, 2, 2]) - k.P(p)), rcond=None)[0]
            for p in x
        ]
    )
    np.testing.assert_allclose(_step(rules.ig(0.5), problem, x)[0], want, rtol=1e-9)


def test_singular_matrices_are_flagged_not_nan() -> None:
    problem = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0 + x1"])
    dx, status = _step(rules.newton(1.0), problem, np.array([[1.0, 2.0]]))
    assert status.tolist() == [5] and np.all(dx == 0)
    dx, status = _step(rules.ig(1.0), problem, np.array([[1.0, 2.0]]))
    assert status.tolist() == [5] and np.all(dx == 0)


def test_pg_without_real_solution_reports_no_inverse_or_falls_back_to_ig() -> None:
    problem = Problem.from_strings(["x"], ["x**2"], target=[-1])
    x = np.array([[0.5], [2.0]])
    dx, status = _step(rules.pg(1.0), problem, x)
    assert status.tolist() == [4, 4] and np.all(dx == 0)
    dx_fb, status_fb = _step(rules.pg(1.0, fallback="ig"), problem, x)
    np.testing.assert_allclose(dx_fb, _step(rules.ig(1.0), problem, x)[0])
    assert status_fb.tolist() == [0, 0]


def test_symbolic_eta_and_numeric_only_rules() -> None:
    eta = sp.Symbol("eta", positive=True)
    p = CATALOGUE["scaling_toy"]
    assert sp.simplify(rules.newton(eta).delta(p) + eta * sp.Matrix(p.inputs)) == sp.zeros(2, 1)
    with pytest.raises(NumericOnlyError, match="hig is numeric-only"):
        rules.hig().delta(p)
    with pytest.raises(NumericOnlyError, match="bfgs is numeric-only"):
        rules.bfgs().delta(p)
    with pytest.raises(RuleError, match="numeric eta"):
        rules.gd(eta).compile(p)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (RuleSpec("adam", {}), "unknown rule 'adam'"),
        (RuleSpec("gd", {"eta": -1.0}), "positive finite"),
        (RuleSpec("gd", {"beta": 1.0}), "unexpected keyword"),
        (RuleSpec("pg", {"fallback": "pray"}), "fallback must be one of"),
        (RuleSpec("hig", {"rcond": 2.0}), "rcond must be in"),
    ],
)
def test_bad_rule_settings_are_rule_errors(spec: RuleSpec, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        make_rule(spec)


def test_ig_and_pg_need_a_newton_step_in_y() -> None:
    p = Problem.from_strings(["x"], ["x"], loss="3*y0")
    for rule in (rules.ig(), rules.pg()):
        with pytest.raises(RuleError, match="singular Hessian in y"):
            rule.compile(p)


def test_pg_on_an_overdetermined_map_is_numeric_only() -> None:
    with pytest.raises(NumericOnlyError, match="pg is numeric-only"):
        rules.pg().delta(CATALOGUE["overdetermined"])


@pytest.mark.parametrize(
    "rule",
    [rules.gd(0.05), rules.newton(0.5), rules.ig(0.5), rules.pg(0.5), rules.pg(0.5, "ig")],
    ids=["gd", "newton", "ig", "pg", "pg-ig"],
)
def test_steps_in_chunks_equal_one_whole_batch_step(rule, monkeypatch) -> None:
    from scaleinv.numeric import runtime

    # y1 -> (y1 - 1) / 2 has no real x1 where |x1| < 1: PG fails there (or falls back to IG)
    problem = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + (y1 + 1)**2")
    x = np.random.default_rng(2).uniform(-3, 3, (runtime.CHUNK + 300, 2))
    x[:50, 1] = 0.0  # a singular Jacobian for IG
    step = rule.compile(problem).step
    dx, _, status = step(x, None)
    monkeypatch.setattr(runtime, "CHUNK", 10**9)
    whole_dx, _, whole_status = step(x, None)
    np.testing.assert_array_equal(dx, whole_dx)
    np.testing.assert_array_equal(status, whole_status)
    expected = {"gd": {0}, "newton": {0}, "ig": {0, 5}, "pg": {0, 4}}[rule.name]
    if rule.name == "pg" and rule.fallback == "ig":
        expected = {0, 5}  # where no inverse exists, the IG step (singular at x1 = 0)
    assert set(np.unique(status)) == expected
    if rule.name != "pg":
        return
    if rule.fallback == "ig":  # PG's step where it has one, IG's elsewhere
        pg_dx, _, pg_status = rules.pg(0.5).compile(problem).step(x, None)
        ig_dx = rules.ig(0.5).compile(problem).step(x, None)[0]
        np.testing.assert_array_equal(dx, np.where((pg_status == 0)[:, None], pg_dx, ig_dx))
        return
    ok = status == 0  # the nearest root of x1² = (x1² - 1) / 2 keeps x1's sign
    x1 = x[ok, 1] + dx[ok, 1]
    np.testing.assert_allclose(x1**2, (x[ok, 1] ** 2 - 1) / 2, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(np.sign(x1), np.sign(x[ok, 1]))
    np.testing.assert_array_equal(dx[~ok], 0.0)


def test_a_symbolic_newton_or_ig_solve_past_its_work_limit_is_numeric_only(monkeypatch) -> None:
    """Issue 17: Newton's symbolic det/LU of a coupled Hessian had no work bound (derive,
    verify and report of a six-point heat step never ended); past the limit the rule is
    numeric-only, and its compiled step still runs (a second path: its kernel)."""
    from scaleinv.symbolic import updates

    outputs = [f"x{i} + (x{(i + 1) % 3} - 2*x{i} + x{(i + 2) % 3})/5 + x{i}**2/2" for i in range(3)]
    p = Problem.from_strings(["x0", "x1", "x2"], outputs, target=[0.1, 0.2, 0.3])
    eta = sp.Symbol("eta")
    monkeypatch.setattr(updates, "SOLVE_BUDGET", 20_000)
    for delta, rule in ((updates.newton_delta, "newton"), (updates.ig_delta, "ig")):
        with pytest.raises(NumericOnlyError, match="work limit of 20,000 steps") as info:
            delta(p, eta)
        assert info.value.rule == rule
    t = minimize(p, rules.newton(1.0), np.array([[0.0, 0.0, 0.0]]), steps=40)
    assert float(t.loss[-1, 0]) < 1e-16
