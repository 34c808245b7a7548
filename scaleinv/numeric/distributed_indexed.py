"""Many starts of an indexed problem on a Dask cluster.

An indexed problem's Newton, IG and PG steps solve with the stencil's sparse pattern (LAPACK's
band LU, SciPy's sparse LU: :mod:`scaleinv.numeric.indexed_steps`), which the exported
NumPy-only module does not hold. So here the workers import scaleinv: each receives the
problem as plain data (fields, grid, point formulas, boundary, params; a few kilobytes
whatever the grid), rebuilds and compiles it once per worker process, and runs
:func:`scaleinv.minimize` on its chunk of starts — the in-process code, so a Dask run equals
an in-memory one. ``minimize`` is passed in by its caller (it pickles by reference) rather than
imported here: the driver calls this module, so importing the driver back would be a cycle,
and a lower-level copy of its NumPy loop (memory check, cached compiled rules, errors) would
be the same logic twice. Chunks are packed and unpacked as for every problem
(:func:`scaleinv.numeric.distributed.run_blocks`).
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from scaleinv.numeric.distributed import check_dask_starts, run_blocks
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.trajectory import Trajectory, recorded_steps
from scaleinv.symbolic.indexed import Boundary, IndexedProblem

__all__ = ["minimize_indexed_dask", "problem_payload", "problem_from_payload"]

#: Problems rebuilt on this (worker) process, by payload digest: compiled once per worker.
_REBUILT: dict[str, IndexedProblem] = {}


def _rebuild(
    fields: Any, shape: Any, sizes: Any, outputs: Any, accesses: Any, kind: str, values: Any,
    params: Any, points: Any, target: Any, target_from: Any,
) -> IndexedProblem:  # fmt: skip
    return IndexedProblem(
        fields, shape, sizes, outputs, accesses, Boundary(kind, values), params, points,
        target, target_from,
    )  # fmt: skip


def _reduce(p: IndexedProblem) -> tuple:
    points = {k: np.array(v) for k, v in p.point_params.items()}
    return _rebuild, (
        p.fields, p.shape, p.sizes, p.outputs, dict(p.accesses), p.boundary.kind,
        dict(p.boundary.values), dict(p.params), points, p.target, p.target_from,
    )  # fmt: skip


def problem_payload(problem: IndexedProblem) -> bytes:
    """``problem`` as bytes a worker rebuilds it from (its data, never its compiled code)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, IndexedProblem: _reduce}
    pickler.dump(problem)
    return buffer.getvalue()


def problem_from_payload(payload: bytes) -> IndexedProblem:
    """The problem of :func:`problem_payload`, rebuilt once per process (then reused, with
    its compiled kernels and steps). The payload comes from this process's client only."""
    key = hashlib.sha256(payload).hexdigest()
    if key not in _REBUILT:
        _REBUILT[key] = pickle.loads(payload)  # noqa: S301 (scaleinv's own payload)
    return _REBUILT[key]


#: :func:`scaleinv.minimize`'s signature, as the workers call it.
Minimize = Callable[..., Trajectory]


def _run_chunk(
    x0: np.ndarray,
    payload: bytes,
    rule: Rule,
    steps: int,
    tol: float | None,
    record: str,
    minimize: Minimize,
) -> np.ndarray:
    """One chunk: ``minimize`` on the rebuilt problem, packed on the last axis
    (x, y, loss, status, steps taken of the recorded steps)."""
    import warnings

    problem = problem_from_payload(payload)
    with warnings.catch_warnings():  # the client warned once
        warnings.simplefilter("ignore")
        t = minimize(problem, rule, x0, steps, tol, record=record)
    codes = np.broadcast_to(np.asarray(t.status, dtype=np.float64), t.loss.shape)
    taken = np.broadcast_to(np.asarray(t.steps_taken, dtype=np.float64), t.loss.shape)
    parts = [t.x, t.y, t.loss[..., None], codes[..., None], taken[..., None]]
    return np.concatenate(parts, axis=-1)


def minimize_indexed_dask(
    problem: IndexedProblem,
    rule: Rule,
    x0: Any,
    steps: int,
    tol: float | None,
    record: str,
    minimize: Minimize,
) -> Trajectory:
    """``minimize`` (:func:`scaleinv.minimize`, whose caller passes it) over a Dask array of
    flat starts ``(..., n)``, chunk by chunk on the workers (see above)."""
    check_dask_starts(x0, problem.n)
    kept = recorded_steps(record, steps)
    args = (problem_payload(problem), rule, steps, tol, record, minimize)
    return run_blocks(x0, _run_chunk, args, problem.n, problem.m, rule, kept)
