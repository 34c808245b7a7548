"""Units on figure axes, as the spec's ``[units]`` declares them.

A declared dimension is shown in the units of its own names (``voltage/current`` as V A⁻¹,
``force/length`` as N m⁻¹); an output without a declaration takes the declared form of an
entry of the same dimension (``V_star = "voltage"`` for ``y0 = Vs*R2/(R1 + R2)``); only what
matches no declaration is shown in SI base units (kg m² s⁻³ A⁻¹).
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from scaleinv.analysis.units import (
    DIMENSION_NAMES,
    parse_dimension,
    problem_dimensions,
    same_dimension,
)
from scaleinv.errors import DimensionError
from scaleinv.reports.landscapes import math_label
from scaleinv.symbolic import Problem, parse_expr

__all__ = ["si_unit", "declared_unit", "axis_names"]

_SI = {
    "mass": r"\mathrm{kg}", "length": r"\mathrm{m}", "time": r"\mathrm{s}",
    "current": r"\mathrm{A}", "temperature": r"\mathrm{K}", "amount_of_substance": r"\mathrm{mol}",
    "luminous_intensity": r"\mathrm{cd}",
}  # fmt: skip
#: The SI units with a name of their own; other dimension names (velocity, area, ...) are
#: written in base units.
_NAMED = {
    "force": r"\mathrm{N}", "energy": r"\mathrm{J}", "power": r"\mathrm{W}",
    "pressure": r"\mathrm{Pa}", "frequency": r"\mathrm{Hz}", "charge": r"\mathrm{C}",
    "voltage": r"\mathrm{V}", "capacitance": r"\mathrm{F}", "conductance": r"\mathrm{S}",
    "impedance": r"\Omega", "inductance": r"\mathrm{H}", "magnetic_density": r"\mathrm{T}",
    "magnetic_flux": r"\mathrm{Wb}", "angle": r"\mathrm{rad}",
}  # fmt: skip


def _base_powers(dimension: Any) -> list[tuple[str, sp.Rational]]:
    """``(unit, exponent)`` of a dimension in SI base units, in the order of :data:`_SI`."""
    powers = parse_dimension(dimension).name.as_powers_dict()
    order = list(_SI)
    return [
        (_SI.get(str(base), rf"\mathrm{{{base}}}"), sp.Rational(exp))
        for base, exp in sorted(
            powers.items(), key=lambda kv: order.index(str(kv[0])) if str(kv[0]) in order else 9
        )
        if base != 1 and exp != 0
    ]


def _joined(powers: list[tuple[str, sp.Rational]]) -> str:
    """Units with their exponents as mathtext, positive powers first: ``V\\,A^{-1}``."""
    ordered = [p for p in powers if p[1] > 0] + [p for p in powers if p[1] < 0]
    return r"\,".join(u if e == 1 else f"{u}^{{{sp.latex(e)}}}" for u, e in ordered)


def si_unit(dimension: Any) -> str:
    r"""The SI unit of a dimension in base units, as mathtext (no ``$``); ``""`` when
    dimensionless.

    Examples
    --------
    >>> si_unit("velocity"), si_unit("energy"), si_unit("1")
    ('\\mathrm{m}\\,\\mathrm{s}^{-1}', '\\mathrm{kg}\\,\\mathrm{m}^{2}\\,\\mathrm{s}^{-2}', '')
    """
    return _joined(_base_powers(dimension))


def declared_unit(text: str) -> str:
    r"""The unit of a declared dimension string in the units of its own names, as mathtext.

    Names with an SI unit of their own keep it, others are written in base units; the names
    stay in the order written, positive powers first.

    Examples
    --------
    >>> declared_unit("voltage/current"), declared_unit("current*time/voltage")
    ('\\mathrm{V}\\,\\mathrm{A}^{-1}', '\\mathrm{A}\\,\\mathrm{s}\\,\\mathrm{V}^{-1}')
    >>> declared_unit("velocity/time"), declared_unit("dimensionless")
    ('\\mathrm{m}\\,\\mathrm{s}^{-2}', '')
    """
    parse_dimension(text)  # a clear error for what is not a dimension
    expr = parse_expr(text.strip() or "1", {n: sp.Symbol(n) for n in DIMENSION_NAMES})
    factors = sorted(sp.Mul.make_args(expr), key=lambda f: text.find(str(f.as_base_exp()[0])))
    powers: dict[str, sp.Rational] = {}
    for factor in factors:
        base, exp = factor.as_base_exp()
        if not isinstance(base, sp.Symbol):
            continue  # the number 1
        if base.name in _NAMED:
            units = [(_NAMED[base.name], sp.Integer(1))]
        else:
            units = _base_powers(base.name)
        for unit, power in units:
            powers[unit] = powers.get(unit, sp.Integer(0)) + power * sp.Rational(exp)
    return _joined([(u, e) for u, e in powers.items() if e != 0])


def _declared(problem: Problem, units: dict[str, Any]) -> list[str | None]:
    """The declared dimension string of each input and output, None where none is declared."""
    inputs = [units.get(str(x)) for x in problem.inputs]
    outputs = units.get("outputs", [units.get(str(y)) for y in problem.output_symbols])
    if isinstance(outputs, str):
        outputs = [outputs] * problem.m
    target = units.get("target")
    if target is not None and problem.has_default_loss:
        shared = [target] * problem.m if isinstance(target, str) else list(target)
        outputs = [o if o is not None else t for o, t in zip(outputs, shared)]
    return [d if isinstance(d, str) else None for d in (*inputs, *outputs)]


def axis_names(problem: Problem, units: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Axis labels of the inputs and outputs: their symbols, with units from ``[units]``."""
    xs = [math_label(s) for s in problem.inputs]
    ys = [math_label(s) for s in problem.output_symbols]
    if not units:
        return xs, ys
    found = problem_dimensions(problem, units)
    dims = [found.symbols.get(s) for s in problem.inputs] + list(found.outputs)
    written = [v for k, v in units.items() if isinstance(v, str) and k not in ("L", "loss")]
    labels = []
    for name, dim, declared in zip(xs + ys, dims, _declared(problem, units)):
        unit = declared_unit(declared) if declared is not None else ""
        if declared is None and dim is not None and si_unit(dim):
            alike = next((w for w in written if _same(w, dim)), None)
            unit = declared_unit(alike) if alike is not None else si_unit(dim)
        labels.append(f"{name} [${unit}$]" if unit else name)
    return labels[: problem.n], labels[problem.n :]


def _same(text: str, dim: Any) -> bool:
    try:
        return same_dimension(text, dim)
    except DimensionError:
        return False
