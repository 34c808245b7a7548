"""Evaluate a local inverse ``P⁻¹(y; x₀)`` in batches: nearest valid branch, or numerically.

Closed-form branches (from :func:`scaleinv.symbolic.inverse.local_inverse`) are compiled to
kernels and all evaluated at once; periodic inputs are shifted by the whole number of periods
that brings them nearest to ``x₀``; a candidate counts only where it is finite and its residual
``|P(x) − y|`` is within ``tol (1 + |y|)``; the valid candidate nearest to ``x₀`` wins. Without
a closed form, a batched damped Gauss–Newton iteration warm-started at ``x₀`` solves
``P(x) = y``, and ``scipy.optimize.least_squares`` retries the samples it leaves unsolved.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from scaleinv.errors import NoInverseError, ProblemError
from scaleinv.numeric.kernels import Kernel, ProblemKernels, compile_kernel
from scaleinv.symbolic.inverse import LocalInverse

__all__ = ["InverseEvaluator", "compile_inverse"]

FALLBACKS = ("raise", "keep", "ig")


@dataclass(frozen=True, eq=False)
class InverseEvaluator:
    """The compiled local inverse of one :class:`~scaleinv.symbolic.inverse.LocalInverse`.

    Attributes
    ----------
    local : LocalInverse
        What was compiled.
    branches : tuple of Kernel
        One kernel per branch, ``y (..., m) -> x (..., n)``.
    periods : Kernel or None
        ``y (..., m) -> T (..., n)`` (0 where an input is not periodic); None if none is.
    kernels : ProblemKernels
        The problem's kernels (``P`` and ``jacobian`` are used).
    """

    local: LocalInverse
    branches: tuple[Kernel, ...]
    periods: Kernel | None
    kernels: ProblemKernels

    def solve(
        self, y: Any, x0: Any, *, tol: float = 1e-8
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Solve ``P(x) = y`` nearest to ``x0``; never raises for a missing solution.

        Parameters
        ----------
        y : array_like, shape (..., m)
        x0 : array_like, shape (..., n)
            Leading axes of ``y`` and ``x0`` broadcast.
        tol : float
            A solution must satisfy ``|P(x) − y| <= tol (1 + |y|)`` componentwise.

        Returns
        -------
        x : ndarray, shape (..., n)
            The solution; ``x0`` where there is none.
        ok : ndarray of bool, shape (...)
            Where a real solution was found.
        numeric : ndarray of bool, shape (...)
            Where it was found numerically rather than from a closed form.

        Examples
        --------
        >>> from scaleinv.symbolic import Problem
        >>> evaluator = Problem.from_strings("x", "x**2").local_inverse().compile()
        >>> x, ok, numeric = evaluator.solve([[9.0], [-1.0]], [[0.1], [0.1]])
        >>> x.tolist(), ok.tolist(), numeric.tolist()
        ([[3.0], [0.1]], [True, False], [False, False])
        """
        y, x0 = self._broadcast(y, x0)
        batch, problem = x0.shape[:-1], self.local.problem
        y, x0 = y.reshape(-1, problem.m), x0.reshape(-1, problem.n)
        if self.local.numeric:
            x, ok = self._numeric(y, x0, tol)
            numeric = ok.copy()
        else:
            x, ok = self._closed_form(y, x0, tol)
            numeric = np.zeros_like(ok)
        x = np.where(ok[:, None], x, x0)
        return x.reshape(batch + (problem.n,)), ok.reshape(batch), numeric.reshape(batch)

    def inv(self, y: Any, x0: Any, *, fallback: str = "raise", tol: float = 1e-8) -> np.ndarray:
        """``P⁻¹(y; x0)``, batched; ``fallback`` says what to do where no solution exists.

        ``"raise"``: :class:`~scaleinv.errors.NoInverseError`; ``"keep"``: return ``x0``;
        ``"ig"``: the inverse-gradient step :math:`x_0 + J(x_0)^+ (y - P(x_0))`.

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
        x, ok, _ = self.solve(y, x0, tol=tol)
        if ok.all():
            return x
        y_b, x0_b = self._broadcast(y, x0)
        bad = ~ok
        if fallback == "ig":
            x = x.copy()
            x[bad] = self._ig(y_b[bad], x0_b[bad])
            bad = bad & ~np.isfinite(x).all(axis=-1)
        if fallback == "keep" or not bad.any():
            return x
        first = tuple(float(v) for v in y_b[bad][0])
        raise NoInverseError(int(bad.sum()), int(bad.size), first)

    # -- internals ---------------------------------------------------------------------------
    def _broadcast(self, y: Any, x0: Any) -> tuple[np.ndarray, np.ndarray]:
        problem = self.local.problem
        y, x0 = np.asarray(y, dtype=np.float64), np.asarray(x0, dtype=np.float64)
        if y.ndim == 0 or y.shape[-1] != problem.m or x0.ndim == 0 or x0.shape[-1] != problem.n:
            raise ProblemError(
                f"inverse needs y of shape (..., {problem.m}) and x0 of shape (..., "
                f"{problem.n}), got {y.shape} and {x0.shape}"
            )
        batch = np.broadcast_shapes(y.shape[:-1], x0.shape[:-1])
        return np.broadcast_to(y, batch + y.shape[-1:]), np.broadcast_to(x0, batch + x0.shape[-1:])

    def _valid(self, x: np.ndarray, y: np.ndarray, tol: float) -> np.ndarray:
        with np.errstate(all="ignore"):
            err = np.abs(self.kernels.P(x) - y)
            return np.isfinite(x).all(axis=-1) & (err <= tol * (1 + np.abs(y))).all(axis=-1)

    def _jacobian(self, x: np.ndarray) -> np.ndarray:
        # (..., m, n) also when n == 1 (the kernel then drops the last axis)
        kernel, problem = self.kernels.jacobian, self.local.problem
        jac = kernel(x)
        return jac.reshape(jac.shape[: jac.ndim - len(kernel.shape)] + (problem.m, problem.n))

    def _residual(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = np.linalg.norm(self.kernels.P(x) - y, axis=-1)
        return np.where(np.isnan(r), np.inf, r)

    def _newton(self, x: np.ndarray, y: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """One Gauss–Newton step ``x + a J⁺ (y − P(x))`` per sample, with the first of the
        step lengths ``steps`` that lowers ``|P(x) − y|``; samples that none lowers stay put.
        """
        finite = np.isfinite(x).all(axis=-1, keepdims=True)
        safe = np.where(finite, x, 0.0)
        with np.errstate(all="ignore"):
            jac = self._jacobian(safe)
            jac = np.where(np.isfinite(jac), jac, 0.0)
            r = np.where(finite, y - self.kernels.P(safe), 0.0)
            r = np.where(np.isfinite(r), r, 0.0)
            d = (np.linalg.pinv(jac) @ r[..., None])[..., 0]
            trials = safe + steps.reshape((-1,) + (1,) * x.ndim) * d
        better = self._residual(trials, y) < self._residual(safe, y)
        pick = np.argmax(better, axis=0)
        best = np.take_along_axis(trials, pick[None, ..., None], axis=0)[0]
        return np.where(better.any(axis=0)[..., None] & finite, best, x)

    def _closed_form(self, y: np.ndarray, x0: np.ndarray, tol: float) -> tuple[np.ndarray, ...]:
        cands = np.stack([np.broadcast_to(k(y), x0.shape) for k in self.branches])
        if self.periods is not None:
            period = self.periods(y)
            with np.errstate(all="ignore"):
                k = np.round((x0 - cands) / period)
                k = np.where(np.isfinite(k) & (period != 0), k, 0.0)
                cands = cands + k * period
        yb = np.broadcast_to(y, cands.shape[:-1] + y.shape[-1:])
        cands = self._newton(cands, yb, np.ones(1))  # polish away cancellation error
        valid = self._valid(cands, yb, tol)
        with np.errstate(all="ignore"):
            dist = np.sum((cands - x0) ** 2, axis=-1)
        dist = np.where(valid, np.where(np.isnan(dist), np.finfo(float).max, dist), np.inf)
        pick = np.argmin(dist, axis=0)
        x = np.take_along_axis(cands, pick[None, ..., None], axis=0)[0]
        return x, valid.any(axis=0)

    def _numeric(self, y: np.ndarray, x0: np.ndarray, tol: float) -> tuple[np.ndarray, ...]:
        x = np.where(np.isfinite(x0), x0, 0.0)
        steps = 0.5 ** np.arange(12)
        for _ in range(100):
            ok = self._valid(x, y, tol)
            moved = np.where(ok[..., None], x, self._newton(x, y, steps))
            if ok.all() or np.array_equal(moved, x):
                break
            x = moved
        ok = self._valid(x, y, tol)
        for i in np.flatnonzero(~ok):  # only the samples Gauss-Newton left unsolved
            x[i], ok[i] = self._retry(y[i], x0[i], tol)
        return x, ok

    def _retry(self, y: np.ndarray, x0: np.ndarray, tol: float) -> tuple[np.ndarray, bool]:
        """``least_squares`` from ``x0``, then from a fixed spread of starts around it; the
        solution nearest to ``x0`` among those found.
        """
        start = np.where(np.isfinite(x0), x0, 0.0)
        x, ok = self._least_squares(y, start, tol)
        if ok:
            return x, True
        spread = np.random.default_rng(0).standard_normal((8, start.size))
        spread *= np.repeat([0.3, 1.0, 3.0, 10.0], 2)[:, None] * (1 + np.abs(start))
        found = [x for x, ok in (self._least_squares(y, start + d, tol) for d in spread) if ok]
        if not found:
            return start, False
        return min(found, key=lambda z: float(np.sum((z - start) ** 2))), True

    def _least_squares(self, y: np.ndarray, start: np.ndarray, tol: float) -> tuple[Any, bool]:
        P = self.kernels.P
        try:
            fit = least_squares(
                lambda z: P(z) - y, start, jac=self._jacobian, xtol=1e-15, ftol=1e-15, gtol=1e-15
            )
        except (ValueError, np.linalg.LinAlgError):
            return start, False
        return fit.x, bool(self._valid(fit.x, y, tol))

    def _ig(self, y: np.ndarray, x0: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            jac, r = self._jacobian(x0), y - self.kernels.P(x0)
            good = np.isfinite(jac).all(axis=(-2, -1)) & np.isfinite(r).all(axis=-1)
            jac, r = np.where(good[..., None, None], jac, 0.0), np.where(good[..., None], r, 0.0)
            step = (np.linalg.pinv(jac) @ r[..., None])[..., 0]
        return np.where(good[..., None], x0 + step, np.nan)


_CACHE: weakref.WeakKeyDictionary[LocalInverse, InverseEvaluator] = weakref.WeakKeyDictionary()


def compile_inverse(local: LocalInverse) -> InverseEvaluator:
    """Compile (once per local inverse, cached) the kernels that evaluate it.

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> evaluator = compile_inverse(Problem.from_strings("x", "x**3").local_inverse())
    >>> evaluator.inv([[-8.0], [27.0]], [[0.0], [0.0]]).round(12)
    array([[-2.],
           [ 3.]])
    """
    cached = _CACHE.get(local)
    if cached is not None:
        return cached
    problem = local.problem
    ys, params = [("y", problem.output_symbols)], problem.params
    branches = tuple(
        compile_kernel(f"branch{i}", list(b.solution), ys, params, f"Branch {i} of P^-1(y).")
        for i, b in enumerate(local.branches)
    )
    periods = None
    if local.branches and any(t is not None for t in local.branches[0].period):
        exprs = [0 if t is None else t for t in local.branches[0].period]
        periods = compile_kernel("periods", exprs, ys, params, "Periods per input (0: none).")
    evaluator = InverseEvaluator(local, branches, periods, problem.compile())
    _CACHE[local] = evaluator
    return evaluator
