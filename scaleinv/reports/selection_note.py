"""One paragraph of a report: does PG's nearest-branch choice survive the spec's scalings?

PG is invariant branch by branch under every invertible input map; which branch the local
inverse *picks* depends on distances in the current coordinates. The paragraph states that and
gives :func:`~scaleinv.analysis.branch_selection.branch_selection`'s verdict for each input
scaling of the spec.
"""

from __future__ import annotations

from scaleinv.analysis.branch_selection import branch_selection
from scaleinv.analysis.transforms import OutputScaling
from scaleinv.errors import ScaleinvError
from scaleinv.reports.latex import escape
from scaleinv.reports.verdicts import transforms_of
from scaleinv.symbolic import Spec

__all__ = ["branch_selection_tex"]

_INTRO = (
    "PG is invariant branch by branch under every invertible linear input map (theorem "
    "pg-input-linear): the solutions of P(x) = y + Δy in x and in u correspond one to one. "
    "Its local inverse then takes the solution nearest to the current point, and distance is "
    "measured in the current coordinates. The choice is the same in u and in x exactly when "
    "distances in u are a fixed multiple of those in x (Aᵀ A = λ I: isotropic scalings, "
    "rotations), or, under a diagonal scaling, when the branches are a product of "
    "per-coordinate choices such as (±√y0, ±√y1); otherwise a scaling can make a different "
    "branch the nearest one."
)


def branch_selection_tex(spec: Spec) -> str:
    r"""A ``\paragraph`` on PG's branch choice, or ``""`` when the spec runs no PG."""
    if not any(r.name == "pg" for r in spec.rules):
        return ""
    found = []
    for transform in transforms_of(spec):
        if isinstance(transform, OutputScaling):
            continue  # outputs: the inputs and their distances do not change
        try:
            r = branch_selection(spec.problem, transform)
            found.append(f"{transform.describe()}: {r.verdict.value} ({r.reason}).")
        except ScaleinvError as err:
            found.append(f"{transform.describe()}: not decided ({err}).")
    text = " ".join([_INTRO, "For this problem:", *found])
    return "\\paragraph{PG's branch choice.} " + escape(text) + "\n"
