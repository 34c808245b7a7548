"""``scaleinv study SPEC [--starts N]``: every rule from many starts in the spec's region.

Prints the minima the runs reached (each with its loss and share of the runs), then per rule
the share of its starts that ended at each, the steps to reach the tolerance (quartiles) and
the runs that reached no minimum, by why.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

from scaleinv.reports.engine_option import add_engine_option, engine_line
from scaleinv.reports.exit_status import exit_status_help
from scaleinv.reports.study_text import FAILED_WIDTH, RUNS
from scaleinv.reports.text import WIDTH, format_table, numeric_inverse_line
from scaleinv.symbolic import load_spec
from scaleinv.symbolic.spec import MAX_STARTS

__all__ = ["register", "cmd_study"]

_EPILOG = """\
The spec names the region in a [study] table:
  [study]
  region = [[-3, 3], [-3, 3]]   [low, high] per input
  starts = 400                  a grid for 2-D inputs (the nearest square), else exact
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
    add_engine_option(parser)
    parser.set_defaults(func=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    """Run the study and print the minima reached and the table of rules."""
    from scaleinv.numeric.rules import make_rule
    from scaleinv.reports.cli import check_count
    from scaleinv.reports.study import run_study, study_options
    from scaleinv.reports.study_text import minima_rows, study_intro, study_rows

    check_count("--starts", args.starts, 1, MAX_STARTS, "starts")
    spec = load_spec(args.spec)
    options = study_options(spec, args.starts)  # a bad table or --starts: before any work
    began = time.monotonic()
    print(
        f"scaleinv study {args.spec}: {len(spec.rules)} rule(s) from {options.layout()}",
        file=sys.stderr,
        flush=True,
    )
    study = run_study(spec, args.starts, args.engine)
    o = study.options
    print(f"{spec.title}\n")
    region = " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in o.region)
    head = (
        f"{len(spec.rules)} rule(s) from {o.layout()} in {region}, up to {o.steps} steps; "
        f"converged when |dL/dx| <= {o.tol:g} ({time.monotonic() - began:.1f} s). "
        "A converged run ends at a minimum where the Hessian of L has no negative eigenvalue "
        "and the point lies within one region width of the region. "
    )
    names = [str(x) for x in spec.problem.inputs]
    print(textwrap.fill(head + " ".join(study_intro(study, names)), WIDTH))
    note = numeric_inverse_line(spec.problem, [make_rule(r) for r in spec.rules])
    if note is not None:
        print(f"\n{note}")
    rows = minima_rows(study)
    if rows:
        print()
        print(format_table(["minimum", f"({', '.join(names)})", "loss", RUNS], rows))
    print()
    heads, rows = study_rows(study)
    print(format_table(heads, rows, wrap={len(heads) - 1: FAILED_WIDTH}))
    print(engine_line((r.label, r.engine) for r in study.rules))
    return 0
