"""The box where the loss cannot diverge, and the loop that skips the loss inside it."""

from __future__ import annotations

import numpy as np
import pytest

from scaleinv import Problem, minimize, rules
from scaleinv.numeric import compile_problem, runtime
from scaleinv.numeric.loss_radius import BOUND, loss_enclosure, loss_radius

COMPARISON = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], target=[2.0, 3.0])
WAVY = Problem.from_strings(
    ["x0", "x1"], ["sin(x0) + x1**3", "exp(x0/5) * cosh(x1) + atan(x0*x1)"], target=[1.0, 2.0]
)


@pytest.mark.parametrize("problem", [COMPARISON, WAVY], ids=["comparison", "wavy"])
def test_the_loss_in_the_box_is_below_the_bound_where_sampled(problem) -> None:
    # the numeric twin of the interval walk: the loss kernel at random points of the box,
    # at its corners and at points scaled towards them
    radius = loss_radius(problem)
    assert radius is not None and radius >= 1.0
    rng = np.random.default_rng(0)
    n = problem.n
    corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * n)).reshape(n, -1).T
    unit = np.concatenate([rng.uniform(-1, 1, (20_000, n)), corners])
    scales = np.logspace(0, np.log10(radius), 40)
    points = (unit[None] * scales[:, None, None]).reshape(-1, n)
    with np.errstate(all="ignore"):
        values = compile_problem(problem).loss(points)
    assert np.isfinite(values).all() and np.abs(values).max() <= BOUND
    # and the bisection found the largest power of ten: ten times further it can exceed
    box = {x: (-10 * radius, 10 * radius) for x in problem.inputs}
    at = {y: loss_enclosure(p, box) for y, p in zip(problem.output_symbols, problem.outputs)}
    lo, hi = loss_enclosure(problem.loss, at)
    assert max(abs(lo), abs(hi)) > BOUND


def test_the_comparison_radius_is_the_fourth_root_of_the_bound() -> None:
    # |L| <= ((R + 2)² + (R² + 3)²) / 2 on the box: about R**4 / 2 <= 1e100
    assert loss_radius(COMPARISON) == 1e25


@pytest.mark.parametrize(
    "outputs", [["1/x0"], ["log(x0)"], ["sqrt(x0)"], ["tan(x0)"]], ids=lambda o: o[0]
)
def test_a_loss_with_a_pole_or_a_domain_has_no_radius(outputs) -> None:
    # sqrt(x0): L(P(x)) written out is x0/2, bounded, but the kernel's sqrt(x0)**2 is NaN below 0
    assert loss_radius(Problem.from_strings(["x0"], outputs)) is None


def test_intervals_of_products_and_powers_hold_their_samples() -> None:
    import sympy as sp

    x, y = sp.symbols("x y")
    expr = (x - 2) ** 3 * y + sp.Abs(x * y) - sp.exp(y) * sp.tanh(x) + sp.cosh(y) / 3
    lo, hi = loss_enclosure(expr, {x: (-1.5, 0.5), y: (-2.0, 1.0)})
    f = sp.lambdify((x, y), expr, "numpy")
    gx, gy = np.meshgrid(np.linspace(-1.5, 0.5, 301), np.linspace(-2.0, 1.0, 301))
    values = f(gx, gy)
    assert lo <= values.min() and values.max() <= hi
    assert loss_enclosure(x**-2, {x: (1.0, 2.0)}) is None  # division: never bounded


def _run(x0: np.ndarray, steps: int, radius: float | None):
    """GD (eta 0.05) from ``x0``: statuses, steps taken, the recorders of every step and of
    the ends, and how often each run evaluated the loss."""
    kernels = compile_problem(COMPARISON)
    step = rules.gd(0.05).compile(COMPARISON).step
    calls = []

    def loss(x):
        calls.append(len(x))
        return kernels.loss(x)

    recorder = runtime.Recorder(kernels.P, list(range(steps + 1)), x0, COMPARISON.m)
    ends = runtime.Recorder(kernels.P, [0, steps], x0, COMPARISON.m)
    status, taken = runtime.iterate(step, kernels.gradient, loss, x0, steps, None, recorder,
                                    radius=radius)  # fmt: skip
    calls_all = len(calls)
    runtime.iterate(step, kernels.gradient, loss, x0, steps, None, ends, radius=radius)
    return status, taken, recorder, ends, calls_all, len(calls) - calls_all


def test_the_loop_skips_the_loss_inside_the_box_with_the_same_statuses_and_values() -> None:
    # GD with eta = 0.05 on L = ½((x0-2)² + (x1²-3)²): starts near the minimum converge, starts
    # with |x1| >= 5 blow up cubically, past the box (1e25) and the loss limit, into inf/NaN
    rng = np.random.default_rng(1)
    x0 = np.concatenate([rng.uniform(-3, 3, (200, 2)), [[0.0, 5.0], [1.0, -6.0], [0, 30.0]]])
    steps = 40
    plain = _run(x0, steps, None)
    boxed = _run(x0, steps, loss_radius(COMPARISON))
    assert (plain[0] == runtime.DIVERGED).sum() == 3  # what the test is about
    np.testing.assert_array_equal(boxed[0], plain[0])
    np.testing.assert_array_equal(boxed[1], plain[1])
    for got, want in ((boxed[2], plain[2]), (boxed[3], plain[3])):  # record all, and the ends
        np.testing.assert_array_equal(got.x, want.x)
        np.testing.assert_array_equal(got.loss, want.loss)
        np.testing.assert_array_equal(got.y, want.y)
    assert plain[4] == plain[5] == steps + 1  # without the box: the loss every step
    assert boxed[4] == steps + 1  # record="all" needs it every step anyway
    # the ends only: steps 0 and the end, and the steps where the diverging samples left the box
    left = int(plain[1][plain[0] == runtime.DIVERGED].max()) + 1
    assert boxed[5] <= 2 + left < steps


def test_minimize_statuses_and_losses_do_not_depend_on_the_box(monkeypatch) -> None:
    # above the driver's threshold the box is used; patched off, every step checks the loss
    from scaleinv.numeric import driver

    rng = np.random.default_rng(2)
    x0 = np.concatenate([rng.uniform(-3, 3, (30_000, 2)), [[0.0, 4.0], [1.0, -6.0]]])
    for rule in (rules.gd(0.05), rules.newton(1.2), rules.pg(0.3)):
        boxed = minimize(COMPARISON, rule, x0, 40, tol=1e-8, engine="numpy")
        with monkeypatch.context() as m:
            m.setattr(driver, "loss_radius", lambda problem: None)
            plain = minimize(COMPARISON, rule, x0, 40, tol=1e-8, engine="numpy")
        np.testing.assert_array_equal(boxed.status, plain.status)
        np.testing.assert_array_equal(boxed.steps_taken, plain.steps_taken)
        np.testing.assert_array_equal(boxed.x, plain.x)
        np.testing.assert_array_equal(boxed.loss, plain.loss)
