"""One driver for every rule: :func:`minimize` runs a compiled rule over a batch of start points."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from scaleinv.errors import ProblemError
from scaleinv.numeric import runtime
from scaleinv.numeric.compiled import CompiledRule
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.status import Status
from scaleinv.symbolic import Problem

__all__ = ["Trajectory", "minimize", "compiled_rule"]

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

    ``x0`` may be a Dask array: the run then goes chunk by chunk (on a ``dask.distributed``
    cluster where a client is active) and the Trajectory holds Dask arrays
    (:func:`~scaleinv.numeric.distributed.minimize_dask`).

    All samples advance together as array operations. A sample stops (and keeps its point)
    when it converges (``‖∂L/∂x‖ ≤ tol``; only checked when ``tol`` is given), diverges
    (non-finite point or loss above 1e150), or its step fails (no inverse, singular matrix).

    Examples
    --------
    >>> from scaleinv import rules
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> t = minimize(p, rules.newton(1 / 3), [3.0, 3.0], steps=2)
    >>> t.x[-1], t.statuses()
    (array([1.33333333, 2.37037037]), [<Status.MAX_STEPS: 2>])
    """
    if type(x0).__module__.split(".")[0] == "dask":  # many starts, chunk by chunk on Dask
        from scaleinv.numeric.distributed import minimize_dask

        return minimize_dask(problem, rule, x0, steps, tol)
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim == 0 or x0.shape[-1] != problem.n:
        raise ProblemError(f"x0 must have shape (..., {problem.n}), got {x0.shape}")
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ProblemError(f"steps must be a non-negative integer, got {steps!r}")
    if not np.isfinite(x0).all():
        raise ProblemError("x0 contains non-finite values")
    kernels = problem.compile()
    compiled = compiled_rule(problem, rule)
    state = compiled.init(x0, steps)
    xs, status = runtime.iterate(
        compiled.step, kernels.gradient, kernels.loss, x0, steps, tol, state
    )
    return Trajectory(xs, kernels.P(xs), kernels.loss(xs), status, rule.name)
