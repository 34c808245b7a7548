"""What a budget that always holds costs: a forked worker process against a cooperative
in-process signal (the baseline, the way budgets worked before: ``SIGALRM`` inside the step).

Steps, each run ``--repeats`` times round-robin (medians, wall and CPU of this process plus its
workers):

* ``noop`` — ``1 + 1``: the bare cost of a budget;
* ``simplify`` — ``simplify(sin(x)**2 + cos(x)**2 + x)`` on a fresh symbol each round (so no
  cache helps either side);
* ``local_inverse`` — the closed-form inverse of ``P = (x0**3 + x0, x1**2)``, a fresh problem each
  round (one worker for the whole derivation).

Usage::

    python benchmarks/budget_overhead.py              # median of 15
    python benchmarks/budget_overhead.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import sympy as sp

import scaleinv.symbolic.budget as budget
from scaleinv import Problem
from scaleinv.symbolic.budget import cpu_clock, with_budget
from scaleinv.symbolic.inverse import local_inverse


def _simplify(k: int) -> Callable[[], object]:
    x = sp.Symbol(f"x{k}", real=True)
    return lambda: sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2 + x)


def _inverse(k: int) -> Callable[[], object]:
    p = Problem.from_strings([f"a{k}", f"b{k}"], [f"a{k}**3 + a{k}", f"b{k}**2"])
    return lambda: local_inverse(p, budget=20.0).branches


STEPS: dict[str, Callable[[int], Callable[[], object]]] = {
    "noop": lambda k: lambda: 1 + 1,
    "simplify": _simplify,
    "local_inverse": _inverse,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    ways = {"signal (baseline)": False, "worker process": True}
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for k in range(args.repeats):
        for step, make in STEPS.items():
            for way, isolate in ways.items():
                fn = make(k * 2 + isolate)
                # the baseline: every budget, also those inside local_inverse, by signal
                budget._IN_WORKER = not isolate
                started, used = time.perf_counter(), cpu_clock()
                with_budget(fn, 60.0, step, isolate=isolate)
                wall.setdefault((step, way), []).append(time.perf_counter() - started)
                cpu.setdefault((step, way), []).append(cpu_clock() - used)
                budget._IN_WORKER = False
    print(f"medians of {args.repeats} runs (ms); ratio = worker / signal")
    print(
        f"{'step':<15}{'signal wall':>13}{'worker wall':>13}{'ratio':>8}{'signal cpu':>12}"
        f"{'worker cpu':>12}"
    )
    for step in STEPS:
        base = statistics.median(wall[step, "signal (baseline)"]) * 1e3
        work = statistics.median(wall[step, "worker process"]) * 1e3
        base_cpu = statistics.median(cpu[step, "signal (baseline)"]) * 1e3
        work_cpu = statistics.median(cpu[step, "worker process"]) * 1e3
        print(
            f"{step:<15}{base:>13.1f}{work:>13.1f}{work / base:>8.2f}{base_cpu:>12.1f}"
            f"{work_cpu:>12.1f}"
        )


if __name__ == "__main__":
    main()
