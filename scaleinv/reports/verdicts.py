"""The verdict table of a report: units, scale-invariance, composition and the claims ledger.

The verdicts are :func:`~scaleinv.reports.spec_verdicts.spec_verdicts`' (the ones ``scaleinv
verify`` prints); this module only turns them into :class:`VerdictRow` objects (LaTeX detail
for the document, short words for the terminal summary) and adds each invariance verdict's
numeric twin, a run of the rule on both problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.analysis.invariance import InvarianceReport, OutputScaling, trajectory_invariance
from scaleinv.analysis.units import UnitsReport, parse_dimension
from scaleinv.errors import ScaleinvError
from scaleinv.markup import markdown_math, markdown_text
from scaleinv.numeric import Status
from scaleinv.reports.content import FEW, RuleRun
from scaleinv.reports.latex import escape, number, prose, tex, text_vector
from scaleinv.reports.spec_verdicts import SpecVerdict, SpecVerdicts
from scaleinv.symbolic import Spec

__all__ = ["VerdictRow", "verdict_rows", "start_tex", "dimension_tex", "transform_tex"]

_INV = "scale invariance"
#: Values given to the symbols a transform introduces in the numeric twin.
_TWIN_VALUES = (0.5, 4.0, 0.25, 2.0, 8.0, 0.125)


@dataclass(frozen=True)
class VerdictRow:
    """One row of the verdict table.

    Attributes
    ----------
    check : str
        ``"units"``, ``"scale invariance"``, ``"composition"`` or ``"ledger"``.
    subject : str
        The rule (display label) or claim the row is about.
    verdict : str
        The analysis layer's verdict word (``proved``, ``refuted``, ``consistent``, ...).
    detail : str
        LaTeX: the transform, the derivation's gist or the counterexample.
    aspect : str
        Which variant of the check (e.g. the transform of an invariance row), plain text.
    aspect_tex : str
        The same as LaTeX (for the table's heading).
    """

    check: str
    subject: str
    verdict: str
    detail: str
    aspect: str = ""
    aspect_tex: str = ""

    def _repr_markdown_(self) -> str:
        aspect = f" ({markdown_text(self.aspect)})" if self.aspect else ""
        return (
            f"**{markdown_text(self.subject)}** — {markdown_text(self.check)}{aspect}: "
            f"**{markdown_text(self.verdict)}**. {markdown_math(self.detail)}"
        )


def dimension_tex(dim: Any) -> str:
    r"""A dimension as upright LaTeX math, base dimensions with signed exponents.

    Examples
    --------
    >>> dimension_tex("force/length")
    '\\mathrm{mass}\\,\\mathrm{time}^{-2}'
    >>> dimension_tex("1")
    '1'
    >>> dimension_tex("amount_of_substance/time")  # words apart, not subscripts
    '\\mathrm{amount\\ of\\ substance}\\,\\mathrm{time}^{-1}'
    """
    powers = parse_dimension(dim).name.as_powers_dict()
    parts = []
    order = ("mass", "length", "time", "current", "temperature", "amount_of_substance")

    def key(item: tuple[Any, Any]) -> tuple[int, int, str]:
        name = str(item[0])
        return (0 if item[1] > 0 else 1, order.index(name) if name in order else 9, name)

    for base, exp in sorted(powers.items(), key=key):
        if base == 1 or exp == 0:
            continue
        shown = "" if exp == 1 else f"^{{{tex(exp)}}}"
        words = str(base).replace("_", "\\ ")  # amount_of_substance: _ would subscript
        parts.append(rf"\mathrm{{{words}}}{shown}")
    return r"\,".join(parts) or "1"


def verdict_rows(spec: Spec, runs: Sequence[RuleRun], verdicts: SpecVerdicts) -> list[VerdictRow]:
    """The report's rows of ``verdicts`` (:func:`~scaleinv.reports.spec_verdicts.spec_verdicts`):
    units, scale invariance under each transform (with its numeric trajectory twin) and
    composition; PG's nearest-branch choice is a paragraph of its own
    (:func:`~scaleinv.reports.selection_note.branch_selection_tex`)."""
    by_label = {run.label: run for run in runs}
    return [
        *(_units_row(spec, v) for v in verdicts.of("units")),
        *(_invariance_row(spec, by_label[v.label], v) for v in verdicts.of(_INV)),
        *(_composition_row(spec, v) for v in verdicts.of("composition")),
    ]


def _units_row(spec: Spec, v: SpecVerdict) -> VerdictRow:
    """Which dimension η needs per component of ``Δx`` (or why that was not checked)."""
    if v.report is None:
        return VerdictRow("units", v.label, v.verdict, prose(v.reason))
    how = ""
    if v.by_structure:
        n = spec.problem.n
        why = f"its {n} components are not expanded" if n > FEW else "it has no closed form"
        how = (
            "By the structure of the update (derivatives of the dimensionally consistent "
            rf"$L(\mathcal{{P}}(x))$; {why}): "
        )
    return VerdictRow("units", v.label, v.verdict, how + _needs(spec.problem, v.report))


def _needs(problem: Any, report: UnitsReport) -> str:
    """Which dimension η needs per component: one by one, or grouped when there are many."""

    def shown(i: int) -> str:
        need = report.need(i)
        return rf"\text{{{need}}}" if isinstance(need, str) else dimension_tex(need)

    pairs = [(x, shown(i)) for i, x in enumerate(problem.inputs)]
    if len(pairs) <= FEW:
        parts = [rf"$[\eta]_{{{tex(x)}}} = {need}$" for x, need in pairs]
    else:
        groups: dict[str, list[Any]] = {}
        for x, need in pairs:
            groups.setdefault(need, []).append(x)
        parts = [rf"$[\eta] = {need}$ for {_names(xs)}" for need, xs in groups.items()]
    detail = "needs " + ", ".join(parts)
    if report.eta_dimension is not None:
        detail += rf"; one $\eta$ of dimension ${dimension_tex(report.eta_dimension)}$ fits"
    else:
        detail += r"; no single $\eta$ fits"
    return detail


def _names(symbols: Sequence[Any]) -> str:
    """``$x_0$, …, $x_{255}$ (256 inputs)`` for many symbols, else all of them."""
    shown = [f"${tex(x)}$" for x in symbols]
    if len(shown) <= 3:
        return ", ".join(shown)
    return rf"{shown[0]}, \dots, {shown[-1]} ({len(shown)} inputs)"


def _invariance_row(spec: Spec, run: RuleRun, v: SpecVerdict) -> VerdictRow:
    """The verdict, its counterexample and the numeric twin of one rule and transform.

    A transform that is the identity at the spec's values makes every rule trivially
    invariant: such rows say ``trivial`` (with the verdict for general values in the detail).
    """
    aspect, heading = v.aspect, transform_tex(v.transform, spec)
    report = v.report
    if report is None:
        return VerdictRow(_INV, v.label, v.verdict, prose(v.reason), aspect, heading)
    if v.verdict == "trivial":
        detail = (
            f"With the spec's {_param_values(spec)} this transform is the identity, so "
            f"every rule is trivially invariant. For general values: {report.verdict}"
            + (f" ({prose(report.note)})" if report.note else "")
            + "."
        )
        return VerdictRow(_INV, v.label, v.verdict, detail, aspect, heading)
    try:
        twin = _twin(spec, run, v.transform)
    except ScaleinvError as err:
        twin = prose(f". Numeric twin: not run ({err}).")
    detail = _invariance_detail(report) + twin
    return VerdictRow(_INV, v.label, v.verdict, detail, aspect, heading)


def _composition_row(spec: Spec, v: SpecVerdict) -> VerdictRow:
    """Whether the rule's change of ``y`` is the loss's own ``Δy``."""
    if v.report is None:
        return VerdictRow("composition", v.label, v.verdict, prose(v.reason))
    how = r"$\mathcal{P}(x + \Delta x) - \mathcal{P}(x)$" if v.rule == "pg" else r"$J\,\Delta x$"
    relation = {"proved": "equals", "refuted": "differs from"}.get(v.verdict, "was compared with")
    detail = (
        f"the change of $y$, {how}, {relation} the loss's own "
        r"$\Delta y = -\eta\,(\partial^2 L/\partial y^2)^{-1}\partial L/\partial y$: "
        + prose(v.report.note or v.verdict)
    )
    return VerdictRow("composition", v.label, v.verdict, detail)


def start_tex(spec: Spec, verdicts: SpecVerdicts) -> str:
    """A sentence naming where the verdicts were checked (the report's verdict section)."""
    problem = spec.expression_problem("this report")
    xs, values = problem.inputs, list(verdicts.start.values())
    if len(xs) == 1:
        where = f"${tex(xs[0])} = {number(values[0], 4)}$"
    elif len(xs) <= FEW:
        where = f"$({', '.join(tex(x) for x in xs)}) = $ {text_vector(values, 4)}"
    else:
        where = f"$x = $ {text_vector(values, 4, keep=3)}"
    params = f", the spec's {_param_values(spec)}" if problem.params else ""
    return (
        "Each verdict holds for every step size (and, where it says so, every value of the "
        "params and scales). A counterexample, and the hypotheses of a theorem, are sought "
        f"first at the spec's start {where}{params} and each rule's own "
        rf"$\eta$, then at sample points; symbolic decisions get "
        f"${number(verdicts.budget, 3)}$\\,s each.\n"
    )


def _param_values(spec: Spec) -> str:
    shown = [
        f"${tex(s)} = {number(v, 4)}$" for s, v in sorted(spec.problem.params.items(), key=str)
    ]
    return ", ".join(shown) or "values"


def transform_tex(transform: Any, spec: Spec) -> str:
    r"""A transform as LaTeX: ``x = (u_0, u_1/\alpha)`` or ``\mathcal{P} \to c\,\mathcal{P}``."""
    problem = spec.expression_problem("this report")
    setup = transform.apply(problem)
    if isinstance(transform, OutputScaling):
        k = next(i for i, e in enumerate(problem.outputs) if e != 0)
        c = tex(sp.simplify(setup.problem.outputs[k] / problem.outputs[k]))
        return (
            rf"$\mathcal{{P}} \to {c}\,\mathcal{{P}}$, $y^* \to {c}\,y^*$, "
            rf"$L(y) \to {c}^{{2}} L(y/{c})$"
        )
    if problem.n == 1:
        return rf"${tex(problem.inputs[0])} = {tex(setup.forward[0])}$"
    if problem.n > FEW:
        first, last = setup.forward[0], setup.forward[-1]
        return rf"$x = ({tex(first)}, \dots, {tex(last)})$"
    xs = ", ".join(tex(x) for x in problem.inputs)
    return rf"$({xs}) = ({', '.join(tex(e) for e in setup.forward)})$"


def _natural(symbol: Any) -> tuple[str, int]:
    """Sort key: ``s_2`` before ``s_10`` (name, then number)."""
    found = re.fullmatch(r"(.*?)(\d+)", str(symbol))
    return (found.group(1), int(found.group(2))) if found else (str(symbol), -1)


def _symbol_tex(name: str) -> str:
    return tex(sp.Symbol(name))


def _invariance_detail(report: InvarianceReport) -> str:
    text = prose(report.note) if report.note else ""
    ce = report.counterexample
    if ce is not None:
        text += (
            rf"; e.g.\ at {_assignments(ce.values())}: $\Delta x = ${text_vector(ce.lhs, 3)}, "
            rf"mapped $\Delta u = ${text_vector(ce.rhs, 3)}"
        )
    return text


def _assignments(values: Mapping[str, float]) -> str:
    """``$u_0 = 1.5$, $s = 2$`` for a few values; many numbered ones as vectors per name.

    ``u0 … u255`` and ``s_0 … s_255`` become ``$u = ($1.51$, …$)$ (256 entries)``, in index
    order, so a counterexample of a 256-input problem takes two lines, not a page.
    """
    if len(values) <= 2 * FEW:
        return ", ".join(f"${_symbol_tex(k)} = {number(v, 3)}$" for k, v in values.items())
    families: dict[str, list[tuple[int, float]]] = {}
    single: list[tuple[str, float]] = []
    for name, value in values.items():
        found = re.fullmatch(r"(.*?[A-Za-z])_?(\d+)", name)
        if found is None:
            single.append((name, value))
        else:
            families.setdefault(found.group(1), []).append((int(found.group(2)), value))
    parts = []
    for stem, members in families.items():
        if len(members) <= 3:
            single += [(f"{stem}{i}", v) for i, v in members]
            continue
        ordered = [v for _, v in sorted(members)]
        parts.append(f"${_symbol_tex(stem)} = ${text_vector(ordered, 3)}")
    parts += [f"${_symbol_tex(k)} = {number(v, 3)}$" for k, v in single]
    return ", ".join(parts)


def _twin(spec: Spec, run: RuleRun, transform: Any) -> str:
    """The numeric twin: run both problems and compare the trajectories in x."""
    problem = spec.expression_problem("this report")
    setup = transform.apply(problem)
    ordered = sorted(setup.new_params, key=_natural)
    values = {str(s): _TWIN_VALUES[i % len(_TWIN_VALUES)] for i, s in enumerate(ordered)}
    defaults = {str(s): v for s, v in problem.params.items()}
    comparison = trajectory_invariance(
        problem, run.rule, transform, np.array(spec.starts), spec.steps,
        {**defaults, **values},
    )  # fmt: skip
    shown = _assignments(values)
    where = f" (with {shown})" if shown else ""
    statuses = {Status(int(c)).words for c in np.ravel(comparison.status_mapped)}
    ended = ""
    if statuses != {Status(int(c)).words for c in np.ravel(comparison.status)}:
        ended = f"; the run on the transformed problem ended: {', '.join(sorted(statuses))}"
    if comparison.max_rel == 0:
        return f". Numeric twin{where}: the trajectories mapped back agree exactly."
    if comparison.max_rel < 1e-9:
        return (
            f". Numeric twin{where}: the trajectories mapped back agree to rounding "
            f"(relative difference ${number(comparison.max_rel, 2)}$){escape(ended)}."
        )
    if comparison.max_rel > 10:
        return (
            f". Numeric twin{where}: the trajectories mapped back are different paths (they "
            f"end more than ten times their own size apart){escape(ended)}."
        )
    return (
        f". Numeric twin{where}: the trajectories mapped back differ by up to "
        rf"${number(100 * comparison.max_rel, 2)}\,\%$ (relative){escape(ended)}."
    )
