"""``scaleinv derive SPEC``: the exact derivatives, local-inverse branches and each rule's step.

Past :data:`~scaleinv.reports.content.FEW` inputs it prints representative entries instead
(:mod:`scaleinv.cli.large`).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import sympy as sp

from scaleinv.cli.exit_status import exit_status_help
from scaleinv.errors import ScaleinvError
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.content import FEW
from scaleinv.reports.text import WIDTH, format_expr, indented_formula
from scaleinv.symbolic import IndexedProblem, RuleSpec, Spec, load_spec

__all__ = ["register", "cmd_derive"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``derive`` subcommand to the CLI's subparsers."""
    derive = sub.add_parser(
        "derive",
        help="print J, ∇L, H, inverse branches and each Δx",
        description="Print the exact derivations of SPEC's problem: P(x), L(y), the nonzero "
        "entries of the Jacobian, the gradient, the Hessian (on and above the diagonal), the "
        "local inverse's branches (each with where it is valid and its periods, or why it is "
        f"solved numerically) and each rule's update Δx with η symbolic. Past {FEW} inputs: the "
        "counts, representative entries and each rule's step in structured form.",
        epilog=exit_status_help("the derivations were printed"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    derive.add_argument("spec", type=Path, help="problem spec file (TOML)")
    derive.set_defaults(func=cmd_derive)


def cmd_derive(args: argparse.Namespace) -> int:
    """Print the exact derivatives, the inverse branches and each rule's update."""
    from scaleinv.reports.content import ETA, eta_text, symbolic_rule

    spec = load_spec(args.spec)
    rules = [make_rule(r) for r in spec.rules]  # a misnamed rule: before anything is printed
    p = spec.problem
    if isinstance(p, IndexedProblem):  # its formula and stencils, once
        from scaleinv.reports.indexed_text import indexed_derivation

        print(indexed_derivation(spec))
        return 0
    if p.n > FEW:
        from scaleinv.cli.large import large_derivation

        print(large_derivation(spec))
        return 0
    xs, ys = p.inputs, p.output_symbols
    sections = [
        ("P(x)", [(str(y), e) for y, e in zip(ys, p.outputs)]),
        ("L(y)", [("L", p.loss)]),
        ("Jacobian dP/dx (nonzero entries)", _entries("J", p.jacobian, ys, xs)),
        ("gradient dL/dx", [(f"dL/d{x}", g) for x, g in zip(xs, p.gradient)]),
        ("Hessian d2L/dx2 (nonzero entries on and above the diagonal)",
         _entries("H", p.hessian, xs, xs, upper=True)),
    ]  # fmt: skip
    print(f"{spec.title}\n")
    for title, rows in sections:
        print(f"{title}:")
        for name, expr in rows:
            print(indented_formula(name, expr))
        print()
    print(_describe_inverse(spec))
    for rule_spec, rule in zip(spec.rules, rules):
        print(f"{rule.label} update ({_settings(rule_spec, eta_text)}), with eta symbolic:")
        try:
            delta = symbolic_rule(rule).delta(p)
        except ScaleinvError as err:
            print(textwrap.fill(str(err), WIDTH, initial_indent="  ", subsequent_indent="  "))
            print()
            continue
        deltas = delta if isinstance(delta, tuple) else (delta,)
        for i, d in enumerate(deltas, 1):
            if len(deltas) > 1:
                print(f"  on branch {i} of the local inverse:")
            indent = "    " if len(deltas) > 1 else "  "
            for x, e in zip(xs, d):
                print(indented_formula(f"Δ{x}", e.subs(ETA, sp.Symbol("eta")), indent))
        print()
    return 0


def _entries(
    name: str, m: sp.Matrix, rows: Sequence[str], cols: Sequence[str], upper: bool = False
) -> list[tuple[str, sp.Expr]]:
    return [
        (f"{name}[{rows[i]}, {cols[j]}]", m[i, j])
        for i in range(m.rows)
        for j in range(i if upper else 0, m.cols)
        if m[i, j] != 0
    ]


def _describe_inverse(spec: Spec) -> str:
    p = spec.expression_problem("the local inverse")
    inverse = p.local_inverse()
    if inverse.numeric:
        text = f"local inverse: numeric (warm-started at the current x): {inverse.reason}"
        return "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent="  ")) + "\n"
    lines = ["local inverse branches of P(x) = y:"]
    for i, branch in enumerate(inverse.branches, 1):
        lines.append(f"  branch {i}:")
        for x, e in zip(p.inputs, branch.solution):
            lines.append(indented_formula(str(x), e, "    "))
        where = f"valid where: {format_expr(branch.condition)}"
        lines += textwrap.wrap(where, WIDTH, initial_indent="    ", subsequent_indent="        ")
        periods = [f"{x}: {t}" for x, t in zip(p.inputs, branch.period) if t is not None]
        if periods:
            lines.append(f"    periodic: {', '.join(periods)} (plus integer multiples)")
    return "\n".join(lines) + "\n"


def _settings(rule_spec: RuleSpec, number: Callable[[float], str]) -> str:
    return ", ".join(
        f"{k}={number(v)}" if isinstance(v, float) else f"{k}={v}"
        for k, v in rule_spec.settings.items()
    )
