r"""The derivations section of a report, structured so that real problems stay readable.

The section follows the chain rule: the loss and its derivatives in ``y``, the Jacobian ``J``,
then ``∂L/∂x = Jᵀ ∂L/∂y`` and ``H = Jᵀ (∂²L/∂y²) J + Σ_k (∂L/∂y_k) ∇²P_k``, the local
inverse and each rule's step in structured form (``Δx = −η H⁻¹ ∂L/∂x``) before its components.
Every formula goes through :class:`~scaleinv.reports.formulas.Formulas` (a length budget per
formula; what does not fit goes to ``derivations.txt``). Past :data:`FEW` inputs only
representative entries are shown, with the sparsity pattern in a figure.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import sympy as sp

from scaleinv.errors import BudgetExceeded
from scaleinv.reports.content import ETA, FEW, Derivation, RuleRun, exact_number
from scaleinv.reports.formulas import APPENDIX_FILE, Formulas
from scaleinv.reports.latex import display, escape, prose, tex
from scaleinv.reports.structure import STEP_FORMULAS, sparsity_of
from scaleinv.symbolic import Problem, Spec
from scaleinv.symbolic.budget import with_budget

__all__ = ["derivations_tex", "representative_rows", "FEW", "ENTRIES_SHOWN"]

#: How many entries of a large vector or matrix are shown.
ENTRIES_SHOWN = 6
#: Work limit (counted steps) of each second derivative of an output derived for display.
CURVATURE_STEPS = 400_000


def derivations_tex(
    spec: Spec, d: Derivation, runs: Sequence[RuleRun], formulas: Formulas, sparsity_fig: str = ""
) -> str:
    """The LaTeX of the derivations section (``sparsity_fig``: the label of the pattern figure).

    Past :data:`FEW` inputs the entries come from the sparse derivatives (no dense matrix is
    scanned) and only a few are shown: a vector's first ones, a matrix's first and middle row.
    """
    p = spec.expression_problem("this report")
    big = p.n > FEW
    out = ["\\section{Derivations}\n"]
    out.append(
        "Every formula is derived exactly (SymPy). A formula longer than half a page is "
        f"summarised here and written out in full in \\texttt{{{APPENDIX_FILE}}}.\n"
    )
    if big:
        out.append(_sparsity_words(p, sparsity_fig))
    ys, xs = p.output_symbols, p.inputs
    out.append("\\subsection{The loss in $y$}\n")
    loss_y = _entries(p.sparse.loss_y if big else dict(enumerate(p.loss_y)))
    entries = [(rf"\frac{{\partial L}}{{\partial {tex(ys[k])}}}", g) for k, g in loss_y.items()]
    out.append(_shown(entries, big, formulas, "dL/dy", p.m))
    if not big and any(v != 0 for v in p.loss_yy):
        out.append(formulas.block([(r"\frac{\partial^2 L}{\partial y^2}", p.loss_yy)], "d2L/dy2"))
    if big and _is_identity(p.sparse.loss_yy, p.m):
        out.append(
            "The loss's Hessian in $y$ is the identity, $\\partial^2 L/\\partial y^2 = I$.\n"
        )
    out.append("\\subsection{Jacobian, gradient and Hessian}\n")
    out.append("The Jacobian $J = \\partial \\mathcal{P}/\\partial x$ (nonzero entries):\n")
    jac = p.sparse.jacobian if big else _nonzero(d.jacobian)
    rows = [
        (f"J_{{{tex(ys[i])},\\,{tex(xs[j])}}}", e) for (i, j), e in representative_rows(jac, big)
    ]
    out.append(_shown(rows, big, formulas, "J", len(jac), "rows"))
    out.append(
        "By the chain rule, with $y = \\mathcal{P}(x)$ substituted after differentiating:\n"
        + display(
            r"\frac{\partial L}{\partial x} = J^\top \frac{\partial L}{\partial y}, \qquad "
            r"H = \frac{\partial^2 L}{\partial x^2} = J^\top \frac{\partial^2 L}{\partial y^2} J"
            r" + \sum_k \frac{\partial L}{\partial y_k} \nabla^2 \mathcal{P}_k"
        )
    )
    gradient = _entries(p.sparse.gradient if big else dict(enumerate(d.gradient)))
    grad = [(rf"\frac{{\partial L}}{{\partial {tex(xs[j])}}}", g) for j, g in gradient.items()]
    out.append(_shown(grad, big, formulas, "dL/dx", p.n))
    curv = _output_curvatures(spec, limit=ENTRIES_SHOWN if big else None)
    if curv:
        out.append("The curvature of the outputs, $\\nabla^2 \\mathcal{P}_k$ (nonzero entries):\n")
        out.append(formulas.block(curv, "Hessians of P"))
        if big:
            out.append(
                f"(The first {len(curv)}; $\\nabla^2 \\mathcal{{P}}_k$ is nonzero only among the "
                "inputs $\\mathcal{P}_k$ contains.)\n"
            )
    hessian = p.sparse.hessian if big else _nonzero(d.hessian)
    upper = {(i, j): e for (i, j), e in hessian.items() if i <= j}
    hess = [
        (f"H_{{{tex(xs[i])},\\,{tex(xs[j])}}}", e) for (i, j), e in representative_rows(upper, big)
    ]
    out.append("The Hessian $H$ (nonzero entries on and above the diagonal; it is symmetric):\n")
    out.append(_shown(hess, big, formulas, "H", len(upper), "rows"))
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


def _nonzero(matrix: sp.Matrix) -> dict[tuple[int, int], sp.Basic]:
    return {
        (i, j): matrix[i, j]
        for i in range(matrix.rows)
        for j in range(matrix.cols)
        if matrix[i, j] != 0
    }


def _entries(found: Mapping[int, sp.Basic]) -> dict[int, sp.Basic]:
    """The nonzero entries of a vector, in index order."""
    return {k: found[k] for k in sorted(found) if found[k] != 0}


def _is_identity(entries: Mapping[tuple[int, int], sp.Basic], size: int) -> bool:
    return len(entries) == size and all(i == j and v == 1 for (i, j), v in entries.items())


def representative_rows(
    entries: Mapping[tuple[int, int], sp.Basic], big: bool
) -> list[tuple[tuple[int, int], sp.Basic]]:
    """Every entry (in order), or for a large matrix the entries of its first and middle row."""
    ordered = sorted(entries.items())
    if not big or not ordered:
        return ordered
    rows = sorted({i for (i, _), _ in ordered})
    keep = {rows[0], rows[len(rows) // 2]}
    return [(key, e) for key, e in ordered if key[0] in keep]


def _shown(
    entries: list[tuple[str, sp.Basic]],
    big: bool,
    formulas: Formulas,
    title: str,
    total: int,
    how: str = "first",
) -> str:
    """The formulas of ``entries``; when large, a vector's first few or the given rows."""
    if not big:
        return formulas.block(entries, title)
    shown = entries[:ENTRIES_SHOWN] if how == "first" else entries
    words = (
        f"The first {len(shown)} of {total} nonzero entries"
        if how == "first"
        else f"The nonzero entries of the first and a middle row: {len(shown)} of {total}"
    )
    return formulas.block(shown, title) + f"({words}.)\n"


def _sparsity_words(problem: Problem, figure: str) -> str:
    s = sparsity_of(problem)
    (m, n), (hn, _) = s.jacobian_shape, s.hessian_shape
    where = f" (Figure~\\ref{{{figure}}})" if figure else ""
    return (
        f"The problem is large ($n = {n}$ inputs, $m = {m}$ outputs) and sparse{where}: $J$ "
        f"has {len(s.jacobian)} nonzero entries of {m * n}, $H$ has {len(s.hessian)} of "
        f"{hn * hn}. Every entry is derived exactly, but only a few representative ones are "
        "shown: the first entries of a vector, the first and a middle row of a matrix.\n"
    )


def _output_curvatures(spec: Spec, limit: int | None = None) -> list[tuple[str, sp.Basic]]:
    """The nonzero second derivatives of the outputs (the first ``limit`` of them, if given).

    Each is derived within :data:`CURVATURE_STEPS` counted steps (nested functions make huge
    ones: 98 nested ``sin`` took minutes); one past it is shown as a note instead.
    """
    p = spec.expression_problem("this report")
    found: list[tuple[str, sp.Basic]] = []
    for k, output in enumerate(p.outputs):
        if p.loss_y[k] == 0:
            continue
        own = [x for x in p.inputs if x in output.free_symbols]
        for a, xa in enumerate(own):
            for xb in own[a:]:
                lhs = rf"\nabla^2_{{{tex(xa)},\,{tex(xb)}}} \mathcal{{P}}_{{{k}}}"
                try:
                    entry = with_budget(
                        functools.partial(sp.diff, output, xa, xb),
                        CURVATURE_STEPS,
                        "a second derivative for display",
                        isolate=False,
                    )
                except BudgetExceeded as err:
                    entry = sp.Symbol(rf"\text{{({escape(str(err))})}}")
                if entry != 0:
                    found.append((lhs, entry))
                if limit is not None and len(found) >= limit:
                    return found
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
    p, inverse = spec.expression_problem("this report"), d.inverse
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
        out.append(_shown(rows, p.n > FEW, formulas, f"inverse branch {k}", len(rows)))
        cond = _condition(branch.condition)
        out.append("Valid everywhere." if cond == sp.true else f"Valid where ${tex(cond)}$.")
        periods = [(x, t) for x, t in zip(p.inputs, branch.period) if t is not None]
        if periods:
            shown = ", ".join(f"${tex(x)} + k\\,{tex(t)}$" for x, t in periods)
            out.append(f" Periodic: {shown} (integer $k$) solve it as well.")
        out.append("\n")
    return "".join(out)


def _update(spec: Spec, run: RuleRun, formulas: Formulas, big: bool) -> str:
    p = spec.expression_problem("this report")
    eta = getattr(run.rule, "eta", None)
    out = [f"\\subsubsection*{{{escape(run.label)}}}\n"]
    structure = STEP_FORMULAS.get(run.rule.name)
    if structure:
        out.append(display(structure))
    if eta is not None:
        out.append(f"Step size in the runs: $\\eta = {tex(exact_number(float(eta)))}$.\n")
    if not run.deltas:
        out.append(prose(run.delta_note[:1].upper() + run.delta_note[1:]) + ".\n")
        return "".join(out)
    for k, delta in enumerate(run.deltas, 1):
        if len(run.deltas) > 1:
            out.append(f"On branch {k} of the local inverse:\n")
        rows = [(rf"\Delta {tex(x)}", e) for x, e in zip(p.inputs, delta)]
        title = f"{run.label}: Delta x" + (f", branch {k}" if len(run.deltas) > 1 else "")
        out.append(_shown(rows, big, formulas, title, len(rows)))
    if len(run.deltas) > 1:
        out.append("The step uses the branch nearest to the current $x$.\n")
    if eta is not None and ETA not in set().union(*(dd.free_symbols for dd in run.deltas)):
        out.append("(This $\\Delta x$ does not depend on $\\eta$.)\n")
    return "".join(out)
