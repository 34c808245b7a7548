"""Sensitivity to a scale alpha and convergence near a flat optimum: symbolic vs numeric twins."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from scaleinv import Problem, rules
from scaleinv.analysis.sensitivity import LOSS_STEP, near_optimum, power_of, sensitivity
from scaleinv.errors import ProblemError
from scaleinv.numeric.status import Status


def _loss_problem(loss: str, alpha: float) -> Problem:
    return Problem.from_strings(["x"], [loss], loss="y0", params={"alpha": alpha})


def _slope(values: dict[float, float]) -> float:
    """d log|f| / d log alpha from two samples."""
    (a1, f1), (a2, f2) = values.items()
    return float(np.log(abs(f2) / abs(f1)) / np.log(a2 / a1))


def test_power_of_matches_a_log_log_slope_at_random_points() -> None:
    a, x = sp.symbols("alpha x", positive=True)
    rng = np.random.default_rng(1)
    for expr in (3 * x * a**2, -x / a, sp.sqrt(a) * x**2, a**0 * x):
        k = power_of(expr, a)
        xv = rng.uniform(0.5, 2.0)
        f = sp.lambdify(a, expr.subs(x, xv))
        assert _slope({1.5: f(1.5), 6.0: f(6.0)}) == pytest.approx(float(k))
    assert power_of(a * x + a**2, a) is None
    assert power_of(sp.Integer(0), a) is None


@pytest.mark.parametrize("eta", [0.1, 0.02])
def test_gd_on_alpha_x_scales_with_alpha_and_its_loss_change_with_alpha_squared(eta) -> None:
    gd = {r.rule: r for r in sensitivity("alpha*x")}["gd"]
    assert (gd.delta_power, gd.loss_change_power, gd.preconditioner_power) == (1, 2, 0)
    steps, drops = {}, {}
    for alpha in (2.0, 8.0):
        p = _loss_problem("alpha*x", alpha)
        dx, _, _ = rules.gd(eta).compile(p).step(np.array([0.7]), None)
        kernels = p.compile()
        steps[alpha] = dx[0]
        drops[alpha] = kernels.loss(np.array([0.7]) + dx) - kernels.loss(np.array([0.7]))
        assert dx[0] == pytest.approx(-eta * alpha)  # the chapter's Δx = −ηα
    assert _slope(steps) == pytest.approx(1.0)
    assert _slope(drops) == pytest.approx(2.0)


def test_newton_has_no_step_on_a_linear_loss_and_says_why() -> None:
    newton = {r.rule: r for r in sensitivity("alpha*x")}["newton"]
    assert not newton.exists and newton.delta is None
    assert "L'' = 0 for every x" in newton.reason and "[[" not in newton.reason  # words, not code
    p = _loss_problem("alpha*x", 3.0)
    _, _, status = rules.newton(1.0).compile(p).step(np.array([0.5]), None)
    assert Status(int(status)) is Status.SINGULAR


def test_ig_and_pg_take_a_requested_loss_step_scaled_by_one_over_alpha() -> None:
    found = {r.rule: r for r in sensitivity("alpha*x")}
    for name in ("ig", "pg"):
        assert found[name].delta_power == -1 and found[name].loss_change_power == 0
    assert found["ig"].preconditioner_power == -2  # the 1/α² the chapter asks for
    x, alpha = sp.Symbol("x", real=True), sp.Symbol("alpha", positive=True)
    for a, dl, x0 in ((0.5, -0.3, 1.2), (7.0, 0.9, -0.4)):
        values = {alpha: a, LOSS_STEP: dl, x: x0}
        dx = float(found["ig"].delta.subs(values))
        assert a * (x0 + dx) - a * x0 == pytest.approx(dl)  # L(x + Δx) − L(x) = ΔL


def test_quadratic_loss_newton_cancels_alpha_gd_squares_it() -> None:
    found = {r.rule: r for r in sensitivity("(alpha*x)**2", rule_names=["gd", "newton", "pg"])}
    assert (found["gd"].delta_power, found["newton"].delta_power) == (2, 0)
    assert found["newton"].preconditioner_power == -2
    assert found["pg"].delta_power is None  # √(x² + ΔL/α²) − x is no power law in α
    steps = {}
    for alpha in (1.0, 5.0):
        p = _loss_problem("(alpha*x)**2", alpha)
        newton_dx, _, _ = rules.newton(0.5).compile(p).step(np.array([0.8]), None)
        gd_dx, _, _ = rules.gd(0.01).compile(p).step(np.array([0.8]), None)
        assert newton_dx[0] == pytest.approx(-0.4)
        steps[alpha] = gd_dx[0]
    assert _slope(steps) == pytest.approx(2.0)


def test_unknown_rule_is_reported_as_missing() -> None:
    (report,) = sensitivity("alpha*x", rule_names=["bogus"])
    assert not report.exists and "unknown rule" in report.reason


@pytest.mark.parametrize(
    ("power", "expected"),
    [
        (4, {"newton": "1/3", "ig": "1/2", "pg": "1"}),
        (6, {"newton": "1/5", "ig": "1/3", "pg": "1"}),
    ],
)
def test_near_optimum_limits_with_eta_one(power, expected) -> None:
    found = {r.rule: r for r in near_optimum(power, 1)}
    assert found["gd"].stalls and not found["gd"].progresses
    for name, value in expected.items():
        assert found[name].limit == sp.Rational(value) == found[name].limit_below
        assert found[name].progresses


@pytest.mark.parametrize("power", [4, 6])
@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_near_optimum_numeric_twin(power, eta) -> None:
    """|Δx|/|x| from the compiled rules at x = ±1e-3, ±1e-4 against the symbolic limits."""
    p = Problem.from_strings(["x"], [f"x**{power // 2}"], loss="y0**2")
    found = {r.rule: r for r in near_optimum(power, eta)}
    x = np.array([[1e-3], [1e-4], [-1e-3], [-1e-4]])
    for name, report in found.items():
        dx, _, status = rules.REGISTRY[name](eta).compile(p).step(x, None)
        ratio = np.abs(dx[:, 0]) / np.abs(x[:, 0])
        if report.stalls:
            assert np.all(ratio < 1e-5) and ratio[1] < ratio[0]
        else:
            assert ratio == pytest.approx(float(report.limit), rel=1e-6)


def test_near_optimum_needs_an_even_power() -> None:
    with pytest.raises(ProblemError, match="even power"):
        near_optimum(3)
