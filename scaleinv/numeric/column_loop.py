"""The NumPy engine's loop on coordinate columns, for rules with a fused step.

:func:`iterate_columns` is :func:`scaleinv.numeric.runtime.iterate` case for case (the
tolerance check, the step's statuses, divergence, the stopped keeping their points, the
recorder, the loss certificate), with the points held as one contiguous array per coordinate
and the step taken by one generated function (:mod:`scaleinv.numeric.fused_step`): at 10**5
starts of a 2-input problem, one Newton step costs a third of the kernel-by-kernel step, and
the tolerance check reuses the step's gradient. Where the fused step's solve is not trusted,
the rule's own step (``fallback``) computes those samples' steps and statuses, so singular
samples are found by the same code as in :func:`~scaleinv.numeric.runtime.iterate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scaleinv.numeric import runtime
from scaleinv.numeric.fused_step import FusedStep

__all__ = ["iterate_columns"]


def _in_box(columns: list[np.ndarray], radius: float | None) -> bool:
    """Whether every entry lies in ``[-radius, radius]`` (NaN fails; no radius: False)."""
    if radius is None:
        return False
    return all(c.max() <= radius and -radius <= c.min() for c in columns)


def _fallback_rows(new: list[np.ndarray], trusted: Any, boxed: bool) -> np.ndarray | None:
    """The samples whose step the rule's own step must take (None: none): where the solve is
    not trusted or its solution is not finite, seen in the new points ``new`` (the points are
    finite). Stopped samples count too, as in :func:`~scaleinv.numeric.runtime.iterate`,
    whose solve decides over all of them. ``boxed``: every new point is known finite."""
    if trusted is None:
        return None
    if np.all(trusted) and (boxed or all(np.isfinite(c.sum()) for c in new)):
        return None
    fine = np.array(np.broadcast_to(trusted, new[0].shape))
    for c in new:
        fine &= np.isfinite(c)
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
    codes and the step at which each sample stopped."""
    size, n = x0.shape
    cols = [np.ascontiguousarray(x0[:, i]) for i in range(n)]
    status = np.zeros(size, dtype=np.int8)
    taken = np.full(size, steps, dtype=np.int64)
    running = size
    limit = None if tol is None else runtime.squared_limit(tol)

    def stacked(columns: list[np.ndarray]) -> np.ndarray:
        return np.stack(columns, axis=-1)

    def loss_of(columns: list[np.ndarray]) -> np.ndarray:
        with np.errstate(all="ignore"):
            return loss(stacked(columns))

    def certified(columns: list[np.ndarray], stopped: np.ndarray | None) -> bool:
        if stopped is not None:  # the running within the box
            columns = [np.where(stopped, 0.0, c) for c in columns]
        return _in_box(columns, radius)

    loss_x = loss_of(cols) if radius is None or recorder.wants(0) else None
    recorder.offer(0, x0, loss_x)
    for k in range(steps):
        if running == 0:
            break
        *dx, trusted, norm = fused.func(*cols)
        if limit is not None:
            running -= runtime._stop(status, taken, k, norm <= limit, runtime.CONVERGED)
        with np.errstate(all="ignore"):
            new = [c + d for c, d in zip(cols, dx)]
            boxed = _in_box(new, radius)
            rows = _fallback_rows(new, trusted, boxed)
            if rows is not None:  # the rule's own step where Cramer's rule is not trusted
                boxed = False
                sub_dx, _, sub_status = fallback(stacked([c[rows] for c in cols]), None)
                for i in range(n):
                    new[i][rows] = cols[i][rows] + sub_dx[:, i]
                if sub_status.any():
                    step_status = np.zeros(size, dtype=np.int8)
                    step_status[rows] = sub_status
                    running -= runtime._stop(
                        status, taken, k, step_status != runtime.RUNNING, step_status
                    )
            stopped = None if running == size else status != runtime.RUNNING
            if stopped is not None:
                for c_new, c in zip(new, cols):
                    np.copyto(c_new, c, where=stopped)
            if (boxed and stopped is None) or certified(new, stopped):
                loss_new = None
            else:
                loss_new = loss_of(new)
                everything_fine = (
                    stopped is None
                    and all(np.isfinite(c.sum()) for c in new)
                    and -runtime.DIVERGED_LOSS < loss_new.min()
                    and loss_new.max() < runtime.DIVERGED_LOSS
                )
                if not everything_fine:
                    fine = np.abs(loss_new) < runtime.DIVERGED_LOSS
                    for c in new:
                        fine &= np.isfinite(c)
                    diverged = runtime._stop(status, taken, k, ~fine, runtime.DIVERGED)
                    running -= diverged
                    if diverged:
                        keep = status != runtime.RUNNING
                        for c_new, c in zip(new, cols):
                            np.copyto(c_new, c, where=keep)
                        if loss_x is None:
                            loss_new = None
                        else:
                            np.copyto(loss_new, loss_x, where=keep)
        cols, loss_x = new, loss_new
        if recorder.wants(k + 1):
            if loss_x is None:
                loss_x = loss_of(cols)
            recorder.offer(k + 1, stacked(cols), loss_x)
        if progress is not None:
            progress(k + 1, running)
    if limit is not None and running:
        norm = fused.func(*cols)[-1]
        runtime._stop(status, taken, steps, norm <= limit, runtime.CONVERGED)
    np.copyto(status, runtime.MAX_STEPS, where=status == runtime.RUNNING)
    if recorder.filled < len(recorder.steps):
        if loss_x is None:
            loss_x = loss_of(cols)
        recorder.fill_to(len(recorder.steps), stacked(cols), loss_x)
    return status, taken
