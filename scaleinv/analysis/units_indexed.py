r"""Units of an indexed problem, per field, from its point formulas and stencils.

A spec's ``[units]`` names the *fields* of an :class:`~scaleinv.symbolic.indexed.IndexedProblem`
(``u = "temperature"``: every ``u[i]`` has it), its scalar and per-point params, the output
fields (``P``, or ``P0``, ``P1``, ... for several, or ``outputs = [...]``), the loss (``L``)
and, optionally, the target (``target``: it must have its output's dimension). Nothing is
expanded over the grid:

* each point formula ``P_a(i)`` is walked once, every access ``u[i+d]`` taking its field's
  dimension (the index is dimensionless; a dimensionless target — numbers, or a profile such
  as ``sin(2*pi*i/n)`` — takes its output's dimension, a dimensioned one must have it);
* every diagonal of the Jacobian stencil must have ``[P_a]/[u_b]`` and every diagonal of the
  Hessian stencil ``[L]/([u_b][u_c])``: the derivatives themselves are walked, the twin of
  the structural argument of :mod:`~scaleinv.analysis.units_structure`;
* the verdict per rule follows from that argument, per field: GD needs ``[η] = [u_b]²/[L]``
  (no single ``η`` when fields differ), Newton, IG and PG a dimensionless one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sympy as sp

from scaleinv.analysis.units import (
    Dimensions,
    UnitsReport,
    _deps,
    _dimension,
    _mul,
    _walk,
    dimension_of,
    format_dimension,
    parse_dimension,
    same_dimension,
)
from scaleinv.analysis.units_structure import units_by_structure
from scaleinv.errors import DimensionError

if TYPE_CHECKING:
    from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["indexed_dimensions", "field_symbols", "check_indexed_units"]


def field_symbols(problem: IndexedProblem) -> tuple[sp.Symbol, ...]:
    """One symbol per input field (``u``, ``v``): what a per-field report calls its inputs."""
    return tuple(sp.Symbol(f, real=True) for f in problem.fields)


class _Fields:
    """The problem as the structural argument sees it: one input per field."""

    def __init__(self, problem: IndexedProblem) -> None:
        self.inputs = field_symbols(problem)


def indexed_dimensions(problem: IndexedProblem, dims: Mapping[str, Any]) -> Dimensions:
    """Check ``dims`` (see the module) against the point formulas; the result's ``symbols``
    map each field's symbol (:func:`field_symbols`) and each param to its dimension.

    Raises
    ------
    DimensionError
        For a field without a dimension, an unknown key, or a formula, target or stencil
        entry that does not fit.
    """
    outputs = problem.output_names
    special = {"outputs", "L", "loss", "target"}
    names = [*problem.fields, *map(str, problem.params), *problem.point_params]
    known = [*names, *outputs, *(k for k in special if k not in names)]
    unknown = sorted(set(dims) - set(known))
    if unknown:
        raise DimensionError(", ".join(unknown), f"unknown names in the units; known: {known}")
    missing = [f for f in problem.fields if f not in dims]
    if missing:
        raise DimensionError(", ".join(missing), "no dimension declared for field(s)")
    if "outputs" in dims and set(outputs) & set(dims):
        raise DimensionError("outputs", "declared twice in the units")
    if "L" in dims and "loss" in dims:
        raise DimensionError("L, loss", "declared twice in the units")
    by_name = {n: parse_dimension(dims.get(n, 1)) for n in names}
    table: dict[Any, Any] = {s: by_name[str(s)] for s in problem.params}
    table.update({s: 1 for s in problem.index})
    for symbol, access in problem.accesses.items():
        table[symbol] = by_name[access.field]
    declared = dims.get("outputs", [dims.get(o) for o in outputs])
    if isinstance(declared, str):
        declared = [declared]
    if not isinstance(declared, (list, tuple)) or len(declared) != len(outputs):
        raise DimensionError("outputs", f"needs a list of {len(outputs)} dimensions")
    found = []
    for name, formula, want in zip(outputs, problem.outputs, declared):
        have = _fits(formula, table, want, f"{name}[{', '.join(map(str, problem.index))}]")
        found.append(have)
    table.update(zip(problem.target_symbols, found))
    if "target" in dims:  # y* has P's dimension; a declaration must say so
        given = dims["target"]
        given = [given] * len(outputs) if isinstance(given, str) else given
        if not isinstance(given, (list, tuple)) or len(given) != len(outputs):
            raise DimensionError("target", f"needs one dimension or a list of {len(outputs)}")
        for name, want, have in zip(outputs, given, found):
            if not same_dimension(want, have):
                raise DimensionError(
                    "target", f"y* of {name} is declared {want}, but {name} has dimension "
                    f"{format_dimension(have)}"
                )  # fmt: skip
    _check_targets(problem, table, found, by_name)
    loss = _fits(sp.Add(*(t**2 for t in problem.target_symbols)), table,
                 dims.get("L", dims.get("loss")), "the loss ½|P − y*|²")  # fmt: skip
    symbols = dict(zip(field_symbols(problem), (by_name[f] for f in problem.fields)))
    symbols.update({s: by_name[str(s)] for s in problem.params})
    symbols.update({sp.Symbol(n, real=True): by_name[n] for n in problem.point_params})
    result = Dimensions(symbols, tuple(found), loss)
    _check_stencils(problem, result)
    return result


def _fits(expr: sp.Expr, table: Mapping[Any, Any], want: Any, what: str) -> Any:
    have = dimension_of(expr, table)
    if want is not None and not same_dimension(have, want):
        found = f"{what} has dimension {format_dimension(have)}"
        raise DimensionError(str(expr), f"{found}, declared {format_dimension(want)}")
    return have


def _check_targets(
    problem: IndexedProblem, table: Mapping[Any, Any], outputs: list[Any], fields: Mapping[str, Any]
) -> None:
    """A symbolic target must have its output's dimension (a number takes it)."""
    pairs = []
    if problem.target is not None:
        pairs = [(t, d, f"target of {o}") for t, d, o in
                 zip(problem.target, outputs, problem.output_names)]  # fmt: skip
    elif problem.target_from is not None:
        pairs = [(t, fields[f], f"target_from of {f}") for t, f in
                 zip(problem.target_from, problem.fields)]  # fmt: skip
    for formula, want, what in pairs:
        have = dimension_of(sp.sympify(formula), table)
        if not same_dimension(have, 1):  # a dimensionless profile is numbers: it takes [P]
            _fits(sp.sympify(formula), table, want, what)


def _check_stencils(problem: IndexedProblem, dims: Dimensions) -> None:
    """Walk every diagonal of J and H: ``[P_a]/[u_b]`` and ``[L]/([u_b][u_c])``."""
    fields = [_deps(dims.symbols[s]) for s in field_symbols(problem)]
    outputs = [_deps(d) for d in dims.outputs]
    loss = _deps(dims.loss)
    table = _stencil_table(problem, dims)
    out_names = problem.output_names
    for diag in problem.jacobian_stencil:
        want = _mul(outputs[diag.row_field], fields[diag.col_field], -1)
        name = f"∂{out_names[diag.row_field]}/∂{problem.fields[diag.col_field]}{list(diag.offset)}"
        _same(diag.formula, table, want, f"the Jacobian diagonal {name}")
    for diag in problem.hessian_stencil:
        want = _mul(_mul(loss, fields[diag.row_field], -1), fields[diag.col_field], -1)
        name = f"{problem.fields[diag.row_field]},{problem.fields[diag.col_field]}"
        _same(diag.formula, table, want, f"the Hessian diagonal H[{name}]{list(diag.offset)}")


def _stencil_table(problem: IndexedProblem, dims: Dimensions) -> dict[Any, Any]:
    """Dimensions by name prefix: a stencil reads accesses and targets shifted from the point
    (``u[i+2]``, ``y0*[i-1]``), which keep their field's (output's) dimension."""
    table: dict[Any, Any] = {s: _deps(d) for s, d in dims.symbols.items()}
    table.update({s: {} for s in problem.index})
    table.update({str(s): _deps(d) for s, d in dims.symbols.items()})
    table.update({str(t): _deps(d) for t, d in zip(problem.target_symbols, dims.outputs)})
    return table


def _same(expr: sp.Expr, table: dict[Any, Any], want: dict, what: str) -> None:
    lookup = dict(table)
    for symbol in expr.free_symbols:
        if symbol not in lookup and str(symbol) not in lookup:
            head = str(symbol).split("[", 1)[0]
            if head in lookup:
                lookup[symbol] = lookup[head]
    have = _walk(expr, lookup)
    if have != want:
        raise DimensionError(
            str(expr),
            f"{what} has dimension {format_dimension(_dimension(have))}, expected "
            f"{format_dimension(_dimension(want))}",
        )


def check_indexed_units(
    problem: IndexedProblem, rule: str, dims: Dimensions | Mapping[str, Any]
) -> UnitsReport:
    """Which dimension ``rule``'s step size needs, per field (the report's ``inputs`` are the
    fields). ``dims`` is :func:`indexed_dimensions`' result or the ``[units]`` it checks.

    Raises
    ------
    ProblemError
        For a rule whose units do not follow from its structure (HIG, BFGS).
    """
    table = dims if isinstance(dims, Dimensions) else indexed_dimensions(problem, dims)
    report = units_by_structure(_Fields(problem), rule, table)  # type: ignore[arg-type]
    grid = " × ".join(map(str, problem.shape))
    lines = (
        f"per field on the {grid} grid: each point formula, J stencil diagonal and H stencil "
        "diagonal walked once",
        *report.derivation,
    )
    return UnitsReport(**{**report.__dict__, "derivation": lines})
