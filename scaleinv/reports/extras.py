"""Verdict rows from the claims ledger, and the composition part of a report.

The ledger (:func:`scaleinv.analysis.claims.run_ledger`) checks the chapter's statements on
its own reference problems; a report shows the claims that *apply* to its spec. A spec can
name them (``[analysis] claims = ["crux-*", "gd-units"]``, ids or shell-style patterns);
otherwise they are chosen by topic — the scaling family (``[report] alphas``, n > 1), units
(``[units]``), sensitivity (a 1-D problem with a param), composition
(``[analysis] composition``) and local inverses (a PG rule) — and claims about a rule the spec
does not run are left out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import sympy as sp

from scaleinv.analysis.claims import CLAIMS, run_ledger
from scaleinv.analysis.graph import FunctionGraph
from scaleinv.errors import ScaleinvError, SpecError
from scaleinv.reports.content import RuleRun
from scaleinv.reports.latex import equations, escape, prose, tex
from scaleinv.reports.verdicts import VerdictRow
from scaleinv.symbolic import Spec

__all__ = ["TOPICS", "applicable_claims", "ledger_rows", "composition_part"]

#: Claim id patterns per topic.
TOPICS: dict[str, tuple[str, ...]] = {
    "scaling": ("crux-*", "chain-rule-gradient"),
    "units": ("*-units",),
    "sensitivity": ("*-sensitivity*", "newton-inverse-alpha2", "gd-loss-change-sign"),
    "composition": ("composite-hessian", "composition-newton", "*-composition"),
    "inverse": ("pg-exact", "local-inverse-*", "pg-ig-first-order", "pg-quotient-remainder"),
}
_RULE_PREFIXES = ("gd", "newton", "ig", "pg")


def _topics(spec: Spec) -> list[str]:
    found = []
    if spec.report.get("alphas") and spec.problem.n > 1:
        found.append("scaling")
    if spec.units:
        found.append("units")
    if spec.problem.n == 1 and spec.problem.params:
        found.append("sensitivity")
    if spec.analysis.get("composition"):
        found.append("composition")
    if any(r.name == "pg" for r in spec.rules):
        found.append("inverse")
    return found


def applicable_claims(spec: Spec) -> list[str]:
    """The ids of the ledger's claims that apply to ``spec``, in the ledger's order."""
    ids = [c.id for c in CLAIMS]
    named = spec.analysis.get("claims")
    if named is not None:
        if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
            raise SpecError(spec.source, "analysis.claims", "must be a list of ids or patterns")
        missing = [n for n in named if not fnmatch.filter(ids, n)]
        if missing:
            raise SpecError(spec.source, "analysis.claims", f"no claim matches {missing}")
        return [i for i in ids if any(fnmatch.fnmatchcase(i, n) for n in named)]
    patterns = [p for topic in _topics(spec) for p in TOPICS[topic]]
    rules = {r.name for r in spec.rules}
    chosen = []
    for i in ids:
        prefix = i.split("-")[0]
        if prefix in _RULE_PREFIXES and prefix not in rules:
            continue
        if any(fnmatch.fnmatchcase(i, p) for p in patterns):
            chosen.append(i)
    return chosen


def ledger_rows(spec: Spec, runs: Sequence[RuleRun]) -> list[VerdictRow]:
    """One row per applicable claim, checked now by the ledger."""
    ids = applicable_claims(spec)
    if not ids:
        return []
    report = run_ledger(ids=ids)
    rows = []
    for row in report.rows:
        text = rf"\emph{{{escape(row.claim.section)}}}: {row.summary().latex_parts(prose)}"
        if row.result.detail:
            text += f" (found: {row.result.detail.latex_parts(prose)})"
        rows.append(VerdictRow("ledger", row.id, str(row.verdict), text))
    return rows


def composition_part(spec: Spec) -> tuple[FunctionGraph | None, str]:
    """The function graph and LaTeX of ``[analysis] composition``, if any.

    The composition is a chain ``[[space, symbols], [space, maps], ...]`` that must compose to
    the spec's ``L(P(x))``. The report then shows the function graph, each edge's Jacobian and
    the split of Newton's Hessian; whether each rule's change of the intermediate space ``y``
    is the loss's own ``Δy`` is a verdict of every report
    (:func:`~scaleinv.reports.spec_verdicts.spec_verdicts`).
    """
    graph = _graph(spec)
    if graph is None:
        return None, ""
    return graph, _composition_tex(spec, graph)


def _graph(spec: Spec) -> FunctionGraph | None:
    chain = spec.analysis.get("composition")
    if chain is None:
        return None
    key = "analysis.composition"
    if (
        not isinstance(chain, list)
        or len(chain) < 2
        or not all(
            isinstance(step, list) and len(step) == 2 and isinstance(step[0], str) for step in chain
        )
    ):
        raise SpecError(spec.source, key, 'must be a chain [["x", ["x"]], ["y", ["x**3"]], ...]')
    problem = spec.expression_problem("this report")
    params = {str(s): v for s, v in problem.params.items()}
    try:
        graph = FunctionGraph.from_chain([tuple(step) for step in chain], params=params)
        composed = graph.to_problem()
    except ScaleinvError as err:
        raise SpecError(spec.source, key, str(err)) from None
    if sp.simplify(composed.loss_x - problem.loss_x) != 0:
        raise SpecError(
            spec.source, key, f"composes to L = {composed.loss_x}, but [problem] gives "
            f"L = {problem.loss_x}"
        )  # fmt: skip
    return graph


def _composition_tex(spec: Spec, graph: FunctionGraph) -> str:
    p = spec.expression_problem("this report")
    out = ["\\subsection{Composition}\n", "The chain of maps (Figure~\\ref{fig:graph}):\n"]
    maps = []
    for name in graph.order():
        exprs = graph.map_of(name)
        if exprs is not None:
            maps += [(tex(sym), e) for sym, e in zip(graph.symbols(name), exprs)]
    out.append(equations(maps))
    out.append("and the Jacobian of each edge:\n")
    entries = []
    for dst in graph.order():
        for src in graph.inputs_of(dst):
            jac = graph.edge_jacobian(src, dst)
            top, bottom = tex(sp.Symbol(dst)), tex(sp.Symbol(src))
            entries.append((f"\\frac{{\\partial {top}}}{{\\partial {bottom}}}", jac))
    out.append(equations([(lhs, _squeeze(m)) for lhs, m in entries]))
    gauss_newton = p.jacobian.T * p.loss_yy.subs(p.at_P) * p.jacobian
    rest = (p.hessian - gauss_newton).applyfunc(sp.simplify)
    out.append(
        r"Newton's Hessian splits into the Gauss--Newton term "
        r"$J^\top (\partial^2 L/\partial y^2) J$ and a term "
        r"$\sum_k (\partial L/\partial y_k)\, \partial^2 y_k/\partial x^2$ that depends on the "
        r"curvature of the inner maps (the chapter's $\frac{d^2L}{dx^2} = "
        r"\frac{\partial^2L}{\partial y^2} (\frac{\partial y}{\partial x})^2 + "
        r"\frac{\partial L}{\partial y} \frac{\partial^2 y}{\partial x^2}$):" + "\n"
    )
    out.append(
        equations(
            [
                (r"J^\top \tfrac{\partial^2 L}{\partial y^2} J", _squeeze(gauss_newton)),
                (r"\textstyle\sum_k \tfrac{\partial L}{\partial y_k} \nabla^2 y_k", _squeeze(rest)),
            ]
        )
    )
    return "".join(out)


def _squeeze(m: sp.Matrix) -> sp.Basic:
    """A 1×1 matrix as its entry (reads better in a formula)."""
    return m[0, 0] if m.shape == (1, 1) else m
