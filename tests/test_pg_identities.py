"""PG identities: exactness, agreement with IG, the average-gradient identity, the remainder
order and the local-inverse limit — each verdict with an independent numeric twin."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad

from scaleinv import Problem, rules
from scaleinv.analysis.claims.pg_identities import (
    ETA,
    average_gradient,
    local_inverse_limit,
    pg_exactness,
    pg_ig_agreement,
    quotient_remainder,
)
from scaleinv.analysis.verdict import Verdict
from scaleinv.errors import ProblemError

EXACT = {
    "square": Problem.from_strings(["x"], ["x**2"], target=[4]),
    "cubic_exp": Problem.from_strings(["u", "v"], ["u**3", "exp(v)"], target=[8, 2]),
    "comparison": Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2"),
}


def _positive_points(problem: Problem, rng: np.random.Generator, size: int = 8) -> np.ndarray:
    return rng.uniform(0.4, 2.5, size=(size, problem.n))


@pytest.mark.parametrize("name", sorted(EXACT))
def test_pg_lands_exactly_on_the_y_step(name) -> None:
    problem = EXACT[name]
    report = pg_exactness(problem)
    assert report.verdict is Verdict.PROVED
    assert all(all(r == 0 for r in branch) for branch in report.residuals)
    rng = np.random.default_rng(3)
    kernels = problem.compile()
    for eta in (0.2, 0.7):
        x = _positive_points(problem, rng)
        dx, _, status = rules.pg(eta).compile(problem).step(x, None)
        y = kernels.P(x)
        wanted = y + eta * kernels.newton_dy(y)
        assert np.allclose(kernels.P(x + dx), wanted, rtol=1e-10, atol=1e-10)


def test_pg_exactness_is_refuted_outside_the_range_of_p_and_the_counterexample_holds_up() -> None:
    problem = Problem.from_strings(["x"], ["atan(x)"], target=[2])  # 2 > pi/2: not reachable
    report = pg_exactness(problem)
    assert report.verdict is Verdict.REFUTED
    ce = report.decisions[0].counterexample
    x, eta = ce.point["x"], ce.params["eta"]
    y_new = np.arctan(x) + eta * (2 - np.arctan(x))
    assert y_new > np.pi / 2  # no real x has atan(x) = y_new
    landed = np.arctan(np.tan(y_new))  # the closed-form branch tan(y) lands elsewhere
    assert abs(landed - y_new) > 1.0 and landed == pytest.approx(ce.lhs[0])


@pytest.mark.parametrize("name", ["square", "cubic_exp", "comparison"])
def test_pg_equals_ig_to_first_order_and_differs_at_second(name) -> None:
    problem = EXACT[name]
    report = pg_ig_agreement(problem)
    assert report.verdict is Verdict.PROVED and report.second_order
    assert all(g == 0 for g in report.first_order_gap)
    x = _positive_points(problem, np.random.default_rng(4), 3)
    symbols = [sp.Symbol(s.name, positive=True) for s in problem.inputs]
    for point in x:
        coefficient = np.array(
            [float(c.subs(dict(zip(symbols, point)))) for c in report.remainder], dtype=float
        )
        for eta in (1e-2, 1e-3):
            pg_dx, _, _ = rules.pg(eta).compile(problem).step(point, None)
            ig_dx, _, _ = rules.ig(eta).compile(problem).step(point, None)
            assert (pg_dx - ig_dx) / eta**2 == pytest.approx(coefficient, rel=0.05, abs=1e-6)


def test_agreement_at_a_point_and_without_a_branch_through_it() -> None:
    coupled = Problem.from_strings(["a", "b"], ["a + b", "a*b"], target=[4, 2])
    at_point = pg_ig_agreement(coupled, point=[2, sp.Rational(1, 2)])
    assert at_point.verdict is Verdict.PROVED and at_point.second_order
    nowhere = pg_ig_agreement(coupled)  # on a, b > 0 no branch is symbolically through (a, b)
    assert nowhere.verdict is Verdict.UNDECIDED and nowhere.branch is None


@pytest.mark.parametrize(("text", "target"), [("x**2", 4), ("exp(x)", 2)])
def test_average_gradient_identity_and_its_quadrature_twin(text, target) -> None:
    problem = Problem.from_strings(["x"], [text], target=[target])
    report = average_gradient(problem)
    assert report.verdict is Verdict.PROVED and report.reciprocal is Verdict.PROVED
    inverse = problem.local_inverse()
    kernels = problem.compile()
    for x0, eta in ((0.7, 0.3), (1.9, 0.8)):
        y0 = float(kernels.P(np.array([x0]))[0])
        dy = eta * float(kernels.newton_dy(np.array([y0]))[0])
        x1 = float(inverse.inv([y0 + dy], [x0])[0])

        def dxdy(w: float, x0: float = x0) -> float:
            return 1.0 / float(kernels.jacobian(inverse.inv([w], [x0]))[0, 0])

        average = quad(dxdy, y0, y0 + dy)[0] / dy
        assert (x1 - x0) / dy == pytest.approx(average, rel=1e-8)
        ratio = float(report.ratio.subs({sp.Symbol("x", positive=True): x0, ETA: eta}))
        assert ratio == pytest.approx(average, rel=1e-10)
        mean_slope = quad(lambda s: float(kernels.jacobian(np.array([s]))[0, 0]), x0, x1)[0]
        assert ratio * mean_slope / (x1 - x0) == pytest.approx(1.0)
        assert abs(ratio - mean_slope / (x1 - x0)) > 1e-2  # the literal reading fails


def test_quotient_remainder_is_first_order_not_second() -> None:
    report = quotient_remainder(Problem.from_strings(["x"], ["x**2"]))
    assert report.verdict is Verdict.REFUTED and report.order == 1
    x = sp.Symbol("x", positive=True)
    assert sp.simplify(report.coefficients[1] + 1 / (8 * x**3)) == 0
    for x0 in (0.6, 1.7):
        residual = [(np.sqrt(x0**2 + dy) - x0) / dy - 1 / (2 * x0) for dy in (1e-3, 1e-4, -1e-4)]
        slopes = np.array(residual) / np.array([1e-3, 1e-4, -1e-4])
        assert slopes == pytest.approx(-1 / (8 * x0**3), rel=1e-2)  # O(Δy), not O(Δy²)


def test_quotient_remainder_vanishes_for_a_linear_map() -> None:
    report = quotient_remainder(Problem.from_strings(["x"], ["3*x - 1"]))
    assert report.verdict is Verdict.PROVED and report.order is None


@pytest.mark.parametrize(("text", "x0"), [("exp(x)", "1/2"), ("x**3", "2"), ("x**3", "-1")])
def test_local_inverse_limit_and_its_numeric_twin(text, x0) -> None:
    problem = Problem.from_strings(["x"], [text])
    report = local_inverse_limit(problem, sp.Rational(x0))
    assert report.verdict is Verdict.PROVED
    assert report.branch_difference == 0  # the nearest branch is the global inverse
    assert report.limit_above == 0 == report.limit_below
    kernels, inverse = problem.compile(), problem.local_inverse()
    x0f = float(sp.Rational(x0))
    y0 = float(kernels.P(np.array([x0f]))[0])
    slope = float(kernels.jacobian(np.array([x0f]))[0, 0])
    for t in (1e-3, 1e-4):
        first = x0f + t / slope
        ratio = (first - float(inverse.inv([y0 + t], [x0f])[0])) / t
        assert ratio == pytest.approx(float(report.slope) * t, rel=1e-2)


def test_local_inverse_limit_without_a_global_inverse_is_undecided() -> None:
    report = local_inverse_limit(Problem.from_strings(["x"], ["x**2"]), -2)
    assert report.global_inverse is None and report.verdict is Verdict.UNDECIDED
    assert report.nearest == -sp.sqrt(sp.Symbol("y0", real=True))
    assert report.limit_above == 0  # the first-order inverse still matches the branch


def test_one_dimensional_identities_reject_vector_problems() -> None:
    with pytest.raises(ProblemError, match="n = m = 1"):
        quotient_remainder(EXACT["comparison"])
