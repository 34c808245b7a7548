"""Structured solves of indexed problems: LAPACK's band Cholesky and band LU (a periodic grid's
corners by a Schur complement), and SciPy's sparse LU with a static pattern.

Band storage is LAPACK's, one sample per leading index, each sample Fortran-contiguous so that
LAPACK factors it in place (see :func:`scaleinv.numeric.indexed_kernels.band`):

* general (LU): ``ab[:, l + u + i − j, j] = A[i, j]``, ``(B, 2l + u + 1, n)`` (the first ``l``
  rows are the room the LU's pivoting fills);
* symmetric (Cholesky): the lower triangle, ``ab[:, i − j, j] = A[i, j]``, ``(B, l + 1, n)``.

On a periodic grid the entries that wrap around lie in the slots LAPACK ignores (their row is
off the grid). Every wrapped entry touches the first ``k = max(l, u)`` unknowns (the border
``b``), so the rest (``i``) is a plain band: the solve factors ``A_ii`` once, solves it with the
right-hand side and the ``k`` columns of ``A_ib`` together (one LAPACK call), and eliminates
the border through its ``k × k`` Schur complement ``S = A_bb − A_bi A_ii⁻¹ A_ib``. Exact (no
correction terms), and a Cholesky of an SPD ``A`` stays one (``A_ii`` is a principal block).

Memory stays linear in the grid: one sample's band and ``1 + k`` vectors at a time, never a
dense ``(n, n)``. A singular matrix (or a non-finite solution) gives the sample the status
``singular`` and a zero step, as :func:`scaleinv.numeric.runtime.solve` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from scaleinv.numeric import runtime

__all__ = ["band_solve", "cholesky_band_solve", "sparse_lu_solve", "Border", "border"]


@dataclass(frozen=True)
class Border:
    """Where the band slots touching the border (the first ``k`` unknowns) go.

    ``rows``/``cols`` index a sample's storage ``(R, n)``; each slot's value goes to
    ``A_bb[bb]`` (``bb`` = its (row, column) there), ``A_ib[ib]`` (interior row − k, border
    column) or ``A_bi[bi]`` (border row, interior column − k); ``kind`` says which (0, 1, 2).
    Symmetric storage holds one triangle, so a slot also stands for its mirror: an ``A_bi``
    slot goes to ``A_ib`` transposed, and an off-diagonal ``A_bb`` slot to both triangles."""

    k: int
    rows: np.ndarray
    cols: np.ndarray
    kind: np.ndarray
    target: tuple[np.ndarray, np.ndarray]


@lru_cache(maxsize=32)
def border(lower: int, upper: int, size: int, symmetric: bool) -> Border:
    """The border slots of a periodic band ``(l, u)`` on ``size`` points (``size > 2k``).

    Slot ``(q, j)`` (storage row ``q``, plus ``l`` in general storage) holds ``A[(j + q − u)
    mod size, j]``; it is interior when its row, unwrapped, lies in ``[k, size)`` and
    ``j ≥ k`` (LAPACK reads it there), a border slot when its row or column is below ``k``."""
    k = max(lower, upper)
    columns = np.r_[np.arange(min(k + upper, size)), np.arange(max(k + upper, size - lower), size)]
    grid = np.meshgrid(np.arange(lower + upper + 1), columns, indexing="ij")
    qs, js = grid[0].ravel(), grid[1].ravel()
    rows = (js + qs - upper) % size
    keep = (js < k) | (rows < k)
    qs, js, rows = qs[keep], js[keep], rows[keep]
    kind = np.where(js < k, np.where(rows < k, 0, 1), 2)
    first = np.where(kind == 0, rows, np.where(kind == 1, rows - k, rows))
    second = np.where(kind == 2, js - k, js)
    if symmetric:  # an A_bi slot is the mirror of an A_ib entry
        first, second = np.where(kind == 2, js - k, first), np.where(kind == 2, rows, second)
        kind = np.where(kind == 2, 1, kind)
    offset = 0 if symmetric else lower
    return Border(k, offset + qs, js, kind, (first, second))


def _parts(ab: np.ndarray, b: Border, symmetric: bool) -> tuple[np.ndarray, Entries, Entries]:
    """``A_bb`` ``(k, k)`` and the entries ``(rows, cols, values)`` of ``A_ib`` (interior row
    − k, border column) and ``A_bi`` (border row, interior column − k) of one sample's storage
    ``ab``."""
    values = ab[b.rows, b.cols]
    first, second = b.target
    bb = b.kind == 0
    a_bb = np.zeros((b.k, b.k))
    np.add.at(a_bb, (first[bb], second[bb]), values[bb])
    if symmetric:  # the other triangle (off the diagonal)
        off = bb & (first != second)
        np.add.at(a_bb, (second[off], first[off]), values[off])
    ib, bi = b.kind == 1, b.kind == 2
    return a_bb, (first[ib], second[ib], values[ib]), (first[bi], second[bi], values[bi])


#: The largest condition number (a lower bound of it) of a periodic band's interior block
#: that the Schur complement solves with (:func:`band_solve`); a sample above it goes to the
#: sparse LU (the rounding it gives is at most ~10⁻⁸ relative).
MAX_CONDITION = 1e8

#: ``(rows, cols, values)`` of a sparse block.
Entries = tuple[np.ndarray, np.ndarray, np.ndarray]
#: Rows of the first forward solve of a periodic Cholesky's border columns (see
#: :func:`cholesky_band_solve`).
DECAY_ROWS = 4096


def _dense(entries: Entries, rows: slice, k: int, first: int = 0) -> np.ndarray:
    """The ``rows`` of a sparse ``(·, k)`` block, Fortran-ordered (as LAPACK takes them), with
    ``first`` zero columns before (room for a right-hand side)."""
    out = np.zeros((rows.stop - rows.start, first + k), order="F")
    r, c, v = entries
    inside = (r >= rows.start) & (r < rows.stop)
    np.add.at(out, (r[inside] - rows.start, first + c[inside]), v[inside])
    return out


#: ``dgtsv`` overwrites the diagonals and the right-hand sides in place (no copies where they
#: are contiguous).
_OVERWRITE_GTSV = {"overwrite_dl": 1, "overwrite_d": 1, "overwrite_du": 1, "overwrite_b": 1}


def band_solve(
    ab: np.ndarray,
    bandwidths: tuple[int, int],
    rhs: np.ndarray,
    periodic: bool,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``A x = rhs`` per sample by LAPACK's band LU (``dgbtrf``/``dgbtrs``; tridiagonal:
    ``dgtsv``, 2× faster at 10⁶ points, on contiguous rows of ``ab`` faster still), ``A`` in
    general band storage ``ab`` ``(B, 2l + u + 1, n)`` (overwritten by its factors); periodic:
    with its corners (see the module docstring).
    Returns ``(x, status)`` (``x`` in ``out`` if given)."""
    from scipy.linalg.blas import dgemv
    from scipy.linalg.lapack import dgbtrf, dgbtrs, dgtsv

    lower, upper = bandwidths

    def one(a: np.ndarray, r: np.ndarray, b: Border | None, sample: int, x: np.ndarray) -> None:
        k = b.k if b else 0
        if b:
            a_bb, a_ib, (bi_rows, bi_cols, bi_values) = _parts(a, b, False)
            columns = _dense(a_ib, slice(0, len(r) - k), k, first=1)
            size = np.abs(a[lower:, k:]).max()  # of A_ii's entries, before LAPACK factors it
        else:
            columns = np.empty((len(r), 1), order="F")
        columns[:, 0] = r[k:]
        if (lower, upper) == (1, 1):  # tridiagonal: dgtsv, a tight loop (no BLAS per column)
            diagonals = a[3, k:-1], a[2, k:], a[1, k + 1 :]
            *_, z, info = dgtsv(*diagonals, columns, **_OVERWRITE_GTSV)
        else:
            lu, pivots, info = dgbtrf(a[:, k:], lower, upper, overwrite_ab=1)
            if info == 0:
                z, _ = dgbtrs(lu, lower, upper, columns, pivots, overwrite_b=1)
        if info > 0:
            raise np.linalg.LinAlgError("singular")
        x[k:] = z[:, 0]  # z = A_ii⁻¹ [rhs, A_ib]
        if b:
            y, z = z[:, 0], z[:, 1:]
            _require_regular_interior(size, (y, r[k:]), (z, a_ib[2]))
            schur = a_bb.copy()
            np.add.at(schur, bi_rows, -bi_values[:, None] * z[bi_cols])
            reduced = r[:k] - np.bincount(bi_rows, weights=bi_values * y[bi_cols], minlength=k)
            x[:k] = np.linalg.solve(schur, reduced)
            dgemv(-1.0, z, x[:k], beta=1.0, y=x[k:], overwrite_y=1)

    wraps = periodic and max(lower, upper) > 0
    corners = border(lower, upper, ab.shape[-1], False) if wraps else None
    return _per_sample(one, ab, rhs, corners, out)


def _require_regular_interior(size: float, *pairs: tuple[np.ndarray, np.ndarray]) -> None:
    """Raise ``LinAlgError`` where ``A_ii`` (a periodic band without its corners) is near
    singular, though ``A`` need not be: the Schur complement then cancels huge terms and loses
    every digit (a non-diagonally-dominant stencil, ``A_ii`` at condition 10¹⁹ with ``A`` at
    14). Each pair ``(A_ii⁻¹ V, V)`` (a vector or columns) bounds ``‖A_ii⁻¹‖∞ ≥ max|A_ii⁻¹ V| /
    max|V|``; times ``size`` (the largest entry, at most ``‖A_ii‖∞``) that is a lower bound of
    ``A_ii``'s condition number (max-norms: no overflow where 2-norms would)."""
    bound = max(float(np.abs(w).max()) / (float(np.abs(v).max()) or np.inf) for w, v in pairs)
    if not bound * size <= MAX_CONDITION:
        raise np.linalg.LinAlgError("the band without its corners is near singular")


def cholesky_band_solve(
    ab: np.ndarray, bandwidth: int, rhs: np.ndarray, periodic: bool, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve ``A x = rhs`` per sample by LAPACK's band Cholesky (``dpbtrf``, then BLAS's
    ``dtbsv`` forward and backward: ``dtbtrs`` first scans the factor's diagonal for zeros,
    which a successful ``dpbtrf`` rules out; at 10⁶ points 10 ms a solve instead of 13),
    ``A`` symmetric in lower band storage ``ab`` ``(B, l + 1, n)`` (overwritten); periodic:
    with its corners. Returns ``(x, status, indefinite)`` (``x`` in ``out`` if given):
    ``indefinite`` marks the samples
    whose ``A_ii`` is not positive definite (no Cholesky: their ``x`` is zero, to be solved by
    LU).

    Periodic, the Schur complement needs ``W = L⁻¹ A_ib`` (``A_ii = L Lᵀ``). ``A_ib`` is zero
    but for its first and last ``k`` rows; ``L⁻¹`` keeps the last ones there (a ``k × k``
    solve), and it spreads the first ones down the grid, decaying where ``A_ii`` is
    diagonally dominant: once ``k`` rows in a row are exactly zero all further ones are (the
    solve's recurrence is homogeneous there). So they are solved on :data:`DECAY_ROWS` rows
    first, on all only if they have not vanished there: at 10⁶ points two full solves
    instead of four."""
    from scipy.linalg.blas import dtbsv
    from scipy.linalg.lapack import dpbtrf, dtbtrs

    indefinite = np.zeros(len(rhs), dtype=bool)

    def one(a: np.ndarray, r: np.ndarray, b: Border | None, sample: int, x: np.ndarray) -> None:
        k = b.k if b else 0
        factor, info = dpbtrf(a[:, k:], lower=1, overwrite_ab=1)
        if info > 0:
            indefinite[sample], x[:] = True, 0.0
            return
        y = x[k:]
        y[:] = r[k:]
        dtbsv(bandwidth, factor, y, lower=1, overwrite_x=1)  # y = L⁻¹ rhs, in place
        if b:
            a_bb, a_ib, _ = _parts(a, b, True)
            pieces = _border_solve(factor, a_ib, k, dtbtrs)  # W by row ranges
            gram = _gram(pieces, y)  # [Wᵀy, WᵀW]
            x[:k] = np.linalg.solve(a_bb - gram[:, 1:], r[:k] - gram[:, 0])
            for rows, w in pieces:
                y[rows] -= w @ x[:k]
        dtbsv(bandwidth, factor, y, lower=1, trans=1, overwrite_x=1)  # x = L⁻ᵀ y, in place

    wraps = periodic and bandwidth > 0
    corners = border(bandwidth, 0, ab.shape[-1], True) if wraps else None
    x, status = _per_sample(one, ab, rhs, corners, out)
    return x, status, indefinite


def _gram(pieces: list[tuple[slice, np.ndarray]], y: np.ndarray) -> np.ndarray:
    """``Wᵀ [y, W]`` ``(k, 1 + k)`` for ``W`` given by row pieces, by dot products of its
    (contiguous) columns: at 10⁶ rows a third of what ``w.T @ w`` takes."""
    k = pieces[0][1].shape[1]
    gram = np.zeros((k, 1 + k))
    for rows, w in pieces:
        columns = [y[rows], *(w[:, j] for j in range(k))]
        gram += [[np.dot(a, b) for b in columns] for a in columns[1:]]
    return gram


def _border_solve(
    factor: np.ndarray, a_ib: Entries, k: int, dtbtrs: Any
) -> list[tuple[slice, np.ndarray]]:
    """``W = L⁻¹ A_ib`` as ``(rows, W[rows])`` pieces, zero elsewhere (see
    :func:`cholesky_band_solve`): the solve of ``A_ib``'s first ``k`` rows on its first
    :data:`DECAY_ROWS` rows and of its last ``k`` rows on those (``L``'s last diagonal block),
    or, where the first have not vanished there, the whole ``W``."""
    m = factor.shape[1]
    head, tail = slice(0, min(m, DECAY_ROWS)), slice(m - k, m)
    if head.stop < tail.start:
        top = _dense(a_ib, slice(0, k), k)
        w_head = np.zeros((head.stop, k), order="F")
        w_head[:k] = top
        w_head, _ = dtbtrs(factor[:, head], w_head, uplo="L", overwrite_b=1)
        if not w_head[-k:].any():
            w_tail, _ = dtbtrs(factor[:, tail], _dense(a_ib, tail, k), uplo="L", overwrite_b=1)
            return [(head, w_head), (tail, w_tail)]
    whole, _ = dtbtrs(factor, _dense(a_ib, slice(0, m), k), uplo="L", overwrite_b=1)
    return [(slice(0, m), whole)]


def _per_sample(
    one: Any, ab: np.ndarray, rhs: np.ndarray, b: Border | None, out: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``one(ab[s], rhs[s], border, s, x[s])`` (writing all of ``x[s]``) for every sample
    ``s``: ``(x, status)``, ``x`` in ``out`` if given, a sample singular where LAPACK or the
    Schur complement says so, or where ``x`` is not finite (its sum is not, or, where that
    overflowed, an entry)."""
    x = np.empty(rhs.shape) if out is None else out
    status = np.full(len(rhs), runtime.RUNNING, dtype=np.int8)
    for s in range(len(rhs)):
        try:
            with np.errstate(all="ignore"):
                one(ab[s], rhs[s], b, s, x[s])
                finite = np.isfinite(x[s].sum()) or np.isfinite(x[s]).all()
        except (np.linalg.LinAlgError, ValueError):
            finite = False
        if not finite:
            x[s], status[s] = 0.0, runtime.SINGULAR
    return x, status


def sparse_lu_solve(
    placement: Any, values: np.ndarray, rhs: np.ndarray, symmetric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Solve per sample with SciPy's sparse LU, the matrix given by its COO ``values``
    ``(B, nnz)`` at ``placement`` (:class:`~scaleinv.numeric.indexed_kernels.Placement`).

    The column ordering follows the pattern: minimum degree on ``Aᵀ + A`` for a symmetric
    matrix (H), COLAMD otherwise (J: on the 64 × 64 Brusselator, minimum degree on ``Aᵀ + A``
    fills J's factors with 29 M entries in 7.5 s, COLAMD with 1.9 M in 0.1 s)."""
    ordering = "MMD_AT_PLUS_A" if symmetric else "COLAMD"
    from scipy.sparse.linalg import splu

    x = np.zeros(rhs.shape)
    status = np.full(len(rhs), runtime.RUNNING, dtype=np.int8)
    for k in range(len(rhs)):
        try:
            with np.errstate(all="ignore"):
                lu = splu(placement.matrix(values[k]), permc_spec=ordering)
                x[k] = lu.solve(rhs[k])
        except RuntimeError:  # "Factor is exactly singular"
            status[k] = runtime.SINGULAR
            continue
        if not np.isfinite(x[k]).all():
            x[k], status[k] = 0.0, runtime.SINGULAR
    return x, status
