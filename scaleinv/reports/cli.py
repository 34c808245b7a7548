"""The ``scaleinv`` command line: ``run``, ``derive``, ``export`` (and the analysis and report
commands registered below them). Bad input prints one line and exits nonzero, no traceback."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import sympy as sp

from scaleinv.errors import NumericInverseWarning, ScaleinvError, SpecError, one_line
from scaleinv.numeric import Status, minimize
from scaleinv.numeric.export import export
from scaleinv.numeric.flavors import FLAVORS
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.engine_option import add_engine_option, engine_line
from scaleinv.reports.exit_status import ExitCode, exit_status_help
from scaleinv.reports.text import (
    WIDTH,
    fitting_wrap,
    format_expr,
    format_table,
    format_vector,
    indented_formula,
    numeric_inverse_line,
)
from scaleinv.symbolic import Spec, load_spec
from scaleinv.symbolic.spec import MAX_STARTS, MAX_STEPS, check_run_size

__all__ = ["main", "build_parser", "check_count", "many_starts"]

Command = Callable[[argparse.Namespace], int]


def cmd_run(args: argparse.Namespace) -> int:
    """Run every rule of the spec from every start point and print a table."""
    _check_run_args(args)
    spec = load_spec(args.spec)
    steps = spec.steps if args.steps is None else args.steps
    if args.starts is not None:
        return _run_many(spec, steps, args)
    if args.scheduler is not None:
        raise ScaleinvError("--scheduler runs many starts: give --starts N as well")
    check_run_size(steps, len(spec.starts), spec.problem.n + spec.problem.m, "", "--steps")
    rows, finals = [], []  # type: tuple[list[list], list]
    ran: list[tuple[str, str]] = []
    rules = [make_rule(r) for r in spec.rules]
    note = numeric_inverse_line(spec.problem, rules)
    for rule_spec, rule in zip(spec.rules, rules):
        with warnings.catch_warnings():  # said once, above the table
            warnings.simplefilter("ignore", NumericInverseWarning)
            traj = minimize(
                spec.problem,
                rule,
                np.array(spec.starts),
                steps,
                spec.tol,
                record="last",
                progress=True,
                engine=args.engine,
            )
        ran.append((rule_spec.settings.get("label", rule.label), traj.engine))
        for i, start in enumerate(spec.starts):
            label = rule_spec.settings.get("label", rule.label)
            rows.append(
                [
                    label,
                    format_vector(np.array(start), 4),
                    traj.steps,
                    format_vector(traj.x[-1, i]),
                    f"{traj.loss[-1, i]:.6g}",
                    Status(int(traj.status[i])).words,
                ]
            )
            finals.append((label, i, traj.x[-1, i]))
    from scaleinv.reports.cli_large import FEW, large_run_summary  # only when asked

    print(f"{spec.title}\n")
    if note is not None:
        print(f"{note}\n")
    if spec.problem.n <= FEW:
        headers = ["rule", "start", "steps", "final x", "final loss", "status"]
        print(format_table(headers, rows, fitting_wrap(headers, rows, {1: 1, 3: 1})))
    else:
        print(large_run_summary(spec, rows, finals))
    print(engine_line(ran))
    return 0


def _check_run_args(args: argparse.Namespace) -> None:
    """Refuse ``run``'s options out of range before the spec is read: the limits of a spec's
    ``[run]`` (``MAX_STEPS``, ``MAX_STARTS`` of :mod:`scaleinv.symbolic.spec`) hold for
    ``--steps`` and ``--starts`` on every path, in process or on Dask."""
    check_count("--steps", args.steps, 0, MAX_STEPS, "steps")
    check_count("--starts", args.starts, 1, MAX_STARTS, "starts")
    check_count("--chunk", args.chunk, 1, None, "")
    check_count("--seed", args.seed, 0, None, "")


def check_count(option: str, value: int | None, low: int, limit: int | None, what: str) -> None:
    """A :class:`SpecError` naming ``option`` when ``value`` (if given) is below ``low`` or
    above ``limit``."""
    if value is None:
        return
    if value < low:
        kind = "non-negative" if low == 0 else "positive"
        raise SpecError("", option, f"must be a {kind} integer, got {value}")
    if limit is not None and value > limit:
        raise SpecError("", option, f"{value} {what} is more than the limit of {limit}")


def many_starts(spec: Spec, count: int, seed: int) -> np.ndarray:
    """``count`` start points drawn uniformly from the box ``[-r, r]^n``, where ``r`` is the
    largest magnitude of a coordinate of the spec's starts (at least 1)."""
    radius = max(1.0, float(np.abs(np.array(spec.starts)).max()))
    rng = np.random.default_rng(seed)
    return rng.uniform(-radius, radius, (count, spec.problem.n))


def _run_many(spec: Spec, steps: int, args: argparse.Namespace) -> int:
    """Every rule from ``--starts N`` random starts (on a Dask cluster with ``--scheduler``);
    a summary row per rule."""
    x0: Any = many_starts(spec, args.starts, args.seed)
    client = None
    if args.scheduler is not None:
        from scaleinv.numeric.distributed import dask_array, dask_client

        client = dask_client(args.scheduler)
        x0 = dask_array().from_array(x0, chunks=(args.chunk, -1))
    rows, ran = [], []
    rules = [make_rule(r) for r in spec.rules]
    try:
        for rule_spec, rule in zip(spec.rules, rules):
            with warnings.catch_warnings():  # said once, above the table
                warnings.simplefilter("ignore", NumericInverseWarning)
                traj = minimize(
                    spec.problem, rule, x0, steps, spec.tol, progress=client is None,
                    engine=args.engine,
                )  # fmt: skip
            ran.append((rule_spec.settings.get("label", rule.label), traj.engine))
            final, status = traj.loss[-1], traj.status
            if client is not None:
                final, status = client.compute([final, status], sync=True)
            codes, counts = np.unique(np.asarray(status), return_counts=True)
            rows.append(
                [
                    rule_spec.settings.get("label", rule.label),
                    args.starts,
                    steps,
                    f"{np.median(final):.6g}",
                    f"{np.min(final):.6g}",
                    ", ".join(f"{Status(int(c)).words}: {k}" for c, k in zip(codes, counts)),
                ]
            )
    finally:
        if client is not None:
            client.close()
    where = f" on {args.scheduler}" if client is not None else ""
    print(f"{spec.title}: {args.starts} starts (seed {args.seed}){where}\n")
    note = numeric_inverse_line(spec.problem, rules)
    if note is not None:
        print(f"{note}\n")
    headers = ["rule", "starts", "steps", "median final loss", "min final loss", "statuses"]
    print(format_table(headers, rows))
    print(engine_line(ran))
    return 0


def cmd_derive(args: argparse.Namespace) -> int:
    """Print the exact derivatives, the inverse branches and each rule's update."""
    from scaleinv.reports.content import ETA, FEW, eta_text, symbolic_rule

    spec = load_spec(args.spec)
    p = spec.problem
    if p.n > FEW:
        from scaleinv.reports.cli_large import large_derivation

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
    for rule_spec in spec.rules:
        rule = make_rule(rule_spec)
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


def _entries(name, m, rows, cols, upper=False) -> list:
    return [
        (f"{name}[{rows[i]}, {cols[j]}]", m[i, j])
        for i in range(m.rows)
        for j in range(i if upper else 0, m.cols)
        if m[i, j] != 0
    ]


def _describe_inverse(spec: Spec) -> str:
    inverse = spec.problem.local_inverse()
    if inverse.numeric:
        text = f"local inverse: numeric (warm-started at the current x): {inverse.reason}"
        return "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent="  ")) + "\n"
    lines = ["local inverse branches of P(x) = y:"]
    for i, branch in enumerate(inverse.branches, 1):
        lines.append(f"  branch {i}:")
        for x, e in zip(spec.problem.inputs, branch.solution):
            lines.append(indented_formula(str(x), e, "    "))
        where = f"valid where: {format_expr(branch.condition)}"
        lines += textwrap.wrap(where, WIDTH, initial_indent="    ", subsequent_indent="        ")
        periods = [f"{x}: {t}" for x, t in zip(spec.problem.inputs, branch.period) if t is not None]
        if periods:
            lines.append(f"    periodic: {', '.join(periods)} (plus integer multiples)")
    return "\n".join(lines) + "\n"


def _settings(rule_spec, number) -> str:
    return ", ".join(
        f"{k}={number(v)}" if isinstance(v, float) else f"{k}={v}"
        for k, v in rule_spec.settings.items()
    )


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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other scaleinv error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"scaleinv: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = _Parser(
        prog="scaleinv",
        description="Exact derivations, local inverses and batched kernels for scale-invariant "
        "optimization (GD, Newton, IG, PG, HIG).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter
    run = sub.add_parser(
        "run",
        help="run the spec's rules and print a results table",
        epilog=exit_status_help("the table was printed (whatever the runs' statuses)"),
        formatter_class=raw,
    )
    run.add_argument("spec", type=Path, help="problem spec file (TOML)")
    run.add_argument("--steps", type=int, default=None, help="override the spec's steps")
    run.add_argument(
        "--starts",
        type=int,
        default=None,
        metavar="N",
        help="run from N random starts in the box [-r, r]^n (r: the spec's largest start "
        "coordinate) and print a summary per rule",
    )
    run.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0)")
    run.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the starts on the dask.distributed scheduler at ADDRESS, chunk by chunk "
        "(needs scaleinv[distributed])",
    )
    run.add_argument(
        "--chunk", type=int, default=100_000, help="starts per Dask chunk (default 100000)"
    )
    add_engine_option(run)
    run.set_defaults(func=cmd_run)
    derive = sub.add_parser(
        "derive",
        help="print J, ∇L, H, inverse branches and each Δx",
        epilog=exit_status_help("the derivations were printed"),
        formatter_class=raw,
    )
    derive.add_argument("spec", type=Path, help="problem spec file (TOML)")
    derive.set_defaults(func=cmd_derive)
    exp = sub.add_parser(
        "export",
        help="write a standalone NumPy, JAX or PyTorch module of the kernels",
        epilog=exit_status_help("the module was written"),
        formatter_class=raw,
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
    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Registration functions of the analysis and report commands."""
    from scaleinv.reports import report_cmd, study_cmd, verify_cmd

    return [verify_cmd.register, report_cmd.register, study_cmd.register]


_EXTRA_COMMANDS = _extra_commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scaleinv`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScaleinvError as err:
        return _error(str(err))
    except BrokenPipeError:  # e.g. `scaleinv derive SPEC | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return ExitCode.OK
    except OSError as err:
        return _error(f"{err.strerror or err}: {err.filename or ''}".rstrip(": "))
    except MemoryError as err:  # NumPy's says how much: "Unable to allocate 7.28 TiB for ..."
        how_much = f" ({err})" if str(err) else ""
        return _error(f"the input needs more memory than is available{how_much}")
    except (RecursionError, OverflowError) as err:
        # Pathological sizes that slipped past the input limits (a bug elsewhere still shows
        # its traceback: only resource exhaustion is reported this way).
        what = "nested too deeply" if isinstance(err, RecursionError) else "out of range"
        return _error(f"the input is {what} to process ({err})")
    except KeyboardInterrupt:
        return _error("interrupted", ExitCode.INTERRUPTED)


def _error(message: str, code: int = ExitCode.ERROR) -> int:
    """Print ``message`` as the one line ``scaleinv: error: ...`` (see :func:`one_line`)."""
    print(f"scaleinv: error: {one_line(message)}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
