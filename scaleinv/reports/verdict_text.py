"""The verdicts of a spec in words: the rows ``scaleinv verify`` prints, a notebook's table.

The LaTeX of the same verdicts is :mod:`scaleinv.reports.verdicts`; both read the objects of
:func:`~scaleinv.reports.spec_verdicts.spec_verdicts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sympy as sp

from scaleinv.analysis.units import UnitsReport, format_dimension
from scaleinv.analysis.verdict import Verdict
from scaleinv.markup import markdown_text
from scaleinv.reports.content import FEW

if TYPE_CHECKING:  # spec_verdicts formats its tables with this module
    from scaleinv.reports.spec_verdicts import SpecVerdict, SpecVerdicts
from scaleinv.reports.text import format_ends

__all__ = ["HEADERS", "text_rows", "verdict_text", "markdown_table"]

#: Longest difference expression shown in full in a composition row (characters).
_LONGEST = 240
#: The columns of :func:`text_rows`.
HEADERS = ("rule", "check", "verdict", "chapter", "detail")


def text_rows(checks: SpecVerdicts) -> list[list[str]]:
    """The text table's rows of a spec's verdicts: rule, check, verdict, chapter, detail."""
    rows = []
    for v in checks.rows:
        check = v.check if v.transform is None else f"{v.check}: {v.aspect}"
        chapter = "holds" if v.should_hold else "may fail"
        verdict = v.verdict + (" !" if v.failed else " ?" if v.undecided else "")
        rows.append([v.label, check, verdict, chapter, " ".join(verdict_text(v).split())])
    return rows


def verdict_text(v: SpecVerdict) -> str:
    """One verdict's detail in plain text."""
    r = v.report
    if r is None:
        return v.reason
    if v.check == "units":
        return f"[η] needed{' (by the rule’s structure)' if v.by_structure else ''}: {_needs(r)}"
    if v.check == "nearest branch":
        return r.reason
    if v.check == "composition":
        return _composition_detail(r)
    if v.verdict == "trivial":
        return f"the transform is the identity at the spec's values; for general values {r.verdict}"
    detail = r.note if r.route.startswith("theorem") else f"[{r.route}] {r.note}"
    ce = r.counterexample
    if ce is not None:
        at = ", ".join(f"{k} = {value:.4g}" for k, value in ce.values().items())
        detail += f" (at {at}: Δx = {format_ends(ce.lhs, 3)}, mapped {format_ends(ce.rhs, 3)})"
    return detail


def _needs(report: UnitsReport) -> str:
    """``x0: 1, x1: time**2/length**2`` — inputs that need one dimension grouped when many."""
    shown = [report.need(i) for i in range(len(report.inputs))]
    shown = [d if isinstance(d, str) else format_dimension(d) for d in shown]
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
    if len(shown) > _LONGEST:
        shown = f"{shown[: _LONGEST - 40].rstrip()} … ({len(shown)} characters in all)"
    if decision.verdict is Verdict.UNDECIDED:
        return f"not decided: y-step − Δy did not simplify to 0 within the budget ({shown})"
    return f"the y-step differs from Δy by ({shown})"


def markdown_table(checks: SpecVerdicts) -> str:
    """:func:`text_rows` as a Markdown table (a notebook's view of the verdicts)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in text_rows(checks):
        lines.append("| " + " | ".join(markdown_text(cell) for cell in row) + " |")
    return "\n".join(lines)
