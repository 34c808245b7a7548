r"""Invariance theorems at the level of the update formulas, derived with generic matrices.

A problem-level invariance question (:func:`scaleinv.analysis.invariance.scale_invariance`)
is about one ``P``; the answer for a *linear* transform does not depend on ``P`` or on its
size. This module derives that answer once, by SymPy matrix algebra on ``MatrixSymbol`` s of
symbolic sizes ``n`` (inputs) and ``m`` (outputs): the gradient ``g``, the Hessian ``H`` of
``L(P(x))``, the Jacobian ``J``, the loss's ``L_y`` and ``L_yy`` at the current point, an
invertible input map ``A`` (``x = A u + b``) or output map ``B`` (``P -> B P``, the loss
``L'(y') = κ L(B⁻¹ y')``). The transformed quantities are not asserted but obtained by
differentiating second-order models in the new variables (``g' = Aᵀ g``, ``H' = Aᵀ H A``,
``J' = J A``; ``J' = B J``, ``L'_y = κ B⁻ᵀ L_y`` …), the updates are built from them, mapped
back, and their difference simplified:

.. math:: A\,\Delta u_{QN} - \Delta x_{QN}
   = -\eta A (A^T H A)^{-1} A^T g + \eta H^{-1} g = 0, \qquad
   A\,\Delta u_{GD} - \Delta x_{GD} = -\eta (A A^T - I)\, g.

PG is decided by its defining property ``P(x + Δx) = y + Δy``: the residual of the
transformed defining equation is an invertible multiple of the original one, so both select
the same solution set (branch by branch; which branch is *nearest* is another question, see
:mod:`scaleinv.analysis.branch_selection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import sympy as sp

from scaleinv.analysis.verdict import Step

__all__ = ["Theorem", "THEOREM_IDS", "theorem", "theorems"]

N = sp.Symbol("n", integer=True, positive=True)
M = sp.Symbol("m", integer=True, positive=True)
ETA = sp.Symbol("eta", positive=True)
KAPPA = sp.Symbol("kappa", positive=True)
C = sp.Symbol("c", positive=True)
_HALF = sp.Rational(1, 2)

A = sp.MatrixSymbol("A", N, N)
B = sp.MatrixSymbol("B", M, M)
G = sp.MatrixSymbol("g", N, 1)
H = sp.MatrixSymbol("H", N, N)
J = sp.MatrixSymbol("J", M, N)
LY = sp.MatrixSymbol("L_y", M, 1)
LYY = sp.MatrixSymbol("L_yy", M, M)
W = sp.MatrixSymbol("w", N, 1)  # displacement of the new inputs from the current point
V = sp.MatrixSymbol("v", M, 1)  # displacement of the new outputs
GRAM = sp.MatrixSymbol("JᵀJ", N, N)  # invertible when J has full column rank
P_NEW = sp.MatrixSymbol("P(x~)", M, 1)  # P at a candidate x~ = x + Δx
Y0 = sp.MatrixSymbol("y", M, 1)


@dataclass(frozen=True)
class Theorem:
    """One invariance theorem: hypotheses, statement and the derivation that proves it.

    Attributes
    ----------
    id : str
        E.g. ``"newton-input-linear"``.
    rule, side : str
        The rule (``gd``, ``newton``, ``ig``, ``pg``) and where the transform acts
        (``input``: ``x = A u + b``; ``output``: ``P -> B P``).
    hypotheses : tuple of str
        What a problem and a transform must satisfy for the statement to apply.
    statement : str
        The identity, in words and symbols.
    residual : MatrixExpr
        The mapped-back transformed update minus the original one, simplified (``0`` when
        the rule is invariant; for GD a multiple of the ``condition``).
    condition : MatrixExpr or Expr or None
        For a rule that is invariant only for some maps (GD): what must vanish.
    derivation : tuple of Step
        Every intermediate object, each computed from the previous ones.
    """

    id: str
    rule: str
    side: str
    hypotheses: tuple[str, ...]
    statement: str
    residual: Any
    condition: Any
    derivation: tuple[Step, ...]

    @property
    def unconditional(self) -> bool:
        """True when the residual vanishes for every admissible map (no ``condition``)."""
        return self.condition is None and _is_zero(self.residual)


def _is_zero(expr: Any) -> bool:
    return expr == 0 or isinstance(expr, sp.ZeroMatrix)


def _simplify(expr: Any) -> Any:
    """Expand and collect a matrix expression (``doit`` distributes inverses of products)."""
    done = sp.expand(sp.sympify(expr).doit()).doit()
    return sp.simplify(done)


def _gram(expr: Any) -> Any:
    """Replace every ``Jᵀ J`` inside a product by the square ``JᵀJ``, so inverses distribute."""

    def fold(node: Any) -> Any:
        if not isinstance(node, sp.MatMul):
            return node
        coeff, factors = node.as_coeff_matrices()
        out: list[Any] = []
        for f in factors:
            if out and out[-1] == J.T and f == J:
                out[-1] = GRAM
            else:
                out.append(f)
        return sp.MatMul(coeff, *out) if len(out) != len(factors) else node

    return expr.replace(lambda e: isinstance(e, sp.MatMul), fold)


@dataclass(frozen=True)
class _Local:
    """First- and second-order data of a problem at the current point."""

    g: Any
    H: Any
    J: Any
    L_y: Any
    L_yy: Any


def _updates(local: _Local, *, square: bool) -> dict[str, Any]:
    """GD, Newton and IG (``J⁻¹`` when square, else the Gauss–Newton pseudo-inverse)."""
    dy = -ETA * local.L_yy.I * local.L_y
    if square:
        ig = local.J.I * dy
    else:
        ig = _gram(local.J.T * local.J).I * local.J.T * dy
    return {"gd": -ETA * local.g, "newton": -ETA * local.H.I * local.g, "ig": ig}


def _input_local() -> tuple[_Local, list[Step]]:
    """The problem in ``u`` with ``x = A u + b``: derivatives of the models in ``w = u − u₀``."""
    loss_model = G.T * A * W + _HALF * W.T * A.T * H * A * W  # L(x0 + A w) − L(x0), 2nd order
    zero = sp.ZeroMatrix(N, 1)
    grad = loss_model.diff(W)
    g_new = grad.subs(W, zero).doit()
    h_new = grad.diff(W).subs(H.T, H).doit()  # H is symmetric
    j_new = (J * A * W).diff(W).T  # P(x0 + A w) − P(x0), 1st order
    steps = [
        Step("L(x0 + A w) − L(x0) to second order", loss_model),
        Step("g' = ∂/∂w at w = 0", g_new),
        Step("H' = ∂²/∂w² (H symmetric)", h_new),
        Step("J' = ∂P(x0 + A w)/∂w", j_new),
        Step("L'_y, L'_yy: the loss in y is unchanged", (LY, LYY)),
    ]
    return _Local(g_new, h_new, j_new, LY, LYY), steps


def _output_local(b: Any) -> tuple[_Local, list[Step]]:
    """The problem with ``P' = B P`` and ``L'(y') = κ L(B⁻¹ y')``."""
    zero_m = sp.ZeroMatrix(M, 1)
    loss_y_model = KAPPA * (LY.T * b.I * V + _HALF * V.T * b.I.T * LYY * b.I * V)
    grad = loss_y_model.diff(V)
    ly_new = grad.subs(V, zero_m).doit()
    lyy_new = grad.diff(V).subs(LYY.T, LYY).doit()
    composite = (b.I * b).doit()
    j_new = (b * J * W).diff(W).T
    composite_model = KAPPA * (G.T * W + _HALF * W.T * H * W)
    cgrad = composite_model.diff(W)
    g_new = cgrad.subs(W, sp.ZeroMatrix(N, 1)).doit()
    h_new = cgrad.diff(W).subs(H.T, H).doit()
    steps = [
        Step("L'(y0' + v) − L'(y0') to second order, y = B⁻¹ y'", loss_y_model),
        Step("L'_y", ly_new),
        Step("L'_yy", lyy_new),
        Step("J' = ∂(B P)/∂x", j_new),
        Step("L'(P'(x)) = κ L(B⁻¹ B P(x)): B⁻¹ B =", composite),
        Step("g' = κ g, H' = κ H (from κ (L∘P) to second order)", (g_new, h_new)),
    ]
    return _Local(g_new, h_new, j_new, ly_new, lyy_new), steps


_ORIGINAL = _Local(G, H, J, LY, LYY)
_HYP_A = "x = A u + b with A invertible (linear or affine input map)"
_HYP_B = "P -> B P with B invertible, loss L'(y') = κ L(B⁻¹ y') (κ > 0)"
_HYP_SCALAR = "P -> c P (B = c I, c > 0), loss L'(y') = κ L(y'/c) (κ > 0)"
_HYP_LYY = "∂²L/∂y² invertible (the y-step Δy exists)"
# Newton and IG expand P and L to second order around the point, PG's local inverse is the
# inverse function theorem's, and a matrix nonsingular at one sample point is nonsingular at
# generic points only where P and L are analytic.
_HYP_SMOOTH = "P and L analytic (no Abs, sign, Max, Min, floor, Piecewise, …)"
_NEEDS = {
    "gd": (),
    "newton": ("∂²L/∂x² = H invertible at the point",),
    "ig": ("J has full column rank (square and invertible, or Gauss–Newton with m > n)",),
}


def _first_order(rule: str, side: str) -> Theorem:
    if side == "input":
        new, steps = _input_local()
        back, where = A, "A Δu − Δx"
        square = False
        hypotheses = (_HYP_A, *_NEEDS[rule])
    elif side == "output":
        new, steps = _output_local(B)
        back, where = None, "Δx' − Δx"
        square = rule == "ig"
        extra = ("J square and invertible",) if rule == "ig" else _NEEDS[rule]
        hypotheses = (_HYP_B, *extra)
    else:  # scalar output map: IG needs only full column rank
        new, steps = _output_local(C * sp.Identity(M))
        back, where = None, "Δx' − Δx"
        square = False
        hypotheses = (_HYP_SCALAR, *_NEEDS[rule])
    if rule == "ig":
        hypotheses += (_HYP_LYY,)
    if rule != "gd":
        hypotheses += (_HYP_SMOOTH,)
    original = _updates(_ORIGINAL, square=square)[rule]
    transformed = _updates(new, square=square)[rule]
    mapped = transformed if back is None else back * transformed
    if square:  # J square: m = n, so that (B J)⁻¹ = J⁻¹ B⁻¹
        original, transformed, mapped = (e.subs(M, N) for e in (original, transformed, mapped))
    residual = _simplify(mapped - original)
    condition = None
    if rule == "gd":
        condition = A * A.T - sp.Identity(N) if side == "input" else KAPPA - 1
        if not _is_zero(_simplify(residual - (-ETA) * condition * G)):
            raise AssertionError(f"gd-{side}: the residual is not −η · condition · g")
    steps += [
        Step(f"Δ on the transformed problem ({rule})", transformed),
        Step("mapped back", mapped),
        Step(f"{where}, simplified", residual),
    ]
    if rule == "gd":
        steps.append(Step("= −η · condition · g, with condition", condition))
        statement = (
            "GD is invariant iff A Aᵀ = I (orthogonal A): A Δu − Δx = −η (A Aᵀ − I) g"
            if side == "input"
            else "GD is invariant iff κ = 1: Δx' − Δx = −η (κ − 1) g"
        )
    else:
        statement = f"{rule}: {where} = 0 for every map and problem satisfying the hypotheses"
    name = {"input": "input-linear", "output": "output-linear", "scalar": "output-scalar"}[side]
    return Theorem(
        f"{rule}-{name}",
        rule,
        "input" if side == "input" else "output",
        hypotheses,
        statement,
        residual,
        condition,
        tuple(steps),
    )


def _pg(side: str) -> Theorem:
    """PG by its defining property: the transformed residual is an invertible multiple."""
    if side == "input":
        new, steps = _input_local()
        dy_new = -ETA * new.L_yy.I * new.L_y
        # u~ solves P(A u~ + b) = y + Δy'; with x~ = A u~ + b the residual is P(x~) − y − Δy'
        residual_new = P_NEW - Y0 - dy_new
        factor: Any = sp.Identity(M)
        hypotheses: tuple[str, ...] = (_HYP_A, _HYP_LYY, _HYP_SMOOTH)
    else:
        new, steps = _output_local(B)
        dy_new = -ETA * new.L_yy.I * new.L_y
        residual_new = B * P_NEW - (B * Y0 + dy_new)
        factor = B
        hypotheses = (_HYP_B, _HYP_LYY, _HYP_SMOOTH)
    dy = -ETA * LYY.I * LY
    residual = P_NEW - Y0 - dy
    gap = _simplify(residual_new - factor * residual)
    steps += [
        Step("Δy' on the transformed problem", _simplify(dy_new)),
        Step("transformed defining residual P'(·) − (y' + Δy')", residual_new),
        Step("original residual P(x~) − (y + Δy)", residual),
        Step("transformed − factor · original, simplified (factor invertible)", gap),
    ]
    where = "x~ = A u~ + b" if side == "input" else "the same x~"
    statement = (
        f"pg: P'(u~) = y' + Δy' iff P(x~) = y + Δy at {where}: the solution sets (the branches) "
        "correspond one to one"
    )
    return Theorem(f"pg-{side}-linear", "pg", side, hypotheses, statement, gap, None, tuple(steps))


#: Every theorem the analysis layer knows, by id.
THEOREM_IDS = (
    "newton-input-linear",
    "ig-input-linear",
    "pg-input-linear",
    "gd-input-linear",
    "newton-output-linear",
    "ig-output-linear",
    "ig-output-scalar",
    "pg-output-linear",
    "gd-output-linear",
)


@cache
def theorem(theorem_id: str) -> Theorem:
    """The theorem with this id, derived on first use (then cached).

    Examples
    --------
    >>> t = theorem("newton-input-linear")
    >>> t.unconditional, t.residual
    (True, 0)
    >>> theorem("gd-input-linear").condition
    -I + A*A.T
    """
    if theorem_id not in THEOREM_IDS:
        raise KeyError(f"unknown theorem {theorem_id!r}; known: {', '.join(THEOREM_IDS)}")
    rule, side, kind = theorem_id.split("-")
    if rule == "pg":
        return _pg(side)
    return _first_order(rule, "scalar" if kind == "scalar" else side)


def theorems() -> tuple[Theorem, ...]:
    """All theorems, derived (about a second on first call)."""
    return tuple(theorem(t) for t in THEOREM_IDS)
