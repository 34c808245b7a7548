"""Time :func:`scaleinv.minimize` (each engine) against the best hand-written NumPy and JAX loops.

Cases (``--cases``):

* ``comparison`` — ``P = (x0, x1**2)``, ``L = ½|y - (2, 3)|²``, GD (``eta = 0.01``), Newton
  (``1/3``), IG (``0.3``) and PG (``0.3``), at 10**5 starts x 100 steps and 10**7 x 20. Starts:
  ``x0`` uniform in ``[-3, 3]``, ``|x1|`` in ``[1.2, 3]`` with a random sign (both of PG's
  branches; Newton's Hessian ``6 x1² - 6`` stays positive). Anchors, each at its best practice:
  ``numpy`` — arrays per coordinate updated in place (``out=``, preallocated temporaries, no
  ``stack`` per step); ``jax`` — the same formulas on a carried pair ``(x0, x1)`` under
  ``jit`` + ``lax.scan`` (float64). Every tool is called once at the timed size before the
  rounds (JAX traces and compiles per shape there; those first calls are printed apart).
* ``chain`` — the 12-link planar chain of ``benchmarks/kernels.py`` (GD, Newton, IG, PG), and
* ``numeric`` — the coupled map ``(x0 + x1³ + sin x2, x1 x2 + exp(x0)/3, x2³ + x0 x1)``, whose
  PG solves ``P(x) = y`` numerically. For these two, the ``jax`` anchor of GD, Newton and IG
  is the loss in ``jax.numpy`` with ``jax.grad``/``hessian``/``jacfwd``, ``vmap`` and
  ``jit`` + ``lax.scan`` (``_jax_anchors.py``); no hand-written NumPy loop and no PG anchor
  exist for them (a ``MISSING`` line says so).

scaleinv runs ``minimize(problem, rule, x0, steps, record="last", engine=E)`` for the default
engine and each engine named in ``--engines`` (an engine that is not there prints ``MISSING``).
Before timing, every anchor and engine is checked to follow ``minimize(record="all")`` from
1,000 starts to relative 1e-9; the script exits 1 if an anchor does not, and prints an
``ENGINE`` line with the deviation where an engine does not (it is timed all the same).
``--study`` also times ``scaleinv study`` of 10**6 starts x 100 steps of the comparison problem
(target: < 10 s).

Usage::

    python benchmarks/driver.py                       # every case, median of 5 rounds
    python benchmarks/driver.py --quick               # tiny sizes (the test suite's run)
    python benchmarks/driver.py --cases comparison --rules gd newton --rounds 3
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (before numpy: one BLAS thread)
import numpy as np  # noqa: E402
from _jax_anchors import autodiff_runs  # noqa: E402

import scaleinv  # noqa: E402
from scaleinv import Problem, rules  # noqa: E402
from scaleinv.errors import NumericInverseWarning  # noqa: E402

Array = np.ndarray
Loop = Callable[[Array, int], Array]
RULES = {"gd": 0.01, "newton": 1 / 3, "ig": 0.3, "pg": 0.3}
TARGET = (2.0, 3.0)
RTOL = 1e-9
ENGINES = ("numpy", "jax")
SIZES = {"comparison": [(100_000, 100), (10_000_000, 20)], "chain": [(10_000, 100)]}
SIZES["numeric"] = [(10_000, 50)]
#: Steps of the check: the chain's and the map's Newton and GD runs are chaotic in places (a
#: last-bit difference between kernels, NumPy or LLVM, grows past 1e-9 within 100 steps; on the
#: chain, Newton's map expands differences up to ~5e5x a step: one ulp at the start is 2e-12
#: after one step, 2.5e-8 after three and 3e-1 after ten, NumPy engine against itself; see
#: tests/test_engine.py::test_twelve_link_chain_newton_differences_are_the_iterations).
CHECK_STEPS = {"comparison": 100, "chain": 2, "numeric": 5}
QUICK = {"comparison": [(2_000, 10)], "chain": [(200, 5)], "numeric": [(200, 5)]}


# -- problems ---------------------------------------------------------------------------------
def comparison_problem() -> Problem:
    """``P = (x0, x1**2)``, ``L = ½|y - (2, 3)|²``."""
    return Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], target=list(TARGET))


def chain_problem() -> Problem:
    from kernels import chain_problem as build

    return build(12)


def numeric_problem() -> Problem:
    outputs = ["x0 + x1**3 + sin(x2)", "x1*x2 + exp(x0)/3", "x2**3 + x0*x1"]
    return Problem.from_strings(["x0", "x1", "x2"], outputs, target=[1.5, 1.0, 2.0])


PROBLEMS = {"comparison": comparison_problem, "chain": chain_problem, "numeric": numeric_problem}
ETAS = {"chain": {"gd": 0.01, "newton": 0.5, "ig": 0.5, "pg": 0.5}}
ETAS["numeric"] = {"gd": 0.02, "newton": 0.5, "ig": 0.5, "pg": 0.5}
ETAS["comparison"] = RULES


def starts(case: str, size: int, seed: int = 0) -> Array:
    """``size`` start points of ``case`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if case == "comparison":
        x1 = rng.uniform(1.2, 3.0, size) * rng.choice([-1.0, 1.0], size)
        return np.stack([rng.uniform(-3.0, 3.0, size), x1], axis=-1)
    n = PROBLEMS[case]().n
    return rng.uniform(-0.5, 0.5, (size, n)) + (0.3 if case == "chain" else 0.0)


# -- hand-written NumPy: arrays per coordinate, updated in place ------------------------------
def numpy_steps(name: str, eta: float) -> Callable[[Array, Array, Array, Array], None]:
    """One step of rule ``name`` on ``(x0, x1)`` in place (``t``, ``u``: scratch arrays)."""
    y0, y1 = TARGET

    def x0_step(x0: Array) -> None:  # every rule: x0 ← x0 - eta (x0 - 2) (its Hessian is 1)
        x0 *= 1 - eta
        x0 += eta * y0

    def gd(x0: Array, x1: Array, t: Array, u: Array) -> None:  # g1 = 2 x1 (x1² - 3)
        x0_step(x0)
        np.multiply(x1, x1, out=t)
        t -= y1
        t *= x1
        t *= 2 * eta
        x1 -= t

    def newton(x0: Array, x1: Array, t: Array, u: Array) -> None:  # h1 = 6 x1² - 6
        x0_step(x0)
        np.multiply(x1, x1, out=t)
        np.subtract(t, y1, out=u)
        u *= x1
        t -= 1
        t *= 3 / eta
        u /= t
        x1 -= u

    def ig(x0: Array, x1: Array, t: Array, u: Array) -> None:  # Δy1 = -eta (y1 - 3), J = 2 x1
        x0_step(x0)
        np.multiply(x1, x1, out=t)
        t -= y1
        t *= eta / 2
        t /= x1
        x1 -= t

    def pg(x0: Array, x1: Array, t: Array, u: Array) -> None:  # y1 ← y1 + eta (3 - y1)
        x0_step(x0)
        np.multiply(x1, x1, out=t)
        t *= 1 - eta
        t += eta * y1
        np.sqrt(t, out=t)
        np.copysign(t, x1, out=x1)

    return {"gd": gd, "newton": newton, "ig": ig, "pg": pg}[name]


def numpy_loop(name: str, eta: float, path: list[Array] | None = None) -> Loop:
    """``steps`` in-place steps from ``x``; every point appended to ``path`` if given."""
    step = numpy_steps(name, eta)

    def run(x: Array, steps: int) -> Array:
        x0, x1 = x[:, 0].copy(), x[:, 1].copy()
        t, u = np.empty_like(x0), np.empty_like(x0)
        for _ in range(steps):
            step(x0, x1, t, u)
            if path is not None:
                path.append(np.stack([x0, x1], axis=-1))
        return np.stack([x0, x1], axis=-1)

    return run


# -- hand-written JAX: the same formulas on a carried pair, jit + lax.scan ---------------------
def jax_loop(name: str, eta: float) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(last, every)``: jitted scans returning the last pair or every pair."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    y0, y1 = TARGET

    def step(x0: Any, x1: Any) -> tuple[Any, Any]:
        x0 = x0 - eta * (x0 - y0)
        if name == "gd":
            return x0, x1 - eta * 2 * x1 * (x1 * x1 - y1)
        if name == "newton":
            return x0, x1 - eta * x1 * (x1 * x1 - y1) / (3 * (x1 * x1 - 1))
        if name == "ig":
            return x0, x1 - eta * (x1 * x1 - y1) / (2 * x1)
        root = jnp.sqrt((1 - eta) * x1 * x1 + eta * y1)
        return x0, jnp.where(x1 < 0, -root, root)

    def scan(x0: Any, x1: Any, steps: int, keep: bool) -> Any:
        def body(pair: Any, _: Any) -> tuple[Any, Any]:
            pair = step(*pair)
            return pair, (pair if keep else None)

        return jax.lax.scan(body, (x0, x1), None, length=steps)

    last = jax.jit(
        lambda x0, x1, steps: scan(x0, x1, steps, False)[0], static_argnums=2, donate_argnums=(0, 1)
    )
    every = jax.jit(lambda x0, x1, steps: scan(x0, x1, steps, True)[1], static_argnums=2)
    return last, every


def jax_runs(name: str, eta: float) -> tuple[Loop, Loop]:
    """The JAX anchor as ``(run, path)`` on ``(batch, 2)`` arrays."""
    last, every = jax_loop(name, eta)

    def run(x: Array, steps: int) -> Array:
        a, b = last(x[:, 0], x[:, 1], steps)
        b.block_until_ready()
        return np.stack([np.asarray(a), np.asarray(b)], axis=-1)

    def path(x: Array, steps: int) -> Array:
        a, b = every(x[:, 0], x[:, 1], steps)
        return np.stack([np.asarray(a), np.asarray(b)], axis=-1)

    return run, path


def _autodiff(case: str, name: str, eta: float) -> tuple[Loop, Loop] | None:
    """The autodiff JAX anchor of the chain and the map (None: JAX missing, or no anchor)."""
    return None if _harness.installed("jax") else autodiff_runs(case, name, eta)


# -- scaleinv ---------------------------------------------------------------------------------
def engines(asked: Sequence[str]) -> tuple[list[str | None], dict[str, str]]:
    """The engines to time (None: the default) and why the others asked for are missing."""
    if "engine" not in inspect.signature(scaleinv.minimize).parameters:
        return [None], dict.fromkeys(asked, "minimize has no engine= (no fused engine here)")
    why = {}
    if "jax" in asked and _harness.installed("jax"):
        why["jax"] = str(_harness.installed("jax"))
    return [None, *(e for e in asked if e not in why)], why


def scaleinv_loop(problem: Problem, name: str, eta: float, engine: str | None) -> Loop:
    """``minimize(record="last")`` with ``engine`` (None: the default)."""
    rule = rules.REGISTRY[name](eta)
    options = {} if engine is None else {"engine": engine}

    def run(x: Array, steps: int) -> Array:
        t = scaleinv.minimize(problem, rule, x, steps, record="last", **options)
        return np.asarray(t.x[-1])

    return run


def label(engine: str | None) -> str:
    return "scaleinv" if engine is None else f"scaleinv[{engine}]"


def default_engine(problem: Problem, name: str, eta: float, size: int, steps: int) -> str:
    """The engine the default picks for a run of ``size`` starts x ``steps`` (it depends on the
    size: a small probe run would say ``numpy`` where the timed run takes JAX)."""
    from scaleinv.numeric.engines import choose_engine

    return choose_engine(problem, rules.REGISTRY[name](eta), size, steps, None)[0]


# -- the check and the timing -----------------------------------------------------------------
def _off(path: Array, ref: Array) -> float:
    """The largest deviation from ``ref``, relative to each point's size."""
    if path.shape != ref.shape:
        return float("inf")
    scale = np.maximum(np.abs(ref).max(axis=-1), 1e-300)
    return float(np.nanmax(np.abs(path - ref).max(axis=-1) / scale))


def check(
    case: str, names: Sequence[str], engine_list: Sequence[str | None], size: int = 1000,
    steps: int = 100, anchors: bool = True,
) -> list[str]:  # fmt: skip
    """Where an anchor or engine leaves ``minimize(record="all")`` (empty: all follow it)."""
    problem, x = PROBLEMS[case](), starts(case, size, seed=1)
    found = []
    for name in names:
        eta = ETAS[case][name]
        full = scaleinv.minimize(problem, rules.REGISTRY[name](eta), x, steps, record="all")
        ref = np.asarray(full.x)
        alive = full.status == 2  # MAX_STEPS: an anchor does not stop a sample, scaleinv does
        ends = {label(e): scaleinv_loop(problem, name, eta, e)(x, steps) for e in engine_list}
        paths: dict[str, Array] = {}
        if anchors and case == "comparison":
            kept = [x]
            numpy_loop(name, eta, kept)(x, steps)
            paths["numpy"] = np.stack(kept)
            if _harness.installed("jax") is None:
                paths["jax"] = np.concatenate([x[None], jax_runs(name, eta)[1](x, steps)])
        elif anchors and (auto := _autodiff(case, name, eta)):
            paths["jax"] = np.concatenate([x[None], auto[1](x, steps)])
        for tool, path in paths.items():
            off = _off(path[:, alive], ref[:, alive])
            if not off <= RTOL:
                found.append(f"{case} {name}: {tool} leaves scaleinv's trajectory ({off:.1e})")
        for tool, end in ends.items():
            if not _off(end, ref[-1]) <= RTOL:
                found.append(f"{case} {name}: ENGINE {tool} does not end where record='all' "
                             f"ends ({_off(end, ref[-1]):.1e})")  # fmt: skip
    return found


def measure(
    case: str, names: Sequence[str], engine_list: Sequence[str | None], size: int, steps: int,
    rounds: int, budget: float,
) -> list[list[Any]]:  # fmt: skip
    """One table row per rule: medians of interleaved rounds, ratios to the anchors."""
    problem, x = PROBLEMS[case](), starts(case, size)
    rows = []
    for name in names:
        eta = ETAS[case][name]
        loops: dict[str, Loop] = {label(e): scaleinv_loop(problem, name, eta, e)
                                  for e in engine_list}  # fmt: skip
        if case == "comparison":
            loops["numpy"] = numpy_loop(name, eta)
            if _harness.installed("jax") is None:
                loops["jax"] = jax_runs(name, eta)[0]
        elif auto := _autodiff(case, name, eta):
            loops["jax"] = auto[0]
        first = {}  # the first call at the timed size: derivation, tracing, compiling
        for tool, loop in loops.items():
            start = time.perf_counter()
            loop(x, steps)
            first[tool] = time.perf_counter() - start
        cpu: _harness.Runs = {}
        runs = _harness.interleave(
            {tool: (lambda loop=loop: loop(x, steps)) for tool, loop in loops.items()},
            rounds, budget=budget, cpu=cpu,
        )  # fmt: skip
        med, med_cpu = _harness.medians(runs), _harness.medians(cpu)
        fastest = min((v for k, v in med.items() if k.startswith("scaleinv")), default=None)
        engine_label = "scaleinv[numpy]" if "scaleinv[numpy]" in med else "scaleinv"
        rows.append([
            name, default_engine(problem, name, eta, size, steps),
            *(med.get(label(e)) for e in engine_list),
            med.get("numpy"), med.get("jax"), _harness.ratio(fastest, med.get("jax")),
            _harness.ratio(med.get(engine_label), med.get("numpy")), med_cpu.get(engine_label),
            med_cpu.get("numpy"), _harness.ratio(med_cpu.get(engine_label), med_cpu.get("numpy")),
            first.get("jax"), first.get("scaleinv[jax]"),
            _harness.ratio(med_cpu.get("scaleinv[jax]"), med_cpu.get("jax")),
            "; ".join(_harness.short(runs, rounds)) or "",
        ])  # fmt: skip
    return rows


def time_study(size: int, steps: int) -> float:
    """Wall seconds of ``scaleinv study`` of the comparison problem (a subprocess)."""
    spec = (
        'title = "comparison"\n[problem]\ninputs = ["x0", "x1"]\noutputs = ["x0", "x1**2"]\n'
        "target = [2.0, 3.0]\n\n" + "".join(f'[[rules]]\nname = "{n}"\neta = {e}\n\n'
                                            for n, e in RULES.items())
        + f"[study]\nregion = [[-3, 3], [1.2, 3]]\nstarts = {size}\nsteps = {steps}\n"
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "comparison.toml"
        path.write_text(spec)
        command = [sys.executable, "-m", "scaleinv", "study", str(path)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--rules", nargs="+", choices=sorted(RULES), default=list(RULES))
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per entry at most")
    parser.add_argument("--study", action="store_true", help="also time scaleinv study 10**6")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    warnings.simplefilter("ignore", NumericInverseWarning)  # the chain's and the map's PG
    engine_list, why = engines(args.engines)
    _harness.missing(args.engines, why, "engine")
    if _harness.installed("jax") is not None:
        _harness.missing(["jax"], {"jax": str(_harness.installed("jax"))})
    check_size = 100 if args.quick else 1000
    found = [found for case in args.cases for found in check(
        case, args.rules, engine_list, check_size, CHECK_STEPS[case])]  # fmt: skip
    print("\n".join(found), flush=True)  # an engine that differs is timed all the same
    if any("ENGINE" not in line for line in found):  # an anchor that differs is not
        return 1
    print(f"every anchor and the others follow minimize(record='all') to {RTOL:g} ({check_size:,} "
          f"starts; steps: {CHECK_STEPS})\n")  # fmt: skip
    columns = ["rule", "default", *(label(e) + " s" for e in engine_list), "numpy s", "jax s",
               "fastest/jax", "numpy-engine/numpy", "numpy-engine cpu s", "numpy cpu s",
               "numpy-engine/numpy cpu", "jax 1st call s", "scaleinv[jax] 1st call s",
               "jax-engine/jax cpu", "note"]  # fmt: skip
    for case in args.cases:
        if case != "comparison":
            _harness.missing(["numpy"], {"numpy": f"no hand-written loop for the {case} case"})
            if "pg" in args.rules:
                _harness.missing(["jax"], {"jax": f"no hand-written PG for the {case} case "
                                                  "(its local inverse is numeric)"})  # fmt: skip
        for size, steps in (QUICK if args.quick else SIZES)[case]:
            rows = measure(case, args.rules, engine_list, size, steps, rounds, args.budget)
            title = f"{case}: {size:,} starts x {steps} steps, medians of {rounds} rounds"
            print(_harness.table(title, columns, rows) + "\n", flush=True)
    if args.study:
        size = 1000 if args.quick else 1_000_000
        seconds = time_study(size, 100)
        print(_harness.table("scaleinv study of the comparison problem (target < 10 s)",
                             ["starts", "steps", "rules", "wall s"],
                             [[f"{size:,}", 100, len(RULES), seconds]]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
