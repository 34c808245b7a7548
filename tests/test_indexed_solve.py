"""LAPACK's band solves of indexed problems (band LU, band Cholesky, a periodic grid's corners by
a Schur complement) against dense solves of the same matrices built entry by entry."""

from __future__ import annotations

import numpy as np
import pytest

import scaleinv
from scaleinv import rules
from scaleinv.numeric import runtime
from scaleinv.numeric.indexed_kernels import band
from scaleinv.numeric.indexed_solve import band_solve, cholesky_band_solve
from scaleinv.numeric.indexed_steps import solve_hessian
from scaleinv.symbolic import IndexedProblem

#: (lower, upper) bandwidths: diagonal, tridiagonal, pentadiagonal, one-sided and lopsided bands.
WIDTHS = [(0, 0), (1, 1), (2, 2), (0, 1), (1, 0), (2, 1), (3, 1)]


def _dense(parts: list, n: int, periodic: bool, mirrored: bool) -> np.ndarray:
    """The matrix of ``band``'s parts, entry by entry (``mirrored``: each off-diagonal part
    also at its transposed place)."""
    a = np.zeros((n, n))
    for r, c, values in parts:
        for p in range(n):
            i, j = p + r, p + c
            if periodic:
                i, j = i % n, j % n
            elif not (0 <= i < n and 0 <= j < n):
                continue
            a[i, j] += values[0, p]
            if mirrored and r != c:
                a[j, i] += values[0, p]
    return a


def _parts(lower: int, upper: int, n: int, seed: int, diagonal: float) -> list:
    rng = np.random.default_rng(seed)
    return [
        (r, 0, rng.standard_normal((1, n)) + (diagonal if r == 0 else 0.0))
        for r in range(-upper, lower + 1)
    ]


def _sizes(lower: int, upper: int) -> list[int]:
    """The smallest periodic grid the band route takes, the next, and two larger ones."""
    k = max(lower, upper)
    return [2 * k + 1, 2 * k + 2, 9, 40]


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "dirichlet"])
@pytest.mark.parametrize("widths", WIDTHS, ids=str)
def test_band_lu_matches_a_dense_solve(widths: tuple[int, int], periodic: bool):
    lower, upper = widths
    for n in _sizes(lower, upper):
        parts = _parts(lower, upper, n, n, 4.0)
        a = _dense(parts, n, periodic, False)
        ab, found = band(parts, n, periodic)
        assert found == widths
        rhs = np.random.default_rng(n).standard_normal((1, n))
        x, status = band_solve(ab, found, rhs, periodic)
        assert status[0] == runtime.RUNNING
        np.testing.assert_allclose(x[0], np.linalg.solve(a, rhs[0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "dirichlet"])
@pytest.mark.parametrize("bandwidth", [0, 1, 2, 3])
def test_band_cholesky_matches_a_dense_solve(bandwidth: int, periodic: bool):
    for n in _sizes(bandwidth, bandwidth):
        parts = _parts(bandwidth, 0, n, n, 3.0 * bandwidth + 3.0)  # diagonally dominant: SPD
        a = _dense(parts, n, periodic, True)
        assert np.linalg.eigvalsh(a).min() > 0
        ab, found = band(parts, n, periodic, symmetric=True)
        assert found == (bandwidth, 0)
        rhs = np.random.default_rng(n).standard_normal((1, n))
        x, status, indefinite = cholesky_band_solve(ab, bandwidth, rhs, periodic)
        assert not indefinite.any() and (status == runtime.RUNNING).all()
        np.testing.assert_allclose(x, np.linalg.solve(a, rhs.T).T, rtol=0, atol=1e-12)


def test_band_cholesky_reports_an_indefinite_matrix():
    """A negative diagonal: no Cholesky, the sample is marked (and left at zero) for the LU."""
    n = 12
    parts = _parts(2, 0, n, 0, -8.0)
    ab, _ = band(parts, n, True, symmetric=True)
    x, status, indefinite = cholesky_band_solve(ab, 2, np.ones((1, n)), True)
    assert indefinite.tolist() == [True] and status[0] == runtime.RUNNING
    assert not x.any()


def _interior_singular(n: int) -> tuple[str, dict]:
    """A periodic tridiagonal stencil (not diagonally dominant) whose band without its corners
    (``A_ii``, the first point removed) is singular in exact arithmetic while ``A`` is well
    conditioned: ``A_ii`` is Toeplitz with eigenvalues ``d + 2√(ac) cos(πj/n)``."""
    a, c = 0.37, 0.29
    d = -2 * np.sqrt(a * c) * np.cos(np.pi * (n // 3) / n)
    return "d*u[i] + a*u[i-1] + c*u[i+1]", {"n": n, "a": a, "c": c, "d": d}


@pytest.mark.filterwarnings("ignore::scaleinv.errors.NumericInverseWarning")
@pytest.mark.parametrize("n", [256, 1000])
def test_a_periodic_band_whose_interior_is_near_singular_goes_to_the_sparse_lu(n: int):
    """The Schur complement lost every digit here (IG's step off by 1e32 at n = 1000, P
    diverged at 4096, though A's condition number is below 20): such a sample is refused by the
    band solve and solved again by the sparse LU."""
    formula, params = _interior_singular(n)
    problem = IndexedProblem.from_strings("u[0:n]", formula, params=params)
    a = problem.compile().jacobian_matrix(np.zeros(n)).toarray()
    if n <= 256:  # (a dense SVD)
        assert np.linalg.cond(a) < 20 and np.linalg.cond(a[1:, 1:]) > 1e8
    rhs = np.random.default_rng(n).standard_normal((1, n))
    parts = [(0, r, np.full((1, n), a[0, r % n])) for r in (-1, 0, 1)]
    ab, widths = band(parts, n, True)
    _, status = band_solve(ab, widths, rhs, True)
    assert status.tolist() == [runtime.SINGULAR]  # refused, not a wrong answer
    star = np.sin(2 * np.pi * np.arange(n) / n) + 0.001 * np.arange(n)
    linear = IndexedProblem.from_strings(
        "u[0:n]", formula, params=params, target_from="sin(2*pi*i/n) + 0.001*i"
    )
    for rule in (rules.ig(1.0), rules.pg(1.0)):  # linear: one step lands on x*
        t = scaleinv.minimize(linear, rule, np.zeros((1, n)), 1)
        assert t.status.tolist() == [runtime.MAX_STEPS]
        np.testing.assert_allclose(np.asarray(t.x)[-1].ravel(), star, rtol=0, atol=1e-12)


def test_a_singular_band_is_reported():
    """A periodic difference ``u[i+1] − u[i]`` annihilates constants."""
    n = 10
    parts = [(0, 0, -np.ones((1, n))), (0, 1, np.ones((1, n)))]
    ab, widths = band(parts, n, True)
    _, status = band_solve(ab, widths, np.ones((1, n)), True)
    assert status.tolist() == [runtime.SINGULAR]


def test_an_indefinite_hessian_takes_the_band_lu():
    """Far from the target the residual term makes H indefinite (its band part's Cholesky
    fails): Newton's direction is still H⁻¹ g, as the dense solve of H gives it."""
    problem = IndexedProblem.from_strings(
        "u[0:n]",
        "u[i] + 0.1*(u[i+1] - 2*u[i] + u[i-1]) + 2*u[i]**3",
        params={"n": 16},
        target="3",
    )
    k = problem.compile()
    x = np.full((1, 16), 0.3) + 0.01 * np.sin(np.arange(16))
    hessian = k.hessian_matrix(x[0]).toarray()
    assert np.linalg.eigvalsh(hessian).min() < 0
    ab, (lower, _) = k.hessian_band(x)
    _, _, indefinite = cholesky_band_solve(ab, lower, k.gradient(x), True)
    assert indefinite.all()
    dx, status = solve_hessian(k, x, k.gradient(x))
    assert status[0] == runtime.RUNNING
    np.testing.assert_allclose(dx[0], np.linalg.solve(hessian, k.gradient(x)[0]), atol=1e-12)


@pytest.mark.parametrize("boundary", ["periodic", {"kind": "dirichlet", "value": 0.2}])
def test_newton_on_the_band_route_matches_the_expanded_problem(boundary):
    """The band route (Cholesky with its Schur complement; dirichlet: plain) against the same
    problem written out entry by entry, whose Newton step is a dense solve."""
    problem = IndexedProblem.from_strings(
        "u[0:n]",
        "u[i] + 0.1*(u[i+2] - 2*u[i] + u[i-1]) + 0.05*u[i]**3",
        boundary=boundary,
        params={"n": 11},
        target="0.3*sin(i)",
    )
    x = 0.2 * np.random.default_rng(3).standard_normal((4, 11))
    ours = scaleinv.minimize(problem, rules.newton(0.8), x, 3, record="all")
    theirs = scaleinv.minimize(problem.to_problem(), rules.newton(0.8), x, 3, record="all")
    assert ours.statuses() == theirs.statuses()
    np.testing.assert_allclose(ours.x, theirs.x, rtol=0, atol=1e-12)


def _blocked_problem(stencil: str, boundary, seed: int):
    """A cubic diffusion step on a 23-point grid with ``stencil``, and two random points."""
    n = 23
    problem = IndexedProblem.from_strings(
        "u[0:n]",
        f"u[i] + 0.1*({stencil}) + 0.05*u[i]**3",
        boundary=boundary,
        params={"n": n},
        target="0.3*sin(i)",
    )
    return problem, 0.3 * np.random.default_rng(seed).standard_normal((2, n))


@pytest.mark.parametrize("boundary", ["periodic", {"kind": "dirichlet", "value": 0.2}])
def test_blocks_of_the_grid_add_up_to_the_whole(monkeypatch, boundary):
    """Blocks of 4 points on a 23-point grid (stencil reach 2: entries cross the blocks' edges
    and, periodic, the grid's): the blocked ∇L and H's band equal the kernels' whole-grid ones
    and the expanded problem's ∇L and H, entry by entry."""
    from scaleinv.numeric import indexed_kernels

    problem, x = _blocked_problem("u[i+2] - 2*u[i] + u[i-1]", boundary, seed=5)
    n = problem.n
    expanded = problem.to_problem().compile()
    k = problem.compile()
    whole, _ = k.hessian_band(x)
    monkeypatch.setattr(indexed_kernels, "BLOCK_POINTS", 8)  # 4 points × 2 samples
    assert len(k.blocks(2)) == 6
    gradient, ab, (lower, upper) = k.gradient_and_hessian_band(x)
    np.testing.assert_allclose(gradient, expanded.gradient(x), rtol=0, atol=1e-13)
    np.testing.assert_allclose(k.P(x), expanded.P(x), rtol=0, atol=1e-13)
    np.testing.assert_allclose(ab, whole, rtol=0, atol=1e-13)
    for s in range(2):
        hessian = expanded.hessian(x[s])
        for d in range(lower + 1):  # ab[d, j] = H[j + d, j]; periodic: the wrapped ones too
            j = np.arange(n if boundary == "periodic" else n - d)
            np.testing.assert_allclose(ab[s, d, j], hessian[(j + d) % n, j], atol=1e-13)


@pytest.mark.parametrize("bandwidth", [1, 2, 3])
def test_the_periodic_border_solved_where_it_has_not_vanished(monkeypatch, bandwidth: int):
    """``W = L⁻¹ A_ib`` first on 60 rows: a diagonally dominant band's has vanished (exact
    zeros) by then (two pieces: its head and the last rows); a weakly dominant one's has not
    (the whole W). Both solves equal the dense solve; the corners (the entries that wrap) and
    the border's own entries are of order one."""
    from scaleinv.numeric import indexed_solve

    monkeypatch.setattr(indexed_solve, "DECAY_ROWS", 60)
    n = 200
    pieces = []
    original = indexed_solve._border_solve
    monkeypatch.setattr(
        indexed_solve,
        "_border_solve",
        lambda *args: pieces.append(original(*args)) or pieces[-1],
    )
    for scale, count in [(1e-90, 2), (0.3, 1)]:  # off the diagonal: W falls like scale^rows
        rng = np.random.default_rng(bandwidth)
        parts = [(0, 0, 2.0 + rng.random((1, n)))]
        for r in range(1, bandwidth + 1):
            values = scale * rng.standard_normal((1, n))
            values[:, list(range(bandwidth)) + list(range(n - r, n))] = rng.uniform(-0.3, 0.3)
            parts.append((r, 0, values))
        a = _dense(parts, n, True, True)
        ab, _ = band(parts, n, True, symmetric=True)
        rhs = rng.standard_normal((1, n))
        x, status, indefinite = cholesky_band_solve(ab, bandwidth, rhs, True)
        assert not indefinite.any() and status[0] == runtime.RUNNING
        assert len(pieces[-1]) == count
        np.testing.assert_allclose(x[0], np.linalg.solve(a, rhs[0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("stencil", ["u[i+2] - 2*u[i] + u[i-1]", "u[i+1] - 2*u[i] + u[i-1]"])
@pytest.mark.parametrize("boundary", ["periodic", {"kind": "dirichlet", "value": 0.2}])
def test_blocks_of_the_grid_give_the_jacobian_band(monkeypatch, boundary, stencil):
    """Blocks of 4 points on a 23-point grid: J's band (lopsided: column-major storage;
    tridiagonal: row-major) and P − y* from the blocked pass equal the expanded problem's J
    and P − y*, entry by entry (periodic: the wrapped entries too)."""
    from scaleinv.numeric import indexed_kernels

    problem, x = _blocked_problem(stencil, boundary, seed=6)
    n = problem.n
    expanded = problem.to_problem().compile()
    k = problem.compile()
    monkeypatch.setattr(indexed_kernels, "BLOCK_POINTS", 8)  # 4 points × 2 samples
    residual, ab, (lower, upper) = k.residual_and_jacobian_band(x)
    np.testing.assert_allclose(residual, expanded.P(x) - k.target, rtol=0, atol=1e-13)
    again, widths = k.jacobian_band(x)
    assert widths == (lower, upper) == ((1, 2) if "i+2" in stencil else (1, 1))
    for s in range(2):
        jacobian = expanded.jacobian(x[s])
        for row in range(-upper, lower + 1):  # ab[l + u + i − j, j] = J[i, j]
            j = np.arange(n) if boundary == "periodic" else np.arange(max(0, -row), min(n, n - row))
            for band_values in (ab, again):
                np.testing.assert_allclose(
                    band_values[s, lower + upper + row, j], jacobian[(j + row) % n, j], atol=1e-13
                )


@pytest.mark.parametrize(("rule", "kernel"), [("newton", "point_newton"), ("ig", "point_ig")])
def test_the_band_route_kernel_is_compiled_with_the_rule(rule: str, kernel: str):
    """Setup compiles what the steps run: the fused point kernel of the band route is built
    when the rule is, not at its first step."""
    from scaleinv.numeric.indexed_kernels import compile_indexed
    from scaleinv.numeric.indexed_steps import compile_indexed_rule

    problem = IndexedProblem.from_strings(
        "u[0:n]", "u[i] + 0.1*(u[i+1] - 2*u[i] + u[i-1])", params={"n": 9}
    )
    assert kernel not in vars(compile_indexed(problem))
    compile_indexed_rule(problem, getattr(rules, rule)(1.0))
    assert kernel in vars(compile_indexed(problem))


def test_a_solution_not_finite_is_singular_and_a_large_one_is_not():
    """Per sample: a NaN in the right-hand side gives ``singular`` and a zero ``x``; two
    entries of 1.7·10³⁰⁸ (their sum overflows, each is finite) stay a solution."""
    n = 12
    rng = np.random.default_rng(1)
    parts = [(0, 0, np.repeat(1.0 + 0.1 * rng.random((1, n)), 3, axis=0))]  # one matrix
    parts += [(r, 0, np.repeat(1e-3 * rng.standard_normal((1, n)), 3, axis=0)) for r in (1, 2)]
    a = _dense(parts, n, True, True)
    rhs = np.ones((3, n))
    rhs[1, 4] = np.nan
    rhs[2, [3, 8]] = 1.7e308
    for symmetric in (True, False):
        ab, widths = band(parts if symmetric else _mirrored(parts), n, True, symmetric=symmetric)
        if symmetric:
            x, status, _ = cholesky_band_solve(ab, 2, rhs, True)
        else:
            x, status = band_solve(ab, widths, rhs, True)
        assert status.tolist() == [runtime.RUNNING, runtime.SINGULAR, runtime.RUNNING]
        assert not x[1].any() and np.isfinite(x[2]).all()
        with np.errstate(over="ignore"):
            assert np.isinf(x[2].sum())
        np.testing.assert_allclose(x[2], np.linalg.solve(a, rhs[2]), rtol=1e-12)


def _mirrored(parts: list) -> list:
    """Lower-triangle parts with their upper mirrors (the general storage of the same
    symmetric matrix)."""
    return parts + [(0, r, values) for r, _, values in parts if r]


def test_the_band_solves_write_into_a_given_array():
    """``out``: the solution lands in the caller's rows (a step's Δx, no copy), equal to the
    solve without it."""
    n = 15
    parts = _parts(2, 0, n, 7, 9.0)
    rhs = np.random.default_rng(7).standard_normal((1, n))
    for symmetric in (True, False):
        solved = []
        for out in (None, np.full((1, n), np.nan)):
            ab, widths = band(parts if symmetric else _mirrored(parts), n, True, symmetric)
            if symmetric:
                x, status, _ = cholesky_band_solve(ab, 2, rhs, True, out)
            else:
                x, status = band_solve(ab, widths, rhs, True, out)
            assert out is None or x is out
            solved.append(x)
        np.testing.assert_array_equal(solved[0], solved[1])
        a = _dense(parts, n, True, True)
        np.testing.assert_allclose(solved[1], np.linalg.solve(a, rhs.T).T, rtol=0, atol=1e-12)
