"""Matrix-free, batched, Jacobi-preconditioned conjugate gradients for the Hessian of an
indexed problem (large grids, where a sparse LU's fill grows faster than the grid).

H is never assembled. Its stencil diagonals are gathered once per step from the point
Hessians ``W`` (entry ``W[α, β]`` of point p sits at row ``(field α, p + d_α)``, column
``(field β, p + d_β)``, and its mirror): ``D[(r, c, δ)][q]`` multiplies ``v[c, q + δ]`` in row
``(r, q)``. Then ``H v = Σ D · shift(v[c], −δ)`` over the whole batch ``(B, n)`` at once. A
neumann grid (whose folds are no plain shifts) multiplies with one block-diagonal sparse
matrix of the batch instead.

A sample whose CG meets ``pᵀHp ≤ 0`` (H not positive definite) or does not reach the tolerance
within the iteration cap is reported as not converged;
:func:`scaleinv.numeric.indexed_steps.solve_hessian` solves it again with the direct route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scaleinv.numeric.indexed_kernels import IndexedKernels, Placement, shift

__all__ = ["hessian_operator", "normal_operator", "cg_solve", "CG_POINTS", "CG_TOLERANCE"]
__all__ += ["CG_ITERATIONS"]

Operator = Callable[[np.ndarray], np.ndarray]

#: Newton solves a sparse-LU H by CG from this many unknowns on; smaller problems keep the
#: direct LU, exact and cheap there. Measured per sample (Brusselator, CPU s, CG / SuperLU):
#: 512 unknowns 0.007 / 0.007, 2048 0.008 / 0.04, 8192 0.012 / 0.25, 20,000 0.017 / 0.84.
CG_POINTS = 4096
#: Stop when ``|r| ≤ CG_TOLERANCE · |b|`` (per sample), or when the residual stagnates.
CG_TOLERANCE = 1e-14
#: At most this many iterations (then: not converged, the direct route solves the sample).
CG_ITERATIONS = 500


def hessian_operator(
    k: IndexedKernels, f: np.ndarray
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """``(H·v, diag H)`` at flat samples ``f`` ``(B, n)``: ``H·v`` maps ``(B, n) → (B, n)``."""
    values = k.point("point_W", f)
    if not k.shifts:
        return _sparse_operator(k, values)
    p = k.problem
    batch = len(f)
    grid = (batch,) + p.shape
    accesses = [p.accesses[s] for s in p.input_accesses]
    fields = [p.fields.index(a.field) for a in accesses]
    diagonals: dict[tuple[int, int, tuple[int, ...]], np.ndarray] = {}

    def add(row: int, col: int, alpha: int, beta: int, w: np.ndarray) -> None:
        da, db = accesses[alpha].offset, accesses[beta].offset
        key = (fields[row], fields[col], tuple(b - a for a, b in zip(da, db)))
        moved = shift(w, da, k.periodic)
        diagonals[key] = diagonals[key] + moved if key in diagonals else moved

    for j, (alpha, beta) in enumerate(p.point_hessian):
        w = values[:, j].reshape(grid)
        add(alpha, beta, alpha, beta, w)
        if alpha != beta:
            add(beta, alpha, beta, alpha, w)
    count = len(p.fields)
    diagonal = np.zeros((batch, count) + p.shape)
    for (r, c, delta), d in diagonals.items():
        if r == c and not any(delta):
            diagonal[:, r] += d

    def times(v: np.ndarray) -> np.ndarray:
        v = v.reshape((batch, count) + p.shape)
        out = np.zeros_like(v)
        for (r, c, delta), d in diagonals.items():
            out[:, r] += d * shift(v[:, c], tuple(-x for x in delta), k.periodic)
        return out.reshape((batch, -1))

    return times, diagonal.reshape((batch, -1))


def normal_operator(
    k: IndexedKernels, f: np.ndarray
) -> tuple[Operator, np.ndarray, Operator, Operator]:
    """``(JᵀJ·v, diag JᵀJ, J·v, Jᵀ·r)`` at flat samples ``f`` (J square): CG on the normal
    equations ``JᵀJ x = Jᵀ b`` (CGNR) solves ``J x = b`` with J nonsymmetric."""
    values = k.point("point_J", f)
    if not k.shifts:  # folds: entries of one (row, column) add before they square
        matrix = _block_matrix(k.jacobian_pattern, k.jacobian_pattern.values(values))
        squares = np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()
        diagonal = squares.reshape((len(f), -1))
        forward = _block_times(matrix, len(f))
    else:
        p = k.problem
        batch = len(f)
        inputs, outputs = (batch, len(p.fields)) + p.shape, (batch, p.fields_out) + p.shape
        terms = [
            (d, values[:, j].reshape((batch,) + p.shape)) for j, d in enumerate(p.jacobian_stencil)
        ]

        def forward(v: np.ndarray) -> np.ndarray:
            v = v.reshape(inputs)
            out = np.zeros(outputs)
            for d, w in terms:
                back = tuple(-x for x in d.offset)
                out[:, d.row_field] += w * shift(v[:, d.col_field], back, k.periodic)
            return out.reshape((batch, -1))

        diagonal = k.gradient_from(values**2, np.ones((batch, p.m)))

    def backward(r: np.ndarray) -> np.ndarray:
        return k.gradient_from(values, r)

    return (lambda v: backward(forward(v))), diagonal, forward, backward


def _sparse_operator(k: IndexedKernels, values: np.ndarray) -> tuple[Operator, np.ndarray]:
    """H of the whole batch as one block-diagonal CSR matrix (the folds of a neumann grid)."""
    matrix = _block_matrix(k.hessian_pattern, k.hessian_pattern.values(values))
    return _block_times(matrix, len(values)), matrix.diagonal().reshape((len(values), -1))


def _block_matrix(pattern: Placement, coo: np.ndarray) -> Any:
    """The matrices of a batch (COO values ``(B, nnz)`` at ``pattern``) as one block-diagonal
    CSR matrix (duplicates summed)."""
    import scipy.sparse

    batch, (m, n) = len(coo), pattern.shape
    rows = ((np.arange(batch) * m)[:, None] + pattern.rows).ravel()
    cols = ((np.arange(batch) * n)[:, None] + pattern.cols).ravel()
    return scipy.sparse.csr_matrix((coo.ravel(), (rows, cols)), shape=(batch * m, batch * n))


def _block_times(matrix: Any, batch: int) -> Operator:
    return lambda v: (matrix @ v.ravel()).reshape((batch, -1))


def cg_solve(
    times: Callable[[np.ndarray], np.ndarray],
    diagonal: np.ndarray,
    rhs: np.ndarray,
    tolerance: float = CG_TOLERANCE,
    iterations: int = CG_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``H x = rhs`` per sample (``rhs`` ``(B, n)``) by Jacobi-preconditioned CG, all
    samples at once. Returns ``(x, converged)``; a sample stops on its own once converged,
    on breakdown (``pᵀHp ≤ 0`` or a non-positive/non-finite diagonal: not converged) or when
    its residual has not fallen for 20 iterations (converged if within ``10³ · tolerance``:
    the floor of rounding, else not)."""
    batch = len(rhs)
    with np.errstate(all="ignore"):
        inverse = np.where(diagonal > 0, 1.0 / diagonal, 0.0)
    usable = (diagonal > 0).all(axis=1) & np.isfinite(diagonal).all(axis=1)
    x = np.zeros(rhs.shape)
    r = rhs.copy()
    z = inverse * r
    p = z.copy()
    rz = np.einsum("bi,bi->b", r, z)
    norm_b = np.linalg.norm(rhs, axis=1)
    best = norm_b.copy()
    since = np.zeros(batch, dtype=np.int64)
    converged = norm_b == 0
    active = usable & ~converged
    for _ in range(iterations):
        if not active.any():
            break
        hp = times(p)
        php = np.einsum("bi,bi->b", p, hp)
        broken = active & ~(php > 0)
        active &= ~broken
        alpha = np.where(active, rz / np.where(active, php, 1.0), 0.0)
        x += alpha[:, None] * p
        r -= alpha[:, None] * hp
        norm_r = np.linalg.norm(r, axis=1)
        done = active & (norm_r <= tolerance * norm_b)
        converged |= done
        active &= ~done
        since = np.where(norm_r < best, 0, since + 1)
        best = np.minimum(best, norm_r)
        stalled = active & (since >= 20)
        converged |= stalled & (best <= 1e3 * tolerance * norm_b)
        active &= ~stalled
        z = inverse * r
        rz_new = np.einsum("bi,bi->b", r, z)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        rz = rz_new
        p = z + beta[:, None] * p
    return x, converged & np.isfinite(x).all(axis=1)
