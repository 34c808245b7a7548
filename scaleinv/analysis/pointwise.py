r"""Derivatives of a problem at one point, in floats, without its dense symbolic derivatives.

Each output ``P_k`` is differentiated only with respect to the inputs it contains (a diffusion
step's output has three), each loss term only with respect to the outputs it contains, and the
results are evaluated at the point. The cost grows with the number of nonzero entries, not with
``n²``, so the hypotheses of a theorem (``J`` or ``H`` invertible) and the counterexamples of a
refutation can be checked on problems with hundreds of inputs:

.. math:: H = J^T L_{yy} J + \sum_k L_{y_k} \nabla^2 P_k, \qquad g = J^T L_y.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp

from scaleinv.errors import ProblemError
from scaleinv.symbolic import Problem

__all__ = ["PointDerivatives", "derivatives_at"]


@dataclass(frozen=True)
class PointDerivatives:
    """``P``, ``J``, ``L_y``, ``L_yy``, the gradient ``g`` and Hessian ``H`` at one point."""

    P: np.ndarray
    J: np.ndarray
    L_y: np.ndarray
    L_yy: np.ndarray
    g: np.ndarray
    H: np.ndarray


def _number(expr: sp.Expr, at: Mapping[sp.Symbol, sp.Expr], what: str) -> float:
    value = sp.sympify(expr).xreplace(at)
    try:
        return float(value if value.is_Number else sp.N(value, 20))
    except TypeError:
        raise ProblemError(f"{what} is not a real number at the point: {value}") from None


def derivatives_at(problem: Problem, values: Mapping[sp.Symbol, float]) -> PointDerivatives:
    """Evaluate the derivatives of ``problem`` where ``values`` (inputs and params) say.

    Params missing from ``values`` take their defaults.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0*x1", "x1"], target=[1, 0])
    >>> d = derivatives_at(p, {p.inputs[0]: 2.0, p.inputs[1]: 3.0})
    >>> d.J.tolist(), d.g.tolist(), d.H.tolist()
    ([[3.0, 2.0], [0.0, 1.0]], [15.0, 13.0], [[9.0, 11.0], [11.0, 5.0]])
    """
    at = {s: sp.Float(v, 20) for s, v in problem.params.items()}
    at.update({s: sp.Float(v, 20) for s, v in values.items()})
    n, m = problem.n, problem.m
    column = {x: j for j, x in enumerate(problem.inputs)}
    value = np.array([_number(e, at, f"output {k}") for k, e in enumerate(problem.outputs)])
    ys = problem.output_symbols
    y_at = {**at, **{y: sp.Float(v, 20) for y, v in zip(ys, value)}}
    l_y, l_yy = _loss_derivatives(problem, y_at)
    jac = np.zeros((m, n))
    curvature = np.zeros((n, n))
    for k, expr in enumerate(problem.outputs):
        own = sorted(expr.free_symbols & set(column), key=column.__getitem__)
        firsts = [sp.diff(expr, x) for x in own]
        for x, d in zip(own, firsts):
            jac[k, column[x]] = _number(d, at, f"∂P_{k}/∂{x}")
        if l_y[k] == 0:
            continue
        for a, (xa, d) in enumerate(zip(own, firsts)):
            for xb in own[a:]:
                second = _number(sp.diff(d, xb), at, f"∂²P_{k}")
                i, j = column[xa], column[xb]
                curvature[i, j] += l_y[k] * second
                if i != j:
                    curvature[j, i] += l_y[k] * second
    return PointDerivatives(value, jac, l_y, l_yy, jac.T @ l_y, jac.T @ l_yy @ jac + curvature)


def _loss_derivatives(problem: Problem, at: Mapping[sp.Symbol, sp.Expr]) -> tuple:
    """``∂L/∂y`` and ``∂²L/∂y²`` at a point, term by term of the (expanded) loss."""
    ys = problem.output_symbols
    index = {y: k for k, y in enumerate(ys)}
    m = len(ys)
    l_y, l_yy = np.zeros(m), np.zeros((m, m))
    for term in sp.Add.make_args(sp.expand(problem.loss)):
        own = sorted(term.free_symbols & set(index), key=index.__getitem__)
        for a, ya in enumerate(own):
            d = sp.diff(term, ya)
            l_y[index[ya]] += _number(d, at, f"∂L/∂{ya}")
            for yb in own[a:]:
                second = _number(sp.diff(d, yb), at, "∂²L/∂y²")
                i, j = index[ya], index[yb]
                l_yy[i, j] += second
                if i != j:
                    l_yy[j, i] += second
    return l_y, l_yy
