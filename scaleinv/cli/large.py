"""What the CLI prints for a problem with many inputs: summaries instead of every entry.

``scaleinv run`` prints, per run, the final loss, status, norm and extremes of the final
``x`` and the first and last entries of each vector; ``scaleinv derive`` prints the
structured form of each rule and representative entries of ``J``, ``∇L`` and ``H`` (the
first and a middle row), as the report does past :data:`FEW` inputs.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import sympy as sp

from scaleinv.numeric.rules import make_rule
from scaleinv.reports.content import FEW
from scaleinv.reports.derivations import representative_rows
from scaleinv.reports.indexed_text import by_field, entry_name, field_range
from scaleinv.reports.text import format_ends, format_table, indented_formula, vector_stats
from scaleinv.symbolic import Spec
from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["FEW", "large_run_summary", "large_derivation", "STEP_TEXT"]

#: Each rule's step in structured form, as plain text.
STEP_TEXT = {
    "gd": "Δx = −η ∂L/∂x",
    "newton": "Δx = −η H⁻¹ ∂L/∂x",
    "ig": "Δx = J⁻¹ Δy,  Δy = −η (∂²L/∂y²)⁻¹ ∂L/∂y",
    "pg": "x + Δx = P⁻¹(y + Δy; x),  Δy = −η (∂²L/∂y²)⁻¹ ∂L/∂y",
    "hig": "Δx = −η V Σ^(−β) Uᵀ ∂L/∂y,  J = U Σ Vᵀ",
}


def large_run_summary(spec: Spec, rows: list[list], finals: list) -> str:
    """The results of a problem with many inputs: statistics per run, vectors by their ends
    (an indexed problem's field by field, an entry by its field and grid point: ``v[1, 5]``)."""
    p, many = spec.problem, len(spec.starts) > 1
    grid = p if isinstance(p, IndexedProblem) else None
    inputs = "" if grid is None else f" ({', '.join(field_range(grid, f) for f in grid.fields)})"
    lines = [f"{p.n} inputs{inputs}, {p.m} outputs; {len(spec.starts)} start(s):"]
    for i, start in enumerate(spec.starts):
        values = np.array(start, dtype=float)
        if grid is None:
            same = f"; all {values[0]:g}" if np.all(values == values[0]) else ""
            shown = f"{format_ends(values, 4)} [{values.size} entries{same}]"
        else:
            shown = "; ".join(_by_field(grid, values, 4))
        lines.append(f"  start {i + 1}  {shown}")
    name = "x" if grid is None else partial(entry_name, grid)
    table = []
    for row, (_, i, final) in zip(rows, finals):
        first = [row[0], i + 1] if many else [row[0]]
        table.append([*first, row[2], row[4], row[5], *vector_stats(final, name)])
    head = ["rule", "start"] if many else ["rule"]
    head += ["steps", "final loss", "status", "|final x|", "min final x", "max final x"]
    ends = (
        f"first and last 3 of {p.n}"
        if grid is None
        else f"each field's first and last 3 of {grid.points}"
    )
    lines += ["", format_table(head, table), "", f"final x ({ends} entries):"]
    width = max(len(label) for label, _, _ in finals)
    for label, i, final in finals:
        lead = f"  {label.ljust(width)}{f'  start {i + 1}' if many else ''}  "
        parts = [format_ends(final)] if grid is None else _by_field(grid, final)
        lines += [lead + parts[0], *(" " * len(lead) + part for part in parts[1:])]
    return "\n".join(lines)


def _by_field(p: IndexedProblem, values: np.ndarray, digits: int = 6) -> list[str]:
    return [f"{field} = {shown}" for field, shown in by_field(p, values, digits)]


def large_derivation(spec: Spec) -> str:
    """``scaleinv derive`` past :data:`FEW` inputs: counts, structure, representative entries."""
    p = spec.expression_problem("this derivation")
    s = p.sparsity
    xs, ys = p.inputs, p.output_symbols
    lines = [
        f"{spec.title}\n",
        f"{p.n} inputs, {p.m} outputs: only representative entries are printed\n"
        f"(J has {s.jacobian_nnz} nonzero entries, H has {s.hessian_nnz}).\n",
    ]

    def section(title: str, rows: list[tuple[str, sp.Basic]], note: str) -> None:
        lines.append(f"{title} ({note}):")
        for name, e in rows:
            lines.append(indented_formula(name, e))
        lines.append("")

    section("P(x)", [(str(ys[k]), p.outputs[k]) for k in range(3)], f"the first 3 of {p.m}")
    if p.has_default_loss and p.target is not None and all(t.is_number for t in p.target):
        target = format_ends(np.array([float(t) for t in p.target]))
        lines += [f"L(y) = |y - y*|**2/2 with {p.m} targets", f"  y* = {target}", ""]
    elif len(sp.sstr(p.loss)) <= 200:
        section("L(y)", [("L", p.loss)], "in full")
    else:
        lines += [f"L(y): {sp.count_ops(p.loss)} operations, not printed", ""]
    jac = representative_rows(p.sparse.jacobian, big=True)
    section(
        "Jacobian dP/dx",
        [(f"J[{ys[i]}, {xs[j]}]", e) for (i, j), e in jac],
        f"{len(jac)} of {s.jacobian_nnz} nonzero entries: the first and a middle row",
    )
    grad = sorted(p.sparse.gradient.items())[:3]
    section("gradient dL/dx", [(f"dL/d{xs[j]}", e) for j, e in grad], f"the first 3 of {p.n}")
    lines.append("Hessian by the chain rule: H = Jᵀ (∂²L/∂y²) J + Σ_k (∂L/∂y_k) ∇²P_k")
    hess = representative_rows(
        {k: e for k, e in p.sparse.hessian.items() if k[0] <= k[1]}, big=True
    )
    section(
        "Hessian d2L/dx2",
        [(f"H[{xs[i]}, {xs[j]}]", e) for (i, j), e in hess],
        f"{len(hess)} entries on and above the diagonal: the first and a middle row",
    )
    for rule_spec in spec.rules:
        rule = make_rule(rule_spec)
        shown = STEP_TEXT.get(rule.name, "numeric only")
        lines.append(f"{rule.label} update: {shown}  (not expanded at n = {p.n})")
    return "\n".join(lines)
