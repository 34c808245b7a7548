"""Structured solves of indexed problems: LAPACK band LU (with a Woodbury correction for a
periodic grid's corners) and SciPy's sparse LU with a static pattern.

Memory stays linear in the grid: one sample's band ``(l + u + 1, n)`` or sparse factors at a
time, never a dense ``(n, n)``. A singular matrix (or a non-finite solution) gives the sample
the status ``singular`` and a zero step, as :func:`scaleinv.numeric.runtime.solve` does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from scaleinv.numeric import runtime

__all__ = ["band_solve", "sparse_lu_solve", "corners"]


@lru_cache(maxsize=32)
def corners(lower: int, upper: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The band slots ``(q, j)`` LAPACK ignores (row ``j + q − upper`` off the grid: only in
    the first ``upper`` and last ``lower`` columns) and the row each stands for on a periodic
    grid: ``(q, j, row)``."""
    columns = np.unique(np.r_[np.arange(min(upper, size)), np.arange(max(0, size - lower), size)])
    qs, js = np.meshgrid(np.arange(lower + upper + 1), columns, indexing="ij")
    rows = js + qs - upper
    off = (rows < 0) | (rows >= size)
    return qs[off], js[off], rows[off] % size


def band_solve(
    ab: np.ndarray, bandwidths: tuple[int, int], rhs: np.ndarray, periodic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``A x = rhs`` per sample, ``A`` in band storage ``ab`` ``(B, l + u + 1, n)``
    (see :func:`scaleinv.numeric.indexed_kernels.band`); periodic: plus its corners, by
    Woodbury (``A = B + P_R E``: one band LU with ``1 + |R|`` right-hand sides and an
    ``|R| × |R|`` solve). Returns ``(x, status)``."""
    from scipy.linalg import LinAlgError, solve_banded

    lower, upper = bandwidths
    size = ab.shape[-1]
    x = np.zeros(rhs.shape)
    status = np.full(len(rhs), runtime.RUNNING, dtype=np.int8)
    slots = corners(lower, upper, size) if periodic else None
    for k in range(len(rhs)):
        try:
            with np.errstate(all="ignore"):
                x[k] = _band_one(solve_banded, ab[k], (lower, upper), rhs[k], slots)
        except (LinAlgError, ValueError):
            status[k] = runtime.SINGULAR
            continue
        if not np.isfinite(x[k]).all():
            x[k], status[k] = 0.0, runtime.SINGULAR
    return x, status


def _band_one(
    solve_banded: Any,
    ab: np.ndarray,
    bandwidths: tuple[int, int],
    rhs: np.ndarray,
    slots: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    if slots is None:
        return solve_banded(bandwidths, ab, rhs, check_finite=False)
    qs, js, rows = slots
    values = ab[qs, js]
    used = values != 0
    qs, js, rows, values = qs[used], js[used], rows[used], values[used]
    if not len(values):
        return solve_banded(bandwidths, ab, rhs, check_finite=False)
    wrapped, where = np.unique(rows, return_inverse=True)
    columns = np.zeros((len(rhs), 1 + len(wrapped)))
    columns[:, 0] = rhs
    columns[wrapped, 1 + np.arange(len(wrapped))] = 1.0
    solved = solve_banded(bandwidths, ab, columns, check_finite=False)
    y, z = solved[:, 0], solved[:, 1:]
    ez = np.zeros((len(wrapped), len(wrapped)))
    np.add.at(ez, where, values[:, None] * z[js])
    ey = np.bincount(where, weights=values * y[js], minlength=len(wrapped))
    return y - z @ np.linalg.solve(np.eye(len(wrapped)) + ez, ey)


def sparse_lu_solve(
    placement: Any, values: np.ndarray, rhs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Solve per sample with SciPy's sparse LU, the matrix given by its COO ``values``
    ``(B, nnz)`` at ``placement`` (:class:`~scaleinv.numeric.indexed_kernels.Placement`)."""
    from scipy.sparse.linalg import splu

    x = np.zeros(rhs.shape)
    status = np.full(len(rhs), runtime.RUNNING, dtype=np.int8)
    for k in range(len(rhs)):
        try:
            with np.errstate(all="ignore"):
                lu = splu(placement.matrix(values[k]), permc_spec="MMD_AT_PLUS_A")
                x[k] = lu.solve(rhs[k])
        except RuntimeError:  # "Factor is exactly singular"
            status[k] = runtime.SINGULAR
            continue
        if not np.isfinite(x[k]).all():
            x[k], status[k] = 0.0, runtime.SINGULAR
    return x, status
