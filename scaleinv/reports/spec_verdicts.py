"""The verdicts of one spec, computed once: ``scaleinv report``, ``scaleinv verify`` and a
notebook's ``scaleinv.reports.build(...)`` all read these objects.

For each rule of the spec, :func:`spec_verdicts` checks the units of its step (with
``[units]``), its invariance under each transform of ``[analysis]`` (see
:func:`~scaleinv.reports.verdicts.transforms_of`), PG's nearest-branch choice under each input
map, and whether its change of the intermediate space ``y`` is the loss's own step
(consistency in compositions). Every check runs with the same budget and at the same point:
the spec's param values, the rule's own step size, and the spec's first start, where the
hypotheses of a theorem and a counterexample are sought first (then sample points). A
verdict is still one for every value of ``η``, the params and the scales.

The spec's ``[analysis]`` table chooses the transforms::

    [analysis]
    scalings = [{ x2 = "1/alpha" }]   # input scalings x = S u (by input name), or lists
    output_scalings = ["c"]            # P -> c P (a symbol or number)
    budget = 1_000_000                 # work limit per symbolic check, in steps (the default)

Without ``scalings`` every input gets its own symbolic scale (``x = diag(s_0, s_1, …) u``),
the generic "different scalings" of the chapter's definition; outputs are scaled only when
``output_scalings`` asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sympy as sp

from scaleinv.analysis.branch_selection import branch_selection
from scaleinv.analysis.claims.checks_pg import intermediate_step
from scaleinv.analysis.invariance import InputScaling, OutputScaling, scale_invariance
from scaleinv.analysis.units import Dimensions, check_units, problem_dimensions
from scaleinv.analysis.units_structure import units_by_structure
from scaleinv.analysis.verdict import Verdict
from scaleinv.errors import NumericOnlyError, ScaleinvError, SpecError
from scaleinv.reports.content import ETA, FEW, RuleRun, derive, symbolic_rule
from scaleinv.symbolic import Spec
from scaleinv.symbolic.spec import ANALYSIS_KEYS, DEFAULT_BUDGET, MAX_BUDGET, MIN_BUDGET, check_keys

__all__ = ["SHOULD_HOLD", "SpecVerdict", "SpecVerdicts", "spec_verdicts", "is_identity"]
__all__ += ["analysis_options", "transforms_of"]

#: Which rules the chapter says pass each check (the others are expected to fail it).
SHOULD_HOLD: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "units": frozenset({"newton", "ig", "pg"}),
        "scale invariance": frozenset({"newton", "ig", "pg"}),
        "composition": frozenset({"ig", "pg"}),
        "nearest branch": frozenset(),  # the chapter's claim, corrected: ledger pg-nearest-branch
    }
)


@dataclass(frozen=True)
class SpecVerdict:
    """One rule × check of a spec.

    Attributes
    ----------
    rule, label : str
        The rule's registry name (``"gd"``) and its display label in the report.
    check : str
        ``"units"``, ``"scale invariance"``, ``"nearest branch"`` or ``"composition"``.
    transform : Transform or None
        The transform of a scale-invariance or nearest-branch check.
    verdict : str
        The analysis layer's word (``proved``, ``refuted``, ``consistent``, ...),
        ``"trivial"`` (the transform is the identity at the spec's values) or
        ``"not checked"`` (see ``reason``).
    holds : bool or None
        Whether the property holds on this problem; None: not decided.
    should_hold : bool
        The chapter says it holds for this rule.
    report : object or None
        What the analysis layer returned: :class:`~scaleinv.analysis.units.UnitsReport`,
        :class:`~scaleinv.analysis.invariance.InvarianceReport`, the branch selection or the
        composition's :class:`~scaleinv.analysis.verdict.Decision` (None if not checked).
    reason : str
        Plain text: why a check was not made.
    by_structure : bool
        The units follow from the rule's structure (no expanded ``Δx``).
    """

    rule: str
    label: str
    check: str
    transform: Any
    verdict: str
    holds: bool | None
    should_hold: bool
    report: Any = None
    reason: str = ""
    by_structure: bool = False

    @property
    def aspect(self) -> str:
        """The transform's plain description, or ``""``."""
        return "" if self.transform is None else self.transform.describe()

    @property
    def failed(self) -> bool:
        """A check the chapter says should hold, found to fail."""
        return self.should_hold and self.holds is False

    @property
    def undecided(self) -> bool:
        """A check the chapter says should hold, neither proved nor refuted (over its budget,
        or not checked): it is not known to hold."""
        return self.should_hold and self.holds is None


@dataclass(frozen=True)
class SpecVerdicts:
    """Every verdict of a spec and where it was checked.

    ``start`` (input name → value) is where counterexamples are sought first, with the
    spec's ``params`` and each rule's own step size; ``budget`` is the work limit (steps)
    per symbolic decision.
    """

    rows: tuple[SpecVerdict, ...]
    start: Mapping[str, float]
    params: Mapping[str, float]
    budget: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", MappingProxyType(dict(self.start)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as plain dicts (reports are built in worker processes)."""
        args = (self.rows, dict(self.start), dict(self.params), self.budget)
        return (SpecVerdicts, args)

    def of(self, check: str) -> tuple[SpecVerdict, ...]:
        """The rows of one check, in rule order."""
        return tuple(r for r in self.rows if r.check == check)

    def _repr_markdown_(self) -> str:
        """A notebook shows the table ``scaleinv verify`` prints."""
        from scaleinv.reports.verdict_text import markdown_table  # it formats these objects

        return markdown_table(self)


def analysis_options(spec: Spec) -> Mapping[str, Any]:
    """The spec's ``[analysis]`` table, checked for unknown keys."""
    check_keys(spec.analysis, ANALYSIS_KEYS, spec.source, "analysis")
    budget = spec.analysis.get("budget", DEFAULT_BUDGET)
    if (
        not isinstance(budget, (int, float))
        or isinstance(budget, bool)
        or not MIN_BUDGET <= budget <= MAX_BUDGET
    ):
        raise SpecError(
            spec.source,
            "analysis.budget",
            f"is a work limit in steps (counted Python calls, not seconds), from {MIN_BUDGET:_} "
            f"to {MAX_BUDGET:_}, e.g. {DEFAULT_BUDGET:_}: {budget!r}",
        )
    return spec.analysis


def transforms_of(spec: Spec) -> list[Any]:
    """The transforms the spec's ``[analysis]`` table asks for (or the generic defaults)."""
    table, problem = analysis_options(spec), spec.expression_problem("spec_verdicts")
    taken = {str(s) for s in (*problem.inputs, *problem.params)}
    scalings = table.get("scalings")
    if scalings is None:
        scalings = [[_fresh(f"s_{i}", taken) for i in range(problem.n)]]
    outputs = table.get("output_scalings", [])
    if not isinstance(scalings, list) or not isinstance(outputs, list):
        raise SpecError(spec.source, "analysis", "scalings and output_scalings must be lists")
    found: list[Any] = []
    for i, entry in enumerate(scalings):
        if not isinstance(entry, (dict, list)):
            raise SpecError(spec.source, f"analysis.scalings[{i}]", "must be a table or a list")
        found.append(InputScaling(entry))
    found += [OutputScaling(_scalar(c, spec, "analysis.output_scalings")) for c in outputs]
    return found


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


def _scalar(value: Any, spec: Spec, key: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(spec.source, key, f"entries must be symbols or numbers, got {value!r}")
    return value


def _truth(verdict: Verdict) -> bool | None:
    return {Verdict.PROVED: True, Verdict.REFUTED: False}.get(verdict)


def _row(run: RuleRun, check: str, verdict: str, holds: bool | None, **more: Any) -> SpecVerdict:
    name = run.rule.name
    transform = more.pop("transform", None)
    should = name in SHOULD_HOLD[check]
    return SpecVerdict(name, run.label, check, transform, verdict, holds, should, **more)


def spec_verdicts(
    spec: Spec,
    runs: Sequence[RuleRun] | None = None,
    *,
    units: Mapping[str, Any] | None = None,
    budget: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SpecVerdicts:
    """Check every rule of ``spec`` (see the module); ``runs`` are :func:`derive`'s (derived
    here when not given), ``units`` default to the spec's ``[units]`` and ``budget`` to its
    ``[analysis] budget``. ``progress`` gets one line per rule.
    """
    problem = spec.expression_problem("spec_verdicts")
    budget = analysis_options(spec).get("budget", DEFAULT_BUDGET) if budget is None else budget
    units = dict(spec.units) if units is None else dict(units)
    runs = derive(spec)[1] if runs is None else runs
    transforms = transforms_of(spec)
    start = dict(zip(problem.inputs, (float(v) for v in spec.starts[0])))
    dims = problem_dimensions(problem, units) if units else None
    found: list[SpecVerdict] = []
    for k, run in enumerate(runs, 1):
        if progress is not None:
            what = ("units, " if units else "") + f"{len(transforms)} scaling(s)"
            progress(f"[{k}/{len(runs)}] {run.label}: {what}, composition")
        if dims is not None:
            found.append(_units(problem, run, dims))
        for transform in transforms:
            found.append(_invariance(spec, run, transform, start, budget))
            if run.rule.name == "pg" and not isinstance(transform, OutputScaling):
                found.append(_selection(problem, run, transform))
        found.append(_composition(problem, run, budget))
    params = {str(s): float(v) for s, v in problem.params.items()}
    return SpecVerdicts(tuple(found), {str(s): v for s, v in start.items()}, params, budget)


def _units(problem: Any, run: RuleRun, dims: Dimensions) -> SpecVerdict:
    """Every component of the expanded ``Δx`` up to :data:`FEW` inputs, else (and for a rule
    without a closed-form ``Δx``) by the rule's structure."""
    walk = bool(run.deltas) and problem.n <= FEW
    try:
        try:
            report = check_units(problem, symbolic_rule(run.rule), dims, eta=ETA) if walk else None
        except NumericOnlyError:  # a dimensioned target's symbols can leave no closed form
            walk = False
        if report is None:
            report = units_by_structure(problem, run.rule.name, dims)
    except ScaleinvError as err:
        return _row(run, "units", "not checked", None, reason=str(err))
    verdict = str(report.verdict)
    return _row(run, "units", verdict, report.consistent, report=report, by_structure=not walk)


def _invariance(
    spec: Spec, run: RuleRun, transform: Any, start: Mapping[sp.Symbol, float], budget: int
) -> SpecVerdict:
    """:func:`scale_invariance` at the spec's values; ``trivial`` for an identity map."""
    identity = is_identity(spec, transform)
    problem = spec.expression_problem("spec_verdicts")
    at: dict[sp.Symbol, float] = {s: float(v) for s, v in problem.params.items()}
    eta = getattr(run.rule, "eta", None)
    if eta is not None:
        at[ETA] = float(eta)
    try:
        report = scale_invariance(
            problem, symbolic_rule(run.rule), transform, budget=budget, rng=0,
            at=None if identity else at, point=None if identity else start,
        )  # fmt: skip
    except ScaleinvError as err:
        return _row(
            run, "scale invariance", "not checked", None, transform=transform, reason=str(err)
        )
    if identity:
        return _row(run, "scale invariance", "trivial", True, transform=transform, report=report)
    holds = _truth(report.verdict)
    return _row(
        run, "scale invariance", str(report.verdict), holds, transform=transform, report=report
    )


def is_identity(spec: Spec, transform: Any) -> bool:
    """Whether ``transform`` maps the problem to itself at the spec's param values."""
    p = spec.expression_problem("spec_verdicts")
    setup = transform.apply(p)
    if setup.new_params:  # free scales: not the identity
        return False
    q = setup.problem
    values = dict(p.params)
    rename = dict(zip(p.inputs, setup.inputs))
    pairs = [
        *zip(setup.forward, setup.inputs),
        *zip(q.outputs, [e.xreplace(rename) for e in p.outputs]),
        (q.loss, p.loss),
    ]
    return all(sp.simplify((a - b).subs(values)) == 0 for a, b in pairs)


def _selection(problem: Any, run: RuleRun, transform: Any) -> SpecVerdict:
    """PG's nearest-branch choice under ``transform`` (:func:`branch_selection`)."""
    try:
        r = branch_selection(problem, transform)
    except ScaleinvError as err:
        return _row(
            run, "nearest branch", "not checked", None, transform=transform, reason=str(err)
        )
    return _row(
        run, "nearest branch", r.verdict.value, _truth(r.verdict), transform=transform, report=r
    )


def _composition(problem: Any, run: RuleRun, budget: int) -> SpecVerdict:
    """Is the rule's change of ``y`` the loss's own ``Δy`` (:func:`intermediate_step`)?"""
    if problem.n > FEW:  # the check compares expanded updates, which are not derived here
        why = f"the update is not expanded at this size (n = {problem.n})"
        return _row(run, "composition", "not checked", None, reason=why)
    if not run.deltas:
        return _row(run, "composition", "not checked", None, reason=run.delta_note)
    try:
        d = intermediate_step(problem, symbolic_rule(run.rule), budget=budget)
    except ScaleinvError as err:
        return _row(run, "composition", "not checked", None, reason=str(err))
    return _row(run, "composition", d.verdict.value, _truth(d.verdict), report=d)
