"""The LaTeX source of a report, assembled from what the lower layers derived and ran.

Sections: the problem (``P``, ``L``, ``y*``, params, dimensions), the derivations (``L∘P``,
``J``, ``∂L/∂x``, ``∂²L/∂x²``, the local inverse's branches, every rule's ``Δx``), the
verdicts, the results of the runs and the figures. Formulas are :func:`sympy.latex` of the
symbolic layer's objects; numbers are the numeric layer's arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from scaleinv.numeric import Status
from scaleinv.reports.content import ETA, Derivation, RuleRun
from scaleinv.reports.latex import (
    PREAMBLE,
    display,
    equations,
    escape,
    number,
    table,
    tex,
    text_vector,
)
from scaleinv.reports.verdicts import VerdictRow, dimension_tex
from scaleinv.symbolic import Spec

__all__ = ["FigureRef", "render_document"]

_WRAP = r">{\raggedright\arraybackslash}"


@dataclass(frozen=True)
class FigureRef:
    """A figure as the document includes it: a path relative to the .tex and a caption."""

    path: str
    caption: str


def render_document(
    spec: Spec,
    derivation: Derivation,
    runs: Sequence[RuleRun],
    verdicts: Sequence[VerdictRow],
    figures: Sequence[FigureRef],
    dimensions: dict[sp.Symbol, object] | None = None,
    extra: str = "",
) -> str:
    """The whole ``report.tex``.

    ``dimensions`` maps inputs, params and ``L`` (as the symbol ``L``) to their dimensions
    when the spec has ``[units]``; ``extra`` is LaTeX appended to the derivations (e.g. the
    composition's own derivation).
    """
    parts = [
        PREAMBLE,
        f"\\title{{{escape(' '.join(spec.title.split()))}}}\n\\date{{}}\n"  # one paragraph
        "\\begin{document}\n\\maketitle\n",
        _problem(spec, dimensions),
        _derivations(spec, derivation, runs),
        extra,
        _verdicts(verdicts),
        _results(spec, runs),
        _figures(figures),
        "\\end{document}\n",
    ]
    return "\n".join(p for p in parts if p)


def _problem(spec: Spec, dimensions: dict[sp.Symbol, object] | None) -> str:
    p = spec.problem
    out = ["\\section{Problem}\n"]
    if spec.description:
        out.append(escape(spec.description) + "\n\n")
    xs = ", ".join(tex(x) for x in p.inputs)
    out.append(
        f"Inputs $x = ({xs})$ ($n = {p.n}$), outputs $y = \\mathcal{{P}}(x)$ ($m = {p.m}$).\n"
    )
    ys = p.output_symbols
    out.append(
        equations(
            [
                (rf"\mathcal{{P}}_{{{i}}} = {tex(y)}", e)
                for i, (y, e) in enumerate(zip(ys, p.outputs))
            ]
        )
    )
    out.append(equations([("L(y)", p.loss)]))
    out.append(display(r"y^* = " + tex(sp.Matrix(p.target).T)))
    if p.params:
        rows = [[f"${tex(s)}$", f"${number(v, 6)}$"] for s, v in sorted(p.params.items(), key=str)]
        out.append("Parameters and their values:\n" + table(["param", "value"], rows, "l l"))
    if dimensions:
        rows = [[f"${tex(s)}$", f"${dimension_tex(d)}$"] for s, d in dimensions.items()]
        out.append("Dimensions (from \\texttt{[units]}; outputs and loss derived):\n")
        out.append(table(["symbol", "dimension"], rows, "l l"))
    starts = ", ".join(text_vector(s, 6) for s in spec.starts)
    tol = f", tolerance ${number(spec.tol)}$ on $|\\partial L/\\partial x|$" if spec.tol else ""
    out.append(f"Runs start at {starts} and take {spec.steps} steps{tol}.\n")
    return "".join(out)


def _derivations(spec: Spec, d: Derivation, runs: Sequence[RuleRun]) -> str:
    p = spec.problem
    out = ["\\section{Derivations}\n", "The loss as a function of the inputs:\n"]
    out.append(equations([(r"L(\mathcal{P}(x))", p.loss_x)]))
    out.append("Jacobian $J = \\partial \\mathcal{P}/\\partial x$:\n")
    out.append(
        _matrix("J", d.jacobian, [tex(y) for y in p.output_symbols], [tex(x) for x in p.inputs])
    )
    out.append("Gradient $\\partial L/\\partial x = J^\\top\\, \\partial L/\\partial y$:\n")
    out.append(
        equations(
            [
                (rf"\frac{{\partial L}}{{\partial {tex(x)}}}", g)
                for x, g in zip(p.inputs, d.gradient)
            ]
        )
    )
    out.append("Hessian $\\partial^2 L/\\partial x^2$:\n")
    out.append(_matrix("H", d.hessian, [tex(x) for x in p.inputs], [tex(x) for x in p.inputs]))
    out.append(_inverse(spec, d))
    out.append("\\subsection{Updates}\n")
    out.append(
        "Each rule's $\\Delta x$ at a point $x$, derived exactly with a symbolic step size "
        "$\\eta$ (its value in the runs is given with the rule).\n"
    )
    for run in runs:
        out.append(_update(spec, run))
    return "".join(out)


def _matrix(name: str, m: sp.Matrix, rows: Sequence[str], cols: Sequence[str]) -> str:
    whole = tex(m)
    if len(whole) <= 160:
        return display(f"{name} = {whole}")
    entries = [
        (f"{name}_{{{rows[i]},\\,{cols[j]}}}", m[i, j])
        for i in range(m.rows)
        for j in range(m.cols)
    ]
    return equations(entries)


def _inverse(spec: Spec, d: Derivation) -> str:
    p, inverse = spec.problem, d.inverse
    out = ["\\subsection{Local inverse}\n"]
    if inverse.numeric:
        out.append(
            "No closed-form inverse of $\\mathcal{P}(x) = y$: PG solves it numerically at "
            "every step, following the path from $\\mathcal{P}(x)$ to the target from the "
            "current $x$ (a sample it cannot solve ends \\texttt{not\\_found}; "
            f"{escape(inverse.reason)}).\n"
        )
        return "".join(out)
    out.append(
        f"$\\mathcal{{P}}(x) = y$ has {len(inverse.branches)} closed-form real branch(es) "
        f"({escape(inverse.reason)}); $\\mathcal{{P}}^{{-1}}(y; x_0)$ picks the valid one "
        "nearest to $x_0$.\n"
    )
    for k, branch in enumerate(inverse.branches):
        out.append(f"\\subsubsection*{{Branch {k + 1}}}\n")
        out.append(equations([(tex(x), e) for x, e in zip(p.inputs, branch.solution)]))
        cond = "everywhere" if branch.condition == sp.true else f"where ${tex(branch.condition)}$"
        out.append(f"Valid {cond}.")
        periods = [(x, t) for x, t in zip(p.inputs, branch.period) if t is not None]
        if periods:
            shown = ", ".join(f"${tex(x)} + k\\,{tex(t)}$" for x, t in periods)
            out.append(f" Periodic: {shown} (integer $k$) solve it as well.")
        out.append("\n")
    return "".join(out)


def _update(spec: Spec, run: RuleRun) -> str:
    p = spec.problem
    eta = getattr(run.rule, "eta", None)
    out = [f"\\subsubsection*{{{escape(run.label)}}}\n"]
    if eta is not None and "label" in run.spec.settings:
        out.append(f"Step size in the runs: $\\eta = {number(float(eta), 6)}$.\n")
    if not run.deltas:
        out.append(escape(run.delta_note[:1].upper() + run.delta_note[1:]) + ".\n")
        return "".join(out)
    for k, delta in enumerate(run.deltas):
        if len(run.deltas) > 1:
            out.append(f"Branch {k + 1}:\n")
        out.append(equations([(rf"\Delta {tex(x)}", e) for x, e in zip(p.inputs, delta)]))
    if len(run.deltas) > 1:
        out.append("The step uses the branch nearest to the current $x$.\n")
    if ETA not in set().union(*(dd.free_symbols for dd in run.deltas)) and eta is not None:
        out.append("(This $\\Delta x$ does not depend on $\\eta$.)\n")
    return "".join(out)


_HEADINGS = {
    "units": r"Units: the dimension $\eta$ needs for each component of $\Delta x$",
    "scale invariance": r"Scale invariance under {aspect}: is the update, mapped back, unchanged?",
    "composition": r"Consistency in compositions: is the change of $y$ the loss's own $\Delta y$?",
    "ledger": r"Claims of the chapter that apply (the claims ledger)",
}


def _verdicts(rows: Sequence[VerdictRow]) -> str:
    if not rows:
        return ""
    out = ["\\section{Verdicts}\n"]
    groups: dict[tuple[str, str], list[VerdictRow]] = {}
    for row in rows:
        groups.setdefault((row.check, row.aspect), []).append(row)
    for (check, _), members in groups.items():
        template = _HEADINGS.get(check, escape(check))
        heading = template.replace("{aspect}", members[0].aspect_tex or escape(members[0].aspect))
        out.append(f"\\subsubsection*{{{heading}}}\n")
        body = [[escape(r.subject), f"\\textbf{{{escape(r.verdict)}}}", r.detail] for r in members]
        first = "claim" if check == "ledger" else "rule"
        spec = f"{_WRAP}p{{3.3cm}} l {_WRAP}p{{10.2cm}}"
        out.append(table([first, "verdict", "detail"], body, spec))
    return "".join(out)


def _results(spec: Spec, runs: Sequence[RuleRun]) -> str:
    rows = []
    for run in runs:
        if run.trajectory is None:
            rows.append(
                [escape(run.label), "--", "--", "--", "--", "error: " + escape(run.run_error)]
            )
            continue
        t = run.trajectory
        for b, start in enumerate(spec.starts):
            rows.append(
                [
                    escape(run.label),
                    text_vector(start, 4),
                    str(t.steps),
                    text_vector(t.x[-1, b], 6),
                    f"${number(t.loss[-1, b], 6)}$",
                    escape(Status(int(np.ravel(t.status)[b])).label),
                ]
            )
    head = ["rule", "start", "steps", "final x", "final loss", "status"]
    return "\\section{Results}\n" + table(head, rows, f"l l r {_WRAP}p{{4.6cm}} l l")


def _figures(figures: Sequence[FigureRef]) -> str:
    if not figures:
        return ""
    out = ["\\section{Figures}\n"]
    for fig in figures:
        out.append(
            "\\begin{figure}[H]\n\\centering\n"
            f"\\includegraphics[width=\\linewidth]{{{fig.path}}}\n"
            f"\\caption{{{fig.caption}}}\\label{{fig:{Path(fig.path).stem}}}\n\\end{{figure}}\n"
        )
    return "".join(out)
