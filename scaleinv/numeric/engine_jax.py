"""The fused JAX engine of :func:`scaleinv.minimize`: the whole run as one ``jax.jit`` program.

The NumPy engine (:func:`scaleinv.numeric.runtime.iterate`) makes one NumPy call per operation
per step; for the chapter's small problems from many starts, that per-step overhead costs more
than the kernels. Here the step (the rule's exported JAX step, :func:`scaleinv.export`'s
``flavor="jax"`` module), the statuses, ``tol``, the divergence check and the recording are
traced once into one XLA program per (problem, rule, steps, record, tol given) and batch
shape: ``lax.scan`` over the recorded segments, ``lax.fori_loop`` over the steps of a segment.
It runs in float64 under ``jax.enable_x64(True)`` (a context: JAX's global setting is not
changed), on whatever device JAX runs on.

It follows :func:`~scaleinv.numeric.runtime.iterate` rule for rule, so results equal the NumPy
engine's to rounding (1e-12 per sample in the tests) with identical statuses. Where the two
must differ:

* Linear solves (Newton, IG, PG's IG fallback) use Cramer's rule where the NumPy engine does
  (``k <= 2``, far from singular), LU elsewhere, and tell singular samples apart by their
  singular values only where an LU result is not finite, as NumPy's ``solve`` does. NumPy
  decides that per call (a chunk of :data:`~scaleinv.numeric.runtime.CHUNK` samples), the
  fused engine per batch: a matrix singular to working precision but solved finitely by LU
  (condition number above ~1e15) can be ``singular`` in one engine and take a huge step in
  the other when an exactly singular sample shares its chunk in one engine only.
* HIG's cut-off ``rcond · σ_max`` takes ``σ_max`` over the batch, as NumPy does; XLA's batched
  SVD may round differently from LAPACK's (the step, ``V Σ^-β Uᵀ g``, agrees to rounding).

What it does not run (:func:`unsupported` says why, and :func:`scaleinv.minimize` falls back to
the NumPy engine, naming it in ``Trajectory.engine``): PG with the numeric local inverse (the
path solver branches on values and works on the samples still running), BFGS (SciPy, per
sample), and PG with ``fallback="ig"`` on a closed form with excluded boundaries. PG on a
closed form with excluded boundaries (and ``fallback="stop"``) runs fused; its samples that
end ``no_inverse`` are rerun by the NumPy engine, whose local inverse also tries the limits on
those boundaries (every sample of a per-sample rule is independent of the others).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scaleinv.numeric import runtime
from scaleinv.numeric.flavors.loader import load_module
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.trajectory import recorded_steps
from scaleinv.symbolic import Problem

__all__ = ["run_fused", "fused_program"]

_MODULES: weakref.WeakKeyDictionary[Problem, dict[Rule, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)
_PROGRAMS: weakref.WeakKeyDictionary[Problem, dict[tuple, Callable]] = weakref.WeakKeyDictionary()


def _cramer(a: Any, b: Any) -> tuple[Any, Any]:
    """NumPy's ``_cramer_into`` (k = 1, 2): the solution and where it is trusted."""
    if a.shape[-1] == 1:
        det = a[..., 0, 0]
        x = (b[..., 0] / det)[..., None]
        fine = jnp.abs(det) > 0
    else:
        a00, a01, a10, a11 = a[..., 0, 0], a[..., 0, 1], a[..., 1, 0], a[..., 1, 1]
        det = a00 * a11 - a01 * a10
        x = jnp.stack(
            [(a11 * b[..., 0] - a01 * b[..., 1]) / det, (a00 * b[..., 1] - a10 * b[..., 0]) / det],
            axis=-1,
        )
        # sums of entries written out: a reduction would end XLA's loop fusion
        squares = a00 * a00 + a01 * a01 + a10 * a10 + a11 * a11
        fine = squares < runtime._CRAMER_LIMIT * jnp.abs(det)
    return x, fine & _all_finite(x, -1)


def _all_finite(x: Any, axis: int) -> Any:
    """``isfinite(x).all(axis)`` for a short axis, one component at a time (fusible)."""
    parts = jnp.moveaxis(jnp.isfinite(x), axis, 0)
    out = parts[0]
    for part in parts[1:]:
        out = out & part
    return out


#: Status the fast solve gives a sample it cannot decide alone (its LU result is not finite):
#: NumPy's ``solve`` then tells the samples of the whole call apart by their singular values.
#: A run that meets it anywhere is run again with :func:`careful_solve` (rarely: singular
#: matrices).
UNSURE = 127


def _lu(a: Any, b: Any) -> Any:
    """LAPACK's ``gesv`` (LU with partial pivoting) for ``k <= 2``, written out: the solve NumPy
    gives the samples Cramer's rule does not trust (equal to rounding)."""
    if a.shape[-1] == 1:
        return b / a[..., 0]
    swap = jnp.abs(a[..., 1, 0]) > jnp.abs(a[..., 0, 0])
    p0 = jnp.where(swap[..., None], a[..., 1, :], a[..., 0, :])
    p1 = jnp.where(swap[..., None], a[..., 0, :], a[..., 1, :])
    c0 = jnp.where(swap, b[..., 1], b[..., 0])
    c1 = jnp.where(swap, b[..., 0], b[..., 1])
    lower = p1[..., 0] * (1 / p0[..., 0])
    u11 = p1[..., 1] - lower * p0[..., 1]
    x1 = (c1 - lower * c0) / u11
    return jnp.stack([(c0 - p0[..., 1] * x1) / p0[..., 0], x1], axis=-1)


def fast_solve(a: Any, b: Any) -> tuple[Any, Any]:
    """NumPy's ``solve`` without its batch-wide fallback: Cramer's rule where it is trusted
    (``k <= 2``), LU elsewhere; status :data:`UNSURE` where the LU result is not finite."""
    k = a.shape[-1]
    if k <= 2:
        x, fine = _cramer(a, b)
        x = jnp.where(fine[..., None], x, _lu(a, b))
    else:
        x = jnp.linalg.solve(a, b[..., None])[..., 0]
    return x, jnp.where(_all_finite(x, -1), runtime.RUNNING, UNSURE).astype(jnp.int8)


def careful_solve(a: Any, b: Any) -> tuple[Any, Any]:
    """:func:`scaleinv.numeric.runtime.solve` for JAX, case for case: Cramer where NumPy
    trusts it, LU for the rest, and where an LU result is not finite, every such sample told
    apart by its singular values (``solve_flagged``). ``lax.cond`` keeps the SVD off the steps
    that do not need it, but costs ~10x a step: only runs that met :data:`UNSURE` take it."""
    k = a.shape[-1]
    b = jnp.broadcast_to(b, a.shape[:-1])
    eye = jnp.eye(k)
    if k <= 2:
        x_fast, fine = _cramer(a, b)
    else:
        x_fast, fine = jnp.zeros_like(b), jnp.zeros(b.shape[:-1], dtype=bool)
    finite_a = jnp.isfinite(a).all(axis=(-2, -1))
    zero = jnp.zeros(b.shape[:-1], dtype=jnp.int8)

    def lapack(_: Any) -> tuple[Any, Any]:
        rest = ~fine
        x_lu = jnp.linalg.solve(jnp.where(rest[..., None, None], a, eye), b[..., None])[..., 0]
        x = jnp.where(fine[..., None], x_fast, x_lu)
        failed = (rest & ~jnp.isfinite(x_lu).all(-1)).any()
        return jax.lax.cond(failed, flagged, lambda _: (x, zero), None)

    def flagged(_: Any) -> tuple[Any, Any]:  # runtime.solve_flagged on the rest
        rest = ~fine
        s = jnp.linalg.svd(jnp.where(finite_a[..., None, None], a, 0.0), compute_uv=False)
        singular = finite_a & ~(s[..., -1] > s[..., 0] * k * runtime._EPS)
        regular = finite_a & ~singular
        safe = jnp.where(regular[..., None, None], a, eye)
        x_lu = jnp.linalg.solve(safe, b[..., None])[..., 0]
        x_rest = jnp.where(regular[..., None], x_lu, jnp.where(singular[..., None], 0.0, jnp.nan))
        x = jnp.where(fine[..., None], x_fast, x_rest)
        status = jnp.where(rest & singular, runtime.SINGULAR, runtime.RUNNING)
        return x, status.astype(jnp.int8)

    if k > 2:
        return lapack(None)
    return jax.lax.cond(fine.all(), lambda _: (x_fast, zero), lapack, None)


def _module(problem: Problem, rule: Rule, careful: bool) -> dict[str, Any]:
    """The exported JAX module of ``rule`` (cached), its ``solve`` the fast or careful one."""
    per_problem = _MODULES.setdefault(problem, {})
    if (rule, careful) not in per_problem:
        module = vars(load_module(problem, "jax", [rule]))
        module["solve"] = careful_solve if careful else fast_solve
        per_problem[rule, careful] = module
    return per_problem[rule, careful]


def _segments(kept: np.ndarray) -> list[tuple[int, int]]:
    """Runs ``(length, count)`` of equal gaps between the recorded steps ``kept`` (from 0)."""
    runs: list[tuple[int, int]] = []
    for gap in np.diff(np.concatenate([[0], kept])).tolist():
        if gap and runs and runs[-1][0] == gap:
            runs[-1] = (gap, runs[-1][1] + 1)
        elif gap:
            runs.append((gap, 1))
    return runs


def fused_program(
    problem: Problem, rule: Rule, steps: int, record: str, has_tol: bool, careful: bool = False
) -> Callable[..., Any]:
    """The jitted ``run(x0, tol) -> (x, loss, status, taken, unsure)`` of :func:`run_fused`
    (cached per problem, rule, steps, record, whether ``tol`` is given and the solve); ``x0``
    is ``(size, n)``, ``x`` and ``loss`` hold the recorded steps; ``unsure`` says whether the
    fast solve met a sample it could not decide (then the run is repeated carefully)."""
    key = (rule, steps, record, has_tol, careful)
    per_problem = _PROGRAMS.setdefault(problem, {})
    if key not in per_problem:
        module = _module(problem, rule, careful)
        kept = recorded_steps(record, steps)
        columns = rule.per_sample and not careful
        per_problem[key] = _build(module[rule.step_name], module, steps, kept, has_tol, columns)
    return per_problem[key]


def _build(
    rule_step: Callable,
    module: dict[str, Any],
    steps: int,
    kept: np.ndarray,
    has_tol: bool,
    columns: bool,
) -> Callable:
    """The run of :func:`scaleinv.numeric.runtime.iterate`, traced (see there, case for case).

    ``columns``: the points are held as ``(n, size)``, one contiguous array per coordinate,
    and the per-sample kernels mapped over the last axis (``vmap``): XLA then fuses a step
    into a few loops over contiguous arrays (2-10x faster than over ``(size, n)`` rows on
    the comparison problem). Only for per-sample steps (not HIG, whose cut-off is taken over
    the batch, nor the careful solve, which decides over the batch).
    """
    running = runtime.RUNNING
    gradient, loss = module["gradient"], module["loss"]
    axis = 0 if columns else -1  # the coordinate axis of the points
    if columns:
        rule_step = jax.vmap(rule_step, in_axes=1, out_axes=(1, 0))
        gradient = jax.vmap(gradient, in_axes=1, out_axes=1)
        loss = jax.vmap(loss, in_axes=1)

    def per_point(mask: Any) -> Any:
        return mask[None, :] if columns else mask[:, None]

    def small(x: Any, tol: Any) -> Any:
        g = jnp.moveaxis(gradient(x), axis, 0)
        squares = g[0] * g[0]
        for part in g[1:]:
            squares = squares + part * part
        return jnp.sqrt(squares) <= tol

    def stop(status: Any, taken: Any, where: Any, code: Any, k: Any) -> tuple[Any, Any]:
        newly = (status == running) & where
        return jnp.where(newly, code, status).astype(jnp.int8), jnp.where(newly, k, taken)

    def one(k: Any, carry: tuple, tol: Any) -> tuple:
        x, loss_x, status, taken, unsure = carry
        if has_tol:
            status, taken = stop(status, taken, small(x, tol), runtime.CONVERGED, k)
        dx, step_status = rule_step(x)
        unsure = unsure | (step_status == UNSURE).any()
        step_status = jnp.where(step_status == UNSURE, running, step_status)
        status, taken = stop(status, taken, step_status != running, step_status, k)
        x_new = x + dx
        loss_new = loss(x_new)
        fine = _all_finite(x_new, axis) & (jnp.abs(loss_new) < runtime.DIVERGED_LOSS)
        status, taken = stop(status, taken, ~fine, runtime.DIVERGED, k)
        keep = status != running
        x = jnp.where(per_point(keep), x, x_new)
        return x, jnp.where(keep, loss_x, loss_new), status, taken, unsure

    runs = _segments(kept)

    def program(x0: Any, tol: Any) -> tuple:
        size = x0.shape[0]
        x0 = x0.T if columns else x0
        status = jnp.zeros(size, dtype=jnp.int8)
        carry = (x0, loss(x0), status, jnp.full(size, steps, dtype=jnp.int64), jnp.array(False))
        xs, losses = ([x0[None]], [carry[1][None]]) if kept[0] == 0 else ([], [])
        first = 0
        for length, count in runs:

            def segment(state: tuple, i: Any, length: int = length, first: int = first) -> tuple:
                start = first + i * length
                state = jax.lax.fori_loop(start, start + length, lambda k, c: one(k, c, tol), state)
                return state, (state[0], state[1])

            carry, (x_seg, loss_seg) = jax.lax.scan(segment, carry, jnp.arange(count))
            xs.append(x_seg)
            losses.append(loss_seg)
            first += length * count
        x, _, status, taken, unsure = carry
        if has_tol:
            status, taken = stop(status, taken, small(x, tol), runtime.CONVERGED, steps)
        status = jnp.where(status == running, runtime.MAX_STEPS, status).astype(jnp.int8)
        xs = jnp.concatenate(xs)
        xs = jnp.swapaxes(xs, 1, 2) if columns else xs
        return xs, jnp.concatenate(losses), status, taken, unsure

    return jax.jit(program)


def run_fused(
    problem: Problem, rule: Rule, x0: np.ndarray, steps: int, tol: float | None, record: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Recorded ``x`` ``(r, *batch, n)``, ``loss`` ``(r, *batch)``, ``status`` and
    ``steps_taken`` of one run, computed by the fused program in float64."""
    batch, n = x0.shape[:-1], x0.shape[-1]
    with jax.enable_x64(True):
        args = jnp.asarray(x0.reshape(-1, n)), jnp.asarray(0.0 if tol is None else float(tol))
        for careful in (False, True):
            program = fused_program(problem, rule, steps, record, tol is not None, careful)
            x, loss, status, taken, unsure = (np.asarray(v) for v in program(*args))
            if not unsure:
                break
    r = x.shape[0]
    x, loss = x.reshape((r, *batch, n)), loss.reshape((r, *batch))
    return x, loss, status.reshape(batch), taken.reshape(batch)
