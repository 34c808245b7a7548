"""Evaluate a local inverse ``P⁻¹(y; x₀)`` in batches: nearest valid branch, or numerically.

Closed-form branches (from :func:`scaleinv.symbolic.inverse.local_inverse`) become one
generated NumPy-only function, ``local_inverse(y, x0, **params) -> (x, ok)`` — the source that
:func:`scaleinv.export` writes, so in-process and exported inverses are one code path. It
evaluates every branch at once, shifts periodic inputs by the whole number of periods that
brings them nearest to ``x₀``, polishes each candidate by one Gauss–Newton step (kept only
where it lowers the residual), counts a candidate only where it is finite and
``|P(x) − y| <= TOL (1 + |y|)``, and returns the valid candidate nearest to ``x₀``. Without a
closed form, a batched damped Gauss–Newton iteration warm-started at ``x₀`` solves
``P(x) = y``, and ``scipy.optimize.least_squares`` retries only the samples it leaves unsolved.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaleinv.errors import NoInverseError, ProblemError
from scaleinv.numeric.kernels import ProblemKernels, kernel_source
from scaleinv.symbolic import Problem
from scaleinv.symbolic.inverse import LocalInverse

__all__ = ["InverseEvaluator", "compile_inverse"]

FALLBACKS = ("raise", "keep", "ig")
#: A solution must satisfy ``|P(x) − y| <= TOL (1 + |y|)`` componentwise.
TOL = 1e-8

_TEMPLATE = '''\
def local_inverse(y, x0, /, **params):
    """P^-1(y; x0): the valid closed-form branch nearest to x0, batched. Returns (x, ok)."""
    y = numpy.asarray(y, dtype=numpy.float64)
    x0 = numpy.asarray(x0, dtype=numpy.float64)
    batch = numpy.broadcast_shapes(y.shape[:-1], x0.shape[:-1])
    y, x0 = numpy.broadcast_to(y, batch + ({m},)), numpy.broadcast_to(x0, batch + ({n},))
    with numpy.errstate(all="ignore"):
        cands = numpy.stack([numpy.broadcast_to(b(y, **params), x0.shape) for b in ({names},)])
{periodic}\
        r = y - P(cands, **params)
        jac = jacobian(cands, **params).reshape(cands.shape[:-1] + ({m}, {n}))
        good = numpy.isfinite(jac).all(axis=(-2, -1)) & numpy.isfinite(r).all(axis=-1)
        jac = numpy.where(good[..., None, None], jac, 0.0)
        step = (numpy.linalg.pinv(jac) @ numpy.where(good[..., None], r, 0.0)[..., None])[..., 0]
        polished = cands + step
        r_polished = y - P(polished, **params)
        lower = numpy.linalg.norm(r_polished, axis=-1) < numpy.linalg.norm(r, axis=-1)
        cands = numpy.where(lower[..., None], polished, cands)
        err = numpy.abs(numpy.where(lower[..., None], r_polished, r))
        small = (err <= {tol!r} * (1 + numpy.abs(y))).all(axis=-1)
        valid = numpy.isfinite(cands).all(axis=-1) & small
        dist = numpy.sum((cands - x0) ** 2, axis=-1)
        dist = numpy.where(numpy.isnan(dist), numpy.finfo(numpy.float64).max, dist)
        dist = numpy.where(valid, dist, numpy.inf)
    pick = numpy.argmin(dist, axis=0)
    x = numpy.take_along_axis(cands, pick[None, ..., None], axis=0)[0]
    ok = valid.any(axis=0)
    return numpy.where(ok[..., None], x, x0), ok
'''
_PERIODIC = """\
        period = inverse_periods(y, **params)
        k = numpy.round((x0 - cands) / period)
        cands = cands + numpy.where(numpy.isfinite(k) & (period != 0), k, 0.0) * period
"""


@dataclass(frozen=True, eq=False)
class InverseEvaluator:
    """The compiled local inverse of one :class:`~scaleinv.symbolic.inverse.LocalInverse`.

    Attributes
    ----------
    problem : Problem
        Whose ``P`` is inverted.
    numeric : bool
        True when there is no closed form (``LocalInverse.numeric``): solve numerically.
    source : str
        NumPy-only source of the branch kernels and of ``local_inverse(y, x0, **params)``
        (empty when ``numeric``); it calls the problem's kernels ``P`` and ``jacobian``.
    closed_form : callable or None
        The compiled ``local_inverse`` of :attr:`source`.
    kernels : ProblemKernels
        The problem's kernels.
    """

    problem: Problem
    numeric: bool
    source: str
    closed_form: Any
    kernels: ProblemKernels

    def solve(self, y: Any, x0: Any, /, **params: Any) -> tuple[np.ndarray, ...]:
        """Solve ``P(x) = y`` nearest to ``x0``; never raises for a missing solution.

        Parameters
        ----------
        y : array_like, shape (..., m)
        x0 : array_like, shape (..., n)
            Leading axes of ``y``, ``x0`` and array params broadcast.
        **params
            Overrides of the problem's params.

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
        if not self.numeric:
            x, ok = self.closed_form(y, x0, **params)
            return x, ok, np.zeros_like(ok)
        batch, (m, n) = x0.shape[:-1], (y.shape[-1], x0.shape[-1])
        flat = {
            k: np.broadcast_to(np.asarray(v, float), batch).reshape(-1) for k, v in params.items()
        }
        x, ok = self._numeric(y.reshape(-1, m), x0.reshape(-1, n), flat)
        return x.reshape(batch + (n,)), ok.reshape(batch), ok.reshape(batch).copy()

    def inv(self, y: Any, x0: Any, /, *, fallback: str = "raise", **params: Any) -> np.ndarray:
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
        x, ok, _ = self.solve(y, x0, **params)
        if ok.all():
            return x
        y, x0 = self._broadcast(y, x0)
        bad = ~ok
        if fallback == "ig":
            x = np.where(bad[..., None], self._ig(y, x0, params), x)
            bad = bad & ~np.isfinite(x).all(axis=-1)
        if fallback == "keep" or not bad.any():
            return x
        raise NoInverseError(int(bad.sum()), int(bad.size), tuple(float(v) for v in y[bad][0]))

    # -- internals ---------------------------------------------------------------------------
    def _broadcast(self, y: Any, x0: Any) -> tuple[np.ndarray, np.ndarray]:
        problem = self.problem
        y, x0 = np.asarray(y, dtype=np.float64), np.asarray(x0, dtype=np.float64)
        if y.ndim == 0 or y.shape[-1] != problem.m or x0.ndim == 0 or x0.shape[-1] != problem.n:
            raise ProblemError(
                f"inverse needs y of shape (..., {problem.m}) and x0 of shape (..., "
                f"{problem.n}), got {y.shape} and {x0.shape}"
            )
        batch = np.broadcast_shapes(y.shape[:-1], x0.shape[:-1])
        return np.broadcast_to(y, batch + y.shape[-1:]), np.broadcast_to(x0, batch + x0.shape[-1:])

    def _jacobian(self, x: np.ndarray, params: dict) -> np.ndarray:
        # (..., m, n) also when n == 1 (the kernel then drops the last axis)
        jac = self.kernels.jacobian(x, **params)
        lead = jac.ndim - len(self.kernels.jacobian.shape)
        return jac.reshape(jac.shape[:lead] + (self.problem.m, self.problem.n))

    def _valid(self, x: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
        with np.errstate(all="ignore"):
            err = np.abs(self.kernels.P(x, **params) - y)
            fine = (err <= TOL * (1 + np.abs(y))).all(axis=-1)
            return np.isfinite(x).all(axis=-1) & fine

    def _residual(self, x: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = np.linalg.norm(self.kernels.P(x, **params) - y, axis=-1)
        return np.where(np.isnan(r), np.inf, r)

    def _newton(self, x: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
        """One damped Gauss–Newton step ``x + a J⁺ (y − P(x))`` per sample, with the longest
        ``a`` in ``1, 1/2, …, 1/2048`` that lowers ``|P(x) − y|``; others stay put.
        """
        steps = 0.5 ** np.arange(12)
        with np.errstate(all="ignore"):
            jac, r = self._jacobian(x, params), y - self.kernels.P(x, **params)
            good = np.isfinite(jac).all(axis=(-2, -1)) & np.isfinite(r).all(axis=-1)
            jac, r = np.where(good[..., None, None], jac, 0.0), np.where(good[..., None], r, 0.0)
            d = (np.linalg.pinv(jac) @ r[..., None])[..., 0]
            trials = x + steps.reshape((-1,) + (1,) * x.ndim) * d
        better = self._residual(trials, y, params) < self._residual(x, y, params)
        best = np.take_along_axis(trials, np.argmax(better, axis=0)[None, ..., None], axis=0)[0]
        return np.where((better.any(axis=0) & good)[..., None], best, x)

    def _numeric(self, y: np.ndarray, x0: np.ndarray, params: dict) -> tuple[np.ndarray, ...]:
        """Batched Gauss–Newton from ``x0`` (rows are samples), then per-sample retries."""
        x = np.where(np.isfinite(x0), x0, 0.0)
        for _ in range(100):
            ok = self._valid(x, y, params)
            moved = np.where(ok[:, None], x, self._newton(x, y, params))
            if ok.all() or np.array_equal(moved, x):
                break
            x = moved
        ok = self._valid(x, y, params)
        for i in np.flatnonzero(~ok):  # only the samples Gauss-Newton left unsolved
            x[i], ok[i] = self._retry(y[i], x0[i], {k: v[i] for k, v in params.items()})
        return np.where(ok[:, None], x, x0), ok

    def _retry(self, y: np.ndarray, x0: np.ndarray, params: dict) -> tuple[np.ndarray, bool]:
        """``least_squares`` from ``x0``, then from a fixed spread of starts around it; the
        solution nearest to ``x0`` among those found.
        """
        start = np.where(np.isfinite(x0), x0, 0.0)
        x, ok = self._least_squares(y, start, params)
        if ok:
            return x, True
        spread = np.random.default_rng(0).standard_normal((8, start.size))
        spread *= np.repeat([0.3, 1.0, 3.0, 10.0], 2)[:, None] * (1 + np.abs(start))
        tries = (self._least_squares(y, start + d, params) for d in spread)
        found = [x for x, ok in tries if ok]
        if not found:
            return start, False
        return min(found, key=lambda z: float(np.sum((z - start) ** 2))), True

    def _least_squares(self, y: np.ndarray, start: np.ndarray, params: dict) -> tuple[Any, bool]:
        def residual(z: np.ndarray) -> np.ndarray:
            return self.kernels.P(z, **params) - y

        from scipy.optimize import least_squares  # 0.3 s to import: only when used

        try:
            fit = least_squares(
                residual, start, jac=lambda z: self._jacobian(z, params), xtol=1e-15, ftol=1e-15
            )
        except (ValueError, np.linalg.LinAlgError):
            return start, False
        return fit.x, bool(self._valid(fit.x, y, params))

    def _ig(self, y: np.ndarray, x0: np.ndarray, params: dict) -> np.ndarray:
        with np.errstate(all="ignore"):
            jac, r = self._jacobian(x0, params), y - self.kernels.P(x0, **params)
            good = np.isfinite(jac).all(axis=(-2, -1)) & np.isfinite(r).all(axis=-1)
            jac, r = np.where(good[..., None, None], jac, 0.0), np.where(good[..., None], r, 0.0)
            step = (np.linalg.pinv(jac) @ r[..., None])[..., 0]
        return np.where(good[..., None], x0 + step, np.nan)


_CACHE: weakref.WeakKeyDictionary[LocalInverse, InverseEvaluator] = weakref.WeakKeyDictionary()


def compile_inverse(local: LocalInverse) -> InverseEvaluator:
    """Compile (once per local inverse, cached) the evaluator of ``P⁻¹(y; x0)``.

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
    cached = _CACHE.get(local)
    if cached is not None:
        return cached
    problem, kernels = local.problem, local.problem.compile()
    source, closed_form = "", None
    if not local.numeric and local.branches:
        source = _closed_form_source(local)
        namespace: dict[str, Any] = {"numpy": np, "P": kernels.P.func}
        namespace["jacobian"] = kernels.jacobian.func
        code = compile(source, f"<scaleinv local inverse of {problem.outputs}>", "exec")
        exec(code, namespace)  # noqa: S102  (scaleinv's own kernels and template, no user text)
        closed_form = namespace["local_inverse"]
    # no reference back to `local`, so the cache entry dies with it
    evaluator = InverseEvaluator(problem, closed_form is None, source, closed_form, kernels)
    _CACHE[local] = evaluator
    return evaluator


def _closed_form_source(local: LocalInverse) -> str:
    problem = local.problem
    ys, params = [("y", problem.output_symbols)], problem.params
    parts, names = [], []
    for i, branch in enumerate(local.branches):
        doc = f"Branch {i} of P^-1(y), real where {branch.condition}."
        parts.append(kernel_source(f"inverse_branch{i}", list(branch.solution), ys, params, doc)[0])
        names.append(f"inverse_branch{i}")
    periods = local.branches[0].period
    periodic = ""
    if any(t is not None for t in periods):
        exprs = [0 if t is None else t for t in periods]
        doc = "Period of each input (0: not periodic)."
        parts.append(kernel_source("inverse_periods", exprs, ys, params, doc)[0])
        periodic = _PERIODIC
    text = _TEMPLATE.format(
        m=problem.m, n=problem.n, names=", ".join(names), periodic=periodic, tol=TOL
    )
    return "\n\n\n".join([*(part.strip() for part in parts), text.strip()]) + "\n"
