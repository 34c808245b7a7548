"""What a budget's worker process costs: a step counted in a worker against the same step
counted in this process (no isolation, the floor).

Steps, each run once per round in a shuffled order (medians of ``--rounds``, wall seconds):

* ``noop`` — ``1 + 1``: the bare cost of a budget;
* ``simplify`` — ``simplify(sin(x)**2 + cos(x)**2 + x)`` on a fresh symbol each round (so no
  cache helps either side);
* ``local_inverse`` — the closed-form inverse of ``P = (x0**3 + x0, x1**2)``, a fresh problem each
  round (one worker for the whole derivation).

Workers are forked by a fork server (:mod:`scaleinv.symbolic.budget`), started by the first
budget of a thread: that one-off start is printed apart. ``--jax`` imports JAX and runs a
jitted function first, so that its threads are alive while the budgets run.

Usage::

    python benchmarks/budget_overhead.py              # median of 15 rounds
    python benchmarks/budget_overhead.py --quick      # 2 rounds
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (before numpy: one BLAS thread)
import sympy as sp  # noqa: E402

import scaleinv.symbolic.budget as budget  # noqa: E402
from scaleinv import Problem  # noqa: E402
from scaleinv.symbolic.budget import with_budget  # noqa: E402
from scaleinv.symbolic.inverse import local_inverse  # noqa: E402


def _simplify(k: int) -> Callable[[], object]:
    x = sp.Symbol(f"x{k}", real=True)
    return lambda: sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2 + x)


def _inverse(k: int) -> Callable[[], object]:
    p = Problem.from_strings([f"a{k}", f"b{k}"], [f"a{k}**3 + a{k}", f"b{k}**2"])
    return lambda: local_inverse(p, budget=10**7).branches


STEPS: dict[str, Callable[[int], Callable[[], object]]] = {
    "noop": lambda k: lambda: 1 + 1,
    "simplify": _simplify,
    "local_inverse": _inverse,
}
WAYS = {"in-process": False, "worker": True}


def run(step: str, isolate: bool, fresh: Callable[[], int]) -> None:
    """One budgeted ``step`` on fresh symbols, in a worker or counted in this process."""
    fn = STEPS[step](fresh())
    budget._IN_WORKER = not isolate  # in-process: the budgets inside local_inverse too
    try:
        with_budget(fn, 10**8, step, isolate=isolate)
    finally:
        budget._IN_WORKER = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--jax", action="store_true", help="JAX's threads alive meanwhile")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    if args.jax:
        import jax

        jax.jit(lambda v: v + 1)(1.0).block_until_ready()
    counter = itertools.count()
    started = time.perf_counter()
    with_budget(lambda: None, 1000, "start")  # the fork server's one-off start
    start_s = time.perf_counter() - started
    tools = {f"{step} {way}": (lambda step=step, isolate=isolate: run(step, isolate,
                                                                        counter.__next__))
             for step in STEPS for way, isolate in WAYS.items()}  # fmt: skip
    med = _harness.medians(_harness.interleave(tools, rounds))
    rows = [[step, med[f"{step} in-process"] * 1e3, med[f"{step} worker"] * 1e3,
             _harness.ratio(med[f"{step} worker"], med[f"{step} in-process"])]
            for step in STEPS]  # fmt: skip
    title = f"budgeted steps, medians of {rounds} interleaved rounds (ms)"
    title += ", JAX threads alive" if args.jax else ""
    print(_harness.table(title, ["step", "in-process ms", "worker ms", "worker/in-process"], rows))
    print(f"first budget of the process (starts the fork server, if any): {start_s * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
