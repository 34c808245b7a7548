"""Time ``scaleinv run`` and ``scaleinv report`` on the shipped 256-input diffusion step.

Issue 7 asks both commands to finish in under a minute on ``reports/diffusion.toml`` (one
explicit nonlinear-diffusion step, n = 256). Each command runs as a fresh process (the way a
user runs it: imports, spec parsing, derivation, compilation and, for ``report``, LaTeX
included); the named baseline is the same command on ``reports/comparison.toml``, the
book's two-input comparison problem. Printed: the median of ``--repeats`` wall times per
command and spec, the ratio to the baseline and to the one-minute budget.

Usage::

    python benchmarks/report.py                 # median of 3, PDF included
    python benchmarks/report.py --repeats 1 --no-pdf
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 60.0
SPECS = {"diffusion (n = 256)": "diffusion.toml", "baseline: comparison (n = 2)": "comparison.toml"}


def wall(argv: list[str]) -> float:
    """Seconds of one run of ``python -m scaleinv ARGV`` (it must succeed)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scaleinv", *argv], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pdf", action="store_true", help="report without LaTeX")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for command in ("run", "report"):
            medians = {}
            for name, stem in SPECS.items():
                argv = [command, str(ROOT / "reports" / stem)]
                if command == "report":
                    argv += ["--out", f"{tmp}/{Path(stem).stem}"]
                    argv += ["--no-pdf"] if args.no_pdf else []
                medians[name] = statistics.median(wall(argv) for _ in range(args.repeats))
            base = medians[next(n for n in SPECS if n.startswith("baseline"))]
            for name, seconds in medians.items():
                rows.append((command, name, seconds, seconds / base, seconds / BUDGET))
    pdf = " (no PDF)" if args.no_pdf else ""
    print(f"wall time, median of {args.repeats} fresh processes{pdf}")
    print(f"{'command':8} {'spec':30} {'seconds':>8} {'x baseline':>11} {'x 60 s':>8}")
    for command, name, seconds, ratio, budget in rows:
        print(f"{command:8} {name:30} {seconds:8.1f} {ratio:11.2f} {budget:8.2f}")


if __name__ == "__main__":
    main()
