"""Many starts chunked on a local Dask cluster vs the in-memory run.

The comparison problem ``P = (x0, x1**2)``, ``L = y0**2 + y1**2``, PG with ``eta = 0.3``,
``--steps`` steps (default 20) from ``--starts`` random starts (default 10**7) in
``[-3, 3]^2``:

* **dask** — ``scaleinv.minimize`` over a Dask array of starts generated on the workers, chunks
  of ``--chunk`` starts on a ``LocalCluster`` of two worker processes (one thread each); only
  the final points and statuses come back (``dask.compute(t.x[-1], t.status)``); a worker
  runs ``minimize``'s streaming loop on its chunk and keeps only the recorded steps (the
  default ``record="ends"``: 2 x chunk x (n + m + 3) x 8 bytes packed). Each worker's peak
  resident memory is printed.
* **in-memory** (baseline) — ``scaleinv.minimize`` on a NumPy array of ``--memory-starts``
  starts (default 10**6), in this process.

Both runs are first checked to agree exactly on the first chunk. Times are medians of
``--repeats`` interleaved rounds (both runs once per round, in a shuffled order; the cluster
idles during the in-memory run); the table gives seconds per run and microseconds per start,
and the ratio of the per-start times (in-memory / dask).

Usage::

    python benchmarks/dask_starts.py                 # 10**7 starts x 20 PG steps
    python benchmarks/dask_starts.py --quick         # 2 * 10**5 starts, smoke run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (before numpy: one BLAS thread)
import numpy as np  # noqa: E402

PEAK_RSS = "__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10**7)
    parser.add_argument("--memory-starts", type=int, default=10**6)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 * 10**5 starts, 10**5 in memory")
    args = parser.parse_args(argv)
    # Imported here: worker processes re-import this script (spawn).
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import scaleinv
    from scaleinv import rules

    if args.quick:
        args.starts, args.memory_starts, args.chunk = 2 * 10**5, 10**5, 50_000
    problem = scaleinv.Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    rule = rules.pg(0.3)
    starts = da.random.default_rng(0).uniform(-3, 3, (args.starts, 2), chunks=(args.chunk, 2))

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        first = starts[: min(args.chunk, 20_000)]
        lazy = scaleinv.minimize(problem, rule, first, args.steps)
        got = dask.compute(lazy.x[-1], lazy.status)
        want = scaleinv.minimize(problem, rule, first.compute(), args.steps)
        if not (np.array_equal(got[0], want.x[-1]) and np.array_equal(got[1], want.status)):
            print("dask and in-memory runs disagree", file=sys.stderr)
            return 1

        def run_dask() -> None:
            t = scaleinv.minimize(problem, rule, starts, args.steps)
            final, status = dask.compute(t.x[-1], t.status)
            assert final.shape == (args.starts, 2) and status.shape == (args.starts,)

        x0 = np.random.default_rng(0).uniform(-3, 3, (args.memory_starts, 2))
        tools = {"dask": run_dask, "in-memory": lambda: scaleinv.minimize(problem, rule, x0,
                                                                          args.steps)}  # fmt: skip
        med = _harness.medians(_harness.interleave(tools, args.repeats))
        peaks = {k: v / 2**10 for k, v in client.run(eval, PEAK_RSS).items()}  # KiB -> MiB

    per_start = {"dask": med["dask"] / args.starts}
    per_start["in-memory"] = med["in-memory"] / args.memory_starts
    rows = [
        [f"dask: 2 workers x 1 thread, chunk {args.chunk}", args.starts, med["dask"],
         per_start["dask"] * 1e6],
        ["in-memory (baseline), this process", args.memory_starts, med["in-memory"],
         per_start["in-memory"] * 1e6],
    ]  # fmt: skip
    title = f"PG (eta 0.3), {args.steps} steps, comparison problem; median of {args.repeats}"
    print(_harness.table(title, ["run", "starts", "seconds", "us/start"], rows))
    ratio = _harness.ratio(per_start["in-memory"], per_start["dask"])
    print(f"\nper-start speed-up of dask over in-memory: {ratio}")
    chunk_mb = 2 * args.chunk * (2 + 2 + 3) * 8 / 2**20  # record="ends": steps 0 and last
    print(f"one chunk's packed result (steps 0 and {args.steps}): {chunk_mb:.0f} MiB")
    for worker, peak in peaks.items():
        print(f"peak resident memory of worker {worker}: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
