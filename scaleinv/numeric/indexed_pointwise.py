"""PG's closed-form local inverse, point by point, for an indexed problem whose outputs at a
point read only that point (``P_a(i) = f_a(u[i], v[i]; i, a[i])``).

The point formulas become a small :class:`~scaleinv.symbolic.problem.Problem` (inputs: one
symbol per field; params: the scalar params, the index and the per-point params), whose
closed-form branches come from the existing machinery
(:meth:`~scaleinv.symbolic.problem.Problem.local_inverse`, within its work budget). Its
evaluator then runs over every point of every sample at once, the index and per-point params
passed as arrays. Where no closed form exists (or the stencil couples points), PG uses the
numeric inverse of :mod:`scaleinv.numeric.indexed_steps`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import sympy as sp

from scaleinv.numeric import runtime
from scaleinv.numeric.source import param_keywords
from scaleinv.symbolic.indexed import IndexedProblem
from scaleinv.symbolic.problem import Problem

__all__ = ["pointwise_inverse", "point_problem"]

Inverse = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def point_problem(problem: IndexedProblem) -> Problem | None:
    """The outputs at one point as a :class:`Problem` in the fields' values there, or None
    when an output reads a neighbour (or output and input fields differ in number)."""
    if problem.fields_out != len(problem.fields):
        return None
    if any(any(a.offset) for a in problem.accesses.values()):
        return None
    names = {
        symbol: sp.Symbol(access.field, real=True) for symbol, access in problem.accesses.items()
    }
    inputs = tuple(sp.Symbol(f, real=True) for f in problem.fields)
    params = dict(problem.params)
    params.update({symbol: 0.0 for symbol in problem.index})
    for symbol in problem.param_accesses:
        name = names[symbol]
        params[name] = float(problem.point_params[str(name)].flat[0])
    outputs = tuple(f.xreplace(names) for f in problem.outputs)
    return Problem(inputs, outputs, params=params)


def pointwise_inverse(problem: IndexedProblem) -> Inverse | None:
    """``inverse(goal, x) -> (x_new, status)`` on flat samples ``(B, n)`` from the closed
    form at each point (status per sample: the first failure of its points), or None."""
    cache = problem.__dict__.setdefault("_pointwise_inverse", {})
    if "inverse" in cache:
        return cache["inverse"]
    small = point_problem(problem)
    inverse = None
    if small is not None:
        local = small.local_inverse()
        if not local.numeric and local.branches:
            inverse = _evaluate(problem, small, local.compile().local_inverse)
    cache["inverse"] = inverse
    return inverse


def _evaluate(problem: IndexedProblem, small: Problem, evaluator: Callable) -> Inverse:
    keywords = param_keywords(small.params)
    arrays = {}
    grids = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in problem.shape), indexing="ij")
    for symbol, grid in zip(problem.index, grids):
        arrays[keywords[symbol]] = grid.ravel()
    for name, values in problem.point_params.items():
        symbol = next(s for s in small.params if str(s) == name)
        arrays[keywords[symbol]] = values.ravel()
    fields, points = len(problem.fields), problem.points

    def inverse(goal: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = len(x)
        per_point = x.reshape(count, fields, points).transpose(0, 2, 1)
        targets = goal.reshape(count, fields, points).transpose(0, 2, 1)
        new, status = evaluator(targets, per_point, **arrays)[:2]
        flat = np.asarray(new).transpose(0, 2, 1).reshape(count, fields * points)
        status = np.asarray(status).reshape(count, points)
        failed = status != runtime.RUNNING
        first = np.where(failed.any(axis=1), status[np.arange(count), failed.argmax(axis=1)], 0)
        return np.where(failed.any(axis=1)[:, None], x, flat), first.astype(np.int8)

    return inverse
