"""Fused point kernels of the band route (numbers and repeats folded) and their shifted sums,
against the unfused kernel and against sums written out point by point."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from scaleinv.numeric.indexed_fused import fuse, sum_shifted
from scaleinv.numeric.indexed_source import compile_point_kernel
from scaleinv.symbolic import IndexedProblem

u0, u1, c, d = sp.symbols("u0 u1 c d")
PARAMS = {c: 0.5, d: 3.0}
#: Numbers (of the params only), repeats, and formulas that vary over the grid.
FORMULAS = [u0 * u1 - c, c * d, u0 * u1 - c, sp.sin(d) / c, d * u1**2, sp.Integer(2), c * d]


def test_fuse_writes_each_varying_formula_once_and_gives_the_numbers():
    fused = fuse("f", FORMULAS, [u0, u1], PARAMS)
    assert fused.count == 2
    assert fused.columns == (0, None, 0, None, 1, None, None)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 5)) for _ in range(2)]
    _, whole = compile_point_kernel("g", FORMULAS, [u0, u1], PARAMS)
    expected = whole(np.empty((2, len(FORMULAS), 5)), *arrays)
    values = fused.kernel(np.empty((2, fused.count, 5)), *arrays)
    for k, column in enumerate(fused.columns):
        got = values[:, column] if column is not None else np.full((2, 5), fused.constants[k])
        np.testing.assert_allclose(got, expected[:, k], rtol=1e-15, atol=0)


def test_fuse_without_numbers_gives_every_distinct_formula_a_column():
    fused = fuse("f", FORMULAS, [u0, u1], PARAMS, numbers=False)
    assert fused.columns == (0, 1, 0, 2, 3, 4, 1)


def test_a_formula_that_is_not_a_finite_real_number_stays_a_column():
    """``1/(c − c)`` and ``sqrt(−c)`` are no float: the kernel computes them as it is."""
    formulas = [1 / (d - 3), sp.sqrt(-c), c]
    fused = fuse("f", formulas, [u0], PARAMS)
    assert fused.columns == (0, 1, None) and fused.constants[2] == 0.5


def _direct(values, terms, fused, width, size, factor=None):
    """``Σ v_k(j − c) · factor(j − c)``, point by point."""
    out = np.zeros((values.shape[0], size))
    for j in range(size):
        for c_, k in terms:
            p = width + j - c_
            column = fused.columns[k]
            v = values[:, column, p] if column is not None else fused.constants[k]
            out[:, j] += v * (factor[:, p] if factor is not None else 1.0)
    return out


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("with_factor", [False, True], ids=["sum", "products"])
def test_sum_shifted_matches_the_sum_point_by_point(strided: bool, with_factor: bool):
    fused = fuse("f", FORMULAS, [u0, u1], PARAMS)
    rng = np.random.default_rng(1)
    width, size, batch = 2, 9, 3
    values = rng.standard_normal((batch, fused.count, size + 2 * width))
    factor = rng.standard_normal((batch, size + 2 * width)) if with_factor else None
    spare = np.full((2, batch, size + 4), np.nan)  # larger than needed, garbage inside
    cases = [
        [],
        [(0, 1)],  # a number
        [(1, 1), (-2, 5)],  # numbers only
        [(0, 0)],  # one column
        [(2, 0), (-1, 4)],
        [(1, 0), (0, 1), (-1, 4), (2, 6), (0, 2)],  # columns, numbers, a repeat
    ]
    for terms in cases:
        band = np.full((batch, size, 3), np.nan).transpose(0, 2, 1)  # LAPACK's storage
        out = band[:, 1] if strided else np.full((batch, size), np.nan)
        sum_shifted(out, values, terms, fused, width, spare, factor)
        expected = _direct(values, terms, fused, width, size, factor)
        np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("boundary", ["periodic", {"kind": "dirichlet", "value": 0.2}])
def test_the_newton_kernel_folds_a_linear_stencils_coefficients(boundary):
    """1-D diffusion: ``dt*nu`` (J's off-diagonals) and ``(dt*nu)²`` (W's corners) are numbers
    on a periodic grid, not columns; off it (the points beyond are zeroed) they are columns.
    Either way ∇L and H's band are the expanded problem's (see test_indexed_solve)."""
    problem = IndexedProblem.from_strings(
        "u[0:n]",
        "u[i] + dt*(nu*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3)",
        boundary=boundary,
        params={"n": 12, "dt": 0.1, "nu": 1.0, "c": 0.5},
        target="0.3*sin(i)",
    )
    k = problem.compile()
    fused = k.point_newton
    periodic = boundary == "periodic"
    assert len(fused.columns) == 10  # P − y*, 3 diagonals, 6 entries of W
    assert fused.count == (4 if periodic else 6)  # r, J₀, W₀₁ = W₁₂, W₁₁ (+ dt·nu, (dt·nu)²)
    x = 0.3 * np.random.default_rng(2).standard_normal((2, 12))
    expanded = problem.to_problem().compile()
    gradient, ab, _ = k.gradient_and_hessian_band(x, -0.5)
    np.testing.assert_allclose(gradient, -0.5 * expanded.gradient(x), rtol=0, atol=1e-14)
    j = np.arange(12)
    for s in range(2):
        hessian = expanded.hessian(x[s])
        for q in range(3):
            rows = j if periodic else j[: 12 - q]
            np.testing.assert_allclose(ab[s, q, rows], hessian[(rows + q) % 12, rows], atol=1e-14)
