"""Time :func:`scaleinv.minimize` against hand-written NumPy and JAX loops of the same steps.

The problem is the chapter's comparison problem ``P = (x0, x1**2)``, ``L = y0**2 + y1**2``,
from ``--starts`` start points drawn uniformly from ``[-3, 3]**2`` (10**5 by default), run for
``--steps`` steps (100) of GD (``eta = 0.01``), Newton (``1/3``), IG (``0.3``) and PG (``0.3``).
Per rule the script times four implementations:

* ``scaleinv`` — ``scaleinv.minimize(problem, rule, x0, steps, record="last")``: the driver
  with its per-sample statuses and divergence checks;
* ``steps`` — scaleinv's compiled step alone in a bare loop (``x = x + step(x)``): what the
  driver adds on top of its rule's step is the difference to ``scaleinv``;
* ``numpy`` — the same update written by hand as vectorised NumPy for this problem (gradient
  ``(2 x0, 4 x1**3)``, Hessian ``diag(2, 12 x1**2)``, Jacobian ``diag(1, 2 x1)``, and the local
  inverse ``x1 = ±sqrt(y1)`` taking the branch of x1's sign), no status bookkeeping;
* ``jax`` — the same hand-written step under ``jax.jit`` and ``jax.lax.scan`` (float64), when
  JAX is installed (``pip install 'scaleinv[bench]'``); its one-off compile time is printed
  apart.

Before timing, all of them are checked to follow scaleinv's trajectory (``record="all"``) from
1,000 starts to relative 1e-9; the script exits 1 if one does not. Timings are medians of
``--repeats`` runs taken round-robin (every implementation once per round, so load drift on a
shared machine hits all alike); an entry stops repeating once its runs add up to ``--budget``
seconds and is then marked ``*``. The process (CPU) seconds of scaleinv's runs are printed
below the table: on a shared machine, load from other processes inflates the wall clock.

Usage::

    python benchmarks/driver.py                 # 10**5 starts x 100 steps, median of 5
    python benchmarks/driver.py --quick         # smoke run
    python benchmarks/driver.py --rules gd newton --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import scaleinv
from scaleinv import Problem, rules
from scaleinv.numeric.driver import compiled_rule

Array = np.ndarray
Loop = Callable[[Array, int], Array]
RULES = {"gd": 0.01, "newton": 1 / 3, "ig": 0.3, "pg": 0.3}
IMPLS = ("scaleinv", "steps", "numpy", "jax")
RTOL = 1e-9


def comparison_problem() -> Problem:
    """The comparison problem ``P = (x0, x1**2)``, ``L = y0**2 + y1**2``."""
    return Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")


def starts(size: int, seed: int = 0) -> Array:
    """``size`` start points uniform in ``[-3, 3]**2``."""
    return np.random.default_rng(seed).uniform(-3.0, 3.0, (size, 2))


# -- the hand-written steps (NumPy and JAX share them: `xp` is numpy or jax.numpy) ------------
def hand_step(name: str, eta: float, xp: Any) -> Callable[[Array], Array]:
    """``x -> x + Δx`` of rule ``name`` on the comparison problem, written out by hand."""

    def gd(x: Array) -> Array:
        x0, x1 = x[..., 0], x[..., 1]
        return xp.stack([x0 - eta * 2 * x0, x1 - eta * 4 * x1 * x1 * x1], axis=-1)

    def newton(x: Array) -> Array:  # H = diag(2, 12 x1²): the solve is a division
        x0, x1 = x[..., 0], x[..., 1]
        g1, h1 = 4 * x1 * x1 * x1, 12 * x1 * x1
        return xp.stack([x0 - eta * (2 * x0) / 2, x1 - eta * g1 / h1], axis=-1)

    def ig(x: Array) -> Array:  # Δy = −η y (Newton step of y0² + y1²), J = diag(1, 2 x1)
        x0, x1 = x[..., 0], x[..., 1]
        return xp.stack([x0 - eta * x0, x1 - eta * (x1 * x1) / (2 * x1)], axis=-1)

    def pg(x: Array) -> Array:  # y ← (1 − η) y, then x1 = ±sqrt(y1) with the sign of x1
        x0, x1 = x[..., 0], x[..., 1]
        root = xp.sqrt((1 - eta) * (x1 * x1))
        return xp.stack([(1 - eta) * x0, xp.where(x1 < 0, -root, root)], axis=-1)

    return {"gd": gd, "newton": newton, "ig": ig, "pg": pg}[name]


def numpy_loop(name: str, eta: float) -> Loop:
    """``steps`` hand-written NumPy steps from ``x0``; returns the last point."""
    step = hand_step(name, eta, np)

    def run(x0: Array, steps: int) -> Array:
        x = x0
        for _ in range(steps):
            x = step(x)
        return x

    return run


def numpy_path(name: str, eta: float, x0: Array, steps: int) -> Array:
    """Every point of the hand-written NumPy run, ``(steps+1, *batch, 2)``."""
    step, path = hand_step(name, eta, np), [x0]
    for _ in range(steps):
        path.append(step(path[-1]))
    return np.stack(path)


def jax_loop(name: str, eta: float) -> tuple[Loop, Callable[[Array, int], Array]] | None:
    """``(run, path)`` of the hand-written step under ``jit`` + ``lax.scan``; None without JAX."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    step = hand_step(name, eta, jax.numpy)

    def scan(x0: Array, steps: int, keep: bool) -> Any:
        def body(x: Any, _: Any) -> tuple[Any, Any]:
            x = step(x)
            return x, (x if keep else None)

        return jax.lax.scan(body, x0, None, length=steps)

    last = jax.jit(lambda x0, steps: scan(x0, steps, False)[0], static_argnums=1)
    every = jax.jit(lambda x0, steps: scan(x0, steps, True)[1], static_argnums=1)

    def run(x0: Array, steps: int) -> Array:
        return np.asarray(last(x0, steps).block_until_ready())

    def path(x0: Array, steps: int) -> Array:
        return np.concatenate([x0[None], np.asarray(every(x0, steps))])

    return run, path


def scaleinv_loops(problem: Problem, name: str, eta: float) -> tuple[Loop, Loop]:
    """``minimize`` (``record="last"``) and the compiled step alone in a bare loop."""
    rule = rules.REGISTRY[name](eta)
    step = compiled_rule(problem, rule).step

    def driver(x0: Array, steps: int) -> Array:
        return scaleinv.minimize(problem, rule, x0, steps, record="last").x[-1]

    def bare(x0: Array, steps: int) -> Array:
        x = x0
        for _ in range(steps):
            x = x + step(x, None)[0]
        return x

    return driver, bare


# -- the benchmark ---------------------------------------------------------------------------
def check(problem: Problem, names: Sequence[str], size: int = 1000, steps: int = 100) -> list[str]:
    """Where an implementation leaves scaleinv's trajectory (relative to each point's size)."""
    x0 = starts(size, seed=1)
    problems = []
    # every rule derived and compiled before JAX is imported (the symbolic time budget forks,
    # which does not mix with JAX's threads)
    refs = {
        name: scaleinv.minimize(
            problem, rules.REGISTRY[name](RULES[name]), x0, steps, record="all"
        ).x
        for name in names
    }
    for name in names:
        eta, ref = RULES[name], refs[name]
        driver, bare = scaleinv_loops(problem, name, eta)
        paths = {"numpy": numpy_path(name, eta, x0, steps)}
        finals = {"scaleinv": driver(x0, steps), "steps": bare(x0, steps)}
        jax = jax_loop(name, eta)
        if jax is not None:
            paths["jax"] = jax[1](x0, steps)
        for impl, path in paths.items():
            err = np.abs(path - ref).max(axis=-1) / np.maximum(np.abs(ref).max(axis=-1), 1e-300)
            if path.shape != ref.shape or not np.all(err <= RTOL):
                problems.append(f"{name}: {impl} leaves scaleinv's trajectory ({err.max():.1e})")
        for impl, final in finals.items():
            if not np.allclose(final, ref[-1], rtol=RTOL, atol=0):
                problems.append(f"{name}: {impl} does not end where record='all' ends")
    return problems


Runs = dict[tuple[str, str], list[float]]


def measure(
    problem: Problem, names: Sequence[str], size: int, steps: int, repeats: int, budget: float
) -> tuple[Runs, dict[str, float], dict[str, list[float]]]:
    """Seconds of every run per (rule, implementation), round-robin; JAX's compile times; and
    the process (CPU) seconds of scaleinv's runs, which load from other processes on a shared
    machine inflates less than the wall clock."""
    x0 = starts(size)
    runs: Runs = {}
    compile_seconds = {}
    cpu: dict[str, list[float]] = {}
    for name in names:
        eta = RULES[name]
        driver, bare = scaleinv_loops(problem, name, eta)
        loops: dict[str, Loop] = {"scaleinv": driver, "steps": bare, "numpy": numpy_loop(name, eta)}
        jax = jax_loop(name, eta)
        if jax is not None:
            start = time.perf_counter()
            jax[0](x0, steps)  # tracing and compiling happen on the first call
            compile_seconds[name] = time.perf_counter() - start
            loops["jax"] = jax[0]
        for loop in loops.values():
            loop(x0[:1000], 2)  # warm-up (scaleinv compiles its kernels here)
        for impl in loops:
            runs[name, impl] = []
        cpu[name] = []
        for _ in range(repeats):
            for impl, loop in loops.items():
                done = runs[name, impl]
                if done and sum(done) >= budget:
                    continue
                start, start_cpu = time.perf_counter(), time.process_time()
                loop(x0, steps)
                done.append(time.perf_counter() - start)
                if impl == "scaleinv":
                    cpu[name].append(time.process_time() - start_cpu)
    return runs, compile_seconds, cpu


def table(
    runs: Runs,
    compile_seconds: dict[str, float],
    size: int,
    steps: int,
    repeats: int,
    cpu: dict[str, list[float]] | None = None,
) -> str:
    """The side-by-side table of medians and ratios (and scaleinv's median CPU seconds)."""
    head = f"{'rule':<8}" + "".join(f"{impl + ' s':>12}" for impl in IMPLS)
    head += f"{'scaleinv/numpy':>16}{'scaleinv/jax':>14}{'driver share':>14}"
    lines = [
        f"{size:,} starts x {steps} steps of the comparison problem, median of {repeats} runs",
        head,
        "-" * len(head),
    ]
    short = []
    for name in RULES:
        if (name, "scaleinv") not in runs:
            continue
        med, cells = {}, []
        for impl in IMPLS:
            done = runs.get((name, impl), [])
            if not done:
                cells.append(f"{'-':>12}")
                continue
            med[impl] = float(np.median(done))
            mark = "*" if len(done) < repeats else " "
            short += [f"{name} {impl}: {len(done)} run(s)"] if mark == "*" else []
            cells.append(f"{med[impl]:>11.4g}{mark}")
        ours = med["scaleinv"]
        vs_jax = f"{ours / med['jax']:>13.2f}x" if "jax" in med else f"{'-':>14}"
        share = (ours - med["steps"]) / ours
        lines.append(
            f"{name:<8}{''.join(cells)}{ours / med['numpy']:>15.2f}x{vs_jax}{share:>14.0%}"
        )
    lines.append(
        "driver share: (scaleinv - steps) / scaleinv, the part of minimize's time spent outside "
        "the rule's own step (statuses, divergence check with one loss evaluation per step)"
    )
    if cpu:
        lines.append(
            "scaleinv CPU s (process time of the same runs, median): "
            + ", ".join(f"{k} {np.median(v):.3g}" for k, v in cpu.items() if v)
        )
    if compile_seconds:
        lines.append(
            "jax compile (first call, not in the table): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in compile_seconds.items())
        )
    else:
        lines.append("jax: not installed (pip install 'scaleinv[bench]')")
    if short:
        lines.append("* fewer runs (budget reached): " + "; ".join(short))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per entry")
    parser.add_argument("--rules", nargs="+", choices=sorted(RULES), default=list(RULES))
    parser.add_argument("--quick", action="store_true", help="10**4 starts, 20 steps, 2 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.starts, args.steps, args.repeats = 10_000, 20, 2
    problem = comparison_problem()
    problems = check(problem, args.rules)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("all implementations follow scaleinv's trajectories (1,000 starts x 100 steps)\n")
    runs, compile_seconds, cpu = measure(
        problem, args.rules, args.starts, args.steps, args.repeats, args.budget
    )
    print(table(runs, compile_seconds, args.starts, args.steps, args.repeats, cpu))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
