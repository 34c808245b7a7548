"""The numeric local inverse: path following, honest statuses, and its twins with closed forms."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import scaleinv
from scaleinv import rules
from scaleinv.errors import NoInverseError, NumericInverseWarning
from scaleinv.numeric.inverse import TOL
from scaleinv.numeric.pathsolve import path_inverse, solve_square, where_rows
from scaleinv.numeric.status import Status
from scaleinv.symbolic import Problem
from scaleinv.symbolic.ranges import output_bounds

#: Problems with a closed-form inverse: the numeric solve must agree with it.
CLOSED = {
    "cube": ("x", ("x**3",)),
    "exp": ("x", ("exp(x)",)),
    "square": ("a b", ("a", "b**2")),
    "sum-product": ("a b", ("a + b", "a*b")),
    "sine": ("x", ("sin(x)",)),
    "linear3": ("a b c", ("2*a + b - c", "a - 3*b + 2*c", "a + b + 4*c")),
    "shifted-square": ("a b", ("a", "b**2 + a*b")),
}


@functools.cache
def problem(inputs: str, outputs: tuple[str, ...]) -> Problem:
    return Problem.from_strings(inputs, list(outputs))


def small_step_case(p: Problem, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts away from folds (|det J| not small) and targets a small step away in y."""
    rng = np.random.default_rng(seed)
    kernels = p.compile()
    x0 = rng.uniform(-2, 2, size=(400, p.n))
    jac = kernels.jacobian(x0).reshape(-1, p.m, p.n)
    x0 = x0[np.abs(np.linalg.det(jac)) > 0.2][:100]
    y = kernels.P(x0)
    return x0, y + 1e-2 * (1 + np.abs(y)) * rng.uniform(-1, 1, size=y.shape)


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_numeric_solve_equals_the_closed_forms_nearest_branch_for_small_steps(name: str) -> None:
    li = problem(*CLOSED[name]).local_inverse()
    assert not li.numeric
    x0, y = small_step_case(li.problem, seed=len(name))
    closed, numeric = li.compile().solve(y, x0), li.compile(numeric=True).solve(y, x0)
    assert numeric.numeric and not closed.numeric and closed.ok.mean() > 0.9
    np.testing.assert_array_equal(numeric.ok, closed.ok)  # found exactly where a root exists
    np.testing.assert_allclose(numeric.x, closed.x, atol=1e-10, rtol=1e-10)


def test_path_connected_and_nearest_branch_differ_for_a_large_step() -> None:
    """P = (a, b² + a b): the roots b = (−a ± √(a² + 4 y1)) / 2 never meet along the path
    a: 0 → −4 at y1 = 0.01, so the root b = 0.1 of the start continues to b ≈ 4.0025 (the
    numeric inverse: connected to x0), while b ≈ −0.0025 is nearer to 0.1 (the closed form:
    nearest branch)."""
    li = problem(*CLOSED["shifted-square"]).local_inverse()
    y, x0 = np.array([-4.0, 0.01]), np.array([0.0, 0.1])
    nearest = li.compile().solve(y, x0).x
    connected = li.compile(numeric=True).solve(y, x0).x
    root = np.sqrt(16.04)
    np.testing.assert_allclose(nearest, [-4.0, (4 - root) / 2], rtol=1e-12)
    np.testing.assert_allclose(connected, [-4.0, (4 + root) / 2], rtol=1e-12)
    # the same through PG (Δy = y* − y = (−4, 0) with η = 1): pg() takes the nearest branch,
    # pg(inverse="numeric") the connected solution
    p = Problem(li.problem.inputs, li.problem.outputs, target=(-4.0, 0.01))
    assert np.allclose(p.compile().P(x0), [0.0, 0.01])
    one = scaleinv.minimize(p, rules.pg(1.0), x0, steps=1).x[-1]
    with pytest.warns(NumericInverseWarning):
        other = scaleinv.minimize(p, rules.pg(1.0, inverse="numeric"), x0, steps=1).x[-1]
    np.testing.assert_allclose(one, nearest, rtol=1e-12)
    np.testing.assert_allclose(other, connected, rtol=1e-12)


_numeric_problems = st.sampled_from([("x", ("x + sin(x)",)), ("x", ("x**3 - 3*x",))])


@settings(max_examples=10, deadline=None)
@given(_numeric_problems, st.integers(0, 2**16))
def test_every_found_sample_solves_p_to_the_tolerance(case, seed: int) -> None:
    li = problem(*case).local_inverse()
    assert li.numeric
    rng = np.random.default_rng(seed)
    y, x0 = rng.uniform(-6, 6, size=(50, 1)), rng.uniform(-3, 3, size=(50, 1))
    sol = li.compile().solve(y, x0)
    gap = np.abs(li.problem.compile().P(sol.x) - y)
    found = sol.ok
    assert np.all(gap[found] <= TOL * (1 + np.abs(y[found])))
    np.testing.assert_allclose(sol.residual[found], gap[found, 0], atol=1e-15)
    assert found.mean() == 1.0  # both maps are onto: every target has a solution


def test_a_path_through_a_fold_falls_back_to_the_nearest_solution_found() -> None:
    """x³ − 3x from x0 = 0 to y = 5: the path runs into the fold at x = −1 (P = 2 is a local
    maximum), so no solution is connected to x0; the last resort finds the real root 2.279."""
    li = problem("x", ("x**3 - 3*x",)).local_inverse()
    sol = li.compile().solve([5.0], [0.0])
    assert sol.ok
    np.testing.assert_allclose(sol.x**3 - 3 * sol.x, [5.0], rtol=1e-12)
    assert sol.x[0] == pytest.approx(2.2790187861665, rel=1e-10)


def test_a_path_over_a_flat_inflection_is_finished_by_the_last_resort() -> None:
    """x + sin x is onto but flat at x = -pi (P' = 0): the path from x0 = -0.918 to y = -5.485
    stalls there; the free solve from the last path point needs strong damping (Marquardt
    scaling only divides a 1-D Gauss-Newton step by 1 + lambda) to reach the root -5.878."""
    li = problem("x", ("x + sin(x)",)).local_inverse()
    y = [-5.48471094]
    sol = li.compile().solve(y, [-0.91791254])
    assert sol.ok.all()
    assert abs(sol.x[0] + np.sin(sol.x[0]) - y[0]) <= TOL * (1 + abs(y[0]))
    assert sol.x[0] == pytest.approx(-5.87846897, rel=1e-8)


def test_no_inverse_is_certified_and_not_found_is_not() -> None:
    """x² + sin x ≥ −1 (the enclosure), and its true minimum is about −0.232."""
    li = problem("x", ("x**2 + sin(x)",)).local_inverse()
    assert li.numeric and output_bounds(li.problem)[0] == (-1, sp.oo)
    sol = li.compile().solve([[-5.0], [-0.5], [3.0]], [1.0])
    assert [Status(s) for s in sol.status] == [Status.NO_INVERSE, Status.NOT_FOUND, Status.RUNNING]
    np.testing.assert_array_equal(sol.x[:2], [[1.0], [1.0]])  # x0 where none was found
    # residual reached: at x0 for the certified sample; for the other, at the last point on
    # the path, near the minimum of P (x ≈ −0.4502, P ≈ −0.2325): the closest P gets to −0.5
    assert sol.residual[0] == pytest.approx(5.0 + 1 + np.sin(1), rel=1e-12)
    assert 0.5 - 0.2325 <= sol.residual[1] <= 0.3
    with pytest.raises(NoInverseError, match="2 of 3 samples, 1 of them not found"):
        li.inv([[-5.0], [-0.5], [3.0]], [1.0])


def test_range_enclosures_hold_at_random_points() -> None:
    p = Problem.from_strings(["a", "b"], ["a**2 + exp(b)", "3*sin(a) + cos(b)**2", "a*b"])
    bounds = [(float(lo), float(hi)) for lo, hi in output_bounds(p)]
    assert bounds == [(0.0, np.inf), (-3.0, 4.0), (-np.inf, np.inf)]
    values = p.compile().P(np.random.default_rng(0).normal(scale=5, size=(10_000, 2)))
    for k, (lo, hi) in enumerate(bounds):
        assert np.all((values[:, k] >= lo) & (values[:, k] <= hi))


def test_pg_statuses_fallback_and_the_warning() -> None:
    p = problem("x", ("x**2 + sin(x)",))
    p = Problem(p.inputs, p.outputs, target=(-0.5,))  # unreachable: the minimum is ≈ −0.232
    x0 = np.array([[2.0], [-2.0]])
    with pytest.warns(NumericInverseWarning, match="pg uses the numeric local inverse"):
        stopped = scaleinv.minimize(p, rules.pg(1.0), x0, steps=5)
    assert set(stopped.statuses()) == {Status.NOT_FOUND}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericInverseWarning)
        ig = scaleinv.minimize(p, rules.pg(1.0, fallback="ig"), x0, steps=5)
    assert set(ig.statuses()) == {Status.MAX_STEPS}  # IG steps instead of stopping
    assert np.all(ig.x[-1] != x0)


def test_pg_numeric_on_the_comparison_problem_matches_the_closed_form() -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    x0 = np.random.default_rng(3).uniform(-3, 3, size=(200, 2))
    closed = scaleinv.minimize(p, rules.pg(0.3), x0, steps=10)
    with pytest.warns(NumericInverseWarning, match="asks for the numeric inverse"):
        numeric = scaleinv.minimize(p, rules.pg(0.3, inverse="numeric"), x0, steps=10)
    np.testing.assert_allclose(numeric.x, closed.x, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_solve_square_equals_numpy_solve(k: int) -> None:
    rng = np.random.default_rng(k)
    a, b = rng.normal(size=(50, k, k)), rng.normal(size=(50, k))
    want = np.linalg.solve(a, b[..., None])[..., 0]
    np.testing.assert_allclose(solve_square(a, b), want, rtol=1e-9, atol=1e-12)
    assert not np.isfinite(solve_square(np.zeros((1, k, k)), np.ones((1, k)))).all()


def test_path_inverse_on_a_twenty_input_system_and_params() -> None:
    """An implicit Euler step x − 0.1 (Δx + x − x³) = u: batched, with a per-sample param."""
    n = 20

    def P(x, c=0.1):
        lap = np.roll(x, 1, -1) - 2 * x + np.roll(x, -1, -1)
        return x - np.asarray(c)[..., None] * (lap + x - x**3)

    def J(x, c=0.1):
        c = np.asarray(c)[..., None, None]
        eye = np.eye(n)
        lap = np.roll(eye, 1, -1) - 2 * eye + np.roll(eye, -1, -1)
        return eye - c * (lap + eye - 3 * (x**2)[..., None, :] * eye)

    rng = np.random.default_rng(7)
    x_true = rng.uniform(-1, 1, size=(30, n))
    c = rng.uniform(0.05, 0.2, size=30)
    y = P(x_true, c)
    x, status, residual = path_inverse(P, J, y, np.zeros((30, n)), {"c": c})
    assert (status == Status.RUNNING).all() and (residual < 1e-9).all()
    np.testing.assert_allclose(P(x, c), y, atol=1e-10)


_SPEC = """title = "x^2 + sin(x): no closed-form inverse"

[problem]
inputs = ["x"]
outputs = ["x**2 + sin(x)"]

[run]
starts = [[2.0], [-2.0]]
steps = 3

[[rules]]
name = "pg"
eta = 0.5

[[rules]]
name = "ig"
eta = 0.5
"""


def test_run_and_verify_say_once_that_pg_solves_numerically(tmp_path, capsys) -> None:
    from scaleinv.cli.main import main

    spec = tmp_path / "numeric.toml"
    spec.write_text(_SPEC)
    assert main(["run", str(spec)]) == 0
    out = capsys.readouterr().out
    assert out.count("solves P(x) = y numerically") == 1 and "no closed form found" in out
    main(["verify", str(spec), "--budget", "200_000"])
    assert capsys.readouterr().out.count("solve P(x) = y numerically") == 1


@pytest.mark.parametrize("n", [1, 2, 5])
def test_where_rows_is_numpy_where_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    special = [np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, -1e308]
    a = rng.choice(np.r_[special, rng.standard_normal(20)], (300, n))
    b = rng.choice(np.r_[special, rng.standard_normal(20)], (300, n))
    mask = rng.random(300) < 0.5
    got, want = where_rows(mask, a, b), np.where(mask[:, None], a, b)
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))  # NaN, -0.0 kept
    np.testing.assert_array_equal(a, where_rows(np.ones(300, bool), a, b[:, ::-1][:, ::-1]))
