"""Time ``scaleinv run`` and ``scaleinv report`` on the shipped 4,096-point diffusion step.

Issue 7 asks both commands to finish in under a minute on ``reports/diffusion.toml`` (one
explicit nonlinear-diffusion step, written once over the index since issue 18, n = 4,096). Each
command runs as a fresh process (the way a user runs it: imports, spec parsing, derivation,
compilation and, for ``report``, LaTeX included); the named baseline is the same command on
``reports/comparison.toml``, the book's two-input comparison problem. Printed: the median of
``--repeats`` interleaved rounds (every command and spec once per round, in a shuffled order) of
the wall times, the ratio to the baseline and to the one-minute budget.

Usage::

    python benchmarks/report.py                 # median of 3, PDF included
    python benchmarks/report.py --repeats 1 --no-pdf
    python benchmarks/report.py --quick         # the baseline spec only, no PDF, one round
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (one BLAS thread, inherited by the commands)

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 60.0
SPECS = {
    "diffusion (n = 4,096)": "diffusion.toml",
    "baseline: comparison (n = 2)": "comparison.toml",
}


def command(argv: list[str]) -> None:
    """One run of ``python -m scaleinv ARGV`` (it must succeed)."""
    subprocess.run([sys.executable, "-m", "scaleinv", *argv], check=True, capture_output=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pdf", action="store_true", help="report without LaTeX")
    parser.add_argument("--quick", action="store_true", help="baseline only, no PDF, one round")
    args = parser.parse_args(argv)
    specs = {k: v for k, v in SPECS.items() if k.startswith("baseline") or not args.quick}
    no_pdf, repeats = args.no_pdf or args.quick, 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, list[str]] = {}
        for verb in ("run", "report"):
            for name, stem in specs.items():
                cli = [verb, str(ROOT / "reports" / stem)]
                if verb == "report":
                    cli += ["--out", f"{tmp}/{Path(stem).stem}"] + (["--no-pdf"] if no_pdf else [])
                runs[f"{verb} | {name}"] = cli
        tools = {key: (lambda cli=cli: command(cli)) for key, cli in runs.items()}
        med = _harness.medians(_harness.interleave(tools, repeats))
    baseline = next(n for n in SPECS if n.startswith("baseline"))
    rows = []
    for key, seconds in med.items():
        verb, name = key.split(" | ")
        base = med[f"{verb} | {baseline}"]
        rows.append([verb, name, seconds, _harness.ratio(seconds, base), seconds / BUDGET])
    title = f"wall time, median of {repeats} interleaved fresh processes"
    title += " (no PDF)" if no_pdf else ""
    print(_harness.table(title, ["command", "spec", "seconds", "x baseline", "x 60 s"], rows))


if __name__ == "__main__":
    main()
