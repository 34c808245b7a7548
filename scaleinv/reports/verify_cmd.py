"""``scaleinv verify``: the chapter's claims ledger, or the checks of one problem spec.

Without a spec it runs :func:`scaleinv.analysis.claims.run_ledger` and prints one row per claim.
With a spec it checks, for each symbolic rule (GD, Newton, IG, PG), the units of its step, its
invariance under the spec's scalings and whether its step of the intermediate space ``y`` is the
loss's own ``Δy`` (consistency in compositions), each against what the chapter expects.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from scaleinv.analysis.branch_selection import branch_selection
from scaleinv.analysis.claims import LEDGER_BUDGET, ClaimVerdict, LedgerReport, claim, run_ledger
from scaleinv.analysis.claims_checks_pg import intermediate_step
from scaleinv.analysis.claims_statement import Statement
from scaleinv.analysis.invariance import OutputScaling, scale_invariance
from scaleinv.analysis.units import check_units, format_dimension, problem_dimensions
from scaleinv.analysis.units_structure import units_by_structure
from scaleinv.analysis.verdict import Verdict
from scaleinv.errors import ScaleinvError, SpecError
from scaleinv.numeric.inverse import numeric_inverse_note
from scaleinv.numeric.rules import REGISTRY
from scaleinv.reports.content import FEW
from scaleinv.reports.text import format_ends, format_table
from scaleinv.reports.verdicts import analysis_options, transforms_of
from scaleinv.symbolic import Spec, load_spec
from scaleinv.symbolic.spec import DEFAULT_BUDGET, MAX_BUDGET, MIN_BUDGET

__all__ = ["register", "cmd_verify", "SpecCheck", "spec_checks", "ledger_table", "plain_quote"]

ETA = sp.Symbol("eta", positive=True)
_SYMBOLIC = ("gd", "newton", "ig", "pg")
#: Which rules the chapter says pass each check (the others are expected to fail it).
_SHOULD_HOLD = {
    "units": {"newton", "ig", "pg"},
    "scale": {"newton", "ig", "pg"},
    "composition": {"ig", "pg"},
    "nearest branch": set(),  # the chapter's claim, corrected: see ledger pg-nearest-branch
}

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
Without scalings every input gets its own symbolic scale and the outputs one more.

exit status: 0 when every check the chapter says should hold does, 1 when one of them fails,
2 on bad input."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand to the ``scaleinv`` parser."""
    parser = sub.add_parser(
        "verify",
        help="check the chapter's claims, or units / scale- / composition-invariance of a spec",
        description="Check the chapter's claims (no SPEC), or the units, scale invariance and "
        "composition consistency of each rule on the problem of SPEC.",
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
    """Print the ledger (or one spec's checks); 1 if a check that should hold fails."""
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
        return 1 if report.regressions else 0
    if args.claim:
        raise SpecError("", "--claim", "claims belong to the ledger: leave out the SPEC")
    spec = load_spec(args.spec)
    units = {**dict(spec.units), **_parse_units(args.units)}
    budget = args.budget or analysis_options(spec).get("budget", DEFAULT_BUDGET)
    checks = spec_checks(spec, units, budget, progress=_progress)
    print(f"{spec.title}\n")
    pg = REGISTRY["pg"](ETA)
    checked = {c.row()[0] for c in checks}
    note = numeric_inverse_note(spec.problem, pg) if pg.label in checked else None
    if note is not None:
        print(f"note: PG's numeric twins solve P(x) = y numerically ({note})\n")
    headers = ["rule", "check", "verdict", "chapter", "detail"]
    print(format_table(headers, [c.row() for c in checks], wrap={4: 60}))
    failed = [c for c in checks if c.failed]
    print(f"\n{len(checks)} checks; {len(failed)} that should hold failed")
    return 1 if failed else 0


def ledger_table(report: LedgerReport) -> str:
    """The ledger as a text table with a summary line."""
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
    return "\n".join(lines)


def _show_claims(ids: Sequence[str], budget: float) -> int:
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
    return 1 if report.regressions else 0


def _parse_units(pairs: Sequence[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, dim = pair.partition("=")
        if not sep or not name.strip() or not dim.strip():
            raise SpecError("", "--units", f"expected NAME=DIMENSION, got {pair!r}")
        found[name.strip()] = dim.strip()
    return found


@dataclass(frozen=True)
class SpecCheck:
    """One rule × check of ``scaleinv verify SPEC``.

    ``verdict`` is the analysis layer's word (``proved``, ``refuted``, ``consistent``, ...);
    ``holds`` is True/False/None; ``should_hold``: the chapter says it holds for this rule
    (otherwise the chapter expects it to fail in general, though a given problem may pass).
    """

    rule: str
    check: str
    verdict: str
    holds: bool | None
    should_hold: bool
    detail: str

    @property
    def failed(self) -> bool:
        """A check the chapter says should hold, found to fail."""
        return self.should_hold and self.holds is False

    def row(self) -> list[str]:
        mark = " !" if self.failed else ""
        chapter = "holds" if self.should_hold else "may fail"
        return [self.rule, self.check, self.verdict + mark, chapter, " ".join(self.detail.split())]


def spec_checks(
    spec: Spec, units: dict[str, Any], budget: float, progress: Callable[[str], None] | None = None
) -> list[SpecCheck]:
    """Units (when given), every scaling of the spec and composition, for each symbolic rule.

    ``progress`` is called with one line per rule before its checks run.
    """
    dims = problem_dimensions(spec.problem, units) if units else None
    transforms = transforms_of(spec)
    names = [r.name for r in spec.rules if r.name in _SYMBOLIC] or list(_SYMBOLIC)
    found: list[SpecCheck] = []
    unique = list(dict.fromkeys(names))
    for k, name in enumerate(unique, 1):
        if progress is not None:
            what = ("units, " if dims is not None else "") + f"{len(transforms)} scaling(s)"
            progress(f"[{k}/{len(unique)}] {name}: {what}, composition")
        found += _rule_checks(spec.problem, name, dims, transforms, budget)
    return found


def _rule_checks(
    problem: Any, name: str, dims: Any, transforms: Sequence[Any], budget: float
) -> list[SpecCheck]:
    rule = REGISTRY[name](ETA)
    rows: list[tuple[str, str, bool | None, str]] = []
    if dims is not None:
        try:
            walk = problem.n <= FEW  # else by the rule's structure, as in the report
            u = (
                check_units(problem, rule, dims)
                if walk
                else units_by_structure(problem, name, dims)
            )
            how = "" if walk else " (by the rule's structure)"
            rows.append(("units", u.verdict.value, u.consistent, f"[η] needed{how}: {_needs(u)}"))
        except ScaleinvError as err:
            rows.append(("units", "not checked", None, str(err)))
    for transform in transforms:
        r = scale_invariance(problem, rule, transform, budget=budget, rng=0)
        detail = r.note if r.route.startswith("theorem") else f"[{r.route}] {r.note}"
        if r.counterexample is not None:
            ce = r.counterexample
            detail += f" (Δx = {format_ends(ce.lhs, 3)}, mapped {format_ends(ce.rhs, 3)})"
        rows.append((f"scale: {transform.describe()}", r.verdict.value, _truth(r.verdict), detail))
        if name == "pg" and not isinstance(transform, OutputScaling):
            rows.append(_selection_row(problem, transform))
    if problem.n > FEW:  # the check compares expanded updates, which are not derived here
        why = f"the update is not expanded at this size (n = {problem.n}), as in the report"
        rows.append(("composition", "not checked", None, why))
    else:
        try:
            d = intermediate_step(problem, rule, budget=budget)
            rows.append(("composition", d.verdict.value, _truth(d.verdict), _composition_detail(d)))
        except ScaleinvError as err:
            rows.append(("composition", "not checked", None, str(err)))
    return [
        SpecCheck(
            rule.label, check, verdict, holds, name in _SHOULD_HOLD[check.split(":")[0]], detail
        )
        for check, verdict, holds, detail in rows
    ]


def _selection_row(problem: Any, transform: Any) -> tuple[str, str, bool | None, str]:
    """PG's nearest-branch choice under ``transform`` (:func:`branch_selection`)."""
    check = f"nearest branch: {transform.describe()}"
    try:
        r = branch_selection(problem, transform)
    except ScaleinvError as err:
        return (check, "not checked", None, str(err))
    return (check, r.verdict.value, _truth(r.verdict), r.reason)


def _truth(verdict: Verdict) -> bool | None:
    return {Verdict.PROVED: True, Verdict.REFUTED: False}.get(verdict)


def _needs(report: Any) -> str:
    """``x0: 1, x1: time**2/length**2`` — inputs that need one dimension grouped when many."""
    shown = ["any" if d is None else format_dimension(d) for d in report.required_eta]
    if len(report.inputs) <= FEW:
        return ", ".join(f"{x}: {d}" for x, d in zip(report.inputs, shown))
    groups: dict[str, list[str]] = {}
    for x, d in zip(report.inputs, shown):
        groups.setdefault(d, []).append(x)
    return ", ".join(
        f"{xs[0]}, …, {xs[-1]} ({len(xs)} inputs): {d}" if len(xs) > 3 else f"{', '.join(xs)}: {d}"
        for d, xs in groups.items()
    )


def _composition_detail(decision: Any) -> str:
    difference = [e for e in decision.difference if e != 0]
    if decision.verdict is Verdict.PROVED or (decision.difference and not difference):
        return "the y-step equals the loss's own Δy"
    if not difference:
        return decision.note or "could not compare the y-step with Δy"
    shown = ", ".join(sp.sstr(e) for e in difference)
    return f"the y-step differs from Δy by ({shown})"


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
