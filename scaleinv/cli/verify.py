"""``scaleinv verify``: the chapter's claims ledger, or the checks of one problem spec.

Without a spec it runs :func:`scaleinv.analysis.claims.run_ledger` and prints one row per claim.
With a spec it prints :func:`~scaleinv.reports.spec_verdicts.spec_verdicts` for each rule of the
spec — the same verdicts its report shows: the units of its step, its invariance under the
spec's scalings, PG's nearest-branch choice and whether its step of the intermediate space ``y``
is the loss's own ``Δy`` (consistency in compositions), each against what the chapter expects.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaleinv.cli.exit_status import ExitCode, exit_status_help
from scaleinv.errors import SpecError
from scaleinv.reports.text import fitting_wrap, format_table
from scaleinv.symbolic import IndexedProblem, Spec, load_spec
from scaleinv.symbolic.spec import DEFAULT_BUDGET, MAX_BUDGET, MIN_BUDGET
from scaleinv.symbolic.spec_schema import LEDGER_BUDGET

if TYPE_CHECKING:  # the analysis is imported when a command runs it: every command loads this
    from scaleinv.analysis.claims import LedgerReport

__all__ = ["register", "cmd_verify", "ledger_table", "plain_quote"]

_EPILOG = """\
examples:
  scaleinv verify                          the whole claims ledger of the chapter
  scaleinv verify --claim pg-quotient-remainder
                                           one claim with its quote and derivation
  scaleinv verify reports/comparison.toml  scale invariance and compositions of one problem
  scaleinv verify spec.toml --units x0=length x1=time g=length/time**2 L=length**2

units are SI dimension expressions (length, mass, time, velocity, force, energy, ...) for the
inputs, params (default dimensionless), outputs y0, y1, ..., the loss L and a numeric target
(target=temperature: its numbers carry that dimension); they extend or override the spec's
[units] table. The spec's [analysis] table chooses the scalings:
  scalings = [{ x2 = "1/alpha" }]   input scalings x = S u (a table by input name, or a list)
  output_scalings = ["c"]            P -> c P
  budget = 1_000_000                 work limit per symbolic decision, in steps (default)
Without scalings every input gets its own symbolic scale and the outputs one more. A scale
uses params and new symbols (new positive params), never an input: x = S u needs a constant S.

""" + exit_status_help(
    "every check (or ledger claim) the chapter says should hold was decided and holds",
    ExitCode.FAILED,
    ExitCode.UNDECIDED,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand to the ``scaleinv`` parser."""
    parser = sub.add_parser(
        "verify",
        help="check the chapter's claims, or units / scale- / composition-invariance of a spec",
        description="Check the chapter's claims (no SPEC) and print one row per claim with "
        "its verdict; or check the units, scale invariance and composition consistency of "
        "each rule on the problem of SPEC and print one row per check with its verdict and "
        "what the chapter expects.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", nargs="?", type=Path, help="problem spec file (TOML)")
    parser.add_argument(
        "--units", nargs="+", default=[], metavar="NAME=DIM", help="dimensions, e.g. x0=length"
    )
    parser.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="ID",
        help="show one ledger claim in full (repeatable)",
    )
    parser.add_argument(
        "--budget",
        type=_steps,
        default=None,
        metavar="STEPS",
        help="work limit per symbolic decision, in steps: counted Python calls (about 100_000 "
        "a second), so a verdict is the same on every machine (ledger default "
        f"{LEDGER_BUDGET:_}, spec default {DEFAULT_BUDGET:_})",
    )
    parser.set_defaults(func=cmd_verify)


def _steps(text: str) -> int:
    """A ``--budget`` in steps: an integer, also written ``4e6`` or ``1_000_000``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of steps: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number of steps: {text!r}")
    return int(value)


def cmd_verify(args: argparse.Namespace) -> int:
    """Print the ledger (or one spec's checks); the exit code says whether what should hold
    does (see :class:`~scaleinv.cli.exit_status.ExitCode`)."""
    from scaleinv.analysis.claims import run_ledger
    from scaleinv.analysis.units import check_unit_table
    from scaleinv.numeric.inverse import numeric_inverse_note
    from scaleinv.numeric.rules import REGISTRY
    from scaleinv.reports.content import ETA
    from scaleinv.reports.spec_verdicts import spec_verdicts
    from scaleinv.reports.verdict_text import HEADERS, text_rows

    if args.budget is not None and not MIN_BUDGET <= args.budget <= MAX_BUDGET:
        raise SpecError(
            "", "--budget", f"must be {MIN_BUDGET:_} to {MAX_BUDGET:_} steps, got {args.budget:_}"
        )
    if args.spec is None:
        if args.units:
            raise SpecError("", "--units", "units describe a problem: give a SPEC file too")
        if args.claim:
            return _show_claims(args.claim, args.budget or LEDGER_BUDGET)
        report = run_ledger(budget=args.budget or LEDGER_BUDGET, progress=_progress)
        print(ledger_table(report))
        return _ledger_status(report)
    if args.claim:
        raise SpecError("", "--claim", "claims belong to the ledger: leave out the SPEC")
    spec = load_spec(args.spec)
    given = _parse_units(args.units)
    check_unit_table(spec.units, spec.source)
    check_unit_table(given, "", "--units")
    units = {**dict(spec.units), **given}
    if isinstance(spec.problem, IndexedProblem):  # per field, from the stencils
        return _verify_indexed(spec, units)
    checks = spec_verdicts(spec, units=units, budget=args.budget, progress=_progress)
    print(f"{spec.title}\n")
    pg = next((r for r in spec.rules if r.name == "pg"), None)
    note = numeric_inverse_note(spec.problem, REGISTRY["pg"](ETA)) if pg else None
    if note is not None:
        print(f"note: PG's numeric twins solve P(x) = y numerically ({note})\n")
    start = ", ".join(f"{k} = {v:g}" for k, v in {**checks.start, **checks.params}.items())
    print(f"counterexamples are sought first at the spec's start and values: {start}\n")
    rows = text_rows(checks)
    print(format_table(HEADERS, rows, fitting_wrap(HEADERS, rows, {1: 1, 4: 2})))
    failed = [c for c in checks.rows if c.failed]
    open_ = [c for c in checks.rows if c.undecided]
    print(
        f"\n{len(checks.rows)} checks; of those that should hold, {len(failed)} failed and "
        f"{len(open_)} not decided"
    )
    if failed:
        return ExitCode.FAILED
    return ExitCode.UNDECIDED if open_ else ExitCode.OK


def _ledger_status(report: LedgerReport) -> ExitCode:
    """FAILED on a regression, UNDECIDED when a claim that should hold was not decided."""
    if report.regressions:
        return ExitCode.FAILED
    return ExitCode.UNDECIDED if _undecided_claims(report) else ExitCode.OK


def _undecided_claims(report: LedgerReport) -> list[Any]:
    """Rows whose claim should hold (as written or corrected) but came out undecided."""
    from scaleinv.analysis.claims import ClaimVerdict

    hold = (ClaimVerdict.HOLDS, ClaimVerdict.CORRECTED)
    return [
        r for r in report.rows if r.verdict is ClaimVerdict.UNDECIDED and r.claim.expected in hold
    ]


def ledger_table(report: LedgerReport) -> str:
    """The ledger as a text table with a summary line."""
    from scaleinv.analysis.claims import ClaimVerdict

    rows = [
        [
            r.id,
            r.claim.section,
            r.verdict.value + (" !" if r.regression else ""),
            r.summary().text(),
        ]
        for r in report.rows
    ]
    counts = ", ".join(f"{report.counts[v]} {v.value}" for v in ClaimVerdict)
    headers = ["id", "section", "verdict", "statement (or correction)"]
    lines = [format_table(headers, rows, wrap={1: 24, 3: 64}), ""]
    lines.append(f"{len(report.rows)} claims: {counts} ({report.seconds:.1f} s)")
    lines += [
        f"! {r.id} should hold but fails: {r.result.detail.text()}" for r in report.regressions
    ]
    lines += [
        f"? {r.id} should hold but was not decided: {r.result.detail.text()}"
        for r in _undecided_claims(report)
    ]
    return "\n".join(lines)


def _show_claims(ids: Sequence[str], budget: float) -> int:
    from scaleinv.analysis.claims import claim, run_ledger
    from scaleinv.analysis.claims.statement import Statement

    for claim_id in ids:
        try:
            claim(claim_id)
        except KeyError as err:
            raise SpecError("", "--claim", str(err.args[0])) from None
    report = run_ledger(budget=budget, ids=ids)
    for row in report.rows:
        c, r = row.claim, row.result
        print(f"{c.id} [{c.section}]: {r.verdict.value}")
        print(f"  chapter: “{plain_quote(c.quote)}”\n  checked: {c.statement.text()}")
        if r.correction:
            print(f"  correct: {r.correction.text()}")
        print(f"  found:   {r.detail.text()}")
        for step in r.derivation:
            shown = step.expr if isinstance(step.expr, str) else Statement((step.expr,)).text()
            print(f"    {step.label}: {shown}")
        print()
    return _ledger_status(report)


def _parse_units(pairs: Sequence[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, dim = pair.partition("=")
        if not sep or not name.strip() or not dim.strip():
            raise SpecError("", "--units", f"expected NAME=DIMENSION, got {pair!r}")
        found[name.strip()] = dim.strip()
    return found


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


_QUOTE_MACROS = {
    r"\rightarrow": "→", r"\Delta": "Δ", r"\partial": "∂", r"\alpha": "α", r"\eta": "η",
    r"\cdot": "·", r"\lim": "lim", r"\mathcal P": "P", r"\mathcal{P}": "P", r"\big": "",
    r"\left": "", r"\right": "", "~": " ",
}  # fmt: skip


def plain_quote(quote: str) -> str:
    r"""A chapter quote with its inline LaTeX read as plain text (for the terminal).

    Examples
    --------
    >>> plain_quote(r"\(\Delta x_{\text{GD}} = -\eta \cdot \alpha\)")
    'Δx_GD = -η·α'
    >>> plain_quote(r"\frac{\partial L}{\partial x}")
    '(∂L)/(∂x)'
    """
    text = quote.replace(r"\(", "").replace(r"\)", "")
    text = re.sub(r"\\(?:text|mathrm)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", text)
    for macro, shown in _QUOTE_MACROS.items():
        text = re.sub(re.escape(macro) + r"(?![A-Za-z]) ?", shown, text)
    text = re.sub(r"_\{([^{}]*)\}", r"_\1", text).replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", text).strip()


def _verify_indexed(spec: Spec, units: dict[str, Any]) -> ExitCode:
    """An indexed spec's checks (:func:`~scaleinv.reports.indexed_build.indexed_verdicts`)."""
    from scaleinv.numeric.rules import make_rule
    from scaleinv.reports.content import rule_labels
    from scaleinv.reports.indexed_build import indexed_verdicts  # matplotlib: only when asked
    from scaleinv.reports.spec_verdicts import SHOULD_HOLD

    rules = [make_rule(r) for r in spec.rules]
    found = indexed_verdicts(spec, list(zip(rule_labels(spec.rules, rules), rules)), units)
    print(f"{spec.title}\n")
    heads = ["rule", "check", "verdict", "argument"]
    rows = [list(row) for row in found]
    print(format_table(heads, rows, fitting_wrap(heads, rows, {3: 1})))
    names = {label: r.name for label, r in zip(rule_labels(spec.rules, rules), rules)}
    should = [row for row in found if names[row[0]] in SHOULD_HOLD[row[1]]]
    failed = [row for row in should if row[2] in ("refuted", "inconsistent")]
    open_ = [row for row in should if row[2] not in ("proved", "consistent", "refuted",
                                                     "inconsistent")]  # fmt: skip
    print(f"\n{len(found)} checks; of those that should hold, {len(failed)} failed and "
          f"{len(open_)} not decided")  # fmt: skip
    if failed:
        return ExitCode.FAILED
    return ExitCode.UNDECIDED if open_ else ExitCode.OK
