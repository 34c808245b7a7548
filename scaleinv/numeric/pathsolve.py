"""Batched path-following solve of ``P(x) = y`` warm-started at ``x0`` (NumPy only).

The local inverse of the chapter is the solution *connected to* ``x0``: follow
``y(s) = P(x0) + s (y − P(x0))`` from ``s = 0`` to ``s = 1``. :func:`path_inverse` does that
for a whole batch at once, as array operations over the samples still running:

* each substep ``s → s + h`` starts with a Gauss–Newton predictor from the last point on the
  path (the IG step towards ``y(s + h)``), which must shrink the residual by half;
* then damped Gauss–Newton (Levenberg–Marquardt with a per-sample damping ``λ``, scaled by
  ``diag(JᵀJ)``) with a per-sample backtracking line search corrects it to the tolerance;
* a sample whose substep fails (no contraction, too many corrector iterations) divides its
  ``h`` by 4 and retries from the last point on the path; one that succeeds doubles it.

When ``h`` falls below ``2⁻¹²`` the path has met a fold of ``P`` (or left its domain): no
solution is connected to ``x0``. As a last resort for those samples only, a free damped
Gauss–Newton (sufficient decrease of ``|r|`` instead of the path's contraction) runs from the
last point on the path, from ``x0`` and from a fixed spread of starts around it, all batched;
the solution nearest to ``x0`` among those found is returned. Samples for which that fails too
are ``NOT_FOUND``.

Only the samples still running are evaluated in each iteration, so a few stragglers cost little.
This module imports nothing but NumPy and :mod:`scaleinv.numeric.runtime`'s status codes:
:func:`scaleinv.export` copies its source after the runtime's, so exported PG steps run the
same solver.
"""

import numpy

from scaleinv.numeric.runtime import NO_INVERSE, NOT_FOUND, RUNNING

#: A solution satisfies ``|P(x) − y| <= PATH_TOL (1 + |y|)`` in every component.
PATH_TOL = 1e-8
_CONTRACT = 0.5  # a predictor or corrector iteration must shrink |r| at least by this factor
_MAX_CORRECTOR = 8  # corrector iterations per substep before it counts as failed
_LOOSE = 0.05  # intermediate points on the path: |r| <= _LOOSE h |Δy| is close enough
_MAX_PATH = 60  # iterations per sample on the path before it counts as not connected
_MAX_FREE = 80  # iterations of the free last-resort solve (expcube: 30 left 1% not found, 80 0.5%)
_MIN_SUBSTEP = 2.0**-12
_SPREAD = (3.0, 10.0, 30.0)  # scales (times 1 + |x0|) of the last-resort starts
_AIM = 1e-13  # residual the end aims at, relative to |y| + |Δy| (PATH_TOL is enough)
_ALPHAS = (0.5, 0.25)  # backtracking fractions tried after a failed full corrector step


def all_of(a):
    """``a.all(axis=-1)``, one component at a time (NumPy reduces a short last axis ~20x slower).

    Examples
    --------
    >>> all_of(numpy.array([[True, True], [True, False]]))
    array([ True, False])
    """
    out = numpy.array(a[..., 0], dtype=bool)
    for i in range(1, a.shape[-1]):
        out &= a[..., i]
    return out


def dot_last(u, v):
    """``(u * v).sum(axis=-1)``, one component at a time (see :func:`all_of`).

    Examples
    --------
    >>> dot_last(numpy.array([[3.0, 4.0]]), numpy.array([[3.0, 4.0]]))
    array([25.])
    """
    out = u[..., 0] * v[..., 0]
    for i in range(1, u.shape[-1]):
        out += u[..., i] * v[..., i]
    return out


def where_rows(mask, a, b):
    """``numpy.where(mask[:, None], a, b)`` for float64 arrays ``(k, n)``, bit for bit.

    Branch-free: the bit patterns of ``a ^ b`` are multiplied by 0 or 1 per row, one column at
    a time. ``numpy.where`` costs about 3x more where ``mask`` is random (a mispredicted branch
    per element) or broadcast over a short last axis (an inner loop of ``n`` per row).

    Examples
    --------
    >>> where_rows(numpy.array([True, False]), numpy.ones((2, 2)), numpy.full((2, 2), -0.0))
    array([[ 1.,  1.],
           [-0., -0.]])
    """
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    bits = numpy.bitwise_xor(a.view(numpy.int64), b.view(numpy.int64))
    pick = mask.astype(numpy.int64)
    for j in range(bits.shape[-1]):
        bits[:, j] *= pick
    bits ^= b.view(numpy.int64)
    return bits.view(numpy.float64)


def solve_square(a, b):
    """Solve ``a @ x = b`` per sample; Cramer's rule up to 3x3 (LAPACK's batched LU costs
    ~100x more there), ``numpy.linalg.solve`` beyond. Singular samples give non-finite ``x``.

    Examples
    --------
    >>> solve_square(numpy.array([[[2.0, 1.0], [0.0, 4.0]]]), numpy.array([[3.0, 4.0]]))
    array([[1., 1.]])
    """
    k = a.shape[-1]
    with numpy.errstate(all="ignore"):
        if k == 1:
            return b / a[..., 0]
        if k == 2:
            det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
            x0 = (b[..., 0] * a[..., 1, 1] - a[..., 0, 1] * b[..., 1]) / det
            x1 = (a[..., 0, 0] * b[..., 1] - b[..., 0] * a[..., 1, 0]) / det
            return numpy.stack([x0, x1], axis=-1)
        if k == 3:  # columns and b as triples of component arrays: nothing stacked
            c0, c1, c2 = ([a[..., i, j] for i in range(3)] for j in range(3))
            bs = [b[..., i] for i in range(3)]
            c12 = _cross(c1, c2)
            det = _dot(c0, c12)
            x0 = _dot(bs, c12) / det
            x1 = _dot(c0, _cross(bs, c2)) / det
            x2 = _dot(c0, _cross(c1, bs)) / det
            return numpy.stack([x0, x1, x2], axis=-1)
    try:
        return numpy.linalg.solve(a, b[..., None])[..., 0]
    except numpy.linalg.LinAlgError:
        return numpy.full(b.shape, numpy.nan)


def _cross(u, v):
    """The cross product of 3-vectors given as triples of component arrays."""
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _dot(u, v):
    """The dot product of 3-vectors given as triples (summed in :func:`dot_last`'s order)."""
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def path_inverse(P, jacobian, y, x0, params, skip=None, max_iter=500):
    """Solve ``P(x) = y`` along the path from ``P(x0)``, batched over the leading axes.

    Parameters
    ----------
    P, jacobian : callable
        Batched kernels ``P(x, **params) -> (..., m)`` and ``jacobian(x, **params)`` (its
        result is reshaped to ``(..., m, n)``).
    y : ndarray, shape (..., m)
        Targets.
    x0 : ndarray, shape (..., n)
        Start points (the batch shape of ``y`` and ``x0`` must agree).
    params : dict
        Keyword arguments of the kernels; scalars, or arrays of the batch shape.
    skip : ndarray of bool, optional
        Samples known to have no solution: not solved, status ``NO_INVERSE``.
    max_iter : int
        Bound on the iterations of the whole batch (each advances every running sample).

    Returns
    -------
    x : ndarray, shape (..., n)
        The solution; ``x0`` where none was found.
    status : ndarray of int8
        ``RUNNING`` (found), ``NOT_FOUND`` or ``NO_INVERSE`` (``skip``).
    residual : ndarray
        ``|P(x) − y|`` (2-norm) at the solution, or at the last point reached on the path.

    Examples
    --------
    >>> P = lambda x: x**3 - x  # no closed form is needed
    >>> J = lambda x: (3 * x**2 - 1)[..., None]
    >>> x, status, residual = path_inverse(P, J, numpy.array([[6.0]]), numpy.array([[1.5]]), {})
    >>> x.round(12), status, bool(residual[0] < 1e-8)
    (array([[2.]]), array([0], dtype=int8), True)
    """
    x0 = numpy.asarray(x0, dtype=numpy.float64)
    y = numpy.asarray(y, dtype=numpy.float64)
    batch, n, m = x0.shape[:-1], x0.shape[-1], y.shape[-1]
    size = int(numpy.prod(batch))
    flat = {}
    for key, value in params.items():
        value = numpy.asarray(value, dtype=numpy.float64)
        flat[key] = numpy.broadcast_to(value, batch).reshape(size) if value.ndim else value
    x0f, yf = x0.reshape(size, n), y.reshape(size, m)
    with numpy.errstate(all="ignore"):
        y0f = P(x0f, **flat).reshape(size, m)
    x, status, last = _follow(P, jacobian, yf, x0f, y0f, flat, skip, max_iter, n, m, False)
    lost = numpy.flatnonzero(status == NOT_FOUND)
    if lost.size:
        x[lost], status[lost], last[lost] = _last_resort(
            P, jacobian, yf[lost], x0f[lost], last[lost], flat, lost, max_iter, n, m
        )
    with numpy.errstate(all="ignore"):
        gap = P(last, **flat).reshape(size, m) - yf
        residual = numpy.sqrt(dot_last(gap, gap)) if size else numpy.zeros(0)
    return x.reshape(x0.shape), status.reshape(batch), residual.reshape(batch)


def _last_resort(P, jacobian, y, x0, last, params, rows, max_iter, n, m):
    """Free damped Gauss–Newton from the last path point and ``x0``; for the samples still
    unsolved, from a fixed spread of starts around ``x0``. The found solution nearest ``x0``.
    """
    x, code, last = _free_starts(P, jacobian, y, x0, last, params, rows, max_iter, n, m, None)
    again = numpy.flatnonzero(code != RUNNING)
    if again.size:
        spread = numpy.random.default_rng(0).standard_normal((len(_SPREAD), n))
        spread *= numpy.asarray(_SPREAD)[:, None]
        x[again], code[again], last[again] = _free_starts(
            P,
            jacobian,
            y[again],
            x0[again],
            last[again],
            params,
            rows[again],
            max_iter,
            n,
            m,
            spread,
        )
    return x, code, last


def _free_starts(P, jacobian, y, x0, last, params, rows, max_iter, n, m, spread):
    """One batch of free solves: from ``last`` and ``x0``, or from ``x0 + spread (1 + |x0|)``."""
    count = rows.size
    if spread is None:
        x_start = numpy.stack([last, x0], axis=1)
    else:
        x_start = x0[:, None] + spread[None] * (1 + numpy.abs(x0))[:, None, :]
    starts = x_start.shape[1]
    x_start = x_start.reshape(count * starts, n)
    sub = {k: numpy.repeat(v[rows], starts) if v.ndim else v for k, v in params.items()}
    y_rep = numpy.repeat(y, starts, axis=0)
    with numpy.errstate(all="ignore"):
        y_start = P(x_start, **sub).reshape(count * starts, m)
    x, status, _ = _follow(P, jacobian, y_rep, x_start, y_start, sub, None, max_iter, n, m, True)
    found = (status == RUNNING).reshape(count, starts)
    gap = x.reshape(count, starts, n) - x0[:, None]
    dist = dot_last(gap, gap)
    pick = numpy.argmin(numpy.where(found, dist, numpy.inf), axis=1)
    best = x.reshape(count, starts, n)[numpy.arange(count), pick]
    ok = found.any(axis=1)
    code = numpy.where(ok, RUNNING, NOT_FOUND).astype(numpy.int8)
    return numpy.where(ok[:, None], best, x0), code, numpy.where(ok[:, None], best, last)


def _follow(P, jacobian, y, x0, y0, params, skip, max_iter, n, m, free):
    """The continuation loop over flat ``(size, ·)`` arrays; see :func:`path_inverse`.

    ``free``: no path (``h = 1`` throughout), accept any sufficient decrease of ``|r|`` and
    give up after :data:`_MAX_FREE` iterations instead of halving ``h``.
    """
    size = x0.shape[0]
    status = numpy.full(size, RUNNING, dtype=numpy.int8)
    if skip is not None:
        status[numpy.broadcast_to(skip, (size,)).reshape(size)] = NO_INVERSE
    start_ok = all_of(numpy.isfinite(x0)) & all_of(numpy.isfinite(y0))
    status[(status == RUNNING) & ~(start_ok & all_of(numpy.isfinite(y)))] = NOT_FOUND
    dy = numpy.where(start_ok[:, None], y - y0, 0.0)
    base_x, base_s = x0.copy(), numpy.zeros(size)  # the last accepted point on the path
    h = numpy.ones(size)  # per-sample substep
    x = x0.copy()  # corrector iterate of the current substep
    r = dy.copy()  # target(s + h) - P(x)
    lam = numpy.zeros(size)  # per-sample Levenberg-Marquardt damping
    k = numpy.zeros(size, dtype=numpy.int64)  # corrector iterations in this substep
    spent = numpy.zeros(size, dtype=numpy.int64)  # iterations of this sample in all
    done = status != RUNNING
    for _ in range(max_iter):
        idx = numpy.flatnonzero(~done)
        if idx.size == 0:
            break
        sub = {key: v[idx] if v.ndim else v for key, v in params.items()}
        s_next = base_s[idx] + h[idx]
        final = s_next >= 1.0 - 1e-12
        target = where_rows(final, y[idx], y0[idx] + s_next[:, None] * dy[idx])
        # intermediate points need only stay near the path; the end needs the full tolerance
        loose = numpy.where(final, 0.0, _LOOSE * h[idx] * numpy.sqrt(dot_last(dy[idx], dy[idx])))
        tol = numpy.maximum(PATH_TOL * (1 + numpy.abs(target)), loose[:, None])
        # the end aims at rounding level (Newton gets there in one more iteration), but accepts
        # ``tol`` where the corrector stalls (see ``stalled`` below)
        aim = _AIM * (numpy.abs(target) + numpy.abs(dy[idx]))  # relative: scale-free near 0
        tight = numpy.where(final[:, None], numpy.minimum(aim, tol), tol)  # aim: never looser
        ri, xi = r[idx], x[idx]
        hit = all_of(numpy.abs(ri) <= tight)
        # -- substeps that reached their target: advance along the path ----------------------
        ended = idx[hit & final]
        done[ended] = True
        moved = idx[hit & ~final]
        if moved.size:
            base_x[moved], base_s[moved] = x[moved], base_s[moved] + h[moved]
            h_new = numpy.minimum(2 * h[moved], 1 - base_s[moved])
            # P(x) is unchanged: only the target moves, by h_new * dy
            r[moved] = r[moved] + h_new[:, None] * dy[moved]
            h[moved], k[moved], lam[moved] = h_new, 0, 0.0
        # -- one damped Gauss-Newton iteration for the rest ----------------------------------
        work = ~hit
        if not work.any():
            continue
        wi, xw, rw = idx[work], xi[work], ri[work]
        pw = {key: v[work] if v.ndim else v for key, v in sub.items()}
        with numpy.errstate(all="ignore"):
            jac = jacobian(xw, **pw).reshape(xw.shape[0], m, n)
            d = _damped_step(jac, rw, lam[wi], n, m)
            norm_r = numpy.sqrt(dot_last(rw, rw))
            backtrack = (k[wi] > 0) | free
            x_try, r_try, ok = _line_search(P, pw, xw, d, target[work], norm_r, backtrack, free)
        x[wi[ok]], r[wi[ok]] = x_try[ok], r_try[ok]
        grow = numpy.maximum(8 * lam[wi], 1e-3) if free else numpy.maximum(4 * lam[wi], 1e-6)
        lam[wi] = numpy.where(ok, lam[wi] / 4, grow)
        lam[wi] = numpy.where(lam[wi] < 1e-9, 0.0, lam[wi])
        k[wi] += 1
        spent[wi] += 1
        stalled = final[work] & (~ok | (k[wi] >= _MAX_CORRECTOR))
        stalled &= all_of(numpy.abs(r[wi]) <= tol[work])
        done[wi[stalled]] = True
        wi, ok = wi[~stalled], ok[~stalled]
        # -- failed substeps: cut h and go back to the last point on the path ----------------
        if free:
            lost = wi[(k[wi] >= _MAX_FREE) | (lam[wi] > 1e6)]  # 8 failures in a row
            status[lost], done[lost] = NOT_FOUND, True
            continue
        failed = wi[(~ok & (k[wi] == 1)) | (k[wi] >= _MAX_CORRECTOR) | (lam[wi] > 1e6)]
        if failed.size:
            h[failed] /= 4
            x[failed], k[failed], lam[failed] = base_x[failed], 0, 0.0
            s_f = base_s[failed] + h[failed]
            fp = {key: v[failed] if v.ndim else v for key, v in params.items()}
            with numpy.errstate(all="ignore"):
                at_base = P(base_x[failed], **fp).reshape(failed.size, m)
            r[failed] = y0[failed] + s_f[:, None] * dy[failed] - at_base
            lost = failed[h[failed] < _MIN_SUBSTEP]
            status[lost], done[lost] = NOT_FOUND, True
        slow = wi[spent[wi] >= _MAX_PATH]  # creeping towards a fold
        status[slow], done[slow] = NOT_FOUND, True
    status[~done] = NOT_FOUND
    found = status == RUNNING
    last = numpy.where(found[:, None], x, base_x)
    return numpy.where(found[:, None], x, x0), status, last


def _damped_step(jac, r, lam, n, m):
    """Levenberg–Marquardt direction per sample; ``lam = 0`` is the Gauss–Newton step."""
    good = all_of(numpy.isfinite(r)) & all_of(numpy.isfinite(jac.reshape(r.shape[0], -1)))
    if not good.all():
        jac = numpy.where(good[:, None, None], jac, 0.0)
        r = numpy.where(good[:, None], r, 0.0)
    d = numpy.zeros((r.shape[0], n))
    todo = good
    if m == n:  # undamped samples: the Newton step J⁻¹ r itself
        plain = good & (lam == 0)
        d[plain] = solve_square(jac[plain], r[plain])
        todo = good & ~(plain & all_of(numpy.isfinite(d)))
    if todo.any():
        j, rt, lt = jac[todo], r[todo], lam[todo]
        jt = numpy.swapaxes(j, -1, -2)
        if m >= n:  # (JᵀJ + λ D) d = Jᵀ r with D = diag(JᵀJ), floored to stay regular
            a, b = jt @ j, (jt @ rt[..., None])[..., 0]
        else:  # d = Jᵀ (J Jᵀ + λ D)⁻¹ r: the least-norm step of an underdetermined system
            a, b = j @ jt, rt
        diag = numpy.diagonal(a, axis1=-2, axis2=-1)
        floor = 1e-12 * numpy.maximum(diag.max(axis=-1, initial=0.0), 1e-300)
        damp = (lt[:, None] + 1e-14) * numpy.maximum(diag, floor[:, None])
        solved = solve_square(a + damp[..., None] * numpy.eye(a.shape[-1]), b)
        d[todo] = solved if m >= n else (jt @ solved[..., None])[..., 0]
    return numpy.where(numpy.isfinite(d), d, 0.0)


def _line_search(P, params, x, d, target, norm_r, backtrack, free):
    """Try ``x + d``; where that does not contract ``|r|`` and ``backtrack``, try shorter steps.

    The full step must contract ``|r|`` by :data:`_CONTRACT` on the path, and decrease it
    sufficiently (Armijo) when ``free``.
    """
    x_try = x + d
    r_try = target - P(x_try, **params).reshape(target.shape)
    norm_try = numpy.sqrt(dot_last(r_try, r_try))
    ok = norm_try <= (1 - 1e-4 if free else _CONTRACT) * norm_r
    for alpha in _ALPHAS:
        retry = numpy.flatnonzero(~ok & backtrack)
        if retry.size == 0:
            break
        sub = {key: v[retry] if v.ndim else v for key, v in params.items()}
        x_a = x[retry] + alpha * d[retry]
        r_a = target[retry] - P(x_a, **sub).reshape(retry.size, -1)
        # a shorter step needs only a sufficient decrease (Armijo on |r|)
        good = numpy.sqrt(dot_last(r_a, r_a)) <= (1 - alpha / 2) * norm_r[retry]
        x_try[retry[good]], r_try[retry[good]] = x_a[good], r_a[good]
        ok[retry[good]] = True
    ok &= all_of(numpy.isfinite(r_try)) & all_of(numpy.isfinite(x_try))
    return x_try, r_try, ok
