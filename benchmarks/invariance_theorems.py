"""Time invariance verdicts by theorem against the expression route, on a diffusion step.

The problem: the periodic diffusion step ``P_i = x_i + 0.1((x_{i+1} − 2x_i + x_{i−1})
+ 0.5 x_i³)`` with ``L = ½|P − y*|²``, for several sizes ``n``. The questions: Newton, IG, PG
and GD under a diagonal symbolic scaling ``x = diag(s_0, …, s_{n−1}) u`` and under
``P -> c P`` — eight verdicts per size. Two routes answer them:

* ``theorem``: :func:`scaleinv.analysis.invariance.scale_invariance` with ``route="theorem"``
  (the matrix-level theorems of :mod:`scaleinv.analysis.theorems`, hypotheses and GD's
  counterexample checked numerically with sparse pointwise derivatives);
* ``expression`` (the baseline): ``route="expression"``, simplifying the two concrete updates
  within ``--budget`` seconds per verdict.

Each row is the median, over ``--repeats`` interleaved rounds (both routes once per round, in a
shuffled order), of the time to build a fresh problem and give all eight verdicts (nothing
cached but the theorems themselves, derived once per process: that time is printed first).
The verdicts are printed with the times; the expression route is run only up to
``--expression-max`` inputs (beyond it every verdict would only exhaust its budget).

Usage::

    python benchmarks/invariance_theorems.py                 # n = 4, 64, 256, median of 3
    python benchmarks/invariance_theorems.py --quick         # n = 4, 16, one run
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (before numpy: one BLAS thread)
import sympy as sp  # noqa: E402

from scaleinv import Problem, rules
from scaleinv.analysis.invariance import InputScaling, OutputScaling, scale_invariance
from scaleinv.analysis.theorems import theorems

ETA = sp.Symbol("eta", positive=True)


def diffusion(n: int) -> Problem:
    """The periodic diffusion step with a cubic source term."""
    xs = [f"x{i}" for i in range(n)]
    outs = [
        f"x{i} + 0.1*((x{(i + 1) % n} - 2*x{i} + x{(i - 1) % n}) + 0.5*x{i}**3)" for i in range(n)
    ]
    return Problem.from_strings(xs, outs, target=[str(0.1 * (i % 3)) for i in range(n)])


def verdicts(n: int, route: str, budget: float) -> str:
    """The eight verdicts on a fresh problem, summarised."""
    problem = diffusion(n)
    found = []
    for transform in (InputScaling([f"s{i}" for i in range(n)]), OutputScaling("c")):
        for rule in ("newton", "ig", "pg", "gd"):
            r = scale_invariance(
                problem, rules.REGISTRY[rule](ETA), transform, budget=budget, rng=0, route=route
            )
            found.append(f"{rule}:{r.verdict.value[0]}")
    counts = Counter(v.split(":")[1] for v in found)
    summary = " ".join(found) + f"  ({', '.join(f'{k}={c}' for k, c in sorted(counts.items()))})"
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--expression-max", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = [4, 16], 1
    start = time.perf_counter()
    theorems()
    print(f"derive all theorems once: {time.perf_counter() - start:.2f} s\n")
    rows = []
    for n in args.sizes:
        routes = ["theorem", "expression"] if n <= args.expression_max else ["theorem"]
        said: dict[str, str] = {}

        def answer(route: str, n: int = n, said: dict[str, str] = said) -> None:
            said[route] = verdicts(n, route, args.budget)

        tools = {route: (lambda route=route: answer(route)) for route in routes}
        med = _harness.medians(_harness.interleave(tools, args.repeats, seed=n))
        for route in routes:
            ratio = _harness.ratio(med[route], med["theorem"]) if route != "theorem" else ""
            rows.append([n, route, med[route], ratio, said[route]])
    title = f"eight invariance verdicts per size, medians of {args.repeats} interleaved rounds"
    print(_harness.table(title, ["n", "route", "s", "route/theorem", "verdicts"], rows))


if __name__ == "__main__":
    main()
