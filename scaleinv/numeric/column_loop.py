"""The NumPy engine's loop on coordinate columns, for rules with a fused step.

:func:`iterate_columns` is :func:`scaleinv.numeric.runtime.iterate` case for case (the
tolerance check, the step's statuses, divergence, the stopped keeping their points, the
recorder, the loss certificate), with the points held as one contiguous array per coordinate
and the step taken by one generated function (:mod:`scaleinv.numeric.fused_step`): at 10**5
starts of a 2-input problem, one Newton step costs a third of the kernel-by-kernel step, and
the tolerance check reuses the step's gradient. Where the fused step is not trusted (a solve
Cramer's rule does not trust, a PG candidate that does not solve ``P(x) = y``), the rule's
own step (``fallback``) computes those samples' steps and statuses, so singular samples and
missing inverses are found by the same code as in :func:`~scaleinv.numeric.runtime.iterate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scaleinv.numeric import runtime
from scaleinv.numeric.fused_step import FusedStep

__all__ = ["iterate_columns"]


def _in_box(x: np.ndarray, radius: float | None) -> bool:
    """Whether every entry lies in ``[-radius, radius]`` (NaN fails; no radius: False)."""
    return radius is not None and bool(x.max() <= radius and -radius <= x.min())


def _fallback_rows(
    new: np.ndarray, ok: np.ndarray | None, boxed: bool, stopped: np.ndarray | None
) -> np.ndarray | None:
    """The samples whose step the rule's own step must take (None: none): where the fused
    step is not trusted (``ok`` false; None: trusted everywhere) or its result is not finite,
    seen in the new points ``new`` (``(n, size)``; the points are finite), except the
    ``stopped`` (None: they count too). ``boxed``: every new point is known finite."""
    if ok is None:
        return None
    if ok.all() and (boxed or np.isfinite(new.sum())):
        return None
    fine = ok & np.isfinite(new).all(axis=0)
    if stopped is not None:
        fine |= stopped
    return None if fine.all() else np.flatnonzero(~fine)


def iterate_columns(
    fused: FusedStep,
    fallback: Callable[[np.ndarray, Any], tuple[np.ndarray, Any, np.ndarray]],
    loss: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    steps: int,
    tol: float | None,
    recorder: runtime.Recorder,
    progress: Callable[..., None] | None = None,
    radius: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~scaleinv.numeric.runtime.iterate` of a stateless per-sample rule on ``x0``
    (``(size, n)``) by its fused step; ``fallback`` is the rule's own step. Returns the status
    codes and the step at which each sample stopped.

    The points are held as ``(n, size)`` in two buffers that take turns (the current points
    and the next), so a step allocates no sample-sized array."""
    size, n = x0.shape
    x, new = np.array(x0.T, order="C"), np.empty((n, size))
    dx = np.empty((n, size))
    ok = np.empty(size, dtype=bool) if fused.has_trust else None
    norm = np.empty(size) if fused.has_norm else None
    status = np.zeros(size, dtype=np.int8)
    taken = np.full(size, steps, dtype=np.int64)
    running = size
    limit = None if tol is None else runtime.squared_limit(tol)

    def loss_of(points: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return loss(points.T)

    def certified(points: np.ndarray, stopped: np.ndarray | None) -> bool:
        if stopped is not None:  # the running within the box
            points = np.where(stopped, 0.0, points)
        return _in_box(points, radius)

    loss_x = loss_of(x) if radius is None or recorder.wants(0) else None
    recorder.offer(0, x0, loss_x)
    for k in range(steps):
        if running == 0:
            break
        fused.func(x, dx, ok, norm)
        if limit is not None:
            running -= runtime._stop(status, taken, k, norm <= limit, runtime.CONVERGED)
        with np.errstate(all="ignore"):
            np.add(x, dx, out=new)
            boxed = _in_box(new, radius)
            skip = None if fused.fallback_stopped or running == size else status != runtime.RUNNING
            rows = _fallback_rows(new, ok, boxed, skip)
            if rows is not None:  # the rule's own step where the fused one is not trusted
                boxed = False
                sub_dx, _, sub_status = fallback(np.ascontiguousarray(x[:, rows].T), None)
                new[:, rows] = x[:, rows] + sub_dx.T
                if sub_status.any():
                    step_status = np.zeros(size, dtype=np.int8)
                    step_status[rows] = sub_status
                    running -= runtime._stop(
                        status, taken, k, step_status != runtime.RUNNING, step_status
                    )
            stopped = None if running == size else status != runtime.RUNNING
            if stopped is not None:
                np.copyto(new, x, where=stopped)
            if (boxed and stopped is None) or certified(new, stopped):
                loss_new = None
            else:
                diverged, loss_new = runtime.stop_diverged(
                    status, taken, k, new, x, loss_of(new), loss_x, stopped, coordinates=0
                )
                running -= diverged
        x, new, loss_x = new, x, loss_new
        if recorder.wants(k + 1):
            if loss_x is None:
                loss_x = loss_of(x)
            recorder.offer(k + 1, x.T, loss_x)
        if progress is not None:
            progress(k + 1, running)
    if limit is not None and running:
        fused.func(x, dx, ok, norm)
        runtime._stop(status, taken, steps, norm <= limit, runtime.CONVERGED)
    np.copyto(status, runtime.MAX_STEPS, where=status == runtime.RUNNING)
    if recorder.filled < len(recorder.steps):
        if loss_x is None:
            loss_x = loss_of(x)
        recorder.fill_to(len(recorder.steps), x.T, loss_x)
    return status, taken
