"""One driver for every rule: :func:`minimize` runs a compiled rule over a batch of start points."""

from __future__ import annotations

import sys
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from scaleinv.errors import NumericInverseWarning, ProblemError
from scaleinv.numeric.compiled import CompiledRule
from scaleinv.numeric.inverse import numeric_inverse_note
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.status import Status
from scaleinv.symbolic import Problem

__all__ = ["Trajectory", "minimize", "compiled_rule", "progress_printer"]

_DIVERGED_LOSS = 1e150
_COMPILED: weakref.WeakKeyDictionary[Problem, dict[Rule, CompiledRule]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Trajectory:
    """The iterates of one rule from a batch of start points.

    Attributes
    ----------
    x, y : ndarray
        ``(steps+1, *batch, n)`` and ``(steps+1, *batch, m)``; a sample that stopped early
        stays at its last point.
    loss : ndarray
        ``(steps+1, *batch)``.
    status : ndarray of int8
        Per sample, a :class:`~scaleinv.numeric.status.Status` code (never ``RUNNING``).
    rule : str
        The rule's name.
    """

    x: np.ndarray
    y: np.ndarray
    loss: np.ndarray
    status: np.ndarray
    rule: str

    @property
    def steps(self) -> int:
        """Number of steps taken (the length of axis 0 minus one)."""
        return self.x.shape[0] - 1

    def statuses(self) -> list[Status]:
        """The per-sample statuses as a flat list of :class:`Status`."""
        return [Status(int(code)) for code in np.ravel(self.status)]


def compiled_rule(problem: Problem, rule: Rule) -> CompiledRule:
    """``rule.compile(problem)``, compiled once per (problem, rule) and cached."""
    per_problem = _COMPILED.setdefault(problem, {})
    if rule not in per_problem:
        per_problem[rule] = rule.compile(problem)
    return per_problem[rule]


def minimize(
    problem: Problem, rule: Rule, x0: np.ndarray, steps: int, tol: float | None = None
) -> Trajectory:
    """Run ``rule`` for ``steps`` steps from every point of ``x0`` (shape ``(..., n)``).

    All samples advance together as array operations. A sample stops (and keeps its point)
    when it converges (``‖∂L/∂x‖ ≤ tol``; only checked when ``tol`` is given), diverges
    (non-finite point or loss above 1e150), or its step fails (no inverse, not found, singular
    matrix). A rule whose step needs the numeric local inverse (PG without a closed form)
    warns with :class:`~scaleinv.errors.NumericInverseWarning`.

    Examples
    --------
    >>> from scaleinv import rules
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> t = minimize(p, rules.newton(1 / 3), [3.0, 3.0], steps=2)
    >>> t.x[-1], t.statuses()
    (array([1.33333333, 2.37037037]), [<Status.MAX_STEPS: 2>])
    """
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim == 0 or x0.shape[-1] != problem.n:
        raise ProblemError(f"x0 must have shape (..., {problem.n}), got {x0.shape}")
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ProblemError(f"steps must be a non-negative integer, got {steps!r}")
    if not np.isfinite(x0).all():
        raise ProblemError("x0 contains non-finite values")
    kernels = problem.compile()
    compiled = compiled_rule(problem, rule)
    note = numeric_inverse_note(problem, rule)
    if note is not None:
        warnings.warn(NumericInverseWarning(rule.name, note), stacklevel=2)
    xs = np.empty((steps + 1,) + x0.shape)
    xs[0] = x0
    status = np.full(x0.shape[:-1], Status.RUNNING, dtype=np.int8)
    state = compiled.init(x0, steps)
    show = progress_printer()
    for k in range(steps):
        show(k, steps, int(np.sum(status == Status.RUNNING)))
        x = xs[k]
        if tol is not None:
            small = np.linalg.norm(kernels.gradient(x), axis=-1) <= tol
            status = np.where((status == Status.RUNNING) & small, Status.CONVERGED, status)
        dx, state, step_status = compiled.step(x, state)
        running = status == Status.RUNNING
        status = np.where(running & (step_status != Status.RUNNING), step_status, status)
        moving = status == Status.RUNNING
        with np.errstate(all="ignore"):
            x_new = np.where(moving[..., None], x + dx, x)
            loss_new = kernels.loss(x_new)
        bad = moving & (~np.isfinite(x_new).all(axis=-1) | ~(np.abs(loss_new) < _DIVERGED_LOSS))
        status = np.where(bad, Status.DIVERGED, status).astype(np.int8)
        xs[k + 1] = np.where(bad[..., None], x, x_new)
    if tol is not None:
        small = np.linalg.norm(kernels.gradient(xs[-1]), axis=-1) <= tol
        status = np.where((status == Status.RUNNING) & small, Status.CONVERGED, status)
    show(steps, steps, int(np.sum(status == Status.RUNNING)))
    status = np.where(status == Status.RUNNING, Status.MAX_STEPS, status).astype(np.int8)
    return Trajectory(xs, kernels.P(xs), kernels.loss(xs), status, rule.name)


def progress_printer(
    stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
) -> Callable[[int, int, int], None]:
    """``show(done, total, running)``: one progress line for long runs, on a terminal only.

    Silent unless ``stream`` (default ``sys.stderr``) is a TTY and the run has taken more than
    2 s; then at most twice a second it rewrites one line with the steps done, the samples
    still running and an estimate of the time left, and ends it when ``done == total``.

    Examples
    --------
    >>> import io
    >>> class Terminal(io.StringIO):
    ...     def isatty(self):
    ...         return True
    >>> out, ticks = Terminal(), iter([0.0, 1.0, 3.0, 4.0])
    >>> show = progress_printer(out, clock=lambda: next(ticks))
    >>> show(1, 4, 100); show(3, 4, 90); show(4, 4, 90)
    >>> for line in out.getvalue().split("\\r")[1:]:
    ...     print(line.strip())
    scaleinv: step 3/4, 90 samples running, ~1 s left
    scaleinv: step 4/4, 90 samples running, ~0 s left
    """
    stream = sys.stderr if stream is None else stream
    started = clock()
    shown = [False, -1.0]  # anything shown yet; when last

    def show(done: int, total: int, running: int) -> None:
        if not stream.isatty():
            return
        now = clock() - started
        end = done >= total
        if (now < 2.0 or now - shown[1] < 0.5 or done == 0) and not (end and shown[0]):
            return
        left = now / max(done, 1) * (total - done)
        line = f"scaleinv: step {done}/{total}, {running} samples running, ~{left:.0f} s left"
        stream.write(f"\r{line}" + ("\n" if end else ""))
        stream.flush()
        shown[:] = [True, now]

    return show
