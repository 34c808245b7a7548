"""What a report shows, computed once: derivations, rule updates, runs and report options.

:func:`derive` asks the symbolic layer for ``J``, ``∂L/∂x``, ``∂²L/∂x²``, the local inverse
and every rule's ``Δx``; :func:`run_rules` runs every rule from every start point with
:func:`scaleinv.minimize`. The LaTeX writer and the figures only read these frozen objects,
so every formula and number in a report is one the lower layers computed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import sympy as sp

from scaleinv.errors import NumericInverseWarning, NumericOnlyError, ScaleinvError, SpecError
from scaleinv.numeric import Trajectory, minimize
from scaleinv.numeric.rules import Rule, make_rule
from scaleinv.reports.colors import RuleStyle, rule_styles
from scaleinv.symbolic import RuleSpec, Spec
from scaleinv.symbolic.inverse import LocalInverse
from scaleinv.symbolic.spec import REPORT_KEYS, check_keys, spec_number

__all__ = ["ReportOptions", "report_options", "RuleRun", "Derivation", "derive", "run_rules"]
__all__ += ["ETA", "symbolic_rule", "rule_labels", "eta_text", "exact_number", "FEW"]

#: The step-size symbol the report's formulas are written with.
ETA = sp.Symbol("eta", positive=True)

#: Up to this many inputs a report shows every entry and every rule's closed-form step;
#: above it, representative entries, the sparsity pattern, and the steps' structure only.
FEW = 8


@dataclass(frozen=True)
class ReportOptions:
    """The spec's ``[report]`` table.

    Attributes
    ----------
    param : Symbol or None
        The param the landscape figure varies (``param = "alpha"``; default: the only param).
    alphas : tuple of float
        Its values, one landscape panel each (``alphas = [1, 10, 100]``); empty: no such figure.
    sample : tuple of float
        Where the landscape's update arrows start (``sample = [...]``; default: first start).
    window : tuple of (float, float) or None
        The x-space plot window per input (``window = [[-3, 3], [-3, 3]]``); default: around
        the trajectories.
    periods : tuple of (float or None)
        Per input, its period where ``periodic = { ph = "2*pi" }`` declares one (figures
        show it wrapped), else None.
    """

    param: sp.Symbol | None
    alphas: tuple[float, ...]
    sample: tuple[float, ...]
    window: tuple[tuple[float, float], ...] | None
    periods: tuple[float | None, ...] = ()


#: A plot window ``[low, high]`` must be at least this wide relative to ``max(|low|, |high|)``:
#: narrower, its grid points and ticks are not distinct floats (and a width that overflows,
#: as ``[-1e308, 1e308]``, was a ValueError inside Matplotlib).
MIN_WINDOW = 1e-9


def report_options(spec: Spec) -> ReportOptions:
    """Validate the spec's ``[report]`` table; a :class:`SpecError` names the bad key."""
    table, problem, src = dict(spec.report), spec.expression_problem("this report"), spec.source
    check_keys(table, REPORT_KEYS, src, "report")
    by_name = {str(s): s for s in problem.params}
    name = table.get("param")
    if name is None and len(by_name) == 1:
        name = next(iter(by_name))
    if name is not None and name not in by_name:
        raise SpecError(src, "report.param", f"{name!r} is not a param; params: {sorted(by_name)}")
    alphas = tuple(_floats(table.get("alphas", []), src, "report.alphas"))
    if alphas and name is None:
        raise SpecError(src, "report.alphas", "needs report.param (which param to vary)")
    sample = tuple(_floats(table.get("sample", spec.starts[0]), src, "report.sample"))
    if len(sample) != problem.n:
        raise SpecError(src, "report.sample", f"needs {problem.n} numbers, got {len(sample)}")
    window = None
    if "window" in table:
        raw = table["window"]
        if not isinstance(raw, list) or len(raw) != problem.n:
            raise SpecError(src, "report.window", f"needs {problem.n} pairs [low, high]")
        pairs = [tuple(_floats(pair, src, "report.window")) for pair in raw]
        if any(len(p) != 2 or not p[0] < p[1] for p in pairs):
            raise SpecError(src, "report.window", "each entry must be [low, high] with low < high")
        for x, (low, high) in zip(problem.inputs, pairs):
            if not high - low >= MIN_WINDOW * max(abs(low), abs(high)) or high - low == math.inf:
                raise SpecError(
                    src,
                    "report.window",
                    f"[{low:g}, {high:g}] for {x} cannot be plotted: its width must be a finite "
                    f"float of at least {MIN_WINDOW:g} times its largest magnitude",
                )
        window = tuple((p[0], p[1]) for p in pairs)
    periods = _periods(table.get("periodic", {}), [str(x) for x in problem.inputs], src)
    return ReportOptions(by_name.get(name) if name else None, alphas, sample, window, periods)


def _periods(table: Any, inputs: list[str], source: str) -> tuple[float | None, ...]:
    """``[report] periodic``: per input its positive period, or None."""
    if not isinstance(table, dict):
        raise SpecError(source, "report.periodic", f"must be a table of periods, got {table!r}")
    unknown = sorted(set(table) - set(inputs))
    if unknown:
        raise SpecError(
            source, f"report.periodic.{unknown[0]}", f"is not an input; inputs: {inputs}"
        )
    periods = {x: spec_number(v, source, f"report.periodic.{x}") for x, v in table.items()}
    for x, period in periods.items():
        if not period > 0:
            raise SpecError(source, f"report.periodic.{x}", f"must be positive, got {period:g}")
    return tuple(periods.get(x) for x in inputs)


def _floats(value: Any, source: str, key: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise SpecError(source, key, f"must be a list of finite numbers, got {value!r}")
    return [float(v) for v in value]


@dataclass(frozen=True, eq=False)
class RuleRun:
    """One rule of the spec: its update formula(s), its run and how figures draw it.

    Attributes
    ----------
    spec : RuleSpec
        As written in the spec.
    rule : Rule
        The rule object (numeric step size).
    label : str
        Display name, unique within the report (``"GD (η=0.01)"`` or the spec's label).
    style : RuleStyle
        Colour, marker and line style, the same in every figure.
    deltas : tuple of Matrix
        ``Δx`` (n×1) in the input symbols and :data:`ETA`; one per inverse branch for PG;
        empty when there is no formula.
    delta_note : str
        Why there is no formula (numeric-only rule, singular Hessian, ...), else ``""``.
    trajectory : Trajectory or None
        The run from every start point, every step recorded (``record="all"``: the figures
        draw the paths); None when running failed (see ``run_error``).
    run_error : str
        The error message of a failed run, else ``""``.
    """

    spec: RuleSpec
    rule: Rule
    label: str
    style: RuleStyle
    deltas: tuple[sp.Matrix, ...]
    delta_note: str
    trajectory: Trajectory | None = None
    run_error: str = ""


@dataclass(frozen=True, eq=False)
class Derivation:
    """The exact derivatives of the problem and its local inverse (None when a large problem
    has no PG rule: its inverse is then neither needed nor shown)."""

    jacobian: sp.Matrix
    gradient: sp.Matrix
    hessian: sp.Matrix
    inverse: LocalInverse | None


def symbolic_rule(rule: Rule) -> Rule:
    """``rule`` with its numeric ``eta`` replaced by :data:`ETA` (rules without one unchanged)."""
    if dataclasses.is_dataclass(rule) and getattr(rule, "eta", None) is not None:
        return replace(cast(Any, rule), eta=ETA)
    return rule


def _label(rule_spec: RuleSpec, rule: Rule) -> str:
    if "label" in rule_spec.settings:
        return str(rule_spec.settings["label"])
    eta = getattr(rule, "eta", None)
    return rule.label if eta is None else f"{rule.label} (η={eta_text(float(eta))})"


def rule_labels(rule_specs: Sequence[RuleSpec], rules: Sequence[Rule]) -> list[str]:
    """Display names, unique within a report: the spec's label or ``GD (η=0.01)``; identical
    ones numbered (``GD (η=0.01) #1``, ``#2``)."""
    labels = [_label(s, r) for s, r in zip(rule_specs, rules)]
    return [
        f"{label} #{labels[: i + 1].count(label)}" if labels.count(label) > 1 else label
        for i, label in enumerate(labels)
    ]


def eta_text(eta: float) -> str:
    """A step size for labels: ``0.01``, ``0.5``, or ``1/3`` where the decimal would be long.

    Examples
    --------
    >>> eta_text(0.01), eta_text(1 / 3), eta_text(0.004)
    ('0.01', '1/3', '0.004')
    """
    short = f"{eta:g}"
    if len(short) <= 6:
        return short
    exact = exact_number(eta)
    return str(exact) if isinstance(exact, sp.Rational) else short


def exact_number(value: float) -> sp.Number:
    """A float as the value a user most likely wrote: ``1/3``, ``0.01``, ``2`` or itself.

    Examples
    --------
    >>> exact_number(1 / 3), exact_number(0.25), exact_number(2.0)
    (1/3, 0.25, 2)
    >>> sp.latex(exact_number(0.01)), sp.latex(exact_number(1 / 3))
    ('0.01', '\\\\frac{1}{3}')
    """
    if float(value).is_integer():
        return sp.Integer(int(value))
    short = f"{value:g}"
    if len(short) <= 6:
        return sp.Float(short, len(short.lstrip("-0.")) or 1)
    ratio = sp.nsimplify(value, rational=True, tolerance=1e-12)
    if isinstance(ratio, sp.Rational) and ratio.q <= 1000:
        return ratio
    return sp.Float(value, 6)


def derive(spec: Spec) -> tuple[Derivation, tuple[RuleRun, ...]]:
    """Exact ``J``, gradient, Hessian, local inverse and each rule's ``Δx`` (no runs yet)."""
    problem = spec.expression_problem("this report")
    derivation = Derivation(
        problem.jacobian,
        problem.gradient,
        problem.hessian,
        problem.local_inverse()
        if problem.n <= FEW or any(r.name == "pg" for r in spec.rules)
        else None,
    )
    rules = [make_rule(r) for r in spec.rules]
    styles = rule_styles([r.name for r in rules])
    labels = rule_labels(spec.rules, rules)
    runs = []
    for rule_spec, rule, style, label in zip(spec.rules, rules, styles, labels):
        deltas: tuple[sp.Matrix, ...] = ()
        note = ""
        if problem.n > FEW:
            how = (
                "component i is −η times the gradient entry ∂L/∂x_i above"
                if rule.name == "gd"
                else "each step solves the structured system above numerically"
            )
            note = f"not expanded at this size (n = {problem.n}): {how}"
            runs.append(RuleRun(rule_spec, rule, label, style, deltas, note))
            continue
        try:
            found = symbolic_rule(rule).delta(problem)
            deltas = found if isinstance(found, tuple) else (found,)
        except NumericOnlyError as err:
            note = f"numeric only: {err.why}"
            if rule.name == "pg":  # the inverse's own reason names solver internals
                note = (
                    "numeric only: no closed-form inverse of P(x) = y was found (within the "
                    "work limit), so each step solves it numerically, warm-started at x"
                )
        except ScaleinvError as err:
            note = f"no closed-form update: {err}"
        runs.append(RuleRun(rule_spec, rule, label, style, deltas, note))
    return derivation, tuple(runs)


def run_rules(spec: Spec, runs: tuple[RuleRun, ...]) -> tuple[RuleRun, ...]:
    """Every rule run from every start of the spec (a failing run keeps its error message)."""
    x0 = np.array(spec.starts, dtype=float)
    done = []
    for run in runs:
        try:
            with warnings.catch_warnings():  # the report says so in its local-inverse section
                warnings.simplefilter("ignore", NumericInverseWarning)
                traj = minimize(spec.problem, run.rule, x0, spec.steps, spec.tol, record="all")
            done.append(replace(run, trajectory=traj))
        except ScaleinvError as err:
            done.append(replace(run, run_error=str(err)))
    return tuple(done)
