"""One driver for every rule: :func:`minimize` runs a compiled rule over a batch of start points.

The batch advances as array operations and streams (the loop is
:func:`scaleinv.numeric.runtime.iterate`, which exported modules and Dask workers run too; a
per-sample rule runs it on one chunk of samples after another, see :func:`_iterate_numpy`): it
holds the current point and loss of every sample, and keeps only the steps ``record`` asks for (see
:mod:`scaleinv.numeric.trajectory`), so its memory does not grow with ``steps x batch`` unless
the full history is asked for. Before it allocates anything, it checks that the run fits in
the memory available and raises :class:`~scaleinv.errors.MemoryLimitError` otherwise (a run in
chunks needs the working memory of one chunk). A large run evaluates the loss only where its
divergence check cannot do without it (:mod:`scaleinv.numeric.loss_radius`: the box in which
interval arithmetic proves the loss finite and small) and at the steps it records.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scaleinv.errors import MemoryLimitError, NumericInverseWarning, ProblemError
from scaleinv.numeric import runtime
from scaleinv.numeric.column_loop import iterate_columns
from scaleinv.numeric.compiled import CompiledRule
from scaleinv.numeric.compiler import compile_problem
from scaleinv.numeric.engines import check_engine, choose_engine, reruns_no_inverse
from scaleinv.numeric.fused_step import fused_step
from scaleinv.numeric.indexed_kernels import IndexedKernels
from scaleinv.numeric.indexed_steps import (
    compile_indexed_rule,
    flat_points,
    inverse_note,
)
from scaleinv.numeric.kernels import ProblemKernels, real_array
from scaleinv.numeric.loss_radius import loss_radius
from scaleinv.numeric.progress import ProgressBar
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.status import Status
from scaleinv.numeric.steps import check_steps
from scaleinv.numeric.trajectory import Trajectory, recorded_count, recorded_steps
from scaleinv.symbolic import IndexedProblem, Problem

__all__ = ["minimize", "compiled_rule", "available_memory"]

_COMPILED: weakref.WeakKeyDictionary[
    Problem | IndexedProblem, dict[tuple[Rule, str], CompiledRule]
] = weakref.WeakKeyDictionary()


def compiled_rule(
    problem: Problem | IndexedProblem, rule: Rule, engine: str | None = None
) -> CompiledRule:
    """``rule.compile(problem)`` (an indexed problem: its structured step,
    :mod:`scaleinv.numeric.indexed_steps`, whose matrix-free CG runs on ``engine``:
    :func:`~scaleinv.numeric.engines.choose_cg_engine`), compiled once per (problem, rule,
    engine) and cached."""
    per_problem = _COMPILED.setdefault(problem, {})
    indexed = isinstance(problem, IndexedProblem)
    key = (rule, check_engine(engine) if indexed else "")
    if key not in per_problem:
        if isinstance(problem, IndexedProblem):
            per_problem[key] = compile_indexed_rule(problem, rule, engine)
        else:
            per_problem[key] = rule.compile(problem)
    return per_problem[key]


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


def _working_floats(n: int, m: int, problem: Problem | IndexedProblem | None = None) -> int:
    """Floats per sample a step needs at most at once (points, P, J, H, their temporaries,
    branch candidates of a local inverse): a generous estimate, checked in the tests. An
    indexed problem's is linear in the grid (see :mod:`scaleinv.numeric.indexed_steps`)."""
    if isinstance(problem, IndexedProblem):
        stencil = 2 * len(problem.point_hessian) + len(problem.jacobian_stencil)
        band = 4 * sum(problem.width) + 1
        return (
            16 * (n + m + 1) + 4 * (stencil + band + len(problem.input_accesses)) * problem.points
        )
    return 16 * (n + m + 1) + 8 * (n * n + m * n)


def _check_memory(
    problem: Problem | IndexedProblem,
    rule: Rule,
    compiled: CompiledRule,
    samples: int,
    shape: tuple[int, int],
    steps: int,
    kept: int,
    record: str,
    max_memory: int | None,
    chunked: bool = False,
) -> None:
    n, m = shape
    recording = 8 * kept * samples * (n + m + 1)
    at_once = min(samples, runtime.CHUNK) if chunked else samples  # samples a step works on
    working = 8 * at_once * _working_floats(n, m, problem)
    state = compiled.state_bytes(samples, steps)
    limit = available_memory() if max_memory is None else max_memory
    if limit is None or recording + working + state <= limit:
        return
    parts = [f"record={record!r} keeps {kept} x {samples} samples x {n + m + 1} values"]
    if state:
        parts.append(f"{rule.name} keeps all {steps + 1} iterates of every sample")
    parts.append(f"a step works on about {_working_floats(n, m, problem)} values per sample")
    what = f"minimize ({'; '.join(parts)})"
    advice = "pass record='last', 'ends' or 'every:K', or run fewer starts at a time"
    if state > recording:
        advice = "run fewer starts or steps at a time"
    raise MemoryLimitError(what, recording + working + state, limit, advice)


def minimize(
    problem: Problem | IndexedProblem,
    rule: Rule,
    x0: np.ndarray,
    steps: int,
    tol: float | None = None,
    *,
    record: str = "ends",
    progress: bool = False,
    max_memory: int | None = None,
    engine: str | None = None,
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
        The start points; leading axes are the batch. For an
        :class:`~scaleinv.symbolic.indexed.IndexedProblem` flat (field-major) or shaped
        ``(..., fields, *grid)`` (one field: also ``(..., *grid)``); the trajectory is flat.
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
    engine : {None, "auto", "numpy", "jax"}
        What runs the loop (:mod:`scaleinv.numeric.engines`): ``"numpy"`` (no dependency,
        every rule), ``"jax"`` (the whole run as one compiled JAX program; rules it cannot run
        fall back to NumPy), or ``None``/``"auto"``: JAX where installed and the run is large
        enough to repay compiling it. :attr:`Trajectory.engine` says which ran; results agree
        to rounding, statuses are the same. An indexed problem's loop runs on NumPy; the
        matrix-free CG of its Newton steps takes ``engine`` as it is
        (:func:`~scaleinv.numeric.engines.choose_cg_engine`: ``"numpy"`` keeps it on NumPy).

    Raises
    ------
    ProblemError
        When ``steps`` is not an integer in ``[0, MAX_STEPS]`` (10**6), or ``x0`` is not
        of shape ``(..., n)`` and finite.
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
    steps = check_steps(steps)
    check_engine(engine)
    note = inverse_note(problem, rule)
    if note is not None:
        warnings.warn(NumericInverseWarning(rule.name, note), stacklevel=2)
    if type(x0).__module__.split(".")[0] == "dask":  # many starts, chunk by chunk on Dask
        if isinstance(problem, IndexedProblem):  # workers run this function's structured steps
            from scaleinv.numeric.distributed_indexed import minimize_indexed_dask

            return minimize_indexed_dask(problem, rule, x0, steps, tol, record, minimize)
        from scaleinv.numeric.distributed import minimize_dask

        return minimize_dask(problem, rule, x0, steps, tol, record)
    if isinstance(problem, IndexedProblem):
        x0 = flat_points(problem, x0)
    x0 = real_array(x0, "x0", problem.n)
    if not np.isfinite(x0).all():
        raise ProblemError("x0 contains non-finite values")
    count = recorded_count(record, steps)
    kernels = compile_problem(problem)
    compiled = compiled_rule(problem, rule, engine)
    shape, samples = (problem.n, problem.m), int(np.prod(x0.shape[:-1]))
    chosen, _ = choose_engine(problem, rule, samples, steps, engine, tol)
    chunked = chosen != "jax" and _in_chunks(rule, compiled, samples, steps)
    _check_memory(
        problem, rule, compiled, samples, shape, steps, count, record, max_memory, chunked
    )
    kept = recorded_steps(record, steps)
    if chosen == "jax" and isinstance(problem, Problem):  # never indexed (choose_engine)
        return _run_jax(problem, rule, x0, steps, tol, record, kept)
    try:
        flat = x0.reshape(samples, problem.n)
        recorder = runtime.Recorder(kernels.P, kept, flat, problem.m)
        with ProgressBar(steps if progress else 0, f"minimize {rule.name}") as bar:
            radius = _radius(problem, flat, steps)
            status, taken = _iterate_numpy(
                problem, rule, compiled, kernels, flat, steps, tol, recorder, bar, radius
            )
    except MemoryError as err:
        if isinstance(err, MemoryLimitError):
            raise
        what = f"this minimize run ({rule.name}, {samples} samples, record={record!r})"
        need = 8 * samples * (len(kept) * (sum(shape) + 1) + _working_floats(*shape, problem))
        advice = "pass record='last' or run fewer starts at a time"
        raise MemoryLimitError(what, need, available_memory() or 0, advice) from None
    batch, r = x0.shape[:-1], len(kept)
    x, y = recorder.x.reshape((r, *x0.shape)), recorder.y.reshape((r, *batch, problem.m))
    loss, status, taken = (
        recorder.loss.reshape((r, *batch)),
        status.reshape(batch),
        taken.reshape(batch),
    )
    return Trajectory(x, y, loss, status, rule.name, kept, taken)


#: Sample-steps from which a run certifies the box where its loss cannot diverge (a walk over
#: the loss expression: below this, evaluating the loss every step is cheaper).
CERTIFY_WORK = 1 << 20


def _radius(problem: Problem | IndexedProblem, x0: np.ndarray, steps: int) -> float | None:
    """:func:`~scaleinv.numeric.loss_radius.loss_radius` for a run large enough to repay it."""
    if isinstance(problem, Problem) and x0.shape[0] * steps >= CERTIFY_WORK:
        return loss_radius(problem)
    return None


def _in_chunks(rule: Rule, compiled: CompiledRule, samples: int, steps: int) -> bool:
    """Does the NumPy engine run the loop one chunk of samples after the other (a per-sample
    rule without per-run state, more samples than a chunk)?"""
    return bool(rule.per_sample and not compiled.state_bytes(1, steps) and samples > runtime.CHUNK)


def _iterate_numpy(
    problem: Problem | IndexedProblem,
    rule: Rule,
    compiled: CompiledRule,
    kernels: ProblemKernels | IndexedKernels,
    x0: np.ndarray,
    steps: int,
    tol: float | None,
    recorder: runtime.Recorder,
    bar: ProgressBar,
    radius: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~scaleinv.numeric.runtime.iterate` over the flat batch ``x0`` (``(samples, n)``).

    A per-sample rule without per-run state arrays runs the whole loop on one chunk of
    :data:`~scaleinv.numeric.runtime.CHUNK` samples after the other: each sample's steps do
    not depend on the others, so the results are the same, and a chunk's point, step, loss
    and statuses stay in cache for all its steps (instead of every step streaming the whole
    batch through memory several times). Other rules (HIG's batch SVD, BFGS) run whole.
    ``radius``: where the loss cannot diverge (:mod:`scaleinv.numeric.loss_radius`).
    GD, Newton and IG on small problems run on coordinate columns with one fused step
    (:mod:`scaleinv.numeric.column_loop`).
    """
    samples = len(x0)
    gradient, loss = kernels.gradient, kernels.loss
    if isinstance(kernels, ProblemKernels):  # the driver's own calls: arguments already checked
        gradient, loss = kernels.gradient.func, kernels.loss.func
    fused = None
    if isinstance(problem, Problem) and rule.per_sample and not compiled.state_bytes(1, steps):
        fused = fused_step(problem, rule, with_norm=tol is not None)

    def run(x: np.ndarray, part: runtime.Recorder, update: Callable[..., None]) -> tuple:
        if fused is not None:
            return iterate_columns(fused, compiled.step, loss, x, steps, tol, part, update, radius)
        state = compiled.init(x, steps)
        return runtime.iterate(
            compiled.step, gradient, loss, x, steps, tol, part, state, update, radius
        )

    if not _in_chunks(rule, compiled, samples, steps):
        return run(x0, recorder, bar.update)
    status = np.empty(samples, dtype=np.int8)
    taken = np.empty(samples, dtype=np.int64)
    chunks = -(-samples // runtime.CHUNK)
    for c, start in enumerate(range(0, samples, runtime.CHUNK)):
        rows = slice(start, start + runtime.CHUNK)

        def update(done: int, running: int | None = None, c: int = c) -> None:
            bar.update((c * steps + done) // chunks)

        status[rows], taken[rows] = run(x0[rows], recorder.part(rows), update)
    recorder.filled = len(recorder.steps)
    return status, taken


def _run_jax(
    problem: Problem,
    rule: Rule,
    x0: np.ndarray,
    steps: int,
    tol: float | None,
    record: str,
    kept: np.ndarray,
) -> Trajectory:
    """:func:`minimize` on the fused JAX engine (:mod:`scaleinv.numeric.engine_jax`); the
    ``no_inverse`` samples of a closed form with excluded boundaries are run again on NumPy
    (:func:`~scaleinv.numeric.engines.reruns_no_inverse`)."""
    from scaleinv.numeric.engine_jax import run_fused

    x, y, loss, status, taken = run_fused(problem, rule, x0, steps, tol, record)
    if reruns_no_inverse(problem, rule):
        again = status == Status.NO_INVERSE
        if again.any():  # the program's buffers are read-only: copies to write into
            x, y, loss, status, taken = (np.array(v) for v in (x, y, loss, status, taken))
            sub = minimize(problem, rule, x0[again], steps, tol, record=record, engine="numpy")
            x[:, again], y[:, again], loss[:, again] = sub.x, sub.y, sub.loss
            status[again], taken[again] = sub.status, sub.steps_taken
    return Trajectory(x, y, loss, status, rule.name, kept, taken, engine="jax")
