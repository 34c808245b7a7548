"""Pure-NumPy helpers the compiled update steps call: solves that flag singular samples, the
SVD half-inverse of HIG, and :func:`iterate`, the loop of :func:`scaleinv.minimize` that
exported modules and Dask workers run too.

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
_ONES = numpy.ones(4)
#: Samples per chunk of a per-sample step (and of the closed-form local inverse, and of the whole
#: loop of minimize's NumPy engine) in process: a chunk's temporaries stay in cache and its
#: buffers are reused by the allocator. At 10**5 samples of a 2-input problem, whole-batch NumPy
#: operations cost 2-5x more per element (and chunks of 4096 or 65536 were slower than 16384).
CHUNK = 1 << 14


def _cramer_into(a, b, x):
    """Solve ``(s, k, k)`` systems, k = 1 or 2, by Cramer's rule into ``x``; return where the
    result is trusted (finite, and the matrix far from singular: see ``_CRAMER_LIMIT``).

    Few array operations, each into a temporary it reuses: at 10**4 samples the solve's cost
    is its number of passes over the samples (a block of diagonal systems, e.g. a separable
    problem's Hessian: :func:`_diagonal_into`, half as many)."""
    if a.shape[-1] == 1:
        det = a[:, 0, 0]
        x[:, 0] = b[:, 0] / det
        fine = numpy.abs(det) > 0
        fine &= numpy.isfinite(x[:, 0])
        return fine
    a00, a01, a10, a11 = a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1]
    b0, b1 = b[:, 0], b[:, 1]
    if not (a01.any() or a10.any()):
        return _diagonal_into(a00, a11, b0, b1, x)
    t = a01 * a10
    det = a00 * a11
    det -= t
    x0 = a11 * b0  # (a11 b0 - a01 b1) / det
    numpy.multiply(a01, b1, out=t)
    x0 -= t
    x0 /= det
    x1 = a00 * b1  # (a00 b1 - a10 b0) / det
    numpy.multiply(a10, b0, out=t)
    x1 -= t
    x1 /= det
    x[:, 0], x[:, 1] = x0, x1
    squares = numpy.square(a.reshape(-1, 4)) @ _ONES  # ‖a‖_F² (einsum: 5x slower)
    return _trusted(squares, det, x0, x1)


def _diagonal_into(a00, a11, b0, b1, x):
    """:func:`_cramer_into` for a block of diagonal 2x2 systems: ``x = b / diag`` (LAPACK's LU
    values, within an ulp of Cramer's), trusted where Cramer's rule trusts it (the same
    ``‖a‖_F²`` and ``det``); half the passes over the samples."""
    x0, x1 = x[:, 0], x[:, 1]
    numpy.divide(b0, a00, out=x0)
    numpy.divide(b1, a11, out=x1)
    det = a00 * a11
    squares = a00 * a00
    squares += a11 * a11
    return _trusted(squares, det, x0, x1)


def _trusted(squares, det, x0, x1):
    """Where a 2x2 solution ``(x0, x1)`` by Cramer's rule is trusted: ``‖a‖_F² = squares``
    below ``_CRAMER_LIMIT · |det|`` (``det`` is overwritten) and the solution finite."""
    numpy.abs(det, out=det)
    det *= _CRAMER_LIMIT
    fine = squares < det
    if not numpy.isfinite(x0.sum() + x1.sum()):  # only then sample by sample
        fine &= numpy.isfinite(x0)
        fine &= numpy.isfinite(x1)
    return fine


def _lapack_solve(a, b):
    """LAPACK's batched LU; samples are told apart by their singular values only on failure,
    and only those whose own LU fails or is not finite are singular: each sample ends as it
    would alone, whatever shares its call."""
    try:
        with numpy.errstate(all="ignore"):
            x = numpy.linalg.solve(a, b[..., None])[..., 0]
        if numpy.isfinite(x).all():
            return x, numpy.zeros(x.shape[:-1], dtype=numpy.int8)
    except numpy.linalg.LinAlgError:
        pass
    x, status = solve_flagged(a, b)
    rows = numpy.flatnonzero(status == SINGULAR)  # singular to working precision
    k = a.shape[-1]
    a, b = a.reshape(-1, k, k)[rows], b.reshape(-1, k)[rows]
    # LAPACK's LU meets an exactly zero pivot (solve raises) where slogdet's sign is 0
    lu = numpy.linalg.slogdet(a)[0] != 0
    if lu.any():
        with numpy.errstate(all="ignore"):
            alone = numpy.linalg.solve(a[lu], b[lu][..., None])[..., 0]
        finite = numpy.isfinite(alone).all(axis=-1)
        rows = rows[lu][finite]
        x.reshape(-1, k)[rows], status.reshape(-1)[rows] = alone[finite], RUNNING
    return x, status


def solve_flagged(a, b):
    """:func:`solve` without its fast paths: singular samples told apart first (no branching
    on values and no writes into arrays, so JAX traces it and PyTorch keeps autograd)."""
    singular = is_singular(a)
    regular = numpy.isfinite(a).all(axis=(-2, -1)) & ~singular
    safe = numpy.where(regular[..., None, None], a, numpy.eye(a.shape[-1]))
    with numpy.errstate(all="ignore"):
        x = numpy.linalg.solve(safe, b[..., None])[..., 0]
    x = numpy.where(regular[..., None], x, numpy.where(singular[..., None], 0.0, numpy.nan))
    return x, numpy.asarray(numpy.where(singular, SINGULAR, RUNNING), dtype=numpy.int8)


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


def _finite_matrices(a):
    """Where each sample of ``a`` (``(..., k, l)``) is finite, and ``a`` with the other samples
    zeroed: LAPACK's SVD fails for the whole batch ("SVD did not converge") on one NaN."""
    finite = numpy.isfinite(a).all(axis=(-2, -1))
    return finite, numpy.where(finite[..., None, None], a, 0.0)


def inverse_jacobian_times(jac, dy):
    """``J⁻¹ Δy`` for square ``J`` (singular samples flagged), the pseudo-inverse otherwise.

    A sample whose ``J`` is not finite gets a NaN step (it diverges), as :func:`solve` gives
    it; the others are unaffected.
    """
    if jac.shape[-1] == jac.shape[-2]:
        return solve(jac, dy)
    finite, safe = _finite_matrices(jac)
    with numpy.errstate(all="ignore"):
        dx = (numpy.linalg.pinv(safe) @ dy[..., None])[..., 0]
    bad = finite & ~numpy.isfinite(dx).all(axis=-1)
    status = numpy.asarray(numpy.where(bad, SINGULAR, RUNNING), dtype=numpy.int8)
    return numpy.where(bad[..., None], 0.0, numpy.where(finite[..., None], dx, numpy.nan)), status


def half_inverse(jac, g, beta, rcond=None):
    """``V Σ^(-β) Uᵀ g`` per sample, dropping singular values below ``rcond · σ_max``.

    ``σ_max`` is the largest singular value of the whole batch (the SVD of the block-diagonal,
    batch-stacked Jacobian is the per-sample SVDs together). ``rcond=None`` means
    ``max(m, n) · eps``. A sample whose Jacobian is not finite gets NaN (it diverges) and
    does not count towards ``σ_max``.

    Examples
    --------
    >>> jac = numpy.array([[2.0, 0.0], [0.0, 8.0]])
    >>> half_inverse(jac, numpy.array([1.0, 1.0]), beta=0.5)
    array([0.70710678, 0.35355339])
    """
    finite, safe = _finite_matrices(jac)
    with numpy.errstate(all="ignore"):
        u, s, vt = numpy.linalg.svd(safe, full_matrices=False)
        cut = (max(jac.shape[-2:]) * _EPS if rcond is None else rcond) * s.max()
        keep = s > cut
        scaled = numpy.where(keep, numpy.where(keep, s, 1.0) ** (-beta), 0.0)
        coeff = scaled * (numpy.swapaxes(u, -1, -2) @ g[..., None])[..., 0]
        dx = (numpy.swapaxes(vt, -1, -2) @ coeff[..., None])[..., 0]
    return numpy.where(finite[..., None], dx, numpy.nan)


#: A sample whose loss exceeds this (or is not finite) has diverged.
DIVERGED_LOSS = 1e150


class Recorder:
    """The points ``x``, outputs ``y = P(x)`` and losses of the steps ``steps`` (ascending) of
    a run, kept as :func:`iterate` passes them (nothing else of the run is stored)."""

    def __init__(self, P, steps, x0, m):
        self.P, self.steps, self.filled = P, steps, 0
        self.x = numpy.empty((len(steps),) + x0.shape)
        self.y = numpy.empty((len(steps),) + x0.shape[:-1] + (m,))
        self.loss = numpy.empty((len(steps),) + x0.shape[:-1])

    def part(self, rows):
        """A recorder of the samples ``rows`` (a slice of the first batch axis) that writes
        into this one's arrays (a run in chunks of samples records each chunk through one)."""
        part = Recorder.__new__(Recorder)
        part.P, part.steps, part.filled = self.P, self.steps, self.filled
        part.x, part.y, part.loss = self.x[:, rows], self.y[:, rows], self.loss[:, rows]
        return part

    def wants(self, step):
        """Is ``step`` the next of the recorded steps?"""
        return self.filled < len(self.steps) and self.steps[self.filled] == step

    def offer(self, step, x, loss):
        """Keep the point of ``step`` if it is one of the recorded steps."""
        if self.wants(step):
            self.fill_to(self.filled + 1, x, loss)

    def fill_to(self, end, x, loss):
        """Record ``x`` for every not yet filled entry up to ``end`` (all stopped: it stays)."""
        if end > self.filled:
            rows = slice(self.filled, end)
            self.x[rows], self.loss[rows] = x, loss
            with numpy.errstate(all="ignore"):
                self.y[rows] = self.P(x)
            self.filled = end


def _squared_norms(g):
    """``|g|²`` per sample as ``einsum("...i,...i->...", g, g)`` computes it; with one or two
    components from the squares of the whole array (the same sums bit for bit; einsum's loop
    of length 2 per sample costs 5-10x more, and squaring column by column 1.5x more), with
    more by einsum (whose order of summation differs)."""
    if g.shape[-1] > 2:
        return numpy.einsum("...i,...i->...", g, g)
    squares = numpy.square(g)
    if g.shape[-1] == 1:
        return squares[..., 0]
    return numpy.add(squares[..., 0], squares[..., 1])


def squared_limit(tol):
    """The largest float ``t`` with ``sqrt(t) <= tol``: ``|g|² <= t`` exactly where
    ``sqrt(|g|²) <= tol`` (the square root is correctly rounded, so monotone), for every
    ``|g|²`` including NaN and infinity; the tolerance check then takes no square root.

    Examples
    --------
    >>> t = squared_limit(0.1)
    >>> bool(numpy.sqrt(t) <= 0.1), bool(numpy.sqrt(numpy.nextafter(t, numpy.inf)) <= 0.1)
    (True, False)
    """
    tol = numpy.float64(tol)
    if not tol >= 0:  # negative: no norm is that small (NaN: no comparison holds)
        return -numpy.inf if tol < 0 else tol
    with numpy.errstate(over="ignore"):
        t = tol * tol
        if not numpy.isfinite(t):  # tol = inf, or so large that every finite norm passes
            return numpy.inf if numpy.isinf(tol) else numpy.finfo(numpy.float64).max
        while t > 0 and numpy.sqrt(t) > tol:  # a few ulps at most
            t = numpy.nextafter(t, -numpy.inf)
        while numpy.sqrt(numpy.nextafter(t, numpy.inf)) <= tol:
            t = numpy.nextafter(t, numpy.inf)
    return t


def _stop(status, taken, step, where, code):
    """Give running samples ``where`` true the status ``code``; return how many stopped."""
    if not where.any():  # most steps stop no sample: one pass instead of five
        return 0
    newly = (status == RUNNING) & where
    numpy.copyto(status, code, where=newly)
    numpy.copyto(taken, step, where=newly)
    return int(numpy.count_nonzero(newly))


def stop_diverged(status, taken, step, x_new, x, loss_new, loss_x, stopped, coordinates=-1):
    """The divergence check of a step: a running sample whose new point is not finite or whose
    loss ``loss_new`` is not below :data:`DIVERGED_LOSS` stops as diverged at ``step`` and
    keeps its point ``x`` (and its loss ``loss_x``) in ``x_new``. ``stopped``: the samples
    stopped before (None: none); ``coordinates``: the axis of ``x_new`` holding a point's
    coordinates (-1: ``(..., n)``; 0: ``(n, size)``, one row per coordinate). Returns how
    many diverged, and the new losses (None where a kept point's loss is not known)."""
    # whole-batch reductions without temporaries; NaN fails the comparisons, and an
    # overflowing sum only sends the batch to the per-sample check below
    everything_fine = (
        stopped is None
        and numpy.isfinite(x_new.sum())
        and -DIVERGED_LOSS < loss_new.min()
        and loss_new.max() < DIVERGED_LOSS
    )
    if everything_fine:
        return 0, loss_new
    fine = numpy.isfinite(x_new).all(axis=coordinates)  # per sample: who diverged
    fine &= numpy.abs(loss_new) < DIVERGED_LOSS
    diverged = _stop(status, taken, step, ~fine, DIVERGED)
    if diverged:  # they keep their points too
        keep = status != RUNNING
        numpy.copyto(x_new, x, where=keep if coordinates == 0 else keep[..., None])
        if loss_x is None:  # the loss of the points kept is not known
            return diverged, None
        numpy.copyto(loss_new, loss_x, where=keep)
    return diverged, loss_new


def iterate(step, gradient, loss, x0, steps, tol, recorder, state=None, progress=None, radius=None):
    """The loop of :func:`scaleinv.minimize` (and of exported modules and Dask workers).

    Runs ``step(x, state) -> (dx, state, status)`` ``steps`` times from every point of ``x0``
    (``(..., n)``); ``gradient`` and ``loss`` are kernels. A sample stops (and keeps its
    point) when it converges (``|dL/dx| <= tol``, checked only when ``tol`` is not None),
    diverges (non-finite point, or loss above :data:`DIVERGED_LOSS`) or its step fails.
    Only the current point is held; ``recorder`` (a :class:`Recorder`) keeps the steps it
    lists, and ``progress(k, running)``, if given, is called after every step. Returns the
    per-sample status codes and the step at which each sample stopped (``steps`` if never).

    ``radius``, if given, certifies the loss: every point whose coordinates all lie in
    ``[-radius, radius]`` has a finite loss below :data:`DIVERGED_LOSS` (see
    :func:`scaleinv.numeric.loss_radius.loss_radius`). A step whose new points all lie there
    cannot diverge, so its loss is not evaluated; the loss is then evaluated only for the steps
    the recorder keeps (and where a step leaves the box). Statuses and recorded values are the
    same as without it.

    Examples
    --------
    >>> x0 = numpy.array([[4.0]])
    >>> recorder = Recorder(lambda x: x, [0, 1, 2], x0, 1)
    >>> status, taken = iterate(
    ...     lambda x, s: (-0.5 * x, s, numpy.zeros(x.shape[:-1], numpy.int8)),
    ...     lambda x: x, lambda x: (x**2).sum(-1), x0, 2, None, recorder)
    >>> recorder.x[:, 0, 0].tolist(), status.tolist(), taken.tolist()
    ([4.0, 2.0, 1.0], [2], [2])
    """
    x = x0
    status = numpy.zeros(x0.shape[:-1], dtype=numpy.int8)
    taken = numpy.full(x0.shape[:-1], steps, dtype=numpy.int64)
    running = status.size

    limit = None if tol is None else squared_limit(tol)

    def small(x):  # |dL/dx| <= tol
        return _squared_norms(gradient(x)) <= limit

    def loss_of(x):
        with numpy.errstate(all="ignore"):
            return loss(x)

    def certified(x, stopped):  # the running within the box (NaN fails both comparisons)
        if radius is None:
            return False
        if stopped is not None:
            x = numpy.where(stopped[..., None], 0.0, x)
        return x.max() <= radius and -radius <= x.min()

    loss_x = loss_of(x) if radius is None or recorder.wants(0) else None
    recorder.offer(0, x, loss_x)
    for k in range(steps):
        if running == 0:  # nothing moves any more: the remaining steps are the same point
            break
        if tol is not None:
            running -= _stop(status, taken, k, small(x), CONVERGED)
        with numpy.errstate(all="ignore"):  # overflow and NaN end as statuses, not warnings
            dx, state, step_status = step(x, state)
        if step_status.any():
            running -= _stop(status, taken, k, step_status != RUNNING, step_status)
        with numpy.errstate(all="ignore"):
            x_new = x + dx
            stopped = None if running == status.size else status != RUNNING
            if stopped is not None:  # the stopped keep their points
                numpy.copyto(x_new, x, where=stopped[..., None])
            if certified(x_new, stopped):  # no running sample can have diverged
                loss_new = None
            else:
                diverged, loss_new = stop_diverged(
                    status, taken, k, x_new, x, loss(x_new), loss_x, stopped
                )
                running -= diverged
        x, loss_x = x_new, loss_new
        if loss_x is None and recorder.wants(k + 1):
            loss_x = loss_of(x)
        recorder.offer(k + 1, x, loss_x)
        if progress is not None:
            progress(k + 1, running)
    if tol is not None and running:
        _stop(status, taken, steps, small(x), CONVERGED)
    numpy.copyto(status, MAX_STEPS, where=status == RUNNING)
    if loss_x is None and recorder.filled < len(recorder.steps):
        loss_x = loss_of(x)
    recorder.fill_to(len(recorder.steps), x, loss_x)
    return status, taken
