"""A study in words and tables: the minima reached (with their loss) and each rule's outcome.

The same rows serve the terminal (:mod:`~scaleinv.cli.study`) and the report
(:func:`study_tex`). The :data:`~scaleinv.reports.study.LISTED` most visited minima get a
column each (``m1``, ``m2``, ...); runs to the other minima are summed in one column, and runs
that reached no minimum are counted by why (driver status, saddle, far outside the region).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from scaleinv.numeric import Status
from scaleinv.reports.study import LISTED, Study
from scaleinv.reports.study_ends import NO_MINIMUM_WORDS, SAME
from scaleinv.symbolic import Spec

__all__ = ["study_rows", "minima_rows", "minimum_values", "period_text", "study_intro"]
__all__ += ["study_tex", "RUNS", "FAILED_WIDTH"]

#: Header of the minima tables' last column.
RUNS = "share of all runs"
#: Wrap width of the "reached no minimum" column on the terminal (the table fits 100 columns).
FAILED_WIDTH = 28


def period_text(period: float, pi: str = "π") -> str:
    """``2π``, ``π``, ``π/2`` or the number.

    Examples
    --------
    >>> period_text(2 * np.pi), period_text(np.pi / 2), period_text(3.0)
    ('2π', 'π/2', '3')
    """
    for den in (1, 2, 3, 4, 6):
        num = period * den / np.pi
        if abs(num - round(num)) < 1e-9 and round(num) > 0:
            top = "" if round(num) == 1 else str(round(num))
            return f"{top}{pi}" + ("" if den == 1 else f"/{den}")
    return f"{period:.4g}"


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def _failures(study: Study, k: int) -> str:
    """``step limit: 12, saddle or maximum: 3``: the runs that reached no minimum, by why."""
    rule = study.rules[k]
    parts = [
        f"{status.words}: {n}"
        for status, n in sorted(rule.statuses.items())
        if status != Status.CONVERGED
    ]
    parts += [f"{w}: {np.sum(rule.outcome == c)}" for c, w in NO_MINIMUM_WORDS.items()
              if np.any(rule.outcome == c)]  # fmt: skip
    return ", ".join(parts) or "none"


def study_rows(study: Study) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the rule table (plain text; the caller escapes or prints)."""
    shown = study.listed
    others = len(study.minima) > shown
    heads = ["rule", *(f"m{k + 1}" for k in range(shown))]
    heads += ["other"] * others + ["steps 25/50/75 %", "reached no minimum"]
    rows = []
    for k, r in enumerate(study.rules):
        q = r.steps
        steps = "--" if np.isnan(q[1]) else " / ".join(f"{v:.0f}" for v in q)
        row = [r.label, *(_percent(r.share(m)) for m in range(shown))]
        row += [_percent(float(np.mean(r.outcome >= shown)))] * others
        rows.append([*row, steps, _failures(study, k)])
    return heads, rows


def minimum_values(study: Study) -> list[tuple[float, ...]]:
    """Each minimum's point, with values below the resolution of the study set to 0."""
    span = np.array([hi - lo for lo, hi in study.options.region])
    return [
        tuple(0.0 if abs(v) < 1e-3 * s else float(v) for v, s in zip(m.point, span))
        for m in study.minima
    ]


def minima_rows(
    study: Study,
    vector: Callable[[Sequence[float]], str] | None = None,
    value: Callable[[float], str] = lambda v: f"{v:.3g}",
) -> list[list[str]]:
    """Rows ``m1, point, loss, share of all runs`` of the listed minima, then ``other (k)``
    with the lowest loss among the rest; ``vector`` and ``value`` format points and losses."""
    vector = vector or (lambda m: "(" + ", ".join(f"{v:.4g}" for v in m) + ")")
    total = len(study.rules) * len(study.starts)
    values = minimum_values(study)
    rows = [
        [f"m{k + 1}", vector(values[k]), value(m.loss), _percent(m.runs / total)]
        for k, m in enumerate(study.minima[: study.listed])
    ]
    rest = study.minima[study.listed :]
    if rest:
        lowest = value(min(m.loss for m in rest))
        share = _percent(sum(m.runs for m in rest) / total)
        rows.append([f"other ({len(rest)})", "--", f"{lowest} (lowest)", share])
    return rows


def _periodic(study: Study, names: Sequence[str], pi: str, p: str = "P") -> str:
    """``, x modulo 2π (P is periodic in it)`` or ``""``."""
    periodic = [(x, t) for x, t in zip(names, study.periods) if t is not None]
    if not periodic:
        return ""
    by_period: dict[str, list[str]] = {}
    for x, t in periodic:
        by_period.setdefault(period_text(t, pi), []).append(x)
    which = ", ".join(f"{', '.join(xs)} modulo {t}" for t, xs in by_period.items())
    return f", {which} ({p} is periodic in {'it' if len(periodic) == 1 else 'them'})"


def _count(study: Study) -> str:
    found = len(study.minima)
    if not found:
        return "No run reached a minimum."
    text = f"The runs reached {found} minim{'um' if found == 1 else 'a'}"
    if found > study.listed:
        return text + f"; the {study.listed} most visited are listed, the rest summed as other."
    return text + "."


def study_intro(study: Study, names: Sequence[str]) -> list[str]:
    """Sentences (plain text) on how minima are told apart and how many were reached."""
    same = f"End points within {SAME:.0%} of the region of each other are one minimum"
    return [same + _periodic(study, names, "π") + ".", _count(study)]


def study_tex(study: Study, spec: Spec, figure: str = "") -> str:
    """The report section of a study: region, minima with their loss, the rule table."""
    from scaleinv.reports.latex import Latex, escape, number, table, tex, text_vector

    o = study.options
    xs = [tex(x) for x in spec.expression_problem("study_tex").inputs]
    region = r" \times ".join(f"[{lo:g}, {hi:g}]" for lo, hi in o.region)
    layout = escape(o.layout()).replace(" x ", r" $\times$ ")
    periodic = _periodic(study, [f"${x}$" for x in xs], r"$\pi$", "$P$")
    out = [
        "\\needlines{12}\\section{Many starts}\n",
        f"Every rule run from {layout} in $({', '.join(xs)}) \\in {region}$, for "
        f"up to {o.steps} steps; a run has converged when $|\\partial L/\\partial x| \\le "
        f"{number(o.tol)}$. A converged run ends at a minimum where the Hessian of $L$ has no "
        "negative eigenvalue and the point lies within one region width of the region. End "
        f"points within {SAME * 100:g}\\,\\% of the region of each other are one minimum"
        f"{periodic}. {escape(_count(study))}",
    ]
    if figure:
        out.append(f" Figure~\\ref{{{figure}}} shows where each start ends.")
    out.append("\n")
    rows = minima_rows(study, lambda m: text_vector(m, 4), lambda v: f"${number(v, 3)}$")
    if rows:
        heads = ["minimum", Latex(f"$({', '.join(xs)})$"), "loss", RUNS]
        cells = [[escape(r[0]), r[1], r[2], escape(r[3])] for r in rows]
        out.append(table(heads, cells, "l l l r"))
    heads, rows = study_rows(study)
    cells = [[escape(c) for c in row] for row in rows]
    shares = len(heads) - 3  # the m1, m2, ... and other columns: the last one gets the rest
    wide = 3.3 + 0.9 * (LISTED + 1 - shares)
    spec_cols = "l " + "r " * shares + f"l >{{\\raggedright\\arraybackslash}}p{{{wide:.1f}cm}}"
    out.append(table(heads, cells, spec_cols))
    return "".join(out)
