"""One driver for every rule: :func:`minimize` runs a compiled rule over a batch of start points.

The batch advances as whole-array operations and streams: it holds the current point and
loss of every sample, and keeps only the steps ``record`` asks for (see
:mod:`scaleinv.numeric.trajectory`), so its memory does not grow with ``steps x batch`` unless
the full history is asked for. Before it allocates anything, it checks that the run fits in
the memory available and raises :class:`~scaleinv.errors.MemoryLimitError` otherwise.
"""

from __future__ import annotations

import math
import os
import warnings
import weakref
from pathlib import Path

import numpy as np

from scaleinv.errors import MemoryLimitError, NumericInverseWarning, ProblemError
from scaleinv.numeric.compiled import CompiledRule
from scaleinv.numeric.inverse import numeric_inverse_note
from scaleinv.numeric.kernels import ProblemKernels, real_array
from scaleinv.numeric.progress import ProgressBar
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.status import Status
from scaleinv.numeric.trajectory import Trajectory, recorded_count, recorded_steps
from scaleinv.symbolic import Problem

__all__ = ["minimize", "compiled_rule", "available_memory"]

_DIVERGED_LOSS = 1e150
_RUNNING = Status.RUNNING.value
_COMPILED: weakref.WeakKeyDictionary[Problem, dict[Rule, CompiledRule]] = (
    weakref.WeakKeyDictionary()
)


def compiled_rule(problem: Problem, rule: Rule) -> CompiledRule:
    """``rule.compile(problem)``, compiled once per (problem, rule) and cached."""
    per_problem = _COMPILED.setdefault(problem, {})
    if rule not in per_problem:
        per_problem[rule] = rule.compile(problem)
    return per_problem[rule]


def available_memory() -> int | None:
    """Bytes this process can still allocate: the machine's available memory, or the
    container's (cgroup v2) limit minus its use where that is smaller; None if unknown."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _working_floats(n: int, m: int) -> int:
    """Floats per sample a step needs at most at once (points, P, J, H, their temporaries,
    branch candidates of a local inverse): a generous estimate, checked in the tests."""
    return 16 * (n + m + 1) + 8 * (n * n + m * n)


def _check_memory(
    rule: Rule,
    compiled: CompiledRule,
    samples: int,
    shape: tuple[int, int],
    steps: int,
    kept: int,
    record: str,
    max_memory: int | None,
) -> None:
    n, m = shape
    recording = 8 * kept * samples * (n + m + 1)
    working = 8 * samples * _working_floats(n, m)
    state = compiled.state_bytes(samples, steps)
    limit = available_memory() if max_memory is None else max_memory
    if limit is None or recording + working + state <= limit:
        return
    parts = [f"record={record!r} keeps {kept} x {samples} samples x {n + m + 1} values"]
    if state:
        parts.append(f"{rule.name} keeps all {steps + 1} iterates of every sample")
    parts.append(f"a step works on about {_working_floats(n, m)} values per sample")
    what = f"minimize ({'; '.join(parts)})"
    advice = "pass record='last', 'ends' or 'every:K', or run fewer starts at a time"
    if state > recording:
        advice = "run fewer starts or steps at a time"
    raise MemoryLimitError(what, recording + working + state, limit, advice)


class _Recorder:
    """The recorded steps' ``x``, ``P(x)`` and loss, filled as the run passes them."""

    def __init__(self, kernels: ProblemKernels, steps: np.ndarray, x0: np.ndarray, m: int):
        self.kernels, self.steps, self.filled = kernels, steps, 0
        self.x = np.empty((len(steps),) + x0.shape)
        self.y = np.empty((len(steps),) + x0.shape[:-1] + (m,))
        self.loss = np.empty((len(steps),) + x0.shape[:-1])

    def offer(self, step: int, x: np.ndarray, loss: np.ndarray) -> None:
        """Keep the point of ``step`` if it is one of the recorded steps."""
        if self.filled < len(self.steps) and self.steps[self.filled] == step:
            self.fill_to(self.filled + 1, x, loss)

    def fill_to(self, end: int, x: np.ndarray, loss: np.ndarray) -> None:
        """Record ``x`` for every not yet filled entry up to ``end`` (all stopped: it stays)."""
        if end > self.filled:
            rows = slice(self.filled, end)
            self.x[rows], self.loss[rows] = x, loss
            with np.errstate(all="ignore"):
                self.y[rows] = self.kernels.P(x)
            self.filled = end


def _stop(
    status: np.ndarray, taken: np.ndarray, step: int, where: np.ndarray, code: int | np.ndarray
) -> int:
    """Give running samples ``where`` true the status ``code``; return how many stopped."""
    newly = (status == _RUNNING) & where
    np.copyto(status, code, where=newly)
    np.copyto(taken, step, where=newly)
    return int(np.count_nonzero(newly))


def _small_gradient(kernels: ProblemKernels, x: np.ndarray, tol: float) -> np.ndarray:
    g = kernels.gradient(x)
    return np.sqrt(np.einsum("...i,...i->...", g, g)) <= tol


def _run(
    kernels: ProblemKernels,
    compiled: CompiledRule,
    x0: np.ndarray,
    steps: int,
    tol: float | None,
    recorder: _Recorder,
    bar: ProgressBar,
) -> tuple[np.ndarray, np.ndarray]:
    """The loop of :func:`minimize`; returns the statuses and steps taken per sample."""
    x = x0
    status = np.zeros(x0.shape[:-1], dtype=np.int8)
    taken = np.full(x0.shape[:-1], steps, dtype=np.int64)
    running = status.size
    with np.errstate(all="ignore"):
        loss = kernels.loss(x)
    recorder.offer(0, x, loss)
    state = compiled.init(x0, steps)
    for k in range(steps):
        if running == 0:  # nothing moves any more: the remaining steps are the same point
            break
        if tol is not None:
            running -= _stop(status, taken, k, _small_gradient(kernels, x, tol), Status.CONVERGED)
        dx, state, step_status = compiled.step(x, state)
        if step_status.any():
            running -= _stop(status, taken, k, step_status != _RUNNING, step_status)
        with np.errstate(all="ignore"):
            x_new = x + dx
            loss_new = kernels.loss(x_new)
            # whole-batch reductions without temporaries; NaN fails the comparisons, and an
            # overflowing sum only sends the batch to the per-sample check below
            everything_fine = (
                running == status.size
                and math.isfinite(x_new.sum())
                and -_DIVERGED_LOSS < loss_new.min()
                and loss_new.max() < _DIVERGED_LOSS
            )
            if not everything_fine:  # per sample: who diverged, who keeps its point
                fine = np.isfinite(x_new).all(axis=-1) & (np.abs(loss_new) < _DIVERGED_LOSS)
                running -= _stop(status, taken, k, ~fine, Status.DIVERGED)
                keep = status != _RUNNING
                np.copyto(x_new, x, where=keep[..., None])
                np.copyto(loss_new, loss, where=keep)
        x, loss = x_new, loss_new
        recorder.offer(k + 1, x, loss)
        bar.update(k + 1, running)
    if tol is not None and running:
        _stop(status, taken, steps, _small_gradient(kernels, x, tol), Status.CONVERGED)
    np.copyto(status, Status.MAX_STEPS, where=status == _RUNNING)
    recorder.fill_to(len(recorder.steps), x, loss)
    return status, taken


def minimize(
    problem: Problem,
    rule: Rule,
    x0: np.ndarray,
    steps: int,
    tol: float | None = None,
    *,
    record: str = "ends",
    progress: bool = False,
    max_memory: int | None = None,
) -> Trajectory:
    """Run ``rule`` for ``steps`` steps from every point of ``x0`` (shape ``(..., n)``).

    All samples advance together as array operations. A sample stops (and keeps its point)
    when it converges (``‖∂L/∂x‖ ≤ tol``; only checked when ``tol`` is given), diverges
    (non-finite point or loss above 1e150), or its step fails (no inverse, not found, singular
    matrix). A rule whose step needs the numeric local inverse (PG without a closed form)
    warns with :class:`~scaleinv.errors.NumericInverseWarning`.

    Parameters
    ----------
    problem, rule
        What to minimize and how.
    x0 : array_like, shape (..., n)
        The start points; leading axes are the batch.
    steps : int
        How many steps to run.
    tol : float, optional
        Gradient norm below which a sample counts as converged and stops.
    record : str
        Which steps the :class:`Trajectory` keeps: ``"all"``, ``"every:K"``, ``"ends"``
        (steps 0 and ``steps``: memory independent of ``steps``, and ``x[0]``/``x[-1]`` mean
        start and end as with ``"all"``) or ``"last"``; see
        :mod:`scaleinv.numeric.trajectory`.
    progress : bool
        Draw a progress bar on standard error when it is a terminal and the run lasts more
        than half a second (the CLI asks for one); a library call is quiet by default.
    max_memory : int, optional
        Bytes the run may use; default: what the machine (or container) has available.

    Raises
    ------
    MemoryLimitError
        When the recorded steps and the step's working memory would not fit.

    Examples
    --------
    >>> from scaleinv import rules
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> t = minimize(p, rules.newton(1 / 3), [3.0, 3.0], steps=2, record="all")
    >>> t.x[-1], t.statuses()
    (array([1.33333333, 2.37037037]), [<Status.MAX_STEPS: 2>])
    >>> minimize(p, rules.newton(1 / 3), [3.0, 3.0], steps=2).x.shape  # record="ends"
    (2, 2)
    """
    x0 = real_array(x0, "x0", problem.n)
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ProblemError(f"steps must be a non-negative integer, got {steps!r}")
    if not np.isfinite(x0).all():
        raise ProblemError("x0 contains non-finite values")
    steps = int(steps)
    count = recorded_count(record, steps)
    kernels = problem.compile()
    compiled = compiled_rule(problem, rule)
    note = numeric_inverse_note(problem, rule)
    if note is not None:
        warnings.warn(NumericInverseWarning(rule.name, note), stacklevel=2)
    shape, samples = (problem.n, problem.m), int(np.prod(x0.shape[:-1]))
    _check_memory(rule, compiled, samples, shape, steps, count, record, max_memory)
    kept = recorded_steps(record, steps)
    try:
        recorder = _Recorder(kernels, kept, x0, problem.m)
        with ProgressBar(steps if progress else 0, f"minimize {rule.name}") as bar:
            status, taken = _run(kernels, compiled, x0, steps, tol, recorder, bar)
    except MemoryError as err:
        if isinstance(err, MemoryLimitError):
            raise
        what = f"this minimize run ({rule.name}, {samples} samples, record={record!r})"
        need = 8 * samples * (len(kept) * (sum(shape) + 1) + _working_floats(*shape))
        advice = "pass record='last' or run fewer starts at a time"
        raise MemoryLimitError(what, need, available_memory() or 0, advice) from None
    return Trajectory(recorder.x, recorder.y, recorder.loss, status, rule.name, kept, taken)
