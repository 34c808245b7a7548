"""Generate the NumPy source of a local inverse: closed-form branches or the numeric solver.

One template per mode, both defining ``local_inverse(y, x0, **params) -> (x, status,
residual)`` (see :mod:`scaleinv.numeric.inverse`); the sources call the problem's kernels
``P`` and ``jacobian`` and the functions of :mod:`~scaleinv.numeric.runtime` and
:mod:`~scaleinv.numeric.pathsolve`, and are what :func:`scaleinv.export` writes.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from scaleinv.numeric import pathsolve
from scaleinv.numeric.kernels import BLOCK, ProblemKernels, kernel_source
from scaleinv.symbolic import Problem
from scaleinv.symbolic.inverse import LocalInverse
from scaleinv.symbolic.ranges import output_bounds

__all__ = ["TOL", "closed_form_source", "numeric_source"]

#: A solution must satisfy ``|P(x) − y| <= TOL (1 + |y|)`` componentwise.
TOL = pathsolve.PATH_TOL

_TEMPLATE = '''\
def local_inverse(y, x0, /, **params):
    """P^-1(y; x0): the valid closed-form branch nearest to x0, batched.

    Returns (x, status, residual): status RUNNING where found, NO_INVERSE where no branch is
    valid (x = x0 there); residual = |P(x) - y|. The batch is flattened and solved in blocks
    of {block} points (temporaries stay in cache).
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
    x, residual = numpy.empty((size, {n})), numpy.empty(size)
    status = numpy.empty(size, dtype=numpy.int8)
    for start in range(0, size, {block}):
        rows = slice(start, start + {block})
        block = {{key: v[rows] if v.ndim else v for key, v in flat.items()}}
        x[rows], status[rows], residual[rows] = nearest_branch(y[rows], x0[rows], block)
    return x.reshape(batch + ({n},)), status.reshape(batch), residual.reshape(batch)


def nearest_branch(y, x0, params):
    """local_inverse on one block of rows: y (k, m), x0 (k, n)."""
    x, best, squared = x0.copy(), numpy.full(len(x0), numpy.inf), numpy.full(len(x0), numpy.inf)
    found = numpy.zeros(len(x0), dtype=bool)
    tol = {tol!r} * (1 + numpy.abs(y))
    with numpy.errstate(all="ignore"):
        for branch in ({names},):
            c = branch(y, **params).reshape(x0.shape)
{periodic}\
            r = y - P(c, **params).reshape(y.shape)
            finite = all_of(numpy.isfinite(c))
            valid = finite & all_of(numpy.abs(r) <= tol)
            rough = finite & ~valid
            if rough.any():  # one Gauss-Newton step, only where the residual asks for it
                sub = {{key: v[rough] if v.ndim else v for key, v in params.items()}}
                c_rough, r_rough = c[rough], r[rough]
                jac = jacobian(c_rough, **sub).reshape(c_rough.shape[:-1] + ({m}, {n}))
                if {m} == {n}:
                    polished = c_rough + solve_square(jac, r_rough)
                else:
                    polished = c_rough + inverse_jacobian_times(jac, r_rough)[0]
                r_polished = y[rough] - P(polished, **sub).reshape(r_rough.shape)
                lower = dot_last(r_polished, r_polished) < dot_last(r_rough, r_rough)
                c[rough] = numpy.where(lower[:, None], polished, c_rough)
                r[rough] = numpy.where(lower[:, None], r_polished, r_rough)
                valid = all_of(numpy.isfinite(c)) & all_of(numpy.abs(r) <= tol)
            gap = c - x0
            dist = dot_last(gap, gap)
            nearer = valid & ~(dist >= best)  # a NaN distance (x0 not finite) still counts
            x = numpy.where(nearer[:, None], c, x)
            best = numpy.where(nearer, dist, best)
            squared = numpy.where(nearer, dot_last(r, r), squared)
            found |= valid
    return x, numpy.where(found, RUNNING, NO_INVERSE), numpy.sqrt(squared)
'''
_PERIODIC = """\
            period = inverse_periods(y, **params)
            k = numpy.round((x0 - c) / period)
            c = c + numpy.where(numpy.isfinite(k) & (period != 0), k, 0.0) * period
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


def closed_form_source(local: LocalInverse) -> str:
    problem = local.problem
    ys, params = [("y", problem.output_symbols)], problem.params
    parts, names = [], []
    for i, branch in enumerate(local.branches):
        doc = f"Branch {i} of P^-1(y), real where {branch.condition}."
        parts.append(kernel_source(f"inverse_branch{i}", list(branch.solution), ys, params, doc)[0])
        names.append(f"inverse_branch{i}")
    periods = local.branches[0].period
    periodic = ""
    if any(t is not None for t in periods):
        exprs = [0 if t is None else t for t in periods]
        doc = "Period of each input (0: not periodic)."
        parts.append(kernel_source("inverse_periods", exprs, ys, params, doc)[0])
        periodic = _PERIODIC
    text = _TEMPLATE.format(
        m=problem.m, n=problem.n, names=", ".join(names), periodic=periodic, tol=TOL, block=BLOCK
    )
    return "\n\n\n".join([*(part.strip() for part in parts), text.strip()]) + "\n"


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
