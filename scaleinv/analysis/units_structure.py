r"""Units of each rule's update from the structure of the rule, at any problem size.

:func:`~scaleinv.analysis.units.check_units` walks every component of the expanded ``Δx``;
for a problem with hundreds of inputs those formulas are not expanded at all. The dimensions
follow from the rule's structure alone, once :func:`~scaleinv.analysis.units.problem_dimensions`
has checked that ``P`` and ``L`` are dimensionally consistent: derivatives of a consistent
``L(P(x))`` have ``[∂L/∂x_i] = [L]/[x_i]`` and ``[H_ij] = [L]/([x_i][x_j])``, and
``[J_kj] = [y_k]/[x_j]``. Hence

.. math:: [(H^{-1} g)_i] = \sum_j \frac{[x_i][x_j]}{[L]} \frac{[L]}{[x_j]} = [x_i],
   \qquad [(J^{-1} \Delta y)_i] = [x_i] \text{ when } [\Delta y_k] = [y_k],

so Newton, IG and PG take a dimensionless ``η`` and GD's component ``i`` needs
``[η] = [x_i]²/[L]``. HIG's ``Σ^{-β}`` mixes the dimensions of ``J``'s entries and BFGS's
update depends on its history: neither is decided here.
"""

from __future__ import annotations

from typing import Any

from scaleinv.analysis.units import (
    DIMENSIONLESS,
    Dimensions,
    UnitsReport,
    UnitsVerdict,
    _deps,
    _dimension,
    _key,
    _mul,
    format_dimension,
)
from scaleinv.errors import ProblemError
from scaleinv.symbolic import Problem

__all__ = ["units_by_structure", "STRUCTURAL_RULES"]

#: The rules whose units follow from their structure, with the argument for each.
STRUCTURAL_RULES = {
    "gd": "Δx_i = −η ∂L/∂x_i and [∂L/∂x_i] = [L]/[x_i], so η needs [x_i]²/[L]",
    "newton": "Δx = −η H⁻¹ ∂L/∂x with [H_ij] = [L]/([x_i][x_j]), so [(H⁻¹ ∂L/∂x)_i] = [x_i]",
    "ig": "Δx = J⁻¹ Δy with [J_kj] = [y_k]/[x_j] and Δy = −η L_yy⁻¹ L_y of dimension [y]",
    "pg": "x + Δx = P⁻¹(y + Δy; x) with Δy = −η L_yy⁻¹ L_y of dimension [y]: η stays inside P⁻¹",
}


def units_by_structure(problem: Problem, rule: str, dims: Dimensions) -> UnitsReport:
    """Which dimension ``rule``'s step size needs, from its structure (see the module).

    Raises
    ------
    ProblemError
        For a rule whose units do not follow from its structure (HIG, BFGS).

    Examples
    --------
    >>> from scaleinv.analysis.units import problem_dimensions
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "g*x1**2/2"], params={"g": 9.81})
    >>> d = problem_dimensions(p, {"x0": "length", "x1": "time", "g": "length/time**2"})
    >>> r = units_by_structure(p, "gd", d)
    >>> r.verdict, [format_dimension(e) for e in r.required_eta]
    (<UnitsVerdict.INCONSISTENT: 'inconsistent'>, ['1', 'time**2/length**2'])
    >>> units_by_structure(p, "newton", d).eta_dimension
    Dimension(1)
    """
    if rule not in STRUCTURAL_RULES:
        raise ProblemError(f"the units of {rule}'s update do not follow from its structure")
    loss = _deps(dims.loss)
    inputs = [_deps(dims.symbols[x]) for x in problem.inputs]
    lines = [
        "P and L are dimensionally consistent (checked term by term)",
        STRUCTURAL_RULES[rule],
    ]
    if rule == "gd":
        rates = [_mul(loss, x, -1) for x in inputs]  # [∂L/∂x_i]
        needs = [_mul(x, rate, -1) for x, rate in zip(inputs, rates)]
    else:
        rates, needs = list(inputs), [{} for _ in inputs]
    kinds = {_key(need) for need in needs}
    eta: Any = _dimension(dict(kinds.pop())) if len(kinds) == 1 else None
    if eta is None:
        lines.append("inconsistent: no single η gives every Δx_i the dimension of x_i")
    else:
        lines.append(f"consistent: one η of dimension {format_dimension(eta)} fits every Δx_i")
    return UnitsReport(
        rule=rule,
        inputs=tuple(str(x) for x in problem.inputs),
        input_dimensions=tuple(dims.symbols[x] for x in problem.inputs),
        delta_dimensions=tuple(_dimension(r) for r in rates),
        required_eta=tuple(_dimension(n) if n else DIMENSIONLESS for n in needs),
        eta_dimension=eta,
        verdict=UnitsVerdict.INCONSISTENT if eta is None else UnitsVerdict.CONSISTENT,
        derivation=tuple(lines),
    )
