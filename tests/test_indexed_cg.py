"""Matrix-free CG for the Hessian of indexed problems: its H·v against the assembled H, its
solves (Jacobi and spectral preconditioners) against the direct (band / sparse LU) route, the
spectral preconditioner itself, MINRES for an indefinite H, the stall near the shipped
Brusselator's solution, and one 10⁶-point grid against SciPy's spsolve."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg
import sympy as sp

from scaleinv.errors import RuleError
from scaleinv.numeric import runtime
from scaleinv.numeric.indexed_cg import (
    PRECONDITIONERS,
    cg_solve,
    curved_values,
    gradient_and_hessian_operator,
    hessian_operator,
    minres_solve,
    normal_operator,
)
from scaleinv.numeric.indexed_kernels import compile_indexed
from scaleinv.numeric.indexed_steps import solve_hessian, solve_jacobian
from scaleinv.symbolic import IndexedProblem

ROOT = Path(__file__).resolve().parents[1]
DIFFUSION = "u[i] + 0.1*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3"
BRUSSELATOR = [
    "u[i,j] + D*(u[i+1,j] + u[i-1,j] + u[i,j+1] + u[i,j-1] - 4*u[i,j]) + dt*(a - (b+1)*u[i,j]"
    " + u[i,j]**2*v[i,j])",
    "v[i,j] + D*(v[i+1,j] + v[i-1,j] + v[i,j+1] + v[i,j-1] - 4*v[i,j]) + dt*(b*u[i,j]"
    " - u[i,j]**2*v[i,j])",
]

HEAT = "u[i,j] + 0.1*(u[i+1,j] + u[i-1,j] + u[i,j+1] + u[i,j-1] - 4*u[i,j]) + 0.05*u[i,j]**3"


def _diffusion(boundary: object, n: int = 300) -> IndexedProblem:
    return IndexedProblem.from_strings(
        "u[0:n]", DIFFUSION, boundary=boundary, params={"n": n, "c": 0.5}, target="0.5*sin(i)"
    )


CASES = {
    "1d-periodic": _diffusion("periodic"),
    "1d-dirichlet": _diffusion({"kind": "dirichlet", "value": 0.3}),
    "1d-neumann": _diffusion("neumann"),
    "brusselator": IndexedProblem.from_strings(
        ["u[0:n, 0:m]", "v[0:n, 0:m]"],
        BRUSSELATOR,
        params={"n": 24, "m": 20, "D": 0.05, "dt": 0.1, "a": 1, "b": 3},
        target_from=["1 + 0.1*sin(i)", "3 + 0.1*cos(j)"],
    ),
    "brusselator-dirichlet": IndexedProblem.from_strings(
        ["u[0:n, 0:m]", "v[0:n, 0:m]"],
        BRUSSELATOR,
        boundary={"kind": "dirichlet", "value": {"u": 1, "v": 3}},
        params={"n": 16, "m": 12, "D": 0.05, "dt": 0.1, "a": 1, "b": 3},
        target=["1", "3"],
    ),
    "brusselator-neumann": IndexedProblem.from_strings(
        ["u[0:n, 0:m]", "v[0:n, 0:m]"],
        BRUSSELATOR,
        boundary="neumann",
        params={"n": 12, "m": 10, "D": 0.05, "dt": 0.1, "a": 1, "b": 3},
        target=["1 + 0.1*cos(i)", "3"],
    ),
    # C couples u[i+1] and u[i-1]: it reaches two points, J one
    "neighbour-product": IndexedProblem.from_strings(
        "u[0:n, 0:m]",
        "u[i,j] + 0.3*u[i+1,j]*u[i-1,j] + 0.1*u[i,j+1]",
        params={"n": 9, "m": 7},
        target="0.5*sin(i)",
    ),
    "heat-dirichlet": IndexedProblem.from_strings(
        "u[0:n, 0:m]",
        HEAT,
        boundary={"kind": "dirichlet", "value": 0.2},
        params={"n": 20, "m": 16},
        target="0.5*sin(i)*cos(j)",
    ),
}


def _starts(problem: IndexedProblem, samples: int = 3) -> np.ndarray:
    rng = np.random.default_rng(1)
    base = np.repeat([1.0, 3.0], problem.points) if len(problem.fields) == 2 else 0.0
    return base + 0.05 * rng.standard_normal((samples, problem.n))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_times_vector_equals_the_assembled_hessian(name: str) -> None:
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem)
    v = np.random.default_rng(2).standard_normal(x.shape)
    times, diagonal, _ = hessian_operator(k, x)
    product = times(v)
    for s in range(len(x)):
        h = k.hessian_matrix(x[s])
        assert _relative(product[s], h @ v[s]) < 1e-13
        np.testing.assert_allclose(diagonal[s], h.diagonal(), rtol=1e-13, atol=1e-13)


SHIFT_CASES = sorted(name for name in CASES if not name.endswith("neumann"))


@pytest.mark.parametrize("name", SHIFT_CASES)
def test_one_point_kernel_gives_the_residual_gradient_and_hessian_operator(name: str) -> None:
    # Newton's CG route: P − y*, J and C from one fused point kernel, ∇L by H's own Jᵀ; against
    # the per-quantity kernels (residual, gradient) and the operator built on its own
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem)
    residual, jacobian, curvature = curved_values(k, x)
    np.testing.assert_allclose(residual, k.residual(x), rtol=0, atol=1e-14)
    columns = k.point("point_J", x)
    for j, value in enumerate(jacobian):  # a number per sample where the formula is one
        number = not problem.jacobian_stencil[j].formula.free_symbols - set(problem.params)
        assert value.shape == ((len(x), 1) if number else (len(x), problem.points))
        np.testing.assert_allclose(np.broadcast_to(value, columns[:, j].shape), columns[:, j])
    assert len(curvature) == len(problem.point_curvature)
    g, (times, diagonal, precondition) = gradient_and_hessian_operator(k, x)
    gradient = k.gradient(x)
    assert _relative(g, gradient) < 1e-14
    alone, alone_diagonal, alone_precondition = hessian_operator(k, x)
    v = np.random.default_rng(5).standard_normal(x.shape)
    np.testing.assert_array_equal(times(v), alone(v))
    np.testing.assert_array_equal(diagonal, alone_diagonal)
    np.testing.assert_array_equal(precondition(v), alone_precondition(v))


@pytest.mark.parametrize("name", ["brusselator", "heat-dirichlet"])
def test_newton_rule_on_the_cg_route_takes_one_point_kernel_and_equals_the_direct_step(
    name: str, monkeypatch
) -> None:
    import scaleinv.numeric.indexed_steps as steps
    from scaleinv import rules
    from scaleinv.numeric.indexed_steps import compile_indexed_rule

    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem)
    monkeypatch.setattr(steps, "CG_POINTS", 0)
    calls = []
    built = steps.gradient_and_hessian_operator
    monkeypatch.setattr(
        steps, "gradient_and_hessian_operator", lambda k, f: calls.append(1) or built(k, f)
    )
    dx, _, _ = compile_indexed_rule(problem, rules.newton(0.5)).step(x, None)
    assert calls == [1]
    direct, status = solve_hessian(k, x, k.gradient(x), cg_points=problem.n + 1)
    assert not status.any()
    for s in range(len(x)):
        assert _relative(dx[s], -0.5 * direct[s]) < 1e-10


@pytest.mark.parametrize("name", ["brusselator", "heat-dirichlet", "1d-periodic"])
def test_point_curvature_is_the_second_derivative_part_by_finite_differences(name: str) -> None:
    # C[α, β] = Σ_a r_a ∂²P_a/∂α∂β (what H·v adds to Jᵀ(J·v)), against central differences of
    # the point formulas with the residuals held fixed, at a random point; zero where absent
    problem = CASES[name]
    rng = np.random.default_rng(9)
    formulas = [*problem.outputs, *problem.point_curvature.values()]
    symbols = set().union(*(sp.sympify(f).free_symbols for f in formulas))
    at = {s: float(v) for s, v in zip(sorted(symbols, key=str), rng.uniform(0.5, 1.5, 99))}
    residuals = [float(r.subs(at)) for r in problem.residuals]
    accesses = problem.input_accesses
    h = 1e-3

    def weighted(da: float, db: float, alpha: int, beta: int) -> float:
        moved = dict(at)
        moved[accesses[alpha]] += da
        moved[accesses[beta]] += db
        return sum(r * float(f.subs(moved)) for r, f in zip(residuals, problem.outputs))

    assert problem.point_curvature  # each case has a nonlinear term
    for alpha in range(len(accesses)):
        for beta in range(alpha, len(accesses)):
            if alpha == beta:  # one access moved twice: a second difference of step 2h
                steps = [(2 * h, 0, 1), (0, 0, -2), (-2 * h, 0, 1)]
            else:
                steps = [(h, h, 1), (h, -h, -1), (-h, h, -1), (-h, -h, 1)]
            difference = sum(w * weighted(da, db, alpha, beta) for da, db, w in steps)
            difference /= 4 * h * h
            exact = float(problem.point_curvature.get((alpha, beta), sp.Integer(0)).subs(at))
            assert abs(difference - exact) <= 1e-6 * (1 + abs(exact)), (alpha, beta)


@pytest.mark.parametrize("preconditioner", PRECONDITIONERS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_cg_solve_equals_the_direct_solve(name: str, preconditioner: str) -> None:
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem)
    g = k.gradient(x)
    solved, converged = cg_solve(*hessian_operator(k, x, preconditioner), g)
    assert converged.all()
    direct, status = solve_hessian(k, x, g, cg_points=problem.n + 1)
    forced, forced_status = solve_hessian(k, x, g, cg_points=0)
    assert not status.any() and not forced_status.any()
    for s in range(len(x)):
        assert _relative(solved[s], direct[s]) < 1e-10
        assert _relative(forced[s], direct[s]) < 1e-10


@pytest.mark.parametrize("name", sorted(CASES))
def test_spectral_preconditioner_is_symmetric_positive_definite(name: str) -> None:
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem, 1)
    _, _, precondition = hessian_operator(k, x, "spectral")
    m = np.stack([precondition(e[None])[0] for e in np.eye(problem.n)], axis=1)
    np.testing.assert_allclose(m, m.T, atol=1e-13 * np.abs(m).max())
    assert np.linalg.eigvalsh(m).min() > 0


def test_spectral_preconditioner_inverts_a_constant_periodic_stencil() -> None:
    # a uniform state and target: every stencil diagonal is constant, H block circulant, M = H
    problem = IndexedProblem.from_strings(
        ["u[0:n, 0:m]", "v[0:n, 0:m]"],
        BRUSSELATOR,
        params={"n": 12, "m": 10, "D": 0.05, "dt": 0.1, "a": 1, "b": 3},
        target=["1", "3"],
    )
    k = compile_indexed(problem)
    x = np.repeat([[0.9, 2.7]], problem.points, axis=1)
    times, _, precondition = hessian_operator(k, x, "spectral")
    v = np.random.default_rng(6).standard_normal(x.shape)
    assert _relative(precondition(times(v)), v) < 1e-12
    h = k.hessian_matrix(x[0])
    assert _relative(precondition(v)[0], scipy.sparse.linalg.spsolve(h.tocsc(), v[0])) < 1e-12


@pytest.mark.parametrize("name", ["brusselator", "brusselator-dirichlet"])
def test_jacobi_of_two_fields_inverts_the_point_blocks_of_the_assembled_hessian(name) -> None:
    # the 2 × 2 block of H at each grid point (u and v there), taken from the assembled H
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem, 2)
    _, _, precondition = hessian_operator(k, x, "jacobi")
    r = np.random.default_rng(10).standard_normal(x.shape)
    z = precondition(r)
    points = problem.points
    for s in range(len(x)):
        h = k.hessian_matrix(x[s]).toarray()
        for q in range(0, points, 7):
            at = [q, points + q]
            block = h[np.ix_(at, at)]
            np.testing.assert_allclose(z[s, at], np.linalg.solve(block, r[s, at]), rtol=1e-12)


def test_unknown_preconditioner_is_a_rule_error() -> None:
    k = compile_indexed(CASES["brusselator"])
    with pytest.raises(RuleError, match="unknown preconditioner 'ilu'"):
        hessian_operator(k, _starts(CASES["brusselator"], 1), "ilu")


def _shipped_brusselator(n: int) -> tuple[IndexedProblem, np.ndarray]:
    """reports/brusselator.toml at n × n (κ_v = 0.2: 1 + κ_v Δ nearly singular), and x*."""
    spec = tomllib.loads((ROOT / "reports" / "brusselator.toml").read_text())
    table = spec["problem"]
    params = dict(spec["params"], n=n)
    problem = IndexedProblem.from_strings(
        table["inputs"],
        table["outputs"],
        boundary=table["boundary"],
        params=params,
        target_from=table["target_from"],
    )
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    u = 1 + 0.1 * np.sin(2 * np.pi * i / n) * np.cos(2 * np.pi * j / n)
    v = 3 + 0.1 * np.cos(2 * np.pi * (i + j) / n)
    return problem, np.concatenate([u.ravel(), v.ravel()])


def test_near_the_solution_cg_no_longer_stalls_into_the_direct_route(monkeypatch) -> None:
    import scaleinv.numeric.indexed_steps as steps

    # condition of H ≈ 10⁶ at 32²: Jacobi-CG stalls on both samples (before: the direct
    # fallback, ~25 s a sample at 256²). The default (spectral here) converges on sample 0;
    # sample 1's H is indefinite (smallest eigenvalue ≈ −5·10⁻⁸): CG breaks down, MINRES
    # solves it. Both equal the direct solve.
    problem, star = _shipped_brusselator(32)
    k = compile_indexed(problem)
    assert np.abs(k.P(star) - k.target).max() < 1e-12
    x = star + 1e-3 * np.random.default_rng(7).standard_normal((2, problem.n))
    g = k.gradient(x)
    _, jacobi = cg_solve(*hessian_operator(k, x, "jacobi"), g)
    _, converged = cg_solve(*hessian_operator(k, x), g)
    assert jacobi.tolist() == [False, False] and converged.tolist() == [True, False]
    direct, status = solve_hessian(k, x, g, cg_points=problem.n + 1)
    monkeypatch.setattr(steps, "sparse_lu_solve", None)  # the direct route is not taken
    solved, solved_status = solve_hessian(k, x, g, cg_points=0)
    assert not status.any() and not solved_status.any()
    for s in range(len(x)):
        assert _relative(solved[s], direct[s]) < 1e-9


def _indefinite() -> tuple:
    """``(problem, kernels, x, ∇L)`` where ``H = JᵀJ + r·∇²P`` is positive definite at sample 0
    (u ≈ 1.5) and indefinite at sample 1 (u ≈ 0.1, far below the target 2: r·2 ≈ −4)."""
    problem = IndexedProblem.from_strings(
        "u[0:n]", "u[i]**2 + 0.1*(u[i+1] - u[i-1])", params={"n": 200}, target="2"
    )
    k = compile_indexed(problem)
    rng = np.random.default_rng(3)
    x = np.array([1.5, 0.1])[:, None] + 0.01 * rng.standard_normal((2, problem.n))
    return problem, k, x, k.gradient(x)


def test_an_indefinite_hessian_is_solved_by_minres(monkeypatch) -> None:
    import scaleinv.numeric.indexed_steps as steps

    problem, k, x, g = _indefinite()
    assert np.linalg.eigvalsh(k.hessian_matrix(x[1]).toarray()).min() < 0
    _, converged = cg_solve(*hessian_operator(k, x), g)
    assert converged.tolist() == [True, False]
    _, solved = minres_solve(k, x[1:], g[1:])
    assert solved.tolist() == [True]
    direct, _ = solve_hessian(k, x, g, cg_points=problem.n + 1)
    monkeypatch.setattr(steps, "band_solve", None)  # the direct route is not taken
    forced, status = solve_hessian(k, x, g, cg_points=0)
    assert not status.any()
    for s in range(2):
        assert _relative(forced[s], direct[s]) < 1e-10


def test_a_singular_hessian_goes_past_minres_to_the_direct_solve(monkeypatch) -> None:
    import scaleinv.numeric.indexed_steps as steps

    # u[i] − u[i−1] on a periodic grid: H = JᵀJ singular (constants); a right-hand side off
    # its range defeats CG and MINRES, and the samples go on to the direct route
    problem = IndexedProblem.from_strings("u[0:n]", "u[i] - u[i-1]", params={"n": 50}, target="0")
    k = compile_indexed(problem)
    x = _starts(problem, 2)
    rhs = np.random.default_rng(8).standard_normal(x.shape)
    calls = []
    direct = steps.solve_hessian
    monkeypatch.setattr(
        steps, "solve_hessian", lambda k, f, b, n=None: calls.append(n) or direct(k, f, b, n)
    )
    _, converged = cg_solve(*hessian_operator(k, x), rhs)
    _, solved = minres_solve(k, x, rhs)
    assert not converged.any() and not solved.any()
    steps.solve_hessian(k, x, rhs, 0)
    assert calls == [0, problem.n + 1]


@pytest.mark.parametrize("threshold", [100, 5000])
def test_only_large_sparse_problems_take_the_cg_route_by_default(monkeypatch, threshold) -> None:
    import scaleinv.numeric.indexed_steps as steps

    calls = []
    monkeypatch.setattr(steps, "solve_cg", lambda *a: calls.append(1) or cg_solve(*a[:4]))
    monkeypatch.setattr(steps, "CG_POINTS", threshold)
    for name in ("brusselator", "1d-periodic"):  # 960 unknowns, sparse LU; 300, banded
        k = compile_indexed(CASES[name])
        x = _starts(CASES[name], 1)
        solve_hessian(k, x, k.gradient(x))
    assert calls == ([1] if threshold == 100 else [])


@pytest.mark.slow
def test_million_point_newton_step_by_cg_equals_spsolve() -> None:
    problem = _diffusion("periodic", 1_000_000)
    k = compile_indexed(problem)
    x = _starts(problem, 1)
    g = k.gradient(x)
    step, status = solve_hessian(k, x, g, cg_points=0)
    reference = scipy.sparse.linalg.spsolve(k.hessian_matrix(x[0]).tocsc(), g[0])
    assert not status.any()
    assert _relative(step[0], reference) < 1e-10


@pytest.mark.parametrize("name", sorted(CASES))
def test_jacobian_operators_equal_the_assembled_jacobian(name: str) -> None:
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem)
    v = np.random.default_rng(4).standard_normal(x.shape)
    times, diagonal, _, forward, backward = normal_operator(k, x)
    for s in range(len(x)):
        j = k.jacobian_matrix(x[s])
        assert _relative(forward(v)[s], j @ v[s]) < 1e-13
        assert _relative(backward(v)[s], j.T @ v[s]) < 1e-13
        assert _relative(times(v)[s], j.T @ (j @ v[s])) < 1e-13
        np.testing.assert_allclose(diagonal[s], (j.T @ j).diagonal(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cgnr_jacobian_solve_equals_the_direct_solve(name: str) -> None:
    problem = CASES[name]
    k = compile_indexed(problem)
    x = _starts(problem)
    rhs = -k.residual(x)
    direct, status = solve_jacobian(k, x, rhs, cg_points=problem.n + 1)
    forced, forced_status = solve_jacobian(k, x, rhs, cg_points=0)
    assert not status.any() and not forced_status.any()
    for s in range(len(x)):
        assert _relative(forced[s], direct[s]) < 1e-10


def test_a_singular_jacobian_falls_back_to_the_direct_solve(monkeypatch) -> None:
    import scaleinv.numeric.indexed_steps as steps

    # u[i] − u[i−1] on a periodic grid: J singular (constants), the direct route says so
    problem = IndexedProblem.from_strings("u[0:n]", "u[i] - u[i-1]", params={"n": 50}, target="0")
    k = compile_indexed(problem)
    x = _starts(problem, 2)
    rhs = np.random.default_rng(5).standard_normal(x.shape)
    calls = []
    direct = steps.solve_jacobian
    monkeypatch.setattr(
        steps, "solve_jacobian", lambda k, f, b, n=None: calls.append(n) or direct(k, f, b, n)
    )
    _, status = steps.solve_jacobian(k, x, rhs, 0)
    assert calls == [0, problem.n + 1]
    assert (status == runtime.SINGULAR).all()


def test_cg_updates_in_place_per_sample_and_leave_stopped_samples_alone() -> None:
    from scaleinv.numeric.indexed_cg import _axpy

    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((2, 3, 50))
    x[1] = np.nan  # a stopped sample (α = 0) is not touched, whatever its direction holds
    alpha = np.array([0.5, 0.0, -2.0])
    expected = y + np.where(alpha[:, None] != 0, alpha[:, None] * x, 0.0)
    _axpy(alpha, x, y)
    np.testing.assert_allclose(y, expected, rtol=1e-15, atol=1e-15)


def test_cg_with_a_preconditioner_returning_its_argument_solves_a_dense_system() -> None:
    # M⁻¹ = identity given as r ↦ r (the same array): CG's p ← z + βp must not write into r
    rng = np.random.default_rng(12)
    a = rng.standard_normal((2, 30, 30))
    h = a @ a.transpose(0, 2, 1) + 30 * np.eye(30)
    rhs = rng.standard_normal((2, 30))
    kept = rhs.copy()
    x, converged = cg_solve(
        lambda v: np.einsum("bij,bj->bi", h, v), np.einsum("bii->bi", h), lambda r: r, rhs
    )
    assert converged.all()
    np.testing.assert_array_equal(rhs, kept)
    for s in range(2):
        assert _relative(x[s], np.linalg.solve(h[s], rhs[s])) < 1e-12
