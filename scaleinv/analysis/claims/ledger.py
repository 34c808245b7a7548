"""The claims ledger: every checkable statement of the chapter, each an executable check.

:data:`CLAIMS` lists them in the chapter's order. A :class:`Claim` carries the section it comes
from, a short verbatim quote, the statement as checked, and — where the chapter is wrong — the
corrected statement. :meth:`Claim.check` computes the verdict from scratch:

- ``HOLDS``: the chapter's statement is true (proved, or refuted counterexamples not found where
  a refutation was the point),
- ``FAILS``: it is false, and there is no correction that holds,
- ``CORRECTED``: it is false as written, and the corrected statement holds,
- ``UNDECIDED``: the check could not decide (work limit, SymPy limits).

Nothing is hard-coded: ``expected`` records what the ledger found when it was written, so that a
regression (a statement that should hold and now fails) is visible; the verdict never reads it.
:func:`run_ledger` runs all checks and returns a :class:`LedgerReport`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from scaleinv.analysis.claims.checks import Finding
from scaleinv.analysis.claims.statement import Statement, statement
from scaleinv.analysis.claims.table import ENTRIES
from scaleinv.analysis.verdict import Step
from scaleinv.markup import markdown_text
from scaleinv.symbolic.spec_schema import LEDGER_BUDGET  # the command line names it too

__all__ = ["ClaimVerdict", "ClaimResult", "Claim", "CLAIMS", "LedgerRow", "LedgerReport"]
__all__ += ["run_ledger", "claim", "LEDGER_BUDGET"]


class ClaimVerdict(StrEnum):
    """What the ledger says about one statement of the chapter."""

    HOLDS = "holds"
    FAILS = "fails"
    CORRECTED = "corrected"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of one check.

    Attributes
    ----------
    verdict : ClaimVerdict
    derivation : tuple of Step
        The computed objects behind the verdict (SymPy expressions, sets, dimensions).
    detail : Statement
        One line on what was found (text and SymPy expressions).
    correction : Statement
        The corrected statement when the verdict is ``CORRECTED``, else empty.
    """

    verdict: ClaimVerdict
    derivation: tuple[Step, ...]
    detail: Statement
    correction: Statement = Statement(())

    def _repr_markdown_(self) -> str:
        found = self.detail._repr_markdown_()
        return f"**{self.verdict.value}**" + (f": {found}" if found else "")


@dataclass(frozen=True)
class Claim:
    """One checkable statement of the chapter.

    Attributes
    ----------
    id : str
    section : str
        The chapter heading (and sub-heading) it is under.
    quote : str
        A short verbatim excerpt of the chapter.
    statement : Statement
        What is checked, precisely (text and SymPy expressions).
    expected : ClaimVerdict
        The verdict when the ledger was written (used only to flag regressions).
    correction : Statement
        The true statement, for claims the chapter gets wrong (else empty).
    """

    id: str
    section: str
    quote: str
    statement: Statement
    expected: ClaimVerdict
    run: Callable[[float], Finding] = field(repr=False, compare=False)
    correction: Statement = Statement(())

    def __post_init__(self) -> None:
        object.__setattr__(self, "statement", statement(self.statement))
        object.__setattr__(self, "correction", statement(self.correction))

    def _repr_markdown_(self) -> str:
        return (
            f"**{markdown_text(self.id)}** ({markdown_text(self.section)}): "
            f"{self.statement._repr_markdown_()}"
        )

    def check(self, budget: float = LEDGER_BUDGET) -> ClaimResult:
        """Run the check; ``budget`` (steps, see :data:`LEDGER_BUDGET`) goes to its symbolic
        decisions."""
        try:
            found = self.run(budget)
        except Exception as err:  # noqa: BLE001 - a ledger row must never take the run down
            why = statement(f"check could not finish: {type(err).__name__}: {err}")
            return ClaimResult(ClaimVerdict.UNDECIDED, (), why)
        verdict = _judge(found)
        correction = self.correction if verdict is ClaimVerdict.CORRECTED else Statement(())
        return ClaimResult(verdict, found.steps, statement(found.detail), correction)


def _judge(found: Finding) -> ClaimVerdict:
    if found.text is None:
        return ClaimVerdict.UNDECIDED
    if found.text:
        return ClaimVerdict.HOLDS
    return ClaimVerdict.CORRECTED if found.corrected is True else ClaimVerdict.FAILS


#: The ledger, in the chapter's order.
CLAIMS: tuple[Claim, ...] = tuple(
    Claim(id_, section, quote, statement, ClaimVerdict(expected), run, *correction)
    for id_, section, quote, statement, expected, run, *correction in ENTRIES
)

_BY_ID: Mapping[str, Claim] = MappingProxyType({c.id: c for c in CLAIMS})


def claim(claim_id: str) -> Claim:
    """The claim with this id (``KeyError`` names the known ids)."""
    try:
        return _BY_ID[claim_id]
    except KeyError:
        raise KeyError(f"unknown claim {claim_id!r}; known: {', '.join(_BY_ID)}") from None


@dataclass(frozen=True)
class LedgerRow:
    """One checked claim: the claim's text, its verdict and how long the check took."""

    claim: Claim
    result: ClaimResult
    seconds: float

    @property
    def id(self) -> str:
        return self.claim.id

    @property
    def verdict(self) -> ClaimVerdict:
        return self.result.verdict

    @property
    def regression(self) -> bool:
        """True when a statement that should hold (as written or corrected) now fails."""
        return self.verdict is ClaimVerdict.FAILS and self.claim.expected is not ClaimVerdict.FAILS

    def summary(self) -> Statement:
        """The statement as checked, or the correction for a corrected claim."""
        return self.result.correction or self.claim.statement

    def _repr_markdown_(self) -> str:
        return (
            f"**{markdown_text(self.id)}** — *{markdown_text(self.claim.section)}*: "
            f"{self.summary()._repr_markdown_()} "
            f"→ {self.result._repr_markdown_()}"
        )


@dataclass(frozen=True)
class LedgerReport:
    """Every checked claim, the verdict counts and the total time."""

    rows: tuple[LedgerRow, ...]
    counts: Mapping[ClaimVerdict, int]
    seconds: float

    @property
    def regressions(self) -> tuple[LedgerRow, ...]:
        """Rows whose statement should hold but fails."""
        return tuple(r for r in self.rows if r.regression)

    def _repr_markdown_(self) -> str:
        head = "| claim | section | verdict | statement (or correction) |\n|---|---|---|---|"
        rows = [
            f"| {markdown_text(r.id)} | {markdown_text(r.claim.section)} | {r.verdict.value} "
            f"| {r.summary()._repr_markdown_()} |"
            for r in self.rows
        ]
        counts = ", ".join(f"{n} {v.value}" for v, n in self.counts.items() if n)
        return "\n".join([head, *rows, "", f"{len(self.rows)} claims: {counts}"])

    def row(self, claim_id: str) -> LedgerRow:
        """The row of one claim."""
        return next(r for r in self.rows if r.id == claim(claim_id).id)


def run_ledger(
    *,
    budget: float = LEDGER_BUDGET,
    ids: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> LedgerReport:
    """Check every claim (or those in ``ids``) and collect the verdicts.

    Parameters
    ----------
    budget : float
        Work limit (counted steps, :mod:`scaleinv.symbolic.budget`) each check may give its
        symbolic decisions (simplification, counterexample search). Expensive shared setups
        are cached across checks and runs.
    ids : sequence of str, optional
    progress : callable, optional
        Called with ``"[k/N] id"`` before each check (the CLI prints it).

    Examples
    --------
    >>> report = run_ledger(ids=["gd-loss-change-sign", "gd-sensitivity-step"])
    >>> [(r.id, r.verdict.value) for r in report.rows]
    [('gd-loss-change-sign', 'corrected'), ('gd-sensitivity-step', 'holds')]
    >>> print(report.rows[0].summary().text())
    L(x) − L(x + Δx_GD) = +η (∂L/∂x)² + O(Δx²), i.e. L(x + Δx_GD) − L(x) = −η (∂L/∂x)² + O(Δx²)
    """
    chosen = CLAIMS if ids is None else tuple(claim(i) for i in ids)
    start, rows = time.perf_counter(), []
    for k, c in enumerate(chosen, 1):
        if progress is not None:
            progress(f"[{k}/{len(chosen)}] {c.id}")
        t0 = time.perf_counter()
        result = c.check(budget)
        rows.append(LedgerRow(c, result, time.perf_counter() - t0))
    counts = {v: sum(r.verdict is v for r in rows) for v in ClaimVerdict}
    return LedgerReport(tuple(rows), MappingProxyType(counts), time.perf_counter() - start)
