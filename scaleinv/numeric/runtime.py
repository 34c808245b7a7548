"""Pure-NumPy helpers the compiled update steps call: solves that flag singular samples, the
SVD half-inverse of HIG, and the iteration loop of :func:`scaleinv.minimize` (:func:`iterate`).

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
    return solve_flagged(a, b)


def solve_flagged(a, b):
    """:func:`solve` without its fast path: singular samples told apart first (no branching
    on values, so it traces under ``jax.jit``)."""
    singular = is_singular(a)
    safe = numpy.where(singular[..., None, None], numpy.eye(a.shape[-1]), a)
    x = numpy.linalg.solve(safe, b[..., None])[..., 0]
    x = numpy.where(singular[..., None], 0.0, x)
    return x, numpy.asarray(numpy.where(singular, SINGULAR, RUNNING), dtype=numpy.int8)


def inverse_jacobian_times(jac, dy):
    """``J⁻¹ Δy`` for square ``J`` (singular samples flagged), the pseudo-inverse otherwise."""
    if jac.shape[-1] == jac.shape[-2]:
        return solve(jac, dy)
    with numpy.errstate(all="ignore"):
        dx = (numpy.linalg.pinv(jac) @ dy[..., None])[..., 0]
    bad = ~numpy.isfinite(dx).all(axis=-1)
    status = numpy.asarray(numpy.where(bad, SINGULAR, RUNNING), dtype=numpy.int8)
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


#: A sample whose loss exceeds this (or is not finite) has diverged.
DIVERGED_LOSS = 1e150


def iterate(step, gradient, loss, x0, steps, tol=None, state=None):
    """Run ``step`` ``steps`` times from every point of ``x0`` (``(..., n)``); the loop of
    :func:`scaleinv.minimize`, here so exported modules and Dask workers run it without scaleinv.

    ``step(x, state) -> (dx, state, status)``; ``gradient`` and ``loss`` are kernels. A sample
    stops (and keeps its point) when it converges (``|dL/dx| <= tol``, checked only when ``tol``
    is given), diverges (non-finite point, or loss above :data:`DIVERGED_LOSS`) or its step
    fails. Returns the iterates ``(steps + 1, ..., n)`` and the per-sample status codes.

    Examples
    --------
    >>> xs, status = iterate(lambda x, s: (-0.5 * x, s, numpy.zeros(x.shape[:-1], numpy.int8)),
    ...                      lambda x: x, lambda x: (x**2).sum(-1), numpy.array([[4.0]]), 2)
    >>> xs[:, 0, 0].tolist(), status.tolist()
    ([4.0, 2.0, 1.0], [2])
    """
    xs = numpy.empty((steps + 1,) + x0.shape)
    xs[0] = x0
    status = numpy.full(x0.shape[:-1], RUNNING, dtype=numpy.int8)

    def converged(x, status):
        if tol is None:
            return status
        small = numpy.linalg.norm(gradient(x), axis=-1) <= tol
        return numpy.where((status == RUNNING) & small, CONVERGED, status)

    for k in range(steps):
        x = xs[k]
        status = converged(x, status)
        dx, state, step_status = step(x, state)
        status = numpy.where((status == RUNNING) & (step_status != RUNNING), step_status, status)
        moving = status == RUNNING
        with numpy.errstate(all="ignore"):
            x_new = numpy.where(moving[..., None], x + dx, x)
            loss_new = loss(x_new)
        bad = moving & (~numpy.isfinite(x_new).all(axis=-1) | ~(abs(loss_new) < DIVERGED_LOSS))
        status = numpy.where(bad, DIVERGED, status)
        xs[k + 1] = numpy.where(bad[..., None], x, x_new)
    status = converged(xs[-1], status)
    return xs, numpy.asarray(numpy.where(status == RUNNING, MAX_STEPS, status), dtype=numpy.int8)
