"""One paragraph of a report: does PG's nearest-branch choice survive the spec's scalings?

PG is invariant branch by branch under every invertible input map; which branch the local
inverse *picks* depends on distances in the current coordinates. The paragraph states that and
gives :func:`~scaleinv.analysis.branch_selection.branch_selection`'s verdict for each input
scaling of the spec, as :func:`~scaleinv.reports.spec_verdicts.spec_verdicts` found it.
"""

from __future__ import annotations

from scaleinv.reports.latex import prose
from scaleinv.reports.spec_verdicts import SpecVerdicts
from scaleinv.reports.verdicts import transform_tex
from scaleinv.symbolic import Spec

__all__ = ["branch_selection_tex"]

_INTRO = (
    r"PG is invariant branch by branch under every invertible linear input map (theorem "
    r"pg-input-linear): the solutions of $\mathcal{P}(x) = y + \Delta y$ in $x$ and in $u$ "
    r"correspond one to one. Its local inverse then takes the solution nearest to the current "
    r"point, and distance is measured in the current coordinates. The choice is the same in "
    r"$u$ and in $x$ exactly when distances in $u$ are a fixed multiple of those in $x$ "
    r"($A^\top A = \lambda I$: isotropic scalings, rotations), or, under a diagonal scaling, "
    r"when the branches are a product of per-coordinate choices such as "
    r"$(\pm\sqrt{y_0}, \pm\sqrt{y_1})$; otherwise a scaling can make a different branch the "
    r"nearest one."
)


def branch_selection_tex(spec: Spec, verdicts: SpecVerdicts) -> str:
    r"""A ``\paragraph`` on PG's branch choice, or ``""`` when the spec runs no PG.

    It reads the nearest-branch verdicts of ``verdicts`` (one PG rule's: the choice does not
    depend on the step size)."""
    rows = verdicts.of("nearest branch")
    first = rows[0].label if rows else None
    found = []
    for v in rows:
        if v.label != first:
            continue
        why = v.reason if v.report is None else v.report.reason
        verdict = "not decided" if v.report is None else v.verdict
        found.append(f"{transform_tex(v.transform, spec)}: {verdict} ({prose(why)}).")
    if not found:
        return ""
    text = " ".join([_INTRO, "For this problem:", *found])
    return "\\paragraph{PG's branch choice.} " + text + "\n"
