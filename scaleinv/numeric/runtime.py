"""Pure-NumPy helpers the compiled update steps call: solves that flag singular samples, the
SVD half-inverse of HIG, and nearest-branch selection for local inverses.

This module imports nothing but NumPy on purpose: :func:`scaleinv.export` copies its source
verbatim into exported modules, so in-process and exported steps run the same code.
"""

import numpy

# Per-sample status codes (the values of scaleinv.numeric.status.Status). NO_INVERSE: P(x) = y
# has no real solution (known from the closed form or a range certificate); NOT_FOUND: the
# numeric local inverse did not reach a solution along the path (one may still exist).
RUNNING, CONVERGED, MAX_STEPS, DIVERGED, NO_INVERSE, SINGULAR, NOT_FOUND = 0, 1, 2, 3, 4, 5, 6

_EPS = numpy.finfo(numpy.float64).eps


def is_singular(a):
    """Per sample of ``a`` (``(..., k, k)``): is it singular to working precision?

    A matrix with a non-finite entry is not called singular (its solve is not finite either,
    which tells a caller it diverged).
    """
    finite = numpy.isfinite(a).all(axis=(-2, -1))
    with numpy.errstate(all="ignore"):
        s = numpy.linalg.svd(numpy.where(finite[..., None, None], a, 0.0), compute_uv=False)
    return finite & ~(s[..., -1] > s[..., 0] * max(a.shape[-2:]) * _EPS)


#: Cramer's rule is used for 1x1 and 2x2 samples where ``‖a‖_F^k / |det a|`` (at least the
#: condition number) stays below this: far from singular to working precision, where 2x2 Cramer
#: is as accurate as LU (it is forward stable). Other samples go to LAPACK. (3x3 Cramer needs a
#: refinement step to be as accurate, and is then no faster than LAPACK at 10**5 samples.)
_CRAMER_LIMIT = 1e13
#: Samples per block of the closed-form solve: its temporaries stay in cache (2-3x faster than
#: whole-batch operations at 10**5 samples).
_BLOCK = 8192


def _cramer_into(a, b, x):
    """Solve ``(s, k, k)`` systems, k = 1 or 2, by Cramer's rule into ``x``; return where the
    result is trusted (finite, and the matrix far from singular: see ``_CRAMER_LIMIT``)."""
    if a.shape[-1] == 1:
        det = a[:, 0, 0]
        x[:, 0] = b[:, 0] / det
        fine = numpy.abs(det) > 0
    else:
        a00, a01, a10, a11 = a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1]
        det = a00 * a11 - a01 * a10
        x[:, 0] = (a11 * b[:, 0] - a01 * b[:, 1]) / det
        x[:, 1] = (a00 * b[:, 1] - a10 * b[:, 0]) / det
        entries = a.reshape(-1, 4)
        fine = numpy.einsum("si,si->s", entries, entries) < _CRAMER_LIMIT * numpy.abs(det)
    for j in range(a.shape[-1]):
        fine &= numpy.isfinite(x[:, j])
    return fine


def _lapack_solve(a, b):
    """LAPACK's batched LU; samples are told apart by their singular values only on failure."""
    try:
        with numpy.errstate(all="ignore"):
            x = numpy.linalg.solve(a, b[..., None])[..., 0]
        if numpy.isfinite(x).all():
            return x, numpy.zeros(x.shape[:-1], dtype=numpy.int8)
    except numpy.linalg.LinAlgError:
        pass
    singular = is_singular(a)
    regular = numpy.isfinite(a).all(axis=(-2, -1)) & ~singular
    safe = numpy.where(regular[..., None, None], a, numpy.eye(a.shape[-1]))
    with numpy.errstate(all="ignore"):
        x = numpy.linalg.solve(safe, b[..., None])[..., 0]
    x = numpy.where(regular[..., None], x, numpy.where(singular[..., None], 0.0, numpy.nan))
    return x, numpy.where(singular, SINGULAR, RUNNING).astype(numpy.int8)


def solve(a, b):
    """Solve ``a @ x = b`` per sample; singular samples get ``x = 0`` and status ``SINGULAR``.

    Systems of size 1 and 2 are solved in closed form (Cramer's rule: a few array operations,
    about 5x faster than LAPACK's batched solve) wherever the matrix is far from singular; the
    other samples, and larger systems, take one batched LU solve. Only when LAPACK
    meets an exactly singular pivot or a result is not finite are the samples told apart by
    their singular values (singular to working precision).

    Examples
    --------
    >>> x, status = solve(numpy.array([[[2.0, 0], [0, 4]], [[1, 1], [1, 1]]]), numpy.ones((2, 2)))
    >>> x, status
    (array([[0.5 , 0.25],
           [0.  , 0.  ]]), array([0, 5], dtype=int8))
    """
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    k = a.shape[-1]
    if k > 2:
        return _lapack_solve(a, b)
    batch = numpy.broadcast_shapes(a.shape[:-2], b.shape[:-1])
    a = numpy.broadcast_to(a, batch + (k, k)).reshape(-1, k, k)
    b = numpy.broadcast_to(b, batch + (k,)).reshape(-1, k)
    x = numpy.empty(b.shape)
    fine = numpy.empty(len(b), dtype=bool)
    with numpy.errstate(all="ignore"):
        for start in range(0, len(b), _BLOCK):
            rows = slice(start, start + _BLOCK)
            fine[rows] = _cramer_into(a[rows], b[rows], x[rows])
    status = numpy.zeros(len(x), dtype=numpy.int8)
    if not fine.all():
        rest = ~fine
        x[rest], status[rest] = _lapack_solve(a[rest], b[rest])
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
