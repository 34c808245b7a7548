"""``scaleinv export SPEC --to FILE.py``: a standalone module of the spec's kernels and steps."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from scaleinv.cli.exit_status import exit_status_help
from scaleinv.numeric.export import export
from scaleinv.numeric.flavors import FLAVORS
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.text import WIDTH
from scaleinv.symbolic import load_spec

__all__ = ["register", "cmd_export"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand to the CLI's subparsers."""
    exp = sub.add_parser(
        "export",
        help="write a standalone NumPy, JAX or PyTorch module of the kernels",
        description="Write FILE.py: a standalone module (it imports only NumPy, or JAX or "
        "PyTorch with --flavor) with the kernels of SPEC's problem (P, J, the gradient, H, the "
        "local inverse) and a step function per rule. Prints 'wrote FILE.py', and a note per "
        "rule of the spec the module cannot hold.",
        epilog=exit_status_help("the module was written"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exp.add_argument("spec", type=Path, help="problem spec file (TOML)")
    exp.add_argument("--to", type=Path, required=True, metavar="FILE.py", help="output file")
    exp.add_argument(
        "--flavor",
        choices=sorted(FLAVORS),
        default="numpy",
        help="framework the module is written for (default numpy; jax and torch need "
        "scaleinv[jax], scaleinv[torch])",
    )
    exp.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Write a standalone NumPy (JAX, PyTorch) module with the spec's kernels and rule steps."""
    spec = load_spec(args.spec)
    rules = [make_rule(r) for r in spec.rules]
    path = export(spec.problem, args.to, rules=rules, title=spec.title, flavor=args.flavor)
    print(f"wrote {path}")
    docstring = path.read_text(encoding="utf-8").split('"""')[1]
    for line in docstring.splitlines():  # a rule of the spec the module could not hold
        if line.startswith("Not exported: "):
            note = "note: not exported: " + line.removeprefix("Not exported: ")
            print("\n".join(textwrap.wrap(note, WIDTH, subsequent_indent="  ")))
    return 0
