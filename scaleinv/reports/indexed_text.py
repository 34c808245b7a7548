"""What ``scaleinv derive`` prints for an indexed problem: its formula and stencils, once.

The point formula "for i = 0 … n − 1", the diagonals of J and of H (each with its one
formula, at a generic row point), what the boundary rule does to the rows near the ends, the
gradient as a stencil sum and each rule's step in structured form — nothing grows with ``n``.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from scaleinv.numeric.rules import make_rule
from scaleinv.reports.text import WIDTH, format_ends, indented_formula

if TYPE_CHECKING:
    from scaleinv.symbolic import Spec
    from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["indexed_derivation", "boundary_text", "grid_text", "STEP_TEXT", "shown_targets"]
__all__ += ["gradient_stencil", "loss_text", "entry_name", "field_range", "by_field"]

#: Each rule's step on an indexed problem, and how it is solved.
STEP_TEXT = {
    "gd": "Δx = −η ∂L/∂x  (the gradient stencil, no solve)",
    "newton": "H Δx = −η ∂L/∂x, solved with H's sparse pattern (sparse LU)",
    "ig": "J Δx = Δy,  Δy = η (y* − y), solved with J's sparse pattern",
    "pg": "x + Δx = P⁻¹(y + Δy; x), the local inverse per point or numeric with banded J",
    "hig": "Δx = −η V Σ^(−β) Uᵀ ∂L/∂y,  J = U Σ Vᵀ",
}


def grid_text(p: IndexedProblem) -> str:
    """``field u on a 4096-point grid (n = 4096), periodic boundary``."""
    names = " × ".join(name or str(size) for name, size in zip(p.sizes, p.shape))
    sizes = " × ".join(map(str, p.shape))
    grid = f"{names} = {sizes}" if names != sizes else sizes
    fields = ", ".join(p.fields)
    noun = "field" if len(p.fields) == 1 else "fields"
    return f"{noun} {fields} on a grid of {grid} points, {p.boundary.kind} boundary"


def entry_name(p: IndexedProblem, k: int) -> str:
    """The input at flat position ``k`` by its field and grid point: ``v[1, 5]``.

    Examples
    --------
    >>> from scaleinv.symbolic.indexed import IndexedProblem
    >>> p = IndexedProblem.from_strings(["u[0:4]", "v[0:4]"], ["u[i] - v[i]", "u[i]*v[i]"])
    >>> entry_name(p, 6)
    'v[2]'
    """
    field, rest = divmod(int(k), p.points)
    point = np.unravel_index(rest, p.shape)
    return f"{p.fields[field]}[{', '.join(str(int(i)) for i in point)}]"


def field_range(p: IndexedProblem, field: str) -> str:
    """A whole input field by its index range: ``u[0:64, 0:64]``."""
    return f"{field}[{', '.join(f'0:{size}' for size in p.shape)}]"


def by_field(
    p: IndexedProblem, values: np.ndarray, digits: int = 6, keep: int = 3
) -> list[tuple[str, str]]:
    """A flat vector of ``p``'s inputs field by field: ``("u[0:64, 0:64]", "(1, …, 1.2)")``,
    ``("v[0:64, 0:64]", "all 3")`` (each field's first and last ``keep`` entries, or its one
    value)."""
    parts = []
    for field, chunk in zip(p.fields, np.reshape(values, (len(p.fields), p.points))):
        same = bool(np.all(chunk == chunk[0]))
        shown = f"all {float(chunk[0]):.{digits}g}" if same else format_ends(chunk, digits, keep)
        parts.append((field_range(p, field), shown))
    return parts


def shown_targets(p: IndexedProblem, formula: sp.Expr) -> sp.Expr:
    """``formula`` with the target symbols named as the reader sees them (``y*[i]``)."""
    index = ", ".join(map(str, p.index))
    names = {}
    for a, t in enumerate(p.target_symbols):
        head = "y*" if p.fields_out == 1 else f"y{a}*"
        names[t] = sp.Symbol(f"{head}[{index}]", real=True)
    moved = {s: sp.Symbol(str(s).replace(f"{t}[", "y*[" if p.fields_out == 1 else f"{t}["),
                          real=True)
             for s in formula.free_symbols for t in p.target_symbols
             if str(s).startswith(f"{t}[")}  # fmt: skip
    return formula.xreplace({**names, **moved})


def gradient_stencil(p: IndexedProblem) -> list[tuple[str, sp.Expr]]:
    """``∂L/∂u[i]`` per input field at an interior row: ``Σ_d (J_d r)(i − d)``."""
    sums = [sp.Integer(0) for _ in p.fields]
    for diag in p.jacobian_stencil:
        term = diag.formula * p.residuals[diag.row_field]
        sums[diag.col_field] += p.shifted(term, tuple(-d for d in diag.offset))
    index = ", ".join(map(str, p.index))
    return [(f"∂L/∂{f}[{index}]", shown_targets(p, g)) for f, g in zip(p.fields, sums)]


def boundary_text(p: IndexedProblem) -> str:
    """What the boundary rule does to the rows within the stencil's reach of an end."""
    reach = ", ".join(
        f"{s} < {w} or {s} > {name or size} − {w + 1}"
        for s, w, name, size in zip(p.index, p.width, p.sizes, p.shape)
        if w
    )
    rows = f"Rows within the stencil's reach of an end ({reach})" if reach else "No row"
    if p.boundary.kind == "periodic":
        return f"{rows} read across the ends: the same formulas, columns taken modulo the size."
    if p.boundary.kind == "dirichlet":
        values = ", ".join(f"{f} = {v:g}" for f, v in p.boundary.values.items()) or "0"
        return (
            f"{rows} read the fixed ghost values ({values}) outside the grid: those entries "
            "drop out of J and H; P's formula reads the ghost value in their place."
        )
    return (
        f"{rows} read the mirror image outside the grid (u[−k] = u[k], u[n−1+k] = u[n−1−k]): "
        "an entry whose column falls outside is added onto the mirrored column."
    )


def loss_text(p: IndexedProblem) -> str:
    """``L = ½ Σ_i (P[i] − y*[i])², y*[i] = …`` (several output fields: summed over them)."""
    index = ", ".join(map(str, p.index))
    if p.fields_out == 1:
        loss = f"L = ½ Σ_{{{index}}} (P[{index}] − y*[{index}])²"
    else:
        loss = f"L = ½ Σ_a Σ_{{{index}}} (P_a[{index}] − y*_a[{index}])²"
    if p.target_from is not None:
        states = ", ".join(f"{f}*[{index}] = {t}" for f, t in zip(p.fields, p.target_from))
        return f"{loss}, y* = P(x*) with {states}"
    targets = p.target or (0,) * p.fields_out
    names = p.output_names
    shown = ", ".join(
        f"y*[{index}] = {t}" if p.fields_out == 1 else f"y*_{a}[{index}] = {t}"
        for a, t in zip(range(len(names)), targets)
    )
    return f"{loss}, {shown}"


def indexed_derivation(spec: Spec) -> str:
    """``scaleinv derive`` for an indexed problem (see the module)."""
    p: IndexedProblem = spec.problem  # type: ignore[assignment]
    rows = p.representative_rows()
    lines = [
        f"{spec.title}\n",
        f"Indexed problem: {grid_text(p)}; {p.n} inputs, {p.m} outputs.",
        f"Written once over the index, for {p.range_text}:",
    ]
    lines += [indented_formula(row, formula) for row, _, formula in rows["P"]]
    lines += [loss_text(p), ""]
    lines.append(f"Jacobian stencil ({len(rows['J'])} diagonals; entry ∂row/∂column at row i):")
    lines += [indented_formula(f"∂{row}/∂{col}", f) for row, col, f in rows["J"]]
    lines += ["", f"Hessian stencil of L ({len(rows['H'])} diagonals, at an interior row):"]
    lines += [
        indented_formula(f"H[{row}, {col}]", shown_targets(p, f)) for row, col, f in rows["H"]
    ]
    lines += ["", "Gradient ∂L/∂x = Jᵀ (P − y*) (at an interior row):"]
    lines += [indented_formula(name, g) for name, g in gradient_stencil(p)]
    lines += ["", *textwrap.wrap("Boundary: " + boundary_text(p), WIDTH), ""]
    for rule_spec in spec.rules:
        rule = make_rule(rule_spec)
        lines.append(f"{rule.label} update: {STEP_TEXT.get(rule.name, 'numeric only')}")
    lines.append(f"(J and H are never expanded: {p.n} × {p.n} entries at n = {p.n}.)")
    return "\n".join(lines)
