"""The claims ledger's table: what the chapter says, where, and which check decides it.

Each entry is ``(id, section, quote, statement, expected, check, [correction])``; the quote is
verbatim from the chapter, the statement is what the check decides, the correction is the true
statement where the chapter is wrong. :mod:`scaleinv.analysis.claims` builds the
:class:`~scaleinv.analysis.claims.Claim` objects from it.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from scaleinv.analysis.claims import checks as gd_qn_ig
from scaleinv.analysis.claims import checks_pg as pg
from scaleinv.analysis.claims.statement import Statement

__all__ = ["ENTRIES"]

_H, _C = "holds", "corrected"
_CRUX, _GD, _QN = "The crux of the matter", "Gradient descent", "Quasi-Newton methods"
_IG, _PG = "Inverse gradients", "Inverse simulators"
_LOCAL = "Global and local inverse simulators"
_PG_ALL = "It gets all of the aspect above right"

#: (id, section, quote, statement, expected verdict, check, [correction]), in the chapter's order.
ENTRIES: tuple[tuple[Any, ...], ...] = (
    (
        "crux-gradient-length",
        _CRUX,
        "the length of the gradient anticorrelates with the distance from the minimum point",
        "In nonlinear settings |∇L| decreases as the distance to the minimum grows",
        _C,
        pg.check_gradient_length,
        Statement.of(
            "Not in general: for L = x⁴, |∇L| = 4|x|³ grows with the distance; it can shrink "
            "with distance for saturating losses ({L}, |x| > 1/√2)",
            L=sp.Eq(sp.Symbol("L"), 1 - sp.exp(-(sp.Symbol("x") ** 2))),
        ),
    ),
    (
        "crux-direction-alpha1",
        _CRUX,
        "points directly to the minimum at 0",
        "Toy P = (x1, αx2), L = |P|²: −∇L ∥ −x iff α = 1",
        _H,
        gd_qn_ig.check_crux_direction,
    ),
    (
        "crux-gd-eta-bound",
        _CRUX,
        "we’ll need to choose a smaller learning rate",
        "GD on the toy is stable iff 0 < η < 1/α² (α ≥ 1); x1 then contracts by 1 − 2/α² → 1",
        _H,
        gd_qn_ig.check_crux_eta_bound,
    ),
    (
        "crux-gd-squared",
        _CRUX,
        "regular updates actually apply the square of the scaling",
        "GD changes the scaled output y2 = αx2 by −2ηα²·y2: the square of the scale",
        _H,
        gd_qn_ig.check_crux_squared,
    ),
    (
        "crux-scale-invariance",
        _CRUX,
        "optimization trajectories are identical no matter what value we choose for",
        "On the toy with x2 = u2/α, Newton, IG and PG updates are α-free (proved), GD's are not",
        _H,
        gd_qn_ig.check_crux_invariance,
    ),
    (
        "chain-rule-gradient",
        "Traditional optimization methods",
        "As a central quantity, we have the composite gradient",
        "Eq. (20): (∂L/∂x)ᵀ = (∂P/∂x)ᵀ (∂L/∂P)ᵀ equals the direct derivative of L(P(x))",
        _H,
        gd_qn_ig.check_chain_rule,
    ),
    (
        "gd-units",
        f"{_GD}: Units",
        r"there exists no single \(\eta\) to produce the correct units for both parameters",
        "P = (x0, g·x1²/2), [x0] = length, [x1] = time: GD needs [η] = 1 and time²/length²",
        _H,
        gd_qn_ig.check_gd_units,
    ),
    (
        "gd-sensitivity-step",
        f"{_GD}: Function sensitivity",
        r"\(\Delta x_{\text{GD}} = -\eta \cdot \alpha\)",
        "L = αx: Δx_GD = −ηα exactly, ∝ α¹",
        _H,
        gd_qn_ig.check_gd_step,
    ),
    (
        "gd-sensitivity-loss",
        f"{_GD}: Function sensitivity",
        r"will even have terms on the order of \(\alpha^2\)",
        "L = αx: L(x + Δx_GD) − L(x) = −ηα², ∝ α² (also to first order)",
        _H,
        gd_qn_ig.check_gd_loss_alpha2,
    ),
    (
        "gd-loss-change-sign",
        f"{_GD}: Function sensitivity",
        r"\big( L(x) - L(x+\Delta x_{\text{GD}}) \big) = -\eta \cdot "
        r"(\frac{\partial L}{\partial x})^2",
        "L(x) − L(x + Δx_GD) = −η (∂L/∂x)² + O(Δx²) for smooth L",
        _C,
        gd_qn_ig.check_gd_loss_sign,
        "L(x) − L(x + Δx_GD) = +η (∂L/∂x)² + O(Δx²), i.e. L(x + Δx_GD) − L(x) = "
        "−η (∂L/∂x)² + O(Δx²)",
    ),
    (
        "gd-near-optimum",
        f"{_GD}: Convergence near optimum",
        r"\(\Delta x_{\text{GD}} \rightarrow 0\) as the optimum is approached",
        "L = x⁴, x⁶: |Δx_GD|/|x − x*| → 0 as x → x*",
        _H,
        gd_qn_ig.check_gd_near_optimum,
    ),
    (
        "newton-units",
        f"{_QN}: Units and Sensitivity",
        r"\(\eta\) can stay dimensionless",
        "Mechanics example: Newton's Δx has the units of x with a dimensionless η",
        _H,
        gd_qn_ig.check_newton_units,
    ),
    (
        "newton-loss-change-units",
        f"{_QN}: Units and Sensitivity",
        r"leaves us with a scalar update in terms of \(L\)",
        "−η (∂L/∂x)ᵀ H⁻¹ ∂L/∂x has the dimension of L (η dimensionless)",
        _H,
        gd_qn_ig.check_newton_loss_units,
    ),
    (
        "newton-inverse-alpha2",
        f"{_QN}: Units and Sensitivity",
        r"successfully gives us a factor of \(1/\alpha^2\)",
        "For the GD section's L = αx, Newton's H⁻¹ supplies a factor ∝ α⁻²",
        _C,
        gd_qn_ig.check_newton_alpha,
        "For L = αx the Hessian is 0 and Newton has no step; for L = (αx)², H⁻¹ = 1/(2α²) "
        "∝ α⁻² and Δx_QN = −ηx is α-free",
    ),
    (
        "newton-near-optimum",
        f"{_QN}: Convergence near optimum",
        r"Instead of slowing down, they take larger steps, even when \(\eta\) is fixed",
        "L = x⁴, x⁶: |Δx_QN|/|x − x*| → η/3, η/5 ≠ 0; 1/L'' → ∞ at x*",
        _H,
        gd_qn_ig.check_newton_near_optimum,
    ),
    (
        "composite-hessian",
        f"{_QN}: Consistency in function compositions",
        "depends on the square of the inner Jacobian",
        "d²L(y(x))/dx² = L''(y)·y'² + L'(y)·y'' for generic L and y",
        _H,
        pg.check_composite_hessian,
    ),
    (
        "composition-newton",
        f"{_QN}: Consistency in function compositions",
        "the update of an intermediate space still depends on all functions before that",
        "Newton's first-order y-step y'·Δx_QN depends on y'' (on the inner map)",
        _H,
        pg.check_composition_newton,
    ),
    (
        "relu-second-derivative",
        f"{_QN}: Dependence on Hessian",
        "ReLU activation functions of which the second-order derivative is zero",
        "d²/dx² max(0, x) = 0 for x ≠ 0 (a Dirac delta at 0)",
        _H,
        pg.check_relu,
    ),
    (
        "ig-dy-newton",
        _IG,
        r"\(\Delta y = \eta ~ (y^* - y)\)",
        "For L = ½|y − y*|² the Newton step in y is exactly Δy = η (y* − y)",
        _H,
        pg.check_ig_dy,
    ),
    (
        "ig-units",
        f"{_IG}: Units",
        r"has the units of \(x\)",
        "Mechanics example: Δx_IG = J⁻¹Δy has the units of x with a dimensionless η",
        _H,
        gd_qn_ig.check_ig_units,
    ),
    (
        "ig-sensitivity",
        f"{_IG}: Function sensitivity",
        r"now scale with \(\alpha^{-1}\)",
        "L = αx, requested loss step ΔL: Δx_IG = ΔL/α ∝ α⁻¹",
        _H,
        gd_qn_ig.check_ig_sensitivity,
    ),
    (
        "ig-near-optimum",
        f"{_IG}: Convergence near optimum and function compositions",
        "they produce updates that still progress the optimization",
        "P = x², x³ with L = y² (L = x⁴, x⁶): |Δx_IG|/|x − x*| → η/2, η/3 ≠ 0",
        _H,
        gd_qn_ig.check_ig_near_optimum,
    ),
    (
        "ig-composition",
        f"{_IG}: Convergence near optimum and function compositions",
        "The change in intermediate spaces is independent of their respective dependencies, "
        "at least up to first order",
        "IG's first-order y-step y'·Δx_IG = −η L'/L'' does not involve the inner map y(x)",
        _H,
        pg.check_composition_ig,
    ),
    (
        "pg-exact",
        _PG,
        r"will produce \(\mathcal P(x_0 + \Delta x) = y_0 + \Delta y\) exactly",
        "P(x0 + Δx_PG) = y0 + Δy on every branch: x², (u³, eᵛ), (x0, x1²)",
        _H,
        pg.check_pg_exact,
    ),
    (
        "pg-units",
        _PG,
        _PG_ALL,
        "Mechanics example: Δx_PG has the units of x with a dimensionless η",
        _H,
        gd_qn_ig.check_pg_units,
    ),
    (
        "pg-sensitivity",
        _PG,
        _PG_ALL,
        "L = αx, requested loss step ΔL: Δx_PG = ΔL/α ∝ α⁻¹",
        _H,
        gd_qn_ig.check_pg_sensitivity,
    ),
    (
        "pg-composition",
        _PG,
        _PG_ALL,
        "PG's y-step P(x + Δx_PG) − P(x) is exactly Δy for inner maps 2x+1, x², x³, eˣ",
        _H,
        pg.check_pg_composition,
    ),
    (
        "pg-near-optimum",
        _PG,
        _PG_ALL,
        Statement.prose("P = x², x³, L = y², η = 1/2: |Δx_PG|/|x − x*| → ")
        + Statement.of("{a}, {b} ≠ 0", a=1 - 2**-sp.S.Half, b=1 - 2 ** -sp.Rational(1, 3)),
        _H,
        gd_qn_ig.check_pg_near_optimum,
    ),
    (
        "pg-scale-invariance",
        _PG,
        "and it provides a scale-invariant update",
        "P = (x0, x1²) with x = diag(s0, s1) u: PG's update is invariant (proved), GD's is not",
        _H,
        pg.check_pg_scale_invariance,
    ),
    (
        "pg-nearest-branch",
        _PG,
        "and it provides a scale-invariant update",
        "With the nearest-branch rule P⁻¹(y; x0), PG's update is invariant under every diagonal "
        "scaling x = diag(s0, s1) u (coupled map (x0 + x1, x0·x1))",
        _C,
        pg.check_pg_nearest_branch,
        "Branch by branch it is (theorem pg-input-linear); the nearest-branch choice commutes "
        "with isotropic scalings, rotations and, for separable branches such as (±√y0, ±√y1), "
        "with diagonal scalings, but not in general: (x0 + x1, x0·x1) = (5, 6) from (2.1, 2.1) "
        "picks (3, 2) when x0 is compressed tenfold and (2, 3) when x1 is",
    ),
    (
        "average-gradient",
        "Fundamental theorem of calculus",
        "The local gradients are averaged along the path",
        "1-D: Δx_PG/Δy = (1/Δy) ∫ ∂x/∂y dy over [y0, y0 + Δy] (P = x², eˣ; any η)",
        _H,
        pg.check_average_gradient,
    ),
    (
        "average-gradient-of-P",
        "Fundamental theorem of calculus",
        r"equal to the average gradient of \(\mathcal P\) between the current \(x\)",
        "Δx_PG/Δy equals the mean of ∂P/∂x over [x0, x0 + Δx_PG]",
        _C,
        pg.check_average_of_P,
        "It is the mean of ∂x/∂y over [y0, y0 + Δy], the reciprocal of the mean of ∂P/∂x "
        "over [x0, x0 + Δx_PG]",
    ),
    (
        "local-inverse-limit",
        _LOCAL,
        r"\lim_{y \rightarrow y_0} \frac{\mathcal P^{-1}(y; x_0) - P^{-1}(y)}{|y - y_0|} = 0",
        "eˣ, x³: the nearest branch equals P⁻¹ (limit trivially 0); x0 + (y − y0)/P'(x0) "
        "also has limit 0",
        _H,
        pg.check_local_inverse_limit,
    ),
    (
        "local-inverse-x2",
        _LOCAL,
        "It doesn’t have a global inverse as two solutions",
        "x² = y has the branches ±√y (y ≥ 0); the branch nearest x0 follows the sign of x0",
        _H,
        pg.check_local_inverse_x2,
    ),
    (
        "inverse-jacobian-first-order",
        _LOCAL,
        r"the inverse Jacobian \(\frac{\partial x}{\partial y}\) itself is a local inverse "
        "function",
        "P(x0 + J⁻¹(y − y0)) − y = O(|y − y0|²), with a nonzero second-order term",
        _H,
        pg.check_inverse_jacobian,
    ),
    (
        "time-reversal",
        "Time reversal",
        "inverting the time axis of the forward simulator",
        "Exact flows of ẋ = −kx and the oscillator invert under t → −t; explicit Euler does "
        "not (1 − k²Δt²)",
        _H,
        pg.check_time_reversal,
    ),
    (
        "pg-ig-first-order",
        "Integrating a loss function",
        "equation (24) is equal to the IG from the section above up to first order",
        "Δx_PG − Δx_IG = O(Δy²) (η¹ terms agree), with a nonzero Δy² term",
        _H,
        pg.check_pg_ig_first_order,
    ),
    (
        "pg-quotient-remainder",
        "Integrating a loss function",
        r"\( \Delta x_{\text{PG}} / \Delta y = \frac{\partial x}{\partial y} + "
        r"\mathcal O(\Delta y^2) \)",
        "1-D: Δx_PG/Δy − ∂x/∂y = O(Δy²)",
        _C,
        pg.check_quotient_remainder,
        "Δx_PG/Δy = ∂x/∂y + ½ (∂²x/∂y²) Δy + O(Δy²): the remainder is O(Δy); it is "
        "Δx_PG − Δx_IG that is O(Δy²)",
    ),
)
