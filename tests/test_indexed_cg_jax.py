"""The indexed CG on JAX (one compiled program) against the NumPy CG and the direct solve:
1-D and 2-D, periodic and dirichlet, one and two fields, C reaching farther than J, a grid
narrower than the stencil; the samples it does not solve go to the same fallbacks; which
engine ``auto`` picks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import optional_module
from test_indexed_cg import CASES, _indefinite, _relative, _starts

import scaleinv.numeric.engines as engines
from scaleinv import minimize, rules
from scaleinv.errors import ScaleinvError
from scaleinv.numeric.engines import JAX_CG_MIN_WORK, choose_cg_engine
from scaleinv.numeric.indexed_cg import (
    cg_solve,
    gradient_and_hessian_operator,
    hessian_operator,
    jax_cg_unsupported,
    solve_cg,
)
from scaleinv.numeric.indexed_kernels import compile_indexed
from scaleinv.numeric.indexed_steps import newton_route, solve_hessian
from scaleinv.symbolic import IndexedProblem

#: A periodic grid of 3 points, C coupling u[i+2] and u[i-2] (4 apart): the padding wraps
#: more than once around the grid.
NARROW = IndexedProblem.from_strings(
    "u[0:n]", "u[i] + 0.3*u[i+2]*u[i-2]", params={"n": 3}, target="0.5*sin(i)"
)
#: P linear (no C), every diagonal of J one number.
LINEAR = IndexedProblem.from_strings(
    "u[0:n, 0:m]",
    "u[i,j] + 0.1*(u[i+1,j] + u[i-1,j] + u[i,j+1] + u[i,j-1] - 4*u[i,j])",
    boundary="periodic",
    params={"n": 8, "m": 6},
    target="0.5*sin(i)*cos(j)",
)
EXTRA = {"narrow": NARROW, "linear": LINEAR}
SHIFTED = sorted(name for name in CASES if "neumann" not in name)


@pytest.fixture(scope="module", autouse=True)
def _jax():
    optional_module("jax", "jax")


@pytest.mark.parametrize("name", SHIFTED + sorted(EXTRA))
def test_jax_cg_step_equals_the_numpy_cg_step_and_the_direct_solve(name: str) -> None:
    problem = EXTRA[name] if name in EXTRA else CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem)
    g, (times, diagonal, precondition) = gradient_and_hessian_operator(k, x, "jacobi")
    assert jax_cg_unsupported(times, precondition) is None  # the JAX program runs
    solved, converged = solve_cg(times, diagonal, precondition, g, "jax")
    plain, plain_converged = cg_solve(times, diagonal, precondition, g)
    direct, status = solve_hessian(k, x, g, cg_points=problem.n + 1)
    assert converged.all() and plain_converged.all() and not status.any()
    for s in range(len(x)):
        assert _relative(solved[s], plain[s]) < 1e-12
        assert _relative(solved[s], direct[s]) < 1e-10


def test_the_step_on_either_engine_is_the_same_through_the_fallbacks(monkeypatch) -> None:
    import scaleinv.numeric.indexed_steps as steps

    # H is indefinite at sample 1: CG breaks down there on both engines, MINRES solves it
    problem, k, x, g = _indefinite()
    operator = hessian_operator(k, x, "jacobi")
    _, converged = solve_cg(*operator, g, "jax")
    _, plain = cg_solve(*operator, g)
    assert converged.tolist() == plain.tolist() == [True, False]
    direct, _ = solve_hessian(k, x, g, cg_points=problem.n + 1)
    monkeypatch.setattr(steps, "band_solve", None)  # the direct route is not taken
    for engine in ("jax", "numpy"):
        forced, status = solve_hessian(k, x, g, cg_points=0, engine=engine)
        assert not status.any()
        for s in range(2):
            assert _relative(forced[s], direct[s]) < 1e-10


@pytest.mark.parametrize("name", ["brusselator-neumann", "heat-dirichlet"])
def test_what_the_jax_cg_cannot_run_runs_on_numpy(name: str) -> None:
    # neumann: H·v by one sparse matrix; spectral M: SciPy's transforms
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem, 2)
    g = k.gradient(x)
    kind = "jacobi" if "neumann" in name else "spectral"
    operator = hessian_operator(k, x, kind)
    assert jax_cg_unsupported(*operator[::2]) is not None
    solved, converged = solve_cg(*operator, g, "jax")
    plain, _ = cg_solve(*operator, g)
    assert converged.all()
    np.testing.assert_array_equal(solved, plain)


def test_auto_takes_jax_for_a_large_cg_only(monkeypatch) -> None:
    assert choose_cg_engine(JAX_CG_MIN_WORK // 10, 10)[0] == "jax"
    assert choose_cg_engine(JAX_CG_MIN_WORK // 10 - 1, 10)[0] == "numpy"
    assert choose_cg_engine(10**6, 10, "numpy") == ("numpy", "asked for")
    assert choose_cg_engine(10, 1, "jax") == ("jax", "asked for")
    with pytest.raises(ScaleinvError, match="unknown engine 'xla'"):
        choose_cg_engine(10, 1, "xla")
    monkeypatch.setattr(engines, "jax_installed", lambda: False)
    assert choose_cg_engine(10**7, 10) == ("numpy", "JAX is not installed")
    with pytest.raises(ScaleinvError, match="needs JAX"):
        choose_cg_engine(10, 1, "jax")


def test_minimize_hands_its_engine_to_the_cg(monkeypatch) -> None:
    import scaleinv.numeric.indexed_cg_jax as cg_jax

    problem = CASES["brusselator"]  # 960 unknowns: Newton's step by CG, block Jacobi
    x0 = _starts(problem, 2)
    calls: list[int] = []
    real = cg_jax.jax_cg_solve
    monkeypatch.setattr(cg_jax, "jax_cg_solve", lambda *a: calls.append(1) or real(*a))
    on_jax = minimize(problem, rules.newton(1.0), x0, 2, engine="jax")
    assert calls == [1, 1]  # one CG a step
    on_numpy = minimize(problem, rules.newton(1.0), x0, 2, engine="numpy")
    assert calls == [1, 1]
    np.testing.assert_allclose(on_jax.x, on_numpy.x, rtol=1e-12, atol=1e-12)
    assert on_jax.statuses() == on_numpy.statuses()


def test_newton_route_names_the_cg_engine_and_its_caveat_only_on_jax() -> None:
    optional_module("jax", "jax")
    problem = CASES["brusselator"]  # two fields on a 2-D grid: the CG route
    assert newton_route(problem, 1, "numpy") == "matrix-free CG on numpy (asked for)"
    on_jax = newton_route(problem, 1, "jax")
    assert on_jax.startswith("matrix-free CG on jax (asked for)") and "spectral" in on_jax
