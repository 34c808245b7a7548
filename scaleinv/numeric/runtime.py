"""Pure-NumPy helpers the compiled update steps call: solves that flag singular samples, the
SVD half-inverse of HIG, and nearest-branch selection for local inverses.

This module imports nothing but NumPy on purpose: :func:`scaleinv.export` copies its source
verbatim into exported modules, so in-process and exported steps run the same code.
"""

import numpy

# Per-sample status codes (the values of scaleinv.numeric.status.Status).
RUNNING, CONVERGED, MAX_STEPS, DIVERGED, NO_INVERSE, SINGULAR = 0, 1, 2, 3, 4, 5

_EPS = numpy.finfo(numpy.float64).eps


def is_singular(a):
    """Per sample of ``a`` (``(..., k, k)``): is it singular to working precision?"""
    with numpy.errstate(all="ignore"):
        s = numpy.linalg.svd(a, compute_uv=False)
        finite = numpy.isfinite(s).all(axis=-1)
        return ~finite | ~(s[..., -1] > s[..., 0] * max(a.shape[-2:]) * _EPS)


def solve(a, b):
    """Solve ``a @ x = b`` per sample; singular samples get ``x = 0`` and status ``SINGULAR``.

    One batched LU solve when every sample is regular; only when LAPACK meets an exactly
    singular pivot or a result is not finite are the samples told apart by their singular
    values (singular to working precision).

    Examples
    --------
    >>> x, status = solve(numpy.array([[[2.0, 0], [0, 4]], [[1, 1], [1, 1]]]), numpy.ones((2, 2)))
    >>> x, status
    (array([[0.5 , 0.25],
           [0.  , 0.  ]]), array([0, 5], dtype=int8))
    """
    try:
        with numpy.errstate(all="ignore"):
            x = numpy.linalg.solve(a, b[..., None])[..., 0]
        if numpy.isfinite(x).all():
            return x, numpy.zeros(x.shape[:-1], dtype=numpy.int8)
    except numpy.linalg.LinAlgError:
        pass
    singular = is_singular(a)
    safe = numpy.where(singular[..., None, None], numpy.eye(a.shape[-1]), a)
    x = numpy.linalg.solve(safe, b[..., None])[..., 0]
    x = numpy.where(singular[..., None], 0.0, x)
    return x, numpy.where(singular, SINGULAR, RUNNING).astype(numpy.int8)


def sparse_solve(pattern, values, b, chunk_bytes=1 << 26):
    """Solve ``a @ x = b`` per sample, ``a`` given by its nonzeros ``values`` (``(..., nnz)``)
    at ``pattern = (rows, cols, (k, k))``; singular samples are flagged as by :func:`solve`.

    NumPy only (exported modules use it): samples are scattered into dense matrices a chunk
    of at most ``chunk_bytes`` at a time, so memory stays bounded. In process, scaleinv uses a
    SciPy block-diagonal sparse LU instead (:mod:`scaleinv.numeric.sparse`).

    Examples
    --------
    >>> pattern = (numpy.array([0, 1]), numpy.array([0, 1]), (2, 2))
    >>> sparse_solve(pattern, numpy.array([2.0, 4.0]), numpy.ones(2))
    (array([0.5 , 0.25]), array(0, dtype=int8))
    """
    rows, cols, (k, _) = pattern
    batch = values.shape[:-1]
    flat_values = values.reshape((-1, values.shape[-1]))
    flat_b = numpy.broadcast_to(b, batch + (k,)).reshape((-1, k))
    x = numpy.empty(flat_b.shape)
    status = numpy.empty(len(flat_b), dtype=numpy.int8)
    step = max(1, chunk_bytes // (8 * k * k))
    for start in range(0, len(flat_b), step):
        part = slice(start, start + step)
        a = numpy.zeros((len(flat_values[part]), k, k))
        a[:, rows, cols] = flat_values[part]
        x[part], status[part] = solve(a, flat_b[part])
    return x.reshape(batch + (k,)), status.reshape(batch)


def inverse_jacobian_times(jac, dy):
    """``J⁻¹ Δy`` for square ``J`` (singular samples flagged), the pseudo-inverse otherwise."""
    if jac.shape[-1] == jac.shape[-2]:
        return solve(jac, dy)
    with numpy.errstate(all="ignore"):
        dx = (numpy.linalg.pinv(jac) @ dy[..., None])[..., 0]
    bad = ~numpy.isfinite(dx).all(axis=-1)
    status = numpy.where(bad, SINGULAR, RUNNING).astype(numpy.int8)
    return numpy.where(bad[..., None], 0.0, dx), status


def half_inverse(jac, g, beta, rcond=None):
    """``V Σ^(-β) Uᵀ g`` per sample, dropping singular values below ``rcond · σ_max``.

    ``σ_max`` is the largest singular value of the whole batch (the SVD of the block-diagonal,
    batch-stacked Jacobian is the per-sample SVDs together). ``rcond=None`` means
    ``max(m, n) · eps``.

    Examples
    --------
    >>> jac = numpy.array([[2.0, 0.0], [0.0, 8.0]])
    >>> half_inverse(jac, numpy.array([1.0, 1.0]), beta=0.5)
    array([0.70710678, 0.35355339])
    """
    u, s, vt = numpy.linalg.svd(jac, full_matrices=False)
    cut = (max(jac.shape[-2:]) * _EPS if rcond is None else rcond) * s.max()
    keep = s > cut
    scaled = numpy.where(keep, numpy.where(keep, s, 1.0) ** (-beta), 0.0)
    coeff = scaled * (numpy.swapaxes(u, -1, -2) @ g[..., None])[..., 0]
    return (numpy.swapaxes(vt, -1, -2) @ coeff[..., None])[..., 0]
