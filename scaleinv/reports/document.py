"""The LaTeX source of a report, assembled from what the lower layers derived and ran.

Sections: the problem (``P``, ``L``, the minimiser ``y*`` of the loss, params, dimensions),
the derivations (:mod:`~scaleinv.reports.derivations`), the verdicts about *this* problem,
the results of the runs, the figures, and an appendix with the claims of the chapter that
bear on it (checked on the chapter's own examples). Formulas are :func:`sympy.latex` of the
symbolic layer's objects; numbers are the numeric layer's arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from scaleinv.numeric import Status
from scaleinv.reports.content import FEW, Derivation, RuleRun, exact_number
from scaleinv.reports.derivations import derivations_tex
from scaleinv.reports.formulas import Formulas
from scaleinv.reports.latex import PREAMBLE, display, escape, number, table, tex, text_vector
from scaleinv.reports.structure import loss_minimiser
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
    formulas: Formulas | None = None,
    study: str = "",
    verdict_intro: str = "",
) -> str:
    """The whole ``report.tex``.

    ``dimensions`` maps inputs, params and ``L`` (as the symbol ``L``) to their dimensions
    when the spec has ``[units]``; ``extra`` is LaTeX appended to the derivations (e.g. the
    composition's own derivation); ``formulas`` collects the formulas too long for the page
    (the caller writes them to ``derivations.txt``); ``study`` is the LaTeX of the
    many-starts section, if any; ``verdict_intro`` opens the section of verdicts (where they
    were checked).
    """
    formulas = formulas if formulas is not None else Formulas()
    own = [v for v in verdicts if v.check != "ledger"]
    ledger = [v for v in verdicts if v.check == "ledger"]
    sparsity = next((f for f in figures if Path(f.path).stem == "sparsity"), None)
    label = "fig:sparsity" if sparsity is not None else ""
    parts = [
        PREAMBLE,
        f"\\title{{{escape(' '.join(spec.title.split()))}}}\n\\date{{}}\n"  # one paragraph
        "\\begin{document}\n\\maketitle\n",
        _problem(spec, dimensions, runs),
        derivations_tex(spec, derivation, runs, formulas, label),
        extra,
        _verdicts(own, "Verdicts about this problem", verdict_intro),
        _results(spec, runs),
        study,
        _figures(figures),
        _appendix(ledger),
        "\\end{document}\n",
    ]
    return "\n".join(p for p in parts if p)


def _problem(
    spec: Spec, dimensions: dict[sp.Symbol, object] | None, runs: Sequence[RuleRun]
) -> str:
    p = spec.expression_problem("this report")
    out = ["\\section{Problem}\n"]
    if spec.description:
        out.append(escape(spec.description) + "\n\n")
    xs, ys = _listed(p.inputs), _listed(p.output_symbols)
    out.append(
        f"Inputs $x = ({xs})$ ($n = {p.n}$), outputs $y = ({ys}) = \\mathcal{{P}}(x)$ "
        f"($m = {p.m}$):\n"
    )
    rows = [(tex(y), e) for y, e in zip(p.output_symbols, p.outputs)]
    shown = Formulas()
    out.append(shown.block(rows[:8], "outputs"))
    if p.m > 8:
        out.append(f"(The first 8 of {p.m} outputs.)\n")
    if p.m > 8 and p.has_default_loss:
        out.append(display(r"L(y) = \tfrac{1}{2}\, |y - y^*|^2"))
    else:
        out.append("The loss:\n" + shown.block([("L(y)", p.loss)], "loss"))
    out.append(_target(spec))
    if p.params:
        rows_ = [[f"${tex(s)}$", f"${number(v, 6)}$"] for s, v in sorted(p.params.items(), key=str)]
        out.append("Parameters and their values:\n" + table(["param", "value"], rows_, "l l"))
    if dimensions:
        rows_ = _dimension_rows(dimensions)
        out.append("Dimensions (from \\texttt{[units]}; outputs and loss derived):\n")
        out.append(table(["symbol", "dimension"], rows_, "l l"))
    starts = ", ".join(text_vector(s, 6) for s in spec.starts)
    tol = f", tolerance ${number(spec.tol)}$ on $|\\partial L/\\partial x|$" if spec.tol else ""
    with_eta = [(r.rule.label, getattr(r.rule, "eta", None)) for r in runs]
    etas = ", ".join(
        f"{escape(label)} $\\eta = {tex(exact_number(float(eta)))}$"
        for label, eta in with_eta
        if eta is not None
    )
    out.append(f"Runs start at {starts} and take {spec.steps} steps{tol}")
    out.append(f"; step sizes: {etas}.\n" if etas else ".\n")
    return "".join(out)


def _listed(symbols: Sequence[sp.Symbol]) -> str:
    r"""``x_0, x_1, x_2`` — or, past :data:`FEW`, ``x_0, x_1, x_2, \dots, x_{255}``."""
    shown = [tex(s) for s in symbols]
    if len(shown) > FEW:
        shown = [*shown[:3], r"\dots", shown[-1]]
    return ", ".join(shown)


def _dimension_rows(dimensions: dict[sp.Symbol, object]) -> list[list[str]]:
    """One row per symbol; past :data:`FEW` symbols of one dimension, one row for the run
    of consecutive symbols that share it (``x_0, …, x_255``: temperature)."""
    runs: list[tuple[list[sp.Symbol], str]] = []
    for symbol, dim in dimensions.items():
        shown = dimension_tex(dim)
        if runs and runs[-1][1] == shown:
            runs[-1][0].append(symbol)
        else:
            runs.append(([symbol], shown))
    rows = []
    for symbols, shown in runs:
        if len(symbols) > FEW:
            rows.append([f"${_listed(symbols)}$ ({len(symbols)})", f"${shown}$"])
        else:
            rows += [[f"${tex(s)}$", f"${shown}$"] for s in symbols]
    return rows


def _target(spec: Spec) -> str:
    """The minimiser of the spec's loss in ``y`` (solving ``∂L/∂y = 0``)."""
    problem = spec.expression_problem("this report")
    found = loss_minimiser(problem)
    if found.point is not None and found.point.rows > 8:
        values = found.point.subs(problem.params)
        if all(v.is_number for v in values):
            return (
                "The loss is smallest at the target $y^* = $"
                + text_vector([float(v) for v in values], 4)
                + " (the solution of $\\partial L/\\partial y = 0$).\n"
            )
    if found.point is not None:
        point = sp.Tuple(*found.point) if found.point.rows > 1 else found.point[0]
        exact = {k: exact_number(v) for k, v in problem.params.items()}
        values = found.point.subs(exact)
        numeric = ""
        if values != found.point and all(v.is_number for v in values):
            numeric = " = " + tex(sp.Tuple(*values) if values.rows > 1 else values[0])
        return (
            "The loss is smallest at the target "
            + f"$y^* = {tex(point)}{numeric}$ (the solution of $\\partial L/\\partial y = 0$).\n"
        )
    if found.unused:
        names = ", ".join(f"${tex(y)}$" for y in found.unused)
        return f"Target: not unique: $L$ does not depend on {names}.\n"
    where = f", where ${tex(found.where)} = 0$" if found.where is not None else ""
    return f"Target: {escape(found.note)}{where}.\n"


_HEADINGS = {
    "units": r"Units: the dimension $\eta$ needs for each component of $\Delta x$",
    "scale invariance": r"Scale invariance under {aspect}: is the update, mapped back, unchanged?",
    "composition": r"Consistency in compositions: is the change of $y$ the loss's own $\Delta y$?",
    "ledger": r"The chapter's claims, checked on the chapter's own examples",
}
#: Keep a heading with at least this many lines of what follows (no heading alone at a foot).
_KEEP_LINES = 8
#: Characters of LaTeX source per line of a verdict's detail cell (a rough, safe estimate).
_CELL_CHARS = 70


def _verdicts(rows: Sequence[VerdictRow], title: str, intro: str = "") -> str:
    if not rows:
        return ""
    out = [f"\\needlines{{{2 * _KEEP_LINES}}}\\section{{{title}}}\n{intro}"] if title else []
    groups: dict[tuple[str, str], list[VerdictRow]] = {}
    for row in rows:
        groups.setdefault((row.check, row.aspect), []).append(row)
    for (check, _), members in groups.items():
        template = _HEADINGS.get(check, escape(check))
        heading = template.replace("{aspect}", members[0].aspect_tex or escape(members[0].aspect))
        keep = _KEEP_LINES + _lines_of(members[0].detail)  # the heading with the first row
        out.append(f"\\needlines{{{keep}}}\\subsubsection*{{{heading}}}\n")
        body = [[escape(r.subject), f"\\textbf{{{escape(r.verdict)}}}", r.detail] for r in members]
        first = "claim" if check == "ledger" else "rule"
        spec = f"{_WRAP}p{{3.3cm}} l {_WRAP}p{{10.2cm}}"
        out.append(table([first, "verdict", "detail"], body, spec))
    return "".join(out)


def _lines_of(detail: str) -> int:
    """About how many lines a detail cell takes in its 10.2 cm column (at most half a page)."""
    return min(-(-len(detail) // _CELL_CHARS), 25)


def _appendix(ledger: Sequence[VerdictRow]) -> str:
    if not ledger:
        return ""
    return (
        f"\\appendix\n\\needlines{{{2 * _KEEP_LINES}}}\\section{{The chapter's own examples}}\n"
        "The claims of the chapter on this problem's topics, each checked by scaleinv's claims "
        "ledger on the \\emph{chapter's} example problems, not on the problem of this report. "
        "\\emph{holds}: the statement is true as written; \\emph{corrected}: it is not, and "
        "the corrected statement shown holds.\n" + _verdicts(ledger, "")
    )


def _results(spec: Spec, runs: Sequence[RuleRun]) -> str:
    rows = []
    for run in runs:
        eta = getattr(run.rule, "eta", None)
        shown = "--" if eta is None else f"${tex(exact_number(float(eta)))}$"
        if run.trajectory is None:
            error = "error: " + escape(run.run_error)
            rows.append([escape(run.rule.label), shown, "--", "--", "--", "--", error])
            continue
        t = run.trajectory
        for b, start in enumerate(spec.starts):
            rows.append(
                [
                    escape(run.rule.label),
                    shown,
                    text_vector(start, 4, keep=3 if len(start) > FEW else 6),
                    str(t.steps),
                    text_vector(t.x[-1, b], 6),
                    f"${number(t.loss[-1, b], 6)}$",
                    Status(int(np.ravel(t.status)[b])).words,
                ]
            )
    head = ["rule", "η", "start", "steps", "final x", "final loss", "status"]
    return f"\\needlines{{{2 * _KEEP_LINES}}}\\section{{Results}}\n" + table(
        head, rows, f"l l l r {_WRAP}p{{4.2cm}} l {_WRAP}p{{2.2cm}}"
    )


def _figures(figures: Sequence[FigureRef]) -> str:
    if not figures:
        return ""
    out = ["\\section{Figures}\n"]
    for fig in figures:
        out.append(
            "\\begin{figure}[H]\n\\centering\n"
            "\\includegraphics[width=\\linewidth,height=0.42\\textheight,keepaspectratio]"
            f"{{{fig.path}}}\n"
            f"\\caption{{{fig.caption}}}\\label{{fig:{Path(fig.path).stem}}}\n\\end{{figure}}\n"
        )
    return "".join(out)
