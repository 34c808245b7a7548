"""Evaluate a local inverse ``P⁻¹(y; x₀)`` in batches: nearest valid branch, or numerically.

Both modes become one generated NumPy-only function, ``local_inverse(y, x0, **params) ->
(x, status, residual)`` — the source that :func:`scaleinv.export` writes, so in-process and
exported inverses are one code path.

* Closed form: every branch is evaluated at once, periodic inputs are shifted by the whole
  number of periods that brings them nearest to ``x₀``, and the candidates are ordered by
  their distance to ``x₀``. The nearest finite one is checked first (one evaluation of ``P``:
  ``|P(x) − y| <= TOL (1 + |y|)``); only where it misses are all candidates checked, those
  whose residual misses polished by one Gauss–Newton step (kept where it lowers the
  residual), and the nearest valid one returned — the same answer as checking every candidate
  everywhere, at the cost of one ``P`` where the closed form is exact.
* No closed form: :func:`~scaleinv.numeric.pathsolve.path_inverse` follows ``P(x₀) → y``
  (batched damped Gauss–Newton with continuation); a target outside a certified enclosure of
  the range of ``P`` (:func:`~scaleinv.symbolic.ranges.output_bounds`) is ``NO_INVERSE``
  without solving.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from scaleinv.errors import NoInverseError, ProblemError
from scaleinv.numeric import pathsolve, runtime
from scaleinv.numeric.compiler import compile_problem
from scaleinv.numeric.inverse_source import TOL, closed_form_source, numeric_source
from scaleinv.numeric.kernels import ProblemKernels, batch_shape
from scaleinv.symbolic import Problem
from scaleinv.symbolic.inverse import LocalInverse

__all__ = ["InverseEvaluator", "InverseSolution", "compile_inverse", "solver_namespace"]
__all__ += ["invert", "numeric_inverse_note", "TOL"]

FALLBACKS = ("raise", "keep", "ig")


class InverseSolution(NamedTuple):
    """What :meth:`InverseEvaluator.solve` returns, per sample of the batch.

    Attributes
    ----------
    x : ndarray, shape (..., n)
        The solution; ``x0`` where there is none.
    status : ndarray of int8
        :class:`~scaleinv.numeric.status.Status` codes: ``RUNNING`` where a solution was
        found, ``NO_INVERSE`` where none exists (closed form, or a range certificate),
        ``NOT_FOUND`` where the numeric solver found none.
    residual : ndarray
        ``|P(x) − y|`` (2-norm) reached: at most the tolerance where found, ``inf`` where the
        closed form has no valid branch, at the last point on the path where not found.
    numeric : bool
        Whether the numeric solver (rather than a closed form) was used.
    """

    x: np.ndarray
    status: np.ndarray
    residual: np.ndarray
    numeric: bool

    @property
    def ok(self) -> np.ndarray:
        """Where a solution was found."""
        return self.status == runtime.RUNNING


@dataclass(frozen=True, eq=False)
class InverseEvaluator:
    """The compiled local inverse of one :class:`~scaleinv.symbolic.inverse.LocalInverse`.

    Two modes, one contract (``local_inverse(y, x0, **params) -> (x, status, residual)``):

    * closed form — every branch evaluated at once, the valid one **nearest to** ``x0``;
      ``NO_INVERSE`` where no branch is valid (the closed form is complete, so none exists);
    * numeric (no closed form) — :func:`~scaleinv.numeric.pathsolve.path_inverse`, the
      solution **connected to** ``x0`` along ``P(x0) → y`` (when the path meets a fold, the
      nearest solution a last-resort solve finds); ``NO_INVERSE`` only where ``y`` lies
      outside a certified enclosure of the range of ``P``, ``NOT_FOUND`` where the solver
      found nothing. For small steps both modes give the same solution; they can differ for
      large ones (see ``tests/test_pathsolve.py``).

    Attributes
    ----------
    problem : Problem
        Whose ``P`` is inverted.
    numeric : bool
        True when there is no closed form (``LocalInverse.numeric``): solve numerically.
    source : str
        NumPy-only source of ``local_inverse(y, x0, **params)`` and its helpers (branch
        kernels, or the range enclosure); it calls the problem's kernels ``P`` and
        ``jacobian`` and the sources of :mod:`~scaleinv.numeric.runtime` and
        :mod:`~scaleinv.numeric.pathsolve`.
    local_inverse : callable
        The compiled ``local_inverse`` of :attr:`source`.
    kernels : ProblemKernels
        The problem's kernels.
    """

    problem: Problem
    numeric: bool
    source: str
    local_inverse: Any
    kernels: ProblemKernels

    def solve(self, y: Any, x0: Any, /, **params: Any) -> InverseSolution:
        """Solve ``P(x) = y`` near ``x0``; never raises for a missing solution.

        Parameters
        ----------
        y : array_like, shape (..., m)
        x0 : array_like, shape (..., n)
            Leading axes of ``y``, ``x0`` and array params broadcast.
        **params
            Overrides of the problem's params.

        Returns
        -------
        InverseSolution
            ``x``, ``status``, ``residual`` and ``numeric``.

        Examples
        --------
        >>> from scaleinv.symbolic import Problem
        >>> evaluator = Problem.from_strings("x", "x**2").local_inverse().compile()
        >>> from scaleinv.numeric.status import Status
        >>> sol = evaluator.solve([[9.0], [-1.0]], [[0.1], [0.1]])
        >>> sol.x.tolist(), sol.ok.tolist(), [Status(s).label for s in sol.status], sol.numeric
        ([[3.0], [0.1]], [True, False], ['running', 'no_inverse'], False)
        """
        y, x0 = self._broadcast(y, x0)
        shapes = {f"param {key} of shape": np.shape(value) for key, value in params.items()}
        batch_shape("inverse", {"y and x0 of batch shape": y.shape[:-1], **shapes})
        x, status, residual = self.local_inverse(y, x0, **params)
        return InverseSolution(x, status, residual, self.numeric)

    def inv(self, y: Any, x0: Any, /, *, fallback: str = "raise", **params: Any) -> np.ndarray:
        """``P⁻¹(y; x0)``, batched; ``fallback`` says what to do where no solution was found.

        ``"raise"``: :class:`~scaleinv.errors.NoInverseError`; ``"keep"``: return ``x0``;
        ``"ig"``: the inverse-gradient step :math:`x_0 + J(x_0)^+ (y - P(x_0))`. The fallback
        applies to both ``NO_INVERSE`` and ``NOT_FOUND`` samples.

        Examples
        --------
        >>> from scaleinv.symbolic import Problem
        >>> evaluator = Problem.from_strings("x", "sin(x)").local_inverse().compile()
        >>> evaluator.inv([0.0], [10.0]).round(6)  # the root nearest to x0 = 10 is 3 pi
        array([9.424778])
        >>> evaluator.inv([2.0], [1.0], fallback="keep")
        array([1.])
        """
        if fallback not in FALLBACKS:
            raise ProblemError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        x, status, _, _ = self.solve(y, x0, **params)
        bad = status != runtime.RUNNING
        if not bad.any():
            return x
        y, x0 = self._broadcast(y, x0)
        if fallback == "ig":
            x = np.where(bad[..., None], self._ig(y, x0, params), x)
            bad = bad & ~np.isfinite(x).all(axis=-1)
        if fallback == "keep" or not bad.any():
            return x
        missed = int((bad & (status == runtime.NOT_FOUND)).sum())
        example = tuple(float(v) for v in y[bad][0])
        raise NoInverseError(int(bad.sum()), int(bad.size), example, not_found=missed)

    # -- internals ---------------------------------------------------------------------------
    def _broadcast(self, y: Any, x0: Any) -> tuple[np.ndarray, np.ndarray]:
        problem = self.problem
        y, x0 = np.asarray(y, dtype=np.float64), np.asarray(x0, dtype=np.float64)
        if y.ndim == 0 or y.shape[-1] != problem.m or x0.ndim == 0 or x0.shape[-1] != problem.n:
            raise ProblemError(
                f"inverse needs y of shape (..., {problem.m}) and x0 of shape (..., "
                f"{problem.n}), got {y.shape} and {x0.shape}"
            )
        batch = batch_shape(
            "inverse", {"y of batch shape": y.shape[:-1], "x0 of batch shape": x0.shape[:-1]}
        )
        return np.broadcast_to(y, batch + y.shape[-1:]), np.broadcast_to(x0, batch + x0.shape[-1:])

    def _ig(self, y: np.ndarray, x0: np.ndarray, params: dict) -> np.ndarray:
        with np.errstate(all="ignore"):
            jac = self.kernels.jacobian(x0, **params)
            jac = jac.reshape(jac.shape[: x0.ndim - 1] + (self.problem.m, self.problem.n))
            r = y - self.kernels.P(x0, **params)
            good = np.isfinite(jac).all(axis=(-2, -1)) & np.isfinite(r).all(axis=-1)
            jac, r = np.where(good[..., None, None], jac, 0.0), np.where(good[..., None], r, 0.0)
            step = (np.linalg.pinv(jac) @ r[..., None])[..., 0]
        return np.where(good[..., None], x0 + step, np.nan)


_CACHE: weakref.WeakKeyDictionary[LocalInverse, dict[bool, InverseEvaluator]] = (
    weakref.WeakKeyDictionary()
)
#: Name of the generated function when the numeric inverse is asked for despite a closed form.
NUMERIC_NAME = "numeric_local_inverse"


def compile_inverse(local: LocalInverse, *, numeric: bool = False) -> InverseEvaluator:
    """Compile (once per local inverse and mode, cached) the evaluator of ``P⁻¹(y; x0)``.

    ``numeric=True`` solves numerically (path-following, the solution connected to ``x0``)
    even where a closed form exists; its generated function is named :data:`NUMERIC_NAME`,
    so that both can sit in one exported module.

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> evaluator = compile_inverse(Problem.from_strings("x", "x**3").local_inverse())
    >>> evaluator.inv([[-8.0], [27.0]], [[0.0], [0.0]]).round(12)
    array([[-2.],
           [ 3.]])
    >>> "def local_inverse(y, x0, /, **params):" in evaluator.source
    True
    """
    per_mode = _CACHE.setdefault(local, {})
    if numeric in per_mode:
        return per_mode[numeric]
    problem, kernels = local.problem, compile_problem(local.problem)
    closed = not (local.numeric or not local.branches)
    name = NUMERIC_NAME if numeric else "local_inverse"
    if closed and not numeric:
        source = closed_form_source(local)
    else:
        source = numeric_source(problem, kernels, name)
    namespace = solver_namespace(kernels)
    code = compile(source, f"<scaleinv local inverse of {problem.outputs}>", "exec")
    exec(code, namespace)  # noqa: S102  (scaleinv's own kernels and template, no user text)
    # no reference back to `local`, so the cache entry dies with it
    evaluator = InverseEvaluator(problem, not closed or numeric, source, namespace[name], kernels)
    per_mode[numeric] = evaluator
    return evaluator


def invert(local: LocalInverse, y: Any, x0: Any, *, fallback: str = "raise") -> np.ndarray:
    """``P⁻¹(y; x0)``: the solution of ``P(x) = y`` nearest to ``x0``, batched, with the
    evaluator of :func:`compile_inverse` (see :meth:`InverseEvaluator.inv` for ``fallback``).

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> invert(Problem.from_strings("x", "x**2").local_inverse(), [9.0], [-2.0])
    array([-3.])
    """
    return compile_inverse(local).inv(y, x0, fallback=fallback)


def numeric_inverse_note(problem: Problem, rule: Any) -> str | None:
    """Why ``rule``'s step on ``problem`` solves ``P(x) = y`` numerically; None if it does not.

    Examples
    --------
    >>> from scaleinv.numeric import rules
    >>> numeric_inverse_note(Problem.from_strings("x", "x**2"), rules.pg()) is None
    True
    >>> numeric_inverse_note(Problem.from_strings("x", "x + sin(x)"), rules.pg())[:15]
    'no closed form '
    """
    if not getattr(rule, "uses_inverse", False):
        return None
    if getattr(rule, "inverse", "auto") == "numeric":
        return "the rule asks for the numeric inverse"
    inverse = problem.local_inverse()
    return inverse.reason if inverse.numeric or not inverse.branches else None


def solver_namespace(kernels: ProblemKernels) -> dict[str, Any]:
    """What inverse sources may call: NumPy, the runtime, the path solver and the kernels."""
    namespace: dict[str, Any] = {"numpy": np, "P": kernels.P.func}
    namespace["jacobian"] = kernels.jacobian.func
    for module in (runtime, pathsolve):
        namespace.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    return namespace
