"""Many starts on a Dask cluster: :func:`scaleinv.minimize` over a Dask array of start points.

Every chunk of starts is independent, so the run is one ``map_blocks`` over the batch axes.
Kernels travel to the workers as the exported NumPy module's source
(:func:`scaleinv.numeric.export.module_source`), executed there by a NumPy-only task function:
workers import neither scaleinv nor SymPy, and run the same code as :func:`scaleinv.export`'s
module (the rule's step and :func:`scaleinv.numeric.runtime.iterate`, the loop of ``minimize``,
which keeps only the recorded steps of each chunk).
Importing this module imports no Dask; a missing Dask is a one-line error naming the extra.
Workers run the NumPy engine (``Trajectory.engine == "numpy"``): the fused JAX engine needs
scaleinv on the worker, which this design keeps off it.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np

from scaleinv.errors import ProblemError, ScaleinvError
from scaleinv.numeric.export import module_source
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.steps import check_steps
from scaleinv.numeric.trajectory import Trajectory, recorded_steps
from scaleinv.symbolic import IndexedProblem, Problem

__all__ = ["minimize_dask", "dask_array", "dask_client", "CONNECT_TIMEOUT"]

# The task each worker runs, compiled here without a module of its own so that it pickles by
# value (cloudpickle): unpickling it on a worker imports only NumPy, never scaleinv or SymPy.
_TASK_SOURCE = '''
def run_chunk(x0, source, step_name, steps, tol, kept, m):
    """One chunk of starts: the exported module's step, iterated; the recorded steps' x, y,
    loss and status packed on the last axis (status and steps taken repeated along them)."""
    import numpy

    module = {"__name__": "scaleinv_exported"}
    exec(compile(source, "<scaleinv exported kernels>", "exec"), module)
    rule_step = module[step_name]

    def step(x, state):
        dx, status = rule_step(x)
        return dx, state, status

    recorder = module["Recorder"](module["P"], kept, x0, m)
    status, taken = module["iterate"](
        step, module["gradient"], module["loss"], x0, steps, tol, recorder
    )
    codes = numpy.broadcast_to(status.astype(numpy.float64), recorder.loss.shape)
    taken = numpy.broadcast_to(taken.astype(numpy.float64), recorder.loss.shape)
    parts = [recorder.x, recorder.y, recorder.loss[..., None], codes[..., None], taken[..., None]]
    return numpy.concatenate(parts, axis=-1)
'''
_TASK: dict[str, Any] = {"__name__": "scaleinv_dask_task"}
exec(compile(_TASK_SOURCE, "<scaleinv dask task>", "exec"), _TASK)  # noqa: S102 (constant)


def dask_array() -> Any:
    """The ``dask.array`` module; a one-line error naming the extra where Dask is missing."""
    try:
        import dask.array
    except ImportError:
        raise ScaleinvError(
            "running on Dask needs dask: pip install 'scaleinv[distributed]'"
        ) from None
    return dask.array


def minimize_dask(
    problem: Problem,
    rule: Rule,
    x0: Any,
    steps: int,
    tol: float | None = None,
    record: str = "ends",
) -> Trajectory:
    """:func:`scaleinv.minimize` over a Dask array ``x0`` of shape ``(..., n)``, chunk by chunk.

    ``record`` picks the steps kept, as for ``minimize``. Returns a
    :class:`~scaleinv.numeric.trajectory.Trajectory` whose ``x``, ``y``, ``loss`` and
    ``status`` are lazy Dask arrays chunked like ``x0`` along the batch axes (compute them
    together, e.g. ``dask.compute(t.x[-1], t.status)``, to run each chunk once). The rule must
    be exportable (GD, Newton, IG, HIG, PG). An indexed problem runs its structured steps
    (:func:`scaleinv.minimize` sends it to
    :func:`~scaleinv.numeric.distributed_indexed.minimize_indexed_dask`). HIG's
    singular-value cut-off is relative to the largest singular value of each chunk, not of
    the whole batch.

    Examples
    --------
    >>> import dask.array as da  # doctest: +SKIP
    >>> from scaleinv import Problem, minimize, rules  # doctest: +SKIP
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> t = minimize(p, rules.pg(0.3), da.ones((10**6, 2), chunks=10**5), 20)  # doctest: +SKIP
    >>> t.x[-1].compute()[0].round(6)  # doctest: +SKIP
    array([0.000798, 0.028248])
    """
    if isinstance(problem, IndexedProblem):
        raise ScaleinvError("an indexed problem runs on Dask through scaleinv.minimize")
    check_dask_starts(x0, problem.n)
    steps = check_steps(steps)
    source = module_source(problem, [rule], title="scaleinv kernels for Dask workers")
    if rule.step_name not in ast.literal_eval(source.rsplit("__all__ = ", 1)[1]):
        notes = [line.split(": ", 1) for line in source.splitlines() if line.startswith("Not ex")]
        why = "; ".join(note[1].rstrip(".") for note in notes)
        raise ScaleinvError(f"{rule.name} cannot run on Dask workers: {why}")
    kept = recorded_steps(record, steps)
    return run_blocks(x0, _TASK["run_chunk"], (source, rule.step_name, steps, tol, kept, problem.m),
                      problem.n, problem.m, rule, kept)  # fmt: skip


def check_dask_starts(x0: Any, n: int) -> None:
    """Refuse a Dask array of starts whose shape is not ``(..., n)``."""
    if x0.ndim == 0 or x0.shape[-1] != n:
        raise ProblemError(f"x0 must have shape (..., {n}), got {x0.shape}")


def run_blocks(
    x0: Any, task: Any, args: tuple, n: int, m: int, rule: Rule, kept: np.ndarray
) -> Trajectory:
    """``task(chunk, *args)`` on every chunk of starts (each packs the recorded steps' x, y,
    loss, status and steps taken on its last axis), unpacked into a lazy Trajectory."""
    da = dask_array()
    x0 = da.asarray(x0).astype(np.float64).rechunk({x0.ndim - 1: -1})
    chunks = ((len(kept),), *x0.chunks[:-1], (n + m + 3,))
    packed = x0.map_blocks(
        task,
        *args,
        new_axis=0,
        chunks=chunks,
        dtype=np.float64,
        meta=np.empty((0,) * (x0.ndim + 1)),
    )
    status = packed[-1, ..., n + m + 1].astype(np.int8)
    taken = packed[-1, ..., n + m + 2].astype(np.int64)
    x, y, loss = packed[..., :n], packed[..., n : n + m], packed[..., n + m]
    return Trajectory(x, y, loss, status, rule.name, kept, taken)


#: Seconds to wait for the scheduler to answer, and then for a first worker to join it.
CONNECT_TIMEOUT = 10.0


def dask_client(address: str, timeout: float | None = None) -> Any:
    """A ``dask.distributed`` client of the scheduler at ``address`` (e.g. ``tcp://host:8786``)
    that has at least one worker: a one-line error when the scheduler does not answer, or no
    worker has joined it, within ``timeout`` seconds (default :data:`CONNECT_TIMEOUT`; a run
    would otherwise wait for ever)."""
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        from distributed import Client
    except ImportError:
        raise ScaleinvError(
            "--scheduler needs dask.distributed: pip install 'scaleinv[distributed]'"
        ) from None
    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as err:
        raise ScaleinvError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as err:
        client.close()
        raise ScaleinvError(
            f"no Dask worker answered within {timeout:g} s at the scheduler {address!r}: "
            "start workers (dask worker ADDRESS) and run again"
        ) from err
    return client
