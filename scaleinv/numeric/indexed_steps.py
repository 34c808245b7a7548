"""The update rules on an indexed problem, solved with its structure.

``compile_indexed_rule(problem, rule)`` gives the :class:`~scaleinv.numeric.compiled.CompiledRule`
:func:`scaleinv.minimize` runs, on flat points ``(..., n)`` (field-major, see
:mod:`scaleinv.symbolic.indexed`). Samples are stepped a chunk at a time
(:data:`~scaleinv.numeric.indexed_kernels.CHUNK_POINTS` grid points), so the working memory is
linear in the grid and bounded in the batch:

* GD: ``Δx = −η Jᵀ(P − y*)``;
* Newton: ``H Δx = −η ∇L`` with H assembled from the point Hessians;
* IG: ``J Δx = Δy``, ``Δy = −η (P − y*)`` (the Newton step of ``½|y − y*|²`` in y); J square;
* PG: ``Δx = P⁻¹(y + Δy; x) − x``: where each output reads only its own point, the closed-form
  local inverse at every point (:mod:`scaleinv.numeric.indexed_pointwise`); otherwise (or with
  ``inverse="numeric"``) solved numerically — Newton's method on ``P(x') = y + Δy`` from ``x``
  with the structured J and backtracking on ``|P(x') − (y + Δy)|``; a sample that does not
  converge ends ``not_found`` (or takes the IG step with ``fallback="ig"``).

One field on a 1-D grid (periodic or dirichlet) solves with LAPACK: H by its band Cholesky
(band LU where H is not positive definite), J by its band LU; periodic, the corners by a Schur
complement on the first unknowns; anything else with SciPy's sparse LU on the static
pattern (:mod:`scaleinv.numeric.indexed_solve`), from
:data:`~scaleinv.numeric.indexed_cg.CG_POINTS` unknowns on with matrix-free CG
(:mod:`scaleinv.numeric.indexed_cg`; the LU for the samples it does not solve). A singular
matrix gives ``singular``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from scaleinv.errors import RuleError
from scaleinv.numeric import runtime
from scaleinv.numeric.compiled import CompiledRule, stateless
from scaleinv.numeric.engines import choose_cg_engine
from scaleinv.numeric.indexed_cg import (
    CG_POINTS,
    cg_solve,
    gradient_and_hessian_operator,
    hessian_operator,
    minres_solve,
    normal_operator,
    solve_cg,
)
from scaleinv.numeric.indexed_fused import FusedKernel
from scaleinv.numeric.indexed_kernels import CHUNK_POINTS, IndexedKernels, compile_indexed
from scaleinv.numeric.indexed_pointwise import pointwise_inverse
from scaleinv.numeric.indexed_solve import band_solve, cholesky_band_solve, sparse_lu_solve
from scaleinv.numeric.inverse import numeric_inverse_note
from scaleinv.numeric.rules import GD, IG, PG, Newton, Rule, _skip_failed
from scaleinv.symbolic import Problem
from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["compile_indexed_rule", "flat_points", "indexed_inverse_note", "numeric_inverse"]
__all__ += ["inverse_note", "newton_route"]
__all__ += ["solve_hessian", "solve_jacobian", "INDEXED_RULES", "PG_ITERATIONS", "PG_TOLERANCE"]

#: The rules an indexed problem runs.
INDEXED_RULES = ("gd", "newton", "ig", "pg")
#: Newton iterations of PG's numeric local inverse, and its relative residual tolerance.
PG_ITERATIONS = 50
PG_TOLERANCE = 1e-12

#: A rule's step on a chunk of flat samples: ``one(kernels, f, eta, out)`` writes ``Δx`` into
#: ``out`` (the chunk's rows of the whole step: no copy) and returns the statuses.
Step = Callable[[IndexedKernels, np.ndarray, float, np.ndarray], np.ndarray]


def compile_indexed_rule(
    problem: IndexedProblem, rule: Rule, engine: str | None = None
) -> CompiledRule:
    """The batched step of ``rule`` on ``problem`` (see the module docstring); ``engine``:
    what runs Newton's matrix-free CG (:func:`solve_hessian`)."""
    kernels: IndexedKernels = compile_indexed(problem)
    eta = float(getattr(rule, "eta", 1.0))
    steps: dict[type, Step] = {
        GD: _gd,
        Newton: partial(_newton, engine=engine),
        IG: _ig,
    }
    if isinstance(rule, PG):
        fallback = rule.fallback == "ig"
        numeric = rule.inverse == "numeric"
        _require_square(problem, rule.name)

        def pg(k: IndexedKernels, f: np.ndarray, eta: float, out: np.ndarray) -> np.ndarray:
            return _pg(k, f, eta, out, fallback, numeric)

        return _skip_failed(stateless(_chunked(kernels, pg, eta)))
    if type(rule) not in steps:
        raise RuleError(
            f"{rule.name} does not run on indexed problems; they run {', '.join(INDEXED_RULES)}"
        )
    if isinstance(rule, IG):
        _require_square(problem, rule.name)
    _step_kernel(kernels, rule)  # compiled now
    return stateless(_chunked(kernels, steps[type(rule)], eta))


def _step_kernel(k: IndexedKernels, rule: Rule) -> FusedKernel | None:
    """The fused point kernel of ``rule``'s band route or of Newton's matrix-free route
    (compiled on this call: with the rule, setup, not at its first step); None where the
    rule takes neither."""
    if isinstance(rule, Newton) and _band_fits(k, _hessian_reach(k)):
        return k.point_newton
    if isinstance(rule, Newton) and _curved_route(k):
        return k.point_curved
    if isinstance(rule, IG) and _band_fits(k, _jacobian_reach(k)):
        return k.point_ig
    return None


def indexed_inverse_note(problem: IndexedProblem, rule: Rule) -> str | None:
    """Why ``rule`` solves ``P(x) = y`` numerically on ``problem``; None if it does not (not
    PG, or PG with a closed form at each point)."""
    if not isinstance(rule, PG):
        return None
    if rule.inverse != "numeric" and pointwise_inverse(problem) is not None:
        return None
    return "on an indexed problem PG solves P(x) = y by Newton's method with the structured J"


def inverse_note(problem: Problem | IndexedProblem, rule: Rule) -> str | None:
    """Why ``rule`` solves ``P(x) = y`` numerically on a problem of either kind; None if not."""
    if isinstance(problem, IndexedProblem):
        return indexed_inverse_note(problem, rule)
    return numeric_inverse_note(problem, rule)


def flat_points(problem: IndexedProblem, x: Any) -> np.ndarray:
    """Start points as flat ``(..., n)`` arrays: ``x`` flat already, or shaped
    ``(..., fields, *grid)`` (one field: also ``(..., *grid)``)."""
    array = np.asarray(x)
    if array.ndim and array.shape[-1] == problem.n:  # flat (one field on a 1-D grid: always)
        return array
    grid = (len(problem.fields),) + problem.shape
    for shape in (grid, problem.shape if len(problem.fields) == 1 else None):
        if shape and array.ndim >= len(shape) and array.shape[array.ndim - len(shape) :] == shape:
            return array.reshape(array.shape[: array.ndim - len(shape)] + (problem.n,))
    return array


def _require_square(problem: IndexedProblem, rule: str) -> None:
    if problem.fields_out != len(problem.fields):
        raise RuleError(
            f"{rule} inverts J: it needs as many output fields as input fields, got "
            f"{problem.fields_out} and {len(problem.fields)}"
        )


def _chunked(
    kernels: IndexedKernels, one: Step, eta: float
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = kernels.problem.n
        flat = x.reshape((-1, n))
        dx = np.empty(flat.shape)
        status = np.empty(len(flat), dtype=np.int8)
        chunk = max(1, CHUNK_POINTS // kernels.problem.points)
        for start in range(0, len(flat), chunk):
            rows = slice(start, start + chunk)
            status[rows] = one(kernels, flat[rows], eta, dx[rows])
        return dx.reshape(x.shape), status.reshape(x.shape[:-1])

    return step


def _residual_and_gradient(k: IndexedKernels, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = k.point("point_P", f).reshape((len(f), -1)) - k.target
    return r, k.gradient_from(k.point("point_J", f), r)


def _gd(k: IndexedKernels, f: np.ndarray, eta: float, out: np.ndarray) -> np.ndarray:
    _, g = _residual_and_gradient(k, f)
    np.multiply(g, -eta, out=out)
    return np.zeros(len(f), dtype=np.int8)


def _newton(
    k: IndexedKernels, f: np.ndarray, eta: float, out: np.ndarray, engine: str | None = None
) -> np.ndarray:
    if _band_fits(k, _hessian_reach(k)):  # −η∇L and H in one pass over the grid
        g, ab, (lower, _) = k.gradient_and_hessian_band(f, -eta)
        return _solve_hessian_band(k, f, g, ab, lower, out)[1]
    if _curved_route(k):  # ∇L and H·v from one point kernel
        g, operator = gradient_and_hessian_operator(k, f)
        dx, status = solve_hessian(k, f, g, operator=operator, engine=engine)
    else:
        _, g = _residual_and_gradient(k, f)
        dx, status = solve_hessian(k, f, g, engine=engine)
    np.multiply(dx, -eta, out=out)
    return status


def _ig(k: IndexedKernels, f: np.ndarray, eta: float, out: np.ndarray) -> np.ndarray:
    if _band_fits(k, _jacobian_reach(k)):  # P − y* and J in one pass over the grid
        r, ab, widths = k.residual_and_jacobian_band(f)
        return _solve_jacobian_band(k, f, -eta * r, ab, widths, out)[1]
    r = k.point("point_P", f).reshape((len(f), -1)) - k.target
    out[...], status = solve_jacobian(k, f, -eta * r)
    return status


def newton_route(problem: IndexedProblem, samples: int, engine: str | None = None) -> str:
    """How Newton's step solves ``H Δx = −η ∇L`` on ``problem`` for a batch of ``samples``, in
    a few words (``engine``: CG's, as :func:`solve_hessian` takes it)."""
    k = compile_indexed(problem)
    if _band_fits(k, _hessian_reach(k)):
        return "banded H: LAPACK's band Cholesky"
    if not _takes_cg(k, None):
        return "SciPy's sparse LU"
    batch = min(samples, max(1, CHUNK_POINTS // problem.points))  # as _chunked calls it
    chosen, why = choose_cg_engine(problem.n, batch, engine)
    route = f"matrix-free CG on {chosen} ({why})"
    if chosen == "jax":
        route += "; a step whose preconditioner is spectral stays on NumPy"
    return route


def _curved_route(k: IndexedKernels) -> bool:
    """Does Newton's step take CG with H·v = Jᵀ(J·v) + C·v (a grid of shifts)?"""
    return k.shifts and _takes_cg(k, None)


def solve_hessian(
    k: IndexedKernels,
    f: np.ndarray,
    rhs: np.ndarray,
    cg_points: int | None = None,
    operator: tuple[Callable, np.ndarray, Callable] | None = None,
    engine: str | None = None,
) -> tuple:
    """``H⁻¹ rhs`` at flat samples ``f``, with ``(x, status)``; ``operator``: CG's
    :func:`~scaleinv.numeric.indexed_cg.hessian_operator` at ``f`` where already built;
    ``engine``: what runs CG (:func:`~scaleinv.numeric.indexed_cg.solve_cg`; auto: JAX where
    installed and the CG large, :func:`~scaleinv.numeric.engines.choose_cg_engine`).

    From ``cg_points`` unknowns on by matrix-free CG (:mod:`scaleinv.numeric.indexed_cg`); by
    default :data:`~scaleinv.numeric.indexed_cg.CG_POINTS` where H goes to the sparse LU, never
    where it is banded (LAPACK's band solves are faster at every n: at 10⁶ points 0.2 s
    against CG's 0.7 s per sample, measured with the band LU before the band Cholesky). The
    samples CG does not solve (H indefinite, no convergence) and smaller problems take the
    direct route."""
    if _takes_cg(k, cg_points):
        times, diagonal, precondition = operator or hessian_operator(k, f)
        x, converged = solve_cg(times, diagonal, precondition, rhs, engine)
        broken = np.flatnonzero(~converged)
        if len(broken):  # H indefinite, or CG stalled: MINRES, then the direct route
            x[broken], converged[broken] = minres_solve(k, f[broken], rhs[broken])
        return _direct_where_cg_failed(solve_hessian, k, f, rhs, x, converged)
    if _band_fits(k, _hessian_reach(k)):
        ab, (lower, _) = k.hessian_band(f)
        return _solve_hessian_band(k, f, rhs, ab, lower)
    values = k.hessian_pattern.values(k.point("point_W", f))
    return sparse_lu_solve(k.hessian_pattern, values, rhs, symmetric=True)


def _hessian_reach(k: IndexedKernels) -> int | None:
    """How far H reaches off its diagonal (twice the stencil's width); None: not banded."""
    return 2 * k.problem.width[0] if k.banded else None


def _solve_hessian_band(
    k: IndexedKernels,
    f: np.ndarray,
    rhs: np.ndarray,
    ab: np.ndarray,
    lower: int,
    out: np.ndarray | None = None,
) -> tuple:
    """``H⁻¹ rhs`` (into ``out`` if given) from H's lower band ``ab`` at ``f`` by the band
    Cholesky; where H is not positive definite by its band LU (H assembled again in general
    storage)."""
    x, status, indefinite = cholesky_band_solve(ab, lower, rhs, k.periodic, out)
    redo = np.flatnonzero(indefinite)
    if len(redo):
        ab, widths = k.hessian_band(f[redo], symmetric=False)
        x[redo], status[redo] = band_solve(ab, widths, rhs[redo], k.periodic)
    return _retry_sparse(k, f, rhs, x, status, "point_W", "hessian_pattern")


def solve_jacobian(
    k: IndexedKernels, f: np.ndarray, rhs: np.ndarray, cg_points: int | None = None
) -> tuple:
    """``J⁻¹ rhs`` at flat samples ``f`` (J square), with ``(x, status)``; the route as in
    :func:`solve_hessian`, CG on the normal equations ``JᵀJ x = Jᵀ rhs`` (a sample counts as
    solved when also ``|J x − rhs| ≤ 10⁻¹⁰ |rhs|``)."""
    if _takes_cg(k, cg_points):
        times, diagonal, precondition, forward, backward = normal_operator(k, f)
        x, converged = cg_solve(times, diagonal, precondition, backward(rhs))
        with np.errstate(all="ignore"):
            error = np.linalg.norm(forward(x) - rhs, axis=1)
        converged &= error <= 1e-10 * np.linalg.norm(rhs, axis=1)
        return _direct_where_cg_failed(solve_jacobian, k, f, rhs, x, converged)
    if _band_fits(k, _jacobian_reach(k)):
        ab, widths = k.jacobian_band(f)
        return _solve_jacobian_band(k, f, rhs, ab, widths)
    values = k.jacobian_pattern.values(k.point("point_J", f))
    return sparse_lu_solve(k.jacobian_pattern, values, rhs, symmetric=False)


def _jacobian_reach(k: IndexedKernels) -> int | None:
    """How far J reaches off its diagonal (the stencil's width); None: not banded."""
    return k.problem.width[0] if k.banded else None


def _solve_jacobian_band(
    k: IndexedKernels,
    f: np.ndarray,
    rhs: np.ndarray,
    ab: np.ndarray,
    widths: tuple[int, int],
    out: np.ndarray | None = None,
) -> tuple:
    """``J⁻¹ rhs`` (into ``out`` if given) from J's band ``ab`` at ``f`` by the band LU."""
    x, status = band_solve(ab, widths, rhs, k.periodic, out)
    return _retry_sparse(k, f, rhs, x, status, "point_J", "jacobian_pattern")


def _band_fits(k: IndexedKernels, reach: int | None) -> bool:
    """Does a banded matrix reaching ``reach`` points off its diagonal (None: not banded) go
    to LAPACK? A periodic one needs more than ``2·reach`` points (its corners are eliminated
    through the first ``reach`` unknowns); smaller ones take the sparse LU."""
    return reach is not None and (not k.periodic or k.problem.n > 2 * reach)


def _takes_cg(k: IndexedKernels, cg_points: int | None) -> bool:
    """Whether a solve goes to CG: from ``cg_points`` unknowns if given, else from
    :data:`~scaleinv.numeric.indexed_cg.CG_POINTS` where the matrix is not banded."""
    threshold = cg_points if cg_points is not None else (None if k.banded else CG_POINTS)
    return threshold is not None and k.problem.n >= threshold


def _direct_where_cg_failed(
    solve: Callable[..., tuple],
    k: IndexedKernels,
    f: np.ndarray,
    rhs: np.ndarray,
    x: np.ndarray,
    converged: np.ndarray,
) -> tuple:
    """``(x, status)``: CG's solutions, the samples it did not solve solved again by ``solve``
    on the direct route (a threshold above the problem's size)."""
    status = np.full(len(f), runtime.RUNNING, dtype=np.int8)
    failed = np.flatnonzero(~converged)
    if len(failed):
        x[failed], status[failed] = solve(k, f[failed], rhs[failed], k.problem.n + 1)
    return x, status


def _retry_sparse(
    k: IndexedKernels,
    f: np.ndarray,
    rhs: np.ndarray,
    x: np.ndarray,
    status: np.ndarray,
    kernel: str,
    pattern: str,
) -> tuple:
    """A periodic matrix whose band part is singular (its corners make it regular, e.g. a
    pure shift) is solved again with the sparse LU."""
    failed = np.flatnonzero(status != runtime.RUNNING)
    if k.periodic and len(failed):
        placement = getattr(k, pattern)
        values = placement.values(k.point(kernel, f[failed]))
        x[failed], status[failed] = sparse_lu_solve(
            placement, values, rhs[failed], symmetric=pattern == "hessian_pattern"
        )
    return x, status


def _pg(
    k: IndexedKernels, f: np.ndarray, eta: float, out: np.ndarray, fallback: bool, numeric: bool
) -> np.ndarray:
    y = k.point("point_P", f).reshape((len(f), -1))
    dy = -eta * (y - k.target)
    goal = y + dy
    closed = None if numeric else pointwise_inverse(k.problem)
    x, status = (closed or partial(numeric_inverse, k))(goal, f)
    out[...] = np.where((status == runtime.RUNNING)[:, None], x - f, 0.0)
    if fallback:
        failed = np.flatnonzero(status != runtime.RUNNING)
        if len(failed):
            out[failed], status[failed] = solve_jacobian(k, f[failed], dy[failed])
    return status


def numeric_inverse(
    k: IndexedKernels, goal: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``P(x) = goal`` per sample by Newton's method from ``start`` (structured J
    solves, step halved while the residual does not fall); ``(x, status)`` with status
    ``not_found`` where it did not converge to :data:`PG_TOLERANCE`."""
    x = start.copy()
    scale = 1.0 + np.abs(goal).max(axis=-1)
    residual = k.P(x) - goal
    size = np.abs(residual).max(axis=-1)
    done = size <= PG_TOLERANCE * scale
    for _ in range(PG_ITERATIONS):
        active = np.flatnonzero(~done)
        if not len(active):
            break
        step, status = solve_jacobian(k, x[active], -residual[active])
        stuck = status != runtime.RUNNING
        length = np.ones(len(active))
        for _ in range(30):  # backtrack: the residual must fall
            trial = x[active] + length[:, None] * step
            trial_residual = k.P(trial) - goal[active]
            trial_size = np.abs(trial_residual).max(axis=-1)
            better = (trial_size < size[active]) | stuck
            if better.all():
                break
            length = np.where(better, length, 0.5 * length)
        ok = better & ~stuck
        chosen = active[ok]
        x[chosen], residual[chosen], size[chosen] = trial[ok], trial_residual[ok], trial_size[ok]
        done[chosen] = size[chosen] <= PG_TOLERANCE * scale[chosen]
        done[active[~ok]] = True  # no progress: give up on these samples
    found = np.isfinite(size) & (size <= PG_TOLERANCE * scale)
    status = np.where(found, runtime.RUNNING, runtime.NOT_FOUND).astype(np.int8)
    return np.where(found[:, None], x, start), status
