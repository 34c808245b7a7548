"""A study of an indexed problem: every rule from many perturbations of the spec's start.

A region per input (``[study] region``) does not scale to a grid of 10⁴–10⁶ points, so an
indexed spec's ``[study]`` table names how far the starts spread around the first start of
``[run]``::

    [study]
    starts = 20      # how many starts
    spread = 0.1     # each point of each field moved by a uniform number in [-spread, spread]
    seed = 0         # of the random perturbations
    steps = 50       # step limit (default: the spec's [run] steps)
    tol = 1e-8       # |∂L/∂x| at which a run has converged

A converged run ends at a minimum when the Hessian of ``L`` there has no negative eigenvalue:
its inertia is read from a sparse LU (``LDLᵀ`` without row pivoting, Sylvester's law), never
from a dense matrix. End points whose root-mean-square distance is within :data:`SAME` of the
spread (or of the start's size, if larger) are one minimum. The result has the shape of
:class:`~scaleinv.reports.study.Study`, so the same rule table prints it; minima are shown by
their norm and first entries, never as whole vectors.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaleinv.errors import NumericInverseWarning, ScaleinvError, SpecError
from scaleinv.numeric import Status, compile_problem, minimize
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.content import rule_labels
from scaleinv.reports.study import LISTED, RuleStudy, rule_studies
from scaleinv.reports.study_ends import NOT_A_MINIMUM, NOT_CONVERGED, SAME, Minimum
from scaleinv.symbolic import IndexedProblem, Spec
from scaleinv.symbolic.spec import INDEXED_STUDY_KEYS, check_keys, check_run_limits

__all__ = ["IndexedStudyOptions", "IndexedStudy", "indexed_study_options"]
__all__ += ["run_indexed_study", "negative_eigenvalues"]


@dataclass(frozen=True)
class IndexedStudyOptions:
    """The validated ``[study]`` table of an indexed spec."""

    starts: int
    spread: float
    seed: int
    steps: int
    tol: float
    scale: float  # the distance unit minima are told apart in: max(spread, rms of the start)

    def layout(self) -> str:
        return (
            f"{self.starts} starts: the spec's start with every point moved by a uniform "
            f"number in [-{self.spread:g}, {self.spread:g}] (seed {self.seed})"
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def indexed_study_options(spec: Spec, starts: int | None = None) -> IndexedStudyOptions:
    """Validate ``[study]`` of an indexed spec; ``starts`` (``--starts``) overrides its count."""
    table, src = dict(getattr(spec, "study", None) or {}), spec.source
    if not table and starts is None:
        raise SpecError(src, "study", "the spec has no [study] table (starts = 20, spread = 0.1)")
    check_keys(table, INDEXED_STUDY_KEYS, src, "study")
    if not spec.rules:
        raise SpecError(src, "rules", 'a study compares rules; add one, e.g. [[rules]] name = "gd"')
    count = starts if starts is not None else table.get("starts", 20)
    steps, seed = table.get("steps", spec.steps), table.get("seed", 0)
    given = ("", "--starts") if starts is not None else (src, "study.starts")
    for (where, key), value, low in (
        (given, count, 1), ((src, "study.steps"), steps, 1), ((src, "study.seed"), seed, 0)
    ):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SpecError(where, key, f"must be an integer ≥ {low}, got {value!r}")
    check_run_limits(steps, count, src, "study")
    spread, tol = table.get("spread", 0.1), table.get("tol", spec.tol or 1e-6)
    for key, value in (("spread", spread), ("tol", tol)):
        if not (_number(value) and value > 0):
            raise SpecError(src, f"study.{key}", f"must be a finite positive number, got {value!r}")
    start = np.asarray(spec.starts[0], dtype=float)
    scale = max(float(spread), float(np.sqrt(np.mean(start**2))))
    return IndexedStudyOptions(count, float(spread), seed, steps, float(tol), scale)


@dataclass(frozen=True)
class IndexedStudy:
    """Every rule of an indexed spec from many starts (the fields :func:`study_rows` reads)."""

    options: IndexedStudyOptions
    starts: np.ndarray
    minima: tuple[Minimum, ...]
    rules: tuple[RuleStudy, ...]
    problem: IndexedProblem

    @property
    def listed(self) -> int:
        return min(LISTED, len(self.minima))


def negative_eigenvalues(matrix: Any) -> int | None:
    """How many eigenvalues of the symmetric sparse ``matrix`` are clearly negative, from the
    pivots of a sparse LU with a symmetric ordering and no row pivoting (``LDLᵀ``); None
    when the factorization fails (singular)."""
    import scipy.sparse.linalg as sla

    try:
        lu = sla.splu(
            matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )  # fmt: skip
    except RuntimeError:
        return None
    if not np.array_equal(lu.perm_r, lu.perm_c):  # a row was pivoted: no LDLᵀ inertia
        return None
    pivots = lu.U.diagonal()
    return int(np.sum(pivots < -1e-9 * max(1.0, float(np.abs(pivots).max()))))


def _classify(
    problem: IndexedProblem, ends: np.ndarray, converged: np.ndarray, scale: float
) -> tuple[np.ndarray, tuple[Minimum, ...]]:
    kernels = compile_problem(problem)
    outcome = np.where(converged, NOT_A_MINIMUM, NOT_CONVERGED)
    losses = kernels.loss(ends)
    groups: list[list[int]] = []
    for k in np.flatnonzero(converged):
        for group in groups:
            if np.sqrt(np.mean((ends[k] - ends[group[0]]) ** 2)) <= SAME * scale:
                group.append(int(k))
                break
        else:
            groups.append([int(k)])
    minima = []
    for group in groups:
        best = min(group, key=lambda k: losses[k])
        negative = negative_eigenvalues(kernels.hessian_matrix(ends[best]))
        if negative is None or negative == 0:  # singular counts as flat, not as a saddle
            minima.append((group, best))
    minima.sort(key=lambda gb: (-len(gb[0]), losses[gb[1]]))
    for rank, (group, _) in enumerate(minima):
        outcome[group] = rank
    found = tuple(
        Minimum(tuple(float(v) for v in ends[best]), float(losses[best]), len(group))
        for group, best in minima
    )
    return outcome, found


def run_indexed_study(spec: Spec, starts: int | None = None) -> IndexedStudy:
    """Run every rule of the indexed ``spec`` from the perturbed starts (see the module)."""
    problem = spec.problem
    if not isinstance(problem, IndexedProblem):
        raise SpecError(spec.source, "problem", "is not indexed; run_study studies it")
    o = indexed_study_options(spec, starts)
    rng = np.random.default_rng(o.seed)
    base = np.asarray(spec.starts[0], dtype=float)
    x0 = base + rng.uniform(-o.spread, o.spread, size=(o.starts, base.size))
    rules = [make_rule(r) for r in spec.rules]
    ends, statuses, taken, engines = [], [], [], []
    for rule in rules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NumericInverseWarning)
                t = minimize(problem, rule, x0, o.steps, o.tol, record="last")
        except ScaleinvError as err:
            raise ScaleinvError(f"study: {rule.label}: {err}") from None
        ends.append(t.x[-1])
        statuses.append(np.asarray(t.status).ravel())
        taken.append(np.asarray(t.steps_taken).ravel())
        engines.append(t.engine)
    status = np.concatenate(statuses)
    outcome, minima = _classify(problem, np.concatenate(ends), status == Status.CONVERGED, o.scale)
    found = rule_studies(rule_labels(spec.rules, rules), outcome, statuses, taken, engines)
    return IndexedStudy(o, x0, minima, found, problem)


def indexed_study_text(study: IndexedStudy, title: str, seconds: float) -> str:
    """What ``scaleinv study`` prints: the minima by norm and first entries, the rule table."""
    import textwrap

    from scaleinv.reports.indexed_text import by_field
    from scaleinv.reports.study_text import FAILED_WIDTH, RUNS, study_rows
    from scaleinv.reports.text import WIDTH, format_table

    o = study.options
    head = (
        f"{len(study.rules)} rule(s) from {o.layout()}, up to {o.steps} steps; converged when "
        f"|dL/dx| <= {o.tol:g} ({seconds:.1f} s). A converged run ends at a minimum where the "
        "Hessian of L has no negative eigenvalue (inertia of a sparse LDLᵀ); end points within "
        f"{SAME:.0%} of {o.scale:.3g} (root-mean-square) of each other are one minimum. "
    )
    found = len(study.minima)
    head += f"The runs reached {found} minim{'um' if found == 1 else 'a'}." if found else (
        "No run reached a minimum.")  # fmt: skip
    lines = [title, "", textwrap.fill(head, WIDTH)]
    total = len(study.rules) * len(study.starts)
    fields = [by_field(study.problem, np.array(m.point), 3, keep=2) for m in study.minima]
    rows = [
        [f"m{k + 1}", f"{np.linalg.norm(m.point):.4g}", *(v for _, v in fields[k]),
         f"{m.loss:.3g}", f"{m.runs / total:.0%}"]
        for k, m in enumerate(study.minima[: study.listed])
    ]  # fmt: skip
    if rows:
        heads = ["minimum", "|x|", *(f for f, _ in fields[0]), "loss", RUNS]
        lines += ["", format_table(heads, rows)]
    heads, table = study_rows(study)  # type: ignore[arg-type]
    lines += ["", format_table(heads, table, wrap={len(heads) - 1: FAILED_WIDTH})]
    return "\n".join(lines)


def indexed_study_tex(study: IndexedStudy) -> str:
    """The report section of an indexed study: how the starts spread, minima, rule table."""
    from scaleinv.reports.latex import Latex, escape, number, table
    from scaleinv.reports.study_text import RUNS, study_rows

    o = study.options
    found = len(study.minima)
    out = [
        "\\needlines{12}\\section{Many starts}\n",
        f"Every rule run from {escape(o.layout())}, for up to {o.steps} steps; a run has "
        f"converged when $|\\partial L/\\partial x| \\le {number(o.tol)}$. A converged run ends "
        "at a minimum where the Hessian of $L$ has no negative eigenvalue (the inertia of a "
        f"sparse $LDL^\\top$); end points within {SAME * 100:g}\\,\\% of ${number(o.scale)}$ "
        "(root-mean-square distance) are one minimum. "
        + (f"The runs reached {found} minim{'um' if found == 1 else 'a'}.\n" if found
           else "No run reached a minimum.\n")
    ]  # fmt: skip
    total = len(study.rules) * len(study.starts)
    rows = [
        [f"m{k + 1}", f"${number(float(np.linalg.norm(m.point)))}$",
         f"$[{number(min(m.point), 3)}, {number(max(m.point), 3)}]$", f"${number(m.loss, 3)}$",
         escape(f"{m.runs / total:.0%}")]
        for k, m in enumerate(study.minima[: study.listed])
    ]  # fmt: skip
    if rows:
        heads = ["minimum", Latex("$|x|$"), Latex("range of $x$"), "loss", RUNS]
        out.append(table(heads, rows, "l r l l r"))
    heads, cells = study_rows(study)  # type: ignore[arg-type]
    cells = [[escape(c) for c in row] for row in cells]
    spec_cols = "l " + "r " * (len(heads) - 3) + "l >{\\raggedright\\arraybackslash}p{4.5cm}"
    out.append(table(heads, cells, spec_cols))
    return "".join(out)
