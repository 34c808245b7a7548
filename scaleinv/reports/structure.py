r"""What a report says about the shape of a problem: its target, its sparsity, each rule's step.

* :func:`loss_minimiser` — the ``y`` that minimises the spec's own loss (``∂L/∂y = 0``), or
  why there is no single one;
* :func:`sparsity_of` — the nonzero patterns of ``J`` and ``∂²L/∂x²`` (``problem.sparsity``
  where the symbolic layer offers it, else computed here from the dense matrices);
* :data:`STEP_FORMULAS` — each rule's update in structured form
  (``Δx = −η H⁻¹ ∂L/∂x``), written with the names the report defines;
* :func:`hessian_work` — how many products of derivative entries the chain rule needs for
  ``H``, read off which inputs each output contains (no derivative taken): what a report's
  size limit is measured in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import with_budget

__all__ = ["Target", "loss_minimiser", "Sparsity", "sparsity_of", "STEP_FORMULAS"]
__all__ += ["hessian_work"]

#: Largest size of ``∂²L/∂y²`` whose eigenvalues are computed exactly.
_EXACT_EIGEN = 12

#: Each rule's step, structured (LaTeX; ``J^{+}`` is the pseudo-inverse when J is not square).
STEP_FORMULAS = {
    "gd": r"\Delta x = -\eta\, \frac{\partial L}{\partial x}",
    "newton": r"\Delta x = -\eta\, H^{-1} \frac{\partial L}{\partial x}",
    "ig": r"\Delta x = J^{-1} \Delta y, \quad \Delta y = -\eta \left(\frac{\partial^2 L}"
    r"{\partial y^2}\right)^{-1} \frac{\partial L}{\partial y}",
    "pg": r"x + \Delta x = \mathcal{P}^{-1}(y + \Delta y;\, x), \quad \Delta y = -\eta \left("
    r"\frac{\partial^2 L}{\partial y^2}\right)^{-1} \frac{\partial L}{\partial y}",
    "hig": r"\Delta x = -\eta\, V \Sigma^{-\beta} U^\top \frac{\partial L}{\partial y}, \quad "
    r"J = U \Sigma V^\top",
}


@dataclass(frozen=True)
class Target:
    """Where the spec's loss is smallest in ``y``.

    Attributes
    ----------
    point : Matrix or None
        The unique minimiser ``y*`` (m×1), when there is one.
    note : str
        Otherwise, in words: a set of minimisers, no stationary point, undecided.
    where : Expr or None
        For a set of minimisers, the expression that vanishes on it.
    unused : tuple of Symbol
        The outputs ``L`` does not depend on (the reason the minimiser is not unique).
    """

    point: sp.Matrix | None
    note: str = ""
    where: sp.Expr | None = None
    unused: tuple[sp.Symbol, ...] = ()


def loss_minimiser(problem: Problem, steps: int = 1_000_000) -> Target:
    """Solve ``∂L/∂y = 0`` for the spec's own loss and keep the solution if it is a minimum.

    Examples
    --------
    >>> p = Problem.from_strings(["x"], ["c*x**3"], loss="(y0 - z_star)**2/2",
    ...                          params={"c": 2, "z_star": 16})
    >>> loss_minimiser(p).point.T
    Matrix([[z_star]])
    >>> q = Problem.from_strings(["x0", "x1"], ["x0", "x1"], loss="(y0 - y1)**2")
    >>> t = loss_minimiser(q)
    >>> t.note, t.where
    ('not unique: L is smallest on a set', y0 - y1)
    """
    ys = list(problem.output_symbols)
    grad = [g for g in problem.loss_y if g != 0]
    if len(grad) < len(ys):
        free = [y for y, g in zip(ys, problem.loss_y) if g == 0]
        note = f"not unique: L does not depend on {', '.join(map(str, free))}"
        return Target(None, note, unused=tuple(free))
    try:
        found = with_budget(
            functools.partial(sp.solve, grad, ys, dict=True), steps, "minimiser of L in y"
        )
    except Exception:  # noqa: BLE001 - a failed solve only means we cannot name the target
        return Target(None, "not found in closed form (∂L/∂y = 0 could not be solved)")
    complete = [s for s in found if set(s) >= set(ys)]
    if len(found) == 1 and complete:
        point = sp.Matrix([complete[0][y] for y in ys])
        if _is_minimum(problem, point):
            return Target(point)
        return Target(None, "L has a stationary point in y that is not a minimum")
    if found and not complete:
        where = None
        if len(found) == 1 and len(found[0]) == 1:
            ((y, value),) = found[0].items()
            where = y - value
        return Target(None, "not unique: L is smallest on a set", where)
    if not found:
        return Target(None, "L has no stationary point in y (it is unbounded or has no minimum)")
    return Target(None, f"not unique: ∂L/∂y = 0 has {len(found)} solutions")


def _is_minimum(problem: Problem, point: sp.Matrix) -> bool:
    """Whether ``∂²L/∂y²`` is positive definite at ``point`` (True when it cannot tell).

    A diagonal ``∂²L/∂y²`` (every sum-of-squares loss) is decided exactly by the signs of its
    entries, at any size; a small full one by its exact eigenvalues; a large numeric one by
    its floating-point eigenvalues (an exact eigen-decomposition of a 256×256 matrix takes
    minutes).
    """
    at = {**dict(zip(problem.output_symbols, point)), **problem.params}
    entries = {k: sp.sympify(v).subs(at) for k, v in problem.sparse.loss_yy.items()}
    if all(i == j for i, j in entries):
        signs = [v.is_positive for v in entries.values()]
        return len(entries) == problem.m and False not in signs
    if problem.m <= _EXACT_EIGEN:
        hess = sp.zeros(problem.m, problem.m)
        for (i, j), v in entries.items():
            hess[i, j] = v
        try:
            return bool(all(ev > 0 for ev in hess.evalf().eigenvals()))
        except TypeError:  # symbolic eigenvalues: cannot tell, trust the solve
            return True
    if not all(v.is_number for v in entries.values()):
        return True
    dense = np.zeros((problem.m, problem.m))
    for (i, j), v in entries.items():
        dense[i, j] = float(v)
    return bool(np.linalg.eigvalsh(dense)[0] > 0)


@dataclass(frozen=True)
class Sparsity:
    """Nonzero patterns: sorted ``(row, col)`` pairs of ``J`` (m×n) and the Hessian (n×n)."""

    jacobian: tuple[tuple[int, int], ...]
    hessian: tuple[tuple[int, int], ...]
    jacobian_shape: tuple[int, int]
    hessian_shape: tuple[int, int]

    @property
    def density(self) -> float:
        """Fraction of nonzero Hessian entries."""
        rows, cols = self.hessian_shape
        return len(self.hessian) / (rows * cols)


def sparsity_of(problem: Problem) -> Any:
    """``problem.sparsity`` where the symbolic layer has it, else the patterns computed here.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1", "x2"], ["x0*x1", "x2"])
    >>> s = sparsity_of(p)
    >>> s.jacobian, s.hessian
    (((0, 0), (0, 1), (1, 2)), ((0, 0), (0, 1), (1, 0), (1, 1), (2, 2)))
    """
    found = getattr(problem, "sparsity", None)
    if found is not None:
        return found
    jac, hess = problem.jacobian, problem.hessian
    return Sparsity(
        tuple((i, j) for i in range(jac.rows) for j in range(jac.cols) if jac[i, j] != 0),
        tuple((i, j) for i in range(hess.rows) for j in range(hess.cols) if hess[i, j] != 0),
        jac.shape,
        hess.shape,
    )


def hessian_work(problem: Problem, limit: int | None = None) -> int:
    """Products of derivative entries in ``H = Jᵀ L_yy J + Σ_k L_{y_k} ∇²P_k``, an upper bound
    read off the inputs each output contains and the outputs each loss term couples.

    Output ``k`` with ``d_k`` inputs contributes ``d_k²`` second derivatives; a loss term
    coupling the outputs ``S`` contributes ``(Σ_{k∈S} d_k)²`` products to ``Jᵀ L_yy J``. A
    dense problem of n inputs costs about ``2 n³`` (32 inputs: 65 536), a 256-point stencil
    ``18 n``. Counting stops once it passes ``limit``.

    Examples
    --------
    >>> stencil = Problem.from_strings(
    ...     [f"x{i}" for i in range(8)],
    ...     [f"x{i} + (x{(i + 1) % 8} - 2*x{i} + x{(i - 1) % 8})/10" for i in range(8)])
    >>> hessian_work(stencil)
    144
    >>> dense = Problem.from_strings(["a", "b"], ["a*b", "a + b"], loss="(y0 + y1)**2")
    >>> hessian_work(dense)
    24
    """
    inputs = set(problem.inputs)
    sizes = [len(e.free_symbols & inputs) for e in problem.outputs]
    work = 0
    for size in sizes:
        work += size * size
        if limit is not None and work > limit:
            return work
    index = {y: k for k, y in enumerate(problem.output_symbols)}
    _, loss = problem.loss.as_coeff_Mul()  # ½ Σ … : the sum's terms, not one product
    for term in sp.Add.make_args(loss):
        coupled = sum(sizes[index[y]] for y in term.free_symbols if y in index)
        work += coupled * coupled
        if limit is not None and work > limit:
            return work
    return work
