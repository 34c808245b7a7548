r"""The derivations section of a report, structured so that real problems stay readable.

The section follows the chain rule: the loss and its derivatives in ``y``, the Jacobian ``J``,
then ``∂L/∂x = Jᵀ ∂L/∂y`` and ``H = Jᵀ (∂²L/∂y²) J + Σ_k (∂L/∂y_k) ∇²P_k``, the local
inverse and each rule's step in structured form (``Δx = −η H⁻¹ ∂L/∂x``) before its components.
Every formula goes through :class:`~scaleinv.reports.formulas.Formulas` (a length budget per
formula; what does not fit goes to ``derivations.txt``). Past :data:`FEW` inputs only
representative entries are shown, with the sparsity pattern in a figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from scaleinv.reports.content import ETA, FEW, Derivation, RuleRun, exact_number
from scaleinv.reports.formulas import APPENDIX_FILE, Formulas
from scaleinv.reports.latex import display, escape, tex
from scaleinv.reports.structure import STEP_FORMULAS, sparsity_of
from scaleinv.symbolic import Spec

__all__ = ["derivations_tex", "FEW", "ENTRIES_SHOWN"]

#: How many entries of a large vector or matrix are shown.
ENTRIES_SHOWN = 6


def derivations_tex(
    spec: Spec, d: Derivation, runs: Sequence[RuleRun], formulas: Formulas, sparsity_fig: str = ""
) -> str:
    """The LaTeX of the derivations section (``sparsity_fig``: the label of the pattern figure)."""
    p = spec.problem
    big = p.n > FEW
    out = ["\\section{Derivations}\n"]
    out.append(
        "Every formula is derived exactly (SymPy). A formula longer than half a page is "
        f"summarised here and written out in full in \\texttt{{{APPENDIX_FILE}}}.\n"
    )
    if big:
        out.append(_sparsity_words(p, sparsity_fig))
    ys = p.output_symbols
    out.append("\\subsection{The loss in $y$}\n")
    entries = [(rf"\frac{{\partial L}}{{\partial {tex(y)}}}", g) for y, g in zip(ys, p.loss_y)]
    out.append(formulas.block(_some(entries, big), "dL/dy") + _more(len(entries), big))
    if not big and any(v != 0 for v in p.loss_yy):
        out.append(formulas.block([(r"\frac{\partial^2 L}{\partial y^2}", p.loss_yy)], "d2L/dy2"))
    out.append("\\subsection{Jacobian, gradient and Hessian}\n")
    out.append("The Jacobian $J = \\partial \\mathcal{P}/\\partial x$ (nonzero entries):\n")
    jac = [
        (f"J_{{{tex(ys[i])},\\,{tex(p.inputs[j])}}}", d.jacobian[i, j])
        for i in range(p.m)
        for j in range(p.n)
        if d.jacobian[i, j] != 0
    ]
    out.append(formulas.block(_some(jac, big), "J") + _more(len(jac), big))
    out.append(
        "By the chain rule, with $y = \\mathcal{P}(x)$ substituted after differentiating:\n"
        + display(
            r"\frac{\partial L}{\partial x} = J^\top \frac{\partial L}{\partial y}, \qquad "
            r"H = \frac{\partial^2 L}{\partial x^2} = J^\top \frac{\partial^2 L}{\partial y^2} J"
            r" + \sum_k \frac{\partial L}{\partial y_k} \nabla^2 \mathcal{P}_k"
        )
    )
    grad = [(rf"\frac{{\partial L}}{{\partial {tex(x)}}}", g) for x, g in zip(p.inputs, d.gradient)]
    out.append(formulas.block(_some(grad, big), "dL/dx") + _more(len(grad), big))
    curv = _output_curvatures(spec)
    if curv:
        out.append("The curvature of the outputs, $\\nabla^2 \\mathcal{P}_k$ (nonzero entries):\n")
        out.append(formulas.block(_some(curv, big), "Hessians of P") + _more(len(curv), big))
    hess = [
        (f"H_{{{tex(p.inputs[i])},\\,{tex(p.inputs[j])}}}", d.hessian[i, j])
        for i in range(p.n)
        for j in range(i, p.n)
        if d.hessian[i, j] != 0
    ]
    out.append("The Hessian $H$ (nonzero entries on and above the diagonal; it is symmetric):\n")
    out.append(formulas.block(_some(hess, big), "H") + _more(len(hess), big))
    out.append(_inverse(spec, d, formulas))
    out.append("\\subsection{Updates}\n")
    out.append(
        "Each rule's step at a point $x$, first in structured form, then component by "
        "component with a symbolic step size $\\eta$ (its value in the runs is given with the "
        "rule).\n"
    )
    for run in runs:
        out.append(_update(spec, run, formulas, big))
    return "".join(out)


def _some(entries: list[tuple[str, sp.Basic]], big: bool) -> list[tuple[str, sp.Basic]]:
    return entries[:ENTRIES_SHOWN] if big else entries


def _more(count: int, big: bool) -> str:
    if big and count > ENTRIES_SHOWN:
        return f"(The first {ENTRIES_SHOWN} of {count} nonzero entries.)\n"
    return ""


def _sparsity_words(problem: object, figure: str) -> str:
    s = sparsity_of(problem)  # type: ignore[arg-type]
    (m, n), (hn, _) = s.jacobian_shape, s.hessian_shape
    where = f" (Figure~\\ref{{{figure}}})" if figure else ""
    return (
        f"The problem is large ($n = {n}$ inputs, $m = {m}$ outputs) and sparse{where}: $J$ "
        f"has {len(s.jacobian)} nonzero entries of {m * n}, $H$ has {len(s.hessian)} of "
        f"{hn * hn}. Representative entries are shown below; every entry is in "
        f"\\texttt{{{APPENDIX_FILE}}} only where it is too long for the page.\n"
    )


def _output_curvatures(spec: Spec) -> list[tuple[str, sp.Basic]]:
    p = spec.problem
    found = []
    for k, output in enumerate(p.outputs):
        weight = p.loss_y[k]
        if weight == 0:
            continue
        inputs = [x for x in p.inputs if output.has(x)]
        for a, xa in enumerate(inputs):
            for xb in inputs[a:]:
                entry = sp.diff(output, xa, xb)
                if entry != 0:
                    lhs = rf"\nabla^2_{{{tex(xa)},\,{tex(xb)}}} \mathcal{{P}}_{{{k}}}"
                    found.append((lhs, entry))
    return found


def _condition(condition: sp.Basic) -> sp.Basic:
    """Drop parts of a validity condition that the others imply (``y > 0 ∧ |y| ≠ 0``)."""
    if not isinstance(condition, sp.And):
        return condition
    strict = {
        a.lhs for a in condition.args if isinstance(a, (sp.StrictGreaterThan, sp.StrictLessThan))
    }
    kept = [
        a
        for a in condition.args
        if not (
            isinstance(a, sp.Ne)
            and a.rhs == 0
            and (a.lhs in strict or (isinstance(a.lhs, sp.Abs) and a.lhs.args[0] in strict))
        )
    ]
    return sp.And(*kept)


def _inverse(spec: Spec, d: Derivation, formulas: Formulas) -> str:
    p, inverse = spec.problem, d.inverse
    if inverse is None:
        return ""
    out = ["\\subsection{Local inverse}\n"]
    if inverse.numeric:
        out.append(
            "No closed-form inverse of $\\mathcal{P}(x) = y$: PG solves it numerically at "
            "every step, following the path from $\\mathcal{P}(x)$ to the requested $y$ from "
            "the current $x$ (a sample it cannot solve ends as not found).\n"
        )
        return "".join(out)
    count = len(inverse.branches)
    out.append(
        f"$\\mathcal{{P}}(x) = y$ has {count} closed-form real "
        f"{'branch' if count == 1 else 'branches'}; $\\mathcal{{P}}^{{-1}}(y; x)$ picks the valid "
        "one nearest to the current $x$.\n"
    )
    for k, branch in enumerate(inverse.branches, 1):
        if count > 1:
            out.append(f"\\paragraph{{Branch {k} of {count}.}}\n")
        rows = [(tex(x), e) for x, e in zip(p.inputs, branch.solution)]
        out.append(formulas.block(_some(rows, p.n > FEW), f"inverse branch {k}"))
        cond = _condition(branch.condition)
        out.append("Valid everywhere." if cond == sp.true else f"Valid where ${tex(cond)}$.")
        periods = [(x, t) for x, t in zip(p.inputs, branch.period) if t is not None]
        if periods:
            shown = ", ".join(f"${tex(x)} + k\\,{tex(t)}$" for x, t in periods)
            out.append(f" Periodic: {shown} (integer $k$) solve it as well.")
        out.append("\n")
    return "".join(out)


def _update(spec: Spec, run: RuleRun, formulas: Formulas, big: bool) -> str:
    p = spec.problem
    eta = getattr(run.rule, "eta", None)
    out = [f"\\subsubsection*{{{escape(run.label)}}}\n"]
    structure = STEP_FORMULAS.get(run.rule.name)
    if structure:
        out.append(display(structure))
    if eta is not None:
        out.append(f"Step size in the runs: $\\eta = {tex(exact_number(float(eta)))}$.\n")
    if not run.deltas:
        out.append(escape(run.delta_note[:1].upper() + run.delta_note[1:]) + ".\n")
        return "".join(out)
    for k, delta in enumerate(run.deltas, 1):
        if len(run.deltas) > 1:
            out.append(f"On branch {k} of the local inverse:\n")
        rows = [(rf"\Delta {tex(x)}", e) for x, e in zip(p.inputs, delta)]
        title = f"{run.label}: Delta x" + (f", branch {k}" if len(run.deltas) > 1 else "")
        out.append(formulas.block(_some(rows, big), title) + _more(len(rows), big))
    if len(run.deltas) > 1:
        out.append("The step uses the branch nearest to the current $x$.\n")
    if eta is not None and ETA not in set().union(*(dd.free_symbols for dd in run.deltas)):
        out.append("(This $\\Delta x$ does not depend on $\\eta$.)\n")
    return "".join(out)
