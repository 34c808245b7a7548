"""Which engine runs :func:`scaleinv.minimize`: the NumPy loop or the fused JAX program.

* ``"numpy"`` — :func:`scaleinv.numeric.runtime.iterate`: one NumPy call per operation per
  step; needs nothing but NumPy, runs every rule.
* ``"jax"`` — :mod:`scaleinv.numeric.engine_jax`: the whole run as one ``jax.jit`` program;
  needs JAX (``pip install 'scaleinv[jax]'``); runs GD, Newton, IG, HIG and PG with a
  closed-form local inverse (see :func:`jax_unsupported` for the rest, which run on NumPy).
* ``None`` / ``"auto"`` — JAX where it is installed, can run the rule (PG with a closed form
  too: its lean step polishes no candidate, the rough ones are events the checked step takes;
  the comparison problem's PG measured 10x and 8x faster than the NumPy engine at 10**5 x 100
  and 10**7 x 20), and the run is large enough to repay its compilation (:data:`JAX_MIN_WORK`
  sample-steps, :data:`FUSED_JAX_MIN_WORK` for a run with ``tol`` where the NumPy engine
  runs the rule by a fused step); NumPy otherwise.

Inside the NumPy engine, the matrix-free CG of an indexed problem's Newton step
(:mod:`scaleinv.numeric.indexed_cg`) has an engine of its own, :func:`choose_cg_engine`: JAX
(:mod:`scaleinv.numeric.indexed_cg_jax`, the whole CG loop one XLA program) where installed
and a step's CG is large enough to repay compiling the program; NumPy otherwise.

Nothing here imports JAX: ``import scaleinv`` never does.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from scaleinv.errors import ScaleinvError
from scaleinv.numeric.fused_step import fused_step
from scaleinv.numeric.inverse import numeric_inverse_note
from scaleinv.numeric.inverse_source import excluded_boundary
from scaleinv.symbolic import IndexedProblem, Problem

__all__ = ["ENGINES", "JAX_MIN_WORK", "check_engine", "choose_engine", "jax_unsupported"]
__all__ += ["reruns_no_inverse", "FUSED_JAX_MIN_WORK", "choose_cg_engine", "JAX_CG_MIN_WORK"]

#: ``auto`` takes JAX for a run with ``tol`` of a rule the NumPy engine runs by a fused step
#: (:mod:`scaleinv.numeric.fused_step`) only from this many sample-steps: at 10**8 (10**6
#: starts x 100 steps of the comparison problem, tol given) the fused NumPy run took 2.0, 1.1
#: and 1.5 s for GD, Newton and IG against JAX's 3.4, 1.9 and 2.0 s with its compilation
#: (samples converging at different steps make JAX rerun blocks). Without ``tol``, JAX's
#: first call at 10**7 x 20 took 1.7, 1.4 and 1.5 s against the fused NumPy run's 2.2, 3.4
#: and 2.8 s, so :data:`JAX_MIN_WORK` holds there.
FUSED_JAX_MIN_WORK = 10**9
#: The values of ``engine`` (``None`` means ``"auto"``).
ENGINES = ("auto", "numpy", "jax")
#: ``auto`` takes JAX from this many sample-steps (samples x steps) on: compiling a fused
#: program takes 1-5 s on this machine (2 cores), which 2 x 10**7 sample-steps repay for GD,
#: Newton and IG (measured: see the notes of issue 19); smaller runs stay on NumPy.
JAX_MIN_WORK = 2 * 10**7


#: ``auto`` runs an indexed problem's CG (Newton's matrix-free step) on JAX from this many
#: unknowns x samples of one step's CG on. Measured (warm Newton step of the Brusselator at
#: 256², 10 samples: 1.3·10⁶, 13 CG iterations; CPU s, interleaved, NumPy / JAX): 0.46 / 0.25
#: (the CG alone ~0.32 / 0.18); compiling the program takes ~2 s of CPU on the first step of
#: each stencil, grid and batch size, which ~15 such steps repay.
JAX_CG_MIN_WORK = 10**6


def check_engine(engine: str | None) -> str:
    """``engine`` checked (``None`` → ``"auto"``); a one-line error naming the known ones."""
    engine = "auto" if engine is None else engine
    if engine not in ENGINES:
        raise ScaleinvError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return engine


def jax_installed() -> bool:
    """Whether JAX can be imported (looked up, not imported)."""
    return importlib.util.find_spec("jax") is not None


def jax_unsupported(problem: Problem | IndexedProblem, rule: Any) -> str | None:
    """Why the fused JAX engine cannot run ``rule`` on ``problem``; None if it can."""
    if rule.name == "bfgs":
        return "BFGS runs through SciPy, one sample at a time"
    if isinstance(problem, IndexedProblem):
        return "an indexed problem's steps solve with SciPy's banded and sparse LU"
    note = numeric_inverse_note(problem, rule)
    if note is not None:
        return f"PG solves P(x) = y numerically ({note}), which runs on NumPy only"
    if rule.uses_inverse and rule.fallback == "ig" and reruns_no_inverse(problem, rule):
        return "PG with fallback='ig' on a closed form with excluded boundaries"
    return None


def reruns_no_inverse(problem: Problem, rule: Any) -> bool:
    """Whether the fused run's ``no_inverse`` samples are run again on NumPy: PG on a closed
    form whose branches have excluded boundaries, where only NumPy's local inverse tries the
    limits of the branches (``beyond_branches``)."""
    return bool(rule.uses_inverse and excluded_boundary(problem.local_inverse()))


def choose_engine(
    problem: Problem | IndexedProblem,
    rule: Any,
    samples: int,
    steps: int,
    engine: str | None,
    tol: float | None = None,
) -> tuple[str, str]:
    """``(engine, why)``: the engine that runs (a run of ``samples`` x ``steps``, with the
    tolerance ``tol`` or without), and a few words on why."""
    engine = check_engine(engine)
    if engine == "numpy":
        return "numpy", "asked for"
    why_not = jax_unsupported(problem, rule)
    if engine == "jax":
        if not jax_installed():
            raise ScaleinvError("engine='jax' needs JAX: pip install 'scaleinv[jax]'")
        return ("numpy", f"JAX cannot: {why_not}") if why_not else ("jax", "asked for")
    if not jax_installed():
        return "numpy", "JAX is not installed"
    if why_not:
        return "numpy", f"JAX cannot: {why_not}"
    if samples * steps < JAX_MIN_WORK:
        return "numpy", f"fewer than {JAX_MIN_WORK:.0e} sample-steps: compiling would not pay"
    fused = isinstance(problem, Problem) and fused_step(problem, rule, False) is not None
    if fused and tol is not None and samples * steps < FUSED_JAX_MIN_WORK:
        why = f"NumPy's fused step with tol: compiling would not pay below {FUSED_JAX_MIN_WORK:.0e}"
        return "numpy", why + " sample-steps"
    return "jax", f"at least {JAX_MIN_WORK:.0e} sample-steps"


def choose_cg_engine(unknowns: int, samples: int, engine: str | None = None) -> tuple[str, str]:
    """``(engine, why)``: what runs the matrix-free CG of one step (``samples`` x
    ``unknowns``): ``"jax"`` or ``"numpy"`` (``engine`` as in :func:`check_engine`); the CG
    itself falls back to NumPy where its operator or preconditioner has no JAX form
    (:func:`scaleinv.numeric.indexed_cg.jax_cg_unsupported`)."""
    engine = check_engine(engine)
    if engine == "numpy":
        return "numpy", "asked for"
    if not jax_installed():
        if engine == "jax":
            raise ScaleinvError("engine='jax' needs JAX: pip install 'scaleinv[jax]'")
        return "numpy", "JAX is not installed"
    if engine == "jax":
        return "jax", "asked for"
    work = f"{JAX_CG_MIN_WORK:.0e} unknowns x samples"
    if unknowns * samples < JAX_CG_MIN_WORK:
        return "numpy", f"fewer than {work}: compiling would not pay"
    return "jax", f"at least {work}"
