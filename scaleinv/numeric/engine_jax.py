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
  (``k <= 2``, far from singular; ``b / diag`` where the Hessian and Jacobian are diagonal by
  structure, as NumPy's ``_diagonal_into``), LU elsewhere; a sample is ``singular`` where its
  own LU result is not finite and its singular values say singular to working precision, as
  in NumPy's ``solve`` (so a sample's status never depends on the samples sharing its batch
  or chunk). XLA's LU and LAPACK's agree to rounding: on a matrix singular to working
  precision (condition number above ~1e15) one may still come out finite where the other
  does not, and the step of such a sample is huge in either.
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

import functools
import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scaleinv.numeric import inverse_source, runtime
from scaleinv.numeric.engine_columns import columns
from scaleinv.numeric.flavors.loader import load_module
from scaleinv.numeric.loss_radius import loss_radius
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.trajectory import recorded_steps
from scaleinv.symbolic import Problem

__all__ = ["run_fused", "fused_program"]

_MODULES: weakref.WeakKeyDictionary[Problem, dict[tuple[Rule, Any], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)
#: Problems of at most this many inputs run coordinate by coordinate (``_Columns``): XLA then
#: fuses each step into 2-4 loops; a larger ``n`` pays more compile time than it saves
#: (the 12-link chain's Newton: 25 s of CPU to compile by columns, 7.6 s stacked).
COLUMNS_MAX_N = 4

_PROGRAMS: weakref.WeakKeyDictionary[Problem, dict[tuple, _Program]] = weakref.WeakKeyDictionary()


def _cramer(a: Any, b: Any, diagonal: bool) -> tuple[Any, Any]:
    """NumPy's ``_cramer_into`` (k = 1, 2): the solution and where it is trusted."""
    x, trusted = _cramer_unchecked(a, b, diagonal)
    return x, trusted & _all_finite(x, -1)


def _cramer_unchecked(a: Any, b: Any, diagonal: bool) -> tuple[Any, Any]:
    """:func:`_cramer` without the finiteness of the solution: where the matrix is trusted.
    ``diagonal``: ``a`` is diagonal by structure (NumPy's ``_diagonal_into``: ``b / diag``,
    trusted where Cramer's rule is; one division a component instead of two)."""
    if diagonal and a.shape[-1] == 2:
        a00, a11 = a[..., 0, 0], a[..., 1, 1]
        x = jnp.stack([b[..., 0] / a00, b[..., 1] / a11], axis=-1)
        return x, a00 * a00 + a11 * a11 < runtime._CRAMER_LIMIT * jnp.abs(a00 * a11)
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
    return x, fine


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


def fast_solve(a: Any, b: Any, diagonal: bool = False) -> tuple[Any, Any]:
    """NumPy's ``solve`` without its batch-wide fallback: Cramer's rule where it is trusted
    (``k <= 2``), LU elsewhere; status :data:`UNSURE` where the LU result is not finite.
    ``diagonal``: see :func:`_cramer_unchecked`."""
    k = a.shape[-1]
    if k <= 2:
        x, fine = _cramer(a, b, diagonal)
        x = jnp.where(fine[..., None], x, _lu(a, b))
    else:
        x = jnp.linalg.solve(a, b[..., None])[..., 0]
    return x, jnp.where(_all_finite(x, -1), runtime.RUNNING, UNSURE).astype(jnp.int8)


def careful_solve(a: Any, b: Any, diagonal: bool = False) -> tuple[Any, Any]:
    """:func:`scaleinv.numeric.runtime.solve` for JAX, case for case: Cramer where NumPy
    trusts it, LU for the rest, and where an LU result is not finite, every such sample told
    apart by its singular values (``solve_flagged``). ``lax.cond`` keeps the SVD off the steps
    that do not need it, but costs ~10x a step: only runs that met :data:`UNSURE` take it."""
    k = a.shape[-1]
    b = jnp.broadcast_to(b, a.shape[:-1])
    eye = jnp.eye(k)
    if k <= 2:
        x_fast, fine = _cramer(a, b, diagonal)
    else:
        x_fast, fine = jnp.zeros_like(b), jnp.zeros(b.shape[:-1], dtype=bool)
    finite_a = jnp.isfinite(a).all(axis=(-2, -1))
    zero = jnp.zeros(b.shape[:-1], dtype=jnp.int8)

    def lapack(_: Any) -> tuple[Any, Any]:
        rest = ~fine
        x_lu = jnp.linalg.solve(jnp.where(rest[..., None, None], a, eye), b[..., None])[..., 0]
        x = jnp.where(fine[..., None], x_fast, x_lu)
        failed = (rest & ~jnp.isfinite(x_lu).all(-1)).any()
        return jax.lax.cond(failed, flagged, lambda _: (x, zero), x_lu)

    def flagged(x_lu: Any) -> tuple[Any, Any]:  # runtime._lapack_solve's fallback on the rest
        rest = ~fine
        s = jnp.linalg.svd(jnp.where(finite_a[..., None, None], a, 0.0), compute_uv=False)
        # singular: to working precision and its own LU not finite (as it would be alone)
        singular = finite_a & ~(s[..., -1] > s[..., 0] * k * runtime._EPS)
        singular = singular & ~jnp.isfinite(x_lu).all(-1)
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
        solve = careful_solve if careful else fast_solve
        module["solve"] = functools.partial(solve, diagonal=_diagonal(module))
        per_problem[rule, careful] = module
    return per_problem[rule, careful]


def _diagonal(module: dict[str, Any]) -> bool:
    """Are the square matrices a step of ``module`` solves (the Hessian, the Jacobian)
    diagonal by structure (their exported sparsity patterns)?"""
    for rows, cols, (k, m) in (module["hessian_pattern"], module["jacobian_pattern"]):
        if k == m and list(rows) != list(cols):
            return False
    return True


def _lean_step(problem: Problem, rule: Rule) -> Callable[[Any], tuple[Any, Any]]:
    """The rule's step for the common case, ``x -> (dx, event)`` (cached): solves by Cramer's
    rule (``k <= 2``) or LU without their fallbacks, PG's branch candidates not polished.
    ``event`` marks the samples where that may not be the exported step's result (a matrix
    Cramer's rule does not trust, a rough branch candidate) or whose step status is not
    ``RUNNING``; everywhere else ``dx`` is the exported step's, bit for bit (the same
    expressions), or not finite (a solution that is not finite is no event: the point it makes
    is not finite either, which the block's check finds; an event would keep the solution
    apart from the point, one more array written per step)."""
    per_problem = _MODULES.setdefault(problem, {})
    if (rule, "lean") not in per_problem:
        module = vars(load_module(problem, "jax", [rule]))
        events: list[Any] = []  # filled while the step is traced
        diagonal = _diagonal(module)

        def solve(a: Any, b: Any) -> tuple[Any, Any]:
            # a solution that is not finite needs no event: it makes the point non-finite,
            # which stays so and is found by the check at the end of the block
            if a.shape[-1] <= 2:
                x, trusted = _cramer_unchecked(a, b, diagonal)
                events.append(~trusted)
            elif diagonal:  # LAPACK's LU of a diagonal matrix: b / diag, exactly
                x = b / jnp.stack([a[..., i, i] for i in range(a.shape[-1])], axis=-1)
            else:
                x = jnp.linalg.solve(a, b[..., None])[..., 0]
            return x, jnp.zeros(x.shape[:-1], dtype=jnp.int8)

        def polish(c: Any, r: Any, y: Any, params: Any) -> tuple[Any, Any, Any]:
            # r is 0 where c is not finite, so this is nearest_branch's `rough`
            events.append(~jnp.all(jnp.abs(r) <= inverse_source.TOL * (1 + jnp.abs(y)), -1))
            return c, r, jnp.zeros(c.shape[:-1], dtype=bool)

        module["solve"], module["polish"] = solve, polish
        if rule.uses_inverse:
            module["nearest_branch"] = _fusible_target(_common_components(problem, module))
        step = module[rule.step_name]

        def lean_step(x: Any) -> tuple[Any, Any]:
            events.clear()
            dx, status = step(x)
            event = status != runtime.RUNNING
            for seen in events:
                event = event | seen
            events.clear()
            return dx, event

        per_problem[rule, "lean"] = {"step": lean_step}
    return per_problem[rule, "lean"]["step"]


def _fusible_target(nearest: Callable) -> Callable:
    """``nearest_branch`` with its target ``y`` passed through an identity XLA keeps
    (``reduce_precision`` to ``y``'s own format: every value, NaN and -0.0 too, unchanged).

    ``y`` (``P(x) + Δy``, a sum of two arrays) feeds a branch's ``sqrt`` and the residual
    ``y - P(c)`` that reads the ``sqrt`` too. XLA's CPU fusion does not duplicate a producer
    of two array operands into more than one consumer, nor a ``sqrt`` with several users;
    meeting ``y`` before the ``sqrt`` was fused, it wrote ``y`` to an array of its own every
    step (jaxlib 0.10; PG on ``P = (x0, x1²)``: one more pass over the batch a step, 7-12%
    more CPU at 10**7 x 20). Behind an op of one operand ``y`` may be duplicated, and the
    step fuses into one loop per coordinate.
    """

    def lean_target(y: Any, x0: Any, params: Any) -> tuple[Any, Any, Any]:
        info = jnp.finfo(y.dtype)
        return nearest(jax.lax.reduce_precision(y, info.nexp, info.nmant), x0, params)

    return lean_target


def _common_components(problem: Problem, module: dict[str, Any]) -> Callable:
    """The module's ``nearest_branch`` for the lean step: components of ``x`` that every
    branch's formula gives alike (``x0 = y0`` in both branches of ``P = (x0, x1²)``) taken
    from the first branch, not chosen by the branches' validity and distance. Where the lean
    step finds no event, a valid branch exists and no candidate was polished, so that is the
    chosen candidate's value, bit for bit; the point's other coordinates then no longer enter
    that component's update, which XLA can do in place in a loop of its own (a choice made
    in every component made each read all coordinates: two loops doing the whole choice,
    a copy of the point per step). Periodic branches (shifted towards ``x0``) keep the choice.
    """
    nearest = module["nearest_branch"]
    branches = problem.local_inverse().branches
    if any(t is not None for t in branches[0].period) or branches[0].joint_period:
        return nearest
    first = module["inverse_branch0"]
    common = [len({b.solution[k] for b in branches}) == 1 for k in range(problem.n)]

    def lean_nearest(y: Any, x0: Any, params: Any) -> tuple[Any, Any, Any]:
        x, status, residual = nearest(y, x0, params)
        c = first(y, **params).reshape(x0.shape)
        x = jnp.stack([c[..., k] if same else x[..., k] for k, same in enumerate(common)], -1)
        return x, status, residual

    return lean_nearest


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
) -> _Program:
    """The jitted ``run(x0, tol) -> (x, y, loss, status, taken, unsure)`` of
    :func:`run_fused` (cached per problem, rule, steps, record, whether ``tol`` is given and
    the solve); ``x0`` is ``(size, n)``, ``x``, ``y = P(x)`` and ``loss`` hold the recorded
    steps; ``unsure`` says whether the
    fast solve met a sample it could not decide (then the run is repeated carefully)."""
    key = (rule, steps, record, has_tol, careful)
    per_problem = _PROGRAMS.setdefault(problem, {})
    if key not in per_problem:
        module = _module(problem, rule, careful)
        if rule.per_sample and not careful and problem.n <= COLUMNS_MAX_N:
            lean = _lean_step(problem, rule)
            layout: _Layout = _Columns(module, rule.step_name, lean, problem.n, problem.m)
        else:
            layout = _Stacked(module, rule.step_name)
        kept = recorded_steps(record, steps)
        per_problem[key] = _build(layout, steps, kept, has_tol, loss_radius(problem))
    return per_problem[key]


class _Stacked:
    """Points as one ``(size, n)`` array, the kernels called on it (batch-wide steps)."""

    lean: Callable | None = None

    def __init__(self, module: dict[str, Any], step_name: str) -> None:
        self.step, self.gradient, self.loss, self.P, self.loss_of_y = (
            module[name] for name in (step_name, "gradient", "loss", "P", "loss_of_y")
        )

    def split(self, x: Any) -> Any:
        return x

    def stack(self, points: Any) -> Any:
        return points

    def recorded(self, points: Any) -> tuple[Any, Any, Any]:
        """``(x, y, loss)`` of the points as the trajectory keeps them: ``(size, n)``,
        ``(size, m)``, ``(size,)`` (the loss from ``y``: ``loss`` is ``loss_of_y(P(x))``)."""
        y = self.P(points)
        return points, y, self.loss_of_y(y)

    def add(self, points: Any, dx: Any) -> Any:
        return points + dx

    def where(self, mask: Any, a: Any, b: Any) -> Any:
        return jnp.where(mask[:, None], a, b)

    def finite(self, points: Any) -> Any:
        return _all_finite(points, -1)

    def squared_gradient(self, points: Any) -> Any:
        g = self.gradient(points)
        return _sum_of_squares([g[..., i] for i in range(g.shape[-1])])


class _Columns(_Stacked):
    """Points as a tuple of ``n`` arrays ``(size,)``, the per-sample kernels evaluated on
    them scalar by scalar (:func:`~scaleinv.numeric.engine_columns.columns`)."""

    def __init__(
        self, module: dict[str, Any], step_name: str, lean: Callable, n: int, m: int
    ) -> None:
        super().__init__(module, step_name)
        self.step, self.gradient, self.loss, self.P, self.lean = (
            self._tuples(columns(fn, n))
            for fn in (self.step, self.gradient, self.loss, self.P, lean)
        )
        self.loss_of_y = self._tuples(columns(self.loss_of_y, m))

    @staticmethod
    def _tuples(fn: Callable) -> Callable:
        """``fn`` on a tuple of points, its vectors as tuples and its scalars as arrays."""

        def run(points: tuple) -> Any:
            outs = fn(*points)
            return jax.tree_util.tree_map(
                lambda a: tuple(a) if a.ndim else a[()], outs, is_leaf=_is_object_array
            )

        return run

    def split(self, x: Any) -> Any:
        return tuple(x[:, i] for i in range(x.shape[1]))

    def stack(self, points: Any) -> Any:
        return jnp.stack(points, axis=-1)

    def recorded(self, points: Any) -> tuple[Any, Any, Any]:
        size = points[0].shape  # an output that does not depend on x is a scalar here
        y = tuple(jnp.broadcast_to(v, size) for v in self.P(points))
        return self.stack(points), self.stack(y), jnp.broadcast_to(self.loss_of_y(y), size)

    def add(self, points: Any, dx: Any) -> Any:
        return tuple(p + d for p, d in zip(points, dx))

    def where(self, mask: Any, a: Any, b: Any) -> Any:
        return tuple(jnp.where(mask, u, v) for u, v in zip(a, b))

    def finite(self, points: Any) -> Any:
        out = jnp.isfinite(points[0])
        for part in points[1:]:
            out = out & jnp.isfinite(part)
        return out

    def squared_gradient(self, points: Any) -> Any:
        return _sum_of_squares(list(self.gradient(points)))


_Layout = _Stacked


def _is_object_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == object


def _either(a: Any, b: Any) -> Any:
    """``a | b``, ``a`` None for none."""
    return b if a is None else a | b


def _sum_of_squares(parts: list[Any]) -> Any:
    squares = parts[0] * parts[0]
    for part in parts[1:]:
        squares = squares + part * part
    return squares


#: Steps of the first block of the fused loop (a block after one without an event is
#: :data:`GROW` times as long as that one, one after an event this long again): a block runs
#: the lean step (nothing but the points written), then one check over the batch; a block
#: where a running sample met an event runs again from its start, step by step with the
#: statuses (see :func:`_build`).
BLOCK = 10
#: Growth of the blocks after a block without an event: each block's check and conds cost
#: about 5 steps at 10**5 samples (dispatch, not memory); a rerun costs its block's length.
GROW = 4


def _build(
    layout: _Layout, steps: int, kept: np.ndarray, has_tol: bool, radius: float | None
) -> _Program:
    """The run of :func:`scaleinv.numeric.runtime.iterate`, traced (see there, case for case).

    Per-sample rules (:class:`_Columns`) hold the points as one array per coordinate and
    evaluate every kernel scalar by scalar on such arrays, so that XLA fuses a step into one
    loop per coordinate, as in a hand-written loop. Their steps run in blocks (the first of
    :data:`BLOCK` steps, each after one without an event :data:`GROW` times as long): first by the
    lean step alone (:func:`_lean_step`), nothing written but the points; a running sample
    that meets an event (its step status, a solve or a branch the lean step does not decide,
    ``tol``) gets NaN in its last coordinate. Divergence is an event too: where
    :func:`~scaleinv.numeric.loss_radius.loss_radius` certifies a box ``|x_i| <= R`` in which
    the loss stays below ``DIVERGED_LOSS``, a coordinate that leaves the box gets NaN itself
    (no coordinate's update then reads another's: XLA updates each in place in one loop);
    without a box, a loss at or above ``DIVERGED_LOSS`` marks the last coordinate. A
    non-finite point stays non-finite (``x + dx`` of a non-finite ``x`` is not finite).
    Samples stopped before the block keep their points (finite: a point is only taken where it
    is): a mask holds them, and while no sample has stopped, the block runs without the mask
    (it costs about half a step). At the end of the block one check
    looks for a non-finite point. Where there is none, no status changed in the block, and its
    points are those of the checked loop. Where there is one, the block is run again from its
    start by ``checked``: the exported step with the statuses, ``tol`` and the divergence
    check of the NumPy engine, step for step.

    Batch-wide steps (HIG, whose cut-off is taken over the batch, and the careful solve,
    which decides over the batch) hold ``(size, n)`` and check every step.
    """
    running = runtime.RUNNING

    def small(points: Any, tol: Any) -> Any:
        return jnp.sqrt(layout.squared_gradient(points)) <= tol

    def checked(k: Any, state: tuple, tol: Any) -> tuple:
        """One step of ``iterate``: tol, the step's status, divergence, in this order."""
        points, status, taken, unsure = state
        code = jnp.zeros_like(status)
        if has_tol:
            code = jnp.where(small(points, tol), runtime.CONVERGED, code).astype(jnp.int8)
        dx, step_status = layout.step(points)
        unsure = unsure | (step_status == UNSURE).any()
        step_status = jnp.where(step_status == UNSURE, running, step_status)
        code = jnp.where(code == running, step_status, code)
        new = layout.add(points, dx)
        fine = layout.finite(new) & (jnp.abs(layout.loss(new)) < runtime.DIVERGED_LOSS)
        code = jnp.where((code == running) & ~fine, runtime.DIVERGED, code)
        newly = (status == running) & (code != running)
        status = jnp.where(newly, code, status).astype(jnp.int8)
        points = layout.where(status == running, new, points)
        return points, status, jnp.where(newly, k, taken), unsure

    def lean(points: tuple, moves: Any, tol: Any) -> tuple:
        """``checked`` without statuses where no sample meets an event (see above); ``moves``
        the running samples (None: all)."""
        assert layout.lean is not None  # only per-sample rules (_Columns) run lean blocks
        dx, event = layout.lean(points)
        if has_tol:
            event = event | small(points, tol)
        new = layout.add(points, dx)
        if moves is not None:
            new = layout.where(moves, new, points)
        if radius is None:
            event = event | ~(jnp.abs(layout.loss(new)) < runtime.DIVERGED_LOSS)
        # the sample's event marks its last coordinate; with a box, a coordinate outside it
        # marks itself: no coordinate's update then reads another's new value, and XLA
        # updates each coordinate in one loop, in place (as in a hand-written loop)
        marks: list[Any] = [None] * (len(new) - 1) + [event]
        if radius is not None:
            marks = [_either(m, ~(jnp.abs(x) <= radius)) for m, x in zip(marks, new)]
        if moves is not None:
            marks = [m if m is None else moves & m for m in marks]
        return tuple(x if m is None else jnp.where(m, jnp.nan, x) for m, x in zip(marks, new))

    def lean_steps(points: tuple, moves: Any, length: int, tol: Any) -> tuple:
        # the first step apart: it writes new arrays, and the block's start stays for a rerun
        ends = lean(points, moves, tol)
        return jax.lax.fori_loop(1, length, lambda _, p: lean(p, moves, tol), ends)

    def block(state: tuple, first: Any, length: Any, tol: Any) -> tuple[tuple, Any]:
        """``length`` steps from step ``first``, lean where no sample meets an event; the
        state after them and whether the block ran checked."""

        def each(k: Any, s: tuple) -> tuple:
            return checked(k, s, tol)

        points, status = state[0], state[1]
        moves = status == running
        # the mask costs ~50% of a lean step: left out while no sample has stopped
        ends = jax.lax.cond(
            moves.all(),
            lambda p: lean_steps(p, None, length, tol),
            lambda p: lean_steps(p, moves, length, tol),
            points,
        )
        met = ~layout.finite(ends).all()  # stopped samples keep their (finite) points

        def lean_result(s: tuple) -> tuple:
            return (ends, *s[1:])

        def rerun(s: tuple) -> tuple:
            return jax.lax.fori_loop(first, first + length, each, s)

        state = jax.lax.cond(met, rerun, lean_result, state)
        return state, met

    def blocks(state: tuple, first: Any, length: int, tol: Any) -> tuple:
        """``length`` steps from step ``first``: blocks of :data:`BLOCK` steps, each block
        after one without an event :data:`GROW` times as long as that."""
        if layout.lean is None:
            return jax.lax.fori_loop(first, first + length, lambda k, s: checked(k, s, tol), state)
        if length <= BLOCK:
            return block(state, first, length, tol)[0]

        def more(carry: tuple) -> Any:
            return carry[1] < length

        def next_block(carry: tuple) -> tuple:
            state, done, size = carry
            size = jnp.minimum(size, length - done)
            state, met = block(state, first + done, size, tol)
            return state, done + size, jnp.where(met, BLOCK, GROW * size)

        start = (state, jnp.asarray(0, dtype=jnp.int64), jnp.asarray(BLOCK, dtype=jnp.int64))
        return jax.lax.while_loop(more, next_block, start)[0]

    runs = _segments(kept)

    def program(points: Any, tol: Any) -> tuple:
        size = jax.tree_util.tree_leaves(points)[0].shape[0]
        status = jnp.zeros(size, dtype=jnp.int8)
        state = (points, status, jnp.full(size, steps, dtype=jnp.int64), jnp.array(False))
        # the start as XLA's constants no more: a loop of one trip is inlined, and XLA then
        # folds the first block's reductions over the constant statuses at compile time
        # (37 s for 10**7 samples)
        state = jax.lax.optimization_barrier(state)
        records: list[tuple] = [tuple(a[None] for a in layout.recorded(points))]
        records = records if kept[0] == 0 else []
        first = 0
        for length, count in runs:

            def segment(state: tuple, i: Any, length: int = length, first: int = first) -> tuple:
                state = blocks(state, first + i * length, length, tol)
                return state, layout.recorded(state[0])

            seg: tuple[Any, Any, Any]
            state, seg = jax.lax.scan(segment, state, jnp.arange(count))
            records.append(seg)
            first += length * count
        points, status, taken, unsure = state
        if has_tol:
            newly = (status == running) & small(points, tol)
            status = jnp.where(newly, runtime.CONVERGED, status)
            taken = jnp.where(newly, steps, taken)
        status = jnp.where(status == running, runtime.MAX_STEPS, status).astype(jnp.int8)
        x, y, loss = (jnp.concatenate(parts) for parts in zip(*records))
        # the last points too: outputs of the starts' shapes let XLA run the loop in the
        # buffers of the (donated) starts instead of copying them first
        return (x, y, loss, status, taken, unsure), points

    jitted = jax.jit(program, donate_argnums=0, compiler_options=_compiler_options())
    return _Program(jitted, layout.split)


#: XLA's options for the fused programs on the CPU: copy insertion by region analysis, which
#: sees that a loop body can update a point in place where another coordinate's update reads
#: it (PG's lean step copied a point column per step without: 10**5 x 100 0.053 -> 0.039 s,
#: 10**7 x 20 1.94 -> 1.60 s of CPU).
CPU_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}


@functools.cache
def _compiler_options() -> dict[str, Any] | None:
    """:data:`CPU_OPTIONS` where JAX runs on the CPU and its XLA knows them; None elsewhere."""
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda a: a + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:  # an XLA without it: "No such compile option"
        return None
    return CPU_OPTIONS


class _Program:
    """A fused program called on ``(x0, tol)``: ``x0`` split for the layout before the call
    (JAX copies each column into a buffer of its own as it takes it in, as a hand-written
    loop's columns; a split in the program would be a pass of its own), those buffers donated
    (the loop runs in them)."""

    def __init__(self, jitted: Any, split: Callable) -> None:
        self.jitted, self.split = jitted, split

    def __call__(self, x0: Any, tol: Any) -> tuple:
        return self.jitted(self.split(x0), tol)[0]

    def lower(self, x0: Any, tol: Any) -> Any:
        """The program lowered for ``x0``'s shape (``jax.stages.Lowered``: its HLO, cost)."""
        return self.jitted.lower(self.split(x0), tol)


def run_fused(
    problem: Problem, rule: Rule, x0: np.ndarray, steps: int, tol: float | None, record: str
) -> tuple[np.ndarray, ...]:
    """Recorded ``x`` ``(r, *batch, n)``, ``y`` ``(r, *batch, m)``, ``loss`` ``(r, *batch)``,
    ``status`` and ``steps_taken`` of one run, computed by the fused program in float64: the
    program's output buffers themselves (read-only NumPy views, no copy; JAX on the CPU)."""
    batch, n = x0.shape[:-1], x0.shape[-1]
    with jax.enable_x64(True):
        # NumPy arrays straight into the jitted call: jnp.asarray would take twice as long
        args = x0.reshape(-1, n), np.float64(0.0 if tol is None else tol)
        for careful in (False, True):
            program = fused_program(problem, rule, steps, record, tol is not None, careful)
            *outs, unsure = (np.asarray(v) for v in program(*args))
            if not unsure:
                break
    x, y, loss, status, taken = outs
    r = x.shape[0]
    x, y, loss = (
        x.reshape((r, *batch, n)),
        y.reshape((r, *batch, y.shape[-1])),
        loss.reshape((r, *batch)),
    )
    return x, y, loss, status.reshape(batch), taken.reshape(batch)
