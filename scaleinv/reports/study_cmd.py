"""``scaleinv study SPEC [--starts N]``: every rule from many starts in the spec's region.

Prints, per rule, the fraction of starts that converged to each minimum found, the steps to
reach the tolerance (quartiles) and the runs that did not converge, by status.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scaleinv.reports.exit_status import exit_status_help
from scaleinv.reports.text import format_table
from scaleinv.symbolic import load_spec
from scaleinv.symbolic.spec import MAX_STARTS

__all__ = ["register", "cmd_study"]

_EPILOG = """\
The spec names the region in a [study] table:
  [study]
  region = [[-3, 3], [-3, 3]]   [low, high] per input
  starts = 400                  a grid for 2-D inputs, random starts otherwise
  steps = 100                   step limit (default: the spec's [run] steps)
  tol = 1e-6                    |dL/dx| at which a run has converged
`scaleinv report` adds the same study (table and basin map) to the PDF.

""" + exit_status_help("the study table was printed (whatever share of runs converged)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``study`` subcommand to the CLI's subparsers."""
    parser = sub.add_parser(
        "study",
        help="run every rule from many starts: success per minimum, steps, failures",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, help="problem spec file (TOML) with a [study] table")
    parser.add_argument("--starts", type=int, default=None, metavar="N", help="number of starts")
    parser.set_defaults(func=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    """Run the study and print its table."""
    from scaleinv.reports.cli import check_count
    from scaleinv.reports.study import describe_minima, run_study, study_rows

    check_count("--starts", args.starts, 1, MAX_STARTS, "starts")
    spec = load_spec(args.spec)
    began = time.monotonic()
    print(f"scaleinv study {args.spec}: {len(spec.rules)} rule(s)", file=sys.stderr, flush=True)
    study = run_study(spec, args.starts)
    o = study.options
    print(f"{spec.title}\n")
    region = " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in o.region)
    print(
        f"{len(study.starts)} starts in {region}, up to {o.steps} steps, converged when "
        f"|dL/dx| <= {o.tol:g} ({time.monotonic() - began:.1f} s)"
    )
    names = [str(x) for x in spec.problem.inputs]
    print("\n".join(describe_minima(study, names)) or "no run converged")
    print()
    heads, rows = study_rows(study)
    print(format_table(heads, rows, wrap={len(heads) - 1: 40}))
    return 0
