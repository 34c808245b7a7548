"""Indexed problems, numeric side: every kernel and step against the same problem written out
entry by entry (twins at small grids), against finite differences, and one large grid."""

from __future__ import annotations

import time
import tracemalloc
import warnings

import numpy as np
import pytest

import scaleinv
from scaleinv import rules
from scaleinv.errors import NumericInverseWarning, RuleError
from scaleinv.numeric import runtime
from scaleinv.numeric.driver import compiled_rule
from scaleinv.numeric.status import Status
from scaleinv.symbolic import IndexedProblem

DIFFUSION = "u[i] + 0.1*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3"
BRUSSELATOR = [
    "u[i,j] + D*(u[i+1,j] + u[i-1,j] + u[i,j+1] + u[i,j-1] - 4*u[i,j]) + dt*(a - (b+1)*u[i,j]"
    " + u[i,j]**2*v[i,j])",
    "v[i,j] + D*(v[i+1,j] + v[i-1,j] + v[i,j+1] + v[i,j-1] - 4*v[i,j]) + dt*(b*u[i,j]"
    " - u[i,j]**2*v[i,j])",
]
BRUSSELATOR_PARAMS = {"n": 4, "m": 3, "D": 0.05, "dt": 0.1, "a": 1, "b": 3}


def _cases() -> dict[str, IndexedProblem]:
    one = {"n": 7, "c": 0.05}
    sine = "0.5*sin(2*pi*i/n)"
    return {
        "1d-periodic": IndexedProblem.from_strings("u[0:n]", DIFFUSION, params=one, target=sine),
        "1d-dirichlet": IndexedProblem.from_strings(
            "u[0:n]",
            DIFFUSION,
            boundary={"kind": "dirichlet", "value": 0.3},
            params=one,
            target_from=sine,
        ),
        "1d-neumann": IndexedProblem.from_strings(
            "u[0:n]", DIFFUSION, boundary="neumann", params=one, target=sine
        ),
        "1d-wide-per-point": IndexedProblem.from_strings(
            "u[0:n]",
            "a[i]*u[i] + 0.1*u[i+2]**2 - 0.2*u[i-1]",
            boundary="neumann",
            params={"n": 7, "a": "1 + 0.1*i"},
            target_from="0.3*cos(i)",
        ),
        "2d-periodic": IndexedProblem.from_strings(
            "u[0:n, 0:m]",
            "u[i,j] + 0.1*(u[i+1,j] + u[i,j-1] - 2*u[i,j]) + 0.05*u[i,j]**3",
            params={"n": 4, "m": 5},
            target="0.2*i - 0.1*j",
        ),
        "brusselator-periodic": IndexedProblem.from_strings(
            ["u[0:n, 0:m]", "v[0:n, 0:m]"],
            BRUSSELATOR,
            params=BRUSSELATOR_PARAMS,
            target_from=["1 + 0.1*sin(i)", "3 + 0.1*cos(j)"],
        ),
        "brusselator-dirichlet": IndexedProblem.from_strings(
            ["u[0:n, 0:m]", "v[0:n, 0:m]"],
            BRUSSELATOR,
            boundary={"kind": "dirichlet", "value": {"u": 1, "v": 3}},
            params=BRUSSELATOR_PARAMS,
            target=["1", "3"],
        ),
    }


CASES = _cases()


@pytest.fixture(scope="module")
def twins() -> dict[str, tuple]:
    """Each case with its problem written out entry by entry, and start points."""
    out = {}
    for name, problem in CASES.items():
        rng = np.random.default_rng(len(name))
        base = (
            np.concatenate(
                [np.full(problem.points, 1.0 if f == "u" else 3.0) for f in problem.fields]
            )
            if problem.fields == ("u", "v")
            else np.zeros(problem.n)
        )
        x = base + 0.2 * rng.standard_normal((3, problem.n))
        out[name] = (problem, problem.to_problem(), x)
    return out


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-12) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = 1.0 + np.abs(b).max()
    assert np.abs(a - b).max() <= tol * scale, np.abs(a - b).max()


@pytest.mark.parametrize("name", list(CASES))
def test_kernels_match_the_expanded_problem(twins, name: str):
    problem, expanded, x = twins[name]
    k, e = problem.compile(), expanded.compile()
    _close(k.target, np.array([float(t.subs(expanded.params)) for t in expanded.target]))
    _close(k.P(x), e.P(x))
    _close(k.loss(x), e.loss(x))
    _close(k.gradient(x), e.gradient(x))
    for sample in x:
        _close(k.jacobian_matrix(sample).toarray(), e.jacobian(sample))
        _close(k.hessian_matrix(sample).toarray(), e.hessian(sample))


@pytest.mark.parametrize("name", list(CASES))
def test_steps_match_the_expanded_problem(twins, name: str):
    problem, expanded, x = twins[name]
    for rule in (rules.gd(0.05), rules.newton(0.7), rules.ig(0.7)):
        ours = scaleinv.minimize(problem, rule, x, 3, record="all")
        theirs = scaleinv.minimize(expanded, rule, x, 3, record="all")
        assert ours.statuses() == theirs.statuses(), rule.name
        _close(ours.x, theirs.x, 1e-11)
        _close(ours.loss, theirs.loss, 1e-11)


@pytest.mark.parametrize("name", list(CASES))
def test_pg_steps_match_a_root_finder_on_the_expanded_problem(twins, name: str):
    """PG's step solves P(x + Δx) = y + Δy: SciPy's root finder on the expanded problem's
    kernels, from the same x, finds the same point (the expanded problem's own PG would first
    search a closed form of a coupled system: minutes)."""
    from scipy.optimize import root

    problem, expanded, x = twins[name]
    e = expanded.compile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericInverseWarning)
        dx, _, status = compiled_rule(problem, rules.pg(0.5)).step(x, None)
    assert (status == runtime.RUNNING).all()
    for sample, step in zip(x, dx):
        y = e.P(sample)
        goal = y - 0.5 * (y - problem.compile().target)
        found = root(lambda v, goal=goal: e.P(v) - goal, sample, jac=e.jacobian, tol=1e-13)
        assert np.abs(e.P(found.x) - goal).max() < 1e-12
        _close(sample + step, found.x, 1e-10)


@pytest.mark.parametrize("name", ["1d-dirichlet", "1d-wide-per-point", "brusselator-periodic"])
def test_derivatives_match_finite_differences(twins, name: str):
    problem, _, x = twins[name]
    k = problem.compile()
    point = x[0]
    h = 1e-6
    basis = np.eye(problem.n)
    loss_fd = [(k.loss(point + h * e) - k.loss(point - h * e)) / (2 * h) for e in basis]
    np.testing.assert_allclose(k.gradient(point), loss_fd, atol=1e-7)
    p_fd = np.stack([(k.P(point + h * e) - k.P(point - h * e)) / (2 * h) for e in basis], axis=1)
    np.testing.assert_allclose(k.jacobian_matrix(point).toarray(), p_fd, atol=1e-7)
    g_fd = np.stack(
        [(k.gradient(point + h * e) - k.gradient(point - h * e)) / (2 * h) for e in basis], axis=1
    )
    np.testing.assert_allclose(k.hessian_matrix(point).toarray(), g_fd, atol=1e-6)


def test_pg_steps_invert_the_outputs(twins):
    """PG's step lands where P equals y + Δy (a round trip through the numeric inverse)."""
    problem, _, x = twins["1d-dirichlet"]
    k = problem.compile()
    dx, _, status = compiled_rule(problem, rules.pg(0.5)).step(x, None)
    assert (status == runtime.RUNNING).all()
    y = k.P(x)
    _close(k.P(x + dx), y - 0.5 * (y - k.target), 1e-11)


def test_the_source_does_not_grow_with_the_grid():
    small = IndexedProblem.from_strings("u[0:n]", DIFFUSION, params={"n": 8, "c": 0.05})
    large = IndexedProblem.from_strings("u[0:n]", DIFFUSION, params={"n": 100_000, "c": 0.05})
    # the same lines; only the default of the size param n differs
    assert small.compile().source.replace("n=8.0", "n=100000.0") == large.compile().source
    assert len(large.compile().source) < 2000


def test_start_points_may_be_shaped_like_the_grid():
    problem = CASES["brusselator-periodic"]
    rng = np.random.default_rng(0)
    shaped = 1 + 0.1 * rng.standard_normal((2, 2) + problem.shape)
    flat = scaleinv.minimize(problem, rules.newton(), shaped.reshape(2, -1), 2)
    grid = scaleinv.minimize(problem, rules.newton(), shaped, 2)
    np.testing.assert_array_equal(flat.x, grid.x)
    single = CASES["2d-periodic"]
    start = np.zeros(single.shape)
    np.testing.assert_array_equal(
        scaleinv.minimize(single, rules.gd(0.1), start, 2).x,
        scaleinv.minimize(single, rules.gd(0.1), start.ravel(), 2).x,
    )


def test_a_singular_jacobian_is_reported():
    """``u[i+1] − u[i]`` on a periodic grid annihilates constants: J is singular."""
    problem = IndexedProblem.from_strings("u[0:n]", "u[i+1] - u[i]", params={"n": 6}, target="1")
    t = scaleinv.minimize(problem, rules.ig(), np.zeros(6), 2)
    assert t.statuses() == [Status.SINGULAR]


def test_a_periodic_shift_is_solved_through_its_corners():
    """P(u)_i = u[i+1] + 2 u[i]: the band part (without the wrap) and the whole matrix are both
    regular; IG must land on the target in one step (a twin: the exact inverse)."""
    problem = IndexedProblem.from_strings(
        "u[0:n]", "u[i+1] + 2*u[i]", params={"n": 50}, target="sin(i)"
    )
    t = scaleinv.minimize(problem, rules.ig(), np.zeros(50), 1)
    k = problem.compile()
    _close(k.P(t.x[-1]), k.target)


def test_rules_that_do_not_run_on_indexed_problems_are_refused():
    problem = CASES["1d-periodic"]
    for rule in (rules.bfgs(), rules.hig()):
        with pytest.raises(RuleError, match="indexed problems"):
            compiled_rule(problem, rule)
    two_in_one_out = IndexedProblem.from_strings(["u[0:n]", "v[0:n]"], "u[i]*v[i]", params={"n": 4})
    with pytest.raises(RuleError, match="as many output fields"):
        compiled_rule(two_in_one_out, rules.ig())


def test_pg_warns_that_it_solves_numerically():
    with pytest.warns(NumericInverseWarning, match="structured J"):
        scaleinv.minimize(CASES["1d-periodic"], rules.pg(), np.zeros(7), 1)


@pytest.mark.slow
def test_a_million_points_derive_compile_and_step():
    """1-D diffusion at n = 10⁶: derive + compile, one Newton step from 10 starts; the step
    agrees with SciPy's sparse solve of the assembled H (a second path), memory is linear."""
    from scipy.sparse.linalg import spsolve

    n = 1_000_000
    start = time.perf_counter()
    problem = IndexedProblem.from_strings(
        "u[0:n]", DIFFUSION, params={"n": n, "c": 0.05}, target_from="0.5*sin(2*pi*i/n)"
    )
    step = compiled_rule(problem, rules.newton())
    setup = time.perf_counter() - start
    x = 0.1 * np.random.default_rng(0).standard_normal((10, n))
    tracemalloc.start()
    dx, _, status = step.step(x, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (status == runtime.RUNNING).all()
    assert peak < 60 * 8 * n  # a few dozen grid-sized arrays, not batch × n × n
    k = problem.compile()
    reference = spsolve(k.hessian_matrix(x[3]).tocsc(), -k.gradient(x[3]))
    _close(dx[3], reference, 1e-10)
    assert setup < 30  # generous on a shared CI machine; the benchmark measures it properly


def test_a_batch_of_one_keeps_its_axis():
    """x0 of shape (1, n) on a one-field 1-D grid is one flat sample, not the grid shape
    (fields, n) (it lost its batch axis, and a converged sample then crashed the driver)."""
    problem = CASES["1d-periodic"]
    t = scaleinv.minimize(problem, rules.newton(), np.zeros((1, 7)), 30, tol=1e-9)
    assert t.x.shape == (2, 1, 7)
    assert t.statuses() == [Status.CONVERGED]


def test_pg_takes_the_closed_form_at_each_point_where_points_decouple():
    """``u[i]³ + a[i] u[i]`` reads only its own point: PG uses the closed-form local inverse
    per point (no warning), and agrees with the numeric inverse (a second path)."""
    problem = IndexedProblem.from_strings(
        "u[0:n]", "u[i]**3 + a[i]*u[i]", params={"n": 50, "a": "1 + 0.1*i"}, target="sin(i)"
    )
    x = np.random.default_rng(0).normal(size=(3, 50))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        closed = compiled_rule(problem, rules.pg(0.5)).step(x, None)
        scaleinv.minimize(problem, rules.pg(0.5), x, 1)
    numeric = compiled_rule(problem, rules.pg(0.5, inverse="numeric")).step(x, None)
    assert (closed[2] == runtime.RUNNING).all() and (numeric[2] == runtime.RUNNING).all()
    _close(closed[0], numeric[0])


def test_pg_reports_a_point_without_a_real_inverse():
    """``u[i]²`` cannot reach a negative target: the closed form knows (no_inverse)."""
    problem = IndexedProblem.from_strings("u[0:n]", "u[i]**2", params={"n": 4}, target="i - 2")
    t = scaleinv.minimize(problem, rules.pg(1.0), np.ones((2, 4)), 2)
    assert t.statuses() == [Status.NO_INVERSE, Status.NO_INVERSE]
    np.testing.assert_array_equal(t.x[-1], np.ones((2, 4)))  # a failed sample keeps its point


def test_a_kink_compiles_and_matches_the_expanded_problem():
    """|u| differentiates to sign(u) and then to 2 DiracDelta(u): the point kernels print it
    as 0 (where a float lands), as the per-expression kernels do, instead of failing."""
    problem = IndexedProblem.from_strings(
        "u[0:n]", "Abs(u[i]) + 0.1*u[i+1]**2 - 0.2*u[i-1]", params={"n": 5}, target="0.3"
    )
    expanded = problem.to_problem()
    k, e = problem.compile(), expanded.compile()
    x = np.random.default_rng(3).standard_normal((4, problem.n))  # both signs
    _close(k.gradient(x), e.gradient(x))
    for sample in x:
        _close(k.hessian_matrix(sample).toarray(), e.hessian(sample))
    ours = scaleinv.minimize(problem, rules.newton(0.5), x, 3, record="all")
    theirs = scaleinv.minimize(expanded, rules.newton(0.5), x, 3, record="all")
    assert ours.statuses() == theirs.statuses()
    _close(ours.x, theirs.x, 1e-11)
