"""What every benchmark script shares, so that its comparisons are fair and its tables honest.

* **One BLAS thread**, set here before NumPy is imported (import this module first): every tool
  gets the same single core's worth of linear algebra, and the machine's other cores do not
  leak into one tool's time. ``SCALEINV_BENCH_THREADS`` overrides it.
* **Interleaved rounds**: every tool runs once per round, in an order shuffled per round, so load
  drift on a shared machine hits all tools alike; the table shows medians.
* **The machine's state with every table**: load average, cores, BLAS threads.
* **Missing anchors are loud**: an anchor that was asked for and cannot run prints one
  ``MISSING`` line saying why, never a silently shorter table.

Usage inside a script (``benchmarks/`` is on ``sys.path`` when a script runs)::

    import _harness  # before numpy
    runs = _harness.interleave({"scaleinv": f, "numpy": g}, rounds=5)
    print(_harness.table("title", ["tool", "s"], rows))
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

_BLAS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_CPU_THREADS")
THREADS = os.environ.get("SCALEINV_BENCH_THREADS", "1")
if "numpy" in sys.modules:  # too late to pin the threads of its BLAS
    print("MISSING one BLAS thread: numpy was imported before _harness", file=sys.stderr)
for _name in _BLAS:
    os.environ[_name] = THREADS
# JAX's CPU client: Eigen's matrix products on one thread, like the BLAS
if "--xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    os.environ["XLA_FLAGS"] = flags.strip()

Runs = dict[str, list[float]]


def machine() -> str:
    """One line: load average, cores and BLAS threads (printed with every table)."""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"machine: load average {load} (1, 5, 15 min), {os.cpu_count()} cores, " + (
        f"BLAS threads {THREADS}"
    )


def rounds_of(names: Sequence[str], rounds: int, seed: int = 0) -> Iterator[str]:
    """Every name once per round, in an order shuffled per round (``rounds`` rounds)."""
    order, shuffle = list(names), random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(order)
        yield from order


def interleave(
    tools: Mapping[str, Callable[[], Any]],
    rounds: int,
    *,
    seed: int = 0,
    budget: float = float("inf"),
    clock: Callable[[], float] = time.perf_counter,
    cpu: Runs | None = None,
) -> Runs:
    """Seconds of each tool per round: every tool once per round, in a shuffled order.

    A tool whose runs add up to ``budget`` seconds stops repeating (see :func:`short`).
    ``cpu``, if given, receives the CPU seconds of the process (all its threads) per run
    (on a shared machine they vary less than the wall-clock seconds).
    """
    runs: Runs = {name: [] for name in tools}
    for name in rounds_of(list(tools), rounds, seed):
        if runs[name] and sum(runs[name]) >= budget:
            continue
        start, start_cpu = clock(), time.process_time()
        tools[name]()
        runs[name].append(clock() - start)
        if cpu is not None:
            cpu.setdefault(name, []).append(time.process_time() - start_cpu)
    return runs


def medians(runs: Runs) -> dict[str, float]:
    """The median seconds of each tool that ran."""
    return {name: statistics.median(done) for name, done in runs.items() if done}


def short(runs: Runs, rounds: int) -> list[str]:
    """The tools that ran fewer than ``rounds`` times (their budget ran out), as notes."""
    return [f"{name}: {len(done)} of {rounds} runs (budget)" for name, done in runs.items()
            if len(done) < rounds]  # fmt: skip


def ratio(ours: float | None, theirs: float | None) -> str:
    """``ours / theirs`` as ``1.23x``, or ``-`` when either is missing."""
    if ours is None or theirs is None or theirs <= 0:
        return "-"
    return f"{ours / theirs:.2f}x"


def missing(asked: Iterable[str], why: Mapping[str, str], kind: str = "anchor") -> list[str]:
    """Print (to stdout, with the table) one ``MISSING`` line per asked-for name in ``why``."""
    lines = [f"MISSING {kind} {name}: {why[name]}" for name in asked if name in why]
    for line in lines:
        print(line, flush=True)
    return lines


def installed(module: str) -> str | None:
    """None when ``module`` imports, else why not (for :func:`missing`)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'scaleinv[bench]')"
    return None


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table under ``title`` and the machine line; floats with 4 significant digits."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[k]) for r in body)) if body else len(c)
              for k, c in enumerate(columns)]  # fmt: skip
    line = "  ".join
    out = [title, machine(), line(c.rjust(w) for c, w in zip(columns, widths))]
    out.append("-" * len(out[-1]))
    out += [line(c.rjust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(out)
