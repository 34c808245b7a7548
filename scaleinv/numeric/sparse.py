"""Batched sparse solves in process: one block-diagonal SciPy sparse LU for the whole batch.

The steps of Newton and IG call ``sparse_solve(pattern, values, b)`` when a problem's Hessian
or Jacobian is held sparsely (:func:`scaleinv.numeric.kernels.use_sparse`). Exported modules
get the NumPy-only :func:`scaleinv.numeric.runtime.sparse_solve` under the same name (SciPy is
not allowed there); in process this module's version replaces it: the batch's matrices become
the diagonal blocks of one CSC matrix of size ``batch·k``, factorized once by SuperLU, so no
dense ``(batch, k, k)`` array is ever built. A singular factorization falls back to the
NumPy version, which tells singular samples apart.
"""

from __future__ import annotations

import numpy as np

from scaleinv.numeric import runtime

__all__ = ["sparse_solve"]


def sparse_solve(
    pattern: tuple[np.ndarray, np.ndarray, tuple[int, int]], values: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``a @ x = b`` per sample with ``a``'s nonzeros ``values`` at ``pattern``.

    Same contract as :func:`scaleinv.numeric.runtime.sparse_solve`.

    Examples
    --------
    >>> pattern = (np.array([0, 0, 1]), np.array([0, 1, 1]), (2, 2))
    >>> x, status = sparse_solve(pattern, np.array([[2.0, 1.0, 4.0]]), np.array([[3.0, 4.0]]))
    >>> x, status
    (array([[1., 1.]]), array([0], dtype=int8))
    """
    import scipy.sparse
    import scipy.sparse.linalg

    rows, cols, (k, _) = pattern
    batch = values.shape[:-1]
    flat_values = values.reshape((-1, values.shape[-1]))
    count = len(flat_values)
    flat_b = np.broadcast_to(b, batch + (k,)).reshape(-1)
    offsets = (np.arange(count) * k)[:, None]
    matrix = scipy.sparse.csc_matrix(
        (flat_values.ravel(), ((rows + offsets).ravel(), (cols + offsets).ravel())),
        shape=(count * k, count * k),
    )
    try:
        with np.errstate(all="ignore"):
            x = scipy.sparse.linalg.splu(matrix).solve(flat_b)
    except RuntimeError:  # "Factor is exactly singular"
        return runtime.sparse_solve(pattern, values, b)
    if not np.isfinite(x).all():
        return runtime.sparse_solve(pattern, values, b)
    return x.reshape(batch + (k,)), np.zeros(batch, dtype=np.int8)
