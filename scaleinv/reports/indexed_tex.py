"""The LaTeX of an indexed problem's report: its formula and stencils once, verdicts, results.

Sections: the problem (the point formula "for i = 0 … n − 1", grid, boundary, params,
dimensions), the stencils (J's and H's diagonals with one formula each at an interior row,
the gradient's stencil, the boundary rows in words, each rule's step and how it is solved),
the verdicts (units per field, scale invariance per field by the theorem route, each with its
argument), the results (norms and extremes of the final states; never whole vectors) and the
figures. Accesses print as ``u_{i+1}``; the target as ``y^*_i``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from scaleinv.analysis.units import format_dimension
from scaleinv.numeric import Status
from scaleinv.reports.document import FigureRef
from scaleinv.reports.indexed_text import (
    STEP_TEXT,
    boundary_text,
    gradient_stencil,
    grid_text,
    shown_targets,
)
from scaleinv.reports.latex import LINE_BUDGET, PREAMBLE, Latex, escape, number, split_sum, table

if TYPE_CHECKING:
    from scaleinv.reports.content import RuleRun
    from scaleinv.symbolic import Spec
    from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["indexed_document", "index_tex"]

#: Most display lines of one printed gradient formula.
_LONGEST = 4
_ACCESS = re.compile(r"^(?P<head>[A-Za-z_][A-Za-z_0-9]*?)(?P<star>\*?)\[(?P<index>[^\]]*)\]$")


def _subscript(text: str) -> str:
    return ",".join(part.strip() for part in text.split(","))


def index_tex(expr: sp.Basic) -> str:
    """LaTeX with accesses ``u[i+1]`` as ``u_{i+1}`` and targets ``y*[i]`` as ``y^{*}_{i}``."""
    names = {}
    for symbol in getattr(expr, "free_symbols", ()):
        found = _ACCESS.match(symbol.name)
        if found is None:
            if symbol.name.endswith("*"):  # a target symbol at the point: y0*
                names[symbol] = "y^{*}"
            continue
        head, index = found["head"], _subscript(found["index"])
        if found["star"]:  # a target y0*[i] (one per output field): y^*_{0,i} or y^*_{i}
            field = head[1:] if re.fullmatch(r"y\d+", head) else ""
            names[symbol] = f"y^{{*}}_{{{field + ',' if field else ''}{index}}}"
            continue
        base = sp.latex(sp.Symbol(head))
        if base.endswith("}") and "_{" in base:  # P0 is P_{0}: one subscript P_{0,i}
            names[symbol] = f"{base[:-1]},{index}}}"
        else:
            names[symbol] = f"{base}_{{{index}}}"
    return sp.latex(expr, symbol_names=names)


def _display(lhs: str, expr: sp.Basic) -> str:
    """``lhs = expr``; a long sum broken after its terms (each line shrunk only if needed)."""
    lines = split_sum(sp.sympify(expr), LINE_BUDGET, index_tex)
    if len(lines) == 1:
        return f"\\fitmath{{{lhs} = {lines[0]}}}\n"
    rows = [f"{lhs} = {lines[0]}", *(f"\\qquad {line}" for line in lines[1:])]
    return "".join(f"\\fitmath{{{row}}}\n" for row in rows)


def _loss_tex(p: IndexedProblem) -> str:
    """The loss summed over the grid (and the output fields) and its target."""
    index = ",".join(map(str, p.index))
    at = f"_{{{index}}}"
    if p.fields_out == 1:
        loss = f"L = \\tfrac12 \\sum{at} (P{at} - y^*{at})^2"
    else:
        loss = f"L = \\tfrac12 \\sum_a \\sum{at} (P_{{a,{index}}} - y^*_{{a,{index}}})^2"
    if p.target_from is not None:
        states = ", ".join(
            f"${sp.latex(sp.Symbol(f))}^*{at} = {index_tex(sp.sympify(t))}$"
            for f, t in zip(p.fields, p.target_from)
        )
        return f"The loss sums over the grid, ${loss}$, with $y^* = P(x^*)$, {states}."
    targets = p.target or (sp.Integer(0),) * p.fields_out
    shown = ", ".join(
        f"$y^*{at if p.fields_out == 1 else f'_{{{a},{index}}}'} = {index_tex(sp.sympify(t))}$"
        for a, t in enumerate(targets)
    )
    return f"The loss sums over the grid, ${loss}$, with {shown}."


def _problem(spec: Spec, p: IndexedProblem, dims: Any) -> str:
    index = ",".join(map(str, p.index))
    out = ["\\section{Problem}\n"]
    if spec.description:
        out.append(escape(spec.description) + "\n\n")
    out.append(
        f"An indexed problem: {escape(grid_text(p))}; $n = {p.n}$ inputs, $m = {p.m}$ "
        f"outputs, written once over the index. For {escape(p.range_text)}:\n"
    )
    for name, formula in zip(p.output_names, p.outputs):
        out.append(_display(_name(f"{name}[{index}]"), formula))
    out.append(_loss_tex(p) + " Boundary: " + escape(boundary_text(p)) + "\n\n")
    if p.params:
        ordered = sorted(p.params.items(), key=str)
        rows = [[f"${sp.latex(s)}$", f"${number(v, 6)}$"] for s, v in ordered]
        out.append("Parameters:\n" + table(["param", "value"], rows, "l l"))
    if p.point_params:
        out.append("Per-point parameters: " + escape(", ".join(p.point_params)) + ".\n\n")
    if dims is not None:
        rows = [[f"${sp.latex(s)}$", escape(format_dimension(d))] for s, d in dims.symbols.items()]
        rows += [[f"${escape(o)}$", escape(format_dimension(d))]
                 for o, d in zip(p.output_names, dims.outputs)]  # fmt: skip
        rows.append(["$L$", escape(format_dimension(dims.loss))])
        out.append("Dimensions per field (from \\texttt{[units]}; outputs and loss derived):\n")
        out.append(table(["symbol", "dimension"], rows, "l l"))
    start = np.asarray(spec.starts[0])
    same = f"every entry {number(float(start[0]))}" if np.all(start == start[0]) else (
        f"$|x_0| = {number(float(np.linalg.norm(start)))}$")  # fmt: skip
    out.append(f"Runs start at {len(spec.starts)} state(s) ({same}) and take {spec.steps} steps.\n")
    return "".join(out)


def _stencils(p: IndexedProblem, runs: Sequence[RuleRun], figure: str) -> str:
    rows = p.representative_rows()
    out = [
        "\\section{Derivatives as stencils}\n",
        f"$J$ and $H$ are {p.n}$\\times${p.n} but each row holds a few entries, one formula per "
        f"diagonal, derived once at a row {escape(p.range_text)}; they are never expanded. ",
    ]
    if figure:
        out.append(f"Figure~\\ref{{{figure}}} shows their sparsity. ")
    out.append(f"\n\n\\textbf{{Jacobian}} ({len(rows['J'])} diagonals):\n")
    for row, col, formula in rows["J"]:
        out.append(_display(f"\\frac{{\\partial {_name(row)}}}{{\\partial {_name(col)}}}", formula))
    out.append(f"\\textbf{{Hessian of $L$}} ({len(rows['H'])} diagonals, at an interior row):\n")
    for row, col, formula in rows["H"]:
        out.append(_display(f"H_{{{_name(row)},\\,{_name(col)}}}", shown_targets(p, formula)))
    out.append(
        "\\textbf{Gradient} $\\partial L/\\partial x = J^\\top (P - y^*)$ at an interior row:\n"
    )
    for name, formula in gradient_stencil(p):
        field = name.split("/∂", 1)[1]
        terms = len(sp.Add.make_args(formula))
        if len(split_sum(formula, LINE_BUDGET, index_tex)) > _LONGEST:
            out.append(f"$\\partial L/\\partial {_name(field)}$: a sum of {terms} terms "
                       "(each a diagonal of $J$ times a residual read at the row it belongs to); "
                       "too long to print usefully.\n\n")  # fmt: skip
            continue
        out.append(_display(f"\\frac{{\\partial L}}{{\\partial {_name(field)}}}", formula))
    out.append(
        "\\textbf{Boundary rows.} " + escape(boundary_text(p)) + " The kernels assemble these "
        "rows from the same point formulas (read through the boundary rule), so they are exact "
        "at every row.\n\n\\textbf{Steps.}\n\\begin{itemize}\n"
    )
    for run in runs:
        step = STEP_TEXT.get(run.rule.name, "numeric only")
        out.append(f"\\item {escape(run.label)}: {escape(step)}\n")
    out.append("\\end{itemize}\n")
    return "".join(out)


def _name(text: str) -> str:
    """``u[i+1]`` as ``u_{i+1}``, ``P[i]`` as ``P_{i}``."""
    return index_tex(sp.Symbol(text))


def _verdicts(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """``(rule, check, verdict, argument)`` rows as a table."""
    if not rows:
        return ""
    cells = [[escape(r), escape(c), f"\\textbf{{{escape(v)}}}", escape(a)] for r, c, v, a in rows]
    return (
        "\\needlines{10}\\section{Verdicts about this problem}\n"
        "Units are checked per field on the point formula and on every diagonal of the stencils; "
        "scale invariance under a scaling of the inputs per field (every point of a field "
        "multiplied by that field's own factor $s$) by the theorem route, "
        "its hypotheses checked on the assembled sparse matrices at the start. A claim that "
        "cannot be decided here says why.\n"
        + table(["rule", "check", "verdict", "argument"], cells,
                "l >{\\raggedright\\arraybackslash}p{1.9cm} l "
                ">{\\raggedright\\arraybackslash}p{8.4cm}")
    )  # fmt: skip


def _results(runs: Sequence[RuleRun]) -> str:
    rows = []
    for run in runs:
        t = run.trajectory
        if t is None:
            rows.append([escape(run.label), "--", "--", escape(f"error: {run.run_error}"), "", ""])
            continue
        final = np.asarray(t.x[-1]).reshape(-1, t.x.shape[-1])[0]
        loss = float(np.ravel(t.loss[-1])[0])
        status = Status(int(np.ravel(t.status)[0])).words
        rows.append([
            escape(run.label), str(int(np.ravel(t.steps_taken)[0])), f"${number(loss, 4)}$",
            escape(status), f"${number(float(np.linalg.norm(final)), 4)}$",
            f"$[{number(float(final.min()), 3)}, {number(float(final.max()), 3)}]$",
        ])  # fmt: skip
    heads = ["rule", "steps", "final loss", "status", Latex("$|x|$"), Latex("range of $x$")]
    intro = (
        "\\needlines{10}\\section{Results}\nEach rule from the first start; the final state is "
        "summarised by its norm and range (Figure~\\ref{fig:profile} draws it).\n"
    )
    return intro + table(heads, rows, "l r l l r l")


def _figures(figures: Sequence[FigureRef]) -> str:
    out = ["\\section{Figures}\n"]
    for ref in figures:
        label = "fig:" + ref.path.rsplit("/", 1)[-1].removesuffix(".pdf")
        out.append(
            "\\begin{figure}[H]\\centering\n"
            f"\\includegraphics[width=0.95\\linewidth]{{{ref.path}}}\n"
            f"\\caption{{{escape(ref.caption)}}}\\label{{{label}}}\n\\end{{figure}}\n"
        )
    return "".join(out)


def indexed_document(
    spec: Spec,
    runs: Sequence[RuleRun],
    verdicts: Sequence[tuple[str, str, str, str]],
    figures: Sequence[FigureRef],
    dims: Any = None,
    study: str = "",
) -> str:
    """The whole ``report.tex`` of an indexed spec (``study``: the many-starts section)."""
    p: IndexedProblem = spec.problem  # type: ignore[assignment]
    has_pattern = any(f.path.endswith("sparsity.pdf") for f in figures)
    parts = [
        PREAMBLE,
        f"\\title{{{escape(' '.join(spec.title.split()))}}}\n\\date{{}}\n"
        "\\begin{document}\n\\maketitle\n",
        _problem(spec, p, dims),
        _stencils(p, runs, "fig:sparsity" if has_pattern else ""),
        _verdicts(verdicts),
        _results(runs),
        study,
        _figures(figures),
        "\\end{document}\n",
    ]
    return "\n".join(part for part in parts if part)
