"""The verdict table of a report: units, scale-invariance, composition and the claims ledger.

Each check is one call into :mod:`scaleinv.analysis`; this module only turns the frozen
reports it returns into :class:`VerdictRow` objects (LaTeX detail for the document, short
words for the terminal summary). The spec's ``[analysis]`` table chooses the transforms::

    [analysis]
    scalings = [{ x2 = "1/alpha" }]   # input scalings x = S u (by input name), or lists
    output_scalings = ["c"]            # P -> c P (a symbol or number)
    budget = 1_000_000                 # work limit per symbolic check, in steps (the default)

Without ``scalings`` every input gets its own symbolic scale (``x = diag(s_0, s_1, …) u``),
the generic "different scalings" of the chapter's definition; outputs are scaled only when
``output_scalings`` asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.analysis.invariance import (
    InputScaling,
    InvarianceReport,
    OutputScaling,
    scale_invariance,
    trajectory_invariance,
)
from scaleinv.analysis.units import check_units, parse_dimension, problem_dimensions
from scaleinv.analysis.units_structure import units_by_structure
from scaleinv.errors import ScaleinvError, SpecError
from scaleinv.numeric import Status
from scaleinv.reports.content import ETA, FEW, RuleRun, status_words, symbolic_rule
from scaleinv.reports.latex import escape, number, tex, text_vector
from scaleinv.symbolic import Spec
from scaleinv.symbolic.spec import ANALYSIS_KEYS, DEFAULT_BUDGET, MAX_BUDGET, MIN_BUDGET, check_keys

__all__ = ["VerdictRow", "transforms_of", "units_rows"]
__all__ += ["invariance_rows", "dimension_tex", "transform_tex", "analysis_options"]

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
        aspect = f" ({self.aspect})" if self.aspect else ""
        return f"**{self.subject}** — {self.check}{aspect}: **{self.verdict}**. {self.detail}"


def dimension_tex(dim: Any) -> str:
    r"""A dimension as upright LaTeX math, base dimensions with signed exponents.

    Examples
    --------
    >>> dimension_tex("force/length")
    '\\mathrm{mass}\\,\\mathrm{time}^{-2}'
    >>> dimension_tex("1")
    '1'
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
        parts.append(rf"\mathrm{{{base}}}{shown}")
    return r"\,".join(parts) or "1"


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
    table, problem = analysis_options(spec), spec.problem
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


def units_rows(spec: Spec, runs: Sequence[RuleRun]) -> list[VerdictRow]:
    """One row per rule (needs ``[units]``).

    Up to :data:`FEW` inputs every component of the expanded ``Δx`` is walked
    (:func:`~scaleinv.analysis.units.check_units`); past that, and for a rule whose ``Δx`` has
    no closed form, the units follow from the rule's structure
    (:func:`~scaleinv.analysis.units_structure.units_by_structure`), which the tests check
    against the expanded walk on small problems.
    """
    if not spec.units:
        return []
    p = spec.problem
    dims = problem_dimensions(p, dict(spec.units))
    rows = []
    for run in runs:
        walk = bool(run.deltas) and p.n <= FEW
        how = ""
        try:
            if walk:
                report = check_units(p, symbolic_rule(run.rule), dims, eta=ETA)
            else:
                report = units_by_structure(p, run.rule.name, dims)
                how = (
                    "By the structure of the update (derivatives of the dimensionally "
                    rf"consistent $L(\mathcal{{P}}(x))$; its {p.n} components are not expanded): "
                )
        except ScaleinvError as err:
            why = run.delta_note if not run.deltas else str(err)
            rows.append(VerdictRow("units", run.label, "not checked", escape(why)))
            continue
        rows.append(VerdictRow("units", run.label, str(report.verdict), how + _needs(p, report)))
    return rows


def _needs(problem: Any, report: Any) -> str:
    """Which dimension η needs per component: one by one, or grouped when there are many."""
    pairs = list(zip(problem.inputs, report.required_eta))
    if len(pairs) <= FEW:
        parts = [
            rf"$[\eta]_{{{tex(x)}}} = {'any' if need is None else dimension_tex(need)}$"
            for x, need in pairs
        ]
    else:
        groups: dict[str, list[Any]] = {}
        for x, need in pairs:
            groups.setdefault("any" if need is None else dimension_tex(need), []).append(x)
        parts = [rf"$[\eta] = {shown}$ for {_names(xs)}" for shown, xs in groups.items()]
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


def invariance_rows(spec: Spec, runs: Sequence[RuleRun]) -> list[VerdictRow]:
    """Per transform and rule: :func:`scale_invariance` and its numeric trajectory twin.

    Counterexamples are searched at the spec's own param values and the rule's step size.
    A transform that is the identity at the spec's values makes every rule trivially
    invariant: such rows say ``trivial`` (with the verdict for general values in the detail).
    """
    budget = analysis_options(spec).get("budget", DEFAULT_BUDGET)
    rows = []
    for transform in transforms_of(spec):
        aspect, heading = transform.describe(), transform_tex(transform, spec)
        identity = _is_identity(spec, transform)
        for run in runs:
            at = dict(spec.problem.params)
            eta = getattr(run.rule, "eta", None)
            if eta is not None and run.deltas:
                at[ETA] = float(eta)
            try:
                rule = symbolic_rule(run.rule) if run.deltas else run.rule
                report = scale_invariance(
                    spec.problem, rule, transform, budget=budget, rng=0, at=None if identity else at
                )
                twin = "" if identity else _twin(spec, run, transform)
            except ScaleinvError as err:
                text = escape(str(err))
                rows.append(VerdictRow(_INV, run.label, "not checked", text, aspect, heading))
                continue
            verdict = str(report.verdict)
            if identity:
                detail = (
                    f"With the spec's {_param_values(spec)} this transform is the identity, so "
                    f"every rule is trivially invariant. For general values: {verdict}"
                    + (f" ({escape(report.note)})" if report.note else "")
                    + "."
                )
                verdict = "trivial"
            else:
                detail = _invariance_detail(report) + twin
            rows.append(VerdictRow(_INV, run.label, verdict, detail, aspect, heading))
    return rows


def _is_identity(spec: Spec, transform: Any) -> bool:
    """Whether ``transform`` maps the problem to itself at the spec's param values."""
    setup = transform.apply(spec.problem)
    if setup.new_params:  # free scales: not the identity
        return False
    p, q = spec.problem, setup.problem
    values = dict(p.params)
    rename = dict(zip(p.inputs, setup.inputs))
    pairs = [
        *zip(setup.forward, setup.inputs),
        *zip(q.outputs, [e.xreplace(rename) for e in p.outputs]),
        (q.loss, p.loss),
    ]
    return all(sp.simplify((a - b).subs(values)) == 0 for a, b in pairs)


def _param_values(spec: Spec) -> str:
    shown = [
        f"${tex(s)} = {number(v, 4)}$" for s, v in sorted(spec.problem.params.items(), key=str)
    ]
    return ", ".join(shown) or "values"


def transform_tex(transform: Any, spec: Spec) -> str:
    r"""A transform as LaTeX: ``x = (u_0, u_1/\alpha)`` or ``\mathcal{P} \to c\,\mathcal{P}``."""
    setup = transform.apply(spec.problem)
    if isinstance(transform, OutputScaling):
        k = next(i for i, e in enumerate(spec.problem.outputs) if e != 0)
        c = tex(sp.simplify(setup.problem.outputs[k] / spec.problem.outputs[k]))
        return (
            rf"$\mathcal{{P}} \to {c}\,\mathcal{{P}}$, $y^* \to {c}\,y^*$, "
            rf"$L(y) \to {c}^{{2}} L(y/{c})$"
        )
    if spec.problem.n == 1:
        return rf"${tex(spec.problem.inputs[0])} = {tex(setup.forward[0])}$"
    if spec.problem.n > FEW:
        first, last = setup.forward[0], setup.forward[-1]
        return rf"$x = ({tex(first)}, \dots, {tex(last)})$"
    xs = ", ".join(tex(x) for x in spec.problem.inputs)
    return rf"$({xs}) = ({', '.join(tex(e) for e in setup.forward)})$"


def _natural(symbol: Any) -> tuple[str, int]:
    """Sort key: ``s_2`` before ``s_10`` (name, then number)."""
    found = re.fullmatch(r"(.*?)(\d+)", str(symbol))
    return (found.group(1), int(found.group(2))) if found else (str(symbol), -1)


def _symbol_tex(name: str) -> str:
    return tex(sp.Symbol(name))


def _invariance_detail(report: InvarianceReport) -> str:
    text = escape(report.note) if report.note else ""
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
    setup = transform.apply(spec.problem)
    ordered = sorted(setup.new_params, key=_natural)
    values = {str(s): _TWIN_VALUES[i % len(_TWIN_VALUES)] for i, s in enumerate(ordered)}
    defaults = {str(s): v for s, v in spec.problem.params.items()}
    comparison = trajectory_invariance(
        spec.problem, run.rule, transform, np.array(spec.starts), spec.steps,
        {**defaults, **values},
    )  # fmt: skip
    shown = _assignments(values)
    where = f" (with {shown})" if shown else ""
    statuses = {status_words(Status(int(c))) for c in np.ravel(comparison.status_mapped)}
    ended = ""
    if statuses != {status_words(Status(int(c))) for c in np.ravel(comparison.status)}:
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
