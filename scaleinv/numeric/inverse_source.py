"""Generate the source of a local inverse: closed-form branches or the numeric solver.

One template per mode, both defining ``local_inverse(y, x0, **params) -> (x, status,
residual)`` (see :mod:`scaleinv.numeric.inverse`); the sources call the problem's kernels
``P`` and ``jacobian`` and the functions of :mod:`~scaleinv.numeric.runtime` and
:mod:`~scaleinv.numeric.pathsolve`, and are what :func:`scaleinv.export` writes.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from scaleinv.numeric import pathsolve, runtime
from scaleinv.numeric.kernels import ProblemKernels, kernel_source
from scaleinv.symbolic import Problem
from scaleinv.symbolic.inverse import LocalInverse
from scaleinv.symbolic.ranges import output_bounds

__all__ = ["TOL", "closed_form_source", "numeric_source", "excluded_boundary"]

#: A solution must satisfy ``|P(x) − y| <= TOL (1 + |y|)`` componentwise.
TOL = pathsolve.PATH_TOL
#: Where no branch is valid at ``y``, the branches are evaluated this fraction of the way back
#: towards ``P(x0)`` and their value polished at ``y`` (a limit on an excluded boundary).
_APPROACH = 1e-7

# The closed-form local inverse is assembled from the pieces below in two variants that share
# the branch list, the periodic shift and `nearest_branch` (residual of every candidate,
# polish, selection of the nearest valid one):
# "blocked" (NumPy: chunks; the nearest finite candidate is checked first and only the points
# where it fails go through `nearest_branch`, which polishes only the rough rows in place) and
# "traced" (JAX, PyTorch: whole-batch array expressions, the polish everywhere and kept by
# `where`; no in-place writes and no branching on values, so jit traces it and autograd flows).
_BLOCKED_ENTRY = '''\
def local_inverse(y, x0, /, **params):
    """P^-1(y; x0): the valid closed-form branch nearest to x0, batched.

    Returns (x, status, residual): status RUNNING where found, NO_INVERSE where no branch is
    valid, nor its limit on an excluded boundary (x = x0 there); residual = |P(x) - y|. The
    batch is flattened and solved in chunks of {chunk} points (bounded temporaries, no
    per-point Python work).
    """
    y = numpy.asarray(y, dtype=numpy.float64)
    x0 = numpy.asarray(x0, dtype=numpy.float64)
    batch = numpy.broadcast_shapes(y.shape[:-1], x0.shape[:-1])
    size = int(numpy.prod(batch))
    y = numpy.broadcast_to(y, batch + ({m},)).reshape(size, {m})
    x0 = numpy.broadcast_to(x0, batch + ({n},)).reshape(size, {n})
    flat = {{}}
    for key, value in params.items():
        value = numpy.asarray(value, dtype=numpy.float64)
        flat[key] = numpy.broadcast_to(value, batch).reshape(size) if value.ndim else value
    if size <= {chunk}:
        x, status, residual = nearest_first(y, x0, flat)
    else:
        x, residual = numpy.empty((size, {n})), numpy.empty(size)
        status = numpy.empty(size, dtype=numpy.int8)
        for start in range(0, size, {chunk}):
            rows = slice(start, start + {chunk})
            chunk = {{key: v[rows] if v.ndim else v for key, v in flat.items()}}
            x[rows], status[rows], residual[rows] = nearest_first(y[rows], x0[rows], chunk)
    return x.reshape(batch + ({n},)), status.reshape(batch), residual.reshape(batch)


def nearest_first(y, x0, params):
    """local_inverse on flat arrays y (k, m), x0 (k, n): the finite candidate nearest to x0
    is checked first (one evaluation of P); the points where it does not solve P(x) = y to
    the tolerance, or where x0 is not finite, go through nearest_branch."""
    with numpy.errstate(all="ignore"):
        for i, branch in enumerate(({names},)):
            c = branch(y, **params).reshape(x0.shape)
{periodic}\
            gap = c - x0
            dist = numpy.fmin(dot_last(gap, gap), numpy.inf)  # NaN (c not finite): too far
            if i == 0:
                x, best = c, dist
            else:
                x = where_rows(dist < best, c, x)  # ties: the first branch
                numpy.minimum(best, dist, out=best)
        r = y - P(x, **params).reshape(y.shape)
        valid = all_of(numpy.abs(r) <= {tol!r} * (1 + numpy.abs(y))) & (best < numpy.inf)
        residual = numpy.sqrt(dot_last(r, r))
    status = numpy.full(valid.shape, RUNNING, dtype=numpy.int8)
    if not valid.all():
        rest = numpy.flatnonzero(~valid)
        sub = {{key: v[rest] if v.ndim else v for key, v in params.items()}}
        x[rest], status[rest], residual[rest] = nearest_branch(y[rest], x0[rest], sub)
{beyond}\
    return x, status, residual

'''
_BEYOND_CALL = """\
        lost = rest[status[rest] != RUNNING]
        if lost.size:
            x[lost], status[lost], residual[lost] = beyond_branches(y[lost], x0[lost], params, lost)
"""
_BEYOND = '''\
def beyond_branches(y, x0, params, rows):
    """Where no branch is valid, the points y on a branch's excluded boundary (x1 = y0/y1 at
    y1 = 0, where x0 = 0 solves P = (x0*x1, x0)); elsewhere the branches are complete and
    there is no solution. On the boundary, tried in turn: x0 itself; the limit of the branch
    valid just before y on the path from P(x0) (evaluated there, then polished at y by
    Gauss-Newton); where that branch exists but the polish misses, the numeric solver.
    Returns (x, status, residual): x0, NO_INVERSE and inf where all fail."""
    sub = {{key: v[rows] if v.ndim else v for key, v in params.items()}}
    tol = {tol!r} * (1 + numpy.abs(y))
    x, status = x0.copy(), numpy.full(len(y), NO_INVERSE, dtype=numpy.int8)
    residual = numpy.full(len(y), numpy.inf)
    with numpy.errstate(all="ignore"):
        gap = numpy.abs(excluded_boundary(y, **sub).reshape(len(y), -1))
        edge = numpy.flatnonzero((gap <= tol.max(axis=-1)[:, None]).any(axis=-1))
        if not edge.size:
            return x, status, residual
        y, x0, tol = y[edge], x0[edge], tol[edge]
        sub = {{key: v[edge] if v.ndim else v for key, v in sub.items()}}
        start = P(x0, **sub).reshape(y.shape)
        c, near, _ = nearest_branch(y + {approach!r} * (start - y), x0, sub)
        for _ in range(3):
            r = y - P(c, **sub).reshape(y.shape)
            polished, _, lower = polish(c, r, y, sub)
            c = where_rows(lower & all_of(numpy.isfinite(polished)), polished, c)
        r = y - P(c, **sub).reshape(y.shape)
        limit = (near == RUNNING) & all_of(numpy.isfinite(c)) & all_of(numpy.abs(r) <= tol)
        at_x0 = all_of(numpy.abs(y - start) <= tol)
        found = limit | at_x0
        x[edge] = where_rows(limit & ~at_x0, c, x0)
        r = y - P(x[edge], **sub).reshape(y.shape)
        status[edge[found]] = RUNNING
        residual[edge[found]] = numpy.sqrt(dot_last(r, r))[found]
    hard = (near == RUNNING) & ~found
    if hard.any():
        part = {{key: v[hard] if v.ndim else v for key, v in sub.items()}}
        solved, how, reached = path_inverse(P, jacobian, y[hard], x0[hard], part)
        ok = how == RUNNING
        rows = edge[hard][ok]
        x[rows], status[rows], residual[rows] = solved[ok], RUNNING, reached[ok]
    return x, status, residual
'''
_TRACED_ENTRY = '''\
def local_inverse(y, x0, /, **params):
    """P^-1(y; x0): the valid closed-form branch nearest to x0, batched.

    Returns (x, status, residual): status RUNNING where found, NO_INVERSE where no branch is
    valid (x = x0 there); residual = |P(x) - y|. Whole-batch array expressions only (no
    in-place writes, no branching on values): jit traces it and autograd flows through it.
    """
    y = numpy.asarray(y, dtype=numpy.float64)
    x0 = numpy.asarray(x0, dtype=numpy.float64)
    batch = numpy.broadcast_shapes(y.shape[:-1], x0.shape[:-1])
    y, x0 = numpy.broadcast_to(y, batch + ({m},)), numpy.broadcast_to(x0, batch + ({n},))
    return nearest_branch(y, x0, params)
'''
_NEAREST = '''\
def nearest_branch(y, x0, params):
    """local_inverse on one batch of points: y (..., m), x0 (..., n)."""
    x, best = x0, numpy.full_like(x0[..., 0], numpy.inf)
    squared, found = best, numpy.zeros_like(best, dtype=bool)
    tol = {tol!r} * (1 + numpy.abs(y))
    with numpy.errstate(all="ignore"):
        for branch in ({names},):
            c = branch(y, **params).reshape(x0.shape)
{periodic}\
            r = y - P(c, **params).reshape(y.shape)
            finite = all_of(numpy.isfinite(c))
            valid = finite & all_of(numpy.abs(r) <= tol)
            rough = finite & ~valid
            gap = c - x0  # the distance of the closed-form value: polishing does not reorder
            dist = dot_last(gap, gap)
{polish}\
            # the first valid candidate counts even at a NaN or infinite distance (x0 not finite)
            nearer = valid & (~found | ~(dist >= best))
            x = numpy.where(nearer[..., None], c, x)
            best = numpy.where(nearer, dist, best)
            squared = numpy.where(nearer, dot_last(r, r), squared)
            found = found | valid
    status = numpy.asarray(numpy.where(found, RUNNING, NO_INVERSE), dtype=numpy.int8)
    return x, status, numpy.sqrt(squared)


def polish(c, r, y, params):
    """One Gauss-Newton step from candidates c (residuals r = y - P(c)): the new candidates,
    their residuals, and where they lower the residual."""
    jac = jacobian(c, **params).reshape(c.shape[:-1] + ({m}, {n}))
    c_new = c + {gauss_newton}
    r_new = y - P(c_new, **params).reshape(r.shape)
    return c_new, r_new, dot_last(r_new, r_new) < dot_last(r, r)
'''
_PERIODIC = """\
            period = inverse_periods(y, **params)
            k = numpy.round((x0 - c) / period)
            c = c + numpy.where(numpy.isfinite(k) & (period != 0), k, 0.0) * period
"""
_BLOCKED_POLISH = """\
            if rough.any():  # one Gauss-Newton step, only where the residual asks for it
                sub = {key: v[rough] if v.ndim else v for key, v in params.items()}
                c_rough, r_rough = c[rough], r[rough]
                polished, r_polished, lower = polish(c_rough, r_rough, y[rough], sub)
                c[rough] = numpy.where(lower[..., None], polished, c_rough)
                r[rough] = numpy.where(lower[..., None], r_polished, r_rough)
                valid = all_of(numpy.isfinite(c)) & all_of(numpy.abs(r) <= tol)
"""
_TRACED_POLISH = """\
            # polished everywhere (from 0 where c is not finite), kept by `where`
            start = numpy.where(finite[..., None], c, 0.0)
            r_start = numpy.where(finite[..., None], r, 0.0)
            polished, r_polished, lower = polish(start, r_start, y, params)
            lower = rough & lower
            c = numpy.where(lower[..., None], polished, c)
            r = numpy.where(lower[..., None], r_polished, r)
            valid = all_of(numpy.isfinite(c)) & all_of(numpy.abs(r) <= tol)
"""
_NUMERIC = '''\
def {name}(y, x0, /, **params):
    """P^-1(y; x0) solved numerically: the solution connected to x0 (path_inverse).

    Returns (x, status, residual): status RUNNING where found, NO_INVERSE where y lies outside
    the enclosure of the range of P (output_range), NOT_FOUND where the solver found none.
    """
    y = numpy.asarray(y, dtype=numpy.float64)
    x0 = numpy.asarray(x0, dtype=numpy.float64)
    batch = numpy.broadcast_shapes(y.shape[:-1], x0.shape[:-1])
    y, x0 = numpy.broadcast_to(y, batch + ({m},)), numpy.broadcast_to(x0, batch + ({n},))
{certificate}\
    return path_inverse(P, jacobian, y, x0, params, skip={skip})
'''
_CERTIFICATE = """\
    with numpy.errstate(invalid="ignore"):
        bounds = output_range(y, **params)
        outside = ((y < bounds[..., 0, :]) | (y > bounds[..., 1, :])).any(axis=-1)
"""


def closed_form_source(local: LocalInverse, flavor: str = "numpy") -> str:
    """Source of the branch kernels and ``local_inverse`` of ``local``, written for ``flavor``.

    NumPy gets the blocked variant (the polish only on rough rows); JAX and PyTorch the traced
    one (see the comment above the templates), from the same branches and pieces.

    Examples
    --------
    >>> local = Problem.from_strings("x", "x**2").local_inverse()
    >>> "if rough.any():" in closed_form_source(local)
    True
    >>> "if rough.any():" in closed_form_source(local, "jax")
    False
    """
    problem = local.problem
    m, n = problem.m, problem.n
    ys, params = [("y", problem.output_symbols)], problem.params
    parts, names = [], []
    for i, branch in enumerate(local.branches):
        doc = f"Branch {i} of P^-1(y), real where {branch.condition}."
        exprs = list(branch.solution)
        parts.append(kernel_source(f"inverse_branch{i}", exprs, ys, params, doc, flavor)[0])
        names.append(f"inverse_branch{i}")
    periods = local.branches[0].period
    periodic = ""
    if any(t is not None for t in periods):
        exprs = [0 if t is None else t for t in periods]
        doc = "Period of each input (0: not periodic)."
        parts.append(kernel_source("inverse_periods", exprs, ys, params, doc, flavor)[0])
        periodic = _PERIODIC
    traced = flavor != "numpy"
    # Cramer's rule (solve_square) up to 3x3 traces; beyond, the flagged solve (no exceptions)
    square = m == n and (n <= 3 or not traced)
    gauss_newton = "solve_square(jac, r)" if square else "inverse_jacobian_times(jac, r)[0]"
    first = {"names": ", ".join(names), "periodic": periodic, "tol": TOL, "chunk": runtime.CHUNK}
    boundary = [] if traced else excluded_boundary(local)
    first["beyond"] = _BEYOND_CALL if boundary else ""
    entry = (_TRACED_ENTRY if traced else _BLOCKED_ENTRY).format(m=m, n=n, **first)
    if boundary:
        doc = "Expressions in y that vanish where a branch is excluded (its Ne conditions and "
        doc += "denominators)."
        parts.append(kernel_source("excluded_boundary", boundary, ys, params, doc, flavor)[0])
        entry += "\n\n\n" + _BEYOND.format(tol=TOL, approach=_APPROACH)
    nearest = _NEAREST.format(
        m=m,
        n=n,
        names=", ".join(names),
        periodic=periodic,
        polish=_TRACED_POLISH if traced else _BLOCKED_POLISH,
        tol=TOL,
        gauss_newton=gauss_newton,
    )
    return "\n\n\n".join([*(part.strip() for part in parts), entry.strip(), nearest.strip()]) + "\n"


def excluded_boundary(local: LocalInverse) -> list[sp.Expr]:
    """Expressions in ``y`` (and params) that vanish on the excluded boundary of a branch: the
    sides' differences of its ``Ne`` conditions and the bases of negative powers (denominators)
    in its solution. Where no branch is valid at ``y`` and one of them vanishes, a solution may
    still exist as the branch's limit (see ``beyond_branches`` in the generated source).

    Examples
    --------
    >>> local = Problem.from_strings(["x0", "x1"], ["x0*x1", "x0"]).local_inverse()
    >>> excluded_boundary(local)
    [y1]
    >>> excluded_boundary(Problem.from_strings("x", "exp(x)").local_inverse())
    []
    """
    found: dict[sp.Expr, None] = {}
    for branch in local.branches:
        for ne in sp.sympify(branch.condition).atoms(sp.Ne):
            found[ne.lhs - ne.rhs] = None
        for e in branch.solution:
            for power in e.atoms(sp.Pow):
                if power.exp.is_negative and not power.base.is_number:
                    found[power.base] = None
    return list(found)


def numeric_source(problem: Problem, kernels: ProblemKernels, name: str) -> str:
    bounds = _checked_bounds(problem, kernels)
    parts = []
    if bounds is not None:
        ys = [("y", problem.output_symbols)]
        doc = "Enclosure [lo, hi] of the range of each output of P, shape (..., 2, m)."
        matrix = sp.Matrix([[lo for lo, _ in bounds], [hi for _, hi in bounds]])
        parts.append(kernel_source("output_range", matrix, ys, problem.params, doc)[0])
    certificate, skip = (_CERTIFICATE, "outside") if bounds is not None else ("", "None")
    text = _NUMERIC.format(name=name, m=problem.m, n=problem.n, certificate=certificate, skip=skip)
    return "\n\n\n".join([*(part.strip() for part in parts), text.strip()]) + "\n"


def _checked_bounds(problem: Problem, kernels: ProblemKernels) -> list | None:
    """:func:`~scaleinv.symbolic.ranges.output_bounds`, each kept only if samples of ``P`` at
    the default params lie inside it (a numeric twin of the enclosure); None if none is known.
    """
    bounds = list(output_bounds(problem))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, problem.n)) * np.repeat([1.0, 10.0, 100.0, 1000.0], 512)[:, None]
    with np.errstate(all="ignore"):
        values = kernels.P(x).reshape(-1, problem.m)
    for k, (lo, hi) in enumerate(bounds):
        try:
            low, high = float(lo.subs(problem.params)), float(hi.subs(problem.params))
        except (TypeError, ValueError):
            bounds[k] = (-sp.oo, sp.oo)
            continue
        v = values[:, k][np.isfinite(values[:, k])]
        slack = 1e-9 * (1 + np.abs(v))
        if not np.all((v >= low - slack) & (v <= high + slack)):
            bounds[k] = (-sp.oo, sp.oo)
    if all(lo == -sp.oo and hi == sp.oo for lo, hi in bounds):
        return None
    return bounds
