"""``scaleinv run SPEC``: every rule of the spec from its starts, a results table.

With ``--starts N`` every rule runs from ``N`` random starts (on a Dask cluster with
``--scheduler``) and the table has a summary row per rule.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from scaleinv.cli.engine_option import add_engine_option, engine_line
from scaleinv.cli.exit_status import exit_status_help
from scaleinv.cli.options import check_count
from scaleinv.errors import NumericInverseWarning, ScaleinvError
from scaleinv.numeric import Status, minimize
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.content import FEW
from scaleinv.reports.text import fitting_wrap, format_table, format_vector, numeric_inverse_line
from scaleinv.symbolic import Spec, load_spec
from scaleinv.symbolic.spec import MAX_STARTS, MAX_STEPS, check_run_size

__all__ = ["register", "cmd_run", "many_starts"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand to the CLI's subparsers."""
    run = sub.add_parser(
        "run",
        help="run the spec's rules and print a results table",
        description="Run every rule of SPEC from each start of its [run] table and print one "
        f"row per run: rule, start, steps, final x, final loss and status (past {FEW} inputs: the "
        "norm, extremes and ends of each vector). With --starts N, one row per rule over N "
        "random starts: median and least final loss and the count of each status.",
        epilog=exit_status_help("the table was printed (whatever the runs' statuses)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    from scaleinv.cli.large import large_run_summary  # only when asked

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
