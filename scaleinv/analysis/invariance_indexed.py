"""Scale invariance of an indexed problem's rules, by the theorem route in stencil form.

The transform is a scaling per field, ``u = s_u ũ`` (``x = A ũ`` with ``A`` diagonal, one
factor per field): the spec's generic transform, at any grid size. The theorems of
:mod:`scaleinv.analysis.theorems` are matrix-level statements about ``x = A u + b``; what
they need of the problem is checked here without expanding it:

* ``A`` invertible: every ``s_u ≠ 0`` (true of a scaling);
* ``P`` and ``L`` analytic: no kink or case split in a point formula
  (:data:`~scaleinv.analysis.theorem_route.NOT_SMOOTH`);
* ``H`` (Newton) or ``J`` (IG, PG; square) invertible at a sample point, hence generically:
  a sparse LU of the matrix assembled from the stencil at the spec's start, with a
  condition estimate.

GD's theorem says it is invariant only when ``A Aᵀ = I``: the refutation is a concrete
scaling (``s = 2`` on the first field) at the start, where the mapped-back GD step is
evaluated with the problem's gradient kernel — once as ``Δx = −η ∇L(x)`` and once as
``A Δũ = −η A Aᵀ ∇L(x)`` — and the two differ. HIG and BFGS have no theorem here: undecided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scaleinv.analysis.theorem_route import NOT_SMOOTH
from scaleinv.analysis.theorems import theorem
from scaleinv.analysis.verdict import Verdict
from scaleinv.numeric import compile_problem

if TYPE_CHECKING:
    from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["IndexedInvariance", "field_scaling_invariance", "TRANSFORM_TEXT"]

#: The transform, in words.
TRANSFORM_TEXT = "inputs scaled per field, u = s_u ũ"
#: A sample matrix whose 1-norm condition estimate exceeds this counts as singular.
_COND = 1e12
#: Relative gap of GD's two mapped-back steps that refutes invariance.
_CLEAR = 1e-6


@dataclass(frozen=True)
class IndexedInvariance:
    """The verdict for one rule: ``theorem`` is the id applied (or ""), ``argument`` the
    reasons, one per line; ``gap`` the relative difference of GD's counterexample."""

    rule: str
    verdict: Verdict
    theorem: str
    argument: tuple[str, ...]
    gap: float | None = None

    @property
    def holds(self) -> bool | None:
        return {Verdict.PROVED: True, Verdict.REFUTED: False}.get(self.verdict)


def _not_smooth(problem: IndexedProblem) -> list[str]:
    found = set()
    for formula in problem.outputs:
        for kind in NOT_SMOOTH:
            if formula.has(kind):
                found.add(kind.__name__)
    return sorted(found)


def _condition(matrix: Any) -> float:
    """A 1-norm condition estimate from a sparse LU (inf when singular)."""
    import scipy.sparse.linalg as sla

    try:
        lu = sla.splu(matrix.tocsc())
    except RuntimeError:  # "Factor is exactly singular"
        return float("inf")
    n = matrix.shape[0]
    inverse = sla.LinearOperator((n, n), matvec=lu.solve, rmatvec=lambda v: lu.solve(v, "T"))
    norm = float(abs(matrix).sum(axis=0).max())
    return norm * float(sla.onenormest(inverse))


def field_scaling_invariance(
    problem: IndexedProblem, rule: str, point: np.ndarray, eta: float = 0.1
) -> IndexedInvariance:
    """Is ``rule`` invariant under a scaling per field (see the module)? ``point`` is the
    flat sample point (the spec's start); ``eta`` GD's step size for the counterexample."""
    kernels = compile_problem(problem)
    x = np.asarray(point, dtype=np.float64)
    if rule == "gd":
        return _gd(problem, kernels, x, eta)
    if rule not in ("newton", "ig", "pg"):
        why = f"no invariance theorem for {rule} is applied to indexed problems"
        return IndexedInvariance(rule, Verdict.UNDECIDED, "", (why,))
    found = theorem(f"{rule}-input-linear")
    lines = [f"theorem {found.id}: {found.statement}", "A = diag(s_u I) is invertible (s_u ≠ 0)"]
    kinks = _not_smooth(problem)
    if kinks:
        lines.append(f"P is not analytic (it uses {', '.join(kinks)}): the theorem needs it")
        return IndexedInvariance(rule, Verdict.UNDECIDED, found.id, tuple(lines))
    lines.append("P and L are analytic (no kink or case split in the point formulas)")
    if rule == "newton":
        name, matrix = "H", kernels.hessian_matrix(x)
    elif problem.m != problem.n:
        lines.append(f"J is {problem.m}×{problem.n}, not square: {rule}'s theorem needs J⁻¹")
        return IndexedInvariance(rule, Verdict.UNDECIDED, found.id, tuple(lines))
    else:
        name, matrix = "J", kernels.jacobian_matrix(x)
    cond = _condition(matrix)
    where = f"at the start ({problem.n}×{problem.n}, {matrix.nnz} stored entries, sparse LU)"
    if not np.isfinite(cond) or cond > _COND:
        lines.append(f"{name} is singular or nearly so {where}: condition ≈ {cond:.3g}")
        return IndexedInvariance(rule, Verdict.UNDECIDED, found.id, tuple(lines))
    lines.append(f"{name} is invertible {where}: condition ≈ {cond:.3g}, hence generically")
    return IndexedInvariance(rule, Verdict.PROVED, found.id, tuple(lines))


def _gd(problem: IndexedProblem, kernels: Any, x: np.ndarray, eta: float) -> IndexedInvariance:
    found = theorem("gd-input-linear")
    lines = [f"theorem {found.id}: {found.statement}"]
    g = kernels.gradient(x)
    if not np.any(g):
        x = x + np.random.default_rng(0).normal(scale=0.1, size=x.shape)
        g = kernels.gradient(x)
        lines.append("the gradient vanishes at the start: sampled near it instead")
    scale = np.ones(problem.n)
    scale[: problem.points] = 2.0  # s = 2 on the first field, 1 on the others
    step = -eta * g  # Δx
    mapped = scale * (-eta * scale * g)  # A Δũ with Δũ = −η Aᵀ ∇L(x)
    gap = float(np.linalg.norm(mapped - step)) / max(float(np.linalg.norm(step)), 1e-300)
    field = problem.fields[0]
    lines.append(
        f"counterexample s_{field} = 2 (A Aᵀ ≠ I): at the start |A Δũ − Δx|/|Δx| = {gap:.3g} "
        f"(η = {eta:g}, gradient kernel)"
    )
    verdict = Verdict.REFUTED if gap > _CLEAR else Verdict.UNDECIDED
    return IndexedInvariance("gd", verdict, found.id, tuple(lines), gap)
